"""Physical values by path: read them and set them, each value checked.

The public `named_params`, `values`, `draws` and `load_values`, and the checked
setting of one wrapper's value that `ep.set_value` and the surgery use too.
"""

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from ._abstract_prior import prior_str
from ._fixed import Fixed
from ._flat import is_traced
from ._latent import check_flags, latent_of
from ._nodes import Nodes
from ._param import Param, is_param, value_at, with_latent
from ._path_names import listed
from ._paths import normalise_path, unknown_path_error
from ._storage import hide
from ._wrapper_base import AbstractWrapper, abstract_error, build, is_wrapper, shape_str

__all__ = [
    "checked_array",
    "load_values",
    "named_params",
    "set_paths",
    "values",
    "with_value",
]

_M = TypeVar("_M")


def checked_array(
    value: Any,
    shape: tuple[int, ...],
    dtype: Any,
    *,
    what: str,
    caller: str,
    any_shape: bool = False,
) -> Array:
    """`value` as an array of exactly `shape` and `dtype`, or a clear error.

    Any shape is accepted if `any_shape`. Python scalars (and weakly typed JAX
    scalars) take the target dtype, as JAX's own promotion would; a typed array
    must already have the target dtype, since a silent cast (float64 -> float32,
    float -> int) would lose information.
    """
    if jax.dtypes.issubdtype(dtype, jax.dtypes.extended):  # e.g. PRNG keys
        if getattr(value, "dtype", None) != dtype:
            raise TypeError(
                f"`{caller}`: {what} holds {dtype} data; pass an array of that dtype "
                f"(e.g. from `jax.random.key`), got {type(value).__name__}."
            )
        given, weak, arr = dtype, False, value
        _check_shape(arr, shape, what, caller, any_shape)
        return arr
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
        arr = _weak_value(value, given, dtype, what, caller)
    elif given != dtype:
        if given.kind == "c" and dtype.kind != "c":
            if what.startswith("the Param"):
                why = "a Param is real, and a real dtype cannot hold the imaginary part"
                fix = "Use two Params (real and imaginary parts), or an `ep.Fixed`"
            else:
                why = "a real dtype cannot hold the imaginary part"
                fix = "Pass real data, or replace the node with an `ep.Fixed`"
            raise TypeError(
                f"`{caller}`: {what} has dtype {dtype}, but the value has dtype "
                f"{given}: {why}. {fix} of the complex data "
                "(`eqx.tree_at(where, model, ep.Fixed(value))`)."
            )
        raise TypeError(
            f"`{caller}`: {what} has dtype {dtype}, but the value has dtype "
            f"{given}. Cast it first (`value.astype(jnp.{dtype.name})`); values are "
            "never cast silently."
        )
    else:
        arr = jnp.asarray(value)
    _check_shape(arr, shape, what, caller, any_shape)
    return arr


def _weak_value(
    value: Any, given: np.dtype, dtype: np.dtype, what: str, caller: str
) -> Array:
    """A Python scalar (or weakly typed JAX scalar) in the wrapper's dtype.

    It takes the dtype as JAX's promotion would, unless that loses information:
    a float or complex into an integer dtype, a complex into a real one, a
    number other than a bool into a bool dtype, an integer out of an integer
    dtype's range, or a finite number that overflows a float dtype.
    """
    inexact = bool(jnp.issubdtype(dtype, jnp.inexact))
    complex_ = bool(jnp.issubdtype(dtype, jnp.complexfloating))
    lossy = (given.kind in "fc" and not inexact) or (given.kind == "c" and not complex_)
    if lossy:
        raise TypeError(
            f"`{caller}`: {what} has dtype {dtype}, but the value ({given.name}) does "
            f"not fit it without loss. Pass a value of dtype {dtype}."
        )
    if dtype == np.bool_ and given.kind != "b":
        raise TypeError(
            f"`{caller}`: {what} has dtype bool, but the value ({given.name}) is not "
            "a bool. Pass `True`/`False` or a bool array."
        )
    if dtype.kind in "iu" and given.kind in "iu" and not is_traced(value):
        info = np.iinfo(dtype)
        host = np.asarray(value)
        if np.any(host < info.min) or np.any(host > info.max):
            raise ValueError(
                f"`{caller}`: the value for {what} is out of {dtype}'s range "
                f"[{info.min}, {info.max}]; got {host.tolist()}. Pass a value "
                "within the range, or use a wider dtype."
            )
    with np.errstate(over="ignore", invalid="ignore"):
        arr = jnp.asarray(value, dtype=dtype)
    if inexact and _overflows(value, arr):
        raise ValueError(
            f"`{caller}`: the value for {what} overflows {dtype} (it becomes "
            f"inf). Pass a value within {dtype}'s range, or use a wider dtype."
        )
    return arr


def _overflows(value: Any, arr: Array) -> bool:
    """Whether a finite Python number became inf in the target dtype.

    A traced scalar is checked where it is used: `ep.set_value` checks the latent
    it gives with `eqx.error_if`.
    """
    if is_traced(value, arr):
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        given = np.isfinite(np.asarray(value))
        got = np.isfinite(np.asarray(arr).astype(np.complex128))
    return bool(np.any(given & ~got))


def _check_shape(
    arr: Any, shape: tuple[int, ...], what: str, caller: str, any_shape: bool
) -> None:
    if any_shape or tuple(arr.shape) == tuple(shape):
        return
    raise ValueError(
        f"`{caller}`: {what} has shape {shape_str(tuple(shape))}, but the value "
        f"has shape {shape_str(tuple(arr.shape))}. Pass a value of shape "
        f"{shape_str(tuple(shape))}."
    )


@eqx.filter_jit
def _latent_of(prior: Any, value: Array, dtype: np.dtype) -> tuple:
    """`latent_of` as one compiled call: `(latent, outside, overflow)`."""
    return latent_of(prior, value, dtype)


def with_value(
    node: AbstractWrapper, value: Any, path: str, caller: str, *, reshape: bool = False
) -> Any:
    """`node` (a Param or Fixed) holding the physical `value`.

    A Param stores `prior.inverse(value)` as its latent; a Fixed stores the array
    (filling it if it was abstract; of any shape if `reshape`) and keeps the prior
    it remembers, if any.
    """
    kind = type(node).__name__
    what = f"the {kind} at `{path}`"
    if isinstance(node, Param):
        arr = checked_array(value, node.shape, node.dtype, what=what, caller=caller)
        latent, outside, overflow = _latent_of(node.prior, arr, node.dtype)
        latent = check_flags(
            latent,
            (
                outside,
                f"`{caller}`: the value for the Param at `{path}` is outside the "
                f"support of its prior `{prior_str(node.prior)}` (`prior.inverse"
                "(value)` is not finite). Pass a value inside the prior's support.",
            ),
            (
                overflow,
                f"`{caller}`: the value for the Param at `{path}` has a latent that "
                f"overflows {node.dtype} (`prior.inverse(value)` is too large for "
                f"{node.dtype}). Pass a value nearer the prior's median (inside its "
                "support), or use a wider dtype.",
            ),
        )
        return with_latent(node, _placed(latent, node.latent))
    if isinstance(node, Fixed):
        arr = checked_array(
            value, node.shape, node.dtype, what=what, caller=caller, any_shape=True
        )
        if not reshape:  # (after the dtype: its error comes first)
            _check_fixed_shape(arr, node.shape, what, caller)
        stored = hide(arr)
        if stored.shape == node.stored.shape:
            stored = _placed(stored, node.stored)
        return build(
            Fixed, stored=stored, kind=node.kind, prior=node.prior, name=node.name
        )
    raise TypeError(
        f"`{caller}`: the node at `{path}` is an `ep.{kind}`; only `ep.Param` and "
        "`ep.Fixed` hold values that can be set."
    )


def _check_fixed_shape(
    value: Any, shape: tuple[int, ...], what: str, caller: str
) -> None:
    """A Fixed keeps its shape unless a new one is asked for (`reshape=True`).

    A scalar in place of a grid would otherwise broadcast silently in the model.
    """
    got = tuple(np.shape(value))
    if got == tuple(shape):
        return
    fix = (
        " Pass a value of that shape, or `reshape=True` to give the Fixed a new "
        "shape on purpose (new observations of another length)."
        if caller == "ep.set_value"
        else f" Pass a value of shape {shape_str(tuple(shape))}, or give it a new "
        "shape with `ep.set_value(model, where, value, reshape=True)`."
    )
    raise ValueError(
        f"`{caller}`: {what} has shape {shape_str(tuple(shape))}, but the value has "
        f"shape {shape_str(got)}.{fix}"
    )


def _placed(new: Any, old: Any) -> Any:
    """`new` with the sharding of `old` (an array, or a struct asking for one)."""
    sharding = getattr(old, "sharding", None)
    if sharding is None or is_traced(new, old) or len(sharding.device_set) <= 1:
        return new
    return jax.device_put(new, sharding)


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
            raise abstract_error(node, path)
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
