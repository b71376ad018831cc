"""Human-readable paths of nodes inside a model."""

from collections.abc import Sequence
from typing import Any

import jax.tree_util as jtu

ROOT = "<model>"


def path_str(keypath: Sequence[Any]) -> str:
    """Format a JAX key path the way a person reads it: `encoder.layers[0].weight`."""
    text = jtu.keystr(tuple(keypath))
    if text.startswith("."):
        text = text[1:]
    return text or ROOT


def find_path(tree: Any, index: int, is_leaf: Any) -> str:
    """The path of the `index`-th node of `jax.tree.flatten(tree, is_leaf=is_leaf)`.

    Only used to build error messages, so it flattens again with paths rather than
    paying for paths on the fast path.
    """
    with_paths, _ = jtu.tree_flatten_with_path(tree, is_leaf=is_leaf)
    return path_str(with_paths[index][0])
