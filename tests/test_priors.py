import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep


class Exponential(ep.AbstractPrior):
    """A user-defined bijection, as documented in `AbstractPrior`."""

    rate: jax.Array

    def __init__(self, rate):
        self.rate = jnp.asarray(rate, dtype=float)

    def forward(self, z):
        return -jnp.log(jax.scipy.special.ndtr(-z)) / self.rate.astype(z.dtype)

    def inverse(self, x):
        return -jax.scipy.special.ndtri(jnp.exp(-self.rate.astype(x.dtype) * x))


def all_priors():
    return [
        ep.Normal(),
        ep.Normal(2.0, 0.5),
        ep.Normal(jnp.array([-1.0, 0.0, 3.0]), 0.1),
        ep.LogNormal(3.0, 0.1),
        ep.LogNormal(1.0, 2.0),
        ep.Uniform(-3.0, 3.0),
        ep.Uniform(0.0, 1e-3),
        Exponential(2.0),
    ]


PRIOR_IDS = [
    "normal",
    "normal-shifted",
    "normal-array",
    "lognormal",
    "lognormal-wide",
    "uniform",
    "uniform-narrow",
    "custom",
]


def _grid(lo, hi, dtype, prior):
    z = jnp.linspace(lo, hi, 241, dtype=dtype)
    z = z.reshape(241, *([1] * len(prior.batch_shape)))
    return jnp.broadcast_to(z, (241, *prior.batch_shape))


@pytest.mark.parametrize("prior", all_priors(), ids=PRIOR_IDS)
def test_round_trip_float64(prior):
    with jax.enable_x64(True):
        z = _grid(-6.0, 6.0, jnp.float64, prior)
        back = prior.inverse(prior.forward(z))
        assert back.dtype == jnp.float64
        np.testing.assert_allclose(back, z, atol=1e-6, rtol=0)


@pytest.mark.parametrize("prior", all_priors(), ids=PRIOR_IDS)
def test_round_trip_float32(prior):
    z = _grid(-3.0, 3.0, jnp.float32, prior)
    back = prior.inverse(prior.forward(z))
    assert back.dtype == jnp.float32
    np.testing.assert_allclose(back, z, atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("prior", all_priors(), ids=PRIOR_IDS)
def test_finite_value_and_gradient(prior, dtype):
    with jax.enable_x64(dtype == jnp.float64):
        z = _grid(-6.0, 6.0, dtype, prior)
        x = prior.forward(z)
        grad = jax.vmap(jax.grad(lambda zi: jnp.sum(prior.forward(zi))))(z)
        assert x.dtype == dtype and grad.dtype == dtype
        assert jnp.all(jnp.isfinite(x))
        assert jnp.all(jnp.isfinite(grad))


@pytest.mark.parametrize("prior", all_priors(), ids=PRIOR_IDS)
def test_gradient_matches_finite_differences(prior):
    with jax.enable_x64(True):
        z = _grid(-2.5, 2.5, jnp.float64, prior)
        grad = jax.vmap(jax.grad(lambda zi: jnp.sum(prior.forward(zi))))(z)
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


def test_priors_keep_bfloat16():
    z = jnp.linspace(-2, 2, 5, dtype=jnp.bfloat16)
    for prior in all_priors()[:-1]:
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
        (lambda: ep.Normal(0.0, 0.0), r"Normal\(sigma=\.\.\.\)` must be > 0"),
        (lambda: ep.Normal(0.0, -1.0), r"Normal\(sigma=\.\.\.\)` must be > 0"),
        (lambda: ep.Normal(0.0, jnp.nan), r"must be > 0 \(and not NaN\)"),
        (lambda: ep.Normal(0.0, jnp.array([1.0, -1.0])), r"got \[1.0, -1.0\]"),
        (lambda: ep.LogNormal(-1.0, 0.1), r"LogNormal\(mean=\.\.\.\)` must be > 0"),
        (lambda: ep.LogNormal(0.0, 0.1), r"LogNormal\(mean=\.\.\.\)` must be > 0"),
        (lambda: ep.LogNormal(1.0, 0.0), r"LogNormal\(sigma=\.\.\.\)` must be > 0"),
        (lambda: ep.Uniform(1.0, 1.0), r"needs low < high; got low=1.0, high=1.0"),
        (lambda: ep.Uniform(2.0, -2.0), r"needs low < high"),
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
    with pytest.raises(Exception, match=r"Normal\(sigma=\.\.\.\)` must be > 0"):
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


def test_hyperparameters_are_not_weakly_typed():
    prior = ep.Normal(0.0, 1.0)
    assert not prior.mean.weak_type
    assert jnp.issubdtype(ep.Normal(1, 2).sigma.dtype, jnp.floating)


def test_batch_shape():
    assert ep.Normal().batch_shape == ()
    assert ep.Normal(jnp.zeros(3), jnp.ones((2, 1))).batch_shape == (2, 3)
