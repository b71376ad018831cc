"""Shape inference: `ep.INPUT` sizes resolved from one example input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep


class Dense(eqx.Module):
    w: ep.Param
    b: ep.Param

    def __init__(self, out: int):
        self.w = ep.Param(shape=(out, ep.INPUT))
        self.b = ep.Param(shape=(out,))

    @ep.unwrapped
    def __call__(self, x):
        return jnp.tanh(self.w @ x + self.b)


class Serial(eqx.Module):
    layers: tuple

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Twice(eqx.Module):
    block: eqx.Module

    def __call__(self, x):
        return self.block(self.block(x))


class Parallel(eqx.Module):
    branches: tuple

    def __call__(self, x):
        return jnp.concatenate([branch(x) for branch in self.branches])


@pytest.mark.slow
def test_a_composite_model_is_written_without_sizes(getkey):
    shared = ep.share(Dense(5), "shared")
    model = Serial(
        (
            Dense(8),
            Twice(Dense(8)),  # one block applied twice: 8 -> 8 -> 8
            Parallel((Dense(2), Dense(3))),
            Serial((shared, shared)),  # one module in two places
        )
    )
    x = jnp.zeros(5)  # the Params' default float dtype
    model = ep.infer_shapes(model, jax.ShapeDtypeStruct((5,), x.dtype))
    shapes = {path: p.shape for path, p in ep.named_params(model).items()}
    assert shapes["layers[0].w"] == (8, 5)
    assert shapes["layers[1].block.w"] == (8, 8)
    assert shapes["layers[2].branches[0].w"] == (2, 8)
    assert shapes["layers[2].branches[1].w"] == (3, 8)
    assert shapes["layers[3].layers[0].w"] == (5, 5)  # after the concatenation
    assert "layers[3].layers[1].w" not in shapes  # shared: one parameter
    model = ep.normal(model, key=getkey())
    y = model(x + 1.0)
    assert y.shape == (5,) and bool(jnp.all(jnp.isfinite(y)))
    assert jax.jit(lambda m, x: m(x))(model, x).shape == (5,)


def test_shapes_wait_for_an_input():
    model = Dense(4)
    assert repr(model.w) == "Param(abstract, shape=(4, ep.INPUT), prior=Normal(0, 1))"
    message = (
        r"`ep.normal`: the Param at `w` has a shape that waits for an input "
        r"\(\(4, ep.INPUT\)\).*ep.infer_shapes\(model, x\)"
    )
    with pytest.raises(ValueError, match=message):
        ep.normal(model, key=jax.random.key(0))
    for call in (ep.zeros, ep.shapes, ep.partition, ep.unwrap):
        with pytest.raises(ValueError, match=r"waits for an input"):
            call(model)
    with pytest.raises(ValueError, match=r"waits for an input"):
        model(jnp.zeros(3))


def test_a_param_no_call_reaches_is_named():
    class Plain(eqx.Module):
        w: ep.Param

        def __call__(self, x):  # not `@ep.unwrapped`: nothing resolves `w`
            return x

    with pytest.raises(
        ValueError, match=r"the Param at `w` \(shape \(ep.INPUT,\)\) was not reached"
    ):
        ep.infer_shapes(Plain(ep.Param(shape=(ep.INPUT,))), jnp.zeros(3))


def test_a_shared_module_needs_inputs_of_one_size():
    block = Dense(4)
    model = Serial((Twice(block),))

    class Widen(eqx.Module):
        inner: eqx.Module

        def __call__(self, x):
            return self.inner(jnp.concatenate([x, x]))

    with pytest.raises(ValueError, match=r"shape \(4, 8\) from one call and \(4, 3\)"):
        ep.infer_shapes(Serial((block, Widen(block))), jnp.zeros(3))
    assert ep.infer_shapes(model, jnp.zeros(4)).layers[0].block.w.shape == (4, 4)


def test_infer_shapes_computes_nothing_and_keeps_the_rest():
    calls = []

    class Counting(eqx.Module):
        w: ep.Param
        t: ep.Fixed

        @ep.unwrapped
        def __call__(self, x):
            calls.append(type(x))
            return self.w @ x + jnp.sum(self.t)

    model = Counting(ep.Param(shape=(2, ep.INPUT), name="w"), ep.Fixed(jnp.arange(3.0)))
    out = ep.infer_shapes(model, jnp.zeros(6))
    assert out.w.shape == (2, 6) and out.w.name == "w" and out.w.is_abstract
    np.testing.assert_array_equal(out.t.value, model.t.value)
    assert all(c is not np.ndarray for c in calls) and len(calls) == 1


def test_bad_input_shapes_are_refused():
    with pytest.raises(TypeError, match=r"`shape` must hold non-negative Python ints"):
        ep.Param(shape=(-1, ep.INPUT))
    with pytest.raises(ValueError, match=r"a `shape` with `ep.INPUT` is for a Param"):
        ep.Param(1.0, shape=(ep.INPUT,))
    with pytest.raises(ValueError, match=r"without an array as its first argument"):
        ep.infer_shapes(Dense(2), 3.0)


def lecun(shape):
    return ep.Normal(0.0, 1.0 / np.sqrt(shape[-1]))


def test_a_prior_can_be_made_for_the_resolved_shape():
    param = ep.Param(shape=(2, ep.INPUT), prior=lecun)
    assert repr(param) == "Param(abstract, shape=(2, ep.INPUT), prior=lecun(shape))"

    class Layer(eqx.Module):
        w: ep.Param

        @ep.unwrapped
        def __call__(self, x):
            return self.w @ x

    model = ep.infer_shapes(Layer(param), jnp.zeros(16))
    assert model.w.shape == (2, 16)
    assert repr(model.w.prior) == "Normal(0, 0.25)"
    with pytest.raises(TypeError, match=r"`prior` must be an `ep.AbstractPrior`"):
        ep.Param(shape=(2, 3), prior=lecun)  # only for a shape that waits
