import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import eqxpurify as ep

from .conftest import tree_allclose


class Decay(eqx.Module):
    """A small physics-style model: y = amplitude * exp(-rate * t) + offset."""

    amplitude: ep.Param
    rate: ep.Param
    offset: ep.Param
    t: ep.Fixed
    mask: jax.Array  # integer data, never trained
    name: str = eqx.field(static=True)

    @ep.unwrapped
    def __call__(self):
        y = self.amplitude * jnp.exp(-self.rate[:, None] * self.t) + self.offset
        return jnp.where(self.mask > 0, y, 0.0)


def make_decay(key):
    model = Decay(
        amplitude=ep.Param(2.0, prior=ep.LogNormal(2.0, 0.5)),
        # An array-valued prior hyperparameter: one prior mean per rate.
        rate=ep.Param(prior=ep.LogNormal(jnp.array([0.5, 1.0, 2.0]), 0.3)),
        offset=ep.Param(prior=ep.Normal(0.0, 0.1)),
        t=ep.Fixed(jnp.linspace(0.0, 3.0, 20)),
        mask=jnp.ones(20, jnp.int32),
        name="decay",
    )
    return ep.normal(model, key=key)


def test_partition_holds_exactly_the_latents(getkey):
    model = make_decay(getkey())
    params, rest = ep.partition(model)
    leaves = jax.tree.leaves(params)
    assert len(leaves) == 3
    assert all(isinstance(x, jax.Array) for x in leaves)
    assert params.amplitude.latent is model.amplitude.latent
    assert params.t.array is None and params.mask is None
    assert params.rate.prior is None
    assert rest.amplitude.latent is None
    assert rest.t.array is model.t.array
    assert rest.rate.prior.mean is model.rate.prior.mean
    assert rest.name == "decay"


def test_combine_partition_round_trip(getkey):
    model = make_decay(getkey())
    rebuilt = ep.combine(*ep.partition(model))
    assert tree_allclose(rebuilt, model, rtol=0, atol=0)
    assert jax.tree.structure(rebuilt) == jax.tree.structure(model)


def test_partition_abstract_model():
    model = Decay(
        ep.Param(shape=()),
        ep.Param(shape=(3,)),
        ep.Param(shape=()),
        ep.Fixed(jnp.zeros(5)),
        jnp.ones(5, jnp.int32),
        "x",
    )
    params, rest = ep.partition(model)
    assert isinstance(params.rate.latent, jax.ShapeDtypeStruct)
    assert ep.combine(params, rest).rate.shape == (3,)


def test_combine_mismatched_structures(getkey):
    model = make_decay(getkey())
    params, _ = ep.partition(model)
    with pytest.raises(ValueError, match="same `ep.partition"):
        ep.combine(params, {"a": 1})


def test_partition_under_jit_grad_vmap(getkey):
    model = make_decay(getkey())
    params, rest = ep.partition(model)

    def loss(p):
        return jnp.sum(ep.combine(p, rest)() ** 2)

    grads = eqx.filter_grad(loss)(params)
    assert grads.t.array is None and grads.mask is None
    assert grads.rate.latent.shape == (3,)
    jitted = eqx.filter_jit(eqx.filter_grad(loss))(params)
    assert tree_allclose(jitted, grads, rtol=1e-5)

    # vmap over an ensemble of latents: partition of a batched model.
    keys = jax.random.split(getkey(), 4)
    ensemble = eqx.filter_vmap(lambda k: ep.normal(model, key=k))(keys)
    batched_params, batched_rest = ep.partition(ensemble)
    outs = eqx.filter_vmap(lambda p: ep.combine(p, rest)())(batched_params)
    assert outs.shape == (4, 3, 20)
    np.testing.assert_allclose(
        outs[2], ep.combine(jax.tree.map(lambda x: x[2], batched_params), rest)()
    )
    assert batched_rest.rate.latent is None


def test_adamw_training_leaves_fixed_and_hyperparameters_untouched(
    getkey, standard_promotion
):
    """Issue 2, item 2: 50 adamw steps move every latent and nothing else."""
    model = make_decay(getkey())
    target = make_decay(getkey())()
    params, rest = ep.partition(model)
    before_rest = jax.tree.map(np.array, jax.tree.leaves(rest))

    optim = optax.adamw(1e-2, weight_decay=0.1)
    opt_state = optim.init(params)

    @eqx.filter_jit
    def step(params, opt_state):
        def loss(p):
            return jnp.mean((ep.combine(p, rest)() - target) ** 2)

        grads = eqx.filter_grad(loss)(params)
        updates, opt_state = optim.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state

    for _ in range(50):
        params, opt_state = step(params, opt_state)

    trained = ep.combine(params, rest)
    _, trained_rest = ep.partition(trained)
    after_rest = jax.tree.leaves(trained_rest)
    assert len(after_rest) == len(before_rest) > 0
    for a, b in zip(after_rest, before_rest):
        np.testing.assert_array_equal(np.asarray(a), b)  # bit for bit
        assert np.asarray(a).dtype == b.dtype
    # Explicitly: the Fixed grid and the array-valued prior means.
    np.testing.assert_array_equal(trained.t.array, model.t.array)
    np.testing.assert_array_equal(trained.rate.prior.mean, model.rate.prior.mean)
    for old, new in zip(
        jax.tree.leaves(ep.partition(model)[0]), jax.tree.leaves(params)
    ):
        assert np.all(np.asarray(old) != np.asarray(new))  # every element moved
