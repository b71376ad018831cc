"""Joining many small arrays into one vector and splitting it back, fast.

Eagerly, slicing a device array at 10^4 distinct static offsets compiles 10^4
programs, and one jitted program with 10^4 outputs takes minutes to compile.
So: when tracing, plain slices (they are just equations); when eager, one cached
`dynamic_slice` program per leaf shape, with the offset as a runtime argument.
"""

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jaxtyping import Array

__all__ = ["common_dtype", "compute_dtype", "concat", "is_traced", "split"]


def is_traced(*arrays: object) -> bool:
    return any(isinstance(a, Tracer) for a in arrays)


def compute_dtype(dtype: Any) -> np.dtype:
    """The dtype to compute in: low-precision floats are promoted to float32.

    Written out rather than via `jnp.promote_types`, which obeys (and under strict
    promotion refuses) the user's promotion mode.
    """
    dtype = np.dtype(dtype)
    return dtype if dtype.itemsize >= 4 else np.dtype(np.float32)


def common_dtype(dtypes: Sequence[Any]) -> np.dtype:
    """The dtype that holds every latent exactly: the widest, at least float32."""
    return max(
        (compute_dtype(d) for d in dtypes),
        key=lambda d: d.itemsize,
        default=np.dtype(np.float32),
    )


@functools.partial(jax.jit, static_argnums=(2, 3))
def _take(flat: Array, offset: Any, shape: tuple[int, ...], dtype: np.dtype) -> Array:
    size = math.prod(shape)
    piece = jax.lax.dynamic_slice(flat, (offset,), (size,))
    return piece.reshape(shape).astype(dtype)


def split(
    flat: Array, shapes: Sequence[tuple[int, ...]], dtypes: Sequence[np.dtype]
) -> list[Array]:
    """Cut `flat` into consecutive pieces of the given shapes, cast to `dtypes`."""
    out = []
    offset = 0
    traced = is_traced(flat)
    for shape, dtype in zip(shapes, dtypes, strict=True):
        size = math.prod(shape)
        if traced or size == 0:
            piece = flat[offset : offset + size].reshape(shape).astype(dtype)
        else:
            piece = _take(flat, np.int32(offset), shape, np.dtype(dtype))
        out.append(piece)
        offset += size
    return out


def concat(arrays: Sequence[Array], dtype: np.dtype) -> Array:
    """One 1-d vector of all `arrays`, raveled in order and cast to `dtype`."""
    if not arrays:
        return jnp.zeros((0,), dtype)
    if is_traced(*arrays):
        return jnp.concatenate([jnp.ravel(a).astype(dtype) for a in arrays])
    host = [np.asarray(a).astype(dtype, copy=False).ravel() for a in arrays]
    return jnp.asarray(np.concatenate(host))
