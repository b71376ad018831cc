"""The model flattened at its wrappers: every Param and Fixed with its path.

One walk serves paths, values, surgery, summaries and initialisation. A Param
whose prior holds Params (a hierarchical prior) is followed into its prior, so
`theta.prior.mean` is an entry like any other; rebuilding puts nested entries
back before the Param that holds them.
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.tree_util as jtu

from ._checks import check_fields, check_model, storage_error, storage_problem_in
from ._fixed import Fixed
from ._param import Param
from ._path_names import ROOT, join
from ._pending import PendingShape
from ._ties import identity_error, unnamed_twice, use_error, use_problem
from ._wrapper_base import AbstractWrapper, fields_of, is_wrapper, with_prior

__all__ = ["Nodes", "is_wrapper_type", "map_params"]


def _is_nested_entry(x: Any) -> bool:
    """Whether `x`, inside a prior, is an entry: a Param or a frozen Param.

    A frozen Param is a Fixed that remembers a prior; constant hyperparameters
    are part of the prior, not entries.
    """
    return isinstance(x, Param) or (isinstance(x, Fixed) and x.prior is not None)


def _nested(prior: Any, cache: dict[int, bool]) -> bool:
    key = id(prior)
    if key not in cache:
        leaves = jax.tree.leaves(prior, is_leaf=is_wrapper)
        cache[key] = any(_is_nested_entry(leaf) for leaf in leaves)
    return cache[key]


@dataclasses.dataclass
class _Level:
    """One flattening: a pytree with wrappers as leaves."""

    treedef: Any
    leaves: list[Any]
    entry: list[int | None]  # the entry index of each leaf (None: not an entry)
    children: dict[int, "_Level"]  # leaf position -> the level of its prior
    tree: Any = None  # what was flattened (key paths are found from it if needed)
    parent: int | None = None  # the entry whose prior this level is


@functools.cache
def is_wrapper_type(cls: type) -> bool:
    """`issubclass(cls, AbstractWrapper)`, cached (it runs on every node)."""
    return issubclass(cls, AbstractWrapper)


class Nodes:
    """A model flattened with wrappers as leaves, Params in priors included.

    `nodes[k]` and `paths[k]` are the k-th entry in path order (a Param comes
    before the Params of its prior). Top-level leaves that are not wrappers
    (plain arrays, slots, functions) are entries too; wrappers inside priors are
    entries only if they are Params. `unflatten(nodes)` rebuilds the model.

    A shared Param (one `name`, several uses) is one entry, at its first use:
    every later use is placed back from that entry, and is not walked.
    """

    def __init__(self, model: Any, caller: str | None = None):
        check_model(model)
        self.nodes: list[Any] = []
        self.depth: list[int] = []
        self._where: list[tuple[_Level, int]] = []  # entry -> (level, position)
        self._paths: list[str] | None = None
        self._keypaths: dict[int, list[Any]] = {}
        self._cache: dict[int, bool] = {}
        self._caller = caller
        self._numbers = False
        self._named: dict[str, int] = {}  # a shared Param's name -> its entry
        self.later: dict[int, list[Any]] = {}  # entry -> its later uses
        self._also: dict[int, list[_Level]] = {}  # entry -> its later uses' levels
        self._params: list[int] | None = None
        self.pending: list[int] = []  # the Params whose shape waits for an input
        self._root = self._walk(model, None, 0)
        self._check_identity()
        if self._numbers:  # a number in a field declared a wrapper? Find it.
            check_fields(model, caller)

    @property
    def paths(self) -> list[str]:
        """The path of each entry (computed on first use: key paths are slow)."""
        if self._paths is None:
            self._paths = self.paths_so_far()
        return self._paths

    def _path(self, level: _Level, pos: int, paths: list[str]) -> str:
        """The path of leaf `pos` of `level`; `paths` holds those of earlier entries."""
        keypaths = self._keypaths.get(id(level))
        if keypaths is None:
            flat = jtu.tree_flatten_with_path(level.tree, is_leaf=is_wrapper)[0]
            keypaths = self._keypaths[id(level)] = [k for k, _ in flat]
        prefix = ROOT if level.parent is None else paths[level.parent] + ".prior"
        return join(prefix, keypaths[pos])

    def _walk(self, tree: Any, parent: int | None, depth: int) -> _Level:
        leaves, treedef = jtu.tree_flatten(tree, is_leaf=is_wrapper)
        level = _Level(treedef, leaves, [], {}, tree, parent)
        for pos, leaf in enumerate(leaves):
            cls = type(leaf)
            wrapper = is_wrapper_type(cls)
            fields = fields_of(leaf) if wrapper else None  # (read once: a hot loop)
            if fields is not None:
                bad = storage_problem_in(cls, fields)
                if bad is not None:
                    path = self._path(level, pos, self.paths_so_far())
                    raise storage_error(leaf, bad, path, self._caller)
            elif depth == 0 and isinstance(leaf, int | float | complex):
                self._numbers = True
            if depth > 0 and not _is_nested_entry(leaf):
                level.entry.append(None)
                continue
            name = None if fields is None else fields.get("name")
            if name is not None and name in self._named:
                k = self._named[name]
                self._check_use(k, leaf, level, pos)
                self.later.setdefault(k, []).append(leaf)
                self._also.setdefault(k, []).append(level)
                level.entry.append(k)  # a later use: put back from the first
                continue
            k = len(self.nodes)
            if name is not None:
                self._named[name] = k
            if cls is Param and type(fields["latent"]) is PendingShape:  # pyright: ignore[reportOptionalSubscript]
                self.pending.append(k)
            level.entry.append(k)
            self.nodes.append(leaf)
            self._where.append((level, pos))
            self.depth.append(depth)
            if fields is not None and isinstance(leaf, Param):
                prior = fields["prior"]
                nested = self._cache.get(id(prior))
                if nested is None:
                    nested = _nested(prior, self._cache)
                if nested:
                    level.children[pos] = self._walk(prior, k, depth + 1)
        return level

    def _check_use(self, k: int, leaf: Any, level: _Level, pos: int) -> None:
        """Refuse a use of a shared name that is not the same parameter."""
        problem = use_problem(leaf, self.nodes[k])
        if problem is not None:
            paths = self.paths_so_far()
            path = self._path(level, pos, paths)
            raise use_error(problem, leaf, paths[k], path, self._caller)

    def _check_identity(self) -> None:
        """Refuse one unnamed Param object in two places: the tie would not last."""
        twice = unnamed_twice(self.nodes)  # (a named Param's later uses: not entries)
        if twice is not None:
            paths = self.paths
            raise identity_error(paths[twice[0]], paths[twice[1]], self._caller)

    def levels_of(self, k: int) -> list[_Level]:
        """The flattenings that entry `k` is a leaf of (several for a shared Param).

        Each one's `parent` is the entry whose prior holds it (None at the top).
        """
        return [self._where[k][0], *self._also.get(k, ())]

    def paths_so_far(self) -> list[str]:
        """The paths of the entries found so far (for an error during the walk)."""
        paths: list[str] = []
        for level, pos in self._where:
            paths.append(self._path(level, pos, paths))
        return paths

    def unflatten(self, nodes: Sequence[Any]) -> Any:
        """The model with entry k replaced by `nodes[k]` (at each of its uses)."""
        return self._build(self._root, nodes, {})

    def _build(self, level: _Level, nodes: Sequence[Any], done: dict) -> Any:
        out = []
        for pos, leaf in enumerate(level.leaves):
            k = level.entry[pos]
            if k is not None and k in done:  # a later use of a shared Param
                out.append(done[k])
                continue
            new = leaf if k is None else nodes[k]
            child = level.children.get(pos)
            if child is not None and isinstance(new, Param | Fixed):
                if new.prior is leaf.prior:  # the prior was not replaced
                    prior = self._build(child, nodes, done)
                    new = with_prior(new, prior)
            if k is not None:
                done[k] = new
            out.append(new)
        return jax.tree.unflatten(level.treedef, out)

    def marked(self, marker: Callable[[int, Any], Any]) -> Any:
        """The model with entry k replaced by `marker(k, prior)`.

        `prior` is the entry's prior rebuilt from markers (None for an entry
        without nested entries), so a `where` callable can reach
        `m.theta.prior.mean`.
        """
        done: dict[int, Any] = {}

        def build(level: _Level) -> Any:
            out = []
            for pos, leaf in enumerate(level.leaves):
                k = level.entry[pos]
                if k is not None and k not in done:
                    child = level.children.get(pos)
                    done[k] = marker(k, None if child is None else build(child))
                out.append(leaf if k is None else done[k])
            return jax.tree.unflatten(level.treedef, out)

        return build(self._root)

    def wrapper_paths(self) -> list[str]:
        return [p for p, n in zip(self.paths, self.nodes) if is_wrapper(n)]

    def params(self) -> list[int]:
        """The entry indices of every Param (computed once)."""
        if self._params is None:
            self._params = [k for k, n in enumerate(self.nodes) if isinstance(n, Param)]
        return self._params


def map_params(nodes: Nodes, fn: Callable[[int, Param], Any]) -> Any:
    """The model of `nodes` with its j-th Param replaced by `fn(j, param)`.

    Nested Params are replaced before the Param whose prior holds them; `fn` gets
    each Param with its prior already rebuilt.
    """
    order = {k: j for j, k in enumerate(nodes.params())}
    done: dict[int, Any] = {}

    def build(level: _Level) -> Any:
        out = []
        for pos, leaf in enumerate(level.leaves):
            k = level.entry[pos]
            if k is not None and k in order:
                if k not in done:  # (a later use of a shared Param: the first's)
                    child = level.children.get(pos)
                    if child is not None:
                        leaf = with_prior(leaf, build(child))
                    done[k] = fn(order[k], leaf)
                leaf = done[k]
            out.append(leaf)
        return jax.tree.unflatten(level.treedef, out)

    return build(nodes._root)
