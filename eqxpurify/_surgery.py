"""Model surgery: set a physical value, freeze and unfreeze."""

from collections.abc import Callable
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike

from ._abstract_prior import AbstractPrior
from ._checked_value import new_param
from ._fixed import Fixed
from ._latent import check_flags, latent_of
from ._nodes import Nodes
from ._param import Param
from ._param_value import value_at
from ._path_names import join
from ._paths import Where, select, select_one
from ._values import set_paths
from ._wrapper_base import has_params, is_wrapper

__all__ = ["freeze", "set_value", "unfreeze"]

_M = TypeVar("_M")


def set_value(
    model: _M,
    where: str | Callable[[Any], Any],
    value: ArrayLike,
    *,
    reshape: bool = False,
) -> _M:
    """Set the physical value of one `ep.Param` or `ep.Fixed` of a model.

    For a Param the latent becomes `prior.inverse(value)`, so `.value` reads back
    `value` (up to rounding) and the prior is kept. For a Fixed the array is
    replaced by data of the same dtype and shape (an abstract Fixed is filled);
    pass `reshape=True` to give it a new shape (new observations of another
    length). Shapes and dtypes are checked: a typed array must have exactly the
    wrapper's dtype (nothing is cast silently); a Python scalar takes the
    wrapper's dtype. A sharded Param or Fixed keeps its sharding.

    Setting a hyperparameter that is a Param (`"theta.prior.mean"`) keeps the
    physical value of the Param whose prior holds it (its latent is recomputed),
    as `ep.load_values` does. A constant hyperparameter is part of its prior:
    replace the prior with `eqx.tree_at` (the error says how).

    Arguments:
        model: the model (a fitted one, or one with abstract Params).
        where: the node to set, as a path (`"encoder.layers[0].weight"`, see
            `ep.named_params`) or an `eqx.tree_at`-style callable returning it
            (`lambda m: m.encoder.layers[0].weight`).
        value: the new physical value. May be traced: `set_value` works under
            `jax.jit`, `jax.grad` and `jax.vmap`.
        reshape: allow a Fixed to take a value of another shape.

    Returns:
        The model with the new value.

    Raises:
        ValueError: for an unknown path (listing the closest existing paths), a
            wrong shape, or a value outside the prior's support (each naming the
            path).
        TypeError: for a wrong dtype (naming the path).

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> model = {"rate": ep.Param(1.0, prior=ep.LogNormal(2.0, 0.5)),
        ...          "t": ep.Fixed(jnp.zeros(2))}
        >>> model = ep.set_value(model, lambda m: m["rate"], 2.5)
        >>> model["rate"]
        Param(2.5, prior=LogNormal(mean=2, sd=0.5))
        >>> model = ep.set_value(model, "['t']", jnp.arange(3.0), reshape=True)
        >>> model["t"]
        Fixed([0, 1, 2])
        >>> ep.set_value(model, "['t']", jnp.arange(3))
        Traceback (most recent call last):
        ...
        TypeError: `ep.set_value`: the Fixed at `['t']` has dtype float32, ...
    """
    nodes = Nodes(model, "ep.set_value")
    i = select_one(nodes, where, "ep.set_value")
    wanted = {nodes.paths[i]: value}
    return set_paths(model, nodes, wanted, "ep.set_value", reshape=reshape)


def _selection(model: Any, where: Where, caller: str) -> tuple[Nodes, list[int]]:
    """The model's entries and those `where` selects, which must hold a wrapper."""
    nodes = Nodes(model, caller)
    indices = select(nodes, where, caller)
    if not any(is_wrapper(nodes.nodes[i]) for i in indices):
        shown = ", ".join(f"`{nodes.paths[i]}`" for i in indices[:3])
        plain = any(eqx.is_array(nodes.nodes[i]) for i in indices)
        hint = (
            " They are plain arrays (an Equinox module not converted): convert "
            "them with `ep.wrap` first, e.g. `eqx.tree_at(lambda m: m.net, model, "
            "ep.wrap(model.net))` makes them Params, and `ep.wrap(model.net, "
            "fixed=lambda n: n)` makes them `ep.Fixed` (frozen) at once."
            if plain
            else ""
        )
        raise ValueError(
            f"`{caller}`: `where` selects no `ep.Param` or `ep.Fixed` (it selects "
            f"{shown}). Select a Param, a Fixed or a submodule holding them.{hint}"
        )
    return nodes, indices


def _of_kind(nodes: Nodes, indices: list[int], kind: type) -> list[tuple[int, Any]]:
    """The selected entries that are of `kind` (Param to freeze, Fixed to thaw)."""
    return [(i, nodes.nodes[i]) for i in indices if isinstance(nodes.nodes[i], kind)]


def freeze(model: _M, where: Where) -> _M:
    """Turn the `ep.Param`s at `where` into `ep.Fixed`s at their current values.

    A frozen Param keeps no latent: it becomes a Fixed holding its physical value
    (so it is no longer in `ep.partition(model)[0]`, and no optimizer, weight decay
    included, can move it) that remembers the Param's prior, so that `ep.unfreeze`
    gives the Param back. Fixed nodes in the selection stay as they are.

    After freezing, re-partition the model and re-initialise the optimizer state
    on the new `params` (its structure changed), as in the example below.

    Arguments:
        model: the model.
        where: what to freeze: a path (`"encoder"`, `"encoder.layers[0].weight"`),
            a sequence of paths, or an `eqx.tree_at`-style callable returning one
            or several nodes (`lambda m: (m.encoder, m.alpha)`). Every Param at or
            under a selected node is frozen.

    Returns:
        The model with those Params frozen. Abstract Params become abstract Fixed.

    Raises:
        ValueError: for an unknown path (listing the closest existing paths), or a
            selection that holds no Param or Fixed.

    Examples:
        >>> import optax, eqxpurify as ep
        >>> model = {"a": ep.Param(1.0),
        ...          "b": ep.Param(2.0, prior=ep.LogNormal(2.0, 0.5))}
        >>> model = ep.freeze(model, lambda m: m["b"])
        >>> model["b"]
        Fixed(2, frozen from LogNormal(mean=2, sd=0.5))
        >>> params, rest = ep.partition(model)  # partition again: `b` is not there
        >>> list(params)
        ["['a']"]
        >>> opt_state = optax.adam(1e-2).init(params)  # and a new optimizer state
    """
    nodes, indices = _selection(model, where, "ep.freeze")
    out = list(nodes.nodes)
    for i, node in _of_kind(nodes, indices, Param):
        prior = _freeze_all(node.prior)
        if node.is_abstract:
            out[i] = Fixed(
                shape=node.shape, dtype=node.dtype, prior=prior, name=node.name
            )
        else:
            value = value_at(node, nodes.paths[i], "ep.freeze")
            # One rule with `ep.unfreeze`: a value it could not turn back into
            # this Param (NaN, or inf where the dtype does not saturate) is refused.
            _, outside, overflow = latent_of(node.prior, value, node.dtype)
            message = _not_finite(nodes.paths[i])
            value = check_flags(value, (outside, message), (overflow, message))
            out[i] = Fixed(value, prior=prior, name=node.name)
    return nodes.unflatten(out)


def _not_finite(path: str) -> str:
    return (
        f"`ep.freeze`: the Param at `{path}` has a value that is not finite (NaN or "
        "inf) or not in its prior's support, so `ep.unfreeze` could not give the "
        "Param back. Find where it became so (a diverged optimisation? "
        '`jax.config.update("jax_debug_nans", True)`), or give it a value first: '
        "`ep.set_value(model, where, value)`."
    )


def _freeze_all(prior: AbstractPrior) -> AbstractPrior:
    """A remembered prior keeps no latents: its Params are frozen too.

    They come back with it on `ep.unfreeze`.
    """
    if not has_params(prior):
        return prior
    return freeze(prior, lambda p: p)


def _unfreeze_all(
    prior: AbstractPrior, path: str, named: dict[str, Param]
) -> AbstractPrior:
    """Undo `_freeze_all`: the Fixed hyperparameters frozen from Params.

    `path` is that of the wrapper holding `prior`; errors name each
    hyperparameter's own path below it.

    The restored shared (named) Params are put in `named`, by name.
    """

    def restore(keypath: Any, x: Any) -> Any:
        if isinstance(x, Fixed) and x.prior is not None:
            at = join(path + ".prior", keypath)  # for the messages
            p = _unfreeze_all(x.prior, at, named)
            value = None if x.is_abstract else x.array
            param = new_param(value, x.shape, x.dtype, p, at, "ep.unfreeze", x.name)
            if x.name is not None:
                named.setdefault(x.name, param)
            return param
        return x

    return jax.tree_util.tree_map_with_path(restore, prior, is_leaf=is_wrapper)


def unfreeze(model: _M, where: Where, *, prior: AbstractPrior | None = None) -> _M:
    """Turn the `ep.Fixed`s at `where` back into trainable `ep.Param`s.

    Each Fixed becomes a Param with the same physical value (latent
    `prior.inverse(value)`), shape and dtype. A Fixed made by `ep.freeze` gets
    back the prior it was frozen with, so `unfreeze(freeze(model, w), w)` equals
    `model` up to the rounding of `prior.inverse(prior.forward(z))`. Params in the
    selection stay as they are.

    Arguments:
        model: the model.
        where: what to unfreeze, as for `ep.freeze`.
        prior: the prior of the new Params. Default: the prior each Fixed was
            frozen with; plain data (not made by `ep.freeze`) has none, and
            without `prior=` it is an error, so data is never made trainable by
            accident.

    Returns:
        The model with those Fixed arrays trainable again. Re-partition it and
        re-initialise the optimizer state on the new `params`.

    Raises:
        ValueError: for an unknown path, a selection without Param or Fixed, a
            Fixed without a prior to restore (when `prior` is not given), or a value
            outside the prior's support (each naming the path).
        TypeError: for a Fixed of non-floating dtype (only floats are trained).

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> model = {"w": ep.Param(jnp.array([0.5, 2.0]), prior=ep.LogNormal(1.0, 1.0)),
        ...          "x": ep.Fixed(jnp.array([1.0, 2.0]))}
        >>> frozen = ep.freeze(model, lambda m: m["w"])
        >>> ep.unfreeze(frozen, lambda m: m["w"])["w"]  # its prior comes back
        Param([0.5, 2], prior=LogNormal(mean=1, sd=1))
        >>> ep.unfreeze(frozen, "['x']", prior=ep.Normal(0.0, 1.0))["x"]  # plain data
        Param([1, 2], prior=Normal(0, 1))
    """
    nodes, indices = _selection(model, where, "ep.unfreeze")
    out = list(nodes.nodes)
    named: dict[str, Param] = {}  # shared hyperparameters restored in a prior
    for i, node in _of_kind(nodes, indices, Fixed):
        path = nodes.paths[i]
        p = prior if prior is not None else node.prior
        if p is None:
            raise ValueError(
                f"`ep.unfreeze`: the Fixed at `{path}` was not made by `ep.freeze`, "
                "so it has no prior to restore. Pass `prior=` (e.g. "
                "`prior=ep.Normal(0, 1)`) to make it a Param, or leave it out of "
                "`where`."
            )
        if not jnp.issubdtype(node.dtype, jnp.floating):
            raise TypeError(
                f"`ep.unfreeze`: the Fixed at `{path}` has dtype {node.dtype}; only "
                "floating arrays can become Params. Leave it out of `where`."
            )
        if prior is None:
            p = _unfreeze_all(p, path, named)
        value = None if node.is_abstract else node.array
        out[i] = new_param(
            value, node.shape, node.dtype, p, path, "ep.unfreeze", node.name
        )
    # A shared hyperparameter was frozen in every prior that uses it (it is one
    # parameter): give it back in each, not only in the selected Params' priors.
    for j, node in enumerate(nodes.nodes):
        if isinstance(node, Fixed) and node.prior is not None and node.name in named:
            out[j] = named[node.name]
    return nodes.unflatten(out)
