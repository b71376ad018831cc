"""Simplex- and correlation-valued Params: `ep.Dirichlet` and `ep.LKJCholesky`.

Their latent is smaller than their value (`K - 1` for a simplex of `K`,
`d (d - 1) / 2` for a `d x d` correlation Cholesky factor), their log density
is one number per event, and they are always centred.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.special
import scipy.stats
from numpyro.distributions.transforms import biject_to

import eqxpurify as ep

from .conftest import DEFAULT_FLOAT, tree_allclose


def tol(dtype):
    return 1e-10 if jnp.dtype(dtype) == jnp.float64 else 2e-5


def standard(fn, *args):
    """A numpyro reference computation (`LKJCholesky` needs standard promotion)."""
    with jax.numpy_dtype_promotion("standard"):
        return fn(*args)


def numpyro_twin(prior):
    """The numpyro distribution inside an `ep.Dist` (through `ep.Centred`)."""
    inner = prior.prior
    args = {k: v.value for k, v in inner.args.items()}
    return standard(lambda: inner.cls(**args, **dict(inner.static_args)))


def is_simplex(x, atol):
    x = np.asarray(x, np.float64)
    return bool(np.all(x >= 0) and np.allclose(x.sum(-1), 1.0, atol=atol))


def is_corr_cholesky(x, atol):
    x = np.asarray(x, np.float64)
    d = x.shape[-1]
    upper = x[..., np.triu_indices(d, 1)[0], np.triu_indices(d, 1)[1]]
    diagonal = np.diagonal(x, axis1=-2, axis2=-1)
    rows = np.linalg.norm(x, axis=-1)
    return bool(
        np.all(upper == 0.0)  # exactly lower-triangular
        and np.all(diagonal > 0)
        and np.allclose(rows, 1.0, atol=atol)
    )


CASES = {
    # name: (prior, value shape, latent shape)
    "dirichlet": (lambda: ep.Dirichlet(jnp.array([1.0, 2.0, 3.0, 4.0])), (4,), (3,)),
    "dirichlet-batch": (lambda: ep.Dirichlet(jnp.ones((2, 3))), (2, 3), (2, 2)),
    "lkj": (lambda: ep.LKJCholesky(3, 2.0), (3, 3), (3,)),
    "lkj-4": (lambda: ep.LKJCholesky(4, 0.7), (4, 4), (6,)),
}


def on_support(name, x, atol):
    return is_simplex(x, atol) if "dirichlet" in name else is_corr_cholesky(x, atol)


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_latents_have_the_transforms_size_and_values_their_shape(name, getkey):
    make, value_shape, latent_shape = CASES[name]
    p = ep.Param(prior=make())
    assert p.is_abstract and p.shape == value_shape
    assert p.latent.shape == latent_shape
    assert ep.shapes(p).latent.shape == latent_shape
    for filled in (ep.zeros(p), ep.normal(p, key=getkey())):
        assert filled.latent.shape == latent_shape
        assert filled.shape == value_shape
        assert filled.value.shape == value_shape
        assert ep.unwrap({"p": filled})["p"].shape == value_shape
        assert ep.values({"p": filled})["['p']"].shape == value_shape
    # One log density per event: the batch of the value, without its event axes.
    drawn = ep.normal(p, key=getkey())
    batch = value_shape[:1] if name == "dirichlet-batch" else ()
    assert drawn.prior.log_prob(drawn.value).shape == batch
    assert drawn.prior.latent_log_prob(drawn.latent).shape == batch
    assert ep.log_prob(drawn).shape == ep.log_prior(drawn).shape == ()


@pytest.mark.slow
def test_a_given_shape_batches_events():
    p = ep.Param(shape=(5, 4, 4), prior=ep.LKJCholesky(4))
    assert p.latent.shape == (5, 6)
    assert ep.zeros(p).value.shape == (5, 4, 4)
    q = ep.Param(shape=(7, 3), prior=ep.Dirichlet(jnp.ones(3)))
    assert q.latent.shape == (7, 2)
    assert ep.log_prob(ep.zeros(q)).shape == ()
    assert q.prior.log_prob(ep.zeros(q).value).shape == (7,)


@pytest.mark.parametrize("name", CASES)
def test_values_lie_on_the_support(name, getkey, float_dtype):
    make, value_shape, latent_shape = CASES[name]
    p = ep.Param(prior=make(), dtype=float_dtype)
    atol = 1e-12 if float_dtype == jnp.float64 else 1e-5
    for scale in (0.1, 1.0, 3.0):
        latent = scale * jax.random.normal(getkey(), latent_shape, float_dtype)
        value = ep.Param.from_latent(latent, prior=make()).value
        assert value.dtype == float_dtype
        assert on_support(name, value, atol)
    zero = ep.zeros(p).value
    if "dirichlet" in name:  # the uniform simplex
        np.testing.assert_allclose(zero, np.full(value_shape, 1 / value_shape[-1]))
    else:  # the identity
        np.testing.assert_allclose(zero, np.eye(value_shape[-1]), atol=atol)


@pytest.mark.slow
def test_float32_simplex_of_many_categories_keeps_a_finite_density(getkey):
    """numpyro's own simplex check asks for a sum within 1e-6 of 1, which a
    float32 stick-breaking of thousands of categories misses now and then."""
    prior = ep.Dirichlet(jnp.ones(5000))
    latents = 2.0 * jax.random.normal(getkey(), (50, 4999), jnp.float32)
    ps = [ep.Param.from_latent(z, prior=prior, dtype=jnp.float32) for z in latents]
    assert all(bool(jnp.isfinite(ep.log_prob(p))) for p in ps)


def jacobian_log_det(prior, u):
    """log|det J| of the map from the latent to the free coordinates of the value.

    The first K - 1 coordinates of a simplex; the strictly lower triangle of a
    correlation Cholesky factor. Computed with `jax.jacfwd`, not numpyro's.
    """

    def free(u):
        x = prior.forward(u)
        if x.ndim == 1:
            return x[:-1]
        rows, cols = np.tril_indices(x.shape[-1], -1)
        return x[rows, cols]

    return float(jnp.linalg.slogdet(jax.jacfwd(free)(u))[1])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dirichlet", "lkj", "lkj-4"])
def test_log_prior_is_numpyro_log_prob_plus_log_jacobian(name, getkey, float_dtype):
    make, _, latent_shape = CASES[name]
    for _ in range(3):
        latent = jax.random.normal(getkey(), latent_shape, float_dtype)
        p = ep.Param.from_latent(latent, prior=make(), dtype=float_dtype)
        twin = numpyro_twin(p.prior)
        t = biject_to(twin.support)
        latent = latent.astype(DEFAULT_FLOAT)  # the reference, widest
        x = standard(t, latent)
        expected_value = float(standard(twin.log_prob, x))
        log_det = standard(t.log_abs_det_jacobian, latent, x)
        expected = expected_value + float(log_det)
        rtol = tol(float_dtype)
        np.testing.assert_allclose(float(ep.log_prob(p)), expected_value, rtol=rtol)
        np.testing.assert_allclose(float(ep.log_prior(p)), expected, rtol=rtol)
        assert ep.log_prior(p).dtype == float_dtype
        # The log-Jacobian against automatic differentiation of the transform.
        log_det = jacobian_log_det(p.prior, latent)
        lp = float(ep.log_prior(p)) - float(ep.log_prob(p))
        np.testing.assert_allclose(lp, log_det, rtol=1e-3, atol=1e-4)


def test_dirichlet_density_matches_scipy(getkey):
    concentration = np.array([0.5, 2.0, 3.0, 1.5])
    latent = jax.random.normal(getkey(), (3,), DEFAULT_FLOAT)
    p = ep.Param.from_latent(latent, prior=ep.Dirichlet(concentration))
    x = np.asarray(p.value, np.float64)
    x = x / x.sum()  # scipy's own tolerance on the sum is tighter than float32's
    expected = scipy.stats.dirichlet(concentration).logpdf(x)
    np.testing.assert_allclose(float(ep.log_prob(p)), expected, rtol=1e-4)


def test_lkj_density_is_uniform_over_correlations_at_concentration_one(getkey):
    """At concentration 1 the density of the correlation matrix is constant;
    the density of its Cholesky factor is then prod_i L_ii^(d - i - 1), up to
    a constant (the Jacobian of L -> L L^T)."""
    d = 4
    prior = ep.LKJCholesky(d, 1.0)
    diffs = []
    for _ in range(4):
        latent = jax.random.normal(getkey(), (6,), DEFAULT_FLOAT)
        p = ep.Param.from_latent(latent, prior=prior)
        diag = np.diagonal(np.asarray(p.value, np.float64))
        kernel = np.sum((d - np.arange(d) - 1) * np.log(diag))
        diffs.append(float(ep.log_prob(p)) - kernel)
    np.testing.assert_allclose(diffs, diffs[0], rtol=1e-4)


@pytest.mark.slow
def test_normal_draws_the_dirichlet_moments(getkey):
    """The mean and variance of each category over N draws, within 5 standard
    errors of the Monte Carlo estimate (sample sd / sqrt(N))."""
    n = 4000
    alpha = np.array([1.0, 2.0, 3.0, 4.0])
    p = ep.Param(shape=(n, 4), prior=ep.Dirichlet(alpha))
    x = np.asarray(ep.normal(p, key=getkey()).value, np.float64)
    assert is_simplex(x, 1e-5)
    a0 = alpha.sum()
    mean = alpha / a0
    var = alpha * (a0 - alpha) / (a0**2 * (a0 + 1))
    se = x.std(0) / np.sqrt(n)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se)
    sq = (x - mean) ** 2
    assert np.all(np.abs(sq.mean(0) - var) < 5 * sq.std(0) / np.sqrt(n))
    # Draws of separate Params (one stream each) are not all equal.
    two = ep.normal({"a": ep.Param(prior=ep.Dirichlet(alpha))} | {"b": p}, key=getkey())
    assert not np.allclose(two["a"].value, two["b"].value[0])


@pytest.mark.slow
@pytest.mark.parametrize("eta", [1.0, 3.0])
def test_normal_draws_the_lkj_marginals(getkey, eta):
    """An off-diagonal correlation r of LKJ(d, eta) has (r + 1) / 2 ~ Beta(a, a),
    a = eta - 1 + d / 2: mean 0, E[r^2] = 1 / (2a + 1). Each within 5 standard
    errors of the Monte Carlo estimate."""
    n, d = 4000, 3
    p = ep.Param(shape=(n, d, d), prior=ep.LKJCholesky(d, eta))
    lower = np.asarray(ep.normal(p, key=getkey()).value, np.float64)
    assert is_corr_cholesky(lower, 1e-5)
    corr = lower @ np.swapaxes(lower, -1, -2)
    np.testing.assert_allclose(np.diagonal(corr, axis1=1, axis2=2), 1.0, atol=1e-5)
    a = eta - 1 + d / 2
    for i, j in [(1, 0), (2, 0), (2, 1)]:
        r = corr[:, i, j]
        assert abs(r.mean()) < 5 * r.std() / np.sqrt(n)
        assert abs((r**2).mean() - 1 / (2 * a + 1)) < 5 * (r**2).std() / np.sqrt(n)


@pytest.mark.slow
def test_normal_is_deterministic_and_works_under_jit_and_vmap(getkey):
    model = {"w": ep.Param(prior=ep.Dirichlet(jnp.ones(3))), "c": lkj_param()}
    key = getkey()
    once = ep.normal(model, key=key)
    assert tree_allclose(once, ep.normal(model, key=key))
    assert tree_allclose(jax.jit(lambda k: ep.normal(model, key=k))(key), once)
    keys = jax.random.split(getkey(), 3)
    ensemble = jax.vmap(lambda k: ep.normal(model, key=k))(keys)
    assert ensemble["w"].latent.shape == (3, 2)
    first = ep.normal(model, key=keys[0])
    np.testing.assert_allclose(ensemble["c"].latent[0], first["c"].latent, rtol=1e-6)


def lkj_param(value=None):
    if value is None:
        return ep.Param(prior=ep.LKJCholesky(3, 2.0))
    return ep.Param(value, prior=ep.LKJCholesky(3, 2.0))


def model_of(key):
    keys = jax.random.split(key, 2)
    return {
        "w": ep.Param.from_latent(
            jax.random.normal(keys[0], (3,), DEFAULT_FLOAT),
            prior=ep.Dirichlet(jnp.ones(4)),
        ),
        "c": ep.Param.from_latent(
            jax.random.normal(keys[1], (3,), DEFAULT_FLOAT),
            prior=ep.LKJCholesky(3, 2.0),
        ),
        "b": ep.Param(0.5),
    }


def test_ravel_round_trip_and_draws(getkey):
    model = model_of(getkey())
    flat, unravel = ep.ravel(model)
    assert flat.shape == (3 + 3 + 1,)
    assert tree_allclose(unravel(flat), model)
    moved = unravel(flat + 0.5)
    assert is_simplex(moved["w"].value, 1e-5)
    assert is_corr_cholesky(moved["c"].value, 1e-5)
    out = ep.draws(jnp.stack([flat, flat + 0.5]), unravel)
    assert out["['w']"].shape == (2, 4) and out["['c']"].shape == (2, 3, 3)
    np.testing.assert_allclose(out["['w']"][1], moved["w"].value, rtol=1e-6)
    params, rest = ep.partition(model)
    assert params["['w']"].shape == (3,) and params["['c']"].shape == (3,)
    assert tree_allclose(ep.combine(params, rest), model)


def test_set_value_and_load_values_round_trip(getkey):
    model = model_of(getkey())
    simplex = jnp.array([0.1, 0.2, 0.3, 0.4], DEFAULT_FLOAT)
    corr = np.array([[1.0, 0.3, -0.2], [0.3, 1.0, 0.5], [-0.2, 0.5, 1.0]])
    lower = jnp.asarray(np.linalg.cholesky(corr), DEFAULT_FLOAT)
    new = ep.set_value(model, lambda m: m["w"], simplex)
    new = ep.set_value(new, lambda m: m["c"], lower)
    np.testing.assert_allclose(new["w"].value, simplex, rtol=1e-5)
    np.testing.assert_allclose(new["c"].value, lower, rtol=1e-5, atol=1e-6)
    assert new["w"].latent.shape == (3,) and new["c"].latent.shape == (3,)
    # What `ep.values` gives out loads back, into a zeroed model too.
    back = ep.load_values(ep.zeros(model), ep.values(new))
    assert tree_allclose(back, new, rtol=1e-5, atol=1e-6)


def test_set_value_refuses_a_wrong_shape_or_a_value_off_the_support():
    model = {"w": ep.Param(prior=ep.Dirichlet(jnp.ones(4))), "c": lkj_param()}
    model = ep.zeros(model)
    with pytest.raises(ValueError, match=r"`\['w'\]`.*shape \(4,\)"):
        ep.set_value(model, lambda m: m["w"], jnp.full((3,), 1 / 3))
    with pytest.raises(ValueError, match=r"`\['w'\]` is outside the support"):
        ep.set_value(model, lambda m: m["w"], jnp.array([0.5, 0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match=r"`\['w'\]` is outside the support"):
        ep.set_value(model, lambda m: m["w"], jnp.array([1.2, -0.2, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"`\['c'\]` is outside the support"):
        ep.set_value(model, lambda m: m["c"], jnp.ones((3, 3)))  # not triangular
    with pytest.raises(ValueError, match=r"`\['c'\]` is outside the support"):
        ep.set_value(model, lambda m: m["c"], 2.0 * jnp.eye(3))  # rows not unit
    with pytest.raises(ValueError, match="outside the support"):
        ep.Param(jnp.array([0.2, 0.2, 0.2]), prior=ep.Dirichlet(jnp.ones(3)))
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(4, 4\)"):
        ep.Param(jnp.eye(4), prior=ep.LKJCholesky(3))
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        ep.Param(shape=(4,), prior=ep.Dirichlet(jnp.ones(3)))


@pytest.mark.slow
def test_log_prob_is_minus_infinity_off_the_support():
    dirichlet = ep.Dirichlet(jnp.ones(3))
    x = jnp.array([[0.2, 0.3, 0.5], [0.5, 0.5, 0.5], [1.2, -0.2, 0.0]], DEFAULT_FLOAT)
    lp = dirichlet.log_prob(x)
    assert lp.shape == (3,)
    np.testing.assert_allclose(lp[0], np.log(2.0), rtol=1e-5)
    assert lp[1] == -jnp.inf and lp[2] == -jnp.inf
    lkj = ep.LKJCholesky(2)
    good = jnp.array([[1.0, 0.0], [0.6, 0.8]], DEFAULT_FLOAT)
    lp = lkj.log_prob(jnp.stack([good, jnp.ones((2, 2), DEFAULT_FLOAT), 2 * good]))
    assert bool(jnp.isfinite(lp[0])) and lp[1] == -jnp.inf and lp[2] == -jnp.inf


def test_save_load_round_trip(tmp_path, getkey):
    model = model_of(getkey())
    path = tmp_path / "model.eqx"
    ep.save(path, model)
    assert tree_allclose(ep.load(path, ep.zeros(model)), model)
    assert tree_allclose(ep.load(path, ep.shapes(model)), model)
    other = {**model, "w": ep.Param(prior=ep.Dirichlet(jnp.ones(5)))}
    with pytest.raises(ValueError):
        ep.load(path, ep.zeros(other))


def test_freeze_unfreeze_round_trip(getkey):
    model = model_of(getkey())
    frozen = ep.freeze(model, lambda m: (m["w"], m["c"]))
    assert frozen["w"].shape == (4,) and frozen["c"].shape == (3, 3)
    back = ep.unfreeze(frozen, lambda m: (m["w"], m["c"]))
    assert tree_allclose(back, model, rtol=1e-5, atol=1e-6)


def test_printing_and_summary_show_the_value(getkey):
    p = ep.Param(jnp.array([0.2, 0.3, 0.5]), prior=ep.Dirichlet(jnp.ones(3)))
    assert repr(p) == (
        "Param([0.2, 0.3, 0.5], prior=Centred(Dirichlet(concentration=[1, 1, 1])))"
    )
    abstract = ep.Param(prior=ep.LKJCholesky(3, 2.0))
    assert repr(abstract) == (
        "Param(abstract, shape=(3, 3), "
        "prior=Centred(LKJCholesky(dimension=3, concentration=2)))"
    )
    model = {"w": p, "c": ep.zeros(abstract)}
    assert "LKJCholesky(dimension=3, concentration=2)" in str(model)
    rows = {line.split()[0]: line.split() for line in ep.summary(model).splitlines()}
    assert rows["['w']"][3] == "(3,)" and rows["['c']"][3:5] == ["(3,", "3)"]
    assert rows["['w']"][-2:] == ["0.2", "0.5"]  # min and max of the value
    assert rows["['c']"][-2:] == ["0", "1"]  # the identity
    ep.summary(ep.shapes(model))  # abstract: no statistics, no crash


@pytest.mark.slow
def test_jit_grad_vmap_through_the_log_density(getkey):
    model = model_of(getkey())
    flat, unravel = ep.ravel(model)

    def log_density(v):
        return ep.log_prior(unravel(v))

    jitted = jax.jit(log_density)
    np.testing.assert_allclose(jitted(flat), log_density(flat), rtol=1e-6)
    grad = jax.jit(jax.grad(log_density))(flat)
    assert grad.shape == flat.shape and bool(jnp.all(jnp.isfinite(grad)))
    # Central differences, step 1e-3 in float32 and 1e-6 in float64.
    eps = 1e-3 if flat.dtype == jnp.float32 else 1e-6
    steps = eps * jnp.eye(flat.shape[0], dtype=flat.dtype)
    up, down = jax.vmap(jitted)(flat + steps), jax.vmap(jitted)(flat - steps)
    np.testing.assert_allclose(grad, (up - down) / (2 * eps), rtol=2e-2, atol=2e-2)
    batch = flat + jax.random.normal(getkey(), (5, flat.shape[0]), flat.dtype)
    mapped = jax.vmap(log_density)(batch)
    looped = jnp.stack([jitted(v) for v in batch])
    np.testing.assert_allclose(mapped, looped, rtol=1e-5)
    # The physical density too, through the README loop's partition/combine.
    params, rest = ep.partition(model)
    grads = jax.jit(jax.grad(lambda p: ep.log_prob(ep.combine(p, rest))))(params)
    assert grads["['w']"].shape == (3,) and grads["['c']"].shape == (3,)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads.values())


@pytest.mark.slow
def test_hierarchical_concentration_params(getkey):
    concentration = ep.Param(jnp.full((3,), 2.0), prior=ep.LogNormal(2.0, 1.0))
    eta = ep.Param(1.5, prior=ep.HalfNormal(2.0))
    model = {
        "w": ep.Param(prior=ep.Dirichlet(concentration)),
        "c": ep.Param(prior=ep.LKJCholesky(3, eta)),
    }
    model = ep.normal(model, key=getkey())
    names = list(ep.values(model))
    assert names == [
        "['c']",
        "['c'].prior.prior.args['concentration']",
        "['w']",
        "['w'].prior.prior.args['concentration']",
    ]
    alpha = model["w"].prior.prior.args["concentration"]
    assert alpha.value.shape == (3,) and bool(jnp.all(alpha.value > 0))
    w = np.asarray(model["w"].value, np.float64)
    a = np.asarray(alpha.value, np.float64)
    log_dirichlet = scipy.special.gammaln(a.sum()) - scipy.special.gammaln(a).sum()
    log_dirichlet += np.sum((a - 1) * np.log(w))
    eta_p = model["c"].prior.prior.args["concentration"]
    with jax.numpy_dtype_promotion("standard"):
        twin = dist.LKJCholesky(3, eta_p.value)
    expected = (
        log_dirichlet
        + float(alpha.prior.log_prob(alpha.value).sum())
        + float(standard(twin.log_prob, model["c"].value))
        + float(eta_p.prior.log_prob(eta_p.value))
    )
    np.testing.assert_allclose(float(ep.log_prob(model)), expected, rtol=1e-4)
    # The hyperparameters train: gradients reach their latents.
    params, rest = ep.partition(model)
    assert len(params) == 4
    grads = jax.grad(lambda p: ep.log_prior(ep.combine(p, rest)))(params)
    for g in grads.values():
        assert bool(jnp.all(jnp.isfinite(g))) and bool(jnp.any(g != 0))
    # A concentration that is a Param with a prior reaching below zero is refused.
    with pytest.raises(ValueError, match="reaches"):
        ep.Dirichlet(ep.Param(jnp.ones(3), prior=ep.Normal(1.0, 1.0)))


def test_numpyro_distributions_give_the_same_prior():
    a = ep.Param(jnp.array([0.2, 0.3, 0.5]), prior=dist.Dirichlet(jnp.ones(3)))
    b = ep.Param(jnp.array([0.2, 0.3, 0.5]), prior=ep.Dirichlet(jnp.ones(3)))
    assert tree_allclose(a, b)
    with jax.numpy_dtype_promotion("standard"):
        lkj = dist.LKJCholesky(3, 2.0)
    c = ep.Param(prior=lkj)
    assert c.prior == ep.Param(prior=ep.LKJCholesky(3, 2.0)).prior
    d = ep.Param(prior=ep.Dist(dist.LKJCholesky, dimension=3, concentration=2.0))
    assert d.prior == c.prior


def test_whiten_true_is_refused_and_the_default_is_centred():
    p = ep.Param(prior=ep.Dirichlet(jnp.ones(3)))
    assert isinstance(p.prior, ep.Centred) and not p.prior.is_whitened
    assert isinstance(ep.Param(prior=ep.LKJCholesky(3), whiten=False).prior, ep.Centred)
    with pytest.raises(ValueError, match=r"whiten=False.*always centred"):
        ep.Param(prior=ep.Dirichlet(jnp.ones(3)), whiten=True)
    with pytest.raises(ValueError, match=r"whiten=False.*always centred"):
        ep.Param(prior=ep.LKJCholesky(3), whiten=True)
    with pytest.raises(TypeError, match="always centred"):
        ep.Dirichlet(jnp.ones(3)).forward(jnp.zeros(2))


def test_bad_arguments_are_refused(unchecked_types):
    with pytest.raises(ValueError, match="at least 2"):
        ep.Dirichlet(1.0)
    with pytest.raises(ValueError, match="at least 2"):
        ep.Dirichlet(jnp.ones(1))
    with pytest.raises(ValueError, match="> 0"):
        ep.Dirichlet(jnp.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="at least 2"):
        ep.LKJCholesky(1)
    with pytest.raises(ValueError, match="at least 2"):
        ep.LKJCholesky(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="> 0"):
        ep.LKJCholesky(3, 0.0)


@pytest.mark.parametrize(
    "make", [lambda: ep.Dirichlet(jnp.ones(2)), lambda: ep.LKJCholesky(2)]
)
def test_numpyro_is_required_and_named(monkeypatch, make):
    monkeypatch.setitem(sys.modules, "numpyro.distributions", None)
    with pytest.raises(
        ImportError, match=r"`ep\.\w+` needs numpyro.*eqxpurify\[priors\]"
    ):
        make()
