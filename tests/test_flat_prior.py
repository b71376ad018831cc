"""Improper flat priors, `ep.Flat`: flat in the value, always centred."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to

import eqxpurify as ep

from .conftest import DEFAULT_FLOAT, X64


def test_flat_is_centred_automatically():
    p = ep.Param(2.0, prior=ep.Flat(low=0.0))
    assert isinstance(p.prior, ep.Centred)
    assert repr(p) == "Param(2, prior=Centred(Flat(low=0)))"
    assert float(p.latent) == pytest.approx(math.log(2.0))
    assert float(ep.Param(-3.0, prior=ep.Flat()).latent) == -3.0
    with pytest.raises(ValueError, match="whiten=False"):
        ep.Param(2.0, prior=ep.Flat(), whiten=True)
    with pytest.raises(TypeError, match="no transform from a standard normal"):
        ep.Flat().forward(jnp.zeros(()))


@pytest.mark.parametrize(
    "flat, constraint, x",
    [
        (lambda: ep.Flat(), constraints.real, [-3.0, 0.5, 7.0]),
        (lambda: ep.Flat(low=1.0), constraints.greater_than(1.0), [1.5, 2.0, 30.0]),
        (lambda: ep.Flat(high=1.0), constraints.less_than(1.0), [-5.0, 0.0, 0.9]),
        (lambda: ep.Flat(-1.0, 3.0), constraints.interval(-1.0, 3.0), [-0.9, 0.0, 2.5]),
    ],
)
def test_log_prior_is_log_jacobian(flat, constraint, x, float_dtype):
    values = jnp.asarray(x, float_dtype)
    p = ep.Param(values, prior=flat())
    bijector = biject_to(constraint)
    wide = values.astype(DEFAULT_FLOAT)  # the reference, in the widest dtype
    u = bijector.inv(wide)
    tol = 1e-10 if float_dtype == jnp.float64 else 2e-5
    np.testing.assert_allclose(p.latent, u, rtol=tol, atol=tol)
    np.testing.assert_allclose(p.value, values, rtol=tol, atol=tol)
    expected = jnp.sum(bijector.log_abs_det_jacobian(u, wide))
    np.testing.assert_allclose(
        float(ep.log_prior(p)), float(expected), rtol=tol, atol=tol
    )
    np.testing.assert_allclose(
        float(jax.jit(ep.log_prior)(p)), float(expected), rtol=tol, atol=tol
    )
    assert float(ep.log_prob(p)) == 0.0  # flat in the value
    grad = eqx.filter_grad(ep.log_prior)(p).latent
    ref = jax.grad(lambda v: jnp.sum(bijector.log_abs_det_jacobian(v, bijector(v))))(u)
    np.testing.assert_allclose(grad, ref, rtol=1e-4, atol=1e-6)


def test_outside_the_support():
    with pytest.raises(ValueError, match="outside the support"):
        ep.Param(-1.0, prior=ep.Flat(low=0.0))
    assert float(ep.Flat(low=0.0).log_prob(jnp.asarray(-1.0))) == -np.inf
    with pytest.raises(ValueError, match="low < high"):
        ep.Flat(2.0, 1.0)


def _posterior_mean(log_density, grid):
    """E[sigma] on a grid of latents u (sigma = exp(u)), by the trapezoid rule."""
    lp = log_density(grid)
    w = jnp.exp(lp - jnp.max(lp))
    return float(jnp.trapezoid(jnp.exp(grid) * w, grid) / jnp.trapezoid(w, grid))


def test_posterior_is_flat_in_the_value():
    # y_i ~ N(0, sigma^2), a flat prior on sigma > 0. The posterior of sigma is
    # p(sigma | y) ∝ sigma^-n exp(-S / (2 sigma^2)), S = sum y_i^2, whose mean is
    # sqrt(S/2) Γ((n-2)/2) / Γ((n-1)/2). A prior flat in the latent u = log sigma
    # would give sigma^-(n+1) exp(...) instead, with mean sqrt(S/2) Γ((n-1)/2) / Γ(n/2).
    y = jnp.asarray([0.8, -1.3, 2.1, 0.4, -0.7, 1.9], DEFAULT_FLOAT)
    n, s = y.size, float(jnp.sum(jnp.square(y)))
    model = {"sigma": ep.Param(1.0, prior=ep.Flat(low=0.0))}
    flat, unravel = ep.ravel(model)

    def log_lik(sigma):
        return jnp.sum(dist.Normal(jnp.zeros((), DEFAULT_FLOAT), sigma).log_prob(y))

    def log_posterior(u):  # in latent space, what a sampler sees
        m = unravel(jnp.reshape(u, (1,)))
        return ep.log_prior(m) + log_lik(m["sigma"].value)

    def flat_in_latent(u):  # the negative control
        return log_lik(unravel(jnp.reshape(u, (1,)))["sigma"].value)

    grid = jnp.linspace(-4.0, 6.0, 40001, dtype=DEFAULT_FLOAT)
    mean = _posterior_mean(jax.vmap(log_posterior), grid)
    wrong = _posterior_mean(jax.vmap(flat_in_latent), grid)
    rel = 1e-6 if X64 else 1e-3
    lg = math.lgamma
    exact = math.sqrt(s / 2) * math.exp(lg((n - 2) / 2) - lg((n - 1) / 2))
    exact_wrong = math.sqrt(s / 2) * math.exp(lg((n - 1) / 2) - lg(n / 2))
    assert mean == pytest.approx(exact, rel=rel)
    assert wrong == pytest.approx(exact_wrong, rel=rel)
    assert abs(mean - wrong) > 0.1 * exact  # the two differ: the check has teeth


def test_normal_refuses_naming_the_path(getkey):
    model = {"a": ep.Param(shape=(2,)), "scale": ep.Param(1.0, prior=ep.Flat(low=0.0))}
    with pytest.raises(
        ValueError, match=r"`\['scale'\]`.*improper.*ep.zeros.*ep.set_value"
    ):
        ep.normal(model, key=getkey())


def test_zeros_and_set_value():
    model = {
        "a": ep.Param(prior=ep.Flat()),
        "b": ep.Param(prior=ep.Flat(low=1.0)),
        "c": ep.Param(prior=ep.Flat(0.0, 4.0)),
    }
    values = ep.values(ep.zeros(model))
    assert [float(values[k]) for k in ("['a']", "['b']", "['c']")] == [0.0, 2.0, 2.0]
    new = ep.set_value(ep.zeros(model), "['b']", 5.0)
    assert float(new["b"].latent) == pytest.approx(math.log(4.0))


def test_freeze_unfreeze_save_load(tmp_path):
    model = {"scale": ep.Param(2.0, prior=ep.Flat(low=0.0))}
    back = ep.unfreeze(ep.freeze(model, lambda m: m["scale"]), lambda m: m["scale"])
    assert eqx.tree_equal(back, model, rtol=1e-6)
    ep.save(tmp_path / "m.eqx", model)
    loaded = ep.load(tmp_path / "m.eqx", ep.zeros(model))
    assert float(loaded["scale"].value) == pytest.approx(2.0)
    assert "Centred(Flat(low=0))" in ep.summary(model)


def test_flat_hyperparameter_in_a_hierarchy():
    tau = ep.Param(2.0, prior=ep.Flat(low=0.0))
    model = {"theta": ep.Param(jnp.array([0.5, -1.0]), prior=ep.Normal(0.0, tau))}
    expected = jnp.sum(jax.scipy.stats.norm.logpdf(model["theta"].latent)) + math.log(
        2.0
    )
    np.testing.assert_allclose(float(ep.log_prior(model)), float(expected), rtol=1e-6)
    flat, unravel = ep.ravel(model)
    assert flat.shape == (3,)
    batch = jax.vmap(lambda v: ep.log_prior(unravel(v)))(jnp.stack([flat, flat]))
    np.testing.assert_allclose(batch, jnp.full((2,), float(expected)), rtol=1e-6)
