"""`ep.Fixed`'s storage as unsigned bits: which dtypes are stored as what, a
bit-exact round trip (numpy, jax, traced; small arrays revealed on the host, as
constants; placement and sharding kept), and a model whose storage was cast to
float (by a blanket `astype`, or a solver given the model) refused with the fix."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep
from eqxpurify import _storage

from .conftest import X64, outside, raises_and_keeps
from .models import fitted


def test_fixed_storage_converted_to_float():
    # What optimistix with `y0=model` or a blanket `astype` does to a model.
    def to_float(x: Any) -> Any:
        if eqx.is_array(x) and not jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jnp.asarray(x, jnp.float32)
        return x

    model = jax.tree.map(to_float, fitted())
    for call in (ep.unwrap, lambda m: m.x_obs.value):
        raises_and_keeps(
            lambda: call(model),
            model,
            ValueError,
            match=(
                r"Fixed.*stores float(32|64) data as uint(32|64), but its storage now "
                r"has dtype float32.*`params, rest = ep.partition\(model\)`"
            ),
        )


# --------------------------------------------------------------------------------
# The storage itself: which dtypes are hidden, as what, and a bit-exact round trip.

# dtype -> (stored dtype, extra trailing axis); float64 and complex128 only exist
# as such under `jax_enable_x64`.
STORED = {
    "float16": ("uint16", ()),
    "bfloat16": ("uint16", ()),
    "float32": ("uint32", ()),
    "complex64": ("uint32", (2,)),
    **({"float64": ("uint64", ()), "complex128": ("uint64", (2,))} if X64 else {}),
}


def special_values(dtype: Any, size: int) -> np.ndarray:
    """`size` values of `dtype` with the awkward ones first: -0, inf, nan, tiny."""
    real = jnp.finfo(dtype).dtype  # complex: its real part's
    finfo = jnp.finfo(real)
    head = [-0.0, np.inf, -np.inf, np.nan, float(finfo.smallest_subnormal), 1.5]
    body = np.linspace(-3.0, 3.0, size).astype(real)
    out = np.concatenate([np.asarray(head, real), body])[:size]
    if jnp.issubdtype(dtype, jnp.complexfloating):
        z = np.empty(size, dtype)
        z.real, z.imag = out, out[::-1]
        return z
    return out.astype(dtype)


def bits(x: Any) -> np.ndarray:
    """The raw bytes of an array, as unsigned integers (complex: real, imag pairs)."""
    x = np.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        x = np.stack([x.real, x.imag], axis=-1)
    return np.asarray(x, order="C").view(f"uint{8 * x.dtype.itemsize}")


@pytest.mark.parametrize("name", sorted(STORED))
def test_stored_dtype_and_shape(name):
    dtype = jnp.dtype(name)
    stored, extra = STORED[name]
    assert _storage.is_hidden_kind(dtype)
    assert _storage.storage_dtype(dtype) == np.dtype(stored)
    shape = _storage.storage_shape((2, 3), dtype)
    assert isinstance(shape, tuple) and shape == (2, 3, *extra)
    hidden = _storage.hide(jnp.asarray(special_values(dtype, 6).reshape(2, 3)))
    assert hidden.dtype == np.dtype(stored) and hidden.shape == shape
    assert not eqx.is_inexact_array(hidden)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_])
def test_non_floats_stored_as_they_are(dtype):
    x = jnp.zeros((2, 3), dtype)
    assert not _storage.is_hidden_kind(dtype)
    assert _storage.storage_dtype(dtype) == dtype
    assert _storage.storage_shape((2, 3), dtype) == (2, 3)
    assert _storage.hide(x) is x and _storage.reveal(x, dtype) is x
    key = jax.random.key(0)
    assert _storage.hide(key) is key


@pytest.mark.parametrize("size", [5, 32, 33, 64, 65])  # both sides of the host reveal
@pytest.mark.parametrize("source", ["numpy", "jax", "traced"])
@pytest.mark.parametrize("name", sorted(STORED))
def test_round_trip_bit_exact(name, source, size):
    dtype = jnp.dtype(name)
    x = special_values(dtype, size)

    def trip(a):
        return _storage.reveal(_storage.hide(a), dtype)

    if source == "numpy":
        back = trip(x)
        for scalar in (x[0], x[3]):  # -0 and nan, as 0-d arrays
            one = trip(np.asarray(scalar))
            assert one.shape == () and np.array_equal(bits(one), bits(scalar))
    elif source == "jax":
        back = trip(jnp.asarray(x))
    else:
        back = jax.jit(trip)(jnp.asarray(x))
    assert isinstance(back, jax.Array) and back.dtype == dtype and back.shape == (size,)
    np.testing.assert_array_equal(bits(back), bits(x))


@pytest.mark.parametrize("name", sorted(STORED))
def test_small_concrete_revealed_as_a_constant(name):
    # A traced model that closes over a small stored array (a hyperparameter)
    # sees its value as a constant; a large one is bit-cast in the program.
    dtype = jnp.dtype(name)

    def program(size: int) -> str:
        stored = _storage.hide(jnp.asarray(special_values(dtype, size)))
        return str(jax.make_jaxpr(lambda: _storage.reveal(stored, dtype))())

    small = 64 // (2 if jnp.issubdtype(dtype, jnp.complexfloating) else 1)
    assert "bitcast_convert_type" not in program(small)  # 64 stored numbers
    assert "bitcast_convert_type" in program(small + 1)


@pytest.mark.parametrize("kind", ["real", "complex"])
def test_fixed_value_is_the_stored_array_bit_for_bit(float_dtype, kind):
    # Infinities and nans in either part of a complex number included.
    dtype = jnp.dtype(float_dtype)
    if kind == "complex":
        dtype = jnp.dtype(jnp.complex128 if dtype == jnp.float64 else jnp.complex64)
    x = special_values(dtype, 70)
    for arr in (x[:6], x):
        fixed = ep.Fixed(arr)
        assert fixed.value.dtype == dtype
        np.testing.assert_array_equal(bits(fixed.value), bits(arr))


def test_placement_kept_off_the_default_device():
    # In process: the round trip on the default device; in a fresh Python with two
    # devices: an array on the second one is hidden and revealed there (a host
    # round trip would move it to the default device), and a sharded one keeps its
    # sharding both ways.
    x = jnp.arange(4.0)
    np.testing.assert_array_equal(
        _storage.reveal(_storage.hide(x), x.dtype), np.arange(4.0)
    )
    got = outside(
        """
        from eqxpurify import _storage
        from jax.sharding import NamedSharding, PartitionSpec as P
        dev = jax.devices()[1]
        out = {}
        for size in (4, 100):
            x = jax.device_put(jnp.arange(float(size)), dev)
            stored = _storage.hide(x)
            back = _storage.reveal(stored, x.dtype)
            out[f"stored{size}"] = [d.id for d in stored.devices()]
            out[f"back{size}"] = [d.id for d in back.devices()]
            out[f"same{size}"] = bool((back == x).all())
        mesh = jax.make_mesh((2,), ("i",))
        s = NamedSharding(mesh, P("i"))
        y = jax.device_put(jnp.arange(8.0), s)
        stored = _storage.hide(y)
        back = _storage.reveal(stored, y.dtype)
        out["sharded"] = [stored.sharding.is_equivalent_to(s, 1),
                          back.sharding.is_equivalent_to(s, 1)]
        print(json.dumps(out))
        """,
        devices=2,
    )
    for size in (4, 100):
        assert got[f"stored{size}"] == [1] and got[f"back{size}"] == [1]
        assert got[f"same{size}"]
    assert got["sharded"] == [True, True]


@pytest.mark.parametrize("size", [3, 65])  # the host reveal and the bit-cast
def test_complex128_round_trip_with_x64(size):
    # complex128 is stored as pairs of float64 bits, whatever the run's default.
    with jax.enable_x64(True):
        dtype = jnp.dtype(jnp.complex128)
        assert _storage.storage_dtype(dtype) == np.uint64
        x = special_values(dtype, size)
        stored = _storage.hide(jnp.asarray(x))
        assert stored.dtype == np.uint64 and stored.shape == (size, 2)
        for back in (
            _storage.reveal(stored, dtype),
            jax.jit(lambda s: _storage.reveal(s, dtype))(stored),
        ):
            assert back.dtype == dtype and back.shape == (size,)
            np.testing.assert_array_equal(bits(back), bits(x))
