"""Array plumbing for the fast paths: many small arrays joined, cut and placed.

Eagerly, one device call per small array dominates: vectors are joined and cut
on the host, and pieces of one shape go to the device together, stacked, then
are unstacked there (one cached program per shape). Also here: the dtype arrays
are computed and joined in, and the test for a tracer.
"""

import functools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jaxtyping import Array

__all__ = [
    "common_dtype",
    "compute_dtype",
    "concat",
    "default_device",
    "is_traced",
    "place",
    "spans_devices",
    "to_device",
    "unstack",
]


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


def concat(arrays: Sequence[Any], dtype: np.dtype) -> Array:
    """One 1-d vector of all `arrays`, raveled in order and cast to `dtype`."""
    if not arrays:
        return jnp.zeros((0,), dtype)
    if is_traced(*arrays):
        return jnp.concatenate([jnp.ravel(a).astype(dtype) for a in arrays])
    host = [np.asarray(a).astype(dtype, copy=False).ravel() for a in arrays]
    return jnp.asarray(np.concatenate(host))


_CHUNK = 8  # rows per call of `_rows`


def unstack(stacked: Array) -> list[Array]:
    """The rows of a device array, as separate device arrays.

    Cut `_CHUNK` rows per call of one compiled program (per shape and dtype),
    the last chunk overlapping the one before. Iterating over the array
    (`list(stacked)`) would compile a program of 100 results, seconds cold;
    `jnp.unstack` one of a result per row, minutes cold at 10^4 rows.
    """
    n = stacked.shape[0]
    if n < _CHUNK:
        return [_rows(stacked, i, 1)[0] for i in range(n)]
    out: list[Array] = []
    for start in range(0, n - _CHUNK + 1, _CHUNK):
        out.extend(_rows(stacked, start, _CHUNK))
    if n % _CHUNK:
        out.extend(_rows(stacked, n - _CHUNK, _CHUNK)[_CHUNK - n % _CHUNK :])
    return out


@functools.partial(jax.jit, static_argnums=2)
def _rows(stacked: Array, start: Array, count: int) -> tuple[Array, ...]:
    part = jax.lax.dynamic_slice_in_dim(stacked, start, count)
    return tuple(part[i] for i in range(count))


def to_device(pieces: Sequence[np.ndarray]) -> list[Array]:
    """Host arrays to the default device: one transfer per distinct shape/dtype."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, piece in enumerate(pieces):
        groups[(piece.shape, piece.dtype)].append(i)
    out: list[Any] = [None] * len(pieces)
    for members in groups.values():
        if len(members) == 1:
            out[members[0]] = jnp.asarray(pieces[members[0]])
            continue
        rows = unstack(jax.device_put(np.stack([pieces[i] for i in members])))
        for i, row in zip(members, rows):
            out[i] = row
    return out


def default_device() -> Any:
    """The device JAX puts new arrays on (`jax_default_device`, else the first)."""
    device = getattr(jax.config, "jax_default_device", None)
    return device if isinstance(device, jax.Device) else jax.devices()[0]


def spans_devices(sharding: Any) -> bool:
    """Whether `sharding` (or None: the default placement) spans several devices."""
    return sharding is not None and len(sharding.device_set) > 1


def place(arrays: list[Any], targets: Sequence[Any]) -> list[Any]:
    """`arrays` with each one that has a target sharding moved there.

    The others are left where they are (uncommitted arrays stay uncommitted).
    """
    moved = [i for i, t in enumerate(targets) if t is not None]
    if not moved:
        return arrays
    out = list(arrays)
    put = jax.device_put([arrays[i] for i in moved], [targets[i] for i in moved])
    for i, arr in zip(moved, put):
        out[i] = arr
    return out
