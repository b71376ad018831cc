"""What the wrappers' constructors take: arrays, shapes and dtypes, checked.

An array from a number, host data or a device array, refused where JAX would
change it (non-numbers, integers that wrap, finite numbers that overflow to inf);
a static shape; a dtype (a Param's floating); a shape the prior broadcasts to.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._abstract_prior import AbstractPrior
from ._plumbing import is_traced
from ._wrapper_base import AbstractWrapper, shape_str

__all__ = [
    "any_dtype",
    "as_array",
    "broadcast",
    "check_broadcast",
    "check_float",
    "check_host_data",
    "default_float",
    "host_kind_error",
    "ints_as_floats",
    "overflowed",
    "static_shape",
]


def any_dtype(dtype: Any) -> Any:
    """`np.dtype(dtype)`, or JAX's extended dtype (PRNG keys) as it is."""
    if jax.dtypes.issubdtype(dtype, jax.dtypes.extended):
        return dtype
    return np.dtype(dtype)


def default_float() -> np.dtype:
    return jax.dtypes.canonicalize_dtype(float)


def static_shape(shape: Any, owner: str) -> tuple[int, ...]:
    """Validate a `shape=` argument: static, non-negative Python or NumPy ints.

    NumPy integers (`np.int64(8)`, common with data from pandas) are taken as
    Python ints.
    """
    given: Any = shape
    if isinstance(shape, int | np.integer) and not isinstance(shape, bool):
        given = (shape,)
    try:
        dims = tuple(given)
    except TypeError:
        dims = None
    if dims is None or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims
    ):
        raise TypeError(
            f"`{owner}`: `shape` must be a tuple of static Python ints, got "
            f"{shape!r}. Shapes cannot be traced values: pass them as Python ints "
            "(e.g. mark them static in `jax.jit`)."
        )
    if any(d < 0 for d in dims):
        raise ValueError(
            f"`{owner}`: `shape` must have non-negative dimensions, got {dims}."
        )
    return tuple(int(d) for d in dims)


def as_array(value: Any, dtype: Any, owner: str) -> Array:
    """`value` as an array (of `dtype` if given), refusing non-array objects.

    A finite number that becomes inf in the array's dtype is an error.
    """
    if value is None or isinstance(value, str | bytes | AbstractPrior):
        raise TypeError(
            f"`{owner}` needs an array or a number, got {type(value).__name__}."
        )
    if _on_host(value):
        check_host_data(value, dtype, owner)
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            if dtype is None:
                if isinstance(value, jax.Array):
                    return value
                arr = jnp.asarray(value)
            else:
                arr = jnp.asarray(value, dtype)
    except OverflowError as e:  # a Python int too large for JAX's default int
        raise ValueError(
            f"`{owner}` got {e}. Pass an array of an explicit dtype (e.g. "
            "`np.int64`, with `jax_enable_x64`) or a float."
        ) from e
    except TypeError as e:
        raise TypeError(
            f"`{owner}` needs an array or a number, got {type(value).__name__}."
        ) from e
    message = (
        f"`{owner}`: the value overflows {arr.dtype} (it becomes inf). Pass a value "
        f"within {arr.dtype}'s range, or a wider `dtype=`."
    )
    if not jnp.issubdtype(arr.dtype, jnp.inexact):
        return arr
    if is_traced(value, arr):
        overflowed = jnp.isfinite(value) & ~jnp.isfinite(arr)
        return eqx.error_if(arr, jnp.any(overflowed), message)
    if _overflowed(value, arr):
        raise ValueError(message)
    return arr


def _on_host(value: Any) -> bool:
    return isinstance(value, np.ndarray | np.generic | list | tuple)


def host_kind_error(dtype: np.dtype, owner: str) -> TypeError | None:
    """The error for host data of a dtype JAX cannot hold, or None.

    Numbers (booleans, integers, floats, complex) are fine; dates, times,
    strings and Python objects are refused with how to convert them.
    """
    if dtype.kind in "biufc" or dtype.kind == "V":  # V: bfloat16, float8
        return None
    if dtype.kind in "mM":
        fix = (
            "JAX arrays hold numbers, not dates or times: convert them first, e.g. "
            "to seconds since a reference, `(t - t0) / np.timedelta64(1, 's')`."
        )
    elif dtype.kind in "USa":
        fix = (
            "JAX arrays hold numbers, not strings: encode them first, e.g. as "
            "category codes (`np.unique(x, return_inverse=True)[1]`)."
        )
    else:
        fix = (
            "JAX arrays hold numbers: convert it to a numeric dtype first, e.g. "
            "`np.asarray(x, dtype=float)` (a pandas column: `.to_numpy(float)`)."
        )
    return TypeError(f"`{owner}` got an array of dtype {dtype}. {fix}")


def check_host_data(value: Any, dtype: Any, owner: str) -> None:
    """Refuse host data that JAX would change: non-numbers, integers that wrap.

    Without `jax_enable_x64`, JAX stores 64-bit integers in 32 bits; a value
    outside that range would wrap around (`1.7e18 -> 908722176`), so it is an
    error, as a float overflowing its dtype is. Values that fit are kept.
    """
    try:
        host = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        return  # not host data JAX could take either: `jnp.asarray` says why
    error = host_kind_error(host.dtype, owner)
    if error is not None:
        raise error
    if host.dtype.kind not in "iu" or host.size == 0:
        return
    target = np.dtype(
        jax.dtypes.canonicalize_dtype(host.dtype if dtype is None else dtype)
    )
    if target.kind not in "iu":
        return
    info = np.iinfo(target)
    low, high = host.min(), host.max()
    if low >= info.min and high <= info.max:
        return
    bad = high if high > info.max else low
    if dtype is None:
        fix = (
            f"JAX stores {host.dtype} as {target} unless 64-bit mode is on. Enable "
            'it (`jax.config.update("jax_enable_x64", True)` at start-up), or '
            "pass a float `dtype=`."
        )
    else:
        fix = "Pass a wider integer `dtype=` (with `jax_enable_x64` for 64 bits)."
    raise ValueError(
        f"`{owner}` got {host.dtype} data with the value {bad}, outside the range "
        f"of {target} ([{info.min}, {info.max}]): it would wrap around. {fix}"
    )


def _overflowed(value: Any, arr: Array) -> bool:
    """Whether a concrete `value` of another numeric dtype overflowed in `arr`."""
    source = getattr(value, "dtype", None)
    source = np.asarray(value).dtype if source is None else np.dtype(source)
    if source == arr.dtype or source.kind not in "fciubV":  # V: bfloat16, float8
        return False
    return overflowed(value, arr)


def overflowed(value: Any, arr: Any) -> bool:
    """Whether a finite number of a concrete `value` is inf in `arr`, its cast."""
    with np.errstate(over="ignore", invalid="ignore"):
        given = np.isfinite(np.asarray(value))
        got = np.isfinite(np.asarray(arr))
    return bool(np.any(given & ~got))


def check_float(dtype: np.dtype) -> None:
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"`ep.Param` needs a floating dtype, got {dtype}. Integer and boolean "
            "data is never trained: store it as `ep.Fixed(...)` or a plain field."
        )


def broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """The broadcast shape, or None where the shapes do not broadcast."""
    try:
        return tuple(jnp.broadcast_shapes(*shapes))
    except ValueError:
        return None


def check_broadcast(prior: AbstractPrior, shape: tuple[int, ...]) -> None:
    batch = prior.batch_shape
    if broadcast(batch, shape) != shape:
        raise ValueError(
            f"The prior's hyperparameters have shape {shape_str(batch)}, which does "
            f"not broadcast to the Param's shape {shape_str(shape)}. Give the Param "
            "a matching `shape=` or hyperparameters of a broadcastable shape."
        )


def ints_as_floats(value: Any) -> Any:
    """Python or NumPy integers and bools for a Param value, as float64 on the host.

    So a large Python int (`2**31`) needs no int64; the Param's dtype is JAX's
    default float either way.
    """
    if isinstance(value, jax.Array | AbstractWrapper | AbstractPrior | str | bytes):
        return value
    try:
        host = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        return value
    return host.astype(np.float64) if host.dtype.kind in "iub" else value
