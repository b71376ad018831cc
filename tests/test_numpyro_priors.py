"""numpyro distributions as priors: `ep.Dist` and `ep.Param(prior=d)`."""

import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats
from jax.scipy.special import ndtr
from numpyro.distributions.transforms import biject_to

import eqxpurify as ep

from .conftest import tree_allclose

WHITENED = {
    "Normal": dist.Normal(1.0, 2.0),
    "Cauchy": dist.Cauchy(0.5, 2.0),
    "Laplace": dist.Laplace(-1.0, 0.5),
    "LogNormal": dist.LogNormal(0.3, 0.5),
    "HalfCauchy": dist.HalfCauchy(2.0),
    "Exponential": dist.Exponential(2.0),
    "Uniform": dist.Uniform(-1.0, 3.0),
}


@pytest.mark.parametrize("name", WHITENED)
def test_a_distribution_with_an_icdf_is_whitened(name, float_dtype):
    d = WHITENED[name]
    z = jnp.asarray([-1.5, 0.0, 0.7], float_dtype)
    p = ep.Param.from_latent(z, prior=d)
    assert isinstance(p.prior, ep.Dist) and p.prior.is_whitened
    expected = d.icdf(ndtr(z))
    tol = 1e-10 if float_dtype == jnp.float64 else 2e-5
    np.testing.assert_allclose(p.value, expected, rtol=tol, atol=tol)
    assert p.value.dtype == float_dtype
    # Round trip through the inverse, and the whitened log prior.
    back = ep.Param(p.value, prior=d)
    np.testing.assert_allclose(back.latent, z, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        float(ep.log_prior(p)),
        float(jnp.sum(jax.scipy.stats.norm.logpdf(z))),
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        float(ep.log_prob(p)), float(jnp.sum(d.log_prob(expected))), rtol=1e-4
    )
    np.testing.assert_allclose(
        float(jax.jit(ep.log_prob)(p)), float(ep.log_prob(p)), rtol=1e-6
    )


@pytest.mark.parametrize("name", WHITENED)
def test_centred_log_prior_is_numpyro_log_prob_plus_log_jacobian(name):
    d = WHITENED[name]
    x = jnp.asarray(d.icdf(jnp.asarray([0.2, 0.6])))
    p = ep.Param(x, prior=d, whiten=False)
    bijector = biject_to(d.support)
    u = bijector.inv(x)
    np.testing.assert_allclose(p.latent, u, rtol=1e-5, atol=1e-6)
    expected = jnp.sum(d.log_prob(x) + bijector.log_abs_det_jacobian(u, x))
    np.testing.assert_allclose(float(ep.log_prior(p)), float(expected), rtol=1e-5)
    grad = eqx.filter_grad(ep.log_prior)(p).latent
    ref = jax.grad(
        lambda v: jnp.sum(
            d.log_prob(bijector(v)) + bijector.log_abs_det_jacobian(v, bijector(v))
        )
    )(u)
    np.testing.assert_allclose(grad, ref, rtol=1e-4, atol=1e-5)


def test_without_an_icdf_it_is_centred():
    d = dist.Gamma(2.0, 3.0)
    p = ep.Param(0.5, prior=d)
    assert isinstance(p.prior, ep.Centred)
    assert repr(p) == "Param(0.5, prior=Centred(Gamma(concentration=2, rate=3)))"
    u = jnp.log(jnp.asarray(0.5))
    np.testing.assert_allclose(float(p.latent), float(u), rtol=1e-6)
    np.testing.assert_allclose(
        float(ep.log_prior(p)), float(d.log_prob(jnp.exp(u)) + u), rtol=1e-5
    )
    with pytest.raises(ValueError, match=r"whiten=False.*ep\.Gamma"):
        ep.Param(0.5, prior=d, whiten=True)
    with pytest.raises(ValueError, match=r"ep\.StudentT"):
        ep.Param(0.5, prior=dist.StudentT(3.0, 0.0, 1.0), whiten=True)


def test_centred_draws_follow_the_distribution(getkey):
    # KS test with 4000 draws (fixed keys): p > 1e-3.
    model = {"x": ep.Param(shape=(4000,), prior=dist.Gamma(2.0, 3.0))}
    drawn = ep.normal(model, key=getkey())
    x = np.asarray(drawn["x"].value, np.float64)
    assert (
        scipy.stats.kstest(x, scipy.stats.gamma(2.0, scale=1 / 3.0).cdf).pvalue > 1e-3
    )
    model = {"y": ep.Param(shape=(4000,), prior=dist.Cauchy(0.5, 2.0), whiten=False)}
    y = np.asarray(ep.normal(model, key=getkey())["y"].value, np.float64)
    assert scipy.stats.kstest(y, scipy.stats.cauchy(0.5, 2.0).cdf).pvalue > 1e-3


@pytest.mark.slow
def test_hierarchical_dist(getkey):
    tau = ep.Param(1.0, prior=ep.HalfNormal(2.0))
    mu = ep.Param(0.5, prior=dist.Normal(0.0, 5.0))
    prior = ep.Dist(dist.Normal, loc=mu, scale=tau)
    model = {"theta": ep.Param(jnp.array([0.1, 0.9, -0.4]), prior=prior)}
    assert set(ep.values(model)) == {
        "['theta']",
        "['theta'].prior.args['loc']",
        "['theta'].prior.args['scale']",
    }
    expected = jnp.sum(jax.scipy.stats.norm.logpdf(model["theta"].latent)) + jnp.sum(
        jax.scipy.stats.norm.logpdf(jnp.stack([tau.latent, mu.latent]))
    )
    np.testing.assert_allclose(float(ep.log_prior(model)), float(expected), rtol=1e-6)
    # Gradients reach the hyperparameters' latents, through the value.
    grads = eqx.filter_grad(lambda m: jnp.sum(m["theta"].value))(model)
    assert float(grads["theta"].prior.args["scale"].latent) != 0.0
    assert float(grads["theta"].prior.args["loc"].latent) != 0.0
    drawn = eqx.filter_jit(lambda m, k: ep.normal(m, key=k))(model, getkey())
    assert drawn["theta"].latent.shape == (3,)
    flat, unravel = ep.ravel(model)
    assert flat.shape == (5,)
    lp = jax.vmap(lambda v: ep.log_prior(unravel(v)))(jnp.stack([flat, flat]))
    np.testing.assert_allclose(lp, jnp.full((2,), float(expected)), rtol=1e-6)
    # A centred numpyro prior with a Param hyperparameter.
    gamma = ep.Dist(dist.Gamma, concentration=2.0, rate=tau)
    q = ep.Param(0.5, prior=gamma)
    u = jnp.log(jnp.asarray(0.5))
    expected = (
        dist.Gamma(2.0, tau.value).log_prob(0.5)
        + u
        + jax.scipy.stats.norm.logpdf(tau.latent)
    )
    np.testing.assert_allclose(float(ep.log_prior(q)), float(expected), rtol=1e-5)
    assert "Gamma(concentration=2, rate=Param(1, prior=HalfNormal(2)))" in ep.summary(
        {"q": q}
    )


def test_equal_priors_compare_equal_and_do_not_recompile():
    a = ep.Param(1.0, prior=dist.Cauchy(0.0, 2.0))
    b = ep.Param(1.0, prior=dist.Cauchy(0.0, 2.0))
    assert eqx.tree_equal(a, b)
    traces = []

    @eqx.filter_jit
    def f(m):
        traces.append(1)
        return ep.log_prob(m)

    f(a)
    f(b)
    f(ep.Param(1.0, prior=ep.Dist(dist.Gamma, concentration=2.0, rate=1.0)))
    f(ep.Param(1.0, prior=ep.Dist(dist.Gamma, concentration=2.0, rate=1.0)))
    assert len(traces) == 2


def test_save_load_and_freeze(tmp_path):
    model = {
        "a": ep.Param(1.0, prior=dist.Cauchy(0.0, 2.0)),
        "b": ep.Param(0.5, prior=dist.Gamma(2.0, 3.0)),
    }
    ep.save(tmp_path / "m.eqx", model)
    assert tree_allclose(ep.load(tmp_path / "m.eqx", ep.zeros(model)), model)
    back = ep.unfreeze(ep.freeze(model, lambda m: m["b"]), lambda m: m["b"])
    assert isinstance(back["b"].prior, ep.Centred)
    np.testing.assert_allclose(back["b"].latent, model["b"].latent, rtol=1e-6)


def test_refused_distributions():
    with pytest.raises(ValueError, match="discrete"):
        ep.Param(1.0, prior=dist.Poisson(3.0))
    with pytest.raises(ValueError, match="no bijection onto its support Sphere"):
        ep.Dist(dist.ProjectedNormal, concentration=jnp.ones(3))  # event-shaped
    with pytest.raises(TypeError, match="numpyro distribution class"):
        ep.Dist(ep.Normal, mean=1.0)
    with pytest.raises(TypeError, match=r"ep\.Dist\(Gamma"):
        ep.Dist(dist.Gamma, shape=2.0)


@pytest.mark.slow
def test_numpyro_is_optional(monkeypatch):
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, eqxpurify; print('numpyro' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"
    monkeypatch.setitem(sys.modules, "numpyro.distributions", None)
    with pytest.raises(ImportError, match=r'pip install "eqxpurify\[priors\]"'):
        ep.Dist(dist.Normal, loc=0.0, scale=1.0)


def test_outside_the_support_is_refused():
    with pytest.raises(ValueError, match="outside the support"):
        ep.Param(-1.0, prior=dist.Exponential(1.0))  # whitened: through the cdf
    with pytest.raises(ValueError, match="outside the support"):
        ep.Param(-1.0, prior=dist.Gamma(2.0, 1.0))  # centred: through biject_to


def test_abstract_hyperparameters(getkey):
    rate = ep.Param(prior=ep.HalfNormal(1.0))
    model = {"x": ep.Param(prior=ep.Dist(dist.Gamma, concentration=2.0, rate=rate))}
    assert model["x"].is_abstract
    drawn = ep.normal(model, key=getkey())
    assert float(drawn["x"].value) > 0
    assert float(ep.zeros(model)["x"].value) == 1.0  # exp(0)
