"""Readable text for arrays and dtypes, and the hooks of the printers.

What the text of wrappers and priors is made of: their owners (`_wrapper_base`,
`_param`, `_fixed`, `_abstract_prior`) write it for `repr`/`print` (through
Equinox's pretty-printer, which honours `__pdoc__`), treescope
(`__treescope_repr__`) and `ep.summary`. Nothing here copies a large array to the
host: a large value is shown by its shape, dtype and statistics computed on its
device, a traced one by its shape.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._plumbing import is_traced

__all__ = [
    "dtype_note",
    "pdoc",
    "short_dtype",
    "spec",
    "treescope_constructor",
    "value_str",
]

_DTYPE_PREFIX = {"f": "f", "i": "i", "u": "u", "c": "c", "b": "bool"}
_SMALL = 6  # elements shown one by one


def short_dtype(dtype: Any) -> str:
    """`float32` -> `f32`, `bfloat16` -> `bf16`, as Equinox prints dtypes."""
    if jax.dtypes.issubdtype(dtype, jax.dtypes.extended):
        return str(dtype)
    dtype = np.dtype(dtype)
    if dtype.name == "bfloat16":
        return "bf16"
    prefix = _DTYPE_PREFIX.get(dtype.kind)
    if prefix is None:
        return dtype.name
    return prefix if prefix == "bool" else f"{prefix}{dtype.itemsize * 8}"


def spec(shape: tuple[int, ...], dtype: Any) -> str:
    """`f32[100,3]`: an array by its dtype and shape."""
    return f"{short_dtype(dtype)}[{','.join(str(d) for d in shape)}]"


def _num(x: Any) -> str:
    if isinstance(x, bool | np.bool_):
        return str(bool(x))
    if isinstance(x, complex | np.complexfloating):
        return f"{complex(x):.4g}"
    return f"{float(x):.4g}" if isinstance(x, float | np.floating) else str(x)


def value_str(x: Any) -> str:
    """`1.811`, `[0.1, 0.2]`, or `f32[100,3](mean=0.01, std=1.2)` for a large one."""
    shape = tuple(jnp.shape(x))
    dtype = x.dtype
    if is_traced(x) or jax.dtypes.issubdtype(dtype, jax.dtypes.extended):
        return spec(shape, dtype)
    size = int(np.prod(shape))
    if size <= _SMALL:
        host = np.asarray(x)
        if host.dtype.kind == "V" or host.dtype == np.float16:  # bf16, float8
            host = host.astype(np.float32)
        if host.ndim == 0:
            return _num(host[()])
        flat = ", ".join(_num(v) for v in host.ravel())
        return f"[{flat}]" if host.ndim == 1 else f"{spec(shape, dtype)}[{flat}]"
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        return spec(shape, dtype)
    stats = jnp.stack([jnp.mean(x.astype(jnp.float32)), jnp.std(x.astype(jnp.float32))])
    mean, std = (float(v) for v in np.asarray(stats))
    return f"{spec(shape, dtype)}(mean={mean:.4g}, std={std:.4g})"


def pdoc(obj: Any, **kwargs: Any) -> Any:
    """`obj`'s text for Equinox's pretty-printer (`print(model)`).

    The printer calls an object's `__pdoc__`, which returns this.
    """
    import wadler_lindig as wl

    del kwargs
    return wl.TextDoc(repr(obj))


def treescope_constructor(
    obj: Any, attributes: dict[str, Any], path: Any, subtree_renderer: Any
) -> Any:
    """A treescope rendering of `obj` as its type called with `attributes`."""
    from treescope import repr_lib

    return repr_lib.render_object_constructor(
        object_type=type(obj),
        attributes=attributes,
        path=path,
        subtree_renderer=subtree_renderer,
        roundtrippable=False,
    )


def dtype_note(dtype: Any) -> str:
    """`, dtype=f64` where `dtype` is not JAX's default float, else nothing."""
    default = jax.dtypes.canonicalize_dtype(float)
    return "" if dtype == default else f", dtype={short_dtype(dtype)}"
