import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep

from .conftest import DEFAULT_FLOAT, ERROR_OF, error_has, outside, raises_and_keeps
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
        ValueError, match=r"^`ep\.unwrap`: the Param at `inner\.w` is abstract"
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
        ValueError,
        match=r"^`ep\.unwrap`: the Fixed at `inner\.grid` is abstract.*Fill it",
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


# --- errors name the path in the model -------------------------------------------


def _lifetime_and_grid():
    return {
        "a": ep.Param(2.0, prior=ep.LogNormal(3.0, 0.1)),
        "t": ep.Fixed(jnp.arange(3.0)),
    }


def _bad_prior_shape(model):
    return eqx.tree_at(lambda m: m["a"].prior, model, ep.Normal(jnp.zeros(3), 1.0))


def _converted_storage(model):
    return eqx.tree_at(lambda m: m["t"].stored, model, jnp.zeros(3))


def test_prior_of_another_shape_is_named_by_path():
    model = _bad_prior_shape(_lifetime_and_grid())
    raises_and_keeps(
        lambda: ep.unwrap(model),
        model,
        ValueError,
        "`ep.unwrap`: the Param at `['a']`: The prior `Normal` makes the value of "
        "shape (3,) from a latent of shape ()",
    )


def test_converted_fixed_storage_is_named_by_path():
    model = _converted_storage(_lifetime_and_grid())
    raises_and_keeps(
        lambda: ep.unwrap(model),
        model,
        ValueError,
        f"The Fixed at `['t']` stores {jnp.dtype(DEFAULT_FLOAT).name} data as "
        f"uint{8 * jnp.dtype(DEFAULT_FLOAT).itemsize}",
    )


class _Declared(eqx.Module):
    w: ep.Param
    t: ep.Fixed


@pytest.mark.parametrize("where", ["w", "t"])
def test_declared_field_holding_a_number_is_named(where):
    fields = {"w": ep.Param(1.0), "t": ep.Fixed(1.0)}
    fields[where] = 1.0
    model = _Declared(**fields)
    kind = {"w": "Param", "t": "Fixed"}[where]
    raises_and_keeps(
        lambda: ep.unwrap(model),
        model,
        TypeError,
        f"`ep.unwrap`: the field `{where}` is declared `{kind}` but holds a float",
    )
    nested = {"layers": [ep.Param(1.0), model]}  # the path runs through the model
    raises_and_keeps(
        lambda: ep.unwrap(nested),
        nested,
        TypeError,
        f"`ep.unwrap`: the field `['layers'][1].{where}` is declared `{kind}`",
    )


def test_pending_shape_outside_infer_shapes_is_an_error():
    model = {"w": ep.Param(shape=(ep.INPUT,)), "b": ep.Param(0.0)}
    raises_and_keeps(
        lambda: ep.unwrap(model),
        model,
        ValueError,
        "`ep.unwrap`: the Param at `['w']` has a shape that waits for an input",
        "`model = ep.infer_shapes(model, x)`",
    )


def test_unwrap_refuses_rest_and_classes():
    _, rest = ep.partition(_lifetime_and_grid())
    raises_and_keeps(lambda: ep.unwrap(rest), None, TypeError, "the `rest` half")
    raises_and_keeps(lambda: ep.unwrap(_Declared), None, TypeError, "`_Declared(...)`")


def test_unwrap_without_type_checks_names_the_paths():
    # Users run without the suite's jaxtyping hook, which turns some internal
    # mistakes into TypeErrors: the same results and messages in a Python without
    # it (and here, so that the check runs on this process's code too).
    model = _lifetime_and_grid()
    plain = ep.unwrap(model)
    got = outside(
        ERROR_OF,
        """
        import equinox as eqx
        model = {
            "a": ep.Param(2.0, prior=ep.LogNormal(3.0, 0.1)),
            "t": ep.Fixed(jnp.arange(3.0)),
        }
        plain = ep.unwrap(model)
        shared = ep.Param(1.0, name="s")
        bad = eqx.tree_at(lambda m: m["a"].prior, model, ep.Normal(jnp.zeros(3), 1.0))
        lost = eqx.tree_at(lambda m: m["t"].stored, model, jnp.zeros(3))
        print(json.dumps({
            "a": float(plain["a"]),
            "t": plain["t"].tolist(),
            "shared": [float(v) for v in ep.unwrap([shared, shared])],
            "shape": error_of(lambda: ep.unwrap(bad)),
            "storage": error_of(lambda: ep.unwrap(lost)),
        }))
        """,
        devices=1,
    )
    assert got["a"] == pytest.approx(float(plain["a"]), rel=1e-6)
    assert got["a"] == pytest.approx(2.0, rel=1e-5)
    assert got["t"] == [0.0, 1.0, 2.0] and got["shared"] == [1.0, 1.0]
    error_has(got["shape"], "ValueShapeError", "`ep.unwrap`: the Param at `['a']`")
    error_has(got["storage"], "ValueError", "The Fixed at `['t']`")


# --- shared Params: every use reads the one that holds the parameter ---------------


def test_shared_param_used_twice_is_one_value():
    shared = ep.Param(1.0, name="s")
    model = {"a": shared, "b": [shared], "c": ep.Param(3.0)}
    plain = ep.unwrap(model)
    assert float(plain["a"]) == 1.0 and float(plain["b"][0]) == 1.0
    assert float(plain["c"]) == 3.0


def test_shared_uses_trained_apart_are_refused():
    model = {"a": ep.Param(1.0, name="s"), "b": ep.Param(5.0, name="s")}
    raises_and_keeps(
        lambda: ep.unwrap(model),
        model,
        ValueError,
        "`ep.unwrap`: the uses of the shared Param `s` at `['a']` and `['b']` hold "
        "different latents",
    )


# --- while `ep.infer_shapes` runs ---------------------------------------------------


class _Dense(eqx.Module):
    w: ep.Param

    def __init__(self, out: int):
        self.w = ep.Param(shape=(out, ep.INPUT))

    @ep.unwrapped
    def __call__(self, x):
        return self.w @ x


class _Head(eqx.Module):
    # The Dense's Param waits for its input while the head is unwrapped; the
    # fields after it must still be unwrapped.
    dense: _Dense
    scale: ep.Param
    offset: ep.Fixed

    @ep.unwrapped
    def __call__(self, x):
        assert isinstance(self.offset, jax.Array) and isinstance(self.scale, jax.Array)
        return self.scale * self.dense(x) + self.offset


def test_unwrap_inside_infer_shapes_leaves_waiting_params_to_their_module():
    model = _Head(_Dense(2), ep.Param(2.0), ep.Fixed(jnp.array([1.0, -1.0])))
    x = jnp.array([1.0, 2.0, 3.0])
    model = ep.infer_shapes(model, x)
    assert model.dense.w.shape == (2, 3)
    model = eqx.tree_at(lambda m: m.dense.w, model, ep.Param(jnp.ones((2, 3))))
    np.testing.assert_allclose(model(x), [13.0, 11.0])
