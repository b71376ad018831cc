"""Event-shaped priors: the multivariate normal, its covariance from Params."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import eqxpurify as ep

from .conftest import DEFAULT_FLOAT


class Kernel(eqx.Module):
    """A squared-exponential kernel on a fixed grid: amplitude and length scale."""

    amplitude: ep.Param
    scale: ep.Param
    x: ep.Fixed

    @ep.unwrapped
    def __call__(self):
        d = self.x[:, None] - self.x[None, :]
        k = self.amplitude**2 * jnp.exp(-0.5 * (d / self.scale) ** 2)
        return k + 1e-3 * jnp.eye(self.x.shape[0], dtype=k.dtype)


def kernel(n=5):
    return Kernel(
        ep.Param(1.5, prior=ep.LogNormal(1.0, 0.5)),
        ep.Param(0.7, prior=ep.LogNormal(1.0, 0.5)),
        ep.Fixed(jnp.linspace(0.0, 2.0, n)),
    )


def matrix(k):
    return np.asarray(k(), dtype=np.float64)


@pytest.mark.slow
def test_forward_inverse_and_density_match_scipy():
    k = kernel()
    prior = ep.MultivariateNormal(jnp.arange(5.0), k)
    z = jax.random.normal(jax.random.key(0), (5,), DEFAULT_FLOAT)
    x = prior.forward(z)
    lower = np.linalg.cholesky(matrix(k))
    np.testing.assert_allclose(x, np.arange(5.0) + lower @ np.asarray(z), rtol=1e-4)
    np.testing.assert_allclose(prior.inverse(x), z, rtol=1e-3, atol=1e-4)
    want = stats.multivariate_normal(np.arange(5.0), matrix(k)).logpdf(np.asarray(x))
    np.testing.assert_allclose(prior.log_prob(x), want, rtol=1e-4)
    # one number per vector (per event), for a batch of vectors too
    batch = jnp.stack([x, x + 0.1, x - 0.2])
    assert prior.log_prob(batch).shape == (3,)
    np.testing.assert_allclose(prior.inverse(batch)[0], z, rtol=1e-3, atol=1e-4)


def test_a_gp_prior_with_hyperparameters_as_params():
    f = ep.Param(shape=(5,), prior=ep.MultivariateNormal(0.0, kernel()))
    model = ep.normal({"f": f}, key=jax.random.key(1))
    assert list(ep.values(model)) == [
        "['f']",
        "['f'].prior.covariance.amplitude",
        "['f'].prior.covariance.scale",
    ]
    k = model["f"].prior.covariance
    amp, scale = k.amplitude.value, k.scale.value
    value = model["f"].value
    want = (
        stats.multivariate_normal(np.zeros(5), matrix(k)).logpdf(np.asarray(value))
        + k.amplitude.prior.log_prob(amp)
        + k.scale.prior.log_prob(scale)
    )
    np.testing.assert_allclose(ep.log_prob(model), want, rtol=1e-4)
    # The whitened log prior: every latent standard normal, 5 + 2 of them.
    params, rest = ep.partition(model)
    flat = jnp.concatenate([jnp.ravel(v) for v in params.values()])
    np.testing.assert_allclose(
        ep.log_prior(model), np.sum(stats.norm.logpdf(np.asarray(flat))), rtol=1e-5
    )
    grads = jax.grad(lambda p: jnp.sum(ep.unwrap(ep.combine(p, rest))["f"] ** 2))(
        params
    )
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads.values())
    assert float(jnp.abs(grads["['f'].prior.covariance.amplitude"])) > 0


def test_prior_draws_have_the_covariance():
    k = kernel(3)
    f = ep.Param(shape=(3,), prior=ep.MultivariateNormal(0.0, k))
    keys = jax.random.split(jax.random.key(2), 4000)
    # The kernel's Params would be drawn too: compare given fixed hyperparameters.
    fixed = ep.freeze(
        f, lambda p: (p.prior.covariance.amplitude, p.prior.covariance.scale)
    )
    draws = jax.vmap(lambda key: ep.normal(fixed, key=key).value)(keys)
    cov = np.cov(np.asarray(draws, np.float64).T)
    # 4000 draws: the sample covariance's sd is about sqrt(2 / 4000) * |K| ~ 0.05.
    np.testing.assert_allclose(cov, matrix(k), atol=0.25)


def test_centred_gives_one_density_per_vector():
    k = kernel()
    value = jnp.linspace(-1.0, 1.0, 5)
    f = ep.Param(value, prior=ep.MultivariateNormal(0.0, k), whiten=False)
    np.testing.assert_allclose(f.latent, value, rtol=1e-6)  # the identity bijection
    fixed = ep.freeze(
        {"f": f},
        lambda m: (
            m["f"].prior.prior.covariance.amplitude,
            m["f"].prior.prior.covariance.scale,
        ),
    )
    want = stats.multivariate_normal(np.zeros(5), matrix(k)).logpdf(np.asarray(value))
    np.testing.assert_allclose(ep.log_prior(fixed), want, rtol=1e-4)


def test_bad_covariances_are_refused():
    with pytest.raises(
        ValueError, match=r"must be a square matrix, got shape \(2, 3\)"
    ):
        ep.MultivariateNormal(0.0, jnp.ones((2, 3)))
    with pytest.raises(TypeError, match=r"needs a covariance"):
        ep.MultivariateNormal(0.0)
    prior = ep.MultivariateNormal(0.0, jnp.eye(3))
    with pytest.raises(ValueError, match=r"the last axis must have length 3"):
        ep.Param(jnp.ones(4), prior=prior)
