"""Physical values by path: `ep.set_value` and `ep.load_values` check each value
(shape, dtype, range, support) and name the path; a failed call changes
nothing."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep
from eqxpurify import freeze, load_values, set_value, unfreeze

from .conftest import fingerprint, raises_and_keeps
from .models import Holder, fitted, net

LOW = [jnp.float16, jnp.bfloat16, jnp.float8_e4m3fn]


class Low(eqx.Module):
    p: ep.Param
    x: ep.Fixed


def low(dtype: Any) -> Low:
    return Low(ep.Param(jnp.zeros(2, dtype)), ep.Fixed(jnp.zeros(2, dtype)))


@pytest.mark.parametrize("dtype", LOW, ids=lambda d: jnp.dtype(d).name)
def test_python_float_into_low_precision(dtype):
    model = low(dtype)
    want = jnp.full((2,), 1.5, dtype)
    for where in ("p", "x"):
        out = ep.set_value(model, where, np.full(2, 1.5, dtype))
        assert getattr(ep.unwrap(out), where).dtype == jnp.dtype(dtype)
    scalar = Low(ep.Param(jnp.zeros((), dtype)), ep.Fixed(jnp.zeros((), dtype)))
    for where in ("p", "x"):
        out = ep.set_value(scalar, where, 1.5)
        got = getattr(ep.unwrap(out), where)
        assert got.dtype == jnp.dtype(dtype) and float(got) == 1.5
    out = ep.load_values(scalar, {"p": 1.5, "x": 1.5})
    plain = ep.unwrap(out)
    assert float(plain.p) == float(plain.x) == 1.5
    assert bool(jnp.all(ep.unwrap(ep.set_value(model, "x", want)).x == want))


@pytest.mark.parametrize(
    "dtype",
    [
        jnp.float16,
        jnp.bfloat16,
    ],
    ids=["f16", "bf16"],
)
def test_python_float_overflowing_low_precision(dtype):
    model = Low(ep.Param(jnp.zeros((), dtype)), ep.Fixed(jnp.zeros((), dtype)))
    name = jnp.dtype(dtype).name
    for where in ("p", "x"):
        raises_and_keeps(
            lambda: ep.set_value(model, where, 1e39),
            model,
            ValueError,
            match=(
                rf"`ep\.set_value`: the value for the (Param|Fixed) at `{where}` "
                rf"overflows "
                rf"{name} \(it becomes inf\)\. Pass a value within {name}'s range, or "
                rf"use "
                r"a wider dtype"
            ),
        )
    raises_and_keeps(
        lambda: ep.load_values(model, {"p": 0.0, "x": 1e39}),
        model,
        ValueError,
        match=rf"`ep\.load_values`: the value for the Fixed at `x` overflows {name}",
    )


def test_typed_array_of_another_float_dtype():
    model = low(jnp.float16)
    raises_and_keeps(
        lambda: ep.set_value(model, "x", np.ones(2, np.float32)),
        model,
        TypeError,
        match=(
            r"the Fixed at `x` has dtype float16, but the value has dtype float32\. "
            r"Cast "
            r"it first \(`value\.astype\(jnp\.float16\)`\)"
        ),
    )
    out = ep.set_value(model, "x", np.ones(2, np.float16))
    assert ep.unwrap(out).x.tolist() == [1.0, 1.0]


def test_set_value_latent_overflow_names_the_dtype():
    model = Holder(ep.Param(0.0, prior=ep.Normal(0.0, 1e-5), dtype=jnp.float16))
    raises_and_keeps(
        lambda: ep.set_value(model, "p", 1.0),
        model,
        ValueError,
        match=r"Param at `p`.*overflows float16.*wider",
    )


def test_traced_low_precision_overflow():
    model = Holder(ep.Param(0.0, prior=ep.Normal(0.0, 1e-5), dtype=jnp.float16))
    fn = eqx.filter_jit(lambda m, v: ep.set_value(m, "p", v).p.latent)
    with pytest.raises(Exception) as info:
        jax.block_until_ready(fn(model, jnp.float16(1.0)))
    assert "Param at `p`" in str(info.value)
    assert float(fn(model, jnp.float16(1e-5))) == pytest.approx(1.0, rel=1e-2)


@pytest.mark.parametrize(
    "dtype, value", [(jnp.int8, 300), (jnp.uint8, -1)], ids=["int8-300", "uint8--1"]
)
def test_python_int_out_of_range_names_the_path(dtype, value):
    model = {"counts": ep.Fixed(jnp.arange(3, dtype=dtype))}
    raises_and_keeps(
        lambda: ep.set_value(model, "['counts']", value),
        model,
        ValueError,
        match=r"Fixed at `\['counts'\]`.*(int8|uint8)",
    )


def test_python_int_into_a_bool_fixed():
    model = {"mask": ep.Fixed(jnp.array([True, False]))}
    raises_and_keeps(
        lambda: ep.set_value(model, "['mask']", 2),
        model,
        TypeError,
        match=r"Fixed at `\['mask'\]` has dtype bool",
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"table['a']": 1.0, 'table["a"]': 2.0},
        {".alpha": 1.0},
        {" alpha": 1.0},
        {"alpha ": 1.0},
    ],
    ids=["quotes", "leading-dot", "leading-space", "trailing-space"],
)
def test_load_values_path_given_twice(extra):
    model = net()
    values = {**ep.values(model), **extra}
    raises_and_keeps(
        lambda: ep.load_values(model, values),
        model,
        ValueError,
        match=(
            r"`ep\.load_values`: the path `(table\['a'\]|alpha)` is given twice \(as "
            r"`.+` "
            r"and another spelling of it\)\. Give each path once"
        ),
    )


@pytest.mark.parametrize("key", [None, 3], ids=["None", "int"])
def test_load_values_key_of_wrong_type(key, unchecked_types):
    model = net()
    raises_and_keeps(
        lambda: ep.load_values(model, {key: 1.0}, strict=False),
        model,
        TypeError,
        match=r"`ep\.load_values`.*path",
    )


def test_load_values_unknown_and_inner_paths():
    model = net()
    values = ep.values(model)
    raises_and_keeps(
        lambda: ep.load_values(model, {**values, "alpha.latent": 1.0}),
        model,
        ValueError,
        match=(
            r"`ep\.load_values`: the model has no `ep\.Param` or `ep\.Fixed` at "
            r"`alpha\.latent`\. Closest existing paths: `alpha`"
        ),
    )
    raises_and_keeps(
        lambda: ep.load_values(model, {**values, "enc": 1.0}),
        model,
        ValueError,
        match=r"`ep\.load_values`: `enc` names a submodule",
    )
    raises_and_keeps(
        lambda: ep.load_values(
            model, {k: v for k, v in values.items() if k != "alpha"}
        ),
        model,
        ValueError,
        match=(
            r"no value given for 1 Param\(s\) of the model: `alpha`\. Give every Param "
            r"a value, or pass `strict=False`"
        ),
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda m: set_value(m, "encoder.layers[0]['weight']", jnp.zeros((2, 3))),
            ValueError,
            r"Param at `encoder.layers\[0\]\[.weight.\]` has shape \(3, 2\).*"
            r"Pass a value of shape \(3, 2\)",
        ),
        (
            lambda m: set_value(
                m, "encoder.layers[0]['weight']", jnp.zeros((3, 2), jnp.float16)
            ),
            TypeError,
            r"has dtype float(32|64), but the value has dtype float16.*Cast it first",
        ),
        (
            lambda m: set_value(m, "alhpa", 2.0),
            ValueError,
            r"no `ep.Param` or `ep.Fixed` at `alhpa`.*Closest existing paths: `alpha`",
        ),
        (
            lambda m: set_value(m, "counts", jnp.zeros(3, jnp.int32)),
            ValueError,
            r"`counts` is a plain leaf.*`eqx.tree_at`",
        ),
        (
            lambda m: set_value(m, lambda t: t.alpha, -1.0),
            ValueError,
            r"Param at `alpha` is outside the support.*Pass a value inside",
        ),
        (
            lambda m: set_value(m, lambda t: t.alpha.value, 2.0),
            ValueError,
            r"`where`.*select a Param itself, not its `.value`",
        ),
        (
            lambda m: load_values(m, {"alpha": 2.0, "x_ob": jnp.zeros(4)}),
            ValueError,
            r"`ep.load_values`.*at `x_ob`.*Closest existing paths: `x_obs`",
        ),
        (
            lambda m: load_values(m, {"alpha": 2.0}),
            ValueError,
            r"no value given for 2 Param\(s\).*`encoder.layers\[0\].*`strict=False`",
        ),
        (
            lambda m: freeze(m, "encoder.layer"),
            ValueError,
            r"`ep.freeze`.*`encoder.layer`.*Closest existing paths: `encoder.layers",
        ),
        (
            lambda m: unfreeze(m, "x_obs"),
            ValueError,
            r"Fixed at `x_obs` was not made by `ep.freeze`.*Pass `prior=`",
        ),
    ],
    ids=[
        "set_value-shape",
        "set_value-dtype",
        "set_value-unknown-path",
        "set_value-plain-leaf",
        "set_value-outside-support",
        "set_value-selects-value",
        "load_values-unknown-path",
        "load_values-missing",
        "freeze-unknown-path",
        "unfreeze-never-frozen",
    ],
)
def test_bad_surgery(call, error, match):
    model = fitted()
    raises_and_keeps(lambda: call(model), model, error, match=match)


def test_set_value_traced_outside_support_fails_at_run_time():
    model = fitted()
    before = fingerprint(model)
    step = eqx.filter_jit(lambda m, v: set_value(m, "alpha", v))
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"`alpha` is outside"):
        step(model, jnp.asarray(-1.0, model.alpha.dtype))  # a typed array
    assert fingerprint(model) == before


def test_set_value_traced_weak_scalar_outside_support_fails_at_run_time():
    model = fitted()
    step = eqx.filter_jit(lambda m, v: set_value(m, "alpha", v))
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"`alpha` is outside"):
        step(model, jnp.array(-1.0))
