"""Short human-readable forms of dtypes, shapes, hyperparameters and priors."""

import dataclasses
from typing import Any

import jax
import numpy as np

from ._flat import is_traced
from ._wrappers import Fixed, Param

__all__ = ["prior_str", "short_dtype"]


_DTYPE_PREFIX = {"f": "f", "i": "i", "u": "u", "c": "c", "b": "bool"}


def short_dtype(dtype: Any) -> str:
    """`float32` -> `f32`, `bfloat16` -> `bf16`, as Equinox prints dtypes."""
    dtype = np.dtype(dtype)
    if dtype.name == "bfloat16":
        return "bf16"
    prefix = _DTYPE_PREFIX.get(dtype.kind)
    if prefix is None:
        return dtype.name
    return prefix if prefix == "bool" else f"{prefix}{dtype.itemsize * 8}"


def _hyper_str(x: Any) -> str:
    if isinstance(x, Param):
        return f"Param({prior_str(x.prior)})"
    if isinstance(x, Fixed):
        if x.is_abstract:
            return f"{short_dtype(x.dtype)}[{','.join(map(str, x.shape))}]"
        x = x.stored if is_traced(x.stored) else x.array
    if is_traced(x):
        return "traced"
    if isinstance(x, jax.Array | np.ndarray | np.generic):
        if x.ndim == 0:
            return f"{np.asarray(x).item():.4g}"
        dims = ",".join(str(d) for d in x.shape)
        return f"{short_dtype(x.dtype)}[{dims}]"
    return repr(x)


def prior_str(prior: Any) -> str:
    """A short form of a prior: `LogNormal(3, 0.1)`, `Normal(f32[3], 1)`."""
    try:
        fields = dataclasses.fields(prior)
    except TypeError:
        return repr(prior)
    args = ", ".join(_hyper_str(getattr(prior, f.name)) for f in fields)
    return f"{type(prior).__name__}({args})"
