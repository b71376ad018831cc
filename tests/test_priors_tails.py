"""The built-in priors in both tails: float64 precision against mpmath, and
Uniform's closed support in narrow dtypes."""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import eqxpurify as ep


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
