import contextlib
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import eqxpurify as ep

from .conftest import raises_and_keeps


def all_priors():
    """Every built-in prior, with scalar, array and hierarchical hyperparameters."""
    return [
        ep.Normal(),
        ep.Normal(2.0, 0.5),
        ep.Normal(jnp.array([-1.0, 0.0, 3.0]), 0.1),
        ep.Normal(ep.Param(0.5), ep.Param(2.0, prior=ep.HalfNormal(1.0))),
        ep.LogNormal(3.0, 0.1),
        ep.LogNormal(1.0, 2.0),
        ep.Uniform(-3.0, 3.0),
        ep.Uniform(0.0, 1e-3),
        ep.HalfNormal(),
        ep.HalfNormal(jnp.array([0.01, 1.5, 100.0])),
        ep.HalfCauchy(),
        ep.HalfCauchy(jnp.array([1e-3, 0.7, 50.0])),
        ep.Exponential(2.0),
        ep.Exponential(jnp.array([1e-3, 1.0, 30.0])),
    ]


PRIOR_IDS = [
    "normal",
    "normal-shifted",
    "normal-array",
    "normal-hierarchical",
    "lognormal",
    "lognormal-wide",
    "uniform",
    "uniform-narrow",
    "halfnormal",
    "halfnormal-array",
    "halfcauchy",
    "halfcauchy-array",
    "exponential",
    "exponential-array",
]


def _grid(lo, hi, dtype, prior):
    z = jnp.linspace(lo, hi, 241, dtype=dtype)
    z = z.reshape(241, *([1] * len(prior.batch_shape)))
    return jnp.broadcast_to(z, (241, *prior.batch_shape))


def _elementwise_grad(prior, z):
    """d forward / dz, element by element (every prior acts elementwise)."""
    return jax.vmap(jax.grad(lambda zi: jnp.sum(prior.forward(zi))))(z)


@pytest.mark.slow
@pytest.mark.parametrize("prior", all_priors(), ids=PRIOR_IDS)
def test_round_trip_float64(prior):
    with jax.enable_x64(True):
        z = _grid(-6.0, 6.0, jnp.float64, prior)
        back = prior.inverse(prior.forward(z))
        assert back.dtype == jnp.float64
        np.testing.assert_allclose(back, z, atol=1e-6, rtol=0)
        # Out to |z| = 8, as exactly as the value `x` itself determines `z`: a
        # rounding of `x` by its ulp moves `z` by eps * |x| / |dx/dz|.
        z = _grid(-8.0, 8.0, jnp.float64, prior)
        x = prior.forward(z)
        back = prior.inverse(x)
        assert jnp.all(jnp.isfinite(back))
        slope = jnp.abs(_elementwise_grad(prior, z))
        resolution = jnp.finfo(jnp.float64).eps * jnp.abs(x) / slope
        assert jnp.all(jnp.abs(back - z) <= 1e-6 + 2 * resolution)


@pytest.mark.slow
@pytest.mark.parametrize("prior", all_priors(), ids=PRIOR_IDS)
def test_round_trip_float32(prior):
    z = _grid(-3.0, 3.0, jnp.float32, prior)
    back = prior.inverse(prior.forward(z))
    assert back.dtype == jnp.float32
    np.testing.assert_allclose(back, z, atol=1e-4, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("prior", all_priors(), ids=PRIOR_IDS)
def test_finite_value_and_gradient(prior, dtype):
    # Never switch x64 off: in the x64 run the priors' hyperparameters are float64.
    with jax.enable_x64(True) if dtype == jnp.float64 else contextlib.nullcontext():
        z = _grid(-8.0, 8.0, dtype, prior)
        x = prior.forward(z)
        grad = _elementwise_grad(prior, z)
        assert x.dtype == dtype and grad.dtype == dtype
        assert jnp.all(jnp.isfinite(x))
        assert jnp.all(jnp.isfinite(grad))
        assert jnp.all(grad >= 0)  # every forward map is increasing


@pytest.mark.parametrize("prior", all_priors(), ids=PRIOR_IDS)
def test_gradient_matches_finite_differences(prior):
    with jax.enable_x64(True):
        z = _grid(-2.5, 2.5, jnp.float64, prior)
        grad = _elementwise_grad(prior, z)
        eps = 1e-6
        fd = (prior.forward(z + eps) - prior.forward(z - eps)) / (2 * eps)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_gradient_through_param_value_matches_finite_differences():
    with jax.enable_x64(True):
        prior = ep.LogNormal(3.0, 0.1)
        z0 = jnp.array([-1.0, 0.3, 2.0], dtype=jnp.float64)

        def value_sum(z):
            return jnp.sum(ep.Param.from_latent(z, prior=prior).value ** 2)

        grad = jax.grad(value_sum)(z0)
        eps = 1e-6
        fd = jnp.stack(
            [
                (value_sum(z0.at[i].add(eps)) - value_sum(z0.at[i].add(-eps)))
                / (2 * eps)
                for i in range(3)
            ]
        )
        np.testing.assert_allclose(grad, fd, rtol=1e-7)


def test_lognormal_has_requested_mean_and_sd():
    with jax.enable_x64(True):
        prior = ep.LogNormal(3.0, 0.1)
        # Integrate against the standard normal on a fine grid.
        z = jnp.linspace(-10.0, 10.0, 200001, dtype=jnp.float64)
        w = jnp.exp(-0.5 * z**2) / jnp.sqrt(2 * jnp.pi) * (z[1] - z[0])
        x = prior.forward(z)
        mean = jnp.sum(w * x)
        sd = jnp.sqrt(jnp.sum(w * (x - mean) ** 2))
        np.testing.assert_allclose(mean, 3.0, rtol=1e-8)
        np.testing.assert_allclose(sd, 0.1, rtol=1e-6)


def test_uniform_maps_median_and_tails():
    prior = ep.Uniform(-4.0, 4.0)
    x = prior.forward(jnp.array([-40.0, 0.0, 40.0]))
    np.testing.assert_allclose(x, [-4.0, 0.0, 4.0], atol=1e-6)
    u = ep.Uniform(0.0, 1.0).forward(jnp.array(1.0))
    np.testing.assert_allclose(u, jax.scipy.stats.norm.cdf(1.0), rtol=1e-6)


# --- The forward maps are the distributions they name (quantile functions) ---


def _scipy_distribution(name, h):
    """The scipy.stats distribution of a built-in prior with hyperparameters `h`,
    written out from the prior's documented parameterisation."""
    if name == "normal":
        return scipy.stats.norm(h["mean"], h["sigma"])
    if name == "lognormal":
        s2 = np.log1p((h["sigma"] / h["mean"]) ** 2)
        mu = np.log(h["mean"]) - s2 / 2
        return scipy.stats.lognorm(s=np.sqrt(s2), scale=np.exp(mu))
    if name == "uniform":
        return scipy.stats.uniform(h["low"], h["high"] - h["low"])
    if name == "halfnormal":
        return scipy.stats.halfnorm(scale=h["sigma"])
    if name == "halfcauchy":
        return scipy.stats.halfcauchy(scale=h["scale"])
    if name == "exponential":
        return scipy.stats.expon(scale=1 / h["rate"])
    raise AssertionError(name)


def _f64_priors():
    """(name, prior, hyperparameters) for every built-in prior, float64."""
    cases = [
        ("normal", ep.Normal, {"mean": 2.0, "sigma": 0.5}),
        ("normal", ep.Normal, {"mean": np.array([-1.0, 0.0, 3.0]), "sigma": 0.1}),
        ("lognormal", ep.LogNormal, {"mean": 3.0, "sigma": 0.1}),
        ("lognormal", ep.LogNormal, {"mean": 1.0, "sigma": 2.0}),
        ("uniform", ep.Uniform, {"low": -3.0, "high": 3.0}),
        ("uniform", ep.Uniform, {"low": 0.0, "high": 1e-3}),
        ("halfnormal", ep.HalfNormal, {"sigma": 1.5}),
        ("halfnormal", ep.HalfNormal, {"sigma": np.array([0.01, 1.5, 100.0])}),
        ("halfcauchy", ep.HalfCauchy, {"scale": 0.7}),
        ("halfcauchy", ep.HalfCauchy, {"scale": np.array([1e-3, 0.7, 50.0])}),
        ("exponential", ep.Exponential, {"rate": 2.0}),
        ("exponential", ep.Exponential, {"rate": np.array([1e-3, 1.0, 30.0])}),
    ]
    out = []
    for name, cls, h in cases:
        args = {k: jnp.asarray(v, jnp.float64) for k, v in h.items()}
        out.append((name, cls(**args), h))
    return out


F64_IDS = [
    "normal",
    "normal-array",
    "lognormal",
    "lognormal-wide",
    "uniform",
    "uniform-narrow",
    "halfnormal",
    "halfnormal-array",
    "halfcauchy",
    "halfcauchy-array",
    "exponential",
    "exponential-array",
]


@pytest.mark.parametrize("index", range(len(F64_IDS)), ids=F64_IDS)
def test_forward_is_the_quantile_function(index):
    """`forward(z)` is the distribution's quantile at `Phi(z)`: a standard-normal
    latent gives a draw from the named distribution."""
    with jax.enable_x64(True):
        name, prior, h = _f64_priors()[index]
        z = _grid(-5.0, 5.0, jnp.float64, prior)
        x = np.asarray(prior.forward(z))
        want = _scipy_distribution(name, h).ppf(scipy.stats.norm.cdf(np.asarray(z)))
        # atol: scipy's own rounding where x crosses 0 (ppf(cdf(0)) != 0 exactly).
        np.testing.assert_allclose(x, want, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("index", range(len(F64_IDS)), ids=F64_IDS)
def test_log_prob_matches_scipy(index):
    with jax.enable_x64(True):
        name, prior, h = _f64_priors()[index]
        z = _grid(-6.0, 6.0, jnp.float64, prior)
        x = prior.forward(z)
        lp = prior.log_prob(x)
        assert lp.dtype == jnp.float64 and lp.shape == x.shape
        want = _scipy_distribution(name, h).logpdf(np.asarray(x))
        np.testing.assert_allclose(lp, want, rtol=1e-6, atol=0)
        # Under jit, and against jax.scipy.stats where it has the distribution.
        jitted = eqx.filter_jit(lambda p, v: p.log_prob(v))(prior, x)
        np.testing.assert_allclose(jitted, lp, rtol=1e-12)
        if name == "normal":
            jax_lp = jax.scipy.stats.norm.logpdf(x, h["mean"], h["sigma"])
            np.testing.assert_allclose(lp, jax_lp, rtol=1e-6)
        if name == "exponential":
            jax_lp = jax.scipy.stats.expon.logpdf(x, scale=1 / h["rate"])
            np.testing.assert_allclose(lp, jax_lp, rtol=1e-6)
        if name == "uniform":
            width = h["high"] - h["low"]
            jax_lp = jax.scipy.stats.uniform.logpdf(x, h["low"], width)
            np.testing.assert_allclose(lp, jax_lp, rtol=1e-6)


@pytest.mark.parametrize(
    "prior, outside",
    [
        (ep.LogNormal(3.0, 0.1), [-1.0, 0.0]),
        (ep.Uniform(-3.0, 3.0), [-3.5, 3.5]),
        (ep.HalfNormal(1.5), [-1e-3, -2.0]),
        (ep.HalfCauchy(0.7), [-1e-3, -2.0]),
        (ep.Exponential(2.0), [-1e-3, -2.0]),
    ],
    ids=["lognormal", "uniform", "halfnormal", "halfcauchy", "exponential"],
)
def test_log_prob_outside_the_support_is_minus_infinity(prior, outside):
    lp = prior.log_prob(jnp.asarray(outside, jnp.float32))
    np.testing.assert_array_equal(lp, [-np.inf, -np.inf])


@pytest.mark.slow
def test_log_prob_of_model_is_log_prior_minus_log_jacobian():
    """`ep.log_prob` (density of the physical values) equals `ep.log_prior`
    (density of the latents) minus the log-Jacobian of latents -> values."""
    with jax.enable_x64(True):
        f64 = jnp.float64
        mu = ep.Param(shape=(), dtype=f64, prior=ep.Normal(1.0, 2.0))
        tau = ep.Param(shape=(), dtype=f64, prior=ep.HalfCauchy(0.5))
        template = {
            "a": ep.Param(shape=(3,), dtype=f64, prior=ep.Normal(-1.0, 0.3)),
            "b": ep.Param(shape=(2, 2), dtype=f64, prior=ep.LogNormal(3.0, 0.5)),
            "c": ep.Param(shape=(4,), dtype=f64, prior=ep.Uniform(-2.0, 5.0)),
            "d": ep.Param(shape=(), dtype=f64, prior=ep.HalfNormal(2.0)),
            "e": ep.Param(shape=(3,), dtype=f64, prior=ep.Exponential(0.5)),
            "theta": ep.Param(shape=(5,), dtype=f64, prior=ep.Normal(mu, tau)),
            "x": ep.Fixed(jnp.arange(3.0, dtype=f64)),
        }
        model = ep.normal(template, key=jax.random.key(0))
        log_jacobian = jnp.zeros((), f64)
        for param in ep.named_params(model).values():
            z = param.latent.ravel()
            slopes = jax.vmap(jax.grad(param.prior.forward))(z)
            log_jacobian += jnp.sum(jnp.log(jnp.abs(slopes)))
        want = ep.log_prior(model) - log_jacobian
        assert ep.log_prob(model).dtype == f64
        np.testing.assert_allclose(ep.log_prob(model), want, rtol=1e-10)
        np.testing.assert_allclose(jax.jit(ep.log_prob)(model), want, rtol=1e-10)
        # And it is the sum of the priors' densities (theta given mu and tau).
        by_hand = sum(
            jnp.sum(p.prior.log_prob(p.value)) for p in ep.named_params(model).values()
        )
        np.testing.assert_allclose(ep.log_prob(model), by_hand, rtol=1e-12)


@pytest.mark.slow
def test_priors_keep_bfloat16():
    z = jnp.linspace(-2, 2, 5, dtype=jnp.bfloat16)
    for prior in all_priors():
        if prior.batch_shape:
            continue
        assert prior.forward(z).dtype == jnp.bfloat16
        assert prior.inverse(prior.forward(z)).dtype == jnp.bfloat16


def test_priors_under_jit_and_vmap():
    prior = ep.Normal(jnp.array([1.0, 2.0]), 0.5)
    z = jnp.array([[0.0, 1.0], [2.0, -2.0]])
    expected = jnp.array([[1.0, 2.5], [2.0, 1.0]])
    np.testing.assert_allclose(jax.jit(lambda v: prior.forward(v))(z), expected)
    np.testing.assert_allclose(jax.vmap(prior.forward)(z), expected)
    batch = jax.vmap(lambda s: ep.Normal(0.0, s))(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(
        jax.vmap(lambda p, zi: p.forward(zi))(batch, jnp.array([1.0, 1.0])),
        [1.0, 2.0],
    )


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: ep.Normal(0.0, 0.0),
            r"Normal\(sigma=\.\.\.\)` must be finite and > 0",
        ),
        (
            lambda: ep.Normal(0.0, -1.0),
            r"Normal\(sigma=\.\.\.\)` must be finite and > 0",
        ),
        (lambda: ep.Normal(0.0, jnp.nan), r"must be finite and > 0; got nan"),
        (lambda: ep.Normal(0.0, jnp.array([1.0, -1.0])), r"got \[1.0, -1.0\]"),
        (lambda: ep.Normal(jnp.inf, 1.0), r"Normal\(mean=\.\.\.\)` must be finite"),
        (lambda: ep.LogNormal(-1.0, 0.1), r"LogNormal\(mean=\.\.\.\)` must be finite"),
        (lambda: ep.LogNormal(0.0, 0.1), r"LogNormal\(mean=\.\.\.\)` must be finite"),
        (lambda: ep.LogNormal(1.0, 0.0), r"LogNormal\(sigma=\.\.\.\)` must be finite"),
        (lambda: ep.Uniform(1.0, 1.0), r"needs low < high; got low=1.0, high=1.0"),
        (lambda: ep.Uniform(2.0, -2.0), r"needs low < high"),
        (lambda: ep.HalfNormal(0.0), r"HalfNormal\(sigma=\.\.\.\)` must be finite"),
        (lambda: ep.HalfCauchy(-1.0), r"HalfCauchy\(scale=\.\.\.\)` must be finite"),
        (lambda: ep.Exponential(jnp.inf), r"Exponential\(rate=\.\.\.\)` must be fin"),
    ],
)
def test_invalid_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_invalid_hyperparameter_under_jit_raises_at_run_time():
    @jax.jit
    def build(sigma):
        return ep.Normal(0.0, sigma).forward(jnp.array(1.0))

    np.testing.assert_allclose(build(2.0), 2.0)
    with pytest.raises(Exception, match=r"Normal\(sigma=\.\.\.\)` must be finite"):
        jax.block_until_ready(build(-1.0))


def test_non_numeric_hyperparameter():
    # Under runtime type checking the annotation catches it first; both name `mean`.
    with pytest.raises(TypeError, match=r"mean"):
        ep.Normal("zero", 1.0)  # pyright: ignore[reportArgumentType]


def test_equal_priors_do_not_recompile():
    traces = []

    @eqx.filter_jit
    def f(p):
        traces.append(None)
        return p.forward(jnp.ones(()))

    f(ep.LogNormal(3.0, 0.1))
    f(ep.LogNormal(3.0, 0.1))
    f(ep.LogNormal(4.0, 0.2))  # other values, same structure
    assert len(traces) == 1
    a, b = ep.Uniform(0.0, 1.0), ep.Uniform(0.0, 1.0)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert hash(jax.tree.structure(a)) == hash(jax.tree.structure(b))
    assert bool(eqx.tree_equal(a, b))


def test_hyperparameters_are_fixed_and_never_trained():
    prior = ep.Normal(0.0, 1.0)
    assert isinstance(prior.mean, ep.Fixed) and isinstance(prior.sigma, ep.Fixed)
    # Stored as the bits of the float: no optimiser sees a floating leaf.
    assert prior.mean.stored.dtype == jnp.dtype(f"uint{prior.mean.dtype.itemsize * 8}")
    assert not any(eqx.is_inexact_array(x) for x in jax.tree.leaves(prior))
    assert not prior.mean.value.weak_type
    assert jnp.issubdtype(ep.Normal(1, 2).sigma.dtype, jnp.floating)
    np.testing.assert_array_equal(ep.Normal(1, 2).sigma.value, 2.0)
    # An `ep.Param` hyperparameter makes a hierarchical prior: it is a latent.
    hier = ep.Normal(ep.Param(0.5), 1.0)
    assert isinstance(hier.mean, ep.Param)
    leaves = [x for x in jax.tree.leaves(hier) if eqx.is_inexact_array(x)]
    assert len(leaves) == 1 and leaves[0] is hier.mean.latent


def test_batch_shape():
    assert ep.Normal().batch_shape == ()
    assert ep.Normal(jnp.zeros(3), jnp.ones((2, 1))).batch_shape == (2, 3)
    assert ep.HalfCauchy(jnp.ones(4)).batch_shape == (4,)
    assert ep.Normal(ep.Param(shape=(3,)), 1.0).batch_shape == (3,)


# --- A user-defined prior, as documented in `AbstractPrior` ------------------


class Logistic(ep.AbstractPrior):
    """The logistic distribution through the normal CDF: `x = loc + scale *
    logit(Phi(z))`."""

    loc: ep.Fixed | ep.Param
    scale: ep.Fixed | ep.Param

    def __init__(self, loc, scale):
        self.loc = loc if ep.is_param(loc) else ep.Fixed(jnp.asarray(loc, float))
        self.scale = (
            scale if ep.is_param(scale) else ep.Fixed(jnp.asarray(scale, float))
        )

    @ep.unwrapped
    def forward(self, z):
        log_u, log_1mu = jax.scipy.special.log_ndtr(z), jax.scipy.special.log_ndtr(-z)
        return (self.loc + self.scale * (log_u - log_1mu)).astype(z.dtype)

    @ep.unwrapped
    def inverse(self, x):
        u = jax.nn.sigmoid((x - self.loc) / self.scale)
        return jax.scipy.special.ndtri(u).astype(x.dtype)

    @ep.unwrapped
    def log_prob(self, x):
        y = (x - self.loc) / self.scale
        return -y - 2 * jax.nn.softplus(-y) - jnp.log(self.scale)


@pytest.mark.slow
def test_user_defined_prior():
    with jax.enable_x64(True):
        prior = Logistic(1.0, 0.5)
        z = jnp.linspace(-3.0, 3.0, 61, dtype=jnp.float64)
        x = prior.forward(z)
        np.testing.assert_allclose(prior.inverse(x), z, atol=1e-9)
        want = scipy.stats.logistic(1.0, 0.5)
        np.testing.assert_allclose(x, want.ppf(scipy.stats.norm.cdf(z)), rtol=1e-9)
        np.testing.assert_allclose(prior.log_prob(x), want.logpdf(x), rtol=1e-9)
        # In a model: its hyperparameters are data, only the latent trains.
        model = {"w": ep.Param(jnp.array([0.5, 2.0]), prior=prior)}
        params, _ = ep.partition(model)
        assert list(params) == ["['w']"]
        np.testing.assert_allclose(ep.unwrap(model)["w"], [0.5, 2.0], rtol=1e-9)
        lp = ep.log_prob(model)
        np.testing.assert_allclose(lp, want.logpdf([0.5, 2.0]).sum(), rtol=1e-9)


def test_user_defined_prior_recompiles_only_on_structure():
    traces = []

    @eqx.filter_jit
    def f(p):
        traces.append(None)
        return p.forward(jnp.ones(()))

    f(Logistic(0.0, 1.0))
    f(Logistic(3.0, 2.0))
    assert len(traces) == 1
    np.testing.assert_allclose(
        f(Logistic(3.0, 2.0)),
        3.0 + 2.0 * math.log(0.8413447460685429 / 0.15865525393145707),
        rtol=1e-5,
    )


# --------------------------------------------------------------------------------
# LogNormal: the mean and sd of the variable, unmistakably.


def test_lognormal_spellings_and_repr():
    a = ep.LogNormal(3.0, 0.1)
    assert eqx.tree_equal(a, ep.LogNormal(3.0, sd=0.1))
    assert eqx.tree_equal(a, ep.LogNormal(mean=3.0, sd=0.1))
    assert eqx.tree_equal(a, ep.LogNormal(mean=3.0, sigma=0.1))
    assert repr(a) == "LogNormal(mean=3, sd=0.1)"
    with pytest.raises(TypeError, match=r"once.*from_log"):
        ep.LogNormal(3.0, 0.1, sd=0.1)
    with pytest.raises(TypeError, match=r"from_log\(loc, scale\)"):
        ep.LogNormal(3.0)  # type: ignore[call-arg]


def test_lognormal_from_log_is_numpyros_meaning(float_dtype):
    import numpyro.distributions as dist
    from jax.scipy.special import ndtr

    prior = ep.LogNormal.from_log(0.3, 0.5)
    z = jnp.asarray([-2.0, 0.0, 1.5], float_dtype)
    p = ep.Param.from_latent(z, prior=prior)
    reference = dist.LogNormal(0.3, 0.5)
    tol = 1e-10 if float_dtype == jnp.float64 else 1e-5
    np.testing.assert_allclose(p.value, reference.icdf(ndtr(z)), rtol=tol)
    np.testing.assert_allclose(
        float(ep.log_prob(p)), float(jnp.sum(reference.log_prob(p.value))), rtol=tol
    )
    assert repr(ep.LogNormal.from_log(0.0, 1.0)) == "LogNormal(mean=1.649, sd=2.161)"
    with pytest.raises(TypeError, match=r"ep\.Dist\(numpyro\.distributions\.LogNormal"):
        ep.LogNormal.from_log(ep.Param(0.0), 1.0)
    with pytest.raises(ValueError, match=r"scale=\.\.\.\)` must be finite and > 0"):
        ep.LogNormal.from_log(0.0, -1.0)


def test_normal_defaults_to_the_standard_normal():
    prior = ep.Normal()
    assert float(prior.mean.value) == 0.0 and float(prior.sigma.value) == 1.0
    assert float(ep.Normal(2.0).sigma.value) == 1.0


def test_lognormal_without_its_sd_names_both_spellings(unchecked_types):
    # `sigma` may also be given as `sd=`: with neither, the message names both.
    raises_and_keeps(
        lambda: ep.LogNormal(1.0, None),
        None,
        TypeError,
        match=r"as `sigma` \(the second argument\) or as `sd=`",
    )
