"""Storage for never-trained floating arrays: their bits, as unsigned integers.

Every tool that trains "all floating arrays of a model" (`eqx.is_inexact_array`
filters, adamw's weight decay, numpyro's `random_eqx_module`) recognises a
trainable leaf by its dtype. `ep.Fixed` data and prior hyperparameters are
therefore stored as the raw bits of the float, viewed as an unsigned integer of
the same width (`float32 -> uint32`, `bfloat16 -> uint16`; complex numbers as
pairs of floats). A bit-cast is free in XLA, keeps shardings, and is exact both
ways, so `.value` gives back the very same array. Non-floating data (integers,
booleans, PRNG keys) is stored as it is: nothing trains it anyway.
"""

from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array

from ._plumbing import default_device, is_traced

__all__ = [
    "hide",
    "is_array",
    "is_hidden_kind",
    "reveal",
    "storage_dtype",
    "storage_shape",
]

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def is_hidden_kind(dtype: Any) -> bool:
    """Whether arrays of `dtype` are stored bit-cast (real and complex floats)."""
    return bool(jnp.issubdtype(dtype, jnp.inexact))


def _is_complex(dtype: Any) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.complexfloating))


def _real(dtype: np.dtype) -> np.dtype:
    """The real float dtype of a complex dtype (`complex64 -> float32`)."""
    return np.dtype(np.float32 if dtype == np.complex64 else np.float64)


def storage_dtype(dtype: Any) -> Any:
    """The dtype an array of `dtype` is stored as."""
    if not is_hidden_kind(dtype):
        return dtype
    dtype = np.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        dtype = _real(dtype)
    return np.dtype(_UINT[dtype.itemsize])


def storage_shape(shape: tuple[int, ...], dtype: Any) -> tuple[int, ...]:
    """The shape an array of `shape` and `dtype` is stored as."""
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return (*shape, 2)
    return tuple(shape)


def hide(arr: Any) -> Array:
    """The stored form of `arr`: its bits for floats, `arr` itself otherwise."""
    dtype = getattr(arr, "dtype", None)
    if dtype is None or not is_hidden_kind(dtype):
        return arr
    dtype = np.dtype(dtype)
    target = storage_dtype(dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        arr = jnp.stack([jnp.real(arr), jnp.imag(arr)], axis=-1)
    if isinstance(arr, np.ndarray | np.generic) and not is_traced(arr):
        return jnp.asarray(np.asarray(arr, order="C").view(target))
    return lax.bitcast_convert_type(cast(Any, arr), target)


_SMALL = 64  # elements: revealed on the host, a constant for the compiler


def _on_default_device(x: Any) -> bool:
    """Whether `x` is a concrete array on the default device.

    That is where `jnp.asarray` would put a copy, so a host round trip keeps its
    placement.
    """
    if is_traced(x) or not isinstance(x, jax.Array):
        return False
    devices = x.sharding.device_set
    return len(devices) == 1 and default_device() in devices


def reveal(stored: Any, dtype: Any) -> Array:
    """The array of `dtype` whose stored form is `stored` (inverse of `hide`).

    A small concrete array (a hyperparameter, say) is bit-cast on the host, so a
    traced model that closes over it sees a constant, not a bit-cast operation.
    """
    if not is_hidden_kind(dtype):
        return stored
    dtype = np.dtype(dtype)
    if stored.size <= _SMALL and _on_default_device(stored):
        host = np.asarray(stored).view(dtype)
        if _is_complex(dtype):  # (real, imag) pairs: one complex each, bit for bit
            host = host[..., 0]
        return jnp.asarray(host)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        pairs = lax.bitcast_convert_type(stored, _real(dtype))
        return lax.complex(pairs[..., 0], pairs[..., 1])
    return lax.bitcast_convert_type(stored, dtype)


def is_array(x: Any) -> bool:
    return isinstance(x, jax.Array | np.ndarray | np.generic)
