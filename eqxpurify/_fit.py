"""Whether arrays given back to a model fit it: the checks of `ep.combine`.

`ep.partition` records each trainable array's shape and dtype; `rebuild` checks
each entry given back against them. Shapes and dtypes are static, so under a
trace the checks cost nothing at run time. Only the error paths live here.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._plumbing import is_traced
from ._storage import is_array
from ._wrapper_base import shape_str

__all__ = ["cast_leaf", "castable", "leaf_error", "mapped_over", "probe"]


def cast_leaf(rest: Any, pos: int, leaf: Any, caller: str) -> Any:
    """`leaf` as an array of its trainable array's dtype, if its kind allows."""
    dtype = rest.layout.dtypes[rest.layout.train_pos.index(pos)]
    got = getattr(leaf, "dtype", None)
    if isinstance(leaf, bool | np.bool_) or (
        got is None and not isinstance(leaf, int | float | complex)
    ):
        kind = "None" if leaf is None else f"a {type(leaf).__name__}"
        raise leaf_error(rest, pos, caller, f"is {kind}")
    if got is not None and not castable(np.dtype(got), np.dtype(dtype)):
        raise leaf_error(rest, pos, caller, f"has dtype {got}")
    if isinstance(leaf, jax.Array):
        return leaf.astype(dtype)
    return jnp.asarray(leaf, dtype)


@functools.cache
def castable(got: np.dtype, want: np.dtype) -> bool:
    """Whether an update of dtype `got` may become a trainable array of `want`.

    Floating to floating (another width: cast back), complex to complex; never
    integers or booleans, and never complex to real (the imaginary part is lost).
    """
    if jnp.issubdtype(want, jnp.complexfloating):
        return bool(jnp.issubdtype(got, jnp.inexact))
    return bool(jnp.issubdtype(got, jnp.floating))


def probe(arrays: list[Any]) -> tuple[int, tuple[int, ...]] | None:
    """Where to look to tell whether `rest` is mapped over (see `mapped_over`).

    `(k, shape)`: `arrays[k]` is the first entry with an array leaf (an array, a
    constant Fixed or prior), and `shape` that leaf's shape at the split.
    """
    for k, x in enumerate(arrays):
        leaves = [x] if is_array(x) else jax.tree.leaves(x)
        if leaves and is_array(leaves[0]):
            return k, tuple(leaves[0].shape)
    return None


def mapped_over(rest: Any, got: tuple[int, ...], want: tuple[int, ...]) -> bool:
    """Whether `got` may be `want` without leading axes mapped over by `jax.vmap`.

    Only when `rest` itself is mapped over (a stacked model's halves passed
    through `eqx.filter_vmap`): `want` was recorded from the stacked arrays, and
    `rest`'s own arrays have lost their leading axes too. Otherwise (`rest`
    closed over, or passed to `jax.jit`) shapes must match exactly.
    """
    if len(got) >= len(want) or tuple(want[len(want) - len(got) :]) != tuple(got):
        return False
    recorded = rest.layout.probe
    if recorded is None:
        return False
    k, shape = recorded
    x = jax.tree.leaves(rest.arrays[k])[0]
    return is_traced(x) and tuple(x.shape) != shape


def leaf_error(rest: Any, pos: int, caller: str, got: str) -> ValueError:
    layout = rest.layout
    k = layout.train_pos.index(pos)
    name, shape, dtype = layout.names[k], layout.shapes[k], layout.dtypes[k]
    return ValueError(
        f"`{caller}`: the entry `{name}` {got}, but the model's trainable array "
        f"there has shape {shape_str(shape)} and dtype {dtype}. Pass floating arrays "
        "of the model's shapes: the `params` of the same `ep.partition(model)` "
        "that made `rest`, or an update of them (an optimizer update keeps every "
        "shape); arrays of another model need that model's `rest`."
    )
