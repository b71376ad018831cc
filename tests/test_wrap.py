"""`wrap`: converting existing Equinox modules to Params and Fixed arrays."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep
from eqxpurify import named_params, wrap

from .conftest import raises_and_keeps, tree_allclose

TOL = dict(rtol=1e-6, atol=1e-6)


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL)


def test_linear(getkey, float_dtype):
    linear = eqx.nn.Linear(3, 4, key=getkey(), dtype=float_dtype)
    wrapped = wrap(linear)
    assert isinstance(wrapped.weight, ep.Param) and isinstance(wrapped.bias, ep.Param)
    assert wrapped.weight.dtype == float_dtype
    x = jax.random.normal(getkey(), (3,), float_dtype)
    _close(ep.unwrap(wrapped)(x), linear(x))
    # The default priors: LeCun scale for the weight, N(0, 1) for the bias.
    sigma = wrapped.weight.prior.sigma
    assert isinstance(sigma, ep.Fixed)  # a constant hyperparameter
    np.testing.assert_allclose(sigma.value, 1 / math.sqrt(3), rtol=1e-6)
    np.testing.assert_array_equal(wrapped.weight.prior.mean.value, 0.0)
    np.testing.assert_array_equal(wrapped.bias.prior.sigma.value, 1.0)
    # Values kept: latents are the weights over the prior scale.
    _close(wrapped.weight.latent, linear.weight * math.sqrt(3))
    _close(wrapped.bias.latent, linear.bias)


def test_mlp_outputs_and_paths(getkey):
    mlp = eqx.nn.MLP(3, 2, 4, 2, key=getkey())
    wrapped = wrap(mlp)
    assert list(named_params(wrapped)) == [
        f"layers[{i}].{name}" for i in range(3) for name in ("weight", "bias")
    ]
    xs = jax.random.normal(getkey(), (5, 3))
    batched = eqx.filter_jit(lambda m, xs: jax.vmap(ep.unwrap(m))(xs))
    _close(batched(wrapped, xs), batched(mlp, xs))
    _close(ep.unwrap(wrapped)(xs[0]), mlp(xs[0]))  # eagerly too
    # Every array is kept: unwrap(wrap(m)) gives back m.
    assert tree_allclose(ep.unwrap(wrapped), mlp, rtol=1e-6, atol=1e-7)


def test_lstm_cell(getkey):
    cell = eqx.nn.LSTMCell(3, 4, key=getkey())
    wrapped = wrap(cell)
    assert list(named_params(wrapped)) == ["weight_ih", "weight_hh", "bias"]
    np.testing.assert_allclose(
        wrapped.weight_hh.prior.sigma.value, 1 / math.sqrt(4), rtol=1e-6
    )
    x = jax.random.normal(getkey(), (3,))
    state = (jax.random.normal(getkey(), (4,)), jax.random.normal(getkey(), (4,)))
    run = eqx.filter_jit(lambda m, x, state: ep.unwrap(m)(x, state))
    for got, want in zip(run(wrapped, x, state), run(cell, x, state)):
        _close(got, want)


def test_mlp_gradient_matches(getkey):
    """`eqx.filter_grad` through the converted MLP equals the original's gradient."""
    mlp = eqx.nn.MLP(3, 2, 4, 2, key=getkey())
    xs = jax.random.normal(getkey(), (5, 3))
    ys = jax.random.normal(getkey(), (5, 2))

    def loss(m):
        return jnp.mean(jnp.square(jax.vmap(m)(xs) - ys))

    want = eqx.filter_jit(eqx.filter_grad(loss))(mlp)

    # With an identity prior the latents are the weights: gradients are equal.
    params, rest = ep.partition(wrap(mlp, prior=ep.Normal(0.0, 1.0)))
    grad = eqx.filter_jit(
        eqx.filter_grad(lambda p, r: loss(ep.unwrap(ep.combine(p, r))))
    )
    got = grad(params, rest)
    assert sorted(got) == sorted(
        f"layers[{i}].{name}" for i in range(3) for name in ("weight", "bias")
    )
    for i, layer_want in enumerate(want.layers):
        _close(got[f"layers[{i}].weight"], layer_want.weight)
        _close(got[f"layers[{i}].bias"], layer_want.bias)

    # With the default LeCun prior w = z / sqrt(fan_in): dL/dz = dL/dw / sqrt(fan_in).
    wrapped = wrap(mlp)
    got = eqx.filter_jit(eqx.filter_grad(lambda m: loss(ep.unwrap(m))))(wrapped)
    for layer_got, layer_want, layer in zip(got.layers, want.layers, mlp.layers):
        scale = 1 / math.sqrt(layer.in_features)
        _close(layer_got.weight.latent, layer_want.weight * scale)
        _close(layer_got.bias.latent, layer_want.bias)
        # Prior hyperparameters are not floating leaves: no gradient at all.
        assert layer_got.weight.prior.sigma.stored is None
        assert layer_got.weight.prior.mean.stored is None
    params, _ = ep.partition(wrapped)
    assert list(params) == list(named_params(wrapped))  # the 6 latents, no more


def test_default_prior_reinitialises_like_lecun(getkey):
    wide = wrap(eqx.nn.Linear(400, 50, key=getkey()))
    fresh = ep.normal(wide, key=getkey())
    std = float(jnp.std(fresh.weight.value))  # 20000 draws: within 5% of LeCun
    assert abs(std - 1 / math.sqrt(400)) < 0.05 / math.sqrt(400)


def test_fixed_selection(getkey):
    mlp = eqx.nn.MLP(3, 2, 4, 2, key=getkey())
    wrapped = wrap(mlp, fixed=lambda m: m.layers[0])
    assert isinstance(wrapped.layers[0].weight, ep.Fixed)
    assert isinstance(wrapped.layers[0].bias, ep.Fixed)
    assert isinstance(wrapped.layers[1].weight, ep.Param)
    np.testing.assert_array_equal(wrapped.layers[0].weight.value, mlp.layers[0].weight)
    params, _ = ep.partition(wrapped)
    assert list(params) == [
        "layers[1].weight",
        "layers[1].bias",
        "layers[2].weight",
        "layers[2].bias",
    ]
    # Paths and sequences of paths select the same way.
    by_path = wrap(mlp, fixed="layers[0]")
    assert tree_allclose(by_path, wrapped, rtol=0, atol=0)
    several = wrap(mlp, fixed=["layers[0].weight", "layers[2]"])
    assert isinstance(several.layers[0].bias, ep.Param)
    assert isinstance(several.layers[2].bias, ep.Fixed)
    x = jnp.ones(3)
    _close(ep.unwrap(several)(x), mlp(x))


def test_fixed_errors(getkey):
    mlp = eqx.nn.MLP(3, 2, 4, 2, key=getkey())
    with pytest.raises(
        ValueError,
        match=r"`ep.wrap`: the model has no node at `layer\[0\]`\. Closest existing "
        r"paths: .*`layers\[0\]`",
    ):
        wrap(mlp, fixed="layer[0]")
    with pytest.raises(ValueError, match=r"`fixed` selects no plain array"):
        wrap(mlp, fixed=lambda m: m.activation)


class Physics(eqx.Module):
    amplitude: jax.Array
    grid: jax.Array
    counts: jax.Array
    key: jax.Array
    name: str = eqx.field(static=True, default="physics")

    def __call__(self):
        return self.amplitude * self.grid + self.counts.sum().astype(self.grid.dtype)


def make_physics(key):
    return Physics(
        amplitude=jnp.asarray(2.0),
        grid=jnp.linspace(0.0, 1.0, 3),
        counts=jnp.arange(3),
        key=key,
    )


def test_user_module(getkey):
    physics = make_physics(getkey())
    wrapped = wrap(physics, fixed=lambda m: m.grid, prior=ep.LogNormal(2.0, 1.0))
    assert isinstance(wrapped.amplitude, ep.Param)
    assert isinstance(wrapped.grid, ep.Fixed)
    assert wrapped.counts is physics.counts  # integers stay plain arrays
    assert wrapped.key is physics.key  # keys too
    np.testing.assert_allclose(wrapped.amplitude.value, 2.0, rtol=1e-6)
    np.testing.assert_allclose(
        wrapped.amplitude.latent, ep.LogNormal(2.0, 1.0).inverse(jnp.asarray(2.0))
    )
    _close(ep.unwrap(wrapped)(), physics())
    # `fixed` may select integer data too; a `prior` function sees each array.
    seen = []

    def prior(x):
        seen.append(x.shape)
        return ep.Normal(0.0, 2.0)

    wrapped = wrap(physics, fixed=["counts", "grid"], prior=prior)
    assert isinstance(wrapped.counts, ep.Fixed)
    assert wrapped.counts.dtype == physics.counts.dtype
    assert seen == [()]
    np.testing.assert_allclose(wrapped.amplitude.latent, 1.0)


def test_idempotent_and_jit(getkey):
    mlp = eqx.nn.MLP(3, 2, 4, 2, key=getkey())
    once = wrap(mlp)
    assert tree_allclose(wrap(once), once, rtol=0, atol=0)
    jitted = eqx.filter_jit(wrap)(mlp)
    assert tree_allclose(jitted, once, rtol=1e-6, atol=1e-7)


def test_wrap_errors(getkey):
    class Complex(eqx.Module):
        z: jax.Array

    module = Complex(jnp.ones(2, jnp.complex64))
    with pytest.raises(TypeError, match=r"array at `z` has dtype complex64"):
        wrap(module)
    assert isinstance(wrap(module, fixed="z").z, ep.Fixed)
    mlp = eqx.nn.MLP(3, 2, 4, 2, key=getkey())
    with pytest.raises(
        ValueError,
        match=r"`ep.wrap`: the value for the Param at `layers\[0\].weight` is "
        r"outside the support of its prior `LogNormal\(mean=1, sd=1\)`",
    ):
        wrap(mlp, prior=ep.LogNormal(1.0, 1.0))  # negative weights
    with pytest.raises(
        TypeError, match=r"`prior` returned a float for the array at `l"
    ):
        wrap(mlp, prior=lambda x: 1.0)


def _key():
    return jax.random.key(0)


WRAP_CASES = {
    "linear": (lambda: eqx.nn.Linear(3, 5, key=_key()), 3),
    "linear-scalar-in": (lambda: eqx.nn.Linear("scalar", 5, key=_key()), None),
    "conv1d": (lambda: eqx.nn.Conv1d(3, 5, 4, key=_key()), 3 * 4),
    "conv2d-groups": (
        lambda: eqx.nn.Conv2d(6, 4, (2, 3), groups=2, key=_key()),
        3 * 2 * 3,
    ),
    "conv3d": (lambda: eqx.nn.Conv3d(2, 4, (2, 3, 2), key=_key()), 2 * 2 * 3 * 2),
    "convtranspose1d-groups": (
        lambda: eqx.nn.ConvTranspose1d(4, 6, 3, groups=2, key=_key()),
        2 * 3,
    ),
    "convtranspose2d": (
        lambda: eqx.nn.ConvTranspose2d(3, 5, (2, 3), key=_key()),
        3 * 2 * 3,
    ),
    "convtranspose3d": (
        lambda: eqx.nn.ConvTranspose3d(2, 3, (1, 2, 3), key=_key()),
        2 * 1 * 2 * 3,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("abstract", [False, True], ids=["concrete", "abstract"])
@pytest.mark.parametrize("case", list(WRAP_CASES))
def test_wrap_default_prior_is_lecun(case, abstract):
    make, fan_in = WRAP_CASES[case]
    module = eqx.filter_eval_shape(make) if abstract else make()
    wrapped = ep.wrap(module)
    weight = wrapped.weight.prior
    assert type(weight) is ep.Normal
    assert float(weight.mean.value) == 0.0
    want = 1.0 if fan_in is None else 1.0 / math.sqrt(fan_in)
    assert float(weight.sigma.value) == pytest.approx(want, rel=1e-7)
    # Biases (1-d) get N(0, 1).
    bias = wrapped.bias.prior
    assert float(bias.mean.value) == 0.0 and float(bias.sigma.value) == 1.0


@pytest.mark.slow
def test_wrap_lecun_scale_sets_the_spread_of_a_redraw():
    # The spread of `ep.normal(ep.wrap(conv))` is 1 / sqrt(in * kernel).
    conv = eqx.nn.Conv2d(16, 64, (3, 3), key=_key())
    model = ep.normal(ep.wrap(conv), key=jax.random.key(1))
    w = np.asarray(ep.unwrap(model).weight)
    assert w.std() == pytest.approx(1 / math.sqrt(16 * 9), rel=0.05)


@pytest.mark.parametrize("cls", ["Normal", "Uniform", "HalfCauchy"])
def test_wrap_with_a_prior_class(cls):
    net = eqx.nn.Linear(2, 3, key=jax.random.key(0))
    prior = getattr(ep, cls)
    raises_and_keeps(
        lambda: ep.wrap(net, prior=prior),
        net,
        TypeError,
        match=(
            rf"`ep\.wrap`: `prior` is the class `{cls}`; pass a prior instance "
            rf"\(`prior=ep\.{cls}\(\.\.\.\)`\) or a function from the array to a prior"
        ),
    )
    raises_and_keeps(
        lambda: ep.wrap(net, prior=lambda x: prior),
        net,
        TypeError,
        match=(
            r"`ep\.wrap`: `prior` returned a .* for the array at `weight`; it must "
            r"return "
            r"an `ep\.AbstractPrior`"
        ),
    )
    raises_and_keeps(
        lambda: ep.Param(1.0, prior=prior),
        None,
        TypeError,
        match=(
            r"`prior` must be an `ep\.AbstractPrior` such as `ep\.Normal\(0, 1\)`|"
            r"parameter 'prior'"
        ),
    )


@pytest.mark.parametrize("prior", ["normal", 1.0], ids=["str", "float"])
def test_wrap_with_a_prior_that_is_no_prior(prior, unchecked_types):
    net = eqx.nn.Linear(2, 3, key=jax.random.key(0))
    raises_and_keeps(
        lambda: ep.wrap(net, prior=prior),
        net,
        TypeError,
        match=r"`ep\.wrap`: `prior`.*ep\.Normal",
    )
