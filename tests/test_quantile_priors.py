"""Gamma, InverseGamma, StudentT, HalfStudentT and Beta: exact quantiles."""

import contextlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

import eqxpurify as ep

from .conftest import X64

SHAPES = [0.1, 0.5, 1.0, 3.0, 30.0, 300.0]
Z = np.linspace(-8.0, 8.0, 65)

needs_x64 = pytest.mark.skipif(not X64, reason="float64 runs with EQXPURIFY_TEST_X64=1")


def _reference(dist, z):
    """scipy's quantile of Phi(z) from the nearer tail (`isf` above the median)."""
    lower = dist.ppf(st.norm.cdf(z))
    upper = dist.isf(st.norm.sf(z))
    return np.where(z < 0, lower, upper)


def _abs_t_reference(df, z):
    # |T| = sqrt(df v / (1 - v)) with v ~ Beta(1/2, df/2); its upper tail is the t's.
    v = st.beta.ppf(st.norm.cdf(z), 0.5, df / 2)
    return np.where(z < 0, np.sqrt(df * v / (1 - v)), st.t.isf(st.norm.sf(z) / 2, df))


def cases():
    """(prior, reference quantile of Phi(z)) over the grid of shapes."""
    out = []
    for s in SHAPES:
        out.append((f"gamma-{s}", ep.Gamma(s, 2.0), st.gamma(s, scale=0.5)))
        out.append((f"invgamma-{s}", ep.InverseGamma(s, 2.0), st.invgamma(s, scale=2)))
        out.append((f"t-{s}", ep.StudentT(s, 0.0, 2.0), st.t(s, 0.0, 2.0)))
        out.append((f"halft-{s}", ep.HalfStudentT(s, 2.0), s))
        for b in SHAPES:
            out.append((f"beta-{s}-{b}", ep.Beta(s, b), st.beta(s, b)))
    return out


CASES = cases()
IDS = [c[0] for c in CASES]


def _expected(prior, dist, z):
    # scipy warns where its own root finder gives up; those points are screened.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if isinstance(prior, ep.HalfStudentT):
            return 2.0 * _abs_t_reference(dist, z)
        return _reference(dist, z)


@needs_x64
@pytest.mark.parametrize("name,prior,dist", CASES, ids=IDS)
def test_quantiles_match_scipy_float64(name, prior, dist):
    x = np.asarray(prior.forward(jnp.asarray(Z, jnp.float64)))
    ref = _expected(prior, dist, Z)
    ok = np.isfinite(ref) & (ref != 0)
    if isinstance(prior, ep.Beta):
        # Where scipy's own root finder fails (it warns), check its CDF instead.
        with np.errstate(all="ignore"):
            p_ref = np.where(Z < 0, dist.cdf(ref), dist.sf(ref))
        ok &= np.abs(p_ref / np.where(Z < 0, st.norm.cdf(Z), st.norm.sf(Z)) - 1) < 1e-9
        p_ours = np.where(Z < 0, dist.cdf(x), dist.sf(x))
        target = np.where(Z < 0, st.norm.cdf(Z), st.norm.sf(Z))
        # ... to 1e-9, plus what rounding `x` to its ulp moves the probability.
        slack = dist.pdf(x) * 4 * np.spacing(x)
        assert np.all(np.abs(p_ours - target) <= 1e-9 * target + slack)
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(x[ok], ref[ok], rtol=1e-6)


def _f32_tolerance(prior):
    # JAX's float32 `gammainc`/`betainc` themselves are off by ~1e-5 relative for
    # shapes of 30 and ~6e-5 for 300; the quantiles inherit that, not more.
    shapes = [
        float(np.max(h.value)) for h in jax.tree.leaves(prior, is_leaf=ep.is_wrapper)
    ]
    return 2e-4 if max(shapes) < 100 else 2e-3


@pytest.mark.slow
@pytest.mark.parametrize("name,prior,dist", CASES, ids=IDS)
def test_quantiles_match_scipy_float32(name, prior, dist):
    with jax.enable_x64(False):
        prior32 = jax.tree.map(
            lambda h: ep.Fixed(np.float32(h.value)), prior, is_leaf=ep.is_wrapper
        )
        z32 = jnp.asarray(Z, jnp.float32)
        x = np.asarray(prior32.forward(z32), np.float64)
    z = np.asarray(z32, np.float64)  # the reference at the same (rounded) latents
    ref = _expected(prior, dist, z)
    big = np.finfo(np.float32).max
    ok = np.isfinite(ref) & (np.abs(ref) < big) & (np.abs(ref) > 1e-30)
    if isinstance(prior, ep.Beta):
        ok &= (ref > 1e-30) & (1 - ref > 1e-6)  # away from float32's resolution
        with np.errstate(all="ignore"):
            p_ref = np.where(z < 0, dist.cdf(ref), dist.sf(ref))
        ok &= np.abs(p_ref / np.where(z < 0, st.norm.cdf(z), st.norm.sf(z)) - 1) < 1e-9
    assert np.all(np.isfinite(x[ok]))
    np.testing.assert_allclose(x[ok], ref[ok], rtol=_f32_tolerance(prior), atol=0)


ROUND_TRIP = [
    ep.Gamma(0.5, 3.0),
    ep.Gamma(jnp.array([0.1, 3.0, 300.0]), 1.0),
    ep.InverseGamma(jnp.array([0.5, 3.0, 30.0]), 2.0),
    ep.StudentT(jnp.array([0.5, 3.0, 300.0]), -1.0, 0.1),
    ep.HalfStudentT(jnp.array([1.0, 3.0, 30.0]), 5.0),
    ep.Beta(jnp.array([0.5, 2.0, 30.0]), jnp.array([3.0, 1.5, 30.0])),
]
RT_IDS = ["gamma", "gamma-array", "invgamma", "t", "halft", "beta"]


def _latents(lo, hi, n, dtype, prior):
    z = jnp.linspace(lo, hi, n, dtype=dtype).reshape(n, *([1] * len(prior.batch_shape)))
    return jnp.broadcast_to(z, (n, *prior.batch_shape))


def _elementwise_grad(prior, z):
    return jax.vmap(jax.grad(lambda zi: jnp.sum(prior.forward(zi))))(z)


@pytest.mark.slow
@pytest.mark.parametrize("prior", ROUND_TRIP, ids=RT_IDS)
def test_round_trip(prior, float_dtype):
    wide = jnp.dtype(float_dtype).itemsize >= 8
    lim = 8.0 if wide else 3.0
    z = _latents(-lim, lim, 97, float_dtype, prior)
    x = prior.forward(z)
    back = prior.inverse(x)
    assert x.dtype == back.dtype == float_dtype
    assert jnp.all(jnp.isfinite(x)) and jnp.all(jnp.isfinite(back))
    # As exactly as `x` determines `z`: an ulp of `x` moves `z` by eps|x|/|dx/dz|.
    slope = jnp.abs(_elementwise_grad(prior, z))
    resolution = jnp.finfo(float_dtype).eps * jnp.abs(x) / slope
    atol = 1e-7 if wide else 2e-3
    assert jnp.all(jnp.abs(back - z) <= atol + 4 * resolution)


@pytest.mark.slow  # each case compiles a quantile and its Jacobian (`ep.check_prior`
# checks the same identity for every built-in prior in the default run)
@pytest.mark.parametrize("prior", ROUND_TRIP, ids=RT_IDS)
def test_log_prob_matches_change_of_variables(prior, float_dtype):
    # log p(forward(z)) + log|dforward/dz| is the standard normal log density.
    # Float32 resolves values (1 - x of a beta, a gamma near 0) to |z| <= 3.
    lim = 5.0 if jnp.dtype(float_dtype).itemsize >= 8 else 3.0
    z = _latents(-lim, lim, 41, float_dtype, prior)
    lp = prior.log_prob(prior.forward(z)) + jnp.log(_elementwise_grad(prior, z))
    expected = jax.scipy.stats.norm.logpdf(z)
    tol = 1e-8 if jnp.dtype(float_dtype).itemsize >= 8 else 2e-3
    np.testing.assert_allclose(lp, expected, atol=tol * 10, rtol=tol)


def test_log_prob_outside_the_support():
    assert ep.Gamma(2.0, 1.0).log_prob(jnp.array(-1.0)) == -jnp.inf
    assert ep.InverseGamma(2.0, 1.0).log_prob(jnp.array(-1.0)) == -jnp.inf
    assert ep.HalfStudentT(2.0, 1.0).log_prob(jnp.array(-1.0)) == -jnp.inf
    assert ep.Beta(2.0, 3.0).log_prob(jnp.array(1.5)) == -jnp.inf
    assert jnp.isnan(ep.Gamma(2.0, 1.0).inverse(jnp.array(-1.0)))
    assert jnp.isnan(ep.Beta(2.0, 3.0).inverse(jnp.array(1.5)))
    assert jnp.isnan(ep.HalfStudentT(2.0, 1.0).inverse(jnp.array(-1.0)))


BUILDERS = {
    "gamma": (lambda a, r: ep.Gamma(a, r), (0.5, 2.0)),
    "gamma-big": (lambda a, r: ep.Gamma(a, r), (300.0, 0.5)),
    "invgamma": (lambda a, s: ep.InverseGamma(a, s), (3.0, 2.0)),
    "t": (lambda d, m, s: ep.StudentT(d, m, s), (3.0, 1.0, 2.0)),
    # Its values reach 1e28 at |z| = 7, where a step in `loc` is lost to rounding.
    "t-heavy": (lambda d, m, s: ep.StudentT(d, m, s), (0.5, 0.0, 1.0), 2.0),
    "halft": (lambda d, s: ep.HalfStudentT(d, s), (30.0, 2.0)),
    "beta": (lambda a, b: ep.Beta(a, b), (0.5, 3.0)),
    "beta-big": (lambda a, b: ep.Beta(a, b), (300.0, 30.0)),
    "beta-small": (lambda a, b: ep.Beta(a, b), (0.1, 0.5)),
}


@needs_x64
@pytest.mark.parametrize("name", list(BUILDERS))
def test_gradients_match_finite_differences(name):
    build, theta, *lim = BUILDERS[name]
    lim = lim[0] if lim else 7.0
    z = jnp.linspace(-lim, lim, 29, dtype=jnp.float64)

    def hyper(i, t):  # a number would become `ep.Fixed`, which gets no gradient
        loc = name.startswith("t") and name != "halft" and i == 1
        # a positive hyperparameter needs a Param whose prior is positive
        return ep.Param(t, prior=ep.Normal(0.0, 1.0) if loc else ep.LogNormal(1.0, 1.0))

    def f(z, *theta):
        return build(*(hyper(i, t) for i, t in enumerate(theta))).forward(z)

    theta = tuple(jnp.float64(t) for t in theta)
    grads = jax.vmap(
        jax.grad(f, argnums=tuple(range(len(theta) + 1))), (0,) + (None,) * len(theta)
    )(z, *theta)
    args = (z, *theta)
    for i, g in enumerate(grads):
        h = 1e-5 * max(1.0, float(jnp.max(jnp.abs(args[i]))))
        up = list(args)
        dn = list(args)
        up[i], dn[i] = args[i] + h, args[i] - h
        fd = (f(*up) - f(*dn)) / (2 * h)
        assert jnp.all(jnp.isfinite(g))
        np.testing.assert_allclose(g, fd, rtol=2e-5, atol=1e-9, err_msg=f"argument {i}")


@pytest.mark.slow
@pytest.mark.parametrize("prior", ROUND_TRIP, ids=RT_IDS)
def test_jit_and_vmap_agree_with_eager(prior):
    z = _latents(-3.0, 3.0, 7, jnp.float32, prior)
    eager = prior.forward(z)
    rtol = 1e-4 if eager.dtype == jnp.float32 else 1e-12  # jit fuses, rounds anew
    np.testing.assert_allclose(jax.jit(lambda z: prior.forward(z))(z), eager, rtol=rtol)
    np.testing.assert_allclose(jax.vmap(prior.forward)(z), eager, rtol=rtol)


@pytest.mark.slow
def test_vmap_over_hyperparameters():
    conc = jnp.array([0.5, 2.0, 30.0])

    def median(a):
        # (a concentration Param needs a positive prior)
        concentration = ep.Param(a, prior=ep.LogNormal(10.0, 10.0))
        return ep.Gamma(concentration, 1.0).forward(jnp.zeros(()))

    got = jax.vmap(median)(conc)
    np.testing.assert_allclose(got, st.gamma.median(np.asarray(conc)), rtol=1e-4)
    grads = jax.vmap(jax.grad(median))(conc)
    assert jnp.all(jnp.isfinite(grads)) and jnp.all(grads > 0)


@pytest.mark.slow
def test_hierarchical_concentration_gradient(getkey):
    prior = ep.Gamma(ep.Param(prior=ep.LogNormal(2.0, 0.5)), 1.0)
    model = ep.normal({"x": ep.Param(shape=(4,), prior=prior)}, key=getkey())
    params, rest = ep.partition(model)
    assert sorted(params) == ["['x']", "['x'].prior.concentration"]

    def total(params):
        m = ep.combine(params, rest)
        return jnp.sum(ep.values(m)["['x']"]) + ep.log_prior(m) + ep.log_prob(m)

    grads = jax.grad(total)(params)
    g = grads["['x'].prior.concentration"]
    assert jnp.isfinite(g) and g != 0
    h = 1e-2
    up = dict(
        params, **{"['x'].prior.concentration": params["['x'].prior.concentration"] + h}
    )
    dn = dict(
        params, **{"['x'].prior.concentration": params["['x'].prior.concentration"] - h}
    )
    fd = (total(up) - total(dn)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-2 if not X64 else 1e-4)


def test_low_precision_latents_compute_in_float32():
    prior = ep.Beta(2.0, 5.0)
    z = jnp.array([-2.0, 0.0, 2.0])
    for dtype in (jnp.bfloat16, jnp.float16):
        x = prior.forward(z.astype(dtype))
        assert x.dtype == dtype
        np.testing.assert_allclose(
            x.astype(jnp.float32), prior.forward(z).astype(dtype).astype(jnp.float32)
        )


@pytest.mark.parametrize(
    "make,match",
    [
        (
            lambda: ep.Gamma(0.0, 1.0),
            r"`Gamma\(concentration=\.\.\.\)` must be finite and > 0",
        ),
        (
            lambda: ep.Gamma(1.0, jnp.nan),
            r"`Gamma\(rate=\.\.\.\)` must be finite and > 0",
        ),
        (lambda: ep.InverseGamma(-1.0), r"`InverseGamma\(concentration=\.\.\.\)`"),
        (lambda: ep.InverseGamma(1.0, 0.0), r"`InverseGamma\(scale=\.\.\.\)`"),
        (lambda: ep.StudentT(jnp.nan), r"`StudentT\(df=\.\.\.\)` must be finite"),
        (lambda: ep.StudentT(3.0, jnp.inf), r"`StudentT\(loc=\.\.\.\)` must be finite"),
        (lambda: ep.StudentT(3.0, 0.0, -2.0), r"`StudentT\(scale=\.\.\.\)`"),
        (lambda: ep.HalfStudentT(0.0), r"`HalfStudentT\(df=\.\.\.\)`"),
        (lambda: ep.HalfStudentT(1.0, jnp.nan), r"`HalfStudentT\(scale=\.\.\.\)`"),
        (lambda: ep.Beta(0.0, 1.0), r"`Beta\(concentration1=\.\.\.\)` must be finite"),
        (
            lambda: ep.Beta(1.0, jnp.nan),
            r"`Beta\(concentration0=\.\.\.\)` must be finite",
        ),
        (lambda: ep.Beta(jnp.ones(2), jnp.ones(3)), r"do not broadcast"),
    ],
)
def test_invalid_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_invalid_hyperparameter_under_jit_raises_at_run_time():
    @jax.jit
    def build(df):
        return ep.StudentT(df).forward(jnp.array(1.0))

    assert jnp.isfinite(build(3.0))
    with pytest.raises(
        Exception, match=r"`StudentT\(df=\.\.\.\)` must be finite and > 0"
    ):
        jax.block_until_ready(build(-1.0))


@pytest.mark.slow  # 13 s: a dense grid of z for every prior
def test_tails_are_monotone_and_finite(float_dtype):
    # Never switch x64 off: in the x64 run the hyperparameters are float64.
    ctx = (
        jax.enable_x64(True) if float_dtype == jnp.float64 else contextlib.nullcontext()
    )
    with ctx:
        z = jnp.linspace(-8.0, 8.0, 321, dtype=float_dtype)
        for prior in (ep.Gamma(3.0), ep.StudentT(3.0), ep.Beta(2.0, 3.0)):
            x = prior.forward(z)
            g = _elementwise_grad(prior, z)
            assert jnp.all(jnp.isfinite(x)) and jnp.all(jnp.isfinite(g))
            assert jnp.all(jnp.diff(x) >= 0) and jnp.all(g >= 0)


@pytest.mark.parametrize(
    "prior, x, logpdf, log_jacobian",
    [
        (ep.Gamma(3.0, 2.0), 1.2, lambda x: st.gamma(3, scale=0.5).logpdf(x), np.log),
        (
            ep.InverseGamma(3.0, 2.0),
            0.8,
            lambda x: st.invgamma(3, scale=2).logpdf(x),
            np.log,
        ),
        (ep.StudentT(4.0, 0.5, 2.0), 0.7, lambda x: st.t(4, 0.5, 2).logpdf(x), None),
        (
            ep.HalfStudentT(4.0, 2.0),
            0.7,
            lambda x: np.log(2) + st.t(4, 0, 2).logpdf(x),
            np.log,
        ),
        (
            ep.Beta(2.0, 5.0),
            0.3,
            lambda x: st.beta(2, 5).logpdf(x),
            lambda x: np.log(x * (1 - x)),
        ),
    ],
    ids=["gamma", "inverse_gamma", "student_t", "half_student_t", "beta"],
)
def test_centred_log_prior_is_the_density_times_the_jacobian(
    prior, x, logpdf, log_jacobian
):
    """`whiten=False`: the latent lives on the real line through the support's
    bijection, and its log density is `log p(x) + log|dx/du|`."""
    p = ep.Param(x, prior=prior, whiten=False)
    np.testing.assert_allclose(p.value, x, rtol=1e-5)
    want = logpdf(x) + (0.0 if log_jacobian is None else log_jacobian(x))
    np.testing.assert_allclose(ep.log_prior({"p": p}), want, rtol=1e-4)
