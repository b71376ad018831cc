"""Shapes that wait for an input: `ep.INPUT` in a Param's `shape=`.

A Param declared `ep.Param(shape=(16, ep.INPUT))` has a size that is the last
axis of its module's input. Until `ep.infer_shapes` has seen one example input
its latent is a `PendingShape` (no value, no concrete shape); every function
that needs a shape refuses it, naming the path and the fix.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["INPUT", "PendingShape", "pending_dims"]


class _Input:
    """The size of the last axis of the input of the module holding the Param."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ep.INPUT"

    def __reduce__(self) -> str:
        return "INPUT"


INPUT = _Input()
"""A size in `ep.Param(shape=...)`: the last axis of the module's input."""


class PendingShape:
    """The latent of a Param whose shape waits for an input (see `ep.INPUT`)."""

    __slots__ = ("dtype", "prior_fn", "shape", "sharding")

    def __init__(
        self,
        shape: tuple[Any, ...],
        dtype: Any,
        sharding: Any = None,
        prior_fn: Callable[[tuple[int, ...]], Any] | None = None,
    ):
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.sharding = sharding
        self.prior_fn = prior_fn  # the prior, as a function of the resolved shape

    def resolve(self, size: int) -> tuple[int, ...]:
        """The shape with every `ep.INPUT` replaced by `size`."""
        return tuple(size if d is INPUT else d for d in self.shape)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PendingShape)
            and self.shape == other.shape
            and self.dtype == other.dtype
            and self.prior_fn is other.prior_fn
        )

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype, self.prior_fn))

    def __repr__(self) -> str:
        return f"PendingShape({self.shape}, {self.dtype})"


def pending_dims(shape: Any, owner: str) -> tuple[Any, ...] | None:
    """`shape` as a tuple if it holds `ep.INPUT` (other sizes checked), else None."""
    if shape is INPUT:
        shape = (INPUT,)
    if not isinstance(shape, tuple | list) or not any(d is INPUT for d in shape):
        return None
    for d in shape:
        ok = d is INPUT or (isinstance(d, int | np.integer) and not isinstance(d, bool))
        if not ok or (d is not INPUT and d < 0):
            raise TypeError(
                f"`{owner}`: `shape` must hold non-negative Python ints and "
                f"`ep.INPUT`, got {shape!r}."
            )
    return tuple(d if d is INPUT else int(d) for d in shape)
