"""Priors on the half-line: HalfNormal, HalfCauchy and Exponential.

Each is pinned against references computed here independently: quantiles in
mpmath (340 digits) for `forward` and `inverse` in both tails, scipy's densities
for `log_prob`; and its hyperparameter checks, text, support edges, dtypes, and
use under `jit`, `grad` and `vmap`."""

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from scipy import special, stats

import eqxpurify as ep

from .conftest import (
    X64,
    close,
    raises_and_keeps,
)

# Explicit float32: under x64 a Python float would make a float64 hyperparameter.
F32 = np.float32


def _ndtri(u):
    return mpmath.sqrt(2) * mpmath.erfinv(2 * u - 1)


# name -> (class, hyperparameter name, hyperparameter value used below)
PRIORS = {
    "HalfNormal": (ep.HalfNormal, "sigma", 2.0),
    "HalfCauchy": (ep.HalfCauchy, "scale", 0.5),
    "Exponential": (ep.Exponential, "rate", 3.0),
}
NAMES = sorted(PRIORS)


def _prior(name, h=None):
    cls, _, default = PRIORS[name]
    return cls(F32(default if h is None else h))


@mpmath.workdps(340)  # probabilities within 1e-305 of 1 in float64's tails
def _quantile(name, h, z):
    """`x(z)` in mpmath: the prior's quantile at the normal probability of `z`."""
    mp, h, z = mpmath, mpmath.mpf(h), mpmath.mpf(z)
    if name == "HalfNormal":  # |N(0, h^2)|: P(X <= x) = 2 Phi(x / h) - 1
        return h * _ndtri((1 + mp.ncdf(z)) / 2)
    if name == "HalfCauchy":  # P(X <= x) = 2 / pi * atan(x / h)
        return h * mp.tan(mp.pi / 2 * mp.ncdf(z))
    return -mp.log(mp.ncdf(-z)) / h  # Exponential: P(X > x) = exp(-h x)


@mpmath.workdps(340)
def _latent(name, h, x):
    """`z(x)` in mpmath: the normal quantile of the prior's probability of `x`."""
    mp, h, x = mpmath, mpmath.mpf(h), mpmath.mpf(x)
    if name == "HalfNormal":
        return _ndtri(mp.erf(x / (h * mp.sqrt(2))))
    if name == "HalfCauchy":
        return _ndtri(2 / mp.pi * mp.atan(x / h))
    return _ndtri(-mp.expm1(-h * x))


def _scipy(name, h):
    if name == "HalfNormal":
        return stats.halfnorm(scale=h)
    if name == "HalfCauchy":
        return stats.halfcauchy(scale=h)
    return stats.expon(scale=1 / h)


def _median(name, h):
    """The median: where `z = 0` maps to (by hand)."""
    if name == "HalfNormal":
        return h * 0.6744897501960817  # Phi^-1(3/4)
    if name == "HalfCauchy":
        return h
    return math.log(2.0) / h


@functools.partial(jax.jit, static_argnames="method")
def _apply(prior, method, x):
    """`prior.method(x)`, compiled whole: far quicker to build than op by op."""
    return getattr(prior, method)(x)


def _rtol(dtype):
    # float64: the far tails (z = 30, probabilities of 1e-198) read `ndtr` and
    # `log_ndtr` to about 1e-13.
    return 1e-12 if dtype == jnp.float64 else 64 * float(jnp.finfo(dtype).eps)


# --------------------------------------------------------------------------------
# Construction, hyperparameters and text.


@pytest.mark.parametrize("name", NAMES)
def test_default_hyperparameter_is_one(name):
    cls, field, _ = PRIORS[name]
    prior = cls()
    hyper = getattr(prior, field)
    assert ep.is_fixed(hyper) and float(hyper.value) == 1.0
    assert repr(prior) == f"{name}(1)"
    x = jnp.array([0.0, 0.5, 2.0], jnp.float32)
    want = _scipy(name, 1.0).logpdf(np.asarray(x, np.float64))
    np.testing.assert_allclose(prior.log_prob(x), want, rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameter_is_a_fixed_of_its_dtype(name, float_dtype):
    cls, field, h = PRIORS[name]
    prior = cls(np.asarray(h, float_dtype))
    hyper = getattr(prior, field)
    assert ep.is_fixed(hyper) and hyper.dtype == float_dtype and hyper.shape == ()
    assert float(hyper.value) == h
    assert type(prior).support == "positive"
    assert prior.batch_shape == ()
    assert cls(np.array([1.0, 2.0, 4.0], float_dtype)).batch_shape == (3,)


def test_repr():
    assert repr(ep.HalfNormal(F32(2.0))) == "HalfNormal(2)"
    assert repr(ep.HalfCauchy(F32(0.5))) == "HalfCauchy(0.5)"
    assert repr(ep.Exponential(3)) == "Exponential(3)"
    assert repr(ep.HalfNormal(np.array([1, 2.5], F32))) == "HalfNormal([1, 2.5])"
    scale = ep.Param(1.0, prior=ep.HalfNormal(1.0))  # the default float
    assert repr(ep.HalfCauchy(scale)) == "HalfCauchy(Param(1, prior=HalfNormal(1)))"
    assert repr(ep.Exponential(ep.Fixed(F32(0.25)))) == "Exponential(0.25)"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "bad, shown",
    [(0.0, "0.0"), (-1.0, "-1.0"), (np.inf, "inf"), (np.nan, "nan")],
    ids=["zero", "negative", "inf", "nan"],
)
def test_hyperparameter_must_be_finite_and_positive(name, bad, shown):
    cls, field, _ = PRIORS[name]
    raises_and_keeps(
        lambda: cls(F32(bad)),
        None,
        ValueError,
        f"`{name}({field}=...)` must be finite and > 0; got {shown}. Pass a "
        f"positive `{field}`.",
    )
    array = np.array([1.0, bad], F32)
    raises_and_keeps(
        lambda: cls(array), array, ValueError, f"got [1.0, {shown}]. Pass a positive"
    )


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameter_must_be_a_number(name, unchecked_types):
    cls, field, _ = PRIORS[name]
    raises_and_keeps(
        lambda: cls("a"),
        None,
        TypeError,
        f"`{name}({field}=...)` must be a number, an array, an `ep.Fixed` or an "
        "`ep.Param`",
        "got str.",
    )
    raises_and_keeps(
        lambda: cls(True),
        None,
        TypeError,
        f"`{name}({field}=...)` must be a real number, got a bool",
    )


@pytest.mark.parametrize("name", NAMES)
def test_hierarchical_hyperparameter_needs_a_positive_prior(name):
    cls, field, h = PRIORS[name]
    normal = ep.Param(F32(1.0), prior=ep.Normal(0.0, 1.0))
    raises_and_keeps(
        lambda: cls(normal),
        normal,
        ValueError,
        f"`{name}({field}=...)` is an `ep.Param` whose prior `Normal` reaches zero "
        "or below",
        f"`{field}=ep.Param(prior=ep.HalfNormal(1.0))`",
    )
    # A positive prior is accepted, and the density reads the Param's value.
    tau = ep.Param(F32(h), prior=ep.HalfNormal(F32(1.0)))
    prior = cls(tau)
    assert getattr(prior, field) is tau
    x = jnp.array([0.25, 1.5], jnp.float32)
    want = _scipy(name, h).logpdf(np.asarray(x, np.float64))
    np.testing.assert_allclose(prior.log_prob(x), want, rtol=1e-5)


# --------------------------------------------------------------------------------
# Exponential: a rate so small that its median (every value) overflows.


def test_exponential_rate_whose_median_overflows():
    # log(2) / 1.9e-39 = 3.6e38 > float32's max 3.4e38; log(2) / 2.1e-39 = 3.3e38.
    rate = F32(1.9e-39)
    raises_and_keeps(
        lambda: ep.Exponential(rate),
        None,
        ValueError,
        "`Exponential(rate=...)` is so small that the median `log(2) / rate` "
        "overflows float32 (every value would be inf; a rate below its smallest "
        f"normal number counts as 0); got {rate.item()}. Pass a larger `rate`, or "
        "use float64.",
    )
    fine = ep.Exponential(F32(1.2e-38))  # normal: float32's tiny is 1.18e-38
    assert float(fine.rate.value) == F32(1.2e-38)
    assert np.isfinite(np.asarray(fine.forward(jnp.zeros(3, jnp.float32)))).all()
    tiny = np.finfo(np.float32).tiny  # the smallest normal rate: accepted
    assert np.isfinite(np.asarray(ep.Exponential(tiny).forward(jnp.zeros(2)))).all()
    rates = np.array([1.0, 1e-40], F32)
    raises_and_keeps(
        lambda: ep.Exponential(rates),
        rates,
        ValueError,
        f"counts as 0); got [1.0, {rates[1].item()}]",
    )


def test_exponential_subnormal_rate_is_refused():
    # Its median log(2) / 2.1e-39 = 3.3e38 is finite on the host, but XLA flushes
    # a subnormal to zero, so on the device every value would be inf.
    rate = F32(2.1e-39)  # subnormal: below float32's tiny 1.18e-38
    raises_and_keeps(
        lambda: ep.Exponential(rate),
        None,
        ValueError,
        "a rate below its smallest normal number counts as 0",
        f"got {rate.item()}",
    )


@pytest.mark.skipif(not X64, reason="a float64 rate needs jax_enable_x64")
def test_exponential_float64_rate_whose_median_overflows():
    # log(2) / 1e-309 = 6.9e308 > float64's max 1.8e308.
    raises_and_keeps(
        lambda: ep.Exponential(np.float64(1e-309)),
        None,
        ValueError,
        "overflows float64 (every value would be inf;",
        "got 1e-309.",
    )
    # log(2) / 3e-308 = 2.3e307, and 3e-308 is above float64's tiny 2.2e-308.
    ep.Exponential(np.float64(3e-308))


def test_exponential_traced_rate_is_checked_at_run_time():
    @eqx.filter_jit
    def log_prob(rate):
        return ep.Exponential(rate).log_prob(jnp.float32(0.5))

    # log(3) - 3 * 0.5, by hand.
    np.testing.assert_allclose(log_prob(F32(3.0)), math.log(3.0) - 1.5, rtol=1e-6)
    with pytest.raises(
        Exception,
        match=r"`Exponential\(rate=\.\.\.\)` is so small .* overflows float32 .*"
        r"got a traced value\. Pass a larger `rate`",
    ):
        jax.block_until_ready(log_prob(F32(1e-40)))


# --------------------------------------------------------------------------------
# forward and inverse against mpmath, in both tails.


def _z_grid(dtype):
    z = [-9.0, -3.0, -0.5, 0.0, 0.5, 3.0, 9.0]
    return z + ([-30.0, 30.0] if dtype == jnp.float64 else [])


def _x_grid(name, dtype):
    """Physical values (in units of the hyperparameter) across both tails."""
    wide = dtype == jnp.float64
    tiny = 1e-100 if wide else 1e-20
    big = {"HalfNormal": 35.0 if wide else 12.0, "HalfCauchy": 1e200 if wide else 1e30}
    big = big.get(name, 700.0 if wide else 80.0)
    return [tiny, 1e-3, 0.3, 0.9, 1.5, 4.0, big]


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_mpmath(name, float_dtype):
    _, _, h = PRIORS[name]
    z = jnp.asarray(_z_grid(float_dtype), float_dtype)
    x = _apply(_prior(name), "forward", z)
    assert x.dtype == float_dtype
    want = [float(_quantile(name, h, float(v))) for v in np.asarray(z)]
    np.testing.assert_allclose(np.asarray(x, np.float64), want, rtol=_rtol(float_dtype))


@pytest.mark.parametrize("name", NAMES)
def test_forward_of_zero_is_the_median(name, float_dtype):
    _, _, h = PRIORS[name]
    x = _prior(name).forward(jnp.zeros((), float_dtype))
    np.testing.assert_allclose(float(x), _median(name, h), rtol=_rtol(float_dtype))


@pytest.mark.parametrize("name", NAMES)
def test_inverse_matches_mpmath(name, float_dtype):
    _, _, h = PRIORS[name]
    scale = 1 / h if name == "Exponential" else h
    x = jnp.asarray([scale * y for y in _x_grid(name, float_dtype)], float_dtype)
    z = _apply(_prior(name), "inverse", x)
    assert z.dtype == float_dtype
    want = [float(_latent(name, h, float(v))) for v in np.asarray(x, np.float64)]
    np.testing.assert_allclose(np.asarray(z, np.float64), want, rtol=_rtol(float_dtype))


@pytest.mark.parametrize("name", NAMES)
def test_inverse_of_the_median_is_zero(name, float_dtype):
    _, _, h = PRIORS[name]
    z = _prior(name).inverse(jnp.asarray(_median(name, h), float_dtype))
    assert abs(float(z)) < 16 * float(jnp.finfo(float_dtype).eps)


@pytest.mark.parametrize("name", NAMES)
def test_round_trip(name, float_dtype):
    prior = _prior(name)
    z = jnp.linspace(-5.0, 5.0, 41, dtype=float_dtype)
    close(_apply(prior, "inverse", _apply(prior, "forward", z)), z, float_dtype)


@pytest.mark.parametrize("name", NAMES)
def test_support_edges(name, float_dtype):
    prior = _prior(name)
    x = _apply(prior, "forward", jnp.asarray([-np.inf, np.inf], float_dtype))
    np.testing.assert_array_equal(x, [0.0, np.inf])
    # 0 and inf map to the latents of the smallest normal probability (finite);
    # below the support is NaN.
    edge = float(special.ndtri(float(jnp.finfo(float_dtype).tiny)))
    edges = jnp.asarray([0.0, -0.0, np.inf, -1.0, -1e-30], float_dtype)
    z = _apply(prior, "inverse", edges)
    np.testing.assert_allclose(
        np.asarray(z, np.float64)[:3], [edge, edge, -edge], rtol=1e-5
    )
    assert np.isnan(np.asarray(z)[3:]).all()


@pytest.mark.parametrize("name", NAMES)
def test_forward_and_inverse_keep_bfloat16(name):
    prior = _prior(name)
    z = jnp.array([-2.0, 0.0, 1.5], jnp.bfloat16)
    x = prior.forward(z)
    assert x.dtype == jnp.bfloat16
    want = prior.forward(z.astype(jnp.float32))
    np.testing.assert_allclose(np.asarray(x, np.float32), want, rtol=1e-2)
    back = prior.inverse(x)
    assert back.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(back, np.float32), z, rtol=0.05, atol=0.05)
    assert prior.log_prob(x).dtype == jnp.float32  # computed in float32


# --------------------------------------------------------------------------------
# log_prob against scipy.


@pytest.mark.parametrize("name", NAMES)
def test_log_prob_matches_scipy(name, float_dtype):
    _, _, h = PRIORS[name]
    x = jnp.asarray([0.0, 1e-6, 0.1, 0.7, 2.0, 25.0], float_dtype)
    lp = _apply(_prior(name), "log_prob", x)
    assert lp.dtype == float_dtype
    want = _scipy(name, h).logpdf(np.asarray(x, np.float64))
    np.testing.assert_allclose(
        np.asarray(lp, np.float64), want, rtol=_rtol(float_dtype), atol=1e-12
    )


@pytest.mark.parametrize("name", NAMES)
def test_log_prob_outside_the_support_is_minus_infinity(name, float_dtype):
    x = jnp.asarray([-1e-30, -1.0, -np.inf], float_dtype)
    np.testing.assert_array_equal(_apply(_prior(name), "log_prob", x), -np.inf)


def test_log_prob_by_hand():
    # HalfNormal(2) at 1: log(2) - 1/8 - log(2) - log(2 pi) / 2.
    x = jnp.float32(1.0)
    want = -0.125 - 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(ep.HalfNormal(F32(2.0)).log_prob(x), want, rtol=1e-6)
    # HalfCauchy(0.5) at 1: log(2 / pi) - log(0.5) - log(1 + 4).
    want = math.log(2 / math.pi) - math.log(0.5) - math.log(5.0)
    np.testing.assert_allclose(ep.HalfCauchy(F32(0.5)).log_prob(x), want, rtol=1e-6)
    # Exponential(3) at 1: log(3) - 3.
    np.testing.assert_allclose(
        ep.Exponential(F32(3.0)).log_prob(x), math.log(3.0) - 3.0, rtol=1e-6
    )


@pytest.mark.parametrize("name", NAMES)
def test_array_hyperparameters_broadcast(name, float_dtype):
    cls, _, _ = PRIORS[name]
    hs = np.array([0.5, 1.0, 4.0], F32)
    x = jnp.asarray([[0.3], [2.0]], float_dtype)
    lp = _apply(cls(hs), "log_prob", x)
    assert lp.shape == (2, 3)
    want = _scipy(name, hs.astype(np.float64)).logpdf(np.asarray(x, np.float64))
    np.testing.assert_allclose(np.asarray(lp, np.float64), want, rtol=1e-5)


# --------------------------------------------------------------------------------
# jit, grad and vmap.


@pytest.mark.parametrize("name", NAMES)
def test_under_jit(name, float_dtype):
    prior = _prior(name)
    z = jnp.asarray([-2.0, 0.3, 4.0], float_dtype)
    x, back, lp = jax.jit(
        lambda p, z: (p.forward(z), p.inverse(p.forward(z)), p.log_prob(p.forward(z)))
    )(prior, z)
    tol = _rtol(float_dtype)
    np.testing.assert_allclose(x, prior.forward(z), rtol=tol)
    close(back, z, float_dtype)
    np.testing.assert_allclose(lp, prior.log_prob(prior.forward(z)), rtol=tol)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_the_hyperparameter(name):
    cls, _, _ = PRIORS[name]
    hs = jnp.array([0.5, 1.0, 4.0], jnp.float32)
    xs = jnp.array([0.3, 2.0, 7.0], jnp.float32)
    lp, z = jax.jit(jax.vmap(lambda h, x: (cls(h).log_prob(x), cls(h).inverse(x))))(
        hs, xs
    )
    want = _scipy(name, np.asarray(hs, np.float64)).logpdf(np.asarray(xs, np.float64))
    np.testing.assert_allclose(lp, want, rtol=1e-5)
    want = [
        float(_latent(name, float(h), float(x)))
        for h, x in zip(np.asarray(hs), np.asarray(xs), strict=True)
    ]
    np.testing.assert_allclose(z, want, rtol=1e-5)


def _gradients(prior, z, x):
    """`dx/dz`, `dz/dx` and `d log p / dx` elementwise, in one compiled call."""

    @jax.jit
    def run(prior, z, x):
        def each(f, v):
            return jax.vmap(jax.grad(f))(v)

        return each(prior.forward, z), each(prior.inverse, x), each(prior.log_prob, x)

    return run(prior, z, x)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_match_the_densities(name, float_dtype):
    _, _, h = PRIORS[name]
    prior = _prior(name)
    dist = _scipy(name, h)
    # On both sides of the median (z = 0 itself: the test below) and in both tails.
    z = np.array([-6.0, -1.0, -0.1, 0.1, 1.0, 6.0])
    xs = np.array([0.01, 0.2, 0.9, 1.1, 3.0])
    dx, dz, dlp = _gradients(
        prior, jnp.asarray(z, float_dtype), jnp.asarray(xs, float_dtype)
    )
    # dx/dz = phi(z) / p(x).
    x = np.array([float(_quantile(name, h, v)) for v in z])
    np.testing.assert_allclose(dx, stats.norm.pdf(z) / dist.pdf(x), rtol=1e-4)
    # dz/dx = p(x) / phi(z).
    zs = np.array([float(_latent(name, h, v)) for v in xs])
    np.testing.assert_allclose(dz, dist.pdf(xs) / stats.norm.pdf(zs), rtol=1e-4)
    # d log p / dx, by hand.
    want = {
        "HalfNormal": -xs / h**2,
        "HalfCauchy": -2 * xs / (h**2 + xs**2),
        "Exponential": -h * np.ones_like(xs),
    }[name]
    np.testing.assert_allclose(dlp, want, rtol=1e-5)
    assert dx.dtype == dz.dtype == dlp.dtype == float_dtype


@pytest.mark.parametrize("name", NAMES)
def test_gradient_of_forward_at_the_median(name):
    _, _, h = PRIORS[name]
    slope = jax.jit(jax.grad(_prior(name).forward))(jnp.float32(0.0))
    # dx/dz = phi(0) / p(median).
    want = stats.norm.pdf(0.0) / _scipy(name, h).pdf(_median(name, h))
    np.testing.assert_allclose(slope, want, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_float32_latents_compute_in_float32_under_x64(name):
    # The priors' constants take the latents' compute dtype: with x64 on, a
    # float32 latent is not promoted to float64 (an error under strict promotion).
    with jax.enable_x64(True):
        prior = _prior(name)
        z = jnp.asarray([-1.0, 0.0, 2.0], jnp.float32)
        x = prior.forward(z)
        assert x.dtype == jnp.float32
        back = prior.inverse(x)
        assert back.dtype == jnp.float32
        np.testing.assert_allclose(back, z, rtol=1e-5, atol=1e-5)
