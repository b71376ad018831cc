"""`ep.Fixed`: it keeps the dtype of its value, and refuses a value that overflows
the dtype asked for."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep
from eqxpurify._fixed import check_storage
from eqxpurify._wrapper_base import DeletedArrayError

from .conftest import (
    X64,
    raises_and_keeps,
)

FLOATS = ["bfloat16", "float16", "float32", "float64"]


def _key():
    return jax.random.key(0)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", FLOATS)
def test_fixed_and_wrap_keep_the_dtype_of_their_values(dtype):
    with jax.enable_x64(X64 or dtype == "float64"):
        value = jnp.asarray([0.5, -1.25, 3.0], dtype)
        fixed = ep.Fixed(value)
        assert fixed.dtype == jnp.dtype(dtype) and fixed.value.dtype == value.dtype
        np.testing.assert_array_equal(fixed.value, value)
        linear = eqx.nn.Linear(2, 3, key=_key(), dtype=jnp.dtype(dtype))
        wrapped = ep.wrap(linear)
        assert wrapped.weight.dtype == jnp.dtype(dtype)
        assert ep.unwrap(wrapped).weight.dtype == jnp.dtype(dtype)


@pytest.mark.parametrize(
    "value, dtype",
    [(1e6, jnp.float16), (1e39, jnp.bfloat16), (np.float32(7e4), jnp.float16)],
    ids=["1e6-f16", "1e39-bf16", "np-7e4-f16"],
)
def test_fixed_constructor_overflow(value, dtype):
    raises_and_keeps(
        lambda: ep.Fixed(value, dtype=dtype),
        None,
        ValueError,
        match=r"overflows (float16|bfloat16)",
    )


# --------------------------------------------------------------------------------
# The constructor: what it takes, what it refuses (with the cause and the fix).


def test_fixed_stores_a_float_as_its_bits(float_dtype):
    value = jnp.asarray([0.5, -1.25, 3.0], float_dtype)
    fixed = ep.Fixed(value)
    uint = {4: jnp.uint32, 8: jnp.uint64}[jnp.dtype(float_dtype).itemsize]
    assert fixed.stored.dtype == uint and fixed.stored.shape == (3,)
    assert fixed.kind == float_dtype and fixed.dtype == float_dtype
    assert fixed.shape == (3,) and not fixed.is_abstract
    np.testing.assert_array_equal(fixed.stored, np.asarray(value).view(uint))
    for got in (fixed.array, fixed.value):
        assert got.dtype == float_dtype
        np.testing.assert_array_equal(got, value)
    assert fixed.prior is None and fixed.name is None


def test_fixed_keeps_integers_and_booleans_as_they_are():
    ints = ep.Fixed(np.array([1, 2, 3], np.int32))
    assert ints.stored.dtype == jnp.int32 and ints.dtype == jnp.int32
    np.testing.assert_array_equal(ints.value, [1, 2, 3])
    flags = ep.Fixed(jnp.array([True, False]))
    assert flags.stored.dtype == jnp.bool_ and flags.shape == (2,)
    np.testing.assert_array_equal(flags.array, [True, False])


def test_fixed_dtype_argument_converts_the_value():
    fixed = ep.Fixed(np.array([1, 2], np.int32), dtype=jnp.float32)
    assert fixed.dtype == jnp.float32 and fixed.stored.dtype == jnp.uint32
    np.testing.assert_array_equal(fixed.value, np.array([1.0, 2.0], np.float32))


def test_fixed_complex_is_stored_as_pairs_of_bits():
    value = jnp.array([[1 + 2j, -3j, 0.5]], jnp.complex64)
    fixed = ep.Fixed(value)
    assert fixed.stored.shape == (1, 3, 2) and fixed.stored.dtype == jnp.uint32
    assert fixed.shape == (1, 3) and fixed.dtype == jnp.complex64
    np.testing.assert_array_equal(fixed.value, value)


def test_fixed_with_a_matching_shape():
    fixed = ep.Fixed(jnp.ones((2, 3), jnp.float32), shape=(2, 3))
    assert fixed.shape == (2, 3)
    assert ep.Fixed(jnp.zeros(4, jnp.int32), shape=4).shape == (4,)
    assert ep.Fixed(jnp.zeros(4, jnp.int32), shape=np.int64(4)).shape == (4,)


def test_fixed_with_a_mismatched_shape_is_refused():
    value = jnp.ones(3, jnp.float32)
    raises_and_keeps(
        lambda: ep.Fixed(value, shape=(2,)),
        value,
        ValueError,
        "`ep.Fixed` got a value of shape (3,) but `shape=(2,)`.",
    )


def test_fixed_without_value_or_shape_is_refused():
    raises_and_keeps(
        lambda: ep.Fixed(),
        None,
        ValueError,
        match=r"^`ep\.Fixed` needs a `value`, or a `shape=` for an abstract Fixed\.$",
    )


@pytest.mark.parametrize(
    "shape, error, phrase",
    [
        ("ab", TypeError, "`ep.Fixed`: `shape` must be a tuple of static Python ints"),
        ((2, -1), ValueError, "`ep.Fixed`: `shape` must have non-negative dimensions"),
    ],
    ids=["not-ints", "negative"],
)
def test_fixed_bad_shape_is_refused(shape, error, phrase, unchecked_types):
    raises_and_keeps(lambda: ep.Fixed(shape=shape), None, error, phrase)
    value = jnp.ones(2, jnp.float32)
    raises_and_keeps(lambda: ep.Fixed(value, shape=shape), value, error, phrase)


@pytest.mark.parametrize("name", ["", 3], ids=["empty", "int"])
def test_fixed_bad_name_is_refused(name, unchecked_types):
    raises_and_keeps(
        lambda: ep.Fixed(1.0, name=name),
        None,
        TypeError,
        f"`ep.Fixed(name=...)` must be a non-empty string (or None), got {name!r}.",
    )


def test_fixed_name_and_prior_are_kept():
    prior = ep.Normal(0.0, 1.0)
    fixed = ep.Fixed(np.float32(0.5), prior=prior, name="scale")
    assert fixed.name == "scale" and fixed.prior is prior
    assert ep.Fixed(shape=(), prior=prior, name="s").prior is prior


def test_fixed_prior_that_is_not_a_prior_is_refused(unchecked_types):
    raises_and_keeps(
        lambda: ep.Fixed(1.0, prior=2.0),
        None,
        TypeError,
        "`ep.Fixed(prior=...)` must be an `ep.AbstractPrior` or None, got float.",
    )


@pytest.mark.parametrize("kind", ["Fixed", "Param"])
def test_fixed_of_a_wrapper_is_refused(kind, unchecked_types):
    inner = getattr(ep, kind)(np.float32(1.0))
    raises_and_keeps(
        lambda: ep.Fixed(inner),
        inner,
        TypeError,
        f"`ep.Fixed` got an `ep.{kind}`; pass its array (`.value`)",
        "use `ep.freeze` to turn a Param into a Fixed.",
    )


def test_fixed_of_a_non_number_is_refused(unchecked_types):
    raises_and_keeps(
        lambda: ep.Fixed("abc"),
        None,
        TypeError,
        "`ep.Fixed` needs an array or a number, got str.",
    )


def test_fixed_leaves_are_its_storage_and_prior_only():
    # The dtype and the name are static: neither is a leaf a tool could touch.
    fixed = ep.Fixed(np.float32(0.5), name="s")
    assert len(jax.tree.leaves(fixed)) == 1
    assert jax.tree.leaves(fixed)[0] is fixed.stored
    framed = ep.Fixed(np.float32(0.5), prior=ep.HalfNormal(np.float32(2.0)))
    assert len(jax.tree.leaves(framed)) == 2


def test_fixed_is_never_trained():
    assert ep.Fixed._trains is False and ep.Param._trains is True
    assert not eqx.is_inexact_array(ep.Fixed(jnp.ones(2, jnp.float32)).stored)


# --------------------------------------------------------------------------------
# Abstract Fixed: a shape and dtype, no values yet.


def test_abstract_fixed_defaults_to_the_default_float():
    fixed = ep.Fixed(shape=(2, 3))
    default = jnp.float64 if X64 else jnp.float32
    assert fixed.is_abstract and fixed.shape == (2, 3) and fixed.dtype == default
    assert isinstance(fixed.stored, jax.ShapeDtypeStruct)
    assert fixed.stored.shape == (2, 3)
    assert fixed.stored.dtype == (jnp.uint64 if X64 else jnp.uint32)


@pytest.mark.parametrize(
    "dtype, stored_dtype, stored_shape",
    [
        (jnp.int32, jnp.int32, (4,)),
        (jnp.float16, jnp.uint16, (4,)),
        (jnp.complex64, jnp.uint32, (4, 2)),
    ],
    ids=["int32", "float16", "complex64"],
)
def test_abstract_fixed_of_a_dtype(dtype, stored_dtype, stored_shape):
    fixed = ep.Fixed(shape=4, dtype=dtype)
    assert fixed.is_abstract and fixed.shape == (4,) and fixed.dtype == dtype
    assert fixed.stored.shape == stored_shape and fixed.stored.dtype == stored_dtype


def test_abstract_fixed_of_keys():
    dtype = jax.random.key(0).dtype
    fixed = ep.Fixed(shape=(2,), dtype=dtype)
    assert fixed.dtype == dtype and fixed.stored.dtype == dtype
    assert repr(fixed) == "Fixed(abstract, shape=(2,), dtype=key<fry>)"


@pytest.mark.parametrize("read", ["array", "value"])
def test_abstract_fixed_has_no_value(read):
    fixed = ep.Fixed(shape=(2, 3))
    raises_and_keeps(
        lambda: getattr(fixed, read),
        fixed,
        ValueError,
        "The Fixed is abstract (shape (2, 3), no value yet).",
        "Fill it first: `ep.set_value(model, where, array)` or "
        "`eqx.tree_at(where, model, ep.Fixed(array))`.",
    )


# --------------------------------------------------------------------------------
# `.array` and `.value`: the same array; `.value` stops gradients.


def test_value_stops_gradients_and_array_does_not(float_dtype):
    x = jnp.linspace(0.0, 1.0, 100, dtype=float_dtype)
    value_jaxpr = str(jax.make_jaxpr(lambda x: ep.Fixed(x).value)(x))
    array_jaxpr = str(jax.make_jaxpr(lambda x: ep.Fixed(x).array)(x))
    assert "stop_gradient" in value_jaxpr
    assert "stop_gradient" not in array_jaxpr
    grad = jax.grad(lambda x: jnp.sum(ep.Fixed(x).value * x))(x)
    np.testing.assert_array_equal(grad, x)  # only the plain `x` factor's gradient
    assert grad.dtype == float_dtype


# --------------------------------------------------------------------------------
# Text: `repr`, the text inside a prior, and what treescope shows.


def test_repr_of_a_concrete_fixed():
    assert repr(ep.Fixed(np.float32(0.5))) == "Fixed(0.5)"
    assert repr(ep.Fixed(np.array([0.5, 1.5], np.float32))) == "Fixed([0.5, 1.5])"
    assert repr(ep.Fixed(np.array([1, 2, 3], np.int32))) == "Fixed([1, 2, 3])"
    # 50 elements: shape, dtype and statistics. arange(50): mean 24.5, std
    # sqrt((50**2 - 1) / 12) = 14.43.
    assert (
        repr(ep.Fixed(jnp.arange(50, dtype=jnp.float32)))
        == "Fixed(f32[50](mean=24.5, std=14.43))"
    )


def test_repr_of_frozen_and_named_fixed():
    prior = ep.Normal(0.0, 1.0)
    half = np.float32(0.5)
    assert repr(ep.Fixed(half, prior=prior)) == "Fixed(0.5, frozen from Normal(0, 1))"
    assert repr(ep.Fixed(half, name="s")) == "Fixed(0.5, name='s')"
    assert (
        repr(ep.Fixed(half, prior=prior, name="s"))
        == "Fixed(0.5, frozen from Normal(0, 1), name='s')"
    )


def test_repr_of_an_abstract_fixed():
    default = ep.Fixed(shape=(2, 3))
    assert repr(default) == "Fixed(abstract, shape=(2, 3))"
    assert default._hyper_text == ("f64[2,3]" if X64 else "f32[2,3]")
    ints = ep.Fixed(shape=(2,), dtype=jnp.int32, name="n")
    assert repr(ints) == "Fixed(abstract, shape=(2,), dtype=i32)"
    assert ints._hyper_text == "i32[2]"
    assert repr(ep.Fixed(shape=2, dtype=jnp.complex64)) == (
        "Fixed(abstract, shape=(2,), dtype=c64)"
    )


def test_repr_of_a_filtered_fixed():
    # A filter (or a gradient) leaves the node with None in place of its storage.
    fixed = ep.Fixed(np.array([0.5, 1.5], np.float32), prior=ep.Normal(0.0, 1.0))
    filtered = eqx.filter(fixed, eqx.is_inexact_array)
    assert filtered.stored is None
    assert repr(filtered) == "Fixed(None)"
    assert filtered._hyper_text == "None"
    # Whatever the filter put there is shown as it is.
    replaced = eqx.filter(fixed, eqx.is_inexact_array, replace=7)
    assert repr(replaced) == "Fixed(7)"
    assert replaced._hyper_text == "7"


def test_repr_of_a_traced_fixed(float_dtype):
    fixed = ep.Fixed(jnp.asarray([0.5, 1.5], float_dtype), name="t")
    seen = []

    def f(t):
        seen.append((repr(t), t._hyper_text))
        return t.value

    np.testing.assert_array_equal(jax.jit(f)(fixed), fixed.value)
    short = "f64" if float_dtype == jnp.float64 else "f32"
    assert seen == [(f"Fixed({short}[2], name='t')", f"{short}[2]")]


@pytest.mark.parametrize("storage", [jnp.float32, jnp.int32, jnp.uint16])
def test_repr_of_a_fixed_whose_storage_was_replaced(storage):
    fixed = ep.Fixed(np.array([0.5, 1.5], np.float32), name="t")
    broken = eqx.tree_at(lambda t: t.stored, fixed, jnp.zeros(2, storage))
    name = jnp.dtype(storage).name
    assert repr(broken) == f"Fixed(<storage converted to {name}: data lost>, name='t')"
    assert broken._shown_value is broken.stored


def test_hyper_text_of_a_concrete_fixed():
    assert ep.Fixed(np.float32(2.0))._hyper_text == "2"
    assert ep.Fixed(np.array([1, 2], np.int32))._hyper_text == "[1, 2]"
    # Inside a prior's text: the value, with no `Fixed(...)` around it.
    assert repr(ep.Normal(ep.Fixed(np.float32(0.25)), 2.0)) == "Normal(0.25, 2)"


def test_shown_value_is_the_value(float_dtype):
    fixed = ep.Fixed(jnp.asarray([0.5, 1.5], float_dtype))
    shown = fixed._shown_value
    assert shown.dtype == float_dtype
    np.testing.assert_array_equal(shown, [0.5, 1.5])


def test_treescope_shows_the_value_and_that_it_never_trains():
    treescope = pytest.importorskip("treescope")
    text = treescope.render_to_text(ep.Fixed(np.array([0.5, 1.5], np.float32)))
    assert "trains=False" in text and "[0.5, 1.5]" in text


# --------------------------------------------------------------------------------
# `check_storage`: a Fixed whose data was lost (deleted, or its storage replaced).


def test_check_storage_passes_a_sound_fixed(float_dtype):
    check_storage(ep.Fixed(jnp.ones(3, float_dtype)))
    check_storage(ep.Fixed(jnp.ones(3, jnp.int32)), "['t']")
    check_storage(ep.Fixed(shape=(2,)))  # abstract: nothing to lose

    def f(t):
        check_storage(t, "['t']")  # traced: no buffer to check
        return t.value

    np.testing.assert_array_equal(jax.jit(f)(ep.Fixed(jnp.ones(3, float_dtype))), 1.0)


@pytest.mark.parametrize(
    "path, where", [(None, "The Fixed has"), ("['t']", "The Fixed at `['t']` has")]
)
def test_check_storage_of_a_deleted_array(path, where):
    fixed = ep.Fixed(jnp.linspace(0.0, 1.0, 100, dtype=jnp.float32))
    fixed.stored.delete()
    info = raises_and_keeps(
        lambda: check_storage(fixed, path),
        None,
        DeletedArrayError,
        f"{where} been deleted",
        "donated to a jitted function",
    )
    assert isinstance(info.value, ValueError)
    with pytest.raises(DeletedArrayError, match="The Fixed has been deleted"):
        fixed.value


@pytest.mark.parametrize(
    "path, where",
    [(None, "The Fixed stores"), ("['t']", "The Fixed at `['t']` stores")],
)
def test_check_storage_converted_to_float(path, where):
    fixed = ep.Fixed(np.array([0.5, 1.5], np.float32))
    broken = eqx.tree_at(lambda t: t.stored, fixed, jnp.zeros(2, jnp.float16))
    raises_and_keeps(
        lambda: check_storage(broken, path),
        broken,
        ValueError,
        f"{where} float32 data as uint32, but its storage now has dtype float16",
        "converted every leaf of the model to a floating array",
        "optimistix with `y0=model` and a blanket `jax.tree.map(lambda x: "
        "x.astype(...), model)` both do), and its data is lost. Give such tools "
        "only the trainable part: `params, rest = ep.partition(model)`, pass "
        "`params` (e.g. `y0=params`) and rebuild with `ep.combine(params, rest)` "
        "inside the function.",
        match=r"function\.$",  # the fix ends the message
    )
    raises_and_keeps(
        lambda: broken.array, broken, ValueError, "The Fixed stores float32 data"
    )


@pytest.mark.parametrize(
    "path, where",
    [(None, "The Fixed stores"), ("['t']", "The Fixed at `['t']` stores")],
)
def test_check_storage_replaced_by_another_dtype(path, where):
    fixed = ep.Fixed(np.array([1, 2], np.int32))
    broken = eqx.tree_at(lambda t: t.stored, fixed, jnp.zeros(2, jnp.uint8))
    info = raises_and_keeps(
        lambda: check_storage(broken, path),
        broken,
        ValueError,
        f"{where} int32 data as int32, but its storage (`.stored`) now holds an "
        "array of dtype uint8: it was replaced directly",
        "(e.g. `eqx.tree_at(lambda m: ....stored, model, array)`), and its data "
        "is lost. Set data with `ep.set_value(model, where, array)`, or replace "
        "the whole node: `eqx.tree_at(where, model, ep.Fixed(array))`.",
    )
    assert "converted every leaf" not in str(info.value)
    raises_and_keeps(lambda: broken.value, broken, ValueError, "replaced directly")


def test_is_fixed():
    assert ep.is_fixed(ep.Fixed(np.float32(1.0)))
    assert ep.is_fixed(ep.Fixed(shape=(2,)))
    assert not ep.is_fixed(ep.Param(np.float32(1.0)))
    assert not ep.is_fixed(jnp.ones(2))
    assert not ep.is_fixed(None)


def test_fixed_prior_holding_a_param_is_refused():
    # A Fixed trains nothing: a Param in its remembered prior would be trained by
    # `ep.partition` yet belong to no parameter.
    prior = ep.Normal(ep.Param(0.5), 1.0)
    raises_and_keeps(
        lambda: ep.Fixed(1.0, prior=prior),
        prior,
        TypeError,
        match=(
            r"^`ep\.Fixed\(prior=\.\.\.\)` got a prior that holds an `ep\.Param`: a "
            r"Fixed only remembers its prior \(for `ep\.unfreeze`\) and trains "
            r"nothing, so that Param would be trained by `ep\.partition` yet belong "
            r"to no parameter\. Freeze the prior's Params first: `ep\.Fixed\(value, "
            r"prior=ep\.freeze\(prior, lambda p: p\)\)`\.$"
        ),
    )
    fixed = ep.Fixed(1.0, prior=ep.freeze(prior, lambda p: p))
    assert ep.partition({"t": fixed})[0] == {}
    back = ep.unfreeze({"t": fixed}, "['t']")["t"]
    assert isinstance(back.prior.mean, ep.Param)
    assert float(back.prior.mean.value) == 0.5 and float(back.value) == 1.0


class _Scaled(ep.AbstractPrior):
    """A custom prior holding a Python function beside a constant."""

    fn: Any
    scale: ep.Fixed

    def __init__(self, fn, scale):
        self.fn, self.scale = fn, ep.Fixed(scale)

    @ep.unwrapped
    def forward(self, z):
        return self.fn(z) * self.scale

    @ep.unwrapped
    def inverse(self, x):
        return x / self.scale

    @ep.unwrapped
    def log_prob(self, x):
        return -jnp.abs(x)


def test_fixed_prior_with_other_leaves_is_remembered():
    # A function in a custom prior is a leaf but no Param: nothing to refuse.
    prior = _Scaled(jnp.sinh, 2.0)
    fixed = ep.Fixed(1.0, prior=prior)
    assert fixed.prior is prior and ep.partition({"t": fixed})[0] == {}
