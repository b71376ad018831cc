"""Prior hyperparameters: numbers made `ep.Fixed`, and their values read.

A hyperparameter is an `ep.Fixed` (a constant) or an `ep.Param` (a hierarchical
prior). Their checks, which read a Param's value, are in `_hyper_checks`.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._arrays import host_kind_error, overflowed
from ._fixed import Fixed
from ._plumbing import compute_dtype, is_traced
from ._wrapper_base import AbstractWrapper, is_wrapper

__all__ = [
    "LOG_2PI",
    "Hyper",
    "array_like",
    "broadcastable",
    "compute",
    "describe",
    "open_interval",
    "to_hyper",
    "value_in",
]

Hyper = AbstractWrapper  # an `ep.Fixed` or an `ep.Param` (the kinds are closed)
LOG_2PI = math.log(2 * math.pi)


def describe(arr: Any) -> str:
    if is_traced(arr):
        return "a traced value"
    host = np.asarray(arr)
    return str(host.tolist()) if host.size <= 8 else f"an array of shape {host.shape}"


def to_hyper(value: Any, name: str, owner: str) -> Hyper:
    """A hyperparameter as a wrapper: Params and Fixed kept, numbers made Fixed.

    Integers become JAX's default float through float64 on the host, so a large
    Python int (`2**40`) needs no int64; booleans are refused.
    """
    if is_wrapper(value):
        if not jnp.issubdtype(value.dtype, jnp.floating):
            raise TypeError(
                f"`{owner}({name}=...)` must be floating, got an `ep."
                f"{type(value).__name__}` of dtype {value.dtype}."
            )
        return value
    if value is None or isinstance(value, str | bytes) or not array_like(value):
        raise TypeError(
            f"`{owner}({name}=...)` must be a number, an array, an `ep.Fixed` or an "
            f"`ep.Param` (for a hierarchical prior), got {type(value).__name__}."
        )
    if isinstance(value, jax.Array):
        arr, host = value, None
    else:
        host = np.asarray(value)
        error = host_kind_error(host.dtype, f"{owner}({name}=...)")
        if error is not None:
            raise error
        arr = host
    if arr.dtype == np.bool_:
        raise TypeError(
            f"`{owner}({name}=...)` must be a real number, got a bool ({value!r}). "
            "Pass a float."
        )
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"`{owner}({name}=...)` must be real, got {arr.dtype}.")
    if host is None:
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            arr = arr.astype(jax.dtypes.canonicalize_dtype(float))
        return Fixed(arr)
    if not jnp.issubdtype(host.dtype, jnp.floating):
        host = host.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        arr = host.astype(jax.dtypes.canonicalize_dtype(host.dtype))
    if overflowed(host, arr):
        raise ValueError(
            f"`{owner}({name}=...)` overflows {arr.dtype}; got {describe(host)}. Pass "
            "a smaller value, or enable float64 (`jax.config.update("
            '"jax_enable_x64", True)`).'
        )
    return Fixed(arr)


def array_like(value: Any) -> bool:
    return isinstance(value, int | float | np.ndarray | np.generic | jax.Array) or (
        isinstance(value, list | tuple) and len(value) > 0
    )


def broadcastable(owner: str, **hypers: Hyper) -> None:
    shapes = {name: h.shape for name, h in hypers.items()}
    try:
        jnp.broadcast_shapes(*shapes.values())
    except ValueError:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(
            f"`{owner}` hyperparameters of shapes {listed} do not broadcast together. "
            "Give them the same shape, or make one a scalar."
        ) from None


def value_in(h: Any, dtype: np.dtype) -> Array:
    """A hyperparameter's value in the compute dtype (a non-wrapper is reported)."""
    try:
        value = h.value
    except AttributeError:
        if is_wrapper(h):
            raise
        raise _not_a_wrapper(h) from None
    return value.astype(dtype)


def _not_a_wrapper(h: Any) -> TypeError:
    """The error for a hyperparameter replaced by a raw number or array."""
    shown = describe(h) if array_like(h) else type(h).__name__
    return TypeError(
        f"A prior hyperparameter holds {shown} of type {type(h).__name__}, not an "
        "`ep.Fixed` or `ep.Param`: was it replaced with `eqx.tree_at(lambda p: "
        "p.prior.mean, param, 2.0)`? A raw floating array there would be trained "
        "by every optimiser. Put a wrapper there: `eqx.tree_at(lambda p: "
        "p.prior.mean, param, ep.Fixed(2.0))` for a constant (an `ep.Param` for a "
        "hierarchical prior), or replace the whole prior, which checks its "
        "hyperparameters: `eqx.tree_at(lambda p: p.prior, param, ep.Normal(2.0, "
        "1.0))`."
    )


def compute(x: Array) -> tuple[np.dtype, Array]:
    ct = compute_dtype(x.dtype)
    return ct, x.astype(ct)


def open_interval(u: Array) -> Array:
    """Keep a probability away from 0, where `ndtri` is infinite.

    So a value that rounded onto a bound maps back to a finite latent (that maps
    onto the bound).
    """
    return jnp.maximum(u, jnp.finfo(u.dtype).tiny)
