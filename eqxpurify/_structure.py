"""What `ep.partition` learns once per model structure, in bounded caches.

Key paths, training names, which leaves are latents and which are later uses of
a shared Param depend on the tree structure only, as do the checks of its
fields; each is computed for the first model of a structure and kept.
"""

import threading
from collections.abc import Callable
from typing import Any

import jax.tree_util as jtu

from ._checks import check_fields
from ._nodes import Nodes
from ._param import Param
from ._path_names import path_str
from ._ties import shared_positions

__all__ = ["check_structure", "structure"]


_LATENT = jtu.GetAttrKey("latent")


class _Bounded:
    """A dict of at most `size` entries, the oldest dropped first; thread-safe.

    Reads take no lock (a dict lookup is atomic); writes take one, so threads
    partitioning models of many structures at once never drop the same entry
    twice.
    """

    __slots__ = ("data", "lock", "size")

    def __init__(self, size: int):
        self.data: dict[Any, Any] = {}
        self.lock = threading.Lock()
        self.size = size

    def get(self, key: Any) -> Any:
        return self.data.get(key)

    def __contains__(self, key: Any) -> bool:
        return key in self.data

    def __len__(self) -> int:
        return len(self.data)

    def put(self, key: Any, value: Any) -> None:
        with self.lock:
            while len(self.data) >= self.size:
                self.data.pop(next(iter(self.data)), None)
            self.data[key] = value


_STRUCTURES = _Bounded(64)  # key paths, names and shared uses of each structure


def structure(
    model: Any, treedef: Any, is_leaf: Callable[[Any], bool]
) -> tuple[tuple[Any, ...], tuple[str, ...], frozenset[int], dict[int, int]]:
    """Per structure: key paths, training names, latents and shared uses.

    All depend on the tree structure only (a Param's `name` is static), so they
    are computed once for each (flattening with paths costs several times a
    plain flatten). A Param's latent is named by the Param's own path; any other
    leaf by its full path, so a field of a user's module that happens to be
    called `latent` keeps its name. The third is the set of leaf positions that
    are the latent of a Param; the last maps each leaf under a later use of a
    shared Param to the position of the same leaf under its first use.
    """
    cached = _STRUCTURES.get(treedef)
    if cached is not None:
        return cached
    flat = jtu.tree_flatten_with_path(model, is_leaf=is_leaf)[0]
    keypaths = tuple(k for k, _ in flat)
    owners = _latent_owners(model, is_leaf)
    latent_pos = frozenset(
        pos
        for pos, k in enumerate(keypaths)
        if k and k[-1] == _LATENT and tuple(k[:-1]) in owners
    )
    names = tuple(
        path_str(k[:-1] if pos in latent_pos else k) for pos, k in enumerate(keypaths)
    )
    shared = shared_positions(model, keypaths)
    _STRUCTURES.put(treedef, (keypaths, names, latent_pos, shared))
    return keypaths, names, latent_pos, shared


def _latent_owners(model: Any, is_leaf: Callable[[Any], bool]) -> set[tuple[Any, ...]]:
    """The key paths of the Params of `model` (those in priors included)."""
    owners: set[tuple[Any, ...]] = set()

    def stop(node: Any) -> bool:
        return isinstance(node, Param) or is_leaf(node)

    for keypath, node in jtu.tree_flatten_with_path(model, is_leaf=stop)[0]:
        if isinstance(node, Param):
            owners.add(tuple(keypath))
            prefix = (*keypath, jtu.GetAttrKey("prior"))
            owners.update((*prefix, *k) for k in _latent_owners(node.prior, is_leaf))
    return owners


_CHECKED = _Bounded(64)  # model structures whose wrappers hold arrays


def check_structure(model: Any, treedef: Any, caller: str) -> None:
    """`check_fields` once per model structure.

    A latent or Fixed storage set to None (by `eqx.tree_at`) leaves no leaf to
    find: it changes the structure, so each new structure is checked once.
    Numbers in their place are leaves, found by `split_model` itself. The walk
    of `Nodes` refuses an unnamed Param object used twice and two different
    Params of one name; a model rebuilt by JAX holds no shared objects, so
    once per structure finds what a user built.
    """
    if treedef in _CHECKED:
        return
    check_fields(model, caller)
    Nodes(model, caller)  # a Param object in two places, a name used twice
    _CHECKED.put(treedef, None)
