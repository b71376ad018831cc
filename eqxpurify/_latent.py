"""A Param's latent and its physical value, both ways, with their checks.

The value of a latent is `prior.forward(latent)`, of the latent's shape and
dtype; the latent of a value is `prior.inverse(value)`, refused outside the
prior's support or where it overflows the Param's dtype (a saturated
low-precision value gets the clamped latent that maps back onto it).
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._abstract_prior import AbstractPrior
from ._plumbing import is_traced
from ._wrapper_base import shape_str

__all__ = [
    "LatentDtypeError",
    "ValueShapeError",
    "check_finite",
    "check_flags",
    "latent_dtype_error",
    "latent_of",
    "param_value",
]


def param_value(latent: Array, prior: AbstractPrior) -> Array:
    """`prior.forward(latent)`, checked to keep the latent's shape and dtype."""
    if not jnp.issubdtype(latent.dtype, jnp.floating):
        raise latent_dtype_error(None, latent.dtype, None)
    try:
        out = prior.forward(latent)
    except (TypeError, ValueError) as e:
        _check_broadcasts(prior, tuple(latent.shape), e)
        raise
    if jnp.shape(out) != prior.value_shape(tuple(latent.shape)):
        raise ValueShapeError(
            f"The prior `{type(prior).__name__}` makes the value of shape "
            f"{shape_str(jnp.shape(out))} from a latent of shape "
            f"{shape_str(latent.shape)}: its hyperparameters have shape "
            f"{shape_str(prior.batch_shape)}, which does not broadcast to "
            "the Param's shape (was the prior replaced with `eqx.tree_at`?). "
            "Give the prior hyperparameters of a broadcastable shape, or build "
            "the Param anew: `ep.Param(value, prior=...)`."
        )
    if out.dtype != latent.dtype:  # e.g. float64 hyperparameters
        out = out.astype(latent.dtype)
    return out


def _check_broadcasts(prior: AbstractPrior, shape: tuple[int, ...], e: Exception):
    """Explain `prior.forward`'s error `e` if the latent's shape is the cause.

    That is a latent whose shape does not broadcast with the prior's
    hyperparameters: a ValueShapeError, which callers give the Param's path.
    """
    batch = prior.batch_shape
    try:
        jnp.broadcast_shapes(shape, batch)
    except ValueError:
        raise ValueShapeError(
            f"The prior `{type(prior).__name__}` cannot take a latent of shape "
            f"{shape_str(shape)}: its hyperparameters have shape "
            f"{shape_str(batch)}, which does not broadcast with it (was the latent "
            "or the prior replaced with `eqx.tree_at`?). Give the prior "
            "hyperparameters of a broadcastable shape, or build the Param anew: "
            "`ep.Param(value, prior=...)`."
        ) from e


class ValueShapeError(ValueError):
    """A Param whose prior gives its value another shape than its latent's."""


class LatentDtypeError(TypeError):
    """A Param whose latent is not a floating array (e.g. set with `eqx.tree_at`)."""


def latent_dtype_error(
    path: str | None, dtype: Any, caller: str | None
) -> LatentDtypeError:
    """The error for a Param whose latent has a non-floating `dtype`."""
    lead = f"`{caller}`: the" if caller else "The"
    where = f" at `{path}`" if path else ""
    return LatentDtypeError(
        f"{lead} Param{where} has a latent of dtype {dtype}, not a floating array "
        "(was `.latent` set with `eqx.tree_at`?), so it would silently drop out of "
        "training. Set Params with `ep.set_value(model, where, value)` (physical "
        "value) or replace the whole node: `eqx.tree_at(where, model, "
        "ep.Param(value, prior=...))`."
    )


def check_finite(latent: Array, message: str) -> Array:
    """Raise `message` unless `latent` is finite.

    The check runs now if `latent` is concrete, and at run time if it is traced
    (with `eqx.error_if`, so a jitted constructor cannot yield NaN).
    """
    if is_traced(latent):
        return check_flags(latent, (~jnp.isfinite(latent), message))
    return check_flags(latent, (~np.isfinite(np.asarray(latent)), message))


def check_flags(latent: Array, *checks: tuple[Any, str]) -> Array:
    """Raise the message of the first `(flags, message)` whose flags hold.

    Now if the flags are concrete, at run time (`eqx.error_if`) if traced.
    """
    for flags, message in checks:
        if is_traced(flags):
            latent = eqx.error_if(latent, jnp.any(flags), message)
        elif np.any(np.asarray(flags)):
            raise ValueError(message)
    return latent


def latent_of(prior: AbstractPrior, value: Array, dtype: np.dtype) -> tuple:
    """`(latent, outside, overflow)` of a physical value, for a Param of `dtype`.

    `outside` flags values outside the prior's support, `overflow` latents too
    large for `dtype`. Built-in priors compute in at least float32. In a lower
    precision their values saturate for moderate latents (|z| < 8): they overflow
    to inf, underflow to 0, or round onto a bound. So a low-precision value whose
    latent is not finite gets the latent clamped to `dtype`'s finite range if
    that latent maps back onto the very same value: the library takes back every
    value it gives out. (In float32 and float64 they do not saturate; an inf value
    is refused.)
    """
    x = value.astype(dtype)
    latent = jnp.asarray(prior.inverse(x)).astype(dtype)
    fits = jnp.isfinite(latent)
    if not is_traced(fits) and np.all(np.asarray(fits)):
        return latent, False, False
    if latent.shape != x.shape:  # a prior with fewer latents than values
        outside = jnp.any(jnp.isnan(latent)) | jnp.any(~jnp.isfinite(x))
        return latent, outside, jnp.any(~fits) & ~outside
    # NaN: outside the support; inf from a finite value: an overflowing latent.
    outside = ~fits & (jnp.isnan(latent) | ~jnp.isfinite(x))
    if np.dtype(dtype).itemsize >= 4:
        return latent, outside, ~fits & ~outside
    clamped = _saturating_latent(prior, x, latent, dtype)
    same = prior.forward(clamped).astype(dtype) == x
    saturated = ~fits & ~jnp.isnan(latent) & same
    latent = jnp.where(saturated, clamped, latent)
    outside = outside & ~saturated
    return latent, outside, ~fits & ~saturated & ~outside


def _saturating_latent(
    prior: AbstractPrior, x: Array, latent: Array, dtype: np.dtype
) -> Array:
    """The latent of least magnitude that maps onto a saturated value `x`.

    Tried on a ladder of powers of two (8, 16, ... up to the dtype's largest
    finite number), on the side of `latent`'s sign: so a value that underflowed
    to 0 or overflowed to inf gets a latent such as -256, whose log density and
    gradient stay finite, rather than the dtype's largest number (whose square is
    inf). Where no rung maps onto `x`, the largest finite number is returned (and
    `latent_of` finds that it does not map back either).
    """
    info = jnp.finfo(dtype)
    ladder = np.append(2.0 ** np.arange(3, info.maxexp), float(info.max))
    ladder = jnp.asarray(ladder.astype(dtype))
    sign = jnp.where(latent < 0, -1, 1).astype(dtype)
    hits = jax.vmap(lambda c: prior.forward(sign * c).astype(dtype) == x)(ladder)
    rung = ladder[jnp.argmax(hits, axis=0)]
    return sign * jnp.where(jnp.any(hits, axis=0), rung, ladder[-1])
