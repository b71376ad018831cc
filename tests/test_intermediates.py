"""Taps (`ep.intermediate`), slots (`ep.Intermediate`) and `ep.intermediates`.

Expected values are computed with NumPy and most harvests run under `jax.jit`
(which is also how the README recommends running them), to keep the file fast.
"""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import eqxpurify as ep


def _plain(x, *, name):
    del name
    return x


def _jit_harvest(fn, **kwargs):
    return jax.jit(ep.intermediates(fn, **kwargs))


def _f32(*values):
    """A float32 NumPy array of `values`, or a 0-d one for a single value."""
    array = np.asarray(values, dtype=np.float32)
    return array.reshape(()) if len(values) == 1 else array


def _hlo_ops(fn, *args):
    """The optimised HLO of `jax.jit(fn)`, without metadata or unique-id suffixes."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    text = re.sub(r", metadata=\{[^}]*\}", "", text)
    lines = [line.strip() for line in text.splitlines() if " = " in line]
    return [re.sub(r"(%[A-Za-z_][\w\-]*)\.\d+", r"\1", line) for line in lines]


def _model(tap):
    """A model that taps inside jit, scan, checkpoint, cond, vmap and custom_jvp."""

    @jax.custom_jvp
    def softplus(x):
        return jnp.log1p(jnp.exp(tap(x, name="softplus_in")))

    @softplus.defjvp
    def softplus_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return softplus(x), jax.nn.sigmoid(x) * t

    def model(w, xs):
        @jax.jit
        def layer(h):
            return tap(jnp.tanh(h @ w), name="layer")

        def step(h, x):
            h = layer(h + x)
            h = jax.checkpoint(lambda z: tap(jnp.sin(z), name="ckpt"))(h)
            h = lax.cond(
                h.sum() > 0,
                lambda z: tap(2 * z, name="branch"),
                lambda z: tap(z - 1, name="branch"),
                h,
            )
            tap(h * h, name="unused")  # a tap as a statement
            return h, tap(h.sum(), name="total")

        h, totals = lax.scan(step, jnp.zeros(3, xs.dtype), xs)
        h = jax.vmap(lambda r: tap(softplus(r), name="per_row"))(h[None, :])
        return h.sum() + totals.sum()

    return model


W = np.eye(3, dtype=np.float32) * 0.5
XS = np.linspace(-1.0, 1.0, 15, dtype=np.float32).reshape(5, 3)


# ----------------------------------------------------------------------------
# Unharvested taps cost nothing
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("transform", ["none", "grad", "vmap"])
def test_unharvested_taps_compile_to_the_same_program(transform):
    def wrap(model):
        if transform == "grad":
            return jax.grad(model)
        if transform == "vmap":
            return jax.vmap(model, in_axes=(None, 0))
        return model

    xs = np.stack([XS, -XS]) if transform == "vmap" else XS
    ops = _hlo_ops(wrap(_model(ep.intermediate)), W, xs)
    assert ops == _hlo_ops(wrap(_model(_plain)), W, xs)
    assert len(ops) > 20  # the comparison is not vacuous


def test_tap_returns_its_input():
    x = jnp.arange(3.0)
    assert ep.intermediate(x, name="x") is x
    assert ep.Intermediate()(x) is x
    out = ep.intermediate(np.ones(2, np.float32), name="n")
    assert isinstance(out, jax.Array) and out.dtype == jnp.float32
    jaxpr = jax.make_jaxpr(lambda y: 2 * ep.intermediate(y, name="y"))(x)
    tap_eqn, mul_eqn = jaxpr.eqns
    assert tap_eqn.primitive.name == "intermediate" and not tap_eqn.outvars
    assert mul_eqn.invars[1] is jaxpr.jaxpr.invars[0]  # uses `y` itself


def test_whole_model_harvest():
    out, values = _jit_harvest(_model(ep.intermediate))(W, XS)
    np.testing.assert_allclose(out, jax.jit(_model(_plain))(W, XS), rtol=1e-6)
    shapes = {name: value.shape for name, value in values.items()}
    assert shapes == {
        "layer": (5, 3),
        "ckpt": (5, 3),
        "branch": (5, 3),
        "unused": (5, 3),
        "total": (5,),
        "softplus_in": (1, 3),
        "per_row": (1, 3),
    }
    branch, layer = np.asarray(values["branch"]), np.asarray(values["layer"])
    np.testing.assert_allclose(values["unused"], branch**2, rtol=1e-6)
    np.testing.assert_allclose(values["total"], branch.sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(values["ckpt"], np.sin(layer), rtol=1e-6)
    np.testing.assert_allclose(layer[0], np.tanh(XS[0] @ W), rtol=1e-6)
    np.testing.assert_allclose(
        values["per_row"], np.log1p(np.exp(branch[-1:])), rtol=1e-6
    )


# ----------------------------------------------------------------------------
# Harvesting under and inside transformations
# ----------------------------------------------------------------------------


def _f(x):
    h = ep.intermediate(jnp.sin(x), name="h")
    return jnp.sum(h**2)


def test_eager_values_dtypes_and_shapes(float_dtype):
    x = np.linspace(0.0, 1.0, 4).astype(float_dtype)
    out, values = ep.intermediates(_f)(x)
    assert out.dtype == float_dtype and values["h"].dtype == float_dtype
    assert values["h"].shape == (4,)
    np.testing.assert_allclose(values["h"], np.sin(x), rtol=1e-6)
    np.testing.assert_allclose(out, np.sum(np.sin(x) ** 2), rtol=1e-6)


def test_float64():
    with jax.enable_x64(True):
        x = np.linspace(0.0, 1.0, 4)
        out, values = _jit_harvest(_f)(x)
        assert values["h"].dtype == jnp.float64 and out.dtype == jnp.float64
        np.testing.assert_allclose(values["h"], np.sin(x), rtol=1e-15)


def test_integer_and_literal_taps():
    def f(n):
        ep.intermediate(n * 2, name="int")
        ep.intermediate(3.0, name="literal")
        return n

    _, values = ep.intermediates(f)(np.arange(3, dtype=np.int32))
    assert values["int"].dtype == jnp.int32
    np.testing.assert_array_equal(values["int"], [0, 2, 4])
    assert isinstance(values["literal"], jax.Array) and values["literal"] == 3.0


def test_under_outer_grad():
    x = np.linspace(0.0, 1.0, 4, dtype=np.float32)

    def loss(x):
        _, values = ep.intermediates(_f)(x)
        return jnp.sum(values["h"] ** 3)

    expected = 3 * np.sin(x) ** 2 * np.cos(x)
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(x), expected, rtol=1e-5)
    grad, values = jax.jit(jax.grad(ep.intermediates(_f), has_aux=True))(x)
    np.testing.assert_allclose(grad, 2 * np.sin(x) * np.cos(x), rtol=1e-5)
    np.testing.assert_allclose(values["h"], np.sin(x), rtol=1e-6)


def test_under_outer_vmap():
    xs = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    out, values = jax.jit(jax.vmap(ep.intermediates(_f)))(xs)
    assert values["h"].shape == (2, 3)
    np.testing.assert_allclose(values["h"], np.sin(xs), rtol=1e-6)
    np.testing.assert_allclose(out, np.sum(np.sin(xs) ** 2, axis=1), rtol=1e-6)


def test_inside_vmap():
    x = np.arange(12.0, dtype=np.float32).reshape(3, 4)

    def f(x):
        return jax.vmap(lambda col: ep.intermediate(2 * col, name="col").sum(), 1)(x)

    _, values = _jit_harvest(f)(x)
    np.testing.assert_array_equal(values["col"], 2 * x.T)  # the vmapped axis leads

    def g(x):
        inner = jax.vmap(lambda r: ep.intermediate(r + 1, name="r"))
        return jax.vmap(inner, in_axes=1)(x[None])

    _, values = _jit_harvest(g)(x)
    assert values["r"].shape == (3, 1, 4)  # outer vmap first, then inner
    np.testing.assert_array_equal(values["r"], np.moveaxis(x[None] + 1, 1, 0))


def test_inside_scan():
    def f(xs):
        def step(c, x):
            c = c + x
            ep.intermediate(c, name="running")
            ep.intermediate(jnp.stack([c, -c]), name="pair")
            return c, None

        return lax.scan(step, 0.0, xs)[0]

    xs = _f32(1, 2, 3, 4)
    out, values = _jit_harvest(f)(xs)
    np.testing.assert_array_equal(values["running"], np.cumsum(xs))
    np.testing.assert_array_equal(values["pair"][:, 1], -np.cumsum(xs))
    assert out == 10.0

    def rev(xs):
        def step(c, x):
            p = ep.intermediate(x * c, name="p")
            return c + p, p

        return lax.scan(step, 1.0, xs, reverse=True)

    (_, ys), values = _jit_harvest(rev)(xs)
    # Stacked in the order of `xs`, as `ys` is, although steps run backwards.
    np.testing.assert_array_equal(ys, [60.0, 40.0, 15.0, 4.0])
    np.testing.assert_array_equal(values["p"], ys)


def test_inside_nested_scans_and_static_fori_loop():
    def f(x):
        def outer(c, _):
            inner = lax.scan(
                lambda d, _: (ep.intermediate(d + 1, name="n"), None),
                c,
                None,
                length=3,
            )
            return inner[0], None

        return lax.scan(outer, x, None, length=2)[0]

    _, values = _jit_harvest(f)(_f32(0))
    np.testing.assert_array_equal(values["n"], [[1, 2, 3], [4, 5, 6]])

    def g(x):
        return lax.fori_loop(0, 3, lambda i, c: ep.intermediate(2 * c, name="c"), x)

    _, values = _jit_harvest(g)(_f32(1))
    np.testing.assert_array_equal(values["c"], [2, 4, 8])


def test_inside_cond():
    def f(x):
        return lax.cond(
            x > 0,
            lambda y: ep.intermediate(2 * y, name="b"),
            lambda y: ep.intermediate(-y, name="b"),
            x,
        )

    harvested = _jit_harvest(f)
    assert harvested(_f32(3))[1]["b"] == 6.0
    assert harvested(_f32(-3))[1]["b"] == 3.0
    assert ep.intermediates(f)(_f32(-3))[1]["b"] == 3.0  # eager too
    _, values = jax.jit(jax.vmap(ep.intermediates(f)))(_f32(-1, 2))
    np.testing.assert_array_equal(values["b"], [1.0, 4.0])

    def g(i, x):
        branches = [
            lambda y: ep.intermediate(y + k, name="s") * 0 for k in (10.0, 20.0, 30.0)
        ]
        return lax.switch(i, branches, x)

    assert _jit_harvest(g)(2, _f32(1))[1]["s"] == 31.0


def test_inside_checkpoint():
    def f(x):
        y = jax.checkpoint(lambda z: jnp.sin(ep.intermediate(z**2, name="sq")))(x)
        return jnp.sum(y)

    x = _f32(0.5, 1.5)
    _, values = ep.intermediates(f)(x)
    np.testing.assert_allclose(values["sq"], x**2)
    grad, values = jax.jit(jax.grad(ep.intermediates(f), has_aux=True))(x)
    np.testing.assert_allclose(grad, 2 * x * np.cos(x**2), rtol=1e-5)

    def of_value(x):
        return ep.intermediates(f)(x)[1]["sq"].sum()

    np.testing.assert_allclose(jax.jit(jax.grad(of_value))(x), 2 * x)


def test_inside_nested_jit_traced_before_harvest():
    @jax.jit
    def inner(y):
        return ep.intermediate(y + 1, name="j") * 2

    assert inner(1.0) == 4.0  # fills jit's trace cache before any harvest
    out, values = ep.intermediates(inner)(1.0)
    assert out == 4.0 and values["j"] == 2.0
    out, values = _jit_harvest(lambda x: inner(x))(5.0)
    assert out == 12.0 and values["j"] == 6.0


def test_inside_custom_jvp():
    @jax.custom_jvp
    def f(x):
        return jnp.sin(ep.intermediate(2 * x, name="inner"))

    @f.defjvp
    def f_jvp(primals, tangents):  # deliberately not the true derivative
        return f(primals[0]), 100.0 * tangents[0]

    out, values = _jit_harvest(f)(_f32(1))
    assert values["inner"] == 2.0
    np.testing.assert_allclose(out, np.sin(2.0), rtol=1e-6)

    def loss(x):
        return ep.intermediates(f)(x)[0]

    assert jax.jit(jax.grad(loss))(_f32(1)) == jax.grad(f)(1.0) == 100.0
    primals, tangents = jax.jvp(ep.intermediates(f), (_f32(1),), (_f32(1),))
    assert tangents[0] == 100.0
    assert tangents[1]["inner"] == 0.0  # harvested without a derivative
    batched = jax.jit(jax.vmap(jax.grad(loss)))(_f32(1, 2))
    np.testing.assert_array_equal(batched, [100.0, 100.0])


def test_inside_custom_vjp():
    @jax.custom_vjp
    def f(x, n):
        return jnp.sin(ep.intermediate(x * n, name="inner"))

    f.defvjp(lambda x, n: (f(x, n), None), lambda _, g: (7.0 * g, None))

    out, values = ep.intermediates(f)(_f32(1), 3)
    assert values["inner"] == 3.0
    np.testing.assert_allclose(out, np.sin(3.0), rtol=1e-6)

    def loss(x):
        return ep.intermediates(f)(x, 3)[0]

    assert jax.jit(jax.grad(loss))(_f32(1)) == jax.grad(f)(1.0, 3) == 7.0
    batched = jax.jit(jax.vmap(jax.grad(loss)))(_f32(1, 2))
    np.testing.assert_array_equal(batched, [7.0, 7.0])


def test_grad_inside_model():
    # Forces from an energy. The taps are statements whose values are dead in
    # the gradient computation, which JAX's partial evaluation prunes.
    def energy(x):
        def step(c, xi):
            ep.intermediate(jnp.sin(xi), name="site")
            return c + jnp.sin(xi) ** 2, None

        e = lax.scan(step, 0.0, x)[0]
        return jax.checkpoint(lambda y: ep.intermediate(y, name="ckpt") * 1.0)(e)

    def forces(x):
        return -jax.grad(energy)(x)

    x = _f32(0, 1, 2)
    out, values = _jit_harvest(forces)(x)
    np.testing.assert_allclose(out, -2 * np.sin(x) * np.cos(x), rtol=1e-5)
    assert set(values) == {"site", "ckpt"}
    np.testing.assert_allclose(values["site"], np.sin(x), rtol=1e-6)
    np.testing.assert_allclose(values["ckpt"], np.sum(np.sin(x) ** 2), rtol=1e-6)


def test_closed_over_outer_tracer():
    def loss(w):
        _, values = ep.intermediates(lambda x: ep.intermediate(w * x, name="wx"))(3.0)
        return values["wx"] ** 2

    assert jax.jit(jax.grad(loss))(2.0) == 36.0


def test_linear_transpose_through_tap():
    def f(x):
        return 2 * ep.intermediate(x, name="l")

    assert jax.linear_transpose(f, 1.0)(1.0) == (2.0,)


# ----------------------------------------------------------------------------
# Intermediate slots
# ----------------------------------------------------------------------------


class Block(eqx.Module):
    weight: jax.Array
    hidden: ep.Intermediate = ep.Intermediate()

    def __call__(self, x):
        return jnp.tanh(self.hidden(self.weight * x))


class Shared(eqx.Module):
    encoder: Block
    decoder: Block

    def __call__(self, x):
        return self.decoder(self.encoder(x))


class Looped(eqx.Module):
    layers: list[Block]

    def __call__(self, x):
        for _ in range(2):  # each block applied twice
            for layer in self.layers:
                x = layer(x)
        return x


def test_slot_basics():
    slot = ep.Intermediate()
    assert ep.is_intermediate(slot) and not ep.is_intermediate(jnp.ones(1))
    assert jax.tree_util.tree_leaves(slot) == []
    block = Block(jnp.ones(2))
    params, static = eqx.partition(block, eqx.is_inexact_array)
    assert eqx.tree_equal(eqx.combine(params, static), block)
    with pytest.raises(TypeError, match="`name` must be a non-empty string"):
        ep.Intermediate(name="")


def test_slots_in_submodule_used_twice():
    weight, x = _f32(1, 2), _f32(0.5, -0.5)
    block = Block(weight)
    model = Shared(block, block)  # one submodule at two places
    out, values = ep.intermediates(model)(x)
    assert list(values) == ["encoder.hidden", "decoder.hidden"]
    np.testing.assert_allclose(values["encoder.hidden"], weight * x)
    encoded = np.tanh(weight * x)
    np.testing.assert_allclose(values["decoder.hidden"], weight * encoded, rtol=1e-6)
    np.testing.assert_allclose(out, np.tanh(weight * encoded), rtol=1e-6)


def test_slot_called_several_times_is_stacked():
    w0, w1, x = _f32(1, 2), _f32(0.5, 0.5), _f32(0.5, -0.5)
    model = Looped([Block(w0), Block(w1)])
    _, values = _jit_harvest(lambda m, x: m(x))(model, x)
    assert set(values) == {"layers[0].hidden", "layers[1].hidden"}
    assert values["layers[0].hidden"].shape == (2, 2)
    after_one_pass = np.tanh(w1 * np.tanh(w0 * x))
    expected = np.stack([w0 * x, w0 * after_one_pass])
    np.testing.assert_allclose(values["layers[0].hidden"], expected, rtol=1e-6)


def test_slot_names_from_model_argument_and_methods():
    block = Block(_f32(1, 2))
    model = Shared(block, block)
    x = _f32(1, 1)
    expected = ["encoder.hidden", "decoder.hidden"]
    assert list(ep.intermediates(model.__call__)(x)[1]) == expected
    assert list(ep.intermediates(lambda m, x: m(x))(model, x)[1]) == expected
    by_keyword = ep.intermediates(lambda x, *, model: model(x))
    assert list(by_keyword(x, model=model)[1]) == expected
    # (Outer transformations return dicts with sorted keys.)
    assert set(eqx.filter_jit(ep.intermediates(model))(x)[1]) == set(expected)
    named = Shared(block, Block(_f32(1, 1), ep.Intermediate(name="mine")))
    assert list(ep.intermediates(named)(x)[1]) == ["encoder.hidden", "mine"]


def test_returned_model_keeps_unnamed_slots():
    model = Shared(Block(_f32(1, 1)), Block(_f32(1, 1)))
    (returned, _), _ = ep.intermediates(lambda m, x: (m, m(x)))(model, _f32(1, 1))
    assert eqx.tree_equal(returned, model)
    assert returned.encoder.hidden.name is None


# ----------------------------------------------------------------------------
# Clear errors, never a silently missing value
# ----------------------------------------------------------------------------


def test_unnamed_slot_is_an_error():
    model = Shared(Block(_f32(1, 1)), Block(_f32(1, 1)))
    with pytest.raises(ValueError, match="slot without a name was recorded"):
        _jit_harvest(lambda x: model(x))(_f32(1, 1))
    with pytest.raises(ValueError, match="Some `ep.Intermediate` slots have no name"):
        _jit_harvest(lambda x: model(x), names=["encoder.hidden"])(_f32(1, 1))


def test_slot_name_clashes():
    a = Block(_f32(1, 1))
    with pytest.raises(ValueError, match="both be named `hidden`"):
        ep.intermediates(lambda a, b, x: b(a(x)))(a, a, _f32(1, 1))
    clash = Shared(a, Block(_f32(1, 1), ep.Intermediate(name="encoder.hidden")))
    with pytest.raises(ValueError, match="explicit `name`; rename that slot"):
        ep.intermediates(clash)(_f32(1, 1))


def test_slot_called_with_different_shapes_is_an_error():
    block = Block(_f32(1))
    with pytest.raises(ValueError, match="slot `hidden` was called 2 times with"):
        _jit_harvest(lambda m, x: m(x).sum() + m(x[0]))(block, _f32(1, 1))


def test_tap_in_while_loop_is_an_error():
    def body(c):
        return ep.intermediate(c + 1, name="w")

    def f(x):
        return lax.while_loop(lambda c: c < 10, body, x) + ep.intermediate(x, name="o")

    with pytest.raises(ValueError, match=r"harvest `w`: it is inside a `lax.while_"):
        _jit_harvest(f)(_f32(0))

    def g(n):
        return lax.fori_loop(0, n, lambda i, c: body(c), 0.0)

    with pytest.raises(ValueError, match=r"harvest `w`: .*fori_loop` with traced"):
        _jit_harvest(g)(np.int32(3))
    out, values = _jit_harvest(f, names=["o"])(_f32(0))  # the loop's tap left out
    assert out == 10.0 and list(values) == ["o"]


def test_tap_in_unsupported_primitive_is_an_error():
    f = jax.shard_map(
        lambda x: ep.intermediate(2 * x, name="sm"),
        mesh=jax.make_mesh((1,), ("d",), axis_types=(jax.sharding.AxisType.Explicit,)),
        in_specs=jax.P(),
        out_specs=jax.P(),
    )
    with pytest.raises(ValueError, match="harvest `sm`: it is inside a `shard_map`"):
        _jit_harvest(f)(_f32(1, 1))


def test_same_name_twice_is_an_error():
    def f(x):
        return ep.intermediate(x, name="a") + ep.intermediate(2 * x, name="a")

    with pytest.raises(ValueError, match="The tap `a` was recorded 2 times"):
        _jit_harvest(f)(_f32(1))

    def g(xs):
        ep.intermediate(xs, name="a")
        return lax.scan(lambda c, x: (ep.intermediate(c + x, name="a"), None), 0.0, xs)

    with pytest.raises(ValueError, match="The tap `a` was recorded 2 times"):
        _jit_harvest(g)(_f32(1, 1, 1))

    inner = jax.jit(lambda y: ep.intermediate(y + 1, name="j"))
    with pytest.raises(ValueError, match="The tap `j` was recorded 2 times"):
        _jit_harvest(lambda x: inner(inner(x)))(_f32(1))

    def h(m, x):
        return m(ep.intermediate(x, name="hidden"))

    with pytest.raises(ValueError, match="`hidden` is used both by an"):
        _jit_harvest(h)(Block(_f32(1)), _f32(1))


def test_cond_branches_must_agree():
    def one_sided(x):
        return lax.cond(
            x > 0, lambda y: ep.intermediate(y, name="only"), lambda y: y, x
        )

    with pytest.raises(ValueError, match="harvest `only`: it is recorded in only"):
        _jit_harvest(one_sided)(_f32(1))
    assert _jit_harvest(one_sided, names=[])(_f32(1))[0] == 1.0

    def other_computes(x):
        return lax.cond(
            x > 0, lambda y: ep.intermediate(y, name="only"), lambda y: 2 * y, x
        )

    with pytest.raises(ValueError, match="harvest `only`: it is recorded in some"):
        _jit_harvest(other_computes)(_f32(1))

    def shapes(x):
        return lax.cond(
            x > 0,
            lambda y: ep.intermediate(y, name="b"),
            lambda y: ep.intermediate(jnp.stack([y, y]), name="b")[0],
            x,
        )

    with pytest.raises(ValueError, match="harvest `b`: the branches .* different"):
        _jit_harvest(shapes)(_f32(1))


def test_names_filter():
    def f(x):
        return ep.intermediate(x, name="a") + ep.intermediate(2 * x, name="b")

    out, values = ep.intermediates(f, names=["b", "a"])(_f32(1))
    assert list(values) == ["b", "a"] and values["b"] == 2.0
    assert ep.intermediates(f, names=())(_f32(1))[1] == {}
    with pytest.raises(ValueError, match="`names` contains `zz`, which no tap"):
        ep.intermediates(f, names=["zz"])(_f32(1))
    with pytest.raises(TypeError, match="not a single string"):
        ep.intermediates(f, names="a")
    with pytest.raises(ValueError, match="contains a name twice"):
        ep.intermediates(f, names=["a", "a"])


def test_bad_arguments():
    with pytest.raises(TypeError, match="`name` must be a non-empty string"):
        ep.intermediate(jnp.ones(2), name="")
    with pytest.raises(TypeError):
        ep.intermediate((jnp.ones(2), jnp.ones(2)), name="pair")
    with pytest.raises(TypeError):
        ep.intermediates(3)


# ----------------------------------------------------------------------------
# What taps accept and return; slots and the harvest as pytrees
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, dtype",
    [
        (np.float32(1.5), jnp.float32),
        (np.arange(3, dtype=np.int32), jnp.int32),
        (True, jnp.bool_),
        (2, jnp.int32),
        (1.5, jnp.float32),
        (1 + 2j, jnp.complex64),
    ],
    ids=["numpy-scalar", "numpy-array", "bool", "int", "float", "complex"],
)
def test_taps_accept_numpy_and_python_scalars(value, dtype):
    def f():
        tapped = ep.intermediate(value, name="tap")
        slotted = ep.Intermediate(name="slot")(value)
        assert isinstance(tapped, jax.Array) and isinstance(slotted, jax.Array)
        return tapped

    out, values = ep.intermediates(f)()
    assert list(values) == ["tap", "slot"]
    for got in (out, values["tap"], values["slot"]):
        assert isinstance(got, jax.Array)
        # (Python scalars take the default precision of this run.)
        assert jnp.dtype(got.dtype).kind == jnp.dtype(dtype).kind
        np.testing.assert_array_equal(got, np.asarray(value))


def test_slot_defaults_and_pytree():
    slot = ep.Intermediate()
    assert slot.name is None
    named = ep.Intermediate(name="mine")
    assert named.name == "mine"
    # The name is static: no leaf, and part of the tree structure.
    assert jax.tree_util.tree_leaves(named) == []
    assert jax.tree_util.tree_structure(named) != jax.tree_util.tree_structure(slot)
    assert ep.is_intermediate(named) and not ep.is_intermediate("mine")


def test_harvest_is_a_pytree_of_the_models_arrays():
    model = Block(_f32(1, 2))
    harvest = ep.intermediates(model, names=["hidden"])
    # The names are static: the only leaf is the model's weight.
    (leaf,) = jax.tree_util.tree_leaves(harvest)
    assert leaf is model.weight
    # So the harvest can be passed to `jax.jit` as an argument.
    out, values = jax.jit(lambda h, x: h(x))(harvest, _f32(1, 1))
    np.testing.assert_allclose(values["hidden"], [1.0, 2.0])
    np.testing.assert_allclose(out, np.tanh([1.0, 2.0]), rtol=1e-6)


def test_names_given_as_a_tuple():
    def f(x):
        return ep.intermediate(x, name="a") + ep.intermediate(2 * x, name="b")

    for names in (("b",), ["b"]):
        _, values = ep.intermediates(f, names=names)(_f32(1))
        assert list(values) == ["b"] and values["b"] == 2.0
    # Default: every tap, in the order they were recorded.
    _, values = ep.intermediates(f)(_f32(1))
    assert list(values) == ["a", "b"]
    np.testing.assert_array_equal(values["a"], 1.0)


def test_returned_model_keeps_explicit_names():
    model = Shared(Block(_f32(1, 1)), Block(_f32(1, 1), ep.Intermediate(name="mine")))
    (returned, out), values = ep.intermediates(lambda m, x: (m, m(x)))(
        model, _f32(1, 1)
    )
    assert list(values) == ["encoder.hidden", "mine"]
    assert returned.encoder.hidden.name is None
    assert returned.decoder.hidden.name == "mine"
    assert eqx.tree_equal(returned, model)
    # A returned slot the harvest never named is returned as it was.
    only = Block(_f32(1, 1), ep.Intermediate(name="only"))
    returned, _ = ep.intermediates(lambda m: m)(only)
    assert returned.hidden.name == "only"


def test_outputs_are_arrays_and_static_parts_are_kept():
    def f(x):
        return {"x": x, "zero": jnp.zeros(()), "n": 3, "s": "text"}

    out, values = ep.intermediates(f)(_f32(1, 2))
    assert values == {}
    assert out["n"] == 3 and out["s"] == "text"
    assert isinstance(out["zero"], jax.Array) and out["zero"] == 0.0
    assert isinstance(out["x"], jax.Array)
    np.testing.assert_array_equal(out["x"], [1.0, 2.0])
