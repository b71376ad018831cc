"""Hierarchical priors: `ep.Param` hyperparameters, nested at any depth.

`theta = ep.Param(shape=(n,), prior=ep.Normal(mu, tau))` with `mu`, `tau` Params
is non-centred by construction: every latent is standard normal and `theta`'s
value is `mu + tau * z`, computed from the current hyperparameter values.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import cauchy, norm

import eqxpurify as ep

from .conftest import DEFAULT_FLOAT, tree_allclose

# mu ~ N(M, S), tau ~ HalfNormal(T), theta_j ~ N(mu, tau).
M, S, T = 1.5, 2.0, 3.0


class Hierarchical(eqx.Module):
    theta: ep.Param


def make_model(n: int = 3, dtype=None) -> Hierarchical:
    """A hierarchical Param `theta`, abstract, in `dtype`."""
    dtype = DEFAULT_FLOAT if dtype is None else dtype
    mu = ep.Param(shape=(), dtype=dtype, prior=ep.Normal(M, S))
    tau = ep.Param(shape=(), dtype=dtype, prior=ep.HalfNormal(T))
    return Hierarchical(ep.Param(shape=(n,), dtype=dtype, prior=ep.Normal(mu, tau)))


def make_deep(dtype=None) -> Hierarchical:
    """Two levels: `theta`'s prior mean has a Param in its own prior."""
    dtype = DEFAULT_FLOAT if dtype is None else dtype
    nu = ep.Param(shape=(), dtype=dtype, prior=ep.Normal(1.0, 2.0))
    mu = ep.Param(shape=(), dtype=dtype, prior=ep.Normal(nu, 1.5))
    tau = ep.Param(shape=(), dtype=dtype, prior=ep.HalfCauchy(2.0))
    return Hierarchical(ep.Param(shape=(4,), dtype=dtype, prior=ep.Normal(mu, tau)))


PATHS = ["theta", "theta.prior.mean", "theta.prior.sigma"]
DEEP_PATHS = [
    "theta",
    "theta.prior.mean",
    "theta.prior.mean.prior.mean",
    "theta.prior.sigma",
]


def tree_equal_exact(a, b) -> bool:
    return bool(eqx.tree_equal(a, b, typematch=True))


# --- (a) the marginal of theta under ep.normal -----------------------------------


def _mean_and_sd_with_mcse(x: np.ndarray):
    """Sample mean and sd of independent draws, with their Monte Carlo standard
    errors (the sd's from the sample fourth moment: theta is heavy-tailed)."""
    x = np.asarray(x, np.float64)
    n = len(x)
    mean = x.mean()
    sq = (x - mean) ** 2
    var = sq.mean()
    se_var = sq.std() / math.sqrt(n)
    return mean, x.std() / math.sqrt(n), math.sqrt(var), se_var / (2 * math.sqrt(var))


def test_normal_draws_give_theta_its_marginal():
    model = make_model()
    keys = jax.random.split(jax.random.key(0), 20_000)
    draws = jax.jit(jax.vmap(lambda k: ep.values(ep.normal(model, key=k))))(keys)
    theta = np.asarray(draws["theta"], np.float64)
    mu = np.asarray(draws["theta.prior.mean"], np.float64)
    tau = np.asarray(draws["theta.prior.sigma"], np.float64)
    assert theta.shape == (20_000, 3) and mu.shape == tau.shape == (20_000,)

    # theta = mu + tau z: mean M, variance S^2 + E[tau^2] = S^2 + T^2.
    want_sd = math.sqrt(S**2 + T**2)
    for j in range(3):
        mean, se_mean, sd, se_sd = _mean_and_sd_with_mcse(theta[:, j])
        assert abs(mean - M) < 4 * se_mean, (j, mean, se_mean)
        assert abs(sd - want_sd) < 4 * se_sd, (j, sd, want_sd, se_sd)
    # The hyperparameters have their own marginals: E[tau] = T sqrt(2 / pi).
    mean, se_mean, sd, se_sd = _mean_and_sd_with_mcse(mu)
    assert abs(mean - M) < 4 * se_mean and abs(sd - S) < 4 * se_sd
    mean, se_mean, _, _ = _mean_and_sd_with_mcse(tau)
    assert abs(mean - T * math.sqrt(2 / math.pi)) < 4 * se_mean
    assert np.all(tau >= 0)
    # The schools share mu: Cov(theta_0, theta_1) = Var(mu) = S^2, not 0.
    prod = (theta[:, 0] - M) * (theta[:, 1] - M)
    cov, se_cov = prod.mean(), prod.std() / math.sqrt(len(prod))
    assert abs(cov - S**2) < 4 * se_cov and cov > 8 * se_cov
    # Given its hyperparameters, theta is their function: (theta - mu) / tau = z.
    z = (theta - mu[:, None]) / tau[:, None]
    mean, se_mean, sd, se_sd = _mean_and_sd_with_mcse(z.ravel()[::3])
    assert abs(mean) < 4 * se_mean and abs(sd - 1) < 4 * se_sd


# --- (b) nested Params are latents everywhere ------------------------------------


def test_nested_params_in_partition_flatten_ravel():
    model = ep.normal(make_model(), key=jax.random.key(1))
    params, rest = ep.partition(model)
    assert list(params) == PATHS
    assert [params[p].shape for p in PATHS] == [(3,), (), ()]
    assert tree_equal_exact(ep.combine(params, rest), model)

    leaves, unflatten = ep.flatten(model)
    assert [leaf.shape for leaf in leaves] == [(3,), (), ()]
    for leaf, path in zip(leaves, PATHS):
        np.testing.assert_array_equal(leaf, params[path])
    assert tree_equal_exact(unflatten(leaves), model)

    flat, unravel = ep.ravel(model)
    assert flat.shape == (5,)
    np.testing.assert_array_equal(
        flat, jnp.concatenate([jnp.ravel(params[p]) for p in PATHS])
    )
    assert tree_equal_exact(unravel(flat), model)


def test_normal_draws_nested_latents_in_path_order():
    model = make_deep()
    key = jax.random.key(7)
    drawn = ep.normal(model, key=key)
    params, _ = ep.partition(drawn)
    assert list(params) == DEEP_PATHS
    # The j-th Param in path order (a Param before its prior's Params) gets
    # normal(fold_in(key, j)).
    for j, path in enumerate(DEEP_PATHS):
        shape = params[path].shape
        want = jax.random.normal(jax.random.fold_in(key, j), shape, DEFAULT_FLOAT)
        np.testing.assert_array_equal(params[path], want)
    # Four independent streams: no two scalars equal.
    scalars = [float(params[p]) for p in DEEP_PATHS[1:]]
    assert len(set(scalars)) == 3


def test_log_prior_counts_nested_latents():
    model = ep.normal(make_deep(), key=jax.random.key(2))
    params, _ = ep.partition(model)
    z = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in params.values()])
    assert z.size == 7
    want = -0.5 * np.sum(z**2) - 7 * 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(float(ep.log_prior(model)), want, rtol=1e-6)


def test_values_and_summary_name_nested_params():
    model = ep.normal(make_deep(), key=jax.random.key(3))
    values = ep.values(model)
    assert list(values) == DEEP_PATHS
    nu = values["theta.prior.mean.prior.mean"]
    mu = values["theta.prior.mean"]
    tau = values["theta.prior.sigma"]
    params, _ = ep.partition(model)
    # Each value is computed from its own latent and its prior's current values.
    np.testing.assert_allclose(
        nu, 1.0 + 2.0 * params["theta.prior.mean.prior.mean"], rtol=1e-6
    )
    np.testing.assert_allclose(mu, nu + 1.5 * params["theta.prior.mean"], rtol=1e-6)
    np.testing.assert_allclose(values["theta"], mu + tau * params["theta"], rtol=1e-5)
    assert float(tau) > 0

    table = ep.summary(model)
    for path in DEEP_PATHS:
        row = [line for line in table.splitlines() if line.split()[:1] == [path]]
        assert len(row) == 1, path
        assert row[0].split()[1:3] == ["Param", "yes"]
    assert "Total: 4 Params (7 elements)" in table
    assert ep.named_params(model).keys() == values.keys()


@pytest.mark.slow
def test_freeze_theta_then_unfreeze_round_trips():
    with jax.enable_x64(True):
        model = ep.normal(make_model(dtype=jnp.float64), key=jax.random.key(4))
        frozen = ep.freeze(model, "theta")
        # Freezing theta freezes its prior's Params too: nothing is left to train.
        assert ep.partition(frozen)[0] == {}
        assert ep.is_fixed(frozen.theta)
        np.testing.assert_array_equal(frozen.theta.value, ep.values(model)["theta"])

        back = ep.unfreeze(frozen, "theta")
        params, rest = ep.partition(back)
        want, want_rest = ep.partition(model)
        assert list(params) == PATHS
        assert jax.tree.structure(back, is_leaf=ep.is_wrapper) == jax.tree.structure(
            model, is_leaf=ep.is_wrapper
        )
        assert tree_equal_exact(rest, want_rest)  # the constant hyperparameters
        for path in PATHS:
            # Exact up to the rounding of prior.inverse(prior.forward(z)).
            np.testing.assert_allclose(params[path], want[path], rtol=0, atol=1e-13)
        for path, value in ep.values(back).items():
            np.testing.assert_allclose(value, ep.values(model)[path], rtol=1e-14)


def test_set_value_of_a_hyperparameter():
    model = ep.normal(make_model(), key=jax.random.key(5))
    moved = ep.set_value(model, "theta.prior.mean", 1.0)
    before, after = ep.values(model), ep.values(moved)
    assert float(after["theta.prior.mean"]) == pytest.approx(1.0, abs=1e-6)
    # One rule with `ep.load_values`: theta keeps its physical value, and its
    # latent is recomputed under the new mean; the other hyperparameter is kept.
    p_before, _ = ep.partition(model)
    p_after, _ = ep.partition(moved)
    np.testing.assert_array_equal(
        p_after["theta.prior.sigma"], p_before["theta.prior.sigma"]
    )
    np.testing.assert_allclose(after["theta"], before["theta"], rtol=1e-5, atol=1e-5)
    shift = 1.0 - float(before["theta.prior.mean"])
    sigma = float(before["theta.prior.sigma"])
    np.testing.assert_allclose(
        p_after["theta"], p_before["theta"] - shift / sigma, rtol=1e-4, atol=1e-4
    )
    loaded = ep.load_values(model, {"theta.prior.mean": 1.0}, strict=False)
    assert tree_allclose(loaded, moved)


@pytest.mark.parametrize("surgery", ["set_value", "freeze"])
def test_callable_where_reaches_a_hyperparameter(surgery):
    model = ep.normal(make_model(), key=jax.random.key(5))
    if surgery == "set_value":
        by_path = ep.set_value(model, "theta.prior.mean", 1.0)
        by_lambda = ep.set_value(model, lambda m: m.theta.prior.mean, 1.0)
    else:
        by_path = ep.freeze(model, "theta.prior.mean")
        by_lambda = ep.freeze(model, lambda m: m.theta.prior.mean)
    assert tree_equal_exact(by_lambda, by_path)


def test_freeze_one_hyperparameter():
    model = ep.normal(make_model(), key=jax.random.key(10))
    frozen = ep.freeze(model, "theta.prior.mean")
    assert list(ep.partition(frozen)[0]) == ["theta", "theta.prior.sigma"]
    assert ep.is_fixed(frozen.theta.prior.mean)
    # theta keeps its latent and its value: the mean is held at its current value.
    np.testing.assert_array_equal(
        ep.partition(frozen)[0]["theta"], ep.partition(model)[0]["theta"]
    )
    np.testing.assert_allclose(
        ep.values(frozen)["theta"], ep.values(model)["theta"], rtol=1e-6
    )


def test_unfreeze_one_hyperparameter_round_trips():
    model = ep.normal(make_model(), key=jax.random.key(10))
    frozen = ep.freeze(model, "theta.prior.mean")
    back = ep.unfreeze(frozen, "theta.prior.mean")
    assert list(ep.partition(back)[0]) == PATHS
    for path, value in ep.values(back).items():
        np.testing.assert_allclose(value, ep.values(model)[path], rtol=1e-6)


def test_set_value_of_a_hyperparameter_checks_its_support():
    model = ep.normal(make_model(), key=jax.random.key(5))
    with pytest.raises(ValueError, match=r"`theta\.prior\.sigma`.*support"):
        ep.set_value(model, "theta.prior.sigma", -1.0)


def test_two_level_hierarchy_trains_every_level():
    model = ep.normal(make_deep(), key=jax.random.key(6))
    flat, unravel = ep.ravel(model)
    assert flat.shape == (7,)

    def loss(v):
        return jnp.sum(jnp.square(ep.unwrap(unravel(v)).theta - 3.0))

    g = jax.grad(loss)(flat)
    assert g.shape == (7,)
    assert np.all(np.asarray(g) != 0)  # every level, the deepest included


# --- (c) gradients reach the hyperparameter latents ------------------------------


@pytest.mark.slow
def test_gradient_flows_into_hyperparameter_latents_float64():
    with jax.enable_x64(True):
        model = ep.normal(make_model(dtype=jnp.float64), key=jax.random.key(8))
        flat, unravel = ep.ravel(model)
        target = jnp.array([0.5, -1.0, 2.0])

        def loss(v):
            m = unravel(v)
            theta = ep.unwrap(m).theta
            return jnp.sum(jnp.square(theta - target)) - ep.log_prior(m)

        grad = jax.jit(jax.grad(loss))(flat)
        eps = 1e-6
        basis = np.eye(flat.size)
        fd = np.array(
            [(loss(flat + eps * e) - loss(flat - eps * e)) / (2 * eps) for e in basis]
        )
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
        # slots 3 and 4: mu's and tau's latents.
        assert abs(float(grad[3])) > 1e-3 and abs(float(grad[4])) > 1e-3

        # In closed form: d theta_j / d z_mu = S, so the gradient on mu's latent
        # is S * sum_j dL/dtheta_j plus the prior term z_mu.
        theta = ep.unwrap(model).theta
        want_mu = S * float(jnp.sum(2 * (theta - target))) + float(flat[3])
        np.testing.assert_allclose(grad[3], want_mu, rtol=1e-10)

        # The same through ep.partition's dict and eqx.filter_grad.
        params, rest = ep.partition(model)
        g = jax.grad(lambda p: loss(ep.ravel(ep.combine(p, rest))[0]))(params)
        np.testing.assert_allclose(g["theta.prior.mean"], grad[3], rtol=1e-12)
        np.testing.assert_allclose(g["theta.prior.sigma"], grad[4], rtol=1e-12)


# --- (d) the documented pitfall, and the physical-space density ------------------


def _hierarchical_f64(tau_prior: str) -> tuple[Hierarchical, dict]:
    mu = ep.Param(0.7, prior=ep.Normal(M, S), dtype=jnp.float64)
    scale = (
        ep.HalfNormal(T) if tau_prior == "halfnormal" else ep.HalfCauchy(jnp.array(T))
    )
    tau = ep.Param(2.3, prior=scale, dtype=jnp.float64)
    theta = jnp.array([-1.0, 0.25, 4.0, 9.5])
    model = Hierarchical(ep.Param(theta, prior=ep.Normal(mu, tau)))
    return model, {"theta": theta, "mu": 0.7, "tau": 2.3}


@pytest.mark.slow
@pytest.mark.parametrize("tau_prior", ["halfnormal", "halfcauchy"])
def test_log_prob_of_hierarchical_model_is_joint_density(tau_prior):
    with jax.enable_x64(True):
        model, v = _hierarchical_f64(tau_prior)
        theta, mu, tau = v["theta"], v["mu"], v["tau"]
        log_tau = (
            norm.logpdf(tau, 0.0, T) + math.log(2)
            if tau_prior == "halfnormal"
            else cauchy.logpdf(tau, 0.0, T) + math.log(2)
        )
        want = jnp.sum(norm.logpdf(theta, mu, tau)) + norm.logpdf(mu, M, S) + log_tau
        got = ep.log_prob(model)
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, want, rtol=1e-6)
        np.testing.assert_allclose(jax.jit(ep.log_prob)(model), want, rtol=1e-6)

        # = the whitened log prior minus log |det d values / d latents|.
        flat, unravel = ep.ravel(model)

        def physical(v):
            return jnp.concatenate(
                [jnp.ravel(x) for x in ep.values(unravel(v)).values()]
            )

        _, logdet = jnp.linalg.slogdet(jax.jacfwd(physical)(flat))
        np.testing.assert_allclose(ep.log_prior(model) - logdet, want, rtol=1e-6)


def test_set_value_of_a_constant_hyperparameter_says_how():
    """A constant hyperparameter's path exists, but it is part of its prior: the
    error says so and names `eqx.tree_at` on the prior, by path or by callable,
    for `ep.set_value` and `ep.load_values`; the model is unchanged."""
    model = ep.normal(make_model(), key=jax.random.key(5))
    before = jax.tree.leaves(model)
    fix = r"constant hyperparameter.*eqx.tree_at\(lambda m: m.theta.prior.mean.prior,"
    with pytest.raises(
        ValueError,
        match=r"`ep.set_value`: `theta.prior.mean.prior.sigma` is a " + fix[:-1],
    ):
        ep.set_value(model, "theta.prior.mean.prior.sigma", 2.0)
    with pytest.raises(ValueError, match="`ep.load_values`: .*" + fix):
        ep.load_values(model, {"theta.prior.mean.prior.sigma": 2.0}, strict=False)
    with pytest.raises(ValueError, match=r"constant hyperparameter is part of its"):
        ep.set_value(model, lambda m: m.theta.prior.mean.prior.sigma, 2.0)
    half = {"t": ep.Param(0.5, prior=ep.Normal(ep.Param(1.0), 1.0))}
    with pytest.raises(
        ValueError, match=r"selected a constant hyperparameter.*eqx.tree_at"
    ):
        ep.set_value(half, lambda m: m["t"].prior.sigma, 2.0)
    flat = {"phi": ep.Param(1.0, prior=ep.LogNormal(1.0, 0.5))}
    with pytest.raises(
        ValueError, match=r"`\['phi'\].prior.sigma` is a constant.*m\['phi'\].prior"
    ):
        ep.set_value(flat, "['phi'].prior.sigma", 2.0)
    with pytest.raises(
        ValueError, match=r"constant hyperparameter is part of its prior"
    ):
        ep.set_value(flat, lambda m: m["phi"].prior.sigma, 2.0)
    assert all(a is b for a, b in zip(jax.tree.leaves(model), before))


# A hyperparameter that must be positive refuses a Param whose prior reaches
# zero or below, even while its value is still abstract (or positive).


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda h: ep.Normal(0.0, h), "Normal\\(sigma"),
        (lambda h: ep.LogNormal(h, 0.5), "LogNormal\\(mean"),
        (lambda h: ep.LogNormal(1.0, h), "LogNormal\\(sigma"),
        (lambda h: ep.HalfNormal(h), "HalfNormal\\(sigma"),
        (lambda h: ep.HalfCauchy(h), "HalfCauchy\\(scale"),
        (lambda h: ep.Exponential(h), "Exponential\\(rate"),
    ],
)
@pytest.mark.parametrize(
    "hyper",
    [
        lambda: ep.Param(prior=ep.Normal(0.0, 1.0)),
        lambda: ep.Param(1.0, prior=ep.Normal(2.0, 0.1)),  # positive for now
        lambda: ep.Param(prior=ep.Uniform(-1.0, 1.0)),
        lambda: ep.Param(prior=ep.Uniform(ep.Param(prior=ep.Normal(0.0, 1.0)), 5.0)),
    ],
)
def test_positive_hyperparameter_refuses_a_prior_reaching_below_zero(
    make, field, hyper
):
    with pytest.raises(
        ValueError,
        match=rf"`{field}=...\)` is an `ep.Param` whose prior `\w+` reaches zero or "
        r"below.*NaN.*ep.HalfNormal.*ep.LogNormal",
    ):
        make(hyper())


class _Shifted(ep.AbstractPrior):
    """A prior of the user's own: its support is not known to the library."""

    def forward(self, z):
        return z + 3.0

    def inverse(self, x):
        return x - 3.0

    def log_prob(self, x):
        return -0.5 * (x - 3.0) ** 2


def test_positive_hyperparameter_takes_positive_priors_and_trusts_the_users():
    accepted = [
        ep.HalfNormal(1.0),
        ep.HalfCauchy(1.0),
        ep.Exponential(2.0),
        ep.LogNormal(1.0, 0.5),
        ep.Uniform(0.0, 2.0),
        ep.Uniform(ep.Param(prior=ep.HalfNormal(1.0)), 5.0),
        _Shifted(),  # a prior of the user's own: its support is not known
    ]
    for prior in accepted:
        model = {"x": ep.Param(shape=(3,), prior=ep.Normal(0.0, ep.Param(prior=prior)))}
        model = ep.normal(model, key=jax.random.key(0))
        assert np.isfinite(float(ep.log_prior(model)))
    # The mean may be anything: a Normal Param is fine there.
    assert isinstance(
        ep.Normal(ep.Param(prior=ep.Normal(0.0, 5.0)), 1.0).mean, ep.Param
    )
    # Only a Uniform whose `low` is below zero reaches below it.
    with pytest.raises(ValueError, match=r"`Normal\(sigma=...\)` is an `ep.Param`"):
        ep.Normal(0.0, ep.Param(prior=ep.Uniform(-0.5, 2.0)))


def test_has_params_finds_hierarchical_priors_and_freeze_uses_it():
    from eqxpurify._wrapper_base import has_params

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
