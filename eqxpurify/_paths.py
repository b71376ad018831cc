"""Resolve `where` arguments (paths or callables) to the nodes of a model they name."""

import difflib
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax

from ._nodes import Nodes
from ._path_names import ROOT
from ._wrapper_base import is_wrapper

__all__ = [
    "Where",
    "normalise_path",
    "select",
    "select_one",
    "unknown_path_error",
]

# What a `where` argument accepts: a path, several paths, or an `eqx.tree_at`-style
# callable returning a node (or a tuple of nodes) of the model.
Where = str | Sequence[str] | Callable[[Any], Any]


def normalise_path(path: str, caller: str = "ep") -> str:
    """Accept `["a"]` for `['a']` and a leading dot, as a person might type them.

    An empty path (`""`, blanks, or a lone `"."`) is an error, never the whole
    model.
    """
    path = path.strip()
    path = re.sub(r'\["([^"\']*)"\]', r"['\1']", path)
    if path.startswith("."):
        path = path[1:]
    if not path:
        raise ValueError(
            f"`{caller}`: `where` is an empty path. Name a node "
            '(`"encoder.weight"`), or select the whole model with `lambda m: m`.'
        )
    return path


def _is_under(path: str, prefix: str) -> bool:
    if prefix == ROOT or path == prefix:
        return True
    return path.startswith(prefix) and path[len(prefix)] in ".["


def _prefixes(path: str) -> list[str]:
    """`a.b[0].c` -> [`a`, `a.b`, `a.b[0]`] (proper prefixes at node boundaries)."""
    cuts = [m.start() for m in re.finditer(r"[.\[]", path) if m.start() > 0]
    return [path[:i] for i in cuts]


def _closest(path: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(path, candidates, n=3, cutoff=0.5)
    if close:
        return "Closest existing paths: " + ", ".join(f"`{c}`" for c in close) + "."
    if candidates:
        shown = ", ".join(f"`{c}`" for c in list(candidates)[:5])
        more = ", ..." if len(candidates) > 5 else ""
        return f"Existing paths: {shown}{more}."
    return "The model has no `ep.Param` or `ep.Fixed` at all."


def _dot(path: str) -> str:
    """`path` as Python after `m` (`.theta`, `['theta']`)."""
    return path if path.startswith("[") else "." + path


def _constant_hyperparameter(path: str, nodes: Nodes) -> str | None:
    """The error text if `path` names a constant hyperparameter of a prior."""
    entries = sorted(zip(nodes.paths, nodes.nodes), key=lambda e: -len(e[0]))
    for entry, node in entries:  # the nearest prior first
        prefix = entry + ".prior."
        if not path.startswith(prefix) or not is_wrapper(node):
            continue
        prior, names = getattr(node, "prior", None), path[len(prefix) :].split(".")
        target = prior
        for name in names:
            if not name.isidentifier() or not hasattr(target, name):
                break
            target = getattr(target, name)
        else:
            if is_wrapper(target) or hasattr(target, "shape"):
                return (
                    f"`{path}` is a constant hyperparameter of the prior "
                    f"`{prior!r}` of the {type(node).__name__} at `{entry}`: it is "
                    "part of the prior (validated with it), not an `ep.Param` or "
                    "`ep.Fixed` of the model. Replace the prior instead, e.g. "
                    f"`eqx.tree_at(lambda m: m{_dot(entry)}.prior, model, new_prior)` "
                    "(the Param keeps its latent; `ep.set_value` it afterwards to "
                    "keep its value), or make the hyperparameter an `ep.Param` to "
                    "set it by path."
                )
    return None


def unknown_path_error(caller: str, path: str, nodes: Nodes) -> ValueError:
    """The error for a path that names no Param or Fixed of the model."""
    constant = _constant_hyperparameter(path, nodes)
    if constant is not None:
        return ValueError(f"`{caller}`: {constant}")
    wrappers = nodes.wrapper_paths()
    if path in nodes.paths:
        what = (
            f"`{caller}`: `{path}` is a plain leaf of the model, not an `ep.Param` "
            "or `ep.Fixed`. Convert the model first (`ep.wrap(model)`), or replace "
            "the leaf with `eqx.tree_at`."
        )
        return ValueError(what)
    if any(_is_under(p, path) for p in wrappers):
        return ValueError(
            f"`{caller}`: `{path}` names a submodule, not one `ep.Param` or "
            "`ep.Fixed`. Give the full path of a leaf, e.g. "
            f"`{next(p for p in wrappers if _is_under(p, path))}`."
        )
    return ValueError(
        f"`{caller}`: the model has no `ep.Param` or `ep.Fixed` at `{path}`. "
        f"{_closest(path, wrappers)}"
    )


class _Marker:
    """Stands in for entry `index` while a `where` callable is applied to the model.

    Its `prior` (markers too) lets the callable reach Params nested in a prior.
    """

    __slots__ = ("index", "prior")

    def __init__(self, index: int, prior: Any = None):
        self.index = index
        self.prior = prior


def _is_marker(x: Any) -> bool:
    return isinstance(x, _Marker)


def _apply_where(nodes: Nodes, where: Callable[[Any], Any], caller: str) -> Any:
    marked = nodes.marked(_Marker)
    try:
        return where(marked)
    except Exception as e:
        hint = (
            " A Param's `.prior` reaches only hyperparameters that are Params; a "
            "constant hyperparameter is part of its prior: replace the prior with "
            "`eqx.tree_at(lambda m: m.theta.prior, model, new_prior)`."
            if isinstance(e, AttributeError) and "'NoneType'" in str(e)
            else ""
        )
        raise ValueError(
            f"`{caller}`: the `where` callable failed on the model "
            f"({type(e).__name__}: {e}). It must select nodes of the model like "
            "`eqx.tree_at`'s `where` does, e.g. `lambda m: m.encoder` or "
            "`lambda m: (m.a, m.b)`; select a Param itself, not its `.value` or "
            f"`.latent`.{hint}"
        ) from e


def select(nodes: Nodes, where: Where, caller: str) -> list[int]:
    """Indices (into `nodes.nodes`) of every leaf at or under the nodes `where` names.

    Raises a ValueError naming the closest existing paths for an unknown path, and
    for a callable that selects nothing of the model's pytree.
    """
    if callable(where):
        out = _apply_where(nodes, where, caller)
        leaves = jax.tree.leaves(out, is_leaf=_is_marker)
        if not leaves or not all(_is_marker(x) for x in leaves):
            raise ValueError(
                f"`{caller}`: `where` selected something that is not part of the "
                "model's pytree (a static field, `None`, or an object from outside "
                "the model?). Select Params, Fixed arrays or submodules, e.g. "
                "`lambda m: m.encoder`."
            )
        return sorted({x.index for x in leaves})
    if where is None or not isinstance(where, str | Sequence):
        raise TypeError(
            f"`{caller}`: `where` must be a path string, a sequence of path strings, "
            f"or a callable like `lambda m: m.encoder`; got {type(where).__name__}."
        )
    paths = [where] if isinstance(where, str) else list(where)
    if not all(isinstance(p, str) for p in paths):
        raise TypeError(
            f"`{caller}`: `where` must be a path string, a sequence of path strings, "
            "or a callable like `lambda m: m.encoder`."
        )
    selected: set[int] = set()
    for raw in paths:
        path = normalise_path(raw, caller)
        hits = [i for i, p in enumerate(nodes.paths) if _is_under(p, path)]
        if not hits:
            # (A model that is one Param or Fixed has the one path `<model>`.)
            leaves = list(nodes.paths)
            candidates = sorted(set(leaves) | {q for p in leaves for q in _prefixes(p)})
            raise ValueError(
                f"`{caller}`: the model has no node at `{path}`. "
                f"{_closest(path, candidates)}"
            )
        selected.update(hits)
    return sorted(selected)


def select_one(nodes: Nodes, where: str | Callable[[Any], Any], caller: str) -> int:
    """The index of the single `ep.Param` or `ep.Fixed` that `where` names."""
    if callable(where):
        out = _apply_where(nodes, where, caller)
        if is_wrapper(out):  # reached through a prior built of markers
            raise ValueError(
                f"`{caller}`: `where` selected a constant hyperparameter of a prior "
                f"(an `ep.{type(out).__name__}` that is part of the prior, not of the "
                "model). Replace the prior instead, e.g. `eqx.tree_at(lambda m: "
                "m.theta.prior, model, new_prior)`, or make the hyperparameter an "
                "`ep.Param` to set it."
            )
        if not isinstance(out, _Marker):
            raise ValueError(
                f"`{caller}`: `where` must select exactly one `ep.Param` or "
                f"`ep.Fixed` (e.g. `lambda m: m.alpha`); it selected a "
                f"{type(out).__name__}. Set several values with `ep.load_values`."
            )
        index = out.index
        if not is_wrapper(nodes.nodes[index]):
            path = nodes.paths[index]
            raise unknown_path_error(caller, path, nodes)
        return index
    if not isinstance(where, str):
        raise TypeError(
            f"`{caller}`: `where` must be a path string or a callable like "
            "`lambda m: m.alpha`."
        )
    path = normalise_path(where, caller)
    for i, (p, node) in enumerate(zip(nodes.paths, nodes.nodes)):
        if p == path and is_wrapper(node):
            return i
    raise unknown_path_error(caller, path, nodes)
