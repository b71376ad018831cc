"""The model flattened at its wrappers: every Param and Fixed with its path.

One walk serves paths, values, surgery, summaries and initialisation. A Param
whose prior holds Params (a hierarchical prior) is followed into its prior, so
`theta.prior.mean` is an entry like any other; rebuilding puts nested entries
back before the Param that holds them.
"""

import dataclasses
import functools
import typing
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from ._pending import PendingShape
from ._storage import is_array
from ._ties import identity_error, use_error, use_problem
from ._wrapper_base import fields_of
from ._wrappers import (
    AbstractWrapper,
    Fixed,
    Param,
    check_model,
    is_wrapper,
    latent_dtype_error,
    with_prior,
)

__all__ = [
    "ROOT",
    "Nodes",
    "check_fields",
    "field_error",
    "inspect_node",
    "listed",
    "map_params",
    "path_str",
    "storage_error",
    "storage_problem",
    "wrapper_fields",
]

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
                bad = _storage_problem(cls, fields)
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
            if cls is Param and type(fields["latent"]) is PendingShape:
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
        if len(set(map(id, self.nodes))) == len(self.nodes):
            return  # no object twice (a named Param's later uses are not entries)
        first: dict[int, int] = {}
        for k, node in enumerate(self.nodes):
            if type(node) is not Param or node.name is not None:
                continue  # (the same array in two fields is no error)
            i = id(node)
            if i in first:
                paths = self.paths
                raise identity_error(paths[first[i]], paths[k], self._caller)
            first[i] = k

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


# --------------------------------------------------------------------------------
# Fields declared as wrappers must hold wrappers.


@functools.cache
def wrapper_fields(cls: type) -> tuple[tuple[str, tuple[type, ...]], ...]:
    """The fields of a Module class annotated with wrapper types only.

    Each comes with the types it may hold.
    """
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: nothing to check
        return ()
    out = []
    for field in dataclasses.fields(cls):
        hint = hints.get(field.name)
        members = typing.get_args(hint) if _is_union(hint) else (hint,)
        allowed = tuple(m for m in members if isinstance(m, type))
        if len(allowed) != len(members) or not allowed:
            continue
        if all(issubclass(m, AbstractWrapper) or m is type(None) for m in allowed):
            out.append((field.name, allowed))
    return tuple(out)


def _is_union(hint: Any) -> bool:
    import types

    return typing.get_origin(hint) in (typing.Union, types.UnionType)


_NUMBERS = (bool, int, float, complex, str, bytes, list, tuple, dict)  # not arrays


def storage_problem(node: AbstractWrapper) -> str | None:
    """The field of a wrapper that should hold its array but does not.

    `"latent"` for a Param, `"stored"` for a Fixed, None if all is well. An
    `eqx.tree_at` that put a number (or None) there would otherwise make the
    wrapper drop out of training or lose its data.
    """
    return _storage_problem(type(node), node.__dict__)


def _storage_problem(cls: type, fields: dict) -> str | None:
    name = "latent" if cls is Param else "stored"
    x = fields.get(name)
    kind = _STORAGE_KIND.get(type(x))
    if kind is None:
        kind = _storage_kind(x)
    if kind == _BAD or (kind == _ARRAY and name == "latent" and not _floating(x.dtype)):
        return name  # a number, None, or integers put there with `eqx.tree_at`
    return None


_OTHER, _ARRAY, _BAD = 0, 1, 2
_STORAGE_KIND: dict[type, int] = {}  # the types seen in storage fields, by kind


def _storage_kind(x: Any) -> int:
    """Whether a stored `x` is a number or None (surely wrong), an array, or other.

    Only what is surely wrong is refused: transformations put their own
    placeholder objects in leaves (e.g. the ones `eqx.tree_at` selects through).
    The kind is remembered by type (this runs on every wrapper of every call),
    except for tracers, whose kind depends on their value.
    """
    if x is None or isinstance(x, _NUMBERS):
        kind = _BAD
    else:
        kind = _ARRAY if is_array(x) else _OTHER
    if not isinstance(x, jax.core.Tracer):
        _STORAGE_KIND[type(x)] = kind
    return kind


@functools.cache
def _floating(dtype: Any) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.floating))


def storage_error(
    node: AbstractWrapper, name: str, path: str, caller: str | None
) -> TypeError:
    """The error for a wrapper whose `latent`/`stored` is not an array."""
    lead = f"`{caller}`: the" if caller else "The"
    kind = type(node).__name__
    x = node.__dict__.get(name)
    got = type(x).__name__
    if kind == "Param" and is_array(x):
        return latent_dtype_error(path, getattr(x, "dtype", None), caller)
    if kind == "Param":
        return TypeError(
            f"{lead} Param at `{path}` has a latent of type {got}, not an array, so "
            "it would silently drop out of training. Set Params with "
            "`ep.set_value(model, where, value)` (physical value) or replace the "
            "whole node: `eqx.tree_at(where, model, ep.Param(value, prior=...))`."
        )
    return TypeError(
        f"{lead} Fixed at `{path}` stores a {got}, not an array (was `.stored` set "
        "with `eqx.tree_at`?), so its data is lost. Set data with "
        "`ep.set_value(model, where, array)`, or replace the whole node: "
        "`eqx.tree_at(where, model, ep.Fixed(array))`."
    )


@functools.cache
def _checks(cls: type) -> tuple[tuple[str, tuple[type, ...]], ...] | None:
    """What `inspect_node` checks on instances of `cls` (None: nothing)."""
    if cls is Param:
        return (("latent", ()),)
    if cls is Fixed:
        return (("stored", ()),)
    if not issubclass(cls, eqx.Module) or issubclass(cls, AbstractWrapper):
        return None
    return wrapper_fields(cls) or None


def inspect_node(node: Any, problems: list[tuple[Any, str]]) -> None:
    """Record `(module, field)` if a wrapper field of `node` holds something else.

    A Param whose latent, or a Fixed whose storage, is not an array is recorded
    too. Fast on every other node: it runs on each node of a model.
    """
    checks = _checks(type(node))
    if checks is None:
        return
    fields = fields_of(node)
    if isinstance(node, AbstractWrapper):
        bad = _storage_problem(type(node), fields)
        if bad is not None:
            problems.append((node, bad))
        return
    for name, allowed in checks:
        value = fields.get(name)
        # A number is surely wrong; a wrapper of either kind (`ep.freeze` swaps
        # them), an array (as `ep.unwrap` leaves it), None (unset) or a
        # transformation's placeholder is not.
        del allowed
        if isinstance(value, _NUMBERS):
            problems.append((node, name))


def check_fields(model: Any, caller: str | None, *, filtered: bool = False) -> None:
    """Raise, naming the path, if a wrapper field holds something else.

    That is a field declared `ep.Param`/`ep.Fixed` holding another value, or a
    Param whose latent is not an array (e.g. after an `eqx.tree_at` that put a
    number there): such a value would silently drop out of training. With
    `filtered`, None is accepted in a wrapper's place: that is how Equinox's
    filters and gradients leave a part out (for functions that only show a tree).
    """
    problems: list[tuple[Any, str]] = []

    def visit(node: Any) -> bool:
        inspect_node(node, problems)
        return isinstance(node, AbstractWrapper)

    jax.tree.flatten(model, is_leaf=visit)
    if filtered:
        problems = [(o, n) for o, n in problems if o.__dict__.get(n) is not None]
    if problems:
        raise field_error(model, problems[0], caller)


def field_error(model: Any, problem: tuple[Any, str], caller: str | None) -> TypeError:
    """The error for a problem found by `inspect_node`, naming its path."""
    owner, name = problem
    value = getattr(owner, name)
    owner_path = _find_node(model, owner)
    if isinstance(owner, AbstractWrapper):
        return storage_error(owner, name, owner_path, caller)
    path = name if owner_path == ROOT else f"{owner_path}.{name}"
    declared = " | ".join(t.__name__ for t in dict(wrapper_fields(type(owner)))[name])
    lead = f"`{caller}`: the" if caller else "The"
    return TypeError(
        f"{lead} field `{path}` is declared `{declared}` but holds a "
        f"{type(value).__name__}, so it would silently drop out of training. Set "
        "a physical value with `ep.set_value(model, where, value)`, or replace the "
        "node with a wrapper: `eqx.tree_at(where, model, ep.Param(value, "
        "prior=...))` (or `ep.Fixed(value)` for data)."
    )


def _find_node(model: Any, target: Any) -> str:
    """The path of the module `target` (by identity) in `model`, for messages."""
    with_paths, _ = jtu.tree_flatten_with_path(model, is_leaf=lambda n: n is target)
    for keypath, leaf in with_paths:
        if leaf is target:
            return path_str(keypath)
    return ROOT
