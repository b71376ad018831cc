"""Paths in a model as a person reads them: `encoder.layers[0].weight`."""

from collections.abc import Sequence
from typing import Any

import jax.tree_util as jtu

__all__ = ["ROOT", "join", "listed", "path_str"]


ROOT = "<model>"


def listed(paths: Sequence[str], limit: int) -> str:
    """Up to `limit` paths in backticks, then how many more there are."""
    shown = ", ".join(f"`{p}`" for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def path_str(keypath: Sequence[Any]) -> str:
    """Format a JAX key path the way a person reads it: `encoder.layers[0].weight`."""
    text = jtu.keystr(tuple(keypath))
    if text.startswith("."):
        text = text[1:]
    return text or ROOT


def join(prefix: str, keypath: Sequence[Any]) -> str:
    """`prefix` followed by a key path (`theta` + `.prior.mean`)."""
    rest = jtu.keystr(tuple(keypath))
    if prefix == ROOT:
        return path_str(keypath)
    return prefix + rest
