"""One parameter used in several places: named Params and `ep.share`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import eqxpurify as ep

from .conftest import tree_allclose


class Groups(eqx.Module):
    """Two groups whose means share one population mean `mu`."""

    a: ep.Param
    b: ep.Param

    @ep.unwrapped
    def __call__(self):
        return jnp.sum(self.a) + 2.0 * jnp.sum(self.b)


def groups(dtype=jnp.float32, name="mu"):
    mu = ep.Param(prior=ep.Normal(0.0, 5.0), dtype=dtype, name=name)
    a = ep.Param(shape=(3,), dtype=dtype, prior=ep.Normal(mu, 1.0))
    b = ep.Param(shape=(2,), dtype=dtype, prior=ep.Normal(mu, 1.0))
    return ep.normal(Groups(a, b), key=jax.random.key(0))


class Twice(eqx.Module):
    """A layer applied twice, placed in two fields, read through one unwrap."""

    first: eqx.Module
    second: eqx.Module

    @ep.unwrapped
    def __call__(self, x):
        return self.second(jnp.tanh(self.first(x)))


class TwiceApart(Twice):
    """The same, but each use unwraps itself (in `Dense.__call__`)."""

    def __call__(self, x):
        return self.second(jnp.tanh(self.first(x)))


class Dense(eqx.Module):
    w: ep.Param
    b: ep.Param

    @ep.unwrapped
    def __call__(self, x):
        return self.w @ x + self.b


def twice(cls=Twice):
    layer = Dense(ep.Param(shape=(2, 2)), ep.Param(shape=(2,)))
    layer = ep.share(layer, "layer")
    return ep.normal(cls(layer, layer), key=jax.random.key(1))


def test_a_shared_hyperparameter_is_one_parameter(float_dtype):
    model = groups(float_dtype)
    mean_a, mean_b = model.a.prior.mean, model.b.prior.mean
    assert mean_a.latent.dtype == float_dtype
    assert float(mean_a.latent) == float(mean_b.latent)
    assert list(ep.values(model)) == ["a", "a.prior.mean", "b"]
    assert list(ep.named_params(model)) == ["a", "a.prior.mean", "b"]
    params, _ = ep.partition(model)
    assert list(params) == ["a", "a.prior.mean", "b"]
    flat, _ = ep.ravel(model)
    assert flat.shape == (6,)


def test_a_shared_prior_is_counted_once(float_dtype):
    from scipy import stats

    model = groups(float_dtype)
    zs = [model.a.latent, model.a.prior.mean.latent, model.b.latent]
    z = np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in zs])
    want = np.sum(stats.norm.logpdf(z))  # 6 latents: mu counted once
    np.testing.assert_allclose(ep.log_prior(model), want, rtol=1e-5)
    mu = float(model.a.prior.mean.value)
    a, b = (np.asarray(x, np.float64) for x in (model.a.value, model.b.value))
    norm = stats.norm.logpdf
    want = norm(mu, 0.0, 5.0) + np.sum(norm(a, mu, 1.0)) + np.sum(norm(b, mu, 1.0))
    np.testing.assert_allclose(ep.log_prob(model), want, rtol=1e-5)


def test_gradients_are_summed_over_uses_in_the_readme_loop():
    model = groups()
    params, rest = ep.partition(model)

    @jax.jit
    def loss(params):
        return ep.combine(params, rest)()

    grads = jax.grad(loss)(params)
    # a = mu + z_a, b = mu + z_b, mu = 5 z_mu: d/dz_mu = 5 * (3 + 2 * 2)
    np.testing.assert_allclose(grads["a.prior.mean"], 35.0)
    rebuilt = ep.combine(params, rest)
    assert rebuilt.b.prior.mean.latent is rebuilt.a.prior.mean.latent


def _stock_step(optimizer):
    @eqx.filter_jit
    def step(model, state):
        grads = eqx.filter_grad(lambda m: m())(model)
        updates, state = optimizer.update(
            grads, state, eqx.filter(model, eqx.is_inexact_array)
        )
        return eqx.apply_updates(model, updates), state

    return step


@pytest.mark.parametrize("loop", ["readme", "stock"])
def test_both_training_loops_keep_the_tie(loop, standard_promotion):
    del standard_promotion
    optimizer = optax.adamw(0.1)
    model = groups()
    if loop == "stock":
        state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
        step = _stock_step(optimizer)
        for _ in range(5):
            model, state = step(model, state)
    else:
        params, rest = ep.partition(model)
        state = optimizer.init(params)

        @jax.jit
        def readme_step(params, state):
            grads = jax.grad(lambda p: ep.combine(p, rest)())(params)
            updates, state = optimizer.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        for _ in range(5):
            params, state = readme_step(params, state)
        model = ep.combine(params, rest)
    # The reference: the same model written with one array for mu.
    ref = {"a": groups().a.latent, "mu": groups().a.prior.mean.latent}
    ref["b"] = groups().b.latent

    def ref_loss(p):
        mu = 5.0 * p["mu"]
        return jnp.sum(mu + p["a"]) + 2.0 * jnp.sum(mu + p["b"])

    ref_state = optimizer.init(ref)
    for _ in range(5):
        g = jax.grad(ref_loss)(ref)
        u, ref_state = optimizer.update(g, ref_state, ref)
        ref = optax.apply_updates(ref, u)
    values = ep.values(model)
    assert list(values) == ["a", "a.prior.mean", "b"]
    np.testing.assert_allclose(values["a.prior.mean"], 5.0 * ref["mu"], rtol=1e-5)
    np.testing.assert_allclose(values["b"], 5.0 * ref["mu"] + ref["b"], rtol=1e-5)


def test_one_unnamed_param_object_in_two_places_is_refused():
    mu = ep.Param(prior=ep.Normal(0.0, 5.0))
    model = Groups(
        ep.Param(shape=(3,), prior=ep.Normal(mu, 1.0)),
        ep.Param(shape=(2,), prior=ep.Normal(mu, 1.0)),
    )
    message = (
        r"`ep.normal`: the Param at `b.prior.mean` is the same object as the one at "
        r"`a.prior.mean`. A Param used in several places must have a name"
    )
    with pytest.raises(ValueError, match=message):
        ep.normal(model, key=jax.random.key(0))
    w = ep.Param(jnp.ones(2))
    ep.partition({"a": ep.Param(jnp.ones(2)), "b": ep.Param(jnp.ones(2))})  # seen
    with pytest.raises(ValueError, match=r"`ep.partition`: the Param at `\['b'\]`"):
        ep.partition({"a": w, "b": w})
    with pytest.raises(ValueError, match=r"same object.*ep\.share\(module"):
        ep.values({"a": w, "b": w})


def test_two_different_params_of_one_name_are_refused():
    model = {"a": ep.Param(jnp.ones(2), name="w"), "b": ep.Param(jnp.ones(3), name="w")}
    with pytest.raises(ValueError, match=r"Param at `\['b'\]` is named `w`, like"):
        ep.partition(model)


def test_a_module_used_twice(getkey):
    model = twice()
    assert model.first.w.name == "layer.w" and model.second.b.name == "layer.b"
    assert list(ep.values(model)) == ["first.w", "first.b"]
    params, rest = ep.partition(model)
    x = jnp.array([0.5, -1.0])
    grads = jax.grad(lambda p: jnp.sum(ep.combine(p, rest)(x)))(params)
    w, b = model.first.w.value, model.first.b.value

    def hand(w, b):
        return jnp.sum(w @ jnp.tanh(w @ x + b) + b)

    gw, gb = jax.grad(hand, argnums=(0, 1))(w, b)
    np.testing.assert_allclose(grads["first.w"], gw, rtol=1e-5)
    np.testing.assert_allclose(grads["first.b"], gb, rtol=1e-5)
    # The stock loop: every copy gets the gradient of all the uses.
    stock = eqx.filter_grad(lambda m: jnp.sum(m(x)))(model)
    np.testing.assert_allclose(stock.first.w.latent, gw, rtol=1e-5)
    np.testing.assert_allclose(stock.second.w.latent, gw, rtol=1e-5)
    stepped = eqx.apply_updates(model, jax.tree.map(lambda g: -0.1 * g, stock))
    assert list(ep.values(stepped)) == ["first.w", "first.b"]


def test_uses_trained_apart_are_refused():
    model = twice(TwiceApart)
    x = jnp.array([0.5, -1.0])
    grads = eqx.filter_grad(lambda m: jnp.sum(m(x)))(model)
    stepped = eqx.apply_updates(model, jax.tree.map(lambda g: -0.1 * g, grads))
    message = (
        r"uses of the shared Param `layer.w` at `first.w` and `second.w` hold "
        r"different latents: they were trained apart.*one `ep.unwrap`"
    )
    for call in (
        ep.values,
        ep.partition,
        lambda m: ep.normal(m, key=jax.random.key(0)),
    ):
        with pytest.raises(ValueError, match=message):
            call(stepped)


@pytest.mark.parametrize("transform", ["jit", "vmap", "scan", "tree_map"])
def test_the_tie_survives_jax_round_trips(transform):
    model = groups()
    if transform == "jit":
        out = jax.jit(lambda m: m)(model)
    elif transform == "vmap":
        out = jax.vmap(lambda m, _: m, in_axes=(None, 0))(model, jnp.arange(1))
    elif transform == "scan":
        out, _ = jax.lax.scan(lambda m, _: (m, None), model, length=2)
    else:
        out = jax.tree.map(lambda x: x, model)
    assert out.a.prior.mean is not out.b.prior.mean  # JAX copied it
    if transform == "vmap":
        out = jax.tree.map(lambda x: x[0], out)
    assert list(ep.partition(out)[0]) == ["a", "a.prior.mean", "b"]
    assert tree_allclose(ep.values(out), ep.values(model))


def test_surgery_and_saving_change_every_use_together(tmp_path):
    model = groups()
    moved = ep.set_value(model, "a.prior.mean", 2.0)
    assert float(moved.b.prior.mean.value) == 2.0
    # Every Param whose prior holds it keeps its physical value (one rule).
    np.testing.assert_allclose(moved.a.value, model.a.value, rtol=1e-6)
    np.testing.assert_allclose(moved.b.value, model.b.value, rtol=1e-6)
    frozen = ep.freeze(model, "a.prior.mean")
    assert ep.is_fixed(frozen.b.prior.mean) and frozen.b.prior.mean.name == "mu"
    assert list(ep.partition(frozen)[0]) == ["a", "b"]
    back = ep.unfreeze(frozen, "a.prior.mean")
    assert back.b.prior.mean.name == "mu"
    assert list(ep.partition(back)[0]) == ["a", "a.prior.mean", "b"]
    loaded = ep.load_values(model, {"a.prior.mean": 3.0}, strict=False)
    assert float(loaded.b.prior.mean.value) == 3.0
    np.testing.assert_allclose(loaded.b.value, model.b.value, rtol=1e-6)
    ep.save(tmp_path / "m.eqx", model)
    again = ep.load(tmp_path / "m.eqx", groups())
    assert again.b.prior.mean.name == "mu"
    assert tree_allclose(ep.values(again), ep.values(model))


def test_summary_and_repr_show_a_shared_param_once():
    model = groups()
    rows = [line.split()[0] for line in ep.summary(model).splitlines()[2:-1]]
    assert rows == ["a", "a.prior.mean", "b"]
    assert "name='mu'" in repr(model.b.prior.mean)


def test_equinox_shared_holds_params():
    layer = Dense(ep.Param(jnp.eye(2)), ep.Param(jnp.zeros(2)))

    class Tied(eqx.Module):
        shared: eqx.nn.Shared

        def __call__(self, x):
            first, second = self.shared()
            return second(first(x))

    model = Tied(eqx.nn.Shared((layer, layer), lambda p: p[1], lambda p: p[0]))
    params, rest = ep.partition(model)
    x = jnp.array([1.0, 2.0])
    np.testing.assert_allclose(ep.combine(params, rest)(x), x)
    grads = jax.grad(lambda p: jnp.sum(ep.combine(p, rest)(x)))(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads.values())


def test_share_rejects_a_bad_name():
    with pytest.raises(TypeError, match=r"`ep.share\(name=...\)` must be a non-empty"):
        ep.share(ep.Param(1.0), "")
    with pytest.raises(TypeError, match=r"`ep.Param\(name=...\)` must be a non-empty"):
        ep.Param(1.0, name="")


# --- a shared hyperparameter against an independent sampler ------------------------

Y_A = np.array([1.2, 0.4, 2.1])  # one observation per parameter of group a
Y_B = np.array([-0.3, 0.9])  # and of group b
NOISE = 0.8


def _nuts_ours(seed: int, chains=4, warmup=500, draws=2000, tied=True):
    """blackjax NUTS on `ep.ravel` of the two-group model with a shared mean
    (or, `tied=False`, two means: the negative control)."""
    import blackjax

    mu = ep.Param(prior=ep.Normal(0.0, 5.0), name="mu")
    other = mu if tied else ep.Param(prior=ep.Normal(0.0, 5.0))
    model = Groups(
        ep.Param(shape=(3,), prior=ep.Normal(mu, 1.0)),
        ep.Param(shape=(2,), prior=ep.Normal(other, 1.0)),
    )
    size = 6 if tied else 7
    _, unravel = ep.ravel(ep.zeros(model))
    norm = jax.scipy.stats.norm.logpdf

    def log_density(v):
        m = ep.unwrap(unravel(v))
        like = jnp.sum(norm(Y_A, m.a, NOISE)) + jnp.sum(norm(Y_B, m.b, NOISE))
        return like + ep.log_prior(unravel(v))

    def chain(key):
        k_start, k_warm, k_draw = jax.random.split(key, 3)
        start = jax.random.normal(k_start, (size,))
        warmup = blackjax.window_adaptation(blackjax.nuts, log_density)
        (state, parameters), _ = warmup.run(k_warm, start, num_steps=warmup_steps)
        kernel = blackjax.nuts(log_density, **parameters).step

        def one(state, key):
            state, _ = kernel(key, state)
            return state, state.position

        return jax.lax.scan(one, state, jax.random.split(k_draw, draws))[1]

    warmup_steps = warmup
    latents = jax.jit(jax.vmap(chain))(jax.random.split(jax.random.key(seed), chains))
    values = ep.draws(latents, unravel)
    return {"mu": values["a.prior.mean"], "a": values["a"], "b": values["b"]}


def _nuts_numpyro(seed: int, chains: int = 4, warmup: int = 500, draws: int = 2000):
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    def model():
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        a = numpyro.sample("a", dist.Normal(mu, 1.0).expand([3]))
        b = numpyro.sample("b", dist.Normal(mu, 1.0).expand([2]))
        numpyro.sample("ya", dist.Normal(a, NOISE), obs=jnp.asarray(Y_A))
        numpyro.sample("yb", dist.Normal(b, NOISE), obs=jnp.asarray(Y_B))

    mcmc = MCMC(
        NUTS(model),
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(seed))
    samples = mcmc.get_samples(group_by_chain=True)
    return {k: np.asarray(samples[k]) for k in ("mu", "a", "b")}


@pytest.mark.slow
def test_shared_hyperparameter_posterior_matches_numpyro(standard_promotion):
    """The posterior of a mean shared by two groups, sampled on `ep.ravel`, agrees
    with numpyro's NUTS on the same model within 4 combined Monte Carlo standard
    errors (a tie silently lost would count mu's prior twice and move it)."""
    import arviz

    del standard_promotion

    def summary(draws):
        idata = arviz.from_dict(posterior=draws)
        mcse = arviz.mcse(idata, method="mean")
        return {
            k: (v.mean(axis=(0, 1)), np.asarray(mcse[k].values))
            for k, v in draws.items()
        }

    def largest_z(ours, ref):
        out = 0.0
        for name in ("mu", "a", "b"):
            (m1, s1), (m2, s2) = ours[name], ref[name]
            out = max(out, float(np.max(np.abs((m1 - m2) / np.sqrt(s1**2 + s2**2)))))
        return out

    ref = summary(_nuts_numpyro(1))
    assert largest_z(summary(_nuts_ours(0)), ref) < 4
    # The check has power: two means instead of one move the posterior.
    assert largest_z(summary(_nuts_ours(0, tied=False)), ref) > 4
