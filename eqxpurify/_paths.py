"""Paths of a model's nodes, the way a person reads them, and values by path.

A path is JAX's key path of a node, printed without the leading dot:
`encoder.layers[0].weight` (attributes), `layers[0]` (list/tuple items),
`blocks['attn']` (dict items). `ep.Param` and `ep.Fixed` nodes are named by the
path of the wrapper itself, never of the arrays inside it.
"""

import dataclasses
import difflib
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, ArrayLike

from ._flat import compute_dtype, is_traced
from ._wrappers import (
    AbstractWrapper,
    Fixed,
    Param,
    build,
    check_finite,
    is_param,
    is_wrapper,
    shape_str,
    value_of,
)

__all__ = [
    "ROOT",
    "Where",
    "find_path",
    "load_values",
    "named_params",
    "path_str",
    "prior_str",
    "values",
]

_M = TypeVar("_M")

ROOT = "<model>"

# What a `where` argument accepts: a path, several paths, or an `eqx.tree_at`-style
# callable returning a node (or a tuple of nodes) of the model.
Where = str | Sequence[str] | Callable[[Any], Any]


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


# --------------------------------------------------------------------------------
# The model as a list of named nodes (wrappers kept whole) and `where` resolution.


class Nodes(NamedTuple):
    """A model flattened with wrappers as leaves, with the path of every leaf."""

    nodes: list[Any]
    treedef: Any
    paths: list[str]

    def unflatten(self, nodes: list[Any]) -> Any:
        return jax.tree.unflatten(self.treedef, nodes)

    def wrapper_paths(self) -> list[str]:
        return [p for p, n in zip(self.paths, self.nodes) if is_wrapper(n)]


def named_nodes(model: Any) -> Nodes:
    """Flatten `model` with `ep.Param`/`ep.Fixed` as leaves, keeping each path."""
    with_paths, treedef = jtu.tree_flatten_with_path(model, is_leaf=is_wrapper)
    return Nodes(
        [node for _, node in with_paths],
        treedef,
        [path_str(keypath) for keypath, _ in with_paths],
    )


def normalise_path(path: str) -> str:
    """Accept `["a"]` for `['a']` and a leading dot, as a person might type them."""
    path = path.strip()
    path = re.sub(r'\["([^"\']*)"\]', r"['\1']", path)
    if path.startswith("."):
        path = path[1:]
    return path or ROOT


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


def unknown_path_error(caller: str, path: str, nodes: Nodes) -> ValueError:
    """The error for a path that names no Param or Fixed of the model."""
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
    """Stands in for leaf `index` while a `where` callable is applied to the model."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


def _is_marker(x: Any) -> bool:
    return isinstance(x, _Marker)


def _apply_where(nodes: Nodes, where: Callable[[Any], Any], caller: str) -> Any:
    marked = nodes.unflatten([_Marker(i) for i in range(len(nodes.nodes))])
    try:
        return where(marked)
    except Exception as e:
        raise ValueError(
            f"`{caller}`: the `where` callable failed on the model "
            f"({type(e).__name__}: {e}). It must select nodes of the model like "
            "`eqx.tree_at`'s `where` does, e.g. `lambda m: m.encoder` or "
            "`lambda m: (m.a, m.b)`; select a Param itself, not its `.value` or "
            "`.latent`."
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
    paths = [where] if isinstance(where, str) else list(where)
    if not all(isinstance(p, str) for p in paths):
        raise TypeError(
            f"`{caller}`: `where` must be a path string, a sequence of path strings, "
            "or a callable like `lambda m: m.encoder`."
        )
    selected: set[int] = set()
    for raw in paths:
        path = normalise_path(raw)
        hits = [i for i, p in enumerate(nodes.paths) if _is_under(p, path)]
        if not hits:
            leaves = [p for p in nodes.paths if p != ROOT]
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
    path = normalise_path(where)
    for i, (p, node) in enumerate(zip(nodes.paths, nodes.nodes)):
        if p == path and is_wrapper(node):
            return i
    raise unknown_path_error(caller, path, nodes)


# --------------------------------------------------------------------------------
# Short human-readable forms of dtypes, shapes and priors.

_DTYPE_PREFIX = {"f": "f", "i": "i", "u": "u", "c": "c", "b": "bool"}


def short_dtype(dtype: Any) -> str:
    """`float32` -> `f32`, `bfloat16` -> `bf16`, as Equinox prints dtypes."""
    dtype = np.dtype(dtype)
    if dtype.name == "bfloat16":
        return "bf16"
    prefix = _DTYPE_PREFIX.get(dtype.kind)
    if prefix is None:
        return dtype.name
    return prefix if prefix == "bool" else f"{prefix}{dtype.itemsize * 8}"


def _hyper_str(x: Any) -> str:
    if is_traced(x):
        return "traced"
    if isinstance(x, jax.Array | np.ndarray | np.generic):
        if x.ndim == 0:
            return f"{np.asarray(x).item():.4g}"
        dims = ",".join(str(d) for d in x.shape)
        return f"{short_dtype(x.dtype)}[{dims}]"
    return repr(x)


def prior_str(prior: Any) -> str:
    """A short form of a prior: `LogNormal(3, 0.1)`, `Normal(f32[3], 1)`."""
    try:
        fields = dataclasses.fields(prior)
    except TypeError:
        return repr(prior)
    args = ", ".join(_hyper_str(getattr(prior, f.name)) for f in fields)
    return f"{type(prior).__name__}({args})"


# --------------------------------------------------------------------------------
# Setting a physical value on one wrapper, with shape and dtype checked.


def checked_array(
    value: Any,
    shape: tuple[int, ...],
    dtype: np.dtype,
    *,
    what: str,
    caller: str,
) -> Array:
    """`value` as an array of exactly `shape` and `dtype`, or a clear error.

    Python scalars (and weakly typed JAX scalars) take the target dtype, as JAX's
    own promotion would; a typed array must already have the target dtype, since a
    silent cast (float64 -> float32, float -> int) would lose information.
    """
    dtype = np.dtype(dtype)
    if isinstance(value, jax.Array):
        weak = bool(jax.typeof(value).weak_type)
        given = np.dtype(value.dtype)
    elif isinstance(value, np.ndarray | np.generic):
        weak = False
        given = np.dtype(value.dtype)
    elif isinstance(value, bool | int | float | complex):
        weak = True
        given = np.asarray(value).dtype
    else:
        raise TypeError(
            f"`{caller}`: the value for {what} must be an array or a Python scalar, "
            f"got {type(value).__name__}."
        )
    if weak:
        lossy = (given.kind in "fc" and dtype.kind not in "fc") or (
            given.kind == "c" and dtype.kind != "c"
        )
        if lossy:
            raise TypeError(
                f"`{caller}`: {what} has dtype {dtype}, but the value "
                f"({given.name}) does not fit it without loss. Pass a value of dtype "
                f"{dtype}."
            )
        arr = jnp.asarray(value, dtype=dtype)
    elif given != dtype:
        raise TypeError(
            f"`{caller}`: {what} has dtype {dtype}, but the value has dtype "
            f"{given}. Cast it first (`value.astype(jnp.{dtype.name})`); values are "
            "never cast silently."
        )
    else:
        arr = jnp.asarray(value)
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(
            f"`{caller}`: {what} has shape {shape_str(tuple(shape))}, but the value "
            f"has shape {shape_str(tuple(arr.shape))}. Pass a value of shape "
            f"{shape_str(tuple(shape))}."
        )
    return arr


@functools.partial(jax.jit, static_argnums=2)
def _inverse(prior: Any, value: Array, dtype: np.dtype) -> Array:
    """`prior.inverse(value)` in `dtype`, as one compiled call."""
    return prior.inverse(value.astype(compute_dtype(dtype))).astype(dtype)


def with_value(node: AbstractWrapper, value: Any, path: str, caller: str) -> Any:
    """`node` (a Param or Fixed) holding the physical `value`.

    A Param stores `prior.inverse(value)` as its latent; a Fixed stores the array
    (filling it if it was abstract) and keeps the prior it remembers, if any.
    """
    kind = type(node).__name__
    what = f"the {kind} at `{path}`"
    if isinstance(node, Param):
        arr = checked_array(value, node.shape, node.dtype, what=what, caller=caller)
        latent = check_finite(
            _inverse(node.prior, arr, node.dtype),
            f"`{caller}`: the value for the Param at `{path}` is outside the support "
            f"of its prior `{prior_str(node.prior)}` (`prior.inverse(value)` is not "
            "finite). Pass a value inside the prior's support.",
        )
        return build(Param, latent=latent, prior=node.prior)
    if isinstance(node, Fixed):
        arr = checked_array(value, node.shape, node.dtype, what=what, caller=caller)
        return build(Fixed, array=arr, prior=node.prior)
    raise TypeError(
        f"`{caller}`: the node at `{path}` is an `ep.{kind}`; only `ep.Param` and "
        "`ep.Fixed` hold values that can be set."
    )


# --------------------------------------------------------------------------------
# Public: named_params, values, load_values.


def named_params(model: Any) -> dict[str, Param]:
    """Every `ep.Param` of a model, by path, in path order.

    Arguments:
        model: any pytree (usually an `eqx.Module`).

    Returns:
        A dict from path (`"encoder.layers[0].weight"`) to the `ep.Param` there
        (abstract Params included). The order is `jax.tree.leaves` order, the order
        of `ep.ravel`.

    !!! example

        ```python
        for path, param in ep.named_params(model).items():
            print(path, param.shape, param.prior)
        ```
    """
    nodes = named_nodes(model)
    return {p: n for p, n in zip(nodes.paths, nodes.nodes) if is_param(n)}


def values(
    model: Any, filter_spec: Callable[[Any], bool] = is_param
) -> dict[str, Array]:
    """The physical value of every `ep.Param` of a model, by path.

    Arguments:
        model: any pytree (usually an `eqx.Module`) whose selected wrappers are
            concrete.
        filter_spec: which wrappers to include, as a predicate on each `ep.Param` /
            `ep.Fixed` node: `ep.is_param` (the default), `ep.is_fixed`, or
            `ep.is_wrapper` for both.

    Returns:
        A dict from path to physical value (`prior.forward(latent)` for a Param, the
        array for a Fixed), in path order. Works under `jax.jit`, `jax.grad` and
        `jax.vmap`. Load it back with `ep.load_values`.

    Raises:
        ValueError: if a selected wrapper is abstract (the message names its path).

    !!! example

        ```python
        ep.values(model)  # {"alpha": Array(2.5), "encoder.weight": Array([...])}
        ```
    """
    nodes = named_nodes(model)
    out = {}
    for path, node in zip(nodes.paths, nodes.nodes):
        if not is_wrapper(node) or not filter_spec(node):
            continue
        if node.is_abstract:
            raise ValueError(
                f"`ep.values`: the {type(node).__name__} at `{path}` is abstract "
                "(no value yet). Initialise the model first, e.g. with "
                "`ep.normal(model, key=key)`, or fill it with `ep.set_value`."
            )
        out[path] = value_of(node)
    return out


def load_values(
    model: _M, values: Mapping[str, ArrayLike], *, strict: bool = True
) -> _M:
    """Set physical values by path: the inverse of `ep.values`.

    Each Param at a path in `values` gets the latent `prior.inverse(value)`; each
    Fixed gets the array (abstract ones are filled). Shapes and dtypes are checked:
    a typed array must have the wrapper's exact dtype (Python scalars take it).

    Arguments:
        model: the model to load into (Params may be abstract).
        values: a mapping from path (as given by `ep.values`/`ep.named_params`)
            to physical value.
        strict: if True (the default), every Param of the model must be given a
            value; set False to load a subset on purpose. Fixed arrays are always
            optional.

    Returns:
        The model with the values loaded. Works under `jax.jit`.

    Raises:
        ValueError: for a path that names no Param or Fixed (listing the closest
            existing paths), for Params missing under `strict=True` (listing them),
            and for a value of the wrong shape (naming the path).
        TypeError: for a value of the wrong dtype (naming the path).

    !!! example

        ```python
        saved = ep.values(fitted)
        model = ep.load_values(ep.shapes(fitted), saved)
        ```
    """
    nodes = named_nodes(model)
    index = {p: i for i, (p, n) in enumerate(zip(nodes.paths, nodes.nodes))}
    wanted = {normalise_path(k): v for k, v in values.items()}
    problems = []
    for path in wanted:
        i = index.get(path)
        if i is None or not is_wrapper(nodes.nodes[i]):
            problems.append(str(unknown_path_error("ep.load_values", path, nodes)))
    if problems:
        raise ValueError("\n".join(problems))
    if strict:
        missing = [
            p
            for p, n in zip(nodes.paths, nodes.nodes)
            if is_param(n) and p not in wanted
        ]
        if missing:
            shown = ", ".join(f"`{p}`" for p in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise ValueError(
                f"`ep.load_values`: no value given for {len(missing)} Param(s) of the "
                f"model: {shown}{more}. Give every Param a value, or pass "
                "`strict=False` to load only some."
            )
    out = list(nodes.nodes)
    for path, value in wanted.items():
        i = index[path]
        out[i] = with_value(out[i], value, path, "ep.load_values")
    return nodes.unflatten(out)
