import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep

from .conftest import raises_and_keeps
from .models import fitted, template


class Inner(eqx.Module):
    w: ep.Param
    grid: ep.Fixed

    @ep.unwrapped
    def __call__(self, x):
        return self.w * x + jnp.sum(self.grid)


class Outer(eqx.Module):
    inner: Inner
    layers: list
    alpha: ep.Param

    @ep.unwrapped
    def __call__(self, x):
        assert isinstance(self.alpha, jax.Array)  # plain arrays inside
        for layer in self.layers:
            x = layer["scale"] * x
        return self.alpha * self.inner(x)


def make_outer():
    return Outer(
        inner=Inner(ep.Param(shape=(2,)), ep.Fixed(jnp.array([1.0, 2.0]))),
        layers=[
            {"scale": ep.Param(2.0)},
            {"scale": ep.Param(prior=ep.Normal(1.0, 0.1))},
        ],
        alpha=ep.Param(prior=ep.LogNormal(3.0, 0.1)),
    )


def test_unwrap_replaces_every_wrapper(getkey):
    model = ep.normal(make_outer(), key=getkey())
    plain = ep.unwrap(model)
    leaves = jax.tree.leaves(plain, is_leaf=ep.is_wrapper)
    assert not any(ep.is_wrapper(x) for x in leaves)
    np.testing.assert_allclose(plain.alpha, model.alpha.value)
    np.testing.assert_array_equal(plain.inner.grid, [1.0, 2.0])
    assert isinstance(plain, Outer) and isinstance(plain.inner, Inner)


def test_unwrap_is_idempotent(getkey):
    model = ep.normal(make_outer(), key=getkey())
    once = ep.unwrap(model)
    twice = ep.unwrap(once)
    assert bool(eqx.tree_equal(once, twice))


def test_unwrapped_method_sees_values(getkey):
    model = ep.normal(make_outer(), key=getkey())
    x = jnp.array([0.5, -1.0])
    plain = ep.unwrap(model)
    expected = plain.alpha * (
        plain.inner.w * (plain.layers[1]["scale"] * plain.layers[0]["scale"] * x) + 3.0
    )
    np.testing.assert_allclose(model(x), expected, rtol=1e-6)
    np.testing.assert_allclose(
        eqx.filter_jit(lambda m, v: m(v))(model, x), expected, rtol=1e-5
    )
    xs = jnp.stack([x, 2 * x])
    np.testing.assert_allclose(jax.vmap(model)(xs)[0], expected, rtol=1e-6)


def test_gradient_reaches_latents_not_fixed(getkey):
    model = ep.normal(make_outer(), key=getkey())
    grads = eqx.filter_grad(lambda m: jnp.sum(m(jnp.ones(2))))(model)
    assert jnp.all(grads.inner.w.latent != 0)
    # Fixed data is not a floating leaf (it is stored as its bits): no gradient,
    # and neither have the prior's constant hyperparameters.
    assert isinstance(grads.inner.grid, ep.Fixed) and grads.inner.grid.stored is None
    assert grads.alpha.prior.mean.stored is None
    assert grads.alpha.prior.sigma.stored is None
    # Gradient w.r.t. the latent matches the chain rule through the prior.
    m = ep.unwrap(model)
    dvalue_dlatent = jax.grad(lambda z: model.alpha.prior.forward(z))(
        model.alpha.latent
    )
    expected = jnp.sum(
        m.inner(m.layers[1]["scale"] * m.layers[0]["scale"] * jnp.ones(2))
    )
    np.testing.assert_allclose(grads.alpha.latent, expected * dvalue_dlatent, rtol=1e-5)


def test_calling_abstract_model_names_the_path():
    model = make_outer()
    with pytest.raises(
        ValueError, match=r"The Param at `inner\.w` is abstract"
    ) as info:
        model(jnp.ones(2))
    assert "ep.normal(model, key=key)" in str(info.value)
    assert "ep.zeros(model)" in str(info.value)


def test_abstract_param_in_list_path():
    model = ep.normal(make_outer(), key=jax.random.key(0))
    model = eqx.tree_at(lambda m: m.layers[1]["scale"], model, ep.Param(shape=()))
    with pytest.raises(ValueError, match=r"`layers\[1\]\['scale'\]` is abstract"):
        ep.unwrap(model)


def test_abstract_fixed_error_names_path():
    model = ep.zeros(make_outer())
    model = eqx.tree_at(lambda m: m.inner.grid, model, ep.Fixed(shape=(2,)))
    with pytest.raises(
        ValueError, match=r"The Fixed at `inner\.grid` is abstract.*Fill it"
    ):
        model(jnp.ones(2))


def test_abstract_error_under_jit():
    with pytest.raises(ValueError, match=r"`inner\.w` is abstract"):
        eqx.filter_jit(lambda m: m(jnp.ones(2)))(make_outer())


def test_unwrap_keeps_dtypes(float_dtype):
    model = ep.zeros(
        {
            "a": ep.Param(shape=(2,), dtype=float_dtype),
            "h": ep.Param(shape=(), dtype=jnp.bfloat16),
        }
    )
    plain = ep.unwrap(model)
    assert plain["a"].dtype == float_dtype
    assert plain["h"].dtype == jnp.bfloat16


def test_unwrap_integer_and_key_fields():
    key = jax.random.key(0)
    plain = ep.unwrap({"k": key, "i": jnp.arange(3), "f": ep.Fixed(jnp.arange(3))})
    assert plain["k"] is key
    np.testing.assert_array_equal(plain["f"], [0, 1, 2])


@pytest.mark.parametrize(
    "call, match",
    [
        (
            ep.unwrap,
            r"Param at `alpha` is abstract.*`model = ep.normal\(model, key=key\)`",
        ),
        (
            lambda m: m(),
            r"Param at `alpha` is abstract.*`model = ep.normal\(model, key=key\)`",
        ),
        (
            ep.ravel,
            r"`ep.ravel`.*Param at `alpha` is abstract.*ep.normal\(model, key=key\)`",
        ),
        (
            ep.log_prior,
            r"`ep.log_prior`.*Param at `alpha` is abstract.*ep.zeros\(model\)`",
        ),
        (
            ep.partition,
            r"`ep.partition`.*Param at `alpha` is abstract.*ep.zeros\(model\)`",
        ),
        (
            lambda m: m.alpha.value,
            r"is abstract.*Initialise it .*ep\.normal\(model, key=key\)",
        ),
    ],
    ids=["unwrap", "call", "ravel", "log_prior", "partition", "value"],
)
def test_abstract_param_used(call, match):
    model = template()
    raises_and_keeps(lambda: call(model), model, ValueError, match=match)


def test_abstract_param_deep_in_the_model_is_named_by_path():
    model = eqx.tree_at(
        lambda m: m.encoder.layers[1]["bias"], fitted(), ep.Param(shape=(2,))
    )
    raises_and_keeps(
        lambda: ep.ravel(model),
        model,
        ValueError,
        match=r"""`encoder.layers\[1\]\[['"]bias['"]\]` is abstract.*ep.zeros""",
    )


def test_abstract_fixed_used():
    model = eqx.tree_at(lambda m: m.x_obs, fitted(), ep.Fixed(shape=(4,)))
    raises_and_keeps(
        lambda: model(),
        model,
        ValueError,
        match=r"Fixed at `x_obs` is abstract.*`ep.set_value\(model, where, array\)`",
    )
