"""Readable text for wrappers and priors: physical values, not whitened internals.

Used by `repr`/`print` (through Equinox's pretty-printer, which honours
`__pdoc__`), by treescope (`__treescope_repr__`) and by `ep.summary`. Nothing
here copies a large array to the host: a large value is shown by its shape,
dtype and statistics computed on its device, a traced one by its shape.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._flat import is_traced
from ._pending import PendingShape

__all__ = [
    "has_data",
    "is_complete",
    "pdoc",
    "prior_str",
    "short_dtype",
    "treescope_constructor",
    "value_str",
    "wrapper_str",
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


def _spec(shape: tuple[int, ...], dtype: Any) -> str:
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
        return _spec(shape, dtype)
    size = int(np.prod(shape))
    if size <= _SMALL:
        host = np.asarray(x)
        if host.dtype.kind == "V" or host.dtype == np.float16:  # bf16, float8
            host = host.astype(np.float32)
        if host.ndim == 0:
            return _num(host[()])
        flat = ", ".join(_num(v) for v in host.ravel())
        return f"[{flat}]" if host.ndim == 1 else f"{_spec(shape, dtype)}[{flat}]"
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        return _spec(shape, dtype)
    stats = jnp.stack([jnp.mean(x.astype(jnp.float32)), jnp.std(x.astype(jnp.float32))])
    mean, std = (float(v) for v in np.asarray(stats))
    return f"{_spec(shape, dtype)}(mean={mean:.4g}, std={std:.4g})"


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


_HOLDS = (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct, PendingShape)


def has_data(node: Any) -> bool:
    """Whether a wrapper holds its array (or its abstract shape).

    Equinox's filters and gradients keep the wrapper nodes of a model but put
    None (or anything else) in the places they leave out: such a wrapper is
    shown by what it holds instead of by its physical value.
    """
    name = "latent" if hasattr(node, "latent") else "stored"
    return isinstance(node.__dict__.get(name), _HOLDS)


def is_complete(node: Any) -> bool:
    """Whether a wrapper and every wrapper in its prior hold their arrays."""
    from ._wrapper_base import is_wrapper

    if not has_data(node):
        return False
    prior = node.__dict__.get("prior")
    return all(
        is_complete(x)
        for x in jax.tree.leaves(prior, is_leaf=is_wrapper)
        if is_wrapper(x)
    )


def _hyper_str(x: Any) -> str:
    from ._wrappers import Fixed, Param

    if isinstance(x, Param):
        return wrapper_str(x)
    if isinstance(x, Fixed):  # a constant: just its value
        if not has_data(x):  # filtered out (a gradient, `eqx.filter`)
            return repr(x.stored)
        if x.is_abstract or is_traced(x.stored):
            return _spec(x.shape, x.dtype)
        return value_str(x.array)
    if isinstance(x, jax.Array | np.ndarray | np.generic):
        return value_str(x)
    if hasattr(x, "latent_log_prob"):  # a prior, e.g. inside `ep.Centred`
        return prior_str(x)
    if x is None or isinstance(x, bool | int | float | complex | str):
        return repr(x)
    # Anything else (a function, a submodule) by its name: one line, always.
    name = getattr(x, "__name__", None)
    return name if isinstance(name, str) else type(x).__name__


def prior_str(prior: Any) -> str:
    """A prior with its hyperparameter values.

    For example `LogNormal(mean=3, sd=0.1)` or
    `Normal(Param(0.5, prior=Normal(0, 5)), 1)`.
    """
    parts = getattr(prior, "repr_parts", None)
    if parts is not None:  # a prior that names its arguments
        name, items = parts()
        args = ", ".join(
            _hyper_str(v) if k is None else f"{k}={_hyper_str(v)}" for k, v in items
        )
        return f"{name}({args})"
    try:
        fields = dataclasses.fields(prior)
    except TypeError:
        return repr(prior)
    args = ", ".join(_hyper_str(getattr(prior, f.name)) for f in fields)
    return f"{type(prior).__name__}({args})"


def _dtype_note(dtype: Any) -> str:
    default = jax.dtypes.canonicalize_dtype(float)
    return "" if dtype == default else f", dtype={short_dtype(dtype)}"


def wrapper_str(node: Any) -> str:
    """A wrapper by its physical value: the text of `repr(param)`.

    For example `Param(1.811, prior=Normal(1, 0.5))`,
    `Fixed(f32[50](mean=5, std=2.9))` or
    `Param(abstract, shape=(4,), prior=Normal(0, 1))`.
    """
    from ._wrappers import Param

    kind = type(node).__name__
    prior = getattr(node, "prior", None)
    tail = "" if prior is None else f", prior={prior_str(prior)}"
    name = node.__dict__.get("name")
    prior_fn = getattr(node.__dict__.get("latent"), "prior_fn", None)
    if prior_fn is not None:  # a prior made for a shape that waits for an input
        tail = f", prior={getattr(prior_fn, '__name__', 'function')}(shape)"
    if name is not None:
        tail += f", name={name!r}"
    if isinstance(node, Param):
        latent = node.latent
        if not isinstance(latent, _HOLDS):
            return f"{kind}(latent={latent!r}{tail})"
        if not is_complete(node):  # a gradient or a filtered model: no value
            shown = "abstract" if node.is_abstract else value_str(latent)
            return f"{kind}(latent={shown}{_dtype_note(node.dtype)}{tail})"
        if node.is_abstract:
            return (
                f"{kind}(abstract, shape={node.shape}{_dtype_note(node.dtype)}{tail})"
            )
        if is_traced(latent) or any(is_traced(x) for x in jax.tree.leaves(prior)):
            return f"{kind}({_spec(node.shape, node.dtype)}{tail})"
        try:
            shown = value_str(node.value)
        except ValueError:  # a prior of the wrong shape: show, don't fail
            shown = f"<latent {_spec(node.shape, node.dtype)}, prior of another shape>"
        return f"{kind}({shown}{_dtype_note(node.dtype)}{tail})"
    if not has_data(node):  # filtered out (a gradient, `eqx.filter`)
        return f"{kind}({node.stored!r})"
    if node.is_abstract:
        return f"{kind}(abstract, shape={node.shape}{_dtype_note(node.dtype)})"
    if is_traced(node.stored):
        shown = _spec(node.shape, node.dtype)
    else:
        try:
            shown = value_str(node.array)
        except ValueError as e:  # storage converted by a tool: say so, don't fail
            del e
            shown = f"<storage converted to {node.stored.dtype}: data lost>"
    frozen = "" if prior is None else f", frozen from {prior_str(prior)}"
    named = "" if name is None else f", name={name!r}"
    return f"{kind}({shown}{frozen}{named})"
