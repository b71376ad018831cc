"""Physical values by path: read them and set them.

The public `named_params`, `values` and `load_values`, and `set_paths`, the
setting of values at paths (each one checked by `with_value`) that
`ep.set_value` uses too, with its one rule for hyperparameters.
"""

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from jaxtyping import Array, ArrayLike

from ._checked_value import with_value
from ._nodes import Nodes
from ._param import Param, is_param
from ._param_value import value_at
from ._path_names import listed
from ._paths import normalise_path, unknown_path_error
from ._wrapper_base import abstract_error, is_wrapper

__all__ = ["load_values", "named_params", "set_paths", "values"]

_M = TypeVar("_M")


def named_params(model: Any) -> dict[str, Param]:
    """Every `ep.Param` of a model, by path, in path order.

    Arguments:
        model: any pytree (usually an `eqx.Module`).

    Returns:
        A dict from path (`"encoder.layers[0].weight"`) to the `ep.Param` there
        (abstract Params included). The order is `jax.tree.leaves` order, the order
        of `ep.ravel`.

    Examples:
        >>> import equinox as eqx, jax.numpy as jnp, eqxpurify as ep
        >>> class Model(eqx.Module):
        ...     alpha: ep.Param
        ...     w: ep.Param
        ...     t: ep.Fixed
        >>> model = Model(ep.Param(2.5, prior=ep.LogNormal(3.0, 0.1)),
        ...               ep.Param(shape=(3, 2)), ep.Fixed(jnp.zeros(4)))
        >>> for path, param in ep.named_params(model).items():
        ...     print(path, param.shape, param.prior)
        alpha () LogNormal(mean=3, sd=0.1)
        w (3, 2) Normal(0, 1)
    """
    nodes = Nodes(model, "ep.named_params")
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

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> model = {"alpha": ep.Param(2.0), "t": ep.Fixed(jnp.array([0.0, 1.0]))}
        >>> ep.values(model)
        {"['alpha']": Array(2., dtype=float32)}
        >>> ep.values(model, ep.is_wrapper)
        {"['alpha']": Array(2., dtype=float32), "['t']": Array([0., 1.], dtype=float32)}
    """
    nodes = Nodes(model, "ep.values")
    out = {}
    for path, node in zip(nodes.paths, nodes.nodes):
        if not is_wrapper(node) or not filter_spec(node):
            continue
        if node.is_abstract:
            raise abstract_error(node, path, "ep.values")
        out[path] = value_at(node, path, "ep.values")
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

    Examples:
        >>> import equinox as eqx, jax.numpy as jnp, eqxpurify as ep
        >>> class Model(eqx.Module):
        ...     alpha: ep.Param
        ...     t: ep.Fixed
        >>> fitted = Model(ep.Param(2.0), ep.Fixed(jnp.array([0.0, 1.0])))
        >>> saved = ep.values(fitted)
        >>> model = ep.load_values(ep.shapes(fitted), saved)  # into abstract Params
        >>> model.alpha
        Param(2, prior=Normal(0, 1))
        >>> ep.load_values(model, {"t": jnp.array([5.0, 6.0])})
        Traceback (most recent call last):
        ...
        ValueError: `ep.load_values`: no value given for 1 Param(s) ...: `alpha`. ...
        >>> ep.load_values(model, {"t": jnp.array([5.0, 6.0])}, strict=False).t
        Fixed([5, 6])
    """
    if not isinstance(values, Mapping):
        raise TypeError(
            "`ep.load_values(model, values)`: `values` must be a mapping from path "
            'to value, as `ep.values(model)` returns it (e.g. `{"alpha": 2.5}`); '
            f"got {type(values).__name__}. For a vector of latents use "
            "`flat, unravel = ep.ravel(model)` and `unravel(vector)`."
        )
    nodes = Nodes(model, "ep.load_values")
    index = {p: i for i, (p, n) in enumerate(zip(nodes.paths, nodes.nodes))}
    wanted: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise TypeError(
                "`ep.load_values`: the keys of `values` must be path strings, as "
                '`ep.values` gives them (e.g. `"encoder.weight"`); got the key '
                f"{key!r} of type {type(key).__name__}."
            )
        path = normalise_path(key, "ep.load_values")
        if path in wanted:
            raise ValueError(
                f"`ep.load_values`: the path `{path}` is given twice (as `{key}` and "
                "another spelling of it). Give each path once."
            )
        wanted[path] = value
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
            raise ValueError(
                f"`ep.load_values`: no value given for {len(missing)} Param(s) of the "
                f"model: {listed(missing, 10)}. Give every Param a value, or pass "
                "`strict=False` to load only some."
            )
    return set_paths(model, nodes, wanted, "ep.load_values")


def _holders(nodes: Nodes, i: int) -> list[int]:
    """The entries whose priors hold entry `i`, nearest first.

    E.g. `theta` for `theta.prior.mean`; every holder of a shared hyperparameter.
    """
    out: list[int] = []
    todo = [i]
    while todo:
        for level in nodes.levels_of(todo.pop(0)):
            if level.parent is not None and level.parent not in out:
                out.append(level.parent)
                todo.append(level.parent)
    return out


def set_paths(
    model: _M,
    nodes: Nodes,
    wanted: dict[str, Any],
    caller: str,
    *,
    reshape: bool = False,
) -> _M:
    """`model` with the wrapper at each path of `wanted` holding its value.

    One rule for hyperparameters: a Param whose prior holds a hyperparameter
    that is set keeps its physical value (its latent is recomputed under the new
    prior), unless it is given a value itself.
    """
    index = {p: i for i, p in enumerate(nodes.paths)}
    given = dict(wanted)
    for path in wanted:
        for k in _holders(nodes, index[path]):
            holder, at = nodes.nodes[k], nodes.paths[k]
            if at in given or not isinstance(holder, Param) or holder.is_abstract:
                continue
            given[at] = _Kept(value_at(holder, at, caller))
    # Deepest first: a Param's latent is computed with its prior's new values.
    for depth in sorted({nodes.depth[index[p]] for p in given}, reverse=True):
        out = list(nodes.nodes)
        for path, value in given.items():
            i = index[path]
            if nodes.depth[i] == depth:
                if isinstance(value, _Kept):
                    out[i] = with_value(out[i], value.value, path, caller)
                else:
                    out[i] = with_value(out[i], value, path, caller, reshape=reshape)
        model = nodes.unflatten(out)
        nodes = Nodes(model, caller)
        index = {p: i for i, p in enumerate(nodes.paths)}
    return model


class _Kept:
    """The physical value a Param keeps while a hyperparameter of its prior is set."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value
