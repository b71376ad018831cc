"""Typed PRNG keys in a model: kept as data in `ep.Fixed` or plain fields, never
trained, set and read by path, shown in the summary."""

import re

import equinox as eqx
import jax
import jax.numpy as jnp

import eqxpurify as ep

from .conftest import (
    raises_and_keeps,
)


class Keyed(eqx.Module):
    a: ep.Param
    k: ep.Fixed  # a typed PRNG key
    kk: jax.Array  # typed PRNG keys as a plain field


def keyed() -> Keyed:
    return Keyed(
        ep.Param(1.0),
        ep.Fixed(jax.random.key(1)),
        jax.random.split(jax.random.key(2), 3),
    )


def test_summary_with_typed_keys():
    model = keyed()
    table = ep.summary(model)
    assert re.search(
        r"^k\s+Fixed\s+no\s+\(\)\s+key<fry>\s+-\s+-\s+-\s+-\s+-$", table, re.M
    )
    assert re.search(r"^kk\s+array\s+no\s+\(3,\)\s+key<fry>", table, re.M)


def check_typed_keys_through_set_value_and_values() -> None:
    model = keyed()
    new = jax.random.key(5)
    out = ep.set_value(model, "k", new)
    assert bool(jnp.all(jax.random.key_data(out.k.value) == jax.random.key_data(new)))
    # A new shape is fine for a Fixed (same dtype).
    assert ep.set_value(model, "k", jax.random.split(new, 4), reshape=True).k.shape == (
        4,
    )
    key_message = (
        r"`ep\.set_value`: the Fixed at `k` holds key<fry> data; pass an array of "
        r"that dtype \(e\.g\. from `jax\.random\.key`\)"
    )
    raises_and_keeps(
        lambda: ep.set_value(model, "k", jnp.zeros(2, jnp.uint32)),
        model,
        TypeError,
        match=key_message,
    )
    raises_and_keeps(
        lambda: ep.set_value(model, "k", jax.random.key(0, impl="rbg")),
        model,
        TypeError,
        match=key_message,
    )
    raises_and_keeps(
        lambda: ep.set_value(model, "kk", new),
        model,
        ValueError,
        match=(
            r"`kk` is a plain leaf of the model, not an `ep\.Param` or `ep\.Fixed`.*"
            r"eqx\.tree_at"
        ),
    )
    saved = ep.values(model, ep.is_wrapper)
    assert set(saved) == {"a", "k"}
    back = ep.load_values(model, saved)
    assert bool(eqx.tree_equal(back, model))
    jitted = eqx.filter_jit(lambda m, k: ep.set_value(m, "k", k))(model, new)
    assert bool(
        jnp.all(jax.random.key_data(jitted.k.value) == jax.random.key_data(new))
    )


def test_typed_keys_through_set_value_and_values(unchecked_types):
    check_typed_keys_through_set_value_and_values()


def test_typed_keys_through_set_value_under_typecheck():
    check_typed_keys_through_set_value_and_values()


def test_typed_keys_never_train():
    model = keyed()
    params, rest = ep.partition(model)
    assert list(params) == ["a"]
    assert bool(eqx.tree_equal(ep.combine(params, rest), model))
    assert ep.ravel(model)[0].shape == (1,)
    drawn = ep.normal(model, key=jax.random.key(0))
    assert bool(eqx.tree_equal(drawn.k, model.k)) and bool(
        eqx.tree_equal(drawn.kk, model.kk)
    )
    assert bool(eqx.tree_equal(ep.wrap(model), model))
    assert bool(eqx.tree_equal(ep.freeze(model, "k"), model))  # Fixed stays Fixed
    raises_and_keeps(
        lambda: ep.unfreeze(model, "k", prior=ep.Normal()),
        model,
        TypeError,
        "`ep.unfreeze`: the Fixed at `k` has dtype key<fry>",
        "only floating arrays can become Params",
        "Leave it out of `where`",
    )
    plain = eqx.filter_jit(ep.unwrap)(model)
    assert jax.dtypes.issubdtype(plain.k.dtype, jax.dtypes.prng_key)


def test_abstract_fixed_of_key_dtype(unchecked_types):
    # (Under the jaxtyping hook `set_value` hits the annotation xfailed above.)
    template = {"k": ep.Fixed(shape=(), dtype=jax.random.key(0).dtype)}
    assert template["k"].is_abstract
    filled = ep.set_value(template, "['k']", jax.random.key(3))
    assert not filled["k"].is_abstract
