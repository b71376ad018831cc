"""Shapes, initialisation and the prior density of a model's latents."""

import math
from typing import TypeVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._filters import ParamNodes, param_nodes, replace_latents
from ._flat import common_dtype, split
from ._priors import standard_normal_logpdf_constant
from ._wrappers import _INIT_HINT

__all__ = ["log_prior", "normal", "require_concrete", "shapes", "zeros"]

_M = TypeVar("_M")


def require_concrete(model: object, flat: ParamNodes, caller: str) -> None:
    """Raise, naming the path, if any Param of `model` is still abstract."""
    for k, node in enumerate(flat.params):
        if node.is_abstract:
            raise ValueError(
                f"`{caller}` needs concrete Params, but the Param at "
                f"`{flat.path(model, k)}` is abstract (shape {node.shape}, no value "
                f"yet). {_INIT_HINT}"
            )


def shapes(model: _M) -> _M:
    """The model with every Param latent replaced by a `jax.ShapeDtypeStruct`.

    Useful to inspect a model's parameter shapes, or to make an abstract copy of a
    fitted model (e.g. as a template for deserialisation). Nothing is computed.

    Example:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> ep.shapes({"w": ep.Param(jnp.zeros((2, 3)))})["w"].latent
        ShapeDtypeStruct(shape=(2, 3), dtype=float32)
    """
    flat = param_nodes(model)
    structs = [jax.ShapeDtypeStruct(p.shape, p.dtype) for p in flat.params]
    return replace_latents(flat, structs)


def zeros(model: _M) -> _M:
    """The model with every Param latent (abstract or not) set to zeros.

    With zero latents every Param sits at its prior's median (e.g. the mean of an
    `ep.Normal`).

    Example:
        >>> import eqxpurify as ep
        >>> float(ep.zeros(ep.Param(prior=ep.Normal(5.0, 2.0))).value)
        5.0
    """
    flat = param_nodes(model)
    latents = [jnp.zeros(p.shape, p.dtype) for p in flat.params]
    return replace_latents(flat, latents)


def normal(model: _M, *, key: PRNGKeyArray) -> _M:
    """The model with every Param latent (abstract or not) drawn from N(0, 1).

    Each physical value is then a draw from its prior, so a prior such as
    `ep.Normal(0, 1 / sqrt(fan_in))` makes this a LeCun initialisation.

    One key serves the whole model: a single vector of normal draws is cut into
    the leaves in path order, so the result is deterministic given the key and
    the model's structure, every leaf gets distinct values, and the cost is one
    random draw however many leaves there are. Works under `jax.jit` and
    `eqx.filter_vmap` (one member of a vmapped ensemble equals the unbatched call
    with the same key).

    Arguments:
        model: the model (Params may be abstract).
        key: a JAX PRNG key (keyword-only).

    Returns:
        The model with new latents; everything that is not a Param latent (Fixed
        data, integer arrays, keys, prior hyperparameters) is untouched.

    Example:
        >>> import jax, eqxpurify as ep
        >>> model = {"w": ep.Param(shape=(3, 2)),
        ...          "alpha": ep.Param(prior=ep.LogNormal(3.0, 0.1))}
        >>> model = ep.normal(model, key=jax.random.key(0))
        >>> model["w"].latent.shape, bool(model["alpha"].value > 0)
        ((3, 2), True)
    """
    flat = param_nodes(model)
    params = flat.params
    shapes_ = [p.shape for p in params]
    dtypes = [p.dtype for p in params]
    total = sum(math.prod(s) for s in shapes_)
    draw_dtype = common_dtype(dtypes)
    draws = jax.random.normal(key, (total,), draw_dtype)
    return replace_latents(flat, split(draws, shapes_, dtypes))


def log_prior(model: object) -> Float[Array, ""]:
    """Sum of standard-normal log densities of every Param latent.

    In whitened space this is the log prior density of the model (up to the
    Jacobian of the prior transforms, which whitening absorbs). The result has the
    widest latent dtype (at least float32).

    Example:
        >>> import eqxpurify as ep
        >>> round(float(ep.log_prior(ep.zeros({"z": ep.Param(shape=(2,))}))), 4)
        -1.8379
    """
    flat = param_nodes(model)
    require_concrete(model, flat, "ep.log_prior")
    params = flat.params
    dtype = common_dtype([p.dtype for p in params])
    if not params:
        return jnp.zeros((), dtype)
    count = sum(math.prod(p.shape) for p in params)
    total = sum(jnp.sum(jnp.square(z.astype(dtype))) for z in flat.latents())
    const = jnp.asarray(count * standard_normal_logpdf_constant(), dtype)
    return -0.5 * total + const
