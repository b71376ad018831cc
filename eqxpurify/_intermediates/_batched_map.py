"""Taps inside `lax.map(f, xs, batch_size=b)`: one value per element of `xs`.

`lax.map` with a `batch_size` is a `lax.scan` over batches of `b` elements, each
batch mapped with `jax.vmap`, and its results reshaped from `(steps, b, ...)` to
`(steps * b, ...)`. Harvested as a scan of a vmap, a tap would be stacked as
`(steps, b, ...)`: the shape of neither the model's output nor the same
`lax.map` without `batch_size`. The harvester recognises the scan by that
reshape of every output, and gives the tap the same reshape.
"""

from typing import Any

import jax.numpy as jnp

from ._kinds import param, primitive_name

__all__ = ["map_batch", "merge_batches", "REMAINDER_HINT"]


REMAINDER_HINT = (
    " Inside `lax.map(f, xs, batch_size=b)` with a `b` that does not divide the "
    "length of `xs`, `f` runs twice (over the batches, then over the remainder), "
    "and its taps are recorded in each: pass a `batch_size` that divides the "
    "length, or harvest without `batch_size`."
)


def map_batch(eqn: Any, jaxpr: Any) -> int | None:
    """The batch size `b` if the scan `eqn` of `jaxpr` is a `lax.map` in batches.

    That is: a scan without carry whose every output, of shape `(steps, b, ...)`,
    is used only by a reshape to `(steps * b, ...)`.
    """
    if param(eqn, "num_carry") != 0 or not eqn.outvars:
        return None
    steps = param(eqn, "length")
    batch: int | None = None
    for v in eqn.outvars:
        shape: tuple[int, ...] = tuple(getattr(getattr(v, "aval", None), "shape", ()))
        if len(shape) < 2 or batch not in (None, shape[1]):
            return None
        users = [e for e in jaxpr.eqns if any(u is v for u in e.invars)]
        if len(users) != 1 or primitive_name(users[0]) != "reshape":
            return None
        merged = tuple(users[0].outvars[0].aval.shape)
        if merged != (steps * shape[1], *shape[2:]):
            return None
        batch = shape[1]
    return batch


def merge_batches(name: str, value: Any, axes: int | None, batch: int) -> Any:
    """A tap's value stacked over the batches of a `lax.map`, as one per element.

    `value` has shape `(steps, *per_step)`; `axes` is the number of `jax.vmap`
    axes the tap had in each step (None: recorded by a nested transformation, or
    more than once). With the map's own vmap only (`axes == 1`) the per-step
    value is `(b, ...)`; a value that does not depend on the element
    (`axes == 0`) is the same for each element of a batch.
    """
    steps = value.shape[0]
    if axes == 1:
        return value.reshape(steps * batch, *value.shape[2:])
    if axes == 0:
        tiled = jnp.broadcast_to(value[:, None], (steps, batch, *value.shape[1:]))
        return tiled.reshape(steps * batch, *value.shape[1:])
    raise ValueError(
        f"Cannot harvest `{name}`: it is inside `lax.map(f, xs, batch_size=...)` "
        "and inside another `jax.vmap`, `lax.scan` or repeated call in `f`, so "
        "which of its axes are the map's is not known. Harvest without "
        "`batch_size` (the same values, one step per element), move the tap out "
        "of the inner transformation, or leave it out of the harvest with "
        "`names=`."
    )
