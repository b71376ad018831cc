"""Only latents (and plain floating arrays) train, whichever idiom trains the model.

Each test trains a model holding Fixed data and constant prior hyperparameters
and checks those bit for bit afterwards, and that the latents did move.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import eqxpurify as ep


class Decay(eqx.Module):
    amplitude: ep.Param
    lifetime: ep.Param
    offset: ep.Param
    t: ep.Fixed

    @ep.unwrapped
    def __call__(self):
        return self.amplitude * jnp.exp(-self.t / self.lifetime) + self.offset


def make_model():
    model = Decay(
        amplitude=ep.Param(1.0, prior=ep.Normal(1.0, 0.5)),
        lifetime=ep.Param(2.0, prior=ep.LogNormal(2.0, 0.5)),
        offset=ep.Param(0.0, prior=ep.Uniform(-3.0, 3.0)),
        t=ep.Fixed(jnp.array([1.0, 2.0, 3.0, 5.0, 8.0])),
    )
    truth = ep.load_values(model, {"amplitude": 1.3, "lifetime": 3.0, "offset": 0.2})
    return model, truth()


def frozen_leaves(model):
    """Every leaf that must never change: Fixed storage and hyperparameters."""
    return [
        np.asarray(model.t.stored),
        *[np.asarray(x) for x in jax.tree.leaves(model.amplitude.prior)],
        *[np.asarray(x) for x in jax.tree.leaves(model.lifetime.prior)],
        *[np.asarray(x) for x in jax.tree.leaves(model.offset.prior)],
    ]


def assert_only_latents_moved(before, after):
    for a, b in zip(frozen_leaves(before), frozen_leaves(after), strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    for name in ("amplitude", "lifetime", "offset"):
        assert getattr(after, name).latent != getattr(before, name).latent


def loss_fn(model, data):
    return jnp.mean(jnp.square(model() - data))


def test_nothing_but_latents_is_an_inexact_array():
    model, _ = make_model()
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))
    assert len(leaves) == 3
    assert all(leaf.shape == () for leaf in leaves)


def test_stock_equinox_loop_with_weight_decay(standard_promotion):
    model, data = make_model()
    optim = optax.adamw(0.1, weight_decay=0.5)
    opt_state = optim.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, opt_state):
        grads = eqx.filter_grad(loss_fn)(model, data)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = optim.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state

    trained = model
    for _ in range(200):
        trained, opt_state = step(trained, opt_state)
    assert_only_latents_moved(model, trained)
    # Weight decay pulls the latents towards 0 (a second prior), so the fit is
    # biased; it still fits far better than the start.
    assert loss_fn(trained, data) < 0.1 * loss_fn(model, data)


def test_filter_grad_gives_no_gradient_to_data_or_hyperparameters():
    model, data = make_model()
    for grads in (
        eqx.filter_grad(loss_fn)(model, data),
        eqx.filter_value_and_grad(loss_fn)(model, data)[1],
    ):
        assert grads.t.stored is None
        assert all(x is None for x in jax.tree.leaves(grads.lifetime.prior))
        assert jax.tree.leaves(grads.lifetime.prior, is_leaf=lambda x: x is None)
        assert grads.amplitude.latent.shape == ()
        assert float(grads.amplitude.latent) != 0.0


def test_jax_grad_of_whole_model():
    model, data = make_model()
    # Data is not a floating input: jax.grad refuses it loudly ...
    with pytest.raises(TypeError, match="grad requires real- or complex-valued"):
        jax.grad(loss_fn)(model, data)
    # ... and with allow_int=True it gets no gradient at all (float0).
    grads = jax.grad(loss_fn, allow_int=True)(model, data)
    assert grads.t.stored.dtype == jax.dtypes.float0
    for leaf in jax.tree.leaves(grads.offset.prior):
        assert leaf.dtype == jax.dtypes.float0
    assert grads.lifetime.latent.dtype == model.lifetime.latent.dtype


@pytest.mark.slow
def test_partition_flatten_ravel_loops_with_weight_decay(standard_promotion):
    model, data = make_model()
    optim = optax.adamw(0.1, weight_decay=0.5)

    params, rest = ep.partition(model)
    state = optim.init(params)
    for _ in range(50):
        grads = jax.grad(lambda p: loss_fn(ep.combine(p, rest), data))(params)
        updates, state = optim.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    assert_only_latents_moved(model, ep.combine(params, rest))

    latents, unflatten = ep.flatten(model)
    state = optim.init(latents)
    for _ in range(50):
        grads = jax.grad(lambda z: loss_fn(unflatten(z), data))(latents)
        updates, state = optim.update(grads, state, latents)
        latents = optax.apply_updates(latents, updates)
    assert_only_latents_moved(model, unflatten(latents))

    flat, unravel = ep.ravel(model)
    state = optim.init(flat)
    for _ in range(50):
        grads = jax.grad(lambda v: loss_fn(unravel(v), data))(flat)
        updates, state = optim.update(grads, state, flat)
        flat = optax.apply_updates(flat, updates)
    assert_only_latents_moved(model, unravel(flat))


def test_optimistix_with_model_as_y0_fails_loudly():
    optx = pytest.importorskip("optimistix")
    model, data = make_model()
    # optimistix converts every leaf of y0 to a float, which would destroy the
    # data; the model refuses to run on converted storage, naming the fix.
    with pytest.raises(Exception, match=r"ep\.partition"):
        optx.minimise(
            lambda m, _: loss_fn(m, data), optx.BFGS(rtol=1e-6, atol=1e-6), model
        )


@pytest.mark.parametrize("kind", ["minimise", "least_squares"])
def test_optimistix_on_params(kind):
    optx = pytest.importorskip("optimistix")
    model, data = make_model()
    params, rest = ep.partition(model)
    if kind == "minimise":
        sol = optx.minimise(
            lambda p, r: loss_fn(ep.combine(p, r), data),
            optx.BFGS(rtol=1e-5, atol=1e-5),
            params,
            args=rest,
            max_steps=500,
        )
    else:
        sol = optx.least_squares(
            lambda p, r: ep.combine(p, r)() - data,
            optx.LevenbergMarquardt(rtol=1e-5, atol=1e-5),
            params,
            args=rest,
            max_steps=500,
        )
    trained = ep.combine(sol.value, rest)
    assert_only_latents_moved(model, trained)
    assert loss_fn(trained, data) < 1e-5


@pytest.mark.slow
def test_numpyro_random_eqx_module(standard_promotion):
    numpyro = pytest.importorskip("numpyro")
    import numpyro.distributions as dist
    from numpyro.contrib.module import random_eqx_module
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoDelta

    model, data = make_model()
    seen = {}

    def npmodel():
        net = random_eqx_module("net", model, prior=dist.Normal(0.0, 1.0))
        seen["net"] = net
        numpyro.sample("y", dist.Normal(net(), 0.05), obs=data)

    trace = numpyro.handlers.trace(numpyro.handlers.seed(npmodel, 0)).get_trace()
    sampled = sorted(k for k, v in trace.items() if v["type"] == "sample")
    assert sampled == [
        "net/amplitude.latent",
        "net/lifetime.latent",
        "net/offset.latent",
        "y",
    ]
    svi = SVI(npmodel, AutoDelta(npmodel), optax.adam(0.05), Trace_ELBO())
    result = svi.run(jax.random.key(0), 300, progress_bar=False)
    assert result.losses[-1] < 0.1 * result.losses[0]
    # Run the model again after training: the net it builds holds the original
    # data and hyperparameters (only the latents were numpyro sites).
    fitted = numpyro.handlers.substitute(
        numpyro.handlers.seed(npmodel, 1), data=result.params
    )
    fitted()
    trained = seen["net"]
    for a, b in zip(frozen_leaves(model), frozen_leaves(trained), strict=True):
        assert a.tobytes() == np.asarray(b).tobytes()


@pytest.mark.slow
def test_hybrid_model_trains_plain_mlp_with_the_recommended_loop(
    standard_promotion, getkey
):
    t = jnp.linspace(0.0, 4.0, 40)
    data = 1.5 * jnp.exp(-t / 2.0) + 0.3 * jnp.sin(2.0 * t)

    class Hybrid(eqx.Module):
        amplitude: ep.Param
        lifetime: ep.Param
        t: ep.Fixed
        correction: eqx.nn.MLP  # plain Equinox: its arrays train as they are

        def __call__(self):
            v = ep.unwrap(self)
            physics = v.amplitude * jnp.exp(-v.t / v.lifetime)
            return physics + jax.vmap(v.correction)(v.t[:, None])[:, 0]

    model = Hybrid(
        ep.Param(1.0, prior=ep.LogNormal(1.0, 1.0)),
        ep.Param(1.0, prior=ep.LogNormal(2.0, 1.0)),
        ep.Fixed(t),
        eqx.nn.MLP(1, 1, 16, 2, activation=jnp.tanh, key=getkey()),
    )
    params, rest = ep.partition(model)
    assert "correction.layers[0].weight" in params and "amplitude" in params

    def fit(params, labels=None):
        optim = optax.adam(1e-2)
        if labels is not None:
            frozen = {"train": optim, "frozen": optax.set_to_zero()}
            optim = optax.multi_transform(frozen, labels)
        state = optim.init(params)

        @jax.jit
        def step(params, state):
            loss, grads = jax.value_and_grad(
                lambda p: loss_fn(ep.combine(p, rest), data)
            )(params)
            updates, state = optim.update(grads, state, params)
            return optax.apply_updates(params, updates), state, loss

        loss = jnp.inf
        for _ in range(1500):
            params, state, loss = step(params, state)
        return params, float(loss)

    trained, loss = fit(params)
    # Physics alone cannot fit the oscillation: with the network frozen (labelled
    # by path for the optimizer) the loss stays high.
    labels = {k: "frozen" if k.startswith("correction") else "train" for k in params}
    _, loss_physics = fit(params, labels)
    assert loss < 0.1 * loss_physics
    assert not np.array_equal(
        trained["correction.layers[0].weight"], params["correction.layers[0].weight"]
    )
    fitted = ep.combine(trained, rest)
    assert fitted.t.stored.tobytes() == model.t.stored.tobytes()


def test_tree_at_putting_a_number_in_a_param_field_is_reported():
    model, _ = make_model()
    broken = eqx.tree_at(lambda m: m.lifetime, model, 5.0)
    for fn in (ep.partition, ep.unwrap, ep.summary, ep.flatten, ep.ravel):
        with pytest.raises(
            TypeError, match=r"`lifetime` is declared `Param` but holds a float"
        ):
            fn(broken)
    latent_number = eqx.tree_at(lambda m: m.amplitude.latent, model, 0.5)
    with pytest.raises(
        TypeError, match=r"Param at `amplitude` has a latent of type float"
    ):
        ep.partition(latent_number)


class _Defaults(eqx.Module):
    """Fixed data and priors as class defaults, as the README declares them."""

    amplitude: ep.Param = ep.Param(prior=ep.Normal(1.0, 0.5))
    t: ep.Fixed = ep.Fixed(jnp.linspace(0.0, 1.0, 5))

    @ep.unwrapped
    def __call__(self):
        return self.amplitude * self.t


class _Factories(eqx.Module):
    """The same model with each instance's own arrays (`default_factory`)."""

    amplitude: ep.Param = eqx.field(
        default_factory=lambda: ep.Param(prior=ep.Normal(1.0, 0.5))
    )
    t: ep.Fixed = eqx.field(default_factory=lambda: ep.Fixed(jnp.linspace(0.0, 1.0, 5)))

    @ep.unwrapped
    def __call__(self):
        return self.amplitude * self.t


def test_donating_a_model_with_class_defaults_is_explained():
    """Class defaults are one array shared by every instance: donating one model
    deletes them in all. The next use of another instance (eager, or in a jitted
    step closing over `rest`) says so, naming the path, the sharing and the fix
    (`default_factory` or `__init__`), which keeps instances independent."""

    @eqx.filter_jit(donate="all")
    def step(model):
        return eqx.tree_at(lambda m: m.amplitude.latent, model, model.amplitude.latent)

    for cls in (_Defaults, _Factories):
        step(ep.normal(cls(), key=jax.random.key(0)))
        other = ep.normal(cls(), key=jax.random.key(1))
        if cls is _Factories:  # independent: untouched by the donation
            np.testing.assert_allclose(other(), other.amplitude.value * other.t.value)
            continue
        fix = r"has been deleted.*class default.*default_factory.*__init__"
        with pytest.raises(ValueError, match=r"`amplitude`.*" + fix):
            other()
        with pytest.raises(ValueError, match=r"Fixed at `t` " + fix):
            ep.unwrap(eqx.tree_at(lambda m: m.amplitude, other, ep.Param(1.0)))
        with pytest.raises(ValueError, match=fix):
            other.t.value
        params, rest = ep.partition(other)
        with pytest.raises(ValueError, match=fix):
            jax.jit(lambda p: ep.combine(p, rest)())(params)
