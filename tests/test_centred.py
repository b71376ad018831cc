"""The centred (unconstrained) parameterisation: `whiten=False` and `ep.Centred`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats
from numpyro.distributions.transforms import biject_to

import eqxpurify as ep

from .conftest import DEFAULT_FLOAT, tree_allclose

_S2 = float(np.log1p(1.0 / 9.0))  # LogNormal(3, 1): the variance of the log
_LOG_NORMAL = dist.LogNormal(float(np.log(3.0)) - 0.5 * _S2, float(np.sqrt(_S2)))

# Each built-in prior with its numpyro twin (for density and support).
PRIORS = {
    "Normal": (lambda: ep.Normal(1.0, 2.0), dist.Normal(1.0, 2.0), 0.7),
    "LogNormal": (lambda: ep.LogNormal(3.0, 1.0), _LOG_NORMAL, 2.5),
    "HalfNormal": (lambda: ep.HalfNormal(2.0), dist.HalfNormal(2.0), 1.5),
    "HalfCauchy": (lambda: ep.HalfCauchy(2.0), dist.HalfCauchy(2.0), 3.0),
    "Exponential": (lambda: ep.Exponential(2.0), dist.Exponential(2.0), 0.4),
    "Uniform": (lambda: ep.Uniform(-1.0, 3.0), dist.Uniform(-1.0, 3.0), 2.5),
}


@pytest.mark.parametrize("name", PRIORS)
def test_log_prior_is_log_prob_plus_log_jacobian(name, float_dtype):
    make, twin, x = PRIORS[name]
    p = ep.Param(jnp.asarray(x, float_dtype), prior=make(), whiten=False)
    assert isinstance(p.prior, ep.Centred)
    bijector = biject_to(twin.support)
    u = bijector.inv(jnp.asarray(x, DEFAULT_FLOAT))  # the reference, widest
    expected = float(
        twin.log_prob(bijector(u)) + bijector.log_abs_det_jacobian(u, bijector(u))
    )
    tol = 1e-12 if float_dtype == jnp.float64 else 2e-5
    np.testing.assert_allclose(float(p.latent), float(u), rtol=tol, atol=tol)
    np.testing.assert_allclose(float(ep.log_prior(p)), expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(
        float(jax.jit(ep.log_prior)(p)), expected, rtol=tol, atol=tol
    )
    # The physical density is unchanged by the parameterisation.
    np.testing.assert_allclose(
        float(ep.log_prob(p)), float(ep.log_prob(ep.Param(x, prior=make()))), rtol=1e-5
    )
    assert ep.log_prior(p).dtype == float_dtype


@pytest.mark.parametrize("name", PRIORS)
def test_gradient_matches_numpyro(name):
    make, twin, x = PRIORS[name]
    p = ep.Param(x, prior=make(), whiten=False)
    bijector = biject_to(twin.support)

    def reference(u):
        value = bijector(u)
        return twin.log_prob(value) + bijector.log_abs_det_jacobian(u, value)

    grad = eqx.filter_grad(ep.log_prior)(p).latent
    np.testing.assert_allclose(
        float(grad), float(jax.grad(reference)(p.latent)), rtol=1e-4, atol=1e-5
    )


def test_centred_normal_latent_is_value():
    p = ep.Param(jnp.array([0.5, -2.0, 7.0]), prior=ep.Normal(1.0, 3.0), whiten=False)
    np.testing.assert_array_equal(p.latent, p.value)
    np.testing.assert_array_equal(p.latent, jnp.array([0.5, -2.0, 7.0]))


def test_centred_lognormal_latent_is_log_value():
    p = ep.Param(jnp.array([2.0, 5.0]), prior=ep.LogNormal(3.0, 0.5), whiten=False)
    np.testing.assert_allclose(p.latent, jnp.log(jnp.array([2.0, 5.0])), rtol=1e-6)
    q = ep.Param.from_latent(
        jnp.array([0.0, 1.0]), prior=ep.LogNormal(3.0, 0.5), whiten=False
    )
    np.testing.assert_allclose(q.value, jnp.exp(jnp.array([0.0, 1.0])), rtol=1e-6)
    assert repr(q) == "Param([1, 2.718], prior=Centred(LogNormal(mean=3, sd=0.5)))"


def test_whitened_models_keep_log_prior_bit_for_bit():
    # A whitened Param next to a centred one: the whitened part is the
    # standard-normal sum, the centred part its own density.
    z = jnp.array([0.3, -1.2, 2.0])
    whitened = ep.Param.from_latent(z, prior=ep.LogNormal(3.0, 1.0))
    centred = ep.Param(2.0, prior=ep.HalfNormal(1.0), whiten=False)
    model = {"a": whitened, "b": centred}
    expected_a = -0.5 * jnp.sum(jnp.square(z)) + 3 * (-0.5 * np.log(2 * np.pi))
    u = jnp.log(jnp.asarray(2.0))
    expected_b = dist.HalfNormal(1.0).log_prob(jnp.exp(u)) + u
    np.testing.assert_allclose(
        float(ep.log_prior(model)), float(expected_a + expected_b), rtol=1e-6
    )
    assert ep.log_prior({"a": whitened}) == ep.log_prior(ep.Param.from_latent(z))


def test_normal_draws_follow_the_prior(getkey):
    # KS tests against the exact prior with 4000 draws; p > 1e-3 (the keys are
    # fixed, so the outcome is deterministic).
    model = {
        "x": ep.Param(shape=(4000,), prior=ep.LogNormal(3.0, 1.0), whiten=False),
        "y": ep.Param(shape=(4000,), prior=ep.Uniform(-1.0, 3.0), whiten=False),
    }
    drawn = ep.normal(model, key=getkey())
    x = np.asarray(drawn["x"].value, np.float64)
    exact = scipy.stats.lognorm(
        float(_LOG_NORMAL.scale), scale=np.exp(float(_LOG_NORMAL.loc))
    )
    assert scipy.stats.kstest(x, exact.cdf).pvalue > 1e-3
    y = np.asarray(drawn["y"].value, np.float64)
    assert scipy.stats.kstest(y, scipy.stats.uniform(-1.0, 4.0).cdf).pvalue > 1e-3
    np.testing.assert_allclose(
        drawn["x"].latent, jnp.log(drawn["x"].value), rtol=1e-5, atol=1e-6
    )


@pytest.mark.slow
def test_normal_is_deterministic_and_jits(getkey):
    model = {"x": ep.Param(shape=(3,), prior=ep.HalfCauchy(1.0), whiten=False)}
    key = getkey()
    eager = ep.normal(model, key=key)
    jitted = eqx.filter_jit(lambda m, k: ep.normal(m, key=k))(model, key)
    assert tree_allclose(eager, jitted)
    keys = jax.random.split(key, 5)
    batch = eqx.filter_vmap(lambda k: ep.normal(model, key=k))(keys)
    assert batch["x"].latent.shape == (5, 3)
    one = ep.normal(model, key=keys[2])
    np.testing.assert_allclose(batch["x"].latent[2], one["x"].latent, rtol=1e-6)


def test_zeros_sets_the_unconstrained_latent():
    model = {"x": ep.Param(prior=ep.LogNormal(3.0, 1.0), whiten=False)}
    assert float(ep.zeros(model)["x"].value) == 1.0  # exp(0)


def test_values_set_value_load_values():
    model = {"rate": ep.Param(2.0, prior=ep.LogNormal(3.0, 1.0), whiten=False)}
    assert float(ep.values(model)["['rate']"]) == pytest.approx(2.0)
    new = ep.set_value(model, "['rate']", 4.0)
    assert isinstance(new["rate"].prior, ep.Centred)
    assert float(new["rate"].latent) == pytest.approx(np.log(4.0))
    back = ep.load_values(model, {"['rate']": jnp.asarray(5.0)})
    assert float(back["rate"].latent) == pytest.approx(np.log(5.0))
    with pytest.raises(ValueError, match="outside the support"):
        ep.set_value(model, "['rate']", -1.0)


def test_freeze_unfreeze_keep_whiten_false():
    model = {
        "a": ep.Param(2.0, prior=ep.LogNormal(3.0, 1.0), whiten=False),
        "b": ep.Param(1.0),
    }
    frozen = ep.freeze(model, lambda m: m["a"])
    assert ep.is_fixed(frozen["a"])
    assert float(frozen["a"].value) == pytest.approx(2.0)
    back = ep.unfreeze(frozen, lambda m: m["a"])
    assert isinstance(back["a"].prior, ep.Centred)
    np.testing.assert_allclose(back["a"].latent, model["a"].latent, rtol=1e-6)


@pytest.mark.slow
def test_ravel_unravel_and_draws():
    model = {
        "a": ep.Param(2.0, prior=ep.LogNormal(3.0, 1.0), whiten=False),
        "b": ep.Param(1.0),
    }
    flat, unravel = ep.ravel(model)
    np.testing.assert_allclose(flat, jnp.array([np.log(2.0), 1.0]), rtol=1e-6)
    assert tree_allclose(unravel(flat), model)
    samples = jnp.stack([flat, flat + 1.0])
    out = ep.draws(samples, unravel)
    np.testing.assert_allclose(out["['a']"], jnp.array([2.0, 2.0 * np.e]), rtol=1e-5)
    # The log density in latent space under vmap and its Hessian (a Laplace fit).
    lp = jax.vmap(lambda v: ep.log_prior(unravel(v)))(samples)
    assert lp.shape == (2,)
    assert jax.hessian(lambda v: ep.log_prior(unravel(v)))(flat).shape == (2, 2)


def test_save_load_round_trip(tmp_path):
    tau = ep.Param(1.5, prior=ep.HalfNormal(2.0), whiten=False)
    model = {
        "theta": ep.Param(jnp.array([0.1, -0.4]), prior=ep.Normal(0.0, tau)),
        "rate": ep.Param(2.0, prior=ep.LogNormal(3.0, 1.0), whiten=False),
    }
    path = tmp_path / "model.eqx"
    ep.save(path, model)
    like = ep.zeros(model)
    loaded = ep.load(path, like)
    assert tree_allclose(loaded, model)
    whitened_like = {
        "theta": model["theta"],
        "rate": ep.Param(1.0, prior=ep.LogNormal(3.0, 1.0)),
    }
    with pytest.raises(ValueError, match="Centred"):
        ep.load(path, whitened_like)


@pytest.mark.slow
def test_hierarchy_both_ways(getkey):
    # A centred hyperparameter inside a whitened prior, and a whitened one inside
    # a centred prior.
    tau = ep.Param(1.5, prior=ep.HalfNormal(2.0), whiten=False)
    sigma = ep.Param(0.7, prior=ep.HalfNormal(1.0))
    model = {
        "theta": ep.Param(jnp.array([0.1, -0.4]), prior=ep.Normal(0.0, tau)),
        "x": ep.Param(jnp.array([0.3, 0.5]), prior=ep.Normal(1.0, sigma), whiten=False),
    }
    paths = set(ep.values(model))
    assert paths == {
        "['theta']",
        "['theta'].prior.sigma",
        "['x']",
        "['x'].prior.prior.sigma",
    }
    np.testing.assert_array_equal(model["x"].latent, jnp.array([0.3, 0.5]))
    z_theta = model["theta"].latent
    u_tau = jnp.log(jnp.asarray(1.5))
    expected = (
        jnp.sum(jax.scipy.stats.norm.logpdf(z_theta))
        + jax.scipy.stats.norm.logpdf(sigma.latent)
        + dist.HalfNormal(2.0).log_prob(jnp.exp(u_tau))
        + u_tau
        + jnp.sum(dist.Normal(1.0, sigma.value).log_prob(jnp.array([0.3, 0.5])))
    )
    np.testing.assert_allclose(float(ep.log_prior(model)), float(expected), rtol=1e-5)
    grads = eqx.filter_grad(ep.log_prior)(model)
    assert jnp.all(jnp.isfinite(grads["x"].prior.prior.sigma.latent))
    assert jnp.all(jnp.isfinite(grads["theta"].prior.sigma.latent))
    # ep.normal: the centred child is drawn given its freshly drawn hyperparameter.
    drawn = ep.normal(model, key=getkey())
    assert not jnp.allclose(drawn["x"].latent, model["x"].latent)
    text = ep.summary(drawn)
    assert "Centred(Normal(1, Param(" in text
    assert "Centred(HalfNormal(2))" in repr(drawn["theta"])


def test_jit_does_not_recompile_for_an_equal_model():
    traces = []

    @eqx.filter_jit
    def f(m):
        traces.append(1)
        return ep.log_prior(m)

    for _ in range(2):
        f({"x": ep.Param(2.0, prior=ep.LogNormal(3.0, 1.0), whiten=False)})
    assert len(traces) == 1


def test_bad_whiten():
    with pytest.raises(TypeError, match="whiten"):
        ep.Param(1.0, whiten="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="contradictory"):
        ep.Param(1.0, prior=ep.Centred(ep.Normal()), whiten=True)
    with pytest.raises(TypeError, match="already centred"):
        ep.Centred(ep.Centred(ep.Normal()))


def test_custom_prior_without_support_cannot_be_centred():
    class Shifted(ep.AbstractPrior):
        def forward(self, z):
            return z + 1

        def inverse(self, x):
            return x - 1

        def log_prob(self, x):
            return jax.scipy.stats.norm.logpdf(x - 1)

    with pytest.raises(TypeError, match="declares no support"):
        ep.Param(1.0, prior=Shifted(), whiten=False)

    class Declared(Shifted):
        support = "real"

    p = ep.Param(1.0, prior=Declared(), whiten=False)
    assert float(p.latent) == 1.0


def test_abstract_hyperparameters(getkey):
    low = ep.Param(prior=ep.Normal())
    model = {"y": ep.Param(prior=ep.Uniform(low, 5.0), whiten=False)}
    drawn = ep.normal(model, key=getkey())
    lo = float(drawn["y"].prior.prior.low.value)
    assert lo < float(drawn["y"].value) < 5.0
