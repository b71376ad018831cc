"""Tests written to kill mutants (issue 18; `tools/mutate.py`, docs/mutation.md).

Each test fails on a small, realistic bug planted in the library: the Unflatten
error naming the wrong array, `ep.wrap`'s LeCun scale from the wrong axes, a
prior evaluated from its far tail, a Param losing the dtype of its value, and
the survivors of mutmut's runs on `_priors`, `_filters`, `_init`, `_ravel` and
the intermediates' batching and harvesting code.
"""

import importlib
import inspect
import json
import math
import os
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from jax import lax

import eqxpurify as ep

from .conftest import DEFAULT_FLOAT, X64
from .test_intermediates_internals import _fresh

_F = jnp.dtype(DEFAULT_FLOAT).name  # Params made from Python floats

# --------------------------------------------------------------------------------
# `Unflatten` names the array by its position among the trainable arrays.


class _Mixed(eqx.Module):
    a: ep.Param
    fixed: ep.Fixed
    plain: jax.Array
    counts: jax.Array
    theta: ep.Param
    last: ep.Param


def _mixed_model():
    tau = ep.Param(0.7, prior=ep.HalfNormal(1.0))
    return _Mixed(
        a=ep.Param(jnp.array([0.5, -0.5])),
        fixed=ep.Fixed(jnp.ones(3)),
        plain=jnp.arange(4.0),
        counts=jnp.arange(2),
        theta=ep.Param(jnp.zeros(3), prior=ep.Normal(ep.Param(0.1), tau)),
        last=ep.Param(jnp.ones((2, 2))),
    )


# Path order: a Param before the Params of its prior; Fixed data and integer
# arrays are not trainable, a plain floating array is.
_MIXED_NAMES = [
    "a",
    "plain",
    "theta",
    "theta.prior.mean",
    "theta.prior.sigma",
    "last",
]
_MIXED_SHAPES = [(2,), (4,), (3,), (), (), (2, 2)]


def test_flatten_order_of_a_mixed_model():
    latents, _ = ep.flatten(_mixed_model())
    assert [z.shape for z in latents] == _MIXED_SHAPES
    assert list(ep.partition(_mixed_model())[0]) == _MIXED_NAMES


@pytest.mark.parametrize("k", range(len(_MIXED_NAMES)))
def test_unflatten_error_names_the_right_array(k):
    latents, unflatten = ep.flatten(_mixed_model())
    bad = list(latents)
    bad[k] = jnp.zeros((7,), latents[k].dtype)
    shape = re.escape(str(_MIXED_SHAPES[k]))
    with pytest.raises(
        ValueError,
        match=rf"^`unflatten`: array {k} \(for `{re.escape(_MIXED_NAMES[k])}`\) "
        rf"must have shape {shape} and dtype {_F}, got shape \(7,\) and "
        rf"dtype {_F}\. For a batch of lists",
    ):
        unflatten(bad)


def test_unflatten_dtype_error_names_the_right_array():
    latents, unflatten = ep.flatten(_mixed_model())
    bad = [*latents[:-1], latents[-1].astype(jnp.bfloat16)]
    with pytest.raises(
        ValueError,
        match=r"^`unflatten`: array 5 \(for `last`\) must have shape \(2, 2\) and "
        rf"dtype {_F}, got shape \(2, 2\) and dtype bfloat16\.",
    ):
        unflatten(bad)


# --------------------------------------------------------------------------------
# `ep.wrap`'s default prior: LeCun, fan_in = (in_channels / groups) * prod(kernel).


def _key():
    return jax.random.key(0)


WRAP_CASES = {
    "linear": (lambda: eqx.nn.Linear(3, 5, key=_key()), 3),
    "linear-scalar-in": (lambda: eqx.nn.Linear("scalar", 5, key=_key()), None),
    "conv1d": (lambda: eqx.nn.Conv1d(3, 5, 4, key=_key()), 3 * 4),
    "conv2d-groups": (
        lambda: eqx.nn.Conv2d(6, 4, (2, 3), groups=2, key=_key()),
        3 * 2 * 3,
    ),
    "conv3d": (lambda: eqx.nn.Conv3d(2, 4, (2, 3, 2), key=_key()), 2 * 2 * 3 * 2),
    "convtranspose1d-groups": (
        lambda: eqx.nn.ConvTranspose1d(4, 6, 3, groups=2, key=_key()),
        2 * 3,
    ),
    "convtranspose2d": (
        lambda: eqx.nn.ConvTranspose2d(3, 5, (2, 3), key=_key()),
        3 * 2 * 3,
    ),
    "convtranspose3d": (
        lambda: eqx.nn.ConvTranspose3d(2, 3, (1, 2, 3), key=_key()),
        2 * 1 * 2 * 3,
    ),
}


@pytest.mark.parametrize("abstract", [False, True], ids=["concrete", "abstract"])
@pytest.mark.parametrize("case", list(WRAP_CASES))
def test_wrap_default_prior_is_lecun(case, abstract):
    make, fan_in = WRAP_CASES[case]
    module = eqx.filter_eval_shape(make) if abstract else make()
    wrapped = ep.wrap(module)
    weight = wrapped.weight.prior
    assert type(weight) is ep.Normal
    assert float(weight.mean.value) == 0.0
    want = 1.0 if fan_in is None else 1.0 / math.sqrt(fan_in)
    assert float(weight.sigma.value) == pytest.approx(want, rel=1e-7)
    # Biases (1-d) get N(0, 1).
    bias = wrapped.bias.prior
    assert float(bias.mean.value) == 0.0 and float(bias.sigma.value) == 1.0


def test_wrap_lecun_scale_sets_the_spread_of_a_redraw():
    # The spread of `ep.normal(ep.wrap(conv))` is 1 / sqrt(in * kernel).
    conv = eqx.nn.Conv2d(16, 64, (3, 3), key=_key())
    model = ep.normal(ep.wrap(conv), key=jax.random.key(1))
    w = np.asarray(ep.unwrap(model).weight)
    assert w.std() == pytest.approx(1 / math.sqrt(16 * 9), rel=0.05)


# --------------------------------------------------------------------------------
# A Param keeps the dtype of its value.

FLOATS = ["bfloat16", "float16", "float32", "float64"]


def _priors():
    return {
        "default": None,
        "lognormal": ep.LogNormal(1.0, 0.5),
        "uniform": ep.Uniform(0.0, 2.0),
        "normal-array": ep.Normal(jnp.array([1.0, 2.0]), 1.0),
    }


@pytest.mark.parametrize("prior", list(_priors()))
@pytest.mark.parametrize("source", ["jax", "numpy", "jax-scalar"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_param_keeps_the_dtype_of_its_value(dtype, source, prior):
    with jax.enable_x64(X64 or dtype == "float64"):
        prior_ = _priors()[prior]
        values = np.array([0.5, 1.25])
        if source == "jax":
            value = jnp.asarray(values, dtype)
        elif source == "numpy":
            value = values.astype(jnp.dtype(dtype))
        else:
            value = jnp.asarray(values, dtype)[1]
        p = ep.Param(value) if prior_ is None else ep.Param(value, prior=prior_)
        assert p.dtype == jnp.dtype(dtype)
        assert p.latent.dtype == jnp.dtype(dtype)
        assert p.value.dtype == jnp.dtype(dtype)
        if prior != "normal-array":  # (that prior's batch shape is (2,))
            assert p.shape == np.shape(value)
        tol = {"bfloat16": 2e-2, "float16": 2e-3}.get(dtype, 1e-6)
        np.testing.assert_allclose(
            np.asarray(p.value, np.float64), np.asarray(value, np.float64), rtol=tol
        )
        # Broadcast to a shape, and from a latent: the same dtype.
        q = ep.Param(value, shape=(3, 2)) if np.ndim(value) else ep.Param(value)
        assert q.dtype == jnp.dtype(dtype)
        r = ep.Param.from_latent(p.latent, prior=p.prior)
        assert r.dtype == jnp.dtype(dtype) and r.value.dtype == jnp.dtype(dtype)
        # Through the params-dict partition and back.
        params, rest = ep.partition({"p": p})
        assert params["['p']"].dtype == jnp.dtype(dtype)
        assert ep.combine(params, rest)["p"].dtype == jnp.dtype(dtype)


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


# --------------------------------------------------------------------------------
# Tail precision of every built-in prior, float64, against mpmath.


def _ndtri(u):
    return mpmath.sqrt(2) * mpmath.erfinv(2 * u - 1)


def _quantile_map(name, h):
    """`x(z)` and `z(x)` of a built-in prior in mpmath (used at 50 digits)."""
    mp = mpmath
    h = {k: mp.mpf(v) for k, v in h.items()}
    if name == "normal":
        return (lambda z: h["mean"] + h["sigma"] * z), (
            lambda x: (x - h["mean"]) / h["sigma"]
        )
    if name == "lognormal":
        var = mp.log1p((h["sigma"] / h["mean"]) ** 2)
        mu, s = mp.log(h["mean"]) - var / 2, mp.sqrt(var)
        return (lambda z: mp.exp(mu + s * z)), (lambda x: (mp.log(x) - mu) / s)
    if name == "uniform":
        lo, width = h["low"], h["high"] - h["low"]
        return (lambda z: lo + width * mp.ncdf(z)), (lambda x: _ndtri((x - lo) / width))
    if name == "halfnormal":
        sigma = h["sigma"]
        return (lambda z: sigma * _ndtri((1 + mp.ncdf(z)) / 2)), (
            lambda x: _ndtri(mp.erf(x / (sigma * mp.sqrt(2))))
        )
    if name == "halfcauchy":
        scale = h["scale"]
        return (lambda z: scale * mp.tan(mp.pi / 2 * mp.ncdf(z))), (
            lambda x: _ndtri(2 / mp.pi * mp.atan(x / scale))
        )
    if name == "exponential":
        rate = h["rate"]
        return (lambda z: -mp.log(mp.ncdf(-z)) / rate), (
            lambda x: _ndtri(-mp.expm1(-rate * x))
        )
    raise AssertionError(name)


# Bounds at 0 in both directions, so that relative precision in each tail shows.
TAIL_CASES = {
    "normal": (ep.Normal, {"mean": 0.0, "sigma": 1.5}),
    "lognormal": (ep.LogNormal, {"mean": 1.0, "sigma": 2.0}),
    "uniform-low-0": (ep.Uniform, {"low": 0.0, "high": 1.0}),
    "uniform-high-0": (ep.Uniform, {"low": -2.0, "high": 0.0}),
    "uniform-narrow": (ep.Uniform, {"low": 0.0, "high": 1e-3}),
    "halfnormal": (ep.HalfNormal, {"sigma": 1.5}),
    "halfcauchy": (ep.HalfCauchy, {"scale": 0.7}),
    "exponential": (ep.Exponential, {"rate": 2.0}),
}
Z_TAILS = np.concatenate([np.linspace(-8.0, 8.0, 81), [-1e-9, 1e-9, -0.3, 0.3]])
# What float64 reaches (measured: at most about 1e-14), with room to spare; a
# map evaluated from the far tail loses every digit there (relative error ~1).
TAIL_RTOL = 1e-12


@pytest.mark.parametrize("case", list(TAIL_CASES))
def test_forward_precision_in_both_tails_float64(case):
    cls, h = TAIL_CASES[case]
    name = case.split("-")[0]
    with mpmath.workdps(50):
        forward, _ = _quantile_map(name, h)
        want = np.array([float(forward(mpmath.mpf(z))) for z in Z_TAILS])
    with jax.enable_x64(True):
        prior = cls(**{k: jnp.float64(v) for k, v in h.items()})
        got = np.asarray(prior.forward(jnp.asarray(Z_TAILS)))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=TAIL_RTOL, atol=0)


@pytest.mark.parametrize("case", list(TAIL_CASES))
def test_inverse_precision_in_both_tails_float64(case):
    # At each float64 value x, against the exact latent of that very x (the
    # rounding of x itself is not the inverse's error).
    cls, h = TAIL_CASES[case]
    name = case.split("-")[0]
    with mpmath.workdps(50):
        forward, inverse = _quantile_map(name, h)
        xs = np.array([float(forward(mpmath.mpf(z))) for z in Z_TAILS])
        want = np.array([float(inverse(mpmath.mpf(x))) for x in xs])
    with jax.enable_x64(True):
        prior = cls(**{k: jnp.float64(v) for k, v in h.items()})
        got = np.asarray(prior.inverse(jnp.asarray(xs)))
    assert got.dtype == np.float64
    scale = np.maximum(np.abs(want), 1.0)
    assert np.all(np.abs(got - want) <= TAIL_RTOL * scale), np.max(
        np.abs(got - want) / scale
    )


# --------------------------------------------------------------------------------
# `_priors`: Uniform's support (closed, NaN outside) and bounds that round in a
# narrow dtype; `has_params`, which `ep.freeze` uses to freeze hierarchical priors.


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_uniform_support_is_closed_and_nan_outside(dtype):
    prior = ep.Uniform(-1.0, 3.0)
    x = jnp.array([-1.0, 3.0, -1.5, 3.5, 1.0], dtype)
    z = np.asarray(prior.inverse(x).astype(jnp.float32))
    assert np.all(np.isfinite(z[:2])) and z[0] < -3 and z[1] > 3  # on the bounds
    assert np.all(np.isnan(z[2:4]))  # outside the support
    assert z[4] == 0.0  # the middle
    lp = np.asarray(prior.log_prob(x).astype(jnp.float32))
    np.testing.assert_allclose(lp[[0, 1, 4]], -np.log(4.0), rtol=1e-2)
    assert np.all(lp[2:4] == -np.inf)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_uniform_values_on_bounds_rounded_in_a_narrow_dtype(dtype):
    # 0.1 and 0.7 are not representable: in a narrow dtype they round to just
    # below 0.1 and just above 0.7, outside the exact support. Such a value is the
    # bound, with a finite latent, not a NaN.
    prior = ep.Uniform(0.1, 0.7)
    low, high = float(jnp.asarray(0.1, dtype)), float(jnp.asarray(0.7, dtype))
    assert low != 0.1 and high != 0.7
    x = jnp.array([low, high], dtype)
    z = np.asarray(prior.inverse(x).astype(jnp.float32))
    assert np.all(np.isfinite(z)) and z[0] < -3 and z[1] > 3, z
    # the next values of the narrow dtype beyond the rounded bounds are outside
    beyond = jnp.nextafter(x, jnp.array([-1.0, 2.0], dtype))
    assert float(beyond[0]) < low and float(beyond[1]) > high
    assert np.all(np.isnan(np.asarray(prior.inverse(beyond).astype(jnp.float32))))


_ORDER = (
    "`Uniform(low, high)` needs low < high; got low={}, high={}. "
    "Swap or widen the bounds."
)
_WIDTH = (
    "`Uniform(low, high)`: `high - low` overflows float32; got low={}, high={}. "
    "Narrow the bounds or use float64."
)


@pytest.mark.parametrize(
    "low, high, message",
    [
        (1.0, 1.0, _ORDER.format("1.0", "1.0")),
        (2.0, 1.0, _ORDER.format("2.0", "1.0")),
        ([0.0, 1.0], [1.0, 1.0], _ORDER.format("[0.0, 1.0]", "[1.0, 1.0]")),
        (
            np.float32(-3e38),
            np.float32(3e38),
            _WIDTH.format("-3.0000000054977558e+38", "3.0000000054977558e+38"),
        ),
    ],
)
def test_uniform_bounds_are_checked_eagerly(low, high, message):
    lo, hi = jnp.asarray(low), jnp.asarray(high)
    if lo.dtype == jnp.float64:  # under x64: the same numbers, as float32
        lo, hi = lo.astype(jnp.float32), hi.astype(jnp.float32)
    with _raises_exactly(ValueError, message):
        ep.Uniform(lo, hi)


_FINITE = "`Uniform({}=...)` must be finite (not NaN or inf); got {}."
_BOOL = "`Uniform({}=...)` must be a real number, got a bool ({}). Pass a float."
_TYPE = (
    "`Uniform({}=...)` must be a number, an array, an `ep.Fixed` or an `ep.Param` "
    "(for a hierarchical prior), got complex."
)
_F16 = "0.0999755859375"  # float16(0.1) as the float32 compute dtype holds it


@pytest.mark.parametrize(
    "low, high, error, message",
    [
        (np.nan, 1.0, ValueError, _FINITE.format("low", "nan")),
        (0.0, np.inf, ValueError, _FINITE.format("high", "inf")),
        (True, 2.0, TypeError, _BOOL.format("low", "True")),
        (0.0, np.array([True]), TypeError, _BOOL.format("high", "array([ True])")),
        (1j, 1.0, TypeError, _TYPE.format("low")),
        (0.0, 2j, TypeError, _TYPE.format("high")),
        (np.float16(0.1), np.float16(0.1), ValueError, _ORDER.format(_F16, _F16)),
    ],
)
def test_uniform_hyperparameter_messages_whole(low, high, error, message):
    with _raises_exactly(error, message):
        ep.Uniform(low, high)


_BROADCAST = (
    "`{}` hyperparameters of shapes {} (2,), {} (3,) do not broadcast together. "
    "Give them the same shape, or make one a scalar."
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
        for bad, template in [(1j, _TYPE), (True, _BOOL)]:
            args = list(ok)
            args[i] = bad
            message = template.replace("Uniform", cls.__name__).format(name, "True")
            with _raises_exactly(TypeError, message):
                cls(*args)
    with _raises_exactly(ValueError, _BROADCAST.format(cls.__name__, *names)):
        cls(np.full(2, ok[0]), np.full(3, ok[1] + 1.0))


def test_uniform_bounds_are_checked_when_traced():
    f = jax.jit(lambda lo, hi: ep.Uniform(lo, hi).forward(jnp.zeros((), lo.dtype)))
    assert float(f(jnp.float32(0.0), jnp.float32(2.0))) == 1.0
    traced = "a traced value"
    for lo, hi, message in [
        (1.0, 0.0, _ORDER.format(traced, traced)),
        (1.0, 1.0, _ORDER.format(traced, traced)),
        (-3e38, 3e38, _WIDTH.format(traced, traced)),
    ]:
        with pytest.raises(Exception, match=re.escape(message)):
            jax.block_until_ready(f(jnp.float32(lo), jnp.float32(hi)))


def test_uniform_width_is_checked_in_the_wider_dtype_of_its_bounds():
    big = 3e38
    with jax.enable_x64(True):
        with _raises_exactly(
            ValueError,
            _WIDTH.format("-3.0000000054977558e+38", "3.0000000054977558e+38"),
        ):
            ep.Uniform(np.float32(-big), np.float32(big))
        for low, high in [(np.float32(-big), np.float64(big)), (-big, np.float32(big))]:
            prior = ep.Uniform(low, high)
            assert float(prior.forward(jnp.float64(0.0))) == pytest.approx(
                0.0, abs=1e31
            )


def test_uniform_with_an_abstract_bound_is_checked_later():
    for low, high in [(ep.Param(shape=()), 1.0), (0.0, ep.Param(shape=()))]:
        prior = ep.Uniform(low, high)
        assert isinstance(prior.low, ep.Param | ep.Fixed)
    model = ep.zeros(
        {"x": ep.Param(shape=(), prior=ep.Uniform(ep.Param(shape=()), 5.0))}
    )
    np.testing.assert_allclose(ep.unwrap(model)["x"], 2.5)  # low = 0 from z = 0


_EXTREME = (
    "`LogNormal(mean, sigma)`: `sigma / mean` is too extreme for float32 (the "
    "log-scale sd overflows or vanishes); got mean={}, sigma={}. Use a wider dtype "
    "or a less extreme ratio."
)


def test_lognormal_extreme_ratio_messages_eager_and_traced():
    for mean, sigma, shown in [
        (1.0, 1e-30, ("1.0", "1.0000000031710769e-30")),  # the sd vanishes
        (1e-30, 1e30, ("1.0000000031710769e-30", "1.0000000150474662e+30")),
    ]:
        with _raises_exactly(ValueError, _EXTREME.format(*shown)):
            ep.LogNormal(np.float32(mean), np.float32(sigma))
    make = jax.jit(lambda m, s: ep.LogNormal(m, s))
    prior = make(jnp.float32(3.0), jnp.float32(0.1))  # traced and valid
    assert float(prior.mean.value) == 3.0
    assert float(prior.sigma.value) == pytest.approx(0.1)
    np.testing.assert_allclose(
        float(prior.forward(jnp.float32(0.0))), 3.0 / np.sqrt(1 + (0.1 / 3) ** 2)
    )
    traced = "a traced value"
    forward = jax.jit(lambda m, s: ep.LogNormal(m, s).forward(jnp.zeros(())))
    for mean, sigma in [(1.0, 1e-30), (1e-30, 1e30)]:
        with pytest.raises(Exception, match=re.escape(_EXTREME.format(traced, traced))):
            jax.block_until_ready(forward(jnp.float32(mean), jnp.float32(sigma)))


def test_lognormal_with_an_abstract_hyperparameter_is_checked_later():
    positive = ep.HalfNormal(1.0)  # (a Normal prior is refused: it reaches below 0)
    for mean, sigma in [
        (ep.Param(shape=(), prior=positive), 1.0),
        (1.0, ep.Param(shape=(), prior=positive)),
    ]:
        prior = ep.LogNormal(mean, sigma)
        assert isinstance(prior.mean, ep.Param | ep.Fixed)


def test_has_params_finds_hierarchical_priors_and_freeze_uses_it():
    from eqxpurify._priors import has_params

    assert has_params(ep.Normal(ep.Param(0.0), 1.0))
    assert has_params(ep.LogNormal(1.0, ep.Param(0.5, prior=ep.LogNormal(0.5, 0.1))))
    assert not has_params(ep.Normal(0.0, 1.0))
    assert not has_params(ep.Normal(ep.Fixed(0.0), 1.0))
    model = {"x": ep.Param(1.0, prior=ep.Normal(ep.Param(0.5), 1.0))}
    frozen = ep.freeze(model, lambda m: m["x"])
    params, _ = ep.partition(frozen)
    assert params == {}  # the hyperparameter is frozen with the Param it belongs to
    back = ep.unfreeze(frozen, lambda m: m["x"])
    assert sorted(ep.partition(back)[0]) == ["['x']", "['x'].prior.mean"]


# --------------------------------------------------------------------------------
# Checks that need a fresh Python: several CPU devices, or no jaxtyping hook (the
# suite's hook rejects some bad inputs before the library's own check sees
# them; users without the hook get the library's message). The script imports
# eqxpurify from this checkout (so mutmut's mutants and its active-mutant
# variable reach it too) and prints one JSON object.

ROOT = Path(__file__).resolve().parents[1]
_OUTSIDE: dict[str, dict] = {}


def outside(*parts: str, devices: int = 4) -> dict:
    """Run the script `parts` in a fresh Python with `devices` CPU devices.

    Returns the JSON object it printed last.
    """
    script = "".join(textwrap.dedent(part) for part in parts)
    key = f"{devices}:{script}"
    if key not in _OUTSIDE:
        env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={devices}"
        )
        head = "import json, jax, jax.numpy as jnp, numpy as np, eqxpurify as ep\n"
        proc = subprocess.run(
            [sys.executable, "-c", head + script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        _OUTSIDE[key] = json.loads(proc.stdout.strip().splitlines()[-1])
    return _OUTSIDE[key]


_ERROR_OF = """
def error_of(f):
    try:
        f()
    except Exception as e:
        return [type(e).__name__, str(e)]
    return None
"""

# --------------------------------------------------------------------------------
# `_ravel`: messages pinned whole, numpy leaves, placement on several devices.


def _two():
    return {"a": ep.Param(jnp.zeros(2)), "b": ep.Param(1.0)}


def _raises_exactly(error, message):
    return pytest.raises(error, match="^" + re.escape(message) + "$")


def test_unflatten_count_message():
    latents, unflatten = ep.flatten(_two())
    msg = "`unflatten` expects 2 arrays (one per trainable array of the model), got 1."
    with _raises_exactly(ValueError, msg):
        unflatten(latents[:1])


def test_unflatten_shape_message_whole():
    latents, unflatten = ep.flatten(_two())
    msg = (
        "`unflatten`: array 0 (for `['a']`) must have shape (2,) and dtype "
        f"{_F}, got shape (3,) and dtype int32. For a batch of lists, map the "
        "whole computation over it: `jax.vmap(lambda zs: f(unflatten(zs)))`."
    )
    with _raises_exactly(ValueError, msg):
        unflatten([jnp.zeros(3, jnp.int32), latents[1]])


def _unravel_shape_message(shape):
    msg = (
        "`unravel` expects a 1-d vector of length 3 (the number of trainable "
        f"elements of the model), got shape {shape}."
    )
    if len(shape) > 1:
        msg += (
            " For a batch of vectors, map the whole computation over it, "
            "`jax.vmap(lambda v: f(unravel(v)))(flats)`, or name the draws with "
            "`ep.draws(flats, unravel)`."
        )
    return msg


def test_unravel_length_message_whole():
    flat, unravel = ep.ravel(_two())
    with _raises_exactly(ValueError, _unravel_shape_message((4,))):
        unravel(jnp.zeros(4))


def test_unflatten_and_unravel_messages_without_the_hook():
    latents, unflatten = ep.flatten(_two())
    flat, unravel = ep.ravel(_two())
    unflatten(latents), unravel(flat)  # (in this process too, for mutmut)
    got = outside(
        _ERROR_OF,
        """
        model = {"a": ep.Param(jnp.zeros(2)), "b": ep.Param(1.0)}
        latents, unflatten = ep.flatten(model)
        flat, unravel = ep.ravel(model)
        shapes = [(4,), (), (1, 3), (2, 3)]
        print(json.dumps({
            "unflatten": error_of(lambda: unflatten(jnp.zeros(3))),
            "unravel": error_of(lambda: unravel(jnp.arange(3))),
            "shapes": [error_of(lambda: unravel(jnp.zeros(s))) for s in shapes],
        }))
        """,
        devices=1,
    )
    assert got["unflatten"] == [
        "TypeError",
        "`unflatten` expects the list of arrays that `ep.flatten` returned (or an "
        "update of it), got ArrayImpl.",
    ]
    assert got["unravel"] == [
        "TypeError",
        "`unravel` expects a floating vector, got dtype int32.",
    ]
    shapes = [(4,), (), (1, 3), (2, 3)]
    assert got["shapes"] == [["ValueError", _unravel_shape_message(s)] for s in shapes]


def test_ravel_of_numpy_leaves():
    # Plain numpy floating arrays train too (they have no `.sharding`).
    model = {"p": ep.Param(jnp.array([1.0, 2.0])), "n": np.array([3.0, 4.0], "f4")}
    flat, unravel = ep.ravel(model)
    np.testing.assert_array_equal(flat, [3.0, 4.0, 1.0, 2.0])  # path order
    assert unravel.shardings == (None, None)
    back = unravel(flat + 1)
    np.testing.assert_array_equal(back["n"], [4.0, 5.0])
    assert back["n"].dtype == np.float32


_PLACEMENT = """
from jax.sharding import NamedSharding, PartitionSpec as P
devs = jax.devices()
mesh = jax.make_mesh((4,), ("x",))
sharded = NamedSharding(mesh, P("x"))
model = {
    "w": ep.Param.from_latent(jax.device_put(jnp.arange(8.0), sharded)),
    "b": ep.Param.from_latent(jax.device_put(jnp.ones(()), devs[1])),
    "c": ep.Param(2.0),
}

def where_s(s):
    spec = list(s.spec) if isinstance(s, NamedSharding) else None
    return [sorted(d.id for d in s.device_set), spec]

def where(x):
    return where_s(x.sharding)

flat, unravel = ep.ravel(model)
back = unravel(flat + 1)
print(json.dumps({
    "recorded": [None if s is None else where_s(s) for s in unravel.shardings],
    "placed": {k: where(p.latent) for k, p in back.items()},
    "values": {k: np.asarray(p.latent).tolist() for k, p in back.items()},
}))
"""


def test_unravel_restores_shardings_on_several_devices():
    from eqxpurify._flat import default_device
    from eqxpurify._ravel import _sharding

    flat, unravel = ep.ravel(_two())
    unravel(flat)  # (in this process too, for mutmut)
    # On one device nothing is recorded; called here so that mutmut runs this
    # test (and the subprocess below, which inherits the mutant) for its mutants.
    default = default_device()
    assert _sharding(jax.device_put(jnp.ones(2), jax.devices()[0]), default) is None
    assert _sharding(jnp.ones(2), default) is None
    got = outside(_PLACEMENT)
    # Path order: b, c, w. The committed arrays not on the default device have
    # their placement recorded; `c` goes wherever new arrays go.
    assert got["recorded"] == [[[1], None], None, [[0, 1, 2, 3], ["x"]]]
    assert got["placed"]["w"] == [[0, 1, 2, 3], ["x"]]
    assert got["placed"]["c"] == [[0], None]
    assert got["values"] == {
        "b": 2.0,
        "c": 3.0,
        "w": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    }


def test_unravel_keeps_a_single_device_placement():
    flat, unravel = ep.ravel(_two())
    unravel(flat)
    got = outside(_PLACEMENT)
    assert got["placed"]["b"] == [[1], None]


# --------------------------------------------------------------------------------
# `_filters`: a plain floating array in a field declared a wrapper; the static
# layout's equality (what a jitted step's cache compares).


class _Declared(eqx.Module):
    w: ep.Param
    t: ep.Fixed
    either: ep.Param | ep.Fixed
    plain: jax.Array


class _Outer(eqx.Module):
    layers: list
    table: dict


def _declared(**changes):
    fields = dict(
        w=ep.Param(jnp.ones(2)),
        t=ep.Fixed(jnp.arange(3.0)),
        either=ep.Fixed(jnp.zeros(2)),
        plain=jnp.ones(2),
    )
    fields.update(changes)
    return _Declared(**fields)


def _plain_array_message(caller, path, kinds):
    return (
        f"`{caller}`: the field `{path}` is declared `{kinds}` but holds a plain "
        "floating array, which would train as an ordinary Equinox array. Wrap it: "
        "`eqx.tree_at(where, model, ep.Fixed(array))` for data, `ep.Param(value, "
        "prior=...)` for a parameter, or set a value with `ep.set_value`."
    )


@pytest.mark.parametrize(
    "field, kinds", [("t", "Fixed"), ("w", "Param"), ("either", "Param | Fixed")]
)
def test_plain_array_in_a_declared_field_message(field, kinds):
    model = _declared(**{field: jnp.arange(5.0)})
    with _raises_exactly(TypeError, _plain_array_message("ep.partition", field, kinds)):
        ep.partition(model)
    with _raises_exactly(TypeError, _plain_array_message("ep.ravel", field, kinds)):
        ep.ravel(model)


def test_plain_array_in_a_nested_declared_field_names_its_path():
    inner = _declared(t=jnp.arange(5.0))
    for model, path in [
        (_Outer([_declared(), inner], {}), "layers[1].t"),
        (_Outer([], {"b": _declared(), "c": inner}), "table['c'].t"),
        ({"m": [inner]}, "['m'][0].t"),
    ]:
        msg = _plain_array_message("ep.partition", path, "Fixed")
        with _raises_exactly(TypeError, msg):
            ep.partition(model)


def test_plain_arrays_where_no_wrapper_is_declared_train():
    for model, names in [
        (_declared(), ["plain", "w"]),
        (jnp.ones(3), ["<model>"]),
        ({"a": jnp.ones(2), "b": [jnp.ones(1)]}, ["['a']", "['b'][0]"]),
        (_Outer([jnp.ones(2)], {"k": jnp.ones(1)}), ["layers[0]", "table['k']"]),
    ]:
        params, rest = ep.partition(model)
        assert sorted(params) == names
        assert eqx.tree_equal(ep.combine(params, rest), model)


class _Act(eqx.Module):
    w: ep.Param
    act: str = eqx.field(static=True)

    @ep.unwrapped
    def __call__(self):
        return jnp.tanh(self.w) if self.act == "tanh" else jnp.square(self.w)


def test_layout_equality_is_what_a_jitted_step_caches_on():
    traces = []

    @jax.jit
    def value(params, rest):
        traces.append(None)
        return ep.combine(params, rest)()

    w = jnp.array([0.5, 2.0])
    a = ep.partition(_Act(ep.Param(w), "tanh"))
    a2 = ep.partition(_Act(ep.Param(w + 1), "tanh"))
    b = ep.partition(_Act(ep.Param(w), "square"))
    assert a[1].layout == a[1].layout
    assert a[1].layout == a2[1].layout and a[1].layout is not a2[1].layout
    assert a[1].layout != b[1].layout  # same hash, other static values
    assert hash(a[1].layout) == hash(b[1].layout)
    assert a[1].layout != "a layout"
    np.testing.assert_allclose(value(*a), np.tanh(w), rtol=1e-6)
    np.testing.assert_allclose(value(*a2), np.tanh(w + 1), rtol=1e-6)
    assert len(traces) == 1  # an equal layout: the cached program
    np.testing.assert_allclose(value(*b), np.square(w), rtol=1e-6)
    assert len(traces) == 2
    c = ep.partition(_Act(ep.Param(jnp.ones(3)), "tanh"))  # another shape
    assert hash(a[1].layout) != hash(c[1].layout)  # the hash reads the structure


class _CountsPrior(ep.AbstractPrior):
    """A custom prior with a non-wrapper field: an integer array, or a sub-prior."""

    shift: ep.Fixed
    extra: object

    def __init__(self, extra):
        self.shift, self.extra = ep.Fixed(1.0), extra

    @ep.unwrapped
    def forward(self, z):
        return z + self.shift

    @ep.unwrapped
    def inverse(self, x):
        return x - self.shift

    @ep.unwrapped
    def log_prob(self, x):
        return -0.5 * (x - self.shift) ** 2


def test_split_keeps_exactly_the_constant_pieces_whole():
    # `split_model` moves constant Fixed data and constant priors as one piece;
    # anything holding a trainable, abstract or frozen-from-a-Param part is walked.
    from eqxpurify._filters import _constant_test

    frozen = ep.freeze(
        {"x": ep.Param(1.0, prior=ep.Normal(2.0, 3.0))}, lambda m: m["x"]
    )
    cases = [
        (ep.Fixed(jnp.ones(2)), True),
        (ep.Fixed(jnp.arange(3)), True),
        (ep.Fixed(shape=(2,)), False),  # abstract: nothing stored yet
        (frozen["x"], False),  # frozen from a Param: it has a prior
        (ep.Param(1.0), False),
        (ep.Normal(0.0, 2.0), True),
        (ep.Normal(ep.Param(0.5), 1.0), False),  # hierarchical
        (_CountsPrior(jnp.arange(3)), True),  # integer arrays do not train
        (_CountsPrior(ep.Normal(0.0, 1.0)), True),  # a constant sub-prior
        (_CountsPrior(ep.Normal(ep.Param(0.0), 1.0)), False),
        (jnp.ones(2), False),
        ({"a": ep.Fixed(1.0)}, False),  # containers are walked into
        (None, False),
    ]
    for node, whole in cases:
        # a fresh predicate, and one that has seen every case before (memo by id)
        assert _constant_test()[0](node) is whole, node
    constant = _constant_test()[0]
    for _ in range(2):
        assert [constant(node) for node, _ in cases] == [w for _, w in cases]


def test_a_number_in_a_latent_of_a_known_structure_is_found():
    # The same structure as a checked model (a number is a leaf like an array), so
    # the per-structure check is skipped: the split must still find it.
    model = {"w": ep.Param(jnp.ones(2)), "t": ep.Fixed(1.0)}
    bad = eqx.tree_at(lambda m: m["w"].latent, model, 5.0)
    for call, split in [("ep.partition", ep.partition), ("ep.ravel", ep.ravel)]:
        split(model)
        msg = (
            f"`{call}`: the Param at `['w']` has a latent of type float, not an "
            "array, so it would silently drop out of training. Set Params with "
            "`ep.set_value(model, where, value)` (physical value) or replace the "
            "whole node: `eqx.tree_at(where, model, ep.Param(value, prior=...))`."
        )
        with _raises_exactly(TypeError, msg):
            split(bad)


def test_rest_repr_counts_its_arrays():
    model = {"a": ep.Param(jnp.ones(2)), "t": ep.Fixed(jnp.ones(3)), "i": jnp.arange(2)}
    params, rest = ep.partition(model)
    # other arrays: `t`'s data, `i`, and the default prior's mean and scale
    assert repr(rest) == "Rest(<1 trainable, 4 other arrays>)"


def test_combine_makes_arrays_of_numbers():
    model = {
        "a": ep.Param(jnp.ones(())),
        "b": ep.Param(0.5),
        "h": ep.Param(jnp.ones((), jnp.float16)),
    }
    params, rest = ep.partition(model)
    out = ep.combine({"['a']": 2.0, "['b']": np.float64(1.5), "['h']": 0.25}, rest)
    for name, want, dtype in [("a", 2.0, _F), ("b", 1.5, _F), ("h", 0.25, "float16")]:
        latent = out[name].latent
        assert isinstance(latent, jax.Array) and latent.dtype == jnp.dtype(dtype)
        assert float(latent) == want


# --------------------------------------------------------------------------------
# `_init`: each entry point names itself in errors; log_prior / log_prob values
# and dtypes (also under x64, where the default float is float64).

_INIT_CALLS = {
    "ep.shapes": ep.shapes,
    "ep.zeros": ep.zeros,
    "ep.normal": lambda m: ep.normal(m, key=jax.random.key(0)),
    "ep.log_prior": ep.log_prior,
    "ep.log_prob": ep.log_prob,
}


@pytest.mark.parametrize("caller", list(_INIT_CALLS))
def test_init_errors_name_their_caller(caller):
    call = _INIT_CALLS[caller]
    number = eqx.tree_at(lambda m: m.t, _declared(), 5.0)
    msg = (
        f"`{caller}`: the field `t` is declared `Fixed` but holds a float, so it "
        "would silently drop out of training. Set a physical value with "
        "`ep.set_value(model, where, value)`, or replace the node with a wrapper: "
        "`eqx.tree_at(where, model, ep.Param(value, prior=...))` (or "
        "`ep.Fixed(value)` for data)."
    )
    with _raises_exactly(TypeError, msg):
        call(number)
    latent = eqx.tree_at(lambda m: m.w.latent, _declared(), 3.0)
    msg = (
        f"`{caller}`: the Param at `w` has a latent of type float, not an array, "
        "so it would silently drop out of training. Set Params with "
        "`ep.set_value(model, where, value)` (physical value) or replace the whole "
        "node: `eqx.tree_at(where, model, ep.Param(value, prior=...))`."
    )
    with _raises_exactly(TypeError, msg):
        call(latent)


@pytest.mark.parametrize("caller", ["ep.log_prior", "ep.log_prob"])
def test_log_density_of_an_abstract_model_names_the_caller(caller):
    model = {"a": ep.Param(1.0), "b": [ep.Param(shape=(2,))]}
    msg = (
        f"`{caller}`: the Param at `['b'][0]` is abstract (shape (2,), no value "
        "yet). Initialise it first: `model = ep.normal(model, key=key)` or "
        "`model = ep.zeros(model)`."
    )
    with _raises_exactly(ValueError, msg):
        _INIT_CALLS[caller](model)


def _density_model(dtype=jnp.float32):
    tau = ep.Param(jnp.asarray(0.8, dtype), prior=ep.HalfNormal(2.0))
    return {
        "x": ep.Param(jnp.asarray([0.5, -1.0], dtype), prior=ep.Normal(1.0, 2.0)),
        "y": ep.Param(jnp.asarray(2.5, dtype), prior=ep.LogNormal(3.0, 1.0)),
        "theta": ep.Param(jnp.asarray([0.1, 0.2], dtype), prior=ep.Normal(0.0, tau)),
    }


def _scipy_log_prob():
    import scipy.stats as st

    s2 = math.log1p((1.0 / 3.0) ** 2)
    return float(
        st.norm(1.0, 2.0).logpdf([0.5, -1.0]).sum()
        + st.lognorm(s=math.sqrt(s2), scale=3.0 * math.exp(-s2 / 2)).logpdf(2.5)
        + st.halfnorm(scale=2.0).logpdf(0.8)
        + st.norm(0.0, 0.8).logpdf([0.1, 0.2]).sum()
    )


def _scipy_log_prior(model):
    latents = np.concatenate(
        [np.ravel(np.asarray(z, np.float64)) for z in ep.flatten(model)[0]]
    )
    return float(-0.5 * np.sum(latents**2) - 0.5 * latents.size * math.log(2 * math.pi))


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_log_prob_and_log_prior_values_and_dtypes(dtype):
    with jax.enable_x64(True):
        model = _density_model(jnp.dtype(dtype))
        want = {"float64": "float64"}.get(dtype, "float32")  # at least float32
        lp = ep.log_prob(model)
        assert lp.dtype == want and lp.shape == ()
        prior = ep.log_prior(model)
        assert prior.dtype == want and prior.shape == ()
        if dtype != "bfloat16":
            rtol = 1e-12 if dtype == "float64" else 1e-5
            np.testing.assert_allclose(lp, _scipy_log_prob(), rtol=rtol)
            np.testing.assert_allclose(prior, _scipy_log_prior(model), rtol=rtol)
        # Jitted: the same.
        np.testing.assert_allclose(jax.jit(ep.log_prob)(model), lp, rtol=1e-6)


@pytest.mark.parametrize("x64", [False, True])
def test_log_densities_of_an_empty_model_are_float32_zeros(x64):
    with jax.enable_x64(x64 or X64):
        for f in (ep.log_prior, ep.log_prob):
            for model in ({}, {"t": ep.Fixed(jnp.ones(2))}):
                value = f(model)
                assert value.dtype == jnp.float32 and value.shape == ()
                assert float(value) == 0.0


_REST_MESSAGE = (
    "Got the `rest` half of `ep.partition`, not a model. Rebuild the model with "
    "`ep.combine(params, rest)` first (e.g. inside the loss: "
    "`ep.unwrap(ep.combine(params, rest))`)."
)


@pytest.mark.parametrize("call", [ep.partition, ep.ravel, ep.flatten])
def test_split_refuses_a_rest_or_a_class(call):
    _, rest = ep.partition(_two())
    with _raises_exactly(TypeError, _REST_MESSAGE):
        call(rest)
    msg = (
        "`model` must be a model instance, but got the class `_Declared` itself. "
        "Construct it first, e.g. `_Declared(...)`."
    )
    with _raises_exactly(TypeError, msg):
        call(_Declared)


def _mismatch_message(parts):
    return (
        f"`ep.combine(params, rest)`: `params` does not match `rest` ({parts}). "
        "Both must come from the same `ep.partition(model)` call (an optimizer "
        "update keeps the keys of `params`)."
    )


def test_combine_mismatch_messages_whole():
    model = {k: ep.Param(float(i)) for i, k in enumerate("abcdefg")}
    params, rest = ep.partition(model)
    # Same number of entries, one key renamed.
    renamed = dict(params)
    renamed["['z']"] = renamed.pop("['c']")
    with _raises_exactly(
        ValueError, _mismatch_message("missing `['c']`; unknown `['z']`")
    ):
        ep.combine(renamed, rest)
    # At most five names are listed.
    few = {k: v for k, v in params.items() if k == "['a']"}
    listed = ", ".join(f"`['{k}']`" for k in "bcdef")
    with _raises_exactly(ValueError, _mismatch_message(f"missing {listed}")):
        ep.combine(few, rest)
    many = dict(params, **{f"['x{i}']": jnp.zeros(()) for i in range(7)})
    listed = ", ".join(f"`['x{i}']`" for i in range(5))
    with _raises_exactly(ValueError, _mismatch_message(f"unknown {listed}")):
        ep.combine(many, rest)


def test_combine_type_messages_without_the_hook():
    params, rest = ep.partition(_two())
    ep.combine(params, rest)  # (in this process too, for mutmut)
    got = outside(
        _ERROR_OF,
        """
        params, rest = ep.partition({"a": ep.Param(jnp.zeros(2)), "b": ep.Param(1.0)})
        print(json.dumps({
            "rest": error_of(lambda: ep.combine(params, {"not": "rest"})),
            "params": error_of(lambda: ep.combine([1.0], rest)),
        }))
        """,
        devices=1,
    )
    assert got["rest"] == [
        "TypeError",
        "`ep.combine(params, rest)`: `rest` must be the second result of "
        "`ep.partition(model)`, got dict.",
    ]
    assert got["params"] == [
        "TypeError",
        "`ep.combine(params, rest)`: `params` must be the dict returned by "
        "`ep.partition(model)` (or an update of it), got list.",
    ]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32", "float64"])
def test_combine_casts_updates_back_to_each_dtype(dtype):
    with jax.enable_x64(True):
        model = {
            "p": ep.Param(jnp.asarray([1.0, 2.0], dtype)),
            "q": ep.Param(jnp.asarray(0.5, "float32")),
        }
        params, rest = ep.partition(model)
        other = "float32" if dtype != "float32" else "float64"
        updated = {k: v.astype(other) + 1 for k, v in params.items()}
        back = ep.combine(updated, rest)
        assert back["p"].latent.dtype == jnp.dtype(dtype)
        assert back["q"].latent.dtype == jnp.float32
        np.testing.assert_array_equal(
            np.asarray(back["p"].latent, np.float64), [2.0, 3.0]
        )


_INIT_PLACEMENT = """
from jax.sharding import NamedSharding, PartitionSpec as P
devs = jax.devices()
mesh = jax.make_mesh((4,), ("x",))
rows = NamedSharding(mesh, P("x"))
pair = NamedSharding(jax.make_mesh((2,), ("y",), devices=devs[2:]), P("y"))
model = {
    "u": ep.Param(shape=(8,)),
    "v": ep.Param.from_latent(jax.device_put(jnp.zeros(8), devs[2])),
    "w": ep.Param(shape=(8,), sharding=rows),
    "x": ep.Param(shape=(4,), dtype=jnp.bfloat16, sharding=pair),
}
key = jax.random.key(3)

def where(x):
    s = x.sharding
    spec = list(s.spec) if isinstance(s, NamedSharding) else None
    return [sorted(d.id for d in s.device_set), spec]

def want(j, shape, dtype):
    z = jax.random.normal(jax.random.fold_in(key, j), shape, jnp.float32)
    return np.asarray(z.astype(dtype), np.float64).tolist()

drawn = ep.normal(model, key=key)
jitted = jax.jit(lambda k: ep.normal(model, key=k))(key)
zeros = ep.zeros(model)
structs = ep.shapes(drawn)
from eqxpurify._init import _sharded_draw
print(json.dumps({
    "sharded_draws": _sharded_draw.cache_info().currsize,
    "u_committed": drawn["u"].latent.committed,
    "drawn": {k: where(p.latent) for k, p in drawn.items()},
    "values": {k: np.asarray(p.latent, np.float64).tolist() for k, p in drawn.items()},
    "jitted": {k: np.asarray(p.latent, np.float64).tolist() for k, p in jitted.items()},
    "want": {
        "u": want(0, (8,), jnp.float32),
        "v": want(1, (8,), jnp.float32),
        "w": want(2, (8,), jnp.float32),
        "x": want(3, (4,), jnp.bfloat16),
    },
    "dtypes": {k: str(p.latent.dtype) for k, p in drawn.items()},
    "zeros": {k: where(p.latent) for k, p in zeros.items()},
    "zero_values": {
        k: np.asarray(p.latent, np.float64).tolist() for k, p in zeros.items()
    },
    "zero_dtypes": {k: str(p.latent.dtype) for k, p in zeros.items()},
    "structs": {
        k: None if p.latent.sharding is None else where(p.latent)
        for k, p in structs.items()
    },
}))
"""


def test_normal_zeros_shapes_place_each_latent_on_several_devices():
    model = {"u": ep.Param(shape=(8,)), "x": ep.Param(shape=(4,))}
    ep.shapes(ep.zeros(ep.normal(model, key=jax.random.key(3))))  # (for mutmut)
    got = outside(_INIT_PLACEMENT)
    placed = {
        "u": [[0], None],
        "v": [[2], None],
        "w": [[0, 1, 2, 3], ["x"]],
        "x": [[2, 3], ["y"]],
    }
    assert got["drawn"] == placed
    assert got["zeros"] == placed
    # (u, drawn in one group with the committed v, comes back committed to the
    # default device, so its struct may record that device.)
    assert {k: got["structs"][k] for k in "vwx"} == {k: placed[k] for k in "vwx"}
    assert got["structs"]["u"] in (None, [[0], None])
    # Latent j is normal(fold_in(key, j)), whatever the route and the placement.
    assert got["values"] == got["want"]
    assert got["jitted"] == got["want"]
    dtypes = {"u": "float32", "v": "float32", "w": "float32", "x": "bfloat16"}
    assert got["dtypes"] == dtypes and got["zero_dtypes"] == dtypes
    assert got["zero_values"] == {k: [0.0] * (4 if k == "x" else 8) for k in "uvwx"}
    # w and x (spanning devices) are drawn in their shards, by one compiled draw
    # each; u and v (one device each) are drawn together.
    assert got["sharded_draws"] == 2


def test_normal_leaves_an_uncommitted_latent_uncommitted_on_several_devices():
    ep.normal({"u": ep.Param(shape=(8,))}, key=jax.random.key(3))
    assert outside(_INIT_PLACEMENT)["u_committed"] is False


def test_draw_one_makes_the_same_numbers():
    # The sharded route (several devices only, checked above in a subprocess),
    # called here on one device so that mutmut runs that check for its mutants.
    from eqxpurify._init import _draw_one

    key = jax.random.key(5)
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    for shape, dtype in [((3,), jnp.float32), ((2, 2), jnp.bfloat16)]:
        got = _draw_one(key, np.uint32(4), shape, dtype, one)
        want = jax.random.normal(jax.random.fold_in(key, 4), shape, jnp.float32)
        assert got.dtype == dtype and got.shape == shape
        np.testing.assert_array_equal(got, want.astype(dtype))
    assert outside(_INIT_PLACEMENT)["sharded_draws"] == 2


def test_normal_draws_in_float32_at_least_under_x64():
    with jax.enable_x64(True):
        model = {"a": ep.Param(shape=(3,), dtype=jnp.float32), "b": ep.Param(shape=())}
        key = jax.random.key(2)
        drawn = ep.normal(model, key=key)
        want_a = jax.random.normal(jax.random.fold_in(key, 0), (3,), jnp.float32)
        want_b = jax.random.normal(jax.random.fold_in(key, 1), (), jnp.float64)
        assert drawn["a"].latent.dtype == jnp.float32
        np.testing.assert_array_equal(drawn["a"].latent, want_a)
        assert drawn["b"].latent.dtype == jnp.float64
        np.testing.assert_array_equal(drawn["b"].latent, want_b)


def test_whole_model_operations_on_traced_latents():
    model = ep.normal(
        {"a": ep.Param(shape=(3,)), "t": ep.Fixed(jnp.ones(2))}, key=jax.random.key(0)
    )

    @jax.jit
    def redraw(m):
        again = ep.normal(m, key=jax.random.key(1))
        return again, ep.zeros(m), ep.shapes(m)["a"].latent.shape

    again, zeros, shape = redraw(model)
    want = jax.random.normal(jax.random.fold_in(jax.random.key(1), 0), (3,))
    np.testing.assert_array_equal(again["a"].latent, want.astype(DEFAULT_FLOAT))
    np.testing.assert_array_equal(zeros["a"].latent, np.zeros(3))
    assert shape == (3,)


def _none_latent_model():
    class Fresh(eqx.Module):  # a structure no other test has partitioned
        w: ep.Param
        t: ep.Fixed

    model = Fresh(ep.Param(jnp.ones(2)), ep.Fixed(jnp.ones(3)))
    return eqx.tree_at(lambda m: m.w.latent, model, None, is_leaf=lambda x: x is None)


@pytest.mark.parametrize("call", ["ep.partition", "ep.ravel", "ep.flatten"])
def test_split_finds_a_latent_set_to_none_the_first_time(call):
    msg = (
        f"`{call}`: the Param at `w` has a latent of type NoneType, not an array, "
        "so it would silently drop out of training. Set Params with "
        "`ep.set_value(model, where, value)` (physical value) or replace the whole "
        "node: `eqx.tree_at(where, model, ep.Param(value, prior=...))`."
    )
    model = _none_latent_model()
    split = {"ep.partition": ep.partition, "ep.ravel": ep.ravel}.get(call, ep.flatten)
    for _ in range(2):  # the first time and again (the check is cached per structure)
        with _raises_exactly(TypeError, msg):
            split(model)


def test_split_checks_many_structures():
    # More structures than the check's cache holds: older ones are evicted.
    for n in range(80):
        params, rest = ep.partition({f"k{i}": ep.Param(float(i)) for i in range(n)})
        assert len(params) == n
    with pytest.raises(TypeError, match=r"`w` has a latent of type NoneType"):
        ep.partition(_none_latent_model())


def test_partition_names_itself_for_a_number_in_a_declared_field():
    number = eqx.tree_at(lambda m: m.t, _declared(), 5.0)
    msg = (
        "`ep.partition`: the field `t` is declared `Fixed` but holds a float, so it "
        "would silently drop out of training. Set a physical value with "
        "`ep.set_value(model, where, value)`, or replace the node with a wrapper: "
        "`eqx.tree_at(where, model, ep.Param(value, prior=...))` (or "
        "`ep.Fixed(value)` for data)."
    )
    with _raises_exactly(TypeError, msg):
        ep.partition(number)


@pytest.mark.parametrize(
    "model, path, shape",
    [
        ({"b": [ep.Param(shape=(2, 3))]}, "['b'][0]", "(2, 3)"),
        ({"a": {"b": {"c": ep.Param(shape=(4,))}}}, "['a']['b']['c']", "(4,)"),
        ({"w": ep.Param(shape=(5,))}, "['w']", "(5,)"),
    ],
)
def test_partition_of_an_abstract_param_names_its_path(model, path, shape):
    msg = (
        f"`ep.partition`: the Param at `{path}` is abstract (shape {shape}, no "
        "value yet). Initialise it first: `model = ep.normal(model, key=key)` or "
        "`model = ep.zeros(model)`."
    )
    with _raises_exactly(ValueError, msg):
        ep.partition(model)


# --------------------------------------------------------------------------------
# `ep.draws`: physical values by path for batches of latent vectors.


def _draws_model():
    tau = ep.Param(1.5, prior=ep.HalfNormal(2.0))
    return {
        "mu": ep.Param(0.5, prior=ep.Normal(1.0, 2.0)),
        "theta": ep.Param(jnp.array([0.1, -0.2]), prior=ep.Normal(0.0, tau)),
        "x": ep.Fixed(jnp.arange(3.0)),
    }


@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
def test_draws_are_the_values_of_each_vector(batch):
    model = _draws_model()
    flat, unravel = ep.ravel(model)
    n = flat.shape[0]
    samples = jax.random.normal(jax.random.key(0), (*batch, n), flat.dtype)
    got = ep.draws(samples, unravel)
    assert sorted(got) == ["['mu']", "['theta']", "['theta'].prior.sigma"]
    vectors = np.asarray(samples).reshape(-1, n)
    for path, shape in [
        ("['mu']", ()),
        ("['theta']", (2,)),
        ("['theta'].prior.sigma", ()),
    ]:
        assert got[path].shape == (*batch, *shape)
        want = np.stack(
            [np.asarray(ep.values(unravel(jnp.asarray(v)))[path]) for v in vectors]
        ).reshape((*batch, *shape))
        np.testing.assert_allclose(got[path], want, rtol=1e-6)
    with_fixed = ep.draws(samples, unravel, filter_spec=ep.is_wrapper)
    assert sorted(with_fixed) == sorted([*got, "['x']"])
    assert with_fixed["['x']"].shape == (*batch, 3)
    np.testing.assert_array_equal(
        np.asarray(with_fixed["['x']"]).reshape(-1, 3)[-1], [0.0, 1.0, 2.0]
    )


def test_draws_needs_a_last_axis_of_latents():
    _, unravel = ep.ravel(_draws_model())
    msg = "`ep.draws`: `samples` must have a last axis of latents."
    got = outside(
        _ERROR_OF,
        """
        model = {"mu": ep.Param(0.5)}
        flat, unravel = ep.ravel(model)
        scalar = error_of(lambda: ep.draws(jnp.zeros(()), unravel))
        print(json.dumps({"scalar": scalar}))
        """,
        devices=1,
    )
    ep.draws(jnp.zeros((1, 4)), unravel)  # (in this process too, for mutmut)
    assert got["scalar"] == ["ValueError", msg]


# --------------------------------------------------------------------------------
# `_intermediates/_primitive`: the missing-internal error, whole; each missing
# internal recorded once.


def _internals_message(user, internal, problem):
    from eqxpurify._intermediates._primitive import TESTED_JAX

    return (
        f"{user} needs the JAX internal `{internal}`, which this JAX "
        f"({jax.__version__}) does not provide ({problem}). eqxpurify's taps are "
        f"tested with {TESTED_JAX}: install a JAX in that range, or an eqxpurify "
        "release that supports this JAX."
    )


def test_missing_internal_message_whole(monkeypatch):

    ad = importlib.import_module("jax.interpreters.ad")
    monkeypatch.delattr(ad, "primitive_jvps")
    package, primitive = _fresh(monkeypatch)
    assert [m[1] for m in primitive._MISSING] == ["jax.interpreters.ad.primitive_jvps"]
    msg = _internals_message(
        "A tap",
        "jax.interpreters.ad.primitive_jvps",
        "AttributeError: module 'jax.interpreters.ad' has no attribute "
        "'primitive_jvps'",
    )
    with _raises_exactly(primitive.JaxInternalsError, msg):
        package.intermediate(jnp.ones(2), name="x")


def test_rule_table_refusing_a_rule_message_whole(monkeypatch):

    batching = importlib.import_module("jax.interpreters.batching")
    monkeypatch.setattr(batching, "primitive_batchers", types.MappingProxyType({}))
    package, primitive = _fresh(monkeypatch)
    assert len(primitive._MISSING) == 1
    msg = _internals_message(
        "A tap",
        "jax.interpreters.batching.primitive_batchers",
        "TypeError: 'mappingproxy' object does not support item assignment",
    )
    with _raises_exactly(primitive.JaxInternalsError, msg):
        package.intermediate(jnp.ones(2), name="x")


def test_changed_tracers_and_equations_are_our_error():
    # What a JAX whose partial-evaluation tracers or jaxpr equations lost an
    # attribute would hand the rules: the error names the internal, whole.

    from eqxpurify._intermediates import _primitive

    def message(user, internal, problem):
        return _internals_message(user, internal, f"AttributeError: {problem}")

    no_pval = "'object' object has no attribute 'pval'"
    with _raises_exactly(
        _primitive.JaxInternalsError,
        message("A tap", "partial evaluation tracers", no_pval),
    ):
        _primitive._partial_eval(None, object(), name="x", kind="tap", axes=())
    eqn = types.SimpleNamespace(params={})
    no_primitive = "'types.SimpleNamespace' object has no attribute 'primitive'"
    with _raises_exactly(
        _primitive.JaxInternalsError,
        message("`ep.intermediates`", "jaxpr equations", no_primitive),
    ):
        _primitive.bind_eqn(eqn, [])


def test_harvest_keeps_name_scopes_and_source_lines():
    # The harvester re-issues every equation where it was: its name scope and
    # its source line reach the compiled program's debug information.

    def f(x):
        with jax.named_scope("physics"):
            y = jnp.sin(x) * 2.0
        return ep.intermediate(y, name="y") + 1.0

    sin_line = inspect.getsourcelines(f)[1] + 2
    text = jax.jit(ep.intermediates(f)).lower(jnp.ones(3)).as_text(debug_info=True)
    assert re.search(r'loc\("[^"]*/physics/sin"', text), text
    assert re.search(rf'test_mutants.py":{sin_line}:', text), text


def test_missing_harvest_internal_message_whole(monkeypatch):

    pe = importlib.import_module("jax.interpreters.partial_eval")
    monkeypatch.delattr(pe, "dce_rules")
    package, primitive = _fresh(monkeypatch)
    msg = _internals_message(
        "`ep.intermediates`",
        "jax.interpreters.partial_eval.dce_rules",
        "AttributeError: module 'jax.interpreters.partial_eval' has no attribute "
        "'dce_rules'",
    )
    f = package.intermediates(lambda x: package.intermediate(x * 2, name="y"))
    with _raises_exactly(primitive.JaxInternalsError, msg):
        f(jnp.ones(2))


# --------------------------------------------------------------------------------
# `_intermediates/_harvest`: what a harvest re-issues keeps its parameters; taps
# inside a `jax.custom_jvp` function under forward-mode autodiff.


@pytest.mark.parametrize("prevent_cse", [True, False])
def test_harvest_keeps_checkpoint_policy_and_cse(prevent_cse):
    policy = jax.checkpoint_policies.nothing_saveable

    def f(x):
        ckpt = jax.checkpoint(
            lambda y: ep.intermediate(jnp.sin(y), name="s") * 2,
            prevent_cse=prevent_cse,
            policy=policy,
        )
        return ckpt(x).sum()

    jaxpr = jax.make_jaxpr(ep.intermediates(f))(jnp.ones(3))
    (eqn,) = [e for e in jaxpr.eqns if "prevent_cse" in e.params]
    assert eqn.params["prevent_cse"] is prevent_cse
    assert eqn.params["policy"] is policy


def test_taps_inside_custom_jvp_under_jvp():
    @jax.custom_jvp
    def g(x):
        ep.intermediate(jnp.argmax(x), name="i")  # an integer: a float0 tangent
        ep.intermediate(x * 2, name="d")
        return jnp.sin(x)

    g.defjvp(lambda p, t: (g(p[0]), jnp.cos(p[0]) * t[0]))
    harvested = ep.intermediates(lambda x: g(x).sum())
    x = jnp.arange(3.0)
    (out, taps), (dout, dtaps) = jax.jvp(harvested, (x,), (jnp.ones(3),))
    np.testing.assert_allclose(out, np.sin(np.arange(3.0)).sum(), rtol=1e-6)
    np.testing.assert_allclose(dout, np.cos(np.arange(3.0)).sum(), rtol=1e-6)
    assert int(taps["i"]) == 2 and taps["i"].dtype == jnp.argmax(x).dtype
    np.testing.assert_allclose(taps["d"], 2 * np.arange(3.0))
    # tapped values carry no derivative: zeros of their own type
    assert dtaps["d"].shape == (3,) and not np.any(np.asarray(dtaps["d"]))
    assert dtaps["i"].dtype == jax.dtypes.float0 and dtaps["i"].shape == ()


def test_combine_keeps_shape_placeholders():
    # Abstract params (as a checkpoint library restores into) pass through as they
    # are, to be filled in later.
    params, rest = ep.partition({"a": ep.Param(jnp.ones(2)), "b": ep.Param(0.5)})
    abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in params.items()}
    out = ep.combine(abstract, rest)
    assert out["a"].latent is abstract["['a']"] and out["b"].latent is abstract["['b']"]


def test_cond_branches_recording_a_tap_differently_messages():

    def dtypes(x, i):
        return lax.switch(
            i,
            [
                lambda y: ep.intermediate(jnp.sum(y), name="t"),
                lambda y: ep.intermediate(
                    jnp.sum(y).astype(jnp.int32), name="t"
                ).astype(y.dtype),
            ],
            x,
        )

    f32, i32 = jnp.ones(2).dtype, jnp.sum(jnp.ones(2)).astype(jnp.int32).dtype
    msg = (
        "Cannot harvest `t`: the branches of a `lax.cond`/`lax.switch` record it "
        f"with different shapes, dtypes or kinds (((), dtype('{f32}')) in branch 0, "
        f"((), dtype('{i32}')) in branch 1). Record values of one shape and dtype "
        "in every branch."
    )
    with _raises_exactly(ValueError, msg):
        ep.intermediates(dtypes)(jnp.ones(2), 0)

    def one_branch(x, p):
        return lax.cond(p, lambda y: ep.intermediate(y * 2, name="t"), lambda y: y, x)

    with pytest.raises(ValueError, match=r"recorded in only one branch of a `lax.co"):
        ep.intermediates(one_branch)(jnp.ones(2), True)


def test_taps_of_a_custom_jvp_function_are_bound_once_under_jvp():
    # The harvest of a function re-binds its taps once (for a harvest of a function
    # that calls it), not once more in the derivative rule.
    @jax.custom_jvp
    def g(x):
        ep.intermediate(x * 2, name="d")
        return jnp.sin(x)

    g.defjvp(lambda p, t: (g(p[0]), jnp.cos(p[0]) * t[0]))
    inner = ep.intermediates(lambda x: ep.intermediate(g(x), name="after").sum())
    x = jnp.arange(3.0)
    jaxpr = jax.make_jaxpr(lambda x: jax.jvp(inner, (x,), (jnp.ones(3),)))(x)
    text = str(jaxpr)
    assert text.count("intermediate[") == 2, jaxpr  # `d` and, after the rule, `after`
    assert "name=d" in text and "name=after" in text


def test_normal_defaults_to_the_standard_normal():
    prior = ep.Normal()
    assert float(prior.mean.value) == 0.0 and float(prior.sigma.value) == 1.0
    assert float(ep.Normal(2.0).sigma.value) == 1.0


def test_tap_in_a_while_loop_message_whole():

    def f(x, n):
        def body(c):
            return ep.intermediate(c[0] * 2, name="w"), c[1] + 1

        return lax.while_loop(lambda c: c[1] < n, body, (x, 0))[0]

    msg = (
        "Cannot harvest `w`: it is inside a `lax.while_loop` (or a `lax.fori_loop` "
        "with traced bounds), whose number of steps is not known when tracing, so "
        "its values cannot be stacked. Use `lax.scan` or `lax.fori_loop` with "
        "Python-int bounds, move the tap out of the loop, or leave it out of the "
        "harvest with `names=`."
    )
    with _raises_exactly(ValueError, msg):
        ep.intermediates(f)(jnp.ones(2), jnp.int32(3))
    with _raises_exactly(ValueError, msg):  # named in the harvest
        ep.intermediates(f, names=["w"])(jnp.ones(2), jnp.int32(3))
    out, values = ep.intermediates(f, names=[])(jnp.ones(2), jnp.int32(3))
    np.testing.assert_allclose(out, 8.0)  # left out of the harvest: it runs
    assert values == {}


def test_tap_in_an_opaque_primitive_message_whole():
    from jax.custom_batching import custom_vmap

    @custom_vmap
    def h(x):
        return ep.intermediate(jnp.sin(x), name="v") * 2

    h.def_vmap(lambda axis_size, in_batched, x: (h(x), in_batched[0]))
    msg = (
        "Cannot harvest `v`: it is inside a `custom_vmap_call` primitive, which "
        "`ep.intermediates` cannot look inside. Move the tap out of it, or leave it "
        "out of the harvest with `names=`."
    )
    with _raises_exactly(ValueError, msg):
        ep.intermediates(h)(jnp.ones(2))


def test_harvest_keeps_scan_unroll():

    def f(x):
        step = lambda c, xi: (ep.intermediate(c + xi, name="c"), None)  # noqa: E731
        return lax.scan(step, 0.0, x, unroll=2)[0]

    jaxpr = jax.make_jaxpr(ep.intermediates(f))(jnp.ones(4))
    assert [e.params["unroll"] for e in jaxpr.eqns if "unroll" in e.params] == [2]


def test_tap_of_a_transposed_value_message_whole():
    f = lambda x: ep.intermediate(x * 2, name="lin") * 3  # noqa: E731
    transposed = lambda ct: jax.linear_transpose(f, jnp.ones(2))(ct)  # noqa: E731
    msg = (
        "Cannot harvest `lin`: it taps a tangent (e.g. in the JVP rule of a "
        "`jax.custom_jvp`) or the input of a linear function, and transposition "
        "(`jax.grad`, `jax.vjp`, `jax.linear_transpose`) never computes those. Tap "
        "a primal value, use forward mode (`jax.jvp`, `jax.jacfwd`), or leave it out "
        "of the harvest with `names=`."
    )
    with _raises_exactly(ValueError, msg):
        ep.intermediates(transposed)(jnp.ones(2))


def test_taps_the_computation_drops_or_runs_later_messages_whole():
    @jax.custom_jvp
    def tangent_tap(x):
        return jnp.sin(x)

    tangent_tap.defjvp(
        lambda p, t: (
            tangent_tap(p[0]),
            ep.intermediate(t[0], name="tan") * jnp.cos(p[0]),
        )
    )
    dropped = (
        "Cannot harvest `tan`: it was recorded while the function was traced, but "
        "JAX left it out of the computation: a tap of a tangent under reverse-mode "
        "autodiff (e.g. in the JVP rule of a `jax.custom_jvp` under `jax.grad`: "
        "tangents are never computed), a tap in the function of a `jax.custom_vjp` "
        "under `jax.grad` (its `fwd` runs instead), or a tap in code traced only for "
        "shapes (`jax.eval_shape`). Tap a value the computation keeps, use forward "
        "mode (`jax.jvp`), or leave it out of the harvest with `names=`."
    )
    grad = jax.grad(lambda x: tangent_tap(x).sum())
    with _raises_exactly(ValueError, dropped):
        ep.intermediates(grad)(jnp.ones(2))
    with _raises_exactly(ValueError, dropped):  # named in the harvest
        ep.intermediates(grad, names=["tan"])(jnp.ones(2))

    @jax.custom_vjp
    def bwd_tap(x):
        return jnp.sin(x)

    bwd_tap.defvjp(
        lambda x: (jnp.sin(x), x),
        lambda x, ct: (ep.intermediate(ct * jnp.cos(x), name="b"),),
    )
    later = (
        "Cannot harvest `b`: it is recorded inside the `bwd` of a `jax.custom_vjp`, "
        "which JAX runs in the backward pass, not by the function itself, so "
        "`ep.intermediates` cannot return it. Tap the value in the function, harvest "
        "the derivative instead (`ep.intermediates(jax.grad(f))`), or leave it out "
        "of the harvest with `names=`."
    )
    harvested = ep.intermediates(lambda y: bwd_tap(y).sum())
    # (raised in the backward pass: JAX appends a note on its traceback)
    with pytest.raises(ValueError, match="^" + re.escape(later)):
        jax.grad(lambda x: harvested(x)[0])(jnp.ones(2))
    # harvesting the derivative itself returns the value
    _, values = ep.intermediates(jax.grad(lambda x: bwd_tap(x).sum()))(jnp.ones(2))
    np.testing.assert_allclose(values["b"], np.cos(np.ones(2)), rtol=1e-6)


def test_harvest_runs_a_while_loop_holding_a_custom_vjp():
    # Nothing to watch inside a while_loop (its custom VJPs cannot be reached):
    # the loop is run as it is, and the taps around it are harvested.

    @jax.custom_vjp
    def g(x):
        return jnp.sin(x)

    g.defvjp(lambda x: (jnp.sin(x), x), lambda x, ct: (ct * jnp.cos(x),))

    def f(x, n):
        out = lax.while_loop(lambda c: c[1] < n, lambda c: (g(c[0]), c[1] + 1), (x, 0))
        return ep.intermediate(out[0], name="after")

    out, values = ep.intermediates(f)(jnp.ones(2), jnp.int32(3))
    np.testing.assert_allclose(values["after"], np.sin(np.sin(np.sin(1.0))), rtol=1e-6)
    np.testing.assert_allclose(out, values["after"])


def test_tap_missing_from_some_branches_messages_whole():

    def only_in_branch_0(x, p):  # branch 0 is the false branch; branch 1 passes x
        return lax.cond(p, lambda y: y, lambda y: ep.intermediate(y * 2, name="t"), x)

    one = (
        "Cannot harvest `t`: it is recorded in only one branch of a `lax.cond` whose "
        "other branch computes nothing from its inputs. That is how a bounded "
        "`while_loop` runs its steps (`equinox.internal.while_loop`, as used by "
        "diffrax and optimistix), whose number of steps is not known when tracing, "
        "so its values cannot be stacked. Move the tap out of the loop (or record it "
        "in every branch of the cond), or leave it out of the harvest with `names=`."
    )
    with _raises_exactly(ValueError, one):
        ep.intermediates(only_in_branch_0)(jnp.ones(2), True)

    def some(x, i):
        tap = lambda k: lambda y: ep.intermediate(y * k, name="t")  # noqa: E731
        return lax.switch(i, [tap(2), tap(3), lambda y: y * 4], x)

    some_msg = (
        "Cannot harvest `t`: it is recorded in some branches of a `lax.cond`/"
        "`lax.switch` but not in others (branches 0 and 2 differ). Record it in every "
        "branch, or move it out of the cond, or leave it out of the harvest with "
        "`names=`."
    )
    with _raises_exactly(ValueError, some_msg):
        ep.intermediates(some)(jnp.ones(2), 0)


class _TwiceSlot(eqx.Module):
    s: ep.Intermediate

    def __call__(self, x, y):
        self.s(x)
        self.s(y)
        return x


def test_records_that_cannot_be_returned_messages_whole():
    def twice(x):
        ep.intermediate(x, name="t")
        ep.intermediate(x * 2, name="t")
        return x

    msg = (
        "The tap `t` was recorded 2 times in one call. A name may be recorded once "
        "per call: give each `ep.intermediate` its own `name` (for a function called "
        "several times, pass the name in as an argument). Inside `jax.vmap`, a "
        "`lax.cond` with a batched predicate runs every branch, recording taps in "
        "each."
    )
    with _raises_exactly(ValueError, msg):
        ep.intermediates(twice)(jnp.ones(2))

    def mixed(x):
        ep.intermediate(x, name="k")
        ep.Intermediate(name="k")(x)
        return x

    msg = (
        "The name `k` is used both by an `ep.intermediate` tap and by an "
        "`ep.Intermediate` slot; rename the tap."
    )
    with _raises_exactly(ValueError, msg):
        ep.intermediates(mixed)(jnp.ones(2))

    x, i = jnp.ones(2), jnp.arange(2)
    msg = (
        "The `ep.Intermediate` slot `u` was called 2 times with values of different "
        f"shapes or dtypes [((2,), dtype('{x.dtype}')), ((2,), dtype('{i.dtype}'))], "
        "so they cannot be stacked; use a separate slot for each call."
    )
    with _raises_exactly(ValueError, msg):
        ep.intermediates(_TwiceSlot(ep.Intermediate(name="u")))(x, i)
    # the same shape and dtype: stacked
    _, values = ep.intermediates(_TwiceSlot(ep.Intermediate(name="u")))(x, 2 * x)
    np.testing.assert_allclose(values["u"], np.stack([np.ones(2), 2 * np.ones(2)]))
