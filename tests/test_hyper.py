"""Prior hyperparameters as given: numbers, arrays, `ep.Fixed` or `ep.Param`
(hierarchical), of a real floating type and shapes that broadcast together;
anything else is refused naming the prior and the argument."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

import eqxpurify as ep
from eqxpurify import _hyper

from .conftest import (
    DEFAULT_FLOAT,
    X64,
    close,
    outside,
    raises_and_keeps,
)


def _type_phrases(cls, name):
    return (
        f"`{cls}({name}=...)` must be a number, an array, an `ep.Fixed` or an "
        "`ep.Param` (for a hierarchical prior)",
        "got complex.",
    )


def _bool_phrases(cls, name):
    return (
        f"`{cls}({name}=...)` must be a real number",
        "got a bool (True).",
        "Pass a float.",
    )


@pytest.mark.parametrize(
    "cls, names, ok",
    [
        (ep.Normal, ("mean", "sigma"), (0.0, 1.0)),
        (ep.LogNormal, ("mean", "sigma"), (1.0, 1.0)),
        (ep.Uniform, ("low", "high"), (0.0, 1.0)),
    ],
)
def test_prior_type_and_shape_messages_name_class_and_field(cls, names, ok):
    for i, name in enumerate(names):
        for bad, phrases in [(1j, _type_phrases), (True, _bool_phrases)]:
            args = list(ok)
            args[i] = bad
            raises_and_keeps(
                lambda: cls(*args), args, TypeError, *phrases(cls.__name__, name)
            )
    first, second = names
    raises_and_keeps(
        lambda: cls(np.full(2, ok[0]), np.full(3, ok[1] + 1.0)),
        None,
        ValueError,
        f"`{cls.__name__}` hyperparameters of shapes {first} (2,), {second} (3,) "
        "do not broadcast together.",
        "Give them the same shape, or make one a scalar.",
    )


@pytest.mark.parametrize(
    "build, arg",
    [
        (lambda: ep.Normal(None, 1.0), "mean"),
        (lambda: ep.Normal("a", 1.0), "mean"),
        (lambda: ep.Normal([], 1.0), "mean"),
        (lambda: ep.Normal(0.0, 1 + 1j), "sigma"),
        (lambda: ep.Normal(0.0, ep.Normal(0.0, 1.0)), "sigma"),
        (lambda: ep.Uniform(None, 1.0), "low"),
    ],
    ids=["None", "str", "empty-list", "complex", "a-prior", "Uniform-None"],
)
def test_hyperparameter_of_wrong_type(build, arg, unchecked_types):
    raises_and_keeps(
        build,
        None,
        TypeError,
        match=(
            r"\((mean|sigma|low|high)=\.\.\.\)` must be (a number, an array, an "
            r"`ep\.Fixed` or an `ep\.Param`|real)"
        ),
    )
    with pytest.raises(TypeError, match=rf"{arg}="):
        build()


def test_hyperparameter_of_wrong_type_under_typecheck():
    # With jaxtyping's hook on, the annotation check names the argument first.
    raises_and_keeps(
        lambda: ep.Normal(None),
        None,
        TypeError,
        match=r"`Normal\(mean=\.\.\.\)`|parameter 'mean'",
    )


def test_integer_hyperparameter_of_a_floating_kind():
    with pytest.raises(TypeError, match=r"`Normal\(sigma=\.\.\.\)` must be floating"):
        ep.Normal(0.0, ep.Fixed(jnp.array(2)))
    # Python and NumPy integers are numbers: they become floating hyperparameters.
    prior = ep.Normal(1, 2)
    assert jnp.issubdtype(prior.sigma.dtype, jnp.floating)
    assert float(prior.forward(jnp.ones(()))) == 3.0


@pytest.mark.skipif(X64, reason="a Python int above int32 is an int64 under x64")
def test_large_python_int_hyperparameter():
    prior = ep.Normal(2**40, 1.0)
    assert float(prior.mean.value) == 2.0**40


def test_bool_hyperparameter_is_refused():
    raises_and_keeps(
        lambda: ep.Normal(0.0, True),
        None,
        TypeError,
        match=r"`Normal\(sigma=\.\.\.\)`.*bool",
    )


def test_prior_hyperparameters_of_incompatible_shapes():
    # A mean per element (2,) and a sigma per element (3,) can never broadcast:
    # the prior should say so when built, naming both shapes.
    with pytest.raises(ValueError, match=r"Normal.*\(2,\).*\(3,\)"):
        ep.Normal(jnp.zeros(2), jnp.ones(3))


# --------------------------------------------------------------------------------
# What a hyperparameter becomes: the dtype a number or array is given, and the
# messages that refuse one, in full (the fix each names included).


@pytest.mark.parametrize("seq", [[2.0], (2.0,)], ids=["list", "tuple"])
def test_one_element_sequence_is_a_hyperparameter(seq, unchecked_types):
    # Lists are not `ArrayLike` to jaxtyping, but users without the hook pass them.
    prior = ep.Normal(seq, 1.0)
    assert prior.mean.shape == (1,)
    assert prior.mean.dtype == DEFAULT_FLOAT
    np.testing.assert_array_equal(np.asarray(prior.forward(jnp.ones(1))), [3.0])


@pytest.mark.parametrize(
    "value, expected",
    [
        (jnp.array(2, jnp.int32), DEFAULT_FLOAT),  # an integer array: the default
        (jnp.array(2, jnp.uint8), DEFAULT_FLOAT),
        (jnp.array(2.0, jnp.float16), jnp.float16),  # a float array keeps its dtype
        (jnp.array(2.0, jnp.bfloat16), jnp.bfloat16),
        (jnp.array(2.0, jnp.float32), jnp.float32),  # even under x64
    ],
    ids=["int32", "uint8", "float16", "bfloat16", "float32"],
)
def test_jax_array_hyperparameter_dtype(value, expected):
    prior = ep.Normal(value, 1.0)
    assert prior.mean.dtype == expected
    assert prior.mean.value.dtype == expected
    assert float(prior.mean.value) == 2.0


def test_non_floating_wrapper_message_names_its_kind_and_dtype():
    for fixed, dtype in [
        (ep.Fixed(jnp.array(2, jnp.int32)), "int32"),
        (ep.Fixed(jnp.array([True])), "bool"),
    ]:
        info = raises_and_keeps(
            lambda: ep.Normal(0.0, fixed),
            fixed,
            TypeError,
            f"`Normal(sigma=...)` must be floating, got an `ep.Fixed` of dtype "
            f"{dtype}.",
        )
        assert str(info.value).endswith(f"of dtype {dtype}.")


@pytest.mark.parametrize(
    "value, kind",
    [(np.str_("1.5"), "str_"), (np.bytes_(b"1.5"), "bytes_")],
    ids=["str_", "bytes_"],
)
def test_numpy_string_scalar_is_not_a_number(value, kind, unchecked_types):
    # NumPy's string scalars are `np.generic` (and `str`/`bytes`): refused as
    # strings, not read as an array of strings.
    raises_and_keeps(
        lambda: ep.Normal(value, 1.0),
        None,
        TypeError,
        "`Normal(mean=...)` must be a number, an array, an `ep.Fixed` or an "
        f"`ep.Param` (for a hierarchical prior), got {kind}.",
    )


@pytest.mark.parametrize(
    "value, phrases",
    [
        (
            np.array(["1.5"]),
            ("got an array of dtype <U3.", "JAX arrays hold numbers, not strings"),
        ),
        (
            np.array(["2020-01-01"], dtype="datetime64[D]"),
            ("got an array of dtype datetime64[D].", "not dates or times"),
        ),
        (
            np.array([1.5], dtype=object),
            ("got an array of dtype object.", "convert it to a numeric dtype"),
        ),
    ],
    ids=["str", "datetime", "object"],
)
def test_host_array_of_no_number_kind_is_refused(value, phrases, unchecked_types):
    # Each of these would convert to float64 (`"1.5"`, a date as days, an object
    # holding a float): refused rather than silently read as a number.
    raises_and_keeps(
        lambda: ep.Normal(value, 1.0),
        value,
        TypeError,
        "`Normal(mean=...)` got an array of dtype",
        *phrases,
    )


@pytest.mark.parametrize(
    "value",
    [
        np.complex64(1 + 2j),
        np.array([1j, 2j], np.complex64),
        jnp.array([1j, 2j], jnp.complex64),
    ],
    ids=["numpy-scalar", "numpy-array", "jax-array"],
)
def test_complex_array_hyperparameter_is_refused(value):
    info = raises_and_keeps(
        lambda: ep.Normal(0.0, value),
        value,
        TypeError,
        "`Normal(sigma=...)` must be real, got complex64.",
    )
    assert str(info.value) == "`Normal(sigma=...)` must be real, got complex64."


def test_bool_message_ends_with_its_fix():
    info = raises_and_keeps(
        lambda: ep.Normal(0.0, True),
        None,
        TypeError,
        *_bool_phrases("Normal", "sigma"),
    )
    assert str(info.value).endswith("got a bool (True). Pass a float.")


def test_broadcast_message_ends_with_its_fix():
    info = raises_and_keeps(
        lambda: ep.Uniform(jnp.zeros(2), jnp.ones(3)),
        None,
        ValueError,
        "`Uniform` hyperparameters of shapes low (2,), high (3,) do not broadcast "
        "together. Give them the same shape, or make one a scalar.",
    )
    assert str(info.value).endswith("make one a scalar.")


_ENABLE_X64 = 'enable float64 (`jax.config.update("jax_enable_x64", True)`).'


@pytest.mark.skipif(X64, reason="float64 is JAX's own float under x64")
@pytest.mark.parametrize(
    "value, shown",
    [
        (np.float64(1e300), "1e+300"),
        (np.full(8, 1e300), str([1e300] * 8)),
        (np.full(9, 1e300), "an array of shape (9,)"),
        (np.array([1.0, -1e39]), "[1.0, -1e+39]"),
    ],
    ids=["scalar", "8", "9", "negative"],
)
def test_float64_that_overflows_float32_is_refused(value, shown):
    # The cast's own overflow warning is not what the user sees: the message is.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = raises_and_keeps(
            lambda: ep.Normal(value, 1.0),
            value,
            ValueError,
            f"`Normal(mean=...)` overflows float32; got {shown}. Pass a smaller "
            "value, or " + _ENABLE_X64,
        )
    assert str(info.value).endswith(_ENABLE_X64)


def _signalling_nan():
    bits = np.array([0x7FF0000000000001], np.uint64)
    value = bits.view(np.float64)[0]
    assert np.isnan(value)
    return value


def test_signalling_nan_hyperparameter_is_refused_as_not_finite():
    # Casting a signalling NaN raises the FPU's invalid flag, which NumPy turns
    # into a RuntimeWarning: the user sees the prior's own message instead.
    value = _signalling_nan()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raises_and_keeps(
            lambda: ep.Normal(value, 1.0),
            None,
            ValueError,
            "`Normal(mean=...)` must be finite (not NaN or inf)",
        )


# --------------------------------------------------------------------------------
# A hyperparameter replaced after the prior was built (`eqx.tree_at` runs no
# checks): its value is read, and a raw number or array there is refused.

_REPLACED = (
    "not an `ep.Fixed` or `ep.Param`: was it replaced with `eqx.tree_at(lambda p: "
    "p.prior.mean, param, 2.0)`? A raw floating array there would be trained by "
    "every optimiser. Put a wrapper there: `eqx.tree_at(lambda p: p.prior.mean, "
    "param, ep.Fixed(2.0))` for a constant (an `ep.Param` for a hierarchical "
    "prior), or replace the whole prior, which checks its hyperparameters: "
    "`eqx.tree_at(lambda p: p.prior, param, ep.Normal(2.0, 1.0))`."
)


@pytest.mark.parametrize(
    "raw, held",
    [
        (2.0, "2.0 of type float"),
        ([2.0], "[2.0] of type list"),
        (np.arange(8.0), f"{[float(i) for i in range(8)]} of type ndarray"),
        (np.arange(9.0), "an array of shape (9,) of type ndarray"),
        ("abc", "str of type str"),
    ],
    ids=["float", "list", "8", "9", "str"],
)
@pytest.mark.parametrize("method", ["forward", "inverse", "log_prob"])
def test_raw_hyperparameter_is_refused(raw, held, method):
    prior = eqx.tree_at(lambda p: p.mean, ep.Normal(0.0, 1.0), raw)
    info = raises_and_keeps(
        lambda: getattr(prior, method)(jnp.zeros(())),
        prior,
        TypeError,
        f"A prior hyperparameter holds {held}, " + _REPLACED,
    )
    assert str(info.value) == f"A prior hyperparameter holds {held}, " + _REPLACED


def test_raw_hyperparameter_under_jit_is_refused():
    prior = eqx.tree_at(lambda p: p.sigma, ep.Normal(0.0, 1.0), jnp.ones(()))
    with pytest.raises(TypeError, match="holds a traced value of type") as info:
        eqx.filter_jit(lambda p: p.forward(jnp.zeros(())))(prior)
    assert _REPLACED in str(info.value)


def test_attribute_error_inside_a_wrapper_is_not_called_a_raw_value(
    unchecked_types,
):
    # A Param hyperparameter whose own prior was replaced by a string: reading its
    # value fails inside the Param, and that error is what the user sees.
    tau = ep.Param(1.0, prior=ep.HalfNormal(1.0))
    prior = eqx.tree_at(lambda p: p.sigma.prior, ep.Normal(0.0, tau), "abc")
    with pytest.raises(AttributeError, match="'str' object has no attribute"):
        prior.forward(jnp.zeros(()))
    with pytest.raises(AttributeError, match="'str' object has no attribute"):
        _hyper.value_in(prior.sigma, np.dtype(np.float32))


# --------------------------------------------------------------------------------
# The helpers the priors compute with.


@pytest.mark.parametrize("size, shown", [(8, "list"), (9, "shape")])
def test_describe_lists_up_to_eight_numbers(size, shown):
    values = np.arange(size, dtype=np.float32) / 2
    expected = (
        "[" + ", ".join(str(i / 2) for i in range(size)) + "]"
        if shown == "list"
        else f"an array of shape ({size},)"
    )
    assert _hyper.describe(values) == expected
    assert _hyper.describe(values.reshape(1, size)) == (
        f"[{expected}]" if shown == "list" else f"an array of shape (1, {size})"
    )
    traced = jax.jit(lambda x: jnp.asarray(_hyper.describe(x) == "a traced value"))
    assert bool(traced(values))


def _low_precision_and(float_dtype):
    return [jnp.float16, jnp.bfloat16, jnp.float32, float_dtype]


def test_compute_dtype_and_value(float_dtype):
    for dtype in _low_precision_and(float_dtype):
        x = jnp.array([0.5, -1.5], dtype)
        ct, xc = _hyper.compute(x)
        want = np.dtype(float_dtype if dtype == jnp.float64 else jnp.float32)
        assert ct == want
        assert xc.dtype == want
        np.testing.assert_array_equal(np.asarray(xc, np.float64), [0.5, -1.5])


def test_value_in_the_compute_dtype(float_dtype):
    for dtype in _low_precision_and(float_dtype):
        h = ep.Fixed(jnp.array([0.5, 2.0], dtype))
        got = _hyper.value_in(h, np.dtype(float_dtype))
        assert got.dtype == float_dtype
        np.testing.assert_array_equal(np.asarray(got, np.float64), [0.5, 2.0])


@pytest.mark.skipif(not X64, reason="float64 hyperparameters need x64")
def test_float64_hyperparameters_compute_in_a_float32_latents_dtype():
    # Under strict promotion, a float64 hyperparameter or latent left in float64
    # next to a float32 one is an error: both are cast to the compute dtype.
    prior = ep.Normal(1.0, 2.0)
    assert prior.mean.dtype == jnp.float64
    for dtype in [jnp.float16, jnp.float32]:
        z = jnp.array([0.0, 1.0], dtype)
        x = prior.forward(z)
        assert x.dtype == dtype
        np.testing.assert_array_equal(np.asarray(x, np.float64), [1.0, 3.0])
        assert prior.inverse(x).dtype == dtype
        # The log density stays in the compute dtype (float16's is float32).
        assert prior.log_prob(x).dtype == jnp.float32


@pytest.mark.skipif(X64, reason="the test below runs in-process under x64")
def test_float64_hyperparameters_compute_in_a_float32_latents_dtype_x64():
    # The same check, in a fresh Python with x64 on, so a run without x64 also
    # sees the compute dtype kept (without x64 every float computes in float32).
    got = outside(
        """
        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_numpy_dtype_promotion", "strict")
        from eqxpurify import _hyper
        prior = ep.Normal(1.0, 2.0)
        z = jnp.array([0.0, 1.0], jnp.float32)
        ct, zc = _hyper.compute(z)
        out = {
            "ct": str(ct),
            "zc": str(zc.dtype),
            "value_in": str(_hyper.value_in(prior.mean, ct).dtype),
            "x": np.asarray(prior.forward(z), np.float64).tolist(),
        }
        print(json.dumps(out))
        """,
        devices=1,
    )
    assert got == {
        "ct": "float32",
        "zc": "float32",
        "value_in": "float32",
        "x": [1.0, 3.0],
    }


def test_open_interval_keeps_probabilities_off_zero(float_dtype):
    tiny = float(np.finfo(np.dtype(float_dtype)).tiny)
    u = jnp.array([0.0, tiny, 0.5, 1.0], float_dtype)
    for f in [_hyper.open_interval, jax.jit(_hyper.open_interval)]:
        got = f(u)
        assert got.dtype == float_dtype
        np.testing.assert_array_equal(np.asarray(got, np.float64), [tiny, tiny, 0.5, 1])
    # Through a prior: far in the upper tail, `erfc` underflows to 0, and the
    # latent is still finite (without the floor, -ndtri(0) would be inf).
    # It is the latent of the floor, `-ndtri(tiny)` (13.0 in float32, 37.5 in
    # float64), by SciPy.
    z = ep.HalfNormal(1.0).inverse(jnp.array(60.0, float_dtype))
    assert z.dtype == float_dtype
    close(z, -scipy.special.ndtri(tiny), float_dtype)
