"""Taps that other transformations move around: nested harvests, custom
derivative rules, loops behind a `lax.cond`, and Equinox wrappers.

Each case either harvests the value (checked against NumPy) or raises an error
that names the tap: never a silently missing value.
"""

import math
import types

import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import eqxpurify as ep

T = np.linspace(0.0, 1.0, 6, dtype=np.float32)


class Smoother(eqx.Module):
    w: jax.Array
    field: ep.Intermediate = ep.Intermediate()

    def __call__(self, t):
        return self.field(jnp.sin(self.w * t))

    def doubled(self, t):
        return 2 * self(t)


class Model(eqx.Module):
    smoother: Smoother

    def __call__(self, t):
        return ep.intermediate(self.smoother(t) * 3, name="out")


MODEL = Model(Smoother(jnp.float32(2.0)))


def roughness(model, t):
    """The README's loss on an intermediate: a harvest inside a function."""
    _, values = ep.intermediates(model, names=["smoother.field"])(t)
    return jnp.sum(jnp.diff(values["smoother.field"]) ** 2)


# ----------------------------------------------------------------------------
# A harvest inside a harvested function
# ----------------------------------------------------------------------------


def test_outer_harvest_sees_inner_harvests_taps():
    field = np.sin(2 * T)
    expected_loss = np.sum(np.diff(field) ** 2)
    for harvest in (
        ep.intermediates(roughness),
        eqx.filter_jit(ep.intermediates(roughness)),
    ):
        loss, values = harvest(MODEL, T)
        assert set(values) == {"smoother.field", "out"}  # `out` too: inner `names=`
        np.testing.assert_allclose(values["smoother.field"], field, rtol=1e-6)
        np.testing.assert_allclose(values["out"], 3 * field, rtol=1e-6)
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)


def test_nested_harvest_under_grad():
    def outer_loss(model):
        loss, values = ep.intermediates(roughness)(model, T)
        return loss + jnp.sum(values["out"])

    grad = eqx.filter_jit(eqx.filter_grad(outer_loss))(MODEL)
    # d/dw [sum(diff(sin(w t))^2) + 3 sum(sin(w t))] at w = 2
    s, c = np.sin(2 * T), np.cos(2 * T)
    expected = np.sum(2 * np.diff(s) * np.diff(T * c)) + 3 * np.sum(T * c)
    np.testing.assert_allclose(grad.smoother.w, expected, rtol=1e-4)


def test_nested_harvest_inside_scan_is_stacked():
    def inner(x):
        return ep.intermediate(jnp.sin(x), name="s") * 2

    def outer(xs):
        def step(c, x):
            y, values = ep.intermediates(inner)(x)
            return c + values["s"], y

        return lax.scan(step, jnp.float32(0), xs)

    (total, ys), values = jax.jit(ep.intermediates(outer))(T)
    np.testing.assert_allclose(values["s"], np.sin(T), rtol=1e-6)
    np.testing.assert_allclose(ys, 2 * np.sin(T), rtol=1e-6)
    np.testing.assert_allclose(total, np.sum(np.sin(T)), rtol=1e-5)


def test_nested_harvest_and_direct_call_record_a_name_twice():
    def both(model, t):
        return roughness(model, t) + model(t).sum()

    with pytest.raises(ValueError, match="The tap `out` was recorded 2 times"):
        ep.intermediates(both)(MODEL, T)


# ----------------------------------------------------------------------------
# Taps in custom derivative rules
# ----------------------------------------------------------------------------


def _custom_vjp(fwd_tap, bwd_tap):
    @jax.custom_vjp
    def f(x):
        return jnp.sin(x)

    def fwd(x):
        if fwd_tap:
            ep.intermediate(3 * x, name="fwd")
        return jnp.sin(x), x

    def bwd(x, g):
        if bwd_tap:
            ep.intermediate(5 * g, name="bwd")
        return (g * jnp.cos(x),)

    f.defvjp(fwd, bwd)
    return f


def _sum_of(f):
    return lambda x: jnp.sum(f(x))


def test_custom_vjp_rule_taps_are_harvested_from_the_derivative():
    f = _custom_vjp(fwd_tap=True, bwd_tap=True)
    grad, values = jax.jit(ep.intermediates(jax.grad(_sum_of(f))))(T)
    np.testing.assert_allclose(grad, np.cos(T), rtol=1e-6)
    np.testing.assert_allclose(values["fwd"], 3 * T, rtol=1e-6)
    np.testing.assert_array_equal(values["bwd"], np.full_like(T, 5.0))


@pytest.mark.parametrize("jit", [False, True])
def test_custom_vjp_rule_taps_under_grad_of_a_harvest_are_errors(jit):
    def grad_of_harvest(f, **kwargs):
        g = jax.grad(ep.intermediates(_sum_of(f), **kwargs), has_aux=True)
        return jax.jit(g) if jit else g

    fwd_only = _custom_vjp(fwd_tap=True, bwd_tap=False)
    with pytest.raises(ValueError, match=r"harvest `fwd`: it is recorded inside a rul"):
        grad_of_harvest(fwd_only)(T)
    bwd_only = _custom_vjp(fwd_tap=False, bwd_tap=True)
    with pytest.raises(ValueError, match=r"harvest `bwd`: .* the `bwd` of a `jax.cu"):
        grad_of_harvest(bwd_only)(T)

    def in_scan(x):  # a custom VJP with no taps of its own, inside a scan
        return lax.scan(lambda c, xi: (c + bwd_only(xi), None), 0.0, x)[0]

    with pytest.raises(ValueError, match=r"harvest `bwd`"):
        jax.grad(ep.intermediates(in_scan), has_aux=True)(T)
    # Left out with `names=`, the gradient is the custom one.
    grad, values = grad_of_harvest(bwd_only, names=())(T)
    np.testing.assert_allclose(grad, np.cos(T), rtol=1e-6)
    assert values == {}


def _custom_jvp(primal_tap, tangent_tap):
    @jax.custom_jvp
    def g(x):
        return jnp.sin(x)

    @g.defjvp
    def g_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        if primal_tap:
            ep.intermediate(3 * x, name="rule_primal")
        dot = jnp.cos(x) * t
        if tangent_tap:
            ep.intermediate(dot, name="rule_tangent")
        return jnp.sin(x), dot

    return g


def test_custom_jvp_rule_taps():
    g = _custom_jvp(primal_tap=True, tangent_tap=False)
    # Harvested from the derivative ...
    grad, values = jax.jit(ep.intermediates(jax.grad(_sum_of(g))))(T)
    np.testing.assert_allclose(grad, np.cos(T), rtol=1e-6)
    np.testing.assert_allclose(values["rule_primal"], 3 * T, rtol=1e-6)
    # ... but not by a harvest that is differentiated.
    with pytest.raises(ValueError, match=r"harvest `rule_primal`: it is recorded ins"):
        jax.grad(ep.intermediates(_sum_of(g)), has_aux=True)(T)
    with pytest.raises(ValueError, match=r"harvest `rule_primal`"):
        jax.jvp(ep.intermediates(g), (T,), (np.ones_like(T),))


def test_tap_of_a_tangent():
    g = _custom_jvp(primal_tap=False, tangent_tap=True)
    ones = np.ones_like(T)
    # Forward mode computes the tangent: harvested.
    _, values = ep.intermediates(lambda x: jax.jvp(g, (x,), (ones,)))(T)
    np.testing.assert_allclose(values["rule_tangent"], np.cos(T), rtol=1e-6)
    # Reverse mode never does: an error, not a missing value.
    with pytest.raises(ValueError, match=r"harvest `rule_tangent`: .* left it out"):
        ep.intermediates(jax.grad(_sum_of(g)))(T)
    assert ep.intermediates(jax.grad(_sum_of(g)), names=())(T)[1] == {}

    def linear(x):
        return 2 * ep.intermediate(x, name="lin")

    with pytest.raises(ValueError, match=r"harvest `lin`: it taps a tangent .* linear"):
        ep.intermediates(lambda c: jax.linear_transpose(linear, T)(c))(T)


def test_tap_traced_only_for_shapes():
    def f(x):
        shape = jax.eval_shape(lambda y: ep.intermediate(2 * y, name="shape"), x)
        return jnp.zeros(shape.shape, x.dtype) + ep.intermediate(x, name="x")

    with pytest.raises(ValueError, match=r"harvest `shape`: .*`jax.eval_shape`"):
        ep.intermediates(f)(T)

    def g(x):  # traced for shapes and computed: harvested
        jax.eval_shape(lambda y: ep.intermediate(2 * y, name="both"), x)
        return ep.intermediate(2 * x, name="both")

    np.testing.assert_allclose(ep.intermediates(g)(T)[1]["both"], 2 * T)


# ----------------------------------------------------------------------------
# Loops
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lax", "bounded", "checkpointed"])
def test_tap_in_a_while_loop_names_the_loop(kind):
    def f(x):
        def body(c):
            return ep.intermediate(c + 1, name="w")

        max_steps = None if kind == "lax" else 16
        return eqxi.while_loop(lambda c: c < 5, body, x, max_steps=max_steps, kind=kind)

    with pytest.raises(ValueError, match=r"harvest `w`: .*while_loop`") as info:
        ep.intermediates(f)(np.float32(0))
    assert "some branches" not in str(info.value)
    if kind != "lax":  # (JAX cannot differentiate a `lax.while_loop`)
        with pytest.raises(ValueError, match=r"harvest `w`: .*while_loop`"):
            ep.intermediates(jax.grad(f))(np.float32(0))
    assert ep.intermediates(f, names=())(np.float32(0))[0] == 5.0


def test_one_sided_cond_with_a_pass_through_branch():
    def f(x):
        return lax.cond(
            x > 0, lambda y: ep.intermediate(y + 1, name="c"), lambda y: y, x
        )

    match = r"harvest `c`: it is recorded in only one branch of a `lax.cond` whose"
    with pytest.raises(ValueError, match=match):
        ep.intermediates(f)(np.float32(1))


# ----------------------------------------------------------------------------
# Equinox wrappers are not part of slot paths
# ----------------------------------------------------------------------------

XS = np.stack([T, 2 * T])


@pytest.mark.parametrize(
    "wrap",
    [
        eqx.filter_vmap,
        lambda m: eqx.filter_vmap(m.__call__),
        lambda m: eqx.filter_jit(eqx.filter_vmap(m)),
        lambda m: eqx.filter_vmap(eqx.filter_jit(m)),
    ],
    ids=["filter_vmap", "method", "jit_of_vmap", "vmap_of_jit"],
)
def test_slots_inside_wrappers_are_named_by_the_models_paths(wrap):
    out, values = ep.intermediates(wrap(MODEL))(XS)
    assert sorted(values) == ["out", "smoother.field"]
    np.testing.assert_allclose(values["smoother.field"], np.sin(2 * XS), rtol=1e-6)
    np.testing.assert_allclose(out, 3 * np.sin(2 * XS), rtol=1e-6)


def test_wrappers_as_arguments_and_nested():
    # A wrapper passed as an argument, and two vmaps over a bound method.
    _, values = ep.intermediates(lambda f, x: f(x))(eqx.filter_vmap(MODEL), XS)
    assert sorted(values) == ["out", "smoother.field"]
    twice = eqx.filter_vmap(eqx.filter_vmap(MODEL.smoother.doubled))
    out, values = ep.intermediates(twice)(XS[None])
    assert list(values) == ["field"]
    np.testing.assert_allclose(values["field"], np.sin(2 * XS[None]), rtol=1e-6)
    np.testing.assert_allclose(out, 2 * np.sin(2 * XS[None]), rtol=1e-6)
    # A wrapper inside a model.
    model = Model(eqx.filter_vmap(Smoother(jnp.float32(2.0))))
    _, values = ep.intermediates(model)(XS)
    assert sorted(values) == ["out", "smoother.field"]


def test_wrapped_model_is_returned_unchanged():
    wrapped = eqx.filter_vmap(MODEL)
    (returned, _), _ = ep.intermediates(lambda f, x: (f, f(x)))(wrapped, XS)
    assert eqx.tree_equal(returned, wrapped)
    assert returned._fun.smoother.field.name is None


def test_nested_harvest_is_seen_from_outside():
    def inner(x):
        return 2 * ep.intermediate(jnp.sin(x), name="h")

    def outer(x):
        y, values = ep.intermediates(inner)(x)
        return y + values["h"]

    x = jnp.array(0.5)
    out, values = ep.intermediates(outer)(x)
    assert list(values) == ["h"]
    assert float(values["h"]) == pytest.approx(math.sin(0.5))
    assert float(out) == pytest.approx(3 * math.sin(0.5))
    out, values = jax.jit(ep.intermediates(outer))(x)
    assert float(values["h"]) == pytest.approx(math.sin(0.5))


@jax.custom_vjp
def _sin(x):
    return jnp.sin(x)


def _sin_fwd(x):
    ep.intermediate(jnp.cos(x), name="fwd_cos")
    return jnp.sin(x), jnp.cos(x)


def _sin_bwd(res, g):
    return (g * res,)


_sin.defvjp(_sin_fwd, _sin_bwd)


def test_tap_in_custom_vjp_fwd_under_grad():
    x = jnp.array(0.5)
    # Harvesting the derivative records the tap in `fwd`...
    grad, values = ep.intermediates(jax.grad(_sin))(x)
    assert float(grad) == pytest.approx(math.cos(0.5))
    assert float(values["fwd_cos"]) == pytest.approx(math.cos(0.5))
    # ...differentiating the harvest cannot, and says so, naming the tap.
    with pytest.raises(
        ValueError,
        match=r"Cannot harvest `fwd_cos`.*ep\.intermediates\(jax\.grad\(f\)\)",
    ):
        jax.grad(ep.intermediates(_sin), has_aux=True)(x)


F = "[0].smoother.field"


@pytest.mark.parametrize(
    "wrapped, x, field, names",
    [
        # A plain bound method, which is no pytree.
        (MODEL.__call__, T, F, [F, "out"]),
        (eqx.filter_jit(MODEL), T, F, [F, "out"]),
        (eqx.filter_vmap(MODEL), XS, F, [F, "out"]),
        # An Equinox bound method (a wrapper).
        (MODEL.smoother.doubled, T, "[0].field", ["[0].field"]),
    ],
    ids=["method", "filter_jit", "filter_vmap", "equinox-method"],
)
def test_slots_inside_wrappers_held_in_a_list(wrapped, x, field, names):
    # Named by their paths in the list, without the wrapper's own fields.
    _, values = ep.intermediates(lambda fs, t: fs[0](t))([wrapped], x)
    assert sorted(values) == names
    np.testing.assert_allclose(values[field], np.sin(2 * x), rtol=1e-6)


def test_jitted_submodule_is_named_by_its_path():
    model = Model(eqx.filter_jit(Smoother(jnp.float32(2.0))))
    out, values = ep.intermediates(model)(T)
    assert sorted(values) == ["out", "smoother.field"]
    np.testing.assert_allclose(values["smoother.field"], np.sin(2 * T), rtol=1e-6)
    np.testing.assert_allclose(out, 3 * np.sin(2 * T), rtol=1e-6)


def test_plain_bound_method_other_than_call_runs_that_method():
    # A plain bound method (no pytree) of a module is walked as its module: the
    # method itself is the one called, with the module's slots named by path.
    method = types.MethodType(Smoother.doubled, MODEL.smoother)
    out, values = ep.intermediates(lambda fs, t: fs[0](t))([method], T)
    assert sorted(values) == ["[0].field"]
    np.testing.assert_allclose(out, 2 * np.sin(2 * T), rtol=1e-6)
    np.testing.assert_allclose(values["[0].field"], np.sin(2 * T), rtol=1e-6)


def test_jitted_function_without_slots_comes_back_jitted():
    # A jitted function holding no slot is left as it is: the model given back
    # is the model given, its jitted field still a jitted function.
    jitted = eqx.filter_jit(lambda t: 3 * t)

    class Holder(eqx.Module):
        fn: object
        smoother: Smoother

        def __call__(self, t):
            return self.fn(self.smoother(t))

    model = Holder(jitted, MODEL.smoother)
    (out, back), values = ep.intermediates(lambda m, t: (m(t), m))(model, T)
    assert sorted(values) == ["smoother.field"]
    np.testing.assert_allclose(out, 3 * np.sin(2 * T), rtol=1e-6)
    assert type(back.fn) is type(jitted)
    assert eqx.tree_equal(back, model)
