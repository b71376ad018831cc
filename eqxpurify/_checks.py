"""The checks that refuse what is not a well-formed model.

A class or the `rest` half of `ep.partition` where a model is due; a field
declared `ep.Param`/`ep.Fixed` holding something else; a wrapper whose array
field holds no array (a number put there with `eqx.tree_at`); a plain floating
array where a wrapper was declared. Each error names the path and the fix.
"""

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax.core import Tracer

from ._abstract_prior import AbstractPrior
from ._fixed import Fixed
from ._latent import latent_dtype_error
from ._param import Param
from ._path_names import ROOT, path_str
from ._rest import Rest
from ._storage import is_array
from ._wrapper_base import AbstractWrapper, fields_of

__all__ = [
    "check_fields",
    "check_model",
    "check_plain_array",
    "field_error",
    "inspect_node",
    "storage_error",
    "storage_problem",
    "storage_problem_in",
    "wrapper_fields",
]


def check_model(model: Any) -> None:
    """Refuse a class, or the `rest` half of `ep.partition`, where a model is due."""
    if isinstance(model, Rest):
        raise TypeError(
            "Got the `rest` half of `ep.partition`, not a model. Rebuild the model "
            "with `ep.combine(params, rest)` first (e.g. inside the loss: "
            "`ep.unwrap(ep.combine(params, rest))`)."
        )
    if isinstance(model, type):
        raise TypeError(
            f"`model` must be a model instance, but got the class `{model.__name__}` "
            f"itself. Construct it first, e.g. `{model.__name__}(...)`."
        )


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
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


_NUMBERS = (bool, int, float, complex, str, bytes, list, tuple, dict)  # not arrays


def storage_problem(node: AbstractWrapper) -> str | None:
    """The field of a wrapper that should hold its array but does not.

    `"latent"` for a Param, `"stored"` for a Fixed, None if all is well. An
    `eqx.tree_at` that put a number (or None) there would otherwise make the
    wrapper drop out of training or lose its data.
    """
    return storage_problem_in(type(node), node.__dict__)


def storage_problem_in(cls: type, fields: Mapping[str, Any]) -> str | None:
    """`storage_problem` of a wrapper of class `cls` with these fields (a hot loop)."""
    name = "latent" if cls is Param else "stored"
    x: Any = fields.get(name)
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
    if not isinstance(x, Tracer):
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
        bad = storage_problem_in(type(node), fields)
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
    kinds = dict(wrapper_fields(type(owner)))[name]
    declared = " | ".join(t.__name__ for t in kinds)
    lead = f"`{caller}`: the" if caller else "The"
    held = (
        f"{lead} field `{path}` is declared `{declared}` but holds a "
        f"{type(value).__name__}"
    )
    if Param not in kinds:  # data only
        return TypeError(
            f"{held}, so it is no data of a fixed dtype: `eqx.filter_jit` takes it "
            "for a static constant (one compilation per value) and eqxpurify does "
            "not see it. Set a value with `ep.set_value(model, where, value)`, or "
            "replace the node: `eqx.tree_at(where, model, ep.Fixed(value))`."
        )
    return TypeError(
        f"{held}, so it would silently drop out of training. Set "
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


def check_plain_array(model: Any, keypath: Any, path: str, caller: str) -> None:
    """Raise if a plain floating array sits in a field declared a wrapper.

    E.g. `eqx.tree_at(lambda m: m.t, model, jnp.arange(5.0))` on a field declared
    `ep.Fixed`: the array would train as an ordinary Equinox array, though the
    field says otherwise.
    """
    if not keypath or not isinstance(keypath[-1], jtu.GetAttrKey):
        return
    parent = model
    for key in keypath[:-1]:
        if isinstance(key, jtu.GetAttrKey):
            parent = getattr(parent, key.name)
        elif isinstance(key, jtu.SequenceKey):
            parent = parent[key.idx]
        elif isinstance(key, jtu.DictKey):
            parent = parent[key.key]
        else:
            return  # a custom node: nothing to check against
    name = keypath[-1].name
    if isinstance(parent, AbstractPrior):  # e.g. put there by `eqx.tree_at`
        raise TypeError(
            f"`{caller}`: the prior hyperparameter `{path}` is a plain floating "
            "array, which every optimiser would train. Put a wrapper there: "
            f"`ep.Fixed(value)` for a constant (an `ep.Param` for a hierarchical "
            "prior), or replace the whole prior (`eqx.tree_at(lambda m: ...prior, "
            "model, ep.Normal(...))`), which checks its hyperparameters."
        )
    declared = dict(wrapper_fields(type(parent))).get(name)
    if declared is None:
        return
    kinds = " | ".join(t.__name__ for t in declared)
    raise TypeError(
        f"`{caller}`: the field `{path}` is declared `{kinds}` but holds a plain "
        "floating array, which would train as an ordinary Equinox array. Wrap it: "
        f"`eqx.tree_at(where, model, ep.Fixed(array))` for data, `ep.Param(value, "
        "prior=...)` for a parameter, or set a value with `ep.set_value`."
    )
