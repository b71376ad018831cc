"""The wrappers that tag a model's fields, and what every module asks of them."""

import functools
from collections.abc import Callable
from typing import Any

import jax
from jaxtyping import Array

from ._fixed import (
    DeletedArrayError,
    Fixed as Fixed,
    check_storage as check_storage,
    deleted_error,
)
from ._flat import is_traced
from ._param import (
    LatentDtypeError,
    Param as Param,
    ValueShapeError as ValueShapeError,
    check_finite as check_finite,
    check_flags as check_flags,
    latent_dtype_error as latent_dtype_error,
    latent_of as latent_of,
    param_value,
    with_latent as with_latent,
)
from ._storage import is_array
from ._wrapper_base import (
    AbstractWrapper as AbstractWrapper,
    abstract_error as abstract_error,
    any_dtype as any_dtype,
    as_array as as_array,
    build as build,
    check_name as check_name,
    default_float as default_float,
    is_wrapper as is_wrapper,
    shape_str as shape_str,
    static_shape as static_shape,
    with_fields as with_fields,
    with_prior as with_prior,
)


@functools.lru_cache(maxsize=256)
def _forward(prior_def: Any) -> Callable[[Array, list[Array]], Array]:
    """A compiled `param_value` for priors of one structure, given their leaves.

    Eagerly one compiled call per Param is cheaper than the prior's 3-4 ops, and
    passing the prior's leaves (not the prior) spares flattening it at dispatch.
    """
    return jax.jit(lambda z, leaves: param_value(z, prior_def.unflatten(leaves)))


_NOT_CONSTANT = object()


def value_of(node: AbstractWrapper, priors: dict[int, Any] | None = None) -> Array:
    """`node.value`, through one cached compiled call for a concrete Param.

    `priors` memoises the flattened priors by identity for the duration of one
    walk over a model (Params often share their prior).
    """
    if type(node) is Param:
        fields = object.__getattribute__(node, "__dict__")
        latent, prior = fields["latent"], fields["prior"]
        if is_array(latent) and not is_traced(latent):
            flat = priors.get(id(prior)) if priors is not None else None
            if flat is None:
                leaves, prior_def = jax.tree.flatten(prior)
                constant = all(is_array(x) for x in leaves)
                flat = (prior_def, leaves) if constant else _NOT_CONSTANT
                if priors is not None:
                    priors[id(prior)] = flat
            if isinstance(flat, tuple):  # not `_NOT_CONSTANT`
                prior_def, leaves = flat
                try:
                    return _forward(prior_def)(latent, leaves)
                except Exception:  # e.g. an array donated to a jitted function
                    if latent.is_deleted():
                        raise deleted_error(None, "Param's latent") from None
                    if any(x.is_deleted() for x in leaves if isinstance(x, jax.Array)):
                        raise deleted_error(None, "prior hyperparameter") from None
                    raise
    return node.value


def value_at(
    node: AbstractWrapper, path: str, caller: str, priors: dict[int, Any] | None = None
) -> Array:
    """`value_of(node)`, with the path in the error of a Param of the wrong shape."""
    try:
        return value_of(node, priors)
    except ValueShapeError as e:
        raise ValueShapeError(f"`{caller}`: the Param at `{path}`: {e}") from None
    except DeletedArrayError:
        if path and not isinstance(node, Fixed):
            raise deleted_error(path, "Param (its latent or a prior hyperparameter)")
        raise
    except LatentDtypeError as e:
        dtype = node.__dict__["latent"].dtype
        raise latent_dtype_error(path, dtype, caller) from e


def check_model(model: Any) -> None:
    """Refuse a class, or the `rest` half of `ep.partition`, where a model is due."""
    from ._filters import Rest

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


def is_param(node: Any) -> bool:
    """Whether `node` is an `ep.Param` (usable as `is_leaf` with JAX and Equinox).

    Examples:
        >>> import jax, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"w": ep.Param(jnp.ones(2)), "t": ep.Fixed(jnp.zeros(3))}
        >>> [k for k, v in model.items() if ep.is_param(v)]
        ['w']
        >>> jax.tree.leaves(model, is_leaf=ep.is_param)[-1]  # a Param stays whole
        Param([1, 1], prior=Normal(0, 1))
    """
    return isinstance(node, Param)


def is_fixed(node: Any) -> bool:
    """Whether `node` is an `ep.Fixed` (usable as `is_leaf` with JAX and Equinox).

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> model = {"w": ep.Param(jnp.ones(2)), "t": ep.Fixed(jnp.zeros(3))}
        >>> ep.is_fixed(model["t"]), ep.is_fixed(model["w"])
        (True, False)
        >>> ep.values(model, ep.is_fixed)  # the data instead of the Params
        {"['t']": Array([0., 0., 0.], dtype=float32)}
    """
    return isinstance(node, Fixed)
