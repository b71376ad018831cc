"""The rules of shared Params: which uses are one parameter, and their errors.

A Param with a `name` is shared: every Param of that name in a model is one
parameter, held by its first use in path order (see `ep.share`). The walks that
read a model (`Nodes`, `ep.partition`'s layout, `ep.unwrap`) ask this module
whether a node is a later use, whether it may be, and how to say it when not.
"""

from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu

from ._param import Param
from ._plumbing import is_traced
from ._wrapper_base import fields_of, is_wrapper

__all__ = [
    "identity_error",
    "is_shared",
    "shared_positions",
    "use_error",
    "use_problem",
]

_PRIOR = jtu.GetAttrKey("prior")


def is_shared(node: Any, memo: dict[int, bool]) -> bool:
    """Whether a wrapper is named, or its prior holds a named wrapper.

    `memo` caches priors by identity for one walk (Params often share a prior).
    """
    fields = fields_of(node)
    if fields.get("name") is not None:
        return True
    prior = fields.get("prior")
    if prior is None:
        return False
    key = id(prior)
    if key not in memo:
        inner = jax.tree.leaves(prior, is_leaf=is_wrapper)
        memo[key] = any(is_wrapper(x) and is_shared(x, memo) for x in inner)
    return memo[key]


def unnamed_twice(nodes: list[Any]) -> tuple[int, int] | None:
    """The positions of one unnamed Param object met twice in `nodes`, or None.

    Such a Param is two parameters after any rebuild, so it is refused; a named
    one may stand in several places (its uses are one parameter), and so may
    anything that is not a Param (the same array in two fields). One set of ids
    answers the common case, nothing met twice.
    """
    if len(set(map(id, nodes))) == len(nodes):
        return None
    first: dict[int, int] = {}
    for k, node in enumerate(nodes):
        if type(node) is not Param or fields_of(node)["name"] is not None:
            continue
        if id(node) in first:
            return first[id(node)], k
        first[id(node)] = k
    return None


def use_problem(use: Any, first: Any) -> str | None:
    """Why a later use of a name is not its first use's parameter, or None.

    `"differs"`: another kind, shape, dtype or prior structure. `"apart"`: both
    hold concrete latents that differ. `ep.unwrap` gives every use the gradient
    of all of them, so a training step moves the copies alike; copies that
    differ were trained apart.
    """
    if use is first:
        return None
    same = (
        type(use) is type(first)
        and use.shape == first.shape
        and use.dtype == first.dtype
        and (
            use.prior is first.prior
            or jax.tree.structure(use.prior) == jax.tree.structure(first.prior)
        )
    )
    if not same:
        return "differs"
    if not isinstance(use, Param) or use.latent is first.latent:
        return None
    a, b = use.latent, first.latent
    if not (isinstance(a, jax.Array) and isinstance(b, jax.Array)) or is_traced(a, b):
        return None
    return None if bool(jnp.array_equal(a, b)) else "apart"


def _lead(caller: str | None) -> str:
    return f"`{caller}`: the" if caller else "The"


def use_error(
    problem: str, use: Any, first_path: str, path: str, caller: str | None
) -> ValueError:
    """The error for `use_problem`'s answer about the use at `path`."""
    if problem == "differs":
        return ValueError(
            f"{_lead(caller)} {type(use).__name__} at `{path}` is named "
            f"`{use.name}`, like the one at `{first_path}`, but they differ (kind, "
            "shape, dtype or prior). Params of one name are one parameter: use "
            "the same Param in both places, or give them different names."
        )
    return ValueError(
        f"{_lead(caller)} uses of the shared Param `{use.name}` at `{first_path}` "
        f"and `{path}` hold different latents: they were trained apart. The stock "
        "Equinox loop does that when model code unwraps each use on its own "
        "(`@ep.unwrapped` on a submodule used twice): read the values through one "
        "`ep.unwrap` of a module that holds every use (decorate the top-level "
        "`__call__`), or train with `ep.partition`, which keeps one latent. "
        f'Restore the tie with `ep.set_value(model, "{first_path}", value)`.'
    )


def identity_error(first_path: str, path: str, caller: str | None) -> ValueError:
    """The error for one unnamed Param object found in two places."""
    return ValueError(
        f"{_lead(caller)} Param at `{path}` is the same object as the one at "
        f"`{first_path}`. A Param used in several places must have a name, so that "
        "it stays one parameter through JAX transformations and training: "
        '`ep.Param(..., name="...")`, or `ep.share(module, "name")` for a module '
        "used in several places."
    )


def shared_positions(model: Any, keypaths: tuple[Any, ...]) -> dict[int, int]:
    """Leaf position -> the same leaf's position under the shared Param's first use.

    `keypaths` are those of the model's leaves (as flattened by the caller).
    Every leaf under a later use of a name maps to its twin under the first use.
    """
    first: dict[str, tuple] = {}
    uses: list[tuple[tuple, tuple]] = []  # (later use, first use) key paths

    def visit(tree: Any, prefix: tuple) -> None:
        for keypath, node in jtu.tree_flatten_with_path(tree, is_leaf=is_wrapper)[0]:
            if not is_wrapper(node):
                continue
            where = prefix + tuple(keypath)
            name = node.__dict__.get("name")
            if name is not None and name in first:
                uses.append((where, first[name]))
                continue
            if name is not None:
                first[name] = where
            prior = node.__dict__.get("prior")
            if prior is not None:
                visit(prior, (*where, _PRIOR))

    visit(model, ())
    if not uses:
        return {}
    position = {keypath: pos for pos, keypath in enumerate(keypaths)}
    shared = {}
    for later, source in uses:
        n = len(later)
        for pos, keypath in enumerate(keypaths):
            if keypath[:n] == later and source + keypath[n:] in position:
                shared[pos] = position[source + keypath[n:]]
    return shared
