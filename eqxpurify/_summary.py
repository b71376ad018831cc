"""A readable table of a model's Params, Fixed arrays, Intermediate slots and arrays."""

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from ._abstract_prior import prior_str
from ._checks import check_fields, check_model
from ._fixed import Fixed, is_fixed
from ._intermediates import is_intermediate
from ._param import Param
from ._param_value import value_at
from ._path_names import ROOT, join
from ._plumbing import is_traced
from ._ties import identity_error, unnamed_twice
from ._wrapper_base import AbstractWrapper, has_data, is_complete, is_wrapper

__all__ = ["summary"]

_HEADER = (
    "path",
    "kind",
    "trains",
    "shape",
    "dtype",
    "prior",
    "mean",
    "std",
    "min",
    "max",
)
_NUMERIC = frozenset({"mean", "std", "min", "max"})
_NONE = "-"


def _is_node(x: Any) -> bool:
    return is_wrapper(x) or is_intermediate(x)


def _stats(x: Any) -> list[str]:
    """Mean, std, min and max of a concrete real or integer array, else dashes."""
    if x is None or is_traced(x) or math.prod(jnp.shape(x)) == 0:
        return [_NONE] * 4
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.extended):  # e.g. PRNG keys
        return [_NONE] * 4
    dtype = np.dtype(x.dtype)
    if not (jnp.issubdtype(dtype, jnp.floating) or dtype.kind in "iub"):
        return [_NONE] * 4
    host = np.asarray(x).astype(np.float64)
    return [f"{v:.4g}" for v in (host.mean(), host.std(), host.min(), host.max())]


def _row(path: str, node: Any) -> tuple[str, ...] | None:
    if is_intermediate(node):
        return (path, "Intermediate", _NONE, _NONE, _NONE, _NONE, *(_NONE,) * 4)
    if isinstance(node, AbstractWrapper):
        kind = type(node).__name__
        if isinstance(node, Param):
            prior = prior_str(node.prior)
        elif isinstance(node, Fixed) and node.prior is not None:
            prior = f"{prior_str(node.prior)} (frozen)"
        else:
            prior = _NONE
        if not has_data(node):  # left out by a filter or a gradient
            return (path, kind, _NONE, _NONE, _NONE, prior, *(_NONE,) * 4)
        if node.is_abstract or jax.dtypes.issubdtype(node.dtype, jax.dtypes.extended):
            value = None  # no value yet, or PRNG keys: no statistics
        elif not is_complete(node):  # a gradient, a filtered model: the latent
            value = node.latent
            prior += " (latent shown)"
        else:
            value = value_at(node, path, "ep.summary")
        shape, dtype = node.shape, node.dtype
    elif eqx.is_array(node):
        if jax.dtypes.issubdtype(node.dtype, jax.dtypes.prng_key):
            kind, prior, value = "array", _NONE, None
        else:
            kind, prior, value = "array", _NONE, node
        shape, dtype = tuple(node.shape), node.dtype
    else:
        return None  # functions, Python scalars and the like are not listed
    trains = "yes" if isinstance(node, Param) or eqx.is_inexact_array(node) else "no"
    return (path, kind, trains, str(tuple(shape)), str(dtype), prior, *_stats(value))


def _rows(
    keypath: Any, node: Any, prefix: str, names: set[str]
) -> list[tuple[str, Any]]:
    """`(path, node)` for a node, then for its prior's Params if it has any.

    Frozen Params (Fixed remembering a prior) in a prior are listed too. A later
    use of a shared Param (a name in `names`) is not: it is the same parameter.
    """
    name = node.__dict__.get("name") if is_wrapper(node) else None
    if name is not None:
        if name in names:
            return []
        names.add(name)
    path = join(prefix, keypath)
    out = [(path, node)]
    if isinstance(node, Param):
        inner, _ = jtu.tree_flatten_with_path(node.prior, is_leaf=_is_node)
        for sub, leaf in inner:
            if isinstance(leaf, Param) or (is_fixed(leaf) and leaf.prior is not None):
                out.extend(_rows(sub, leaf, path + ".prior", names))
    return out


def _has_size(node: Any) -> bool:
    return not is_intermediate(node) and (not is_wrapper(node) or has_data(node))


def _plural(n: int, word: str) -> str:
    if n == 1 or word == "Fixed":
        return f"{n} {word}"
    return f"{n} {word}s"


def summary(model: Any) -> str:
    """A table of a model's Params, Fixed arrays, Intermediate slots and arrays.

    One row per `ep.Param`, `ep.Fixed`, `ep.Intermediate` slot and plain array,
    in path order, with its path, kind (`Param`, `Fixed`, `Intermediate`, or
    `array` for a plain array field), whether it trains, shape, dtype, prior (a
    Fixed made by `ep.freeze` shows the prior it remembers), and the mean,
    standard deviation, minimum and maximum of its physical value (`-` where there
    is no concrete value: abstract wrappers, slots, keys, traced values). The last
    line counts the nodes of each kind and their elements. A shared Param (see
    `ep.share`) is one row, at its first use.

    `summary` computes the values eagerly and returns the table; it prints
    nothing. `print(model)` stays the short Equinox form.

    Arguments:
        model: any pytree, usually an `eqx.Module`.

    Returns:
        The table, as a string.

    Raises:
        ValueError: one unnamed Param object stands in two places (it would be two
            parameters after any rebuild; name it, as every other function asks).

    Examples:
        >>> import equinox as eqx, jax.numpy as jnp, eqxpurify as ep
        >>> class Model(eqx.Module):
        ...     alpha: ep.Param
        ...     x_obs: ep.Fixed
        >>> model = Model(ep.Param(2.5, prior=ep.HalfNormal(3.0)),
        ...               ep.Fixed(jnp.array([0.0, 1.0, 2.0])))
        >>> print(ep.summary(model))
        path   kind   trains  shape  dtype    prior          mean     std  min  max
        -----  -----  ------  -----  -------  -------------  ----  ------  ---  ---
        alpha  Param  yes     ()     float32  HalfNormal(3)   2.5       0  2.5  2.5
        x_obs  Fixed  no      (3,)   float32  -                 1  0.8165    0    2
        Total: 1 Param (1 element), 1 Fixed (3 elements)
    """
    check_model(model)
    check_fields(model, "ep.summary", filtered=True)
    with_paths, _ = jtu.tree_flatten_with_path(model, is_leaf=_is_node)
    rows = []
    counts: dict[str, list[int]] = {}
    names: set[str] = set()
    named = [
        r for keypath, node in with_paths for r in _rows(keypath, node, ROOT, names)
    ]
    twice = unnamed_twice([node for _, node in named])
    if twice is not None:  # listed twice, it would read as two parameters
        raise identity_error(named[twice[0]][0], named[twice[1]][0], "ep.summary")
    for path, node in named:
        row = _row(path, node)
        if row is None:
            continue
        rows.append(row)
        size = math.prod(node.shape) if _has_size(node) else 0
        count = counts.setdefault(row[1], [0, 0])
        count[0] += 1
        count[1] += size
    widths = [max(len(r[c]) for r in [_HEADER, *rows]) for c in range(len(_HEADER))]

    def fmt(cells: tuple[str, ...]) -> str:
        parts = [
            cell.rjust(w) if name in _NUMERIC else cell.ljust(w)
            for name, cell, w in zip(_HEADER, cells, widths)
        ]
        return "  ".join(parts).rstrip()

    lines = [fmt(_HEADER), "  ".join("-" * w for w in widths)]
    lines.extend(fmt(r) for r in rows)
    totals = []
    for kind in ("Param", "Fixed", "Intermediate", "array"):
        if kind not in counts and kind not in ("Param", "Fixed"):
            continue
        n, size = counts.get(kind, [0, 0])
        text = _plural(n, kind)
        if kind != "Intermediate":
            text += f" ({size:,} element{'' if size == 1 else 's'})"
        totals.append(text)
    lines.append("Total: " + ", ".join(totals))
    return "\n".join(lines)
