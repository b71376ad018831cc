"""A Param's value as every module reads it: one cached compiled call.

`value_of` gives `node.value`, for a concrete Param through one compiled call
per prior structure (cheaper, eagerly, than the prior's few operations);
`value_at` is the same with the path in its errors.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
from jaxtyping import Array

from ._latent import LatentDtypeError, ValueShapeError, latent_dtype_error, param_value
from ._param import Param
from ._path_names import join
from ._plumbing import is_traced
from ._storage import is_array
from ._wrapper_base import (
    AbstractWrapper,
    DeletedArrayError,
    abstract_error,
    deleted_error,
    is_wrapper,
)

__all__ = ["value_at", "value_of"]


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
        if path and isinstance(node, Param):
            raise deleted_error(path, "Param (its latent or a prior hyperparameter)")
        raise
    except LatentDtypeError as e:
        dtype = node.__dict__["latent"].dtype
        raise latent_dtype_error(path, dtype, caller) from e
    except ValueError:
        _check_hyperparameters(node, path, caller)
        raise


def _check_hyperparameters(node: AbstractWrapper, path: str, caller: str) -> None:
    """Raise the error naming an abstract hyperparameter of `node`, if it has one.

    Checked only once computing the value failed (it costs a walk of the prior).
    """
    prior = node.__dict__.get("prior")
    with_paths = jax.tree_util.tree_flatten_with_path(prior, is_leaf=is_wrapper)[0]
    for keypath, x in with_paths:
        if is_wrapper(x) and x.is_abstract:
            raise abstract_error(x, join(path + ".prior", keypath), caller) from None
