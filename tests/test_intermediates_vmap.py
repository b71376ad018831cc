"""Tap values under `jax.vmap`: plain and nested vmaps, `in_axes`/`out_axes` other
than 0, compared with NumPy loops over the mapped axes.

A tap inside a vmap is harvested with the vmapped axes leading, outermost vmap
first, whatever axes the vmaps map over. These tests pin that layout, which the
batching rule (shifting earlier axes when a new one is inserted) and the
harvester (moving the recorded axes to the front) together produce.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import eqxpurify as ep

X4 = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5) / 10


def _tap_sin(x):
    """Tap `sin(x)` under the name `s`; return the sum of its square."""
    return jnp.sum(ep.intermediate(jnp.sin(x), name="s") ** 2)


def test_two_plain_nested_vmaps():
    x = X4[0]  # (3, 4, 5)
    f = jax.vmap(jax.vmap(_tap_sin))
    out, values = jax.jit(ep.intermediates(f))(x)
    np.testing.assert_allclose(values["s"], np.sin(x), rtol=1e-6)
    np.testing.assert_allclose(out, np.sum(np.sin(x) ** 2, axis=-1), rtol=1e-5)

    # A scalar tapped inside both vmaps.
    def scalar(x):
        return ep.intermediate(2 * x, name="d") + 1

    _, values = ep.intermediates(jax.vmap(jax.vmap(scalar)))(x[0])
    np.testing.assert_array_equal(values["d"], 2 * x[0])

    # Three plain vmaps, eagerly.
    _, values = ep.intermediates(jax.vmap(jax.vmap(jax.vmap(_tap_sin))))(X4)
    np.testing.assert_allclose(values["s"], np.sin(X4), rtol=1e-6)


def test_vmap_of_harvest_of_vmap():
    # The inner vmap is harvested; the outer vmap batches the harvest.
    f = jax.vmap(ep.intermediates(jax.vmap(_tap_sin, in_axes=1)), in_axes=2)
    _, values = jax.jit(f)(X4[0])  # (3, 4, 5)
    # outer index k over axis 2, inner index j over axis 1: value[k, j] = x[:, j, k]
    expected = np.sin(np.transpose(X4[0], (2, 1, 0)))
    np.testing.assert_allclose(values["s"], expected, rtol=1e-6)


@pytest.mark.parametrize("in_axes", [0, 1, 2, -1])
def test_single_vmap_in_axes(in_axes):
    x = X4[0]  # (3, 4, 5): every axis a different size
    out, values = jax.jit(ep.intermediates(jax.vmap(_tap_sin, in_axes=in_axes)))(x)
    expected = np.stack([np.sin(s) for s in np.moveaxis(x, in_axes, 0)])
    assert values["s"].shape == expected.shape
    np.testing.assert_allclose(values["s"], expected, rtol=1e-6)
    np.testing.assert_allclose(out, np.sum(expected**2, axis=(1, 2)), rtol=1e-5)


def test_tap_of_the_unchanged_input_keeps_its_batch_axis():
    # No operation before the tap: the operand is the input, batched at axis 2.
    def f(x):
        ep.intermediate(x, name="x")
        return x.sum()

    _, values = ep.intermediates(jax.vmap(f, in_axes=2))(X4[0])
    np.testing.assert_array_equal(values["x"], np.moveaxis(X4[0], 2, 0))


def _loop_expected(x, outer, inner):
    """NumPy: `value[k, j] = sin(x_k_j)` with `x_k = moveaxis(x, outer, 0)[k]`
    and `x_k_j = moveaxis(x_k, inner, 0)[j]`."""
    rows = []
    for xk in np.moveaxis(x, outer, 0):
        rows.append(np.stack([np.sin(xkj) for xkj in np.moveaxis(xk, inner, 0)]))
    return np.stack(rows)


@pytest.mark.parametrize(
    "outer, inner",
    [(0, 0), (1, 0), (0, 1), (2, 1), (1, 2), (3, 0), (0, 2), (3, 2), (2, 2)],
)
def test_nested_vmaps_with_different_in_axes(outer, inner):
    f = jax.vmap(jax.vmap(_tap_sin, in_axes=inner), in_axes=outer)
    _, values = jax.jit(ep.intermediates(f))(X4)
    expected = _loop_expected(X4, outer, inner)
    assert values["s"].shape == expected.shape
    np.testing.assert_allclose(values["s"], expected, rtol=1e-6)


@pytest.mark.parametrize("out_axes", [0, 1, -1])
def test_out_axes_do_not_move_tap_values(out_axes):
    def f(x):
        h = ep.intermediate(jnp.sin(x), name="s")
        return 3 * h

    g = jax.vmap(f, in_axes=1, out_axes=out_axes)
    out, values = jax.jit(ep.intermediates(g))(X4[0])  # (3, 4, 5)
    per_column = np.stack([np.sin(X4[0][:, j]) for j in range(4)])  # (4, 3, 5)
    np.testing.assert_allclose(values["s"], per_column, rtol=1e-6)
    np.testing.assert_allclose(out, np.moveaxis(3 * per_column, 0, out_axes), rtol=1e-6)

    nested = jax.vmap(jax.vmap(f, in_axes=1, out_axes=1), in_axes=2, out_axes=0)
    out, values = jax.jit(ep.intermediates(nested))(X4[0])
    expected = _loop_expected(X4[0], 2, 1)  # (5, 4, 3)
    np.testing.assert_allclose(values["s"], expected, rtol=1e-6)
    np.testing.assert_allclose(out, np.swapaxes(3 * expected, 1, 2), rtol=1e-6)


def test_scan_inside_vmap_with_in_axes():
    # The scan axis leads, then the vmapped axis.
    def running(col):
        def step(c, xi):
            c = c + xi
            return c, ep.intermediate(c, name="c")

        return lax.scan(step, jnp.zeros(col.shape[1:], col.dtype), col)[1]

    x = X4[0]  # (3, 4, 5): vmap over axis 1, scan over the first remaining axis
    ys, values = jax.jit(ep.intermediates(jax.vmap(running, in_axes=1)))(x)
    cumsum = np.cumsum(x, axis=0)  # (3, 4, 5): steps, columns, rest
    np.testing.assert_allclose(values["c"], cumsum, rtol=1e-6)
    np.testing.assert_allclose(ys, np.moveaxis(cumsum, 1, 0), rtol=1e-6)


def test_vmap_inside_scan_with_in_axes():
    def f(xs):  # xs: (steps, 4, 5), vmapped over axis 2 in each step
        def step(c, x):
            y = jax.vmap(lambda v: ep.intermediate(v * c, name="v"), in_axes=1)(x)
            return c + 1, y

        return lax.scan(step, jnp.float32(1), xs)

    _, values = jax.jit(ep.intermediates(f))(X4[0])
    expected = np.stack([np.swapaxes(X4[0][t], 0, 1) * (1 + t) for t in range(3)])
    np.testing.assert_allclose(values["v"], expected, rtol=1e-6)


@pytest.mark.parametrize("outer", [0, 1])
def test_value_batched_by_the_outer_vmap_only(outer):
    # A value that depends only on the outer vmapped input is harvested with
    # the outer axis only.
    def f(a, b):
        def g(row):
            ep.intermediate(jnp.cos(a), name="a")
            return jnp.sum(a) * row

        return jax.vmap(g)(b)

    a = X4[0, 0]  # (4, 5), vmapped over `outer`
    b = X4[1, :, :2, :].reshape(3, 10)
    out, values = ep.intermediates(jax.vmap(f, in_axes=(outer, None)))(a, b)
    a_rows = np.moveaxis(a, outer, 0)
    np.testing.assert_allclose(values["a"], np.cos(a_rows), rtol=1e-6)
    expected = a_rows.sum(axis=1)[:, None, None] * b
    np.testing.assert_allclose(out, expected, rtol=1e-5)


# `lax.map(f, xs, batch_size=b)` is a scan over batches, each mapped by `jax.vmap`;
# its taps get one value per element of `xs`, as without `batch_size`.


def _mapped(xs, batch_size):
    total = jnp.sum(xs)  # does not depend on the element: one value per element

    def f(x):
        y = ep.intermediate(jnp.sin(x), name="y")
        ep.intermediate(total, name="total")
        return 3 * y

    return lax.map(f, xs, batch_size=batch_size)


@pytest.mark.parametrize("batch_size", [1, 2, 5, 10])
@pytest.mark.parametrize("jit", [False, True])
def test_taps_in_lax_map_with_batch_size_have_one_value_per_element(batch_size, jit):
    xs = jnp.arange(20.0).reshape(10, 2)
    harvest = ep.intermediates(_mapped)
    if jit:
        harvest = jax.jit(harvest, static_argnums=1)
    out, values = harvest(xs, batch_size)
    _, expected = ep.intermediates(_mapped)(xs, None)
    assert values["y"].shape == (10, 2) and values["total"].shape == (10,)
    np.testing.assert_allclose(values["y"], expected["y"], rtol=1e-6)
    np.testing.assert_allclose(values["total"], expected["total"], rtol=1e-6)
    np.testing.assert_allclose(out, 3 * expected["y"], rtol=1e-6)


def test_taps_in_lax_map_with_batch_size_under_grad():
    xs = jnp.arange(20.0).reshape(10, 2)

    def loss(xs):
        _, values = ep.intermediates(_mapped)(xs, 5)
        assert values["y"].shape == (10, 2)
        return jnp.sum(values["y"] * xs)

    expected = jnp.sin(xs) + xs * jnp.cos(xs)
    np.testing.assert_allclose(jax.grad(loss)(xs), expected, rtol=1e-5)


def test_taps_in_lax_map_with_a_remainder_are_refused_naming_the_batch_size():
    xs = jnp.arange(20.0).reshape(10, 2)
    with pytest.raises(
        ValueError,
        match=r"The tap `y` was recorded 2 times.*Inside `lax.map\(f, xs, "
        r"batch_size=b\)` with a `b` that does not divide the length.*pass a "
        r"`batch_size` that divides the length, or harvest without `batch_size`",
    ):
        ep.intermediates(_mapped)(xs, 3)


def test_taps_in_lax_map_with_batch_size_and_an_inner_vmap_are_refused():
    def f(xs):
        inner = jax.vmap(lambda v: ep.intermediate(jnp.sin(v), name="v"))
        return lax.map(inner, xs, batch_size=2)

    with pytest.raises(
        ValueError,
        match=r"Cannot harvest `v`: it is inside `lax.map\(f, xs, batch_size=...\)` "
        r"and inside another `jax.vmap`.*Harvest without `batch_size`",
    ):
        ep.intermediates(f)(jnp.ones((4, 3)))


class Tapped(eqx.Module):
    w: ep.Param
    hidden: ep.Intermediate

    def __init__(self):
        self.w = ep.Param(jnp.arange(3.0))
        self.hidden = ep.Intermediate()

    @ep.unwrapped
    def __call__(self, x):
        return jnp.sum(self.hidden(x * self.w))


def test_slot_names_through_filter_vmap():
    model = Tapped()
    out, values = ep.intermediates(eqx.filter_vmap(model))(jnp.ones((2, 3)))
    assert list(values) == ["hidden"]
    assert values["hidden"].tolist() == [[0.0, 1.0, 2.0]] * 2
    assert out.tolist() == [3.0, 3.0]
