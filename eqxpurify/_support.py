"""Supports of the built-in priors, and the bijections from the real line onto them.

The centred (unconstrained) parameterisation stores `u` on the real line with
value `x = bijection(u)`. The three supports of the built-in priors use the
bijections numpyro's `biject_to` gives them (identity, `exp`, a scaled
sigmoid), written here so that centred built-in priors need no numpyro. A
numpyro distribution (`ep.Dist`) uses numpyro's own `biject_to` instead; an
event-shaped one (a simplex, a correlation Cholesky factor) through
`EventBijection`, which says which values lie on the support.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

__all__ = [
    "SUPPORTS",
    "Bijection",
    "EventBijection",
    "bijection_of",
    "event_dtype",
    "no_support",
]


class Bijection:
    """A map `u -> x` from the real line onto a support, with inverse and log|J|.

    Same interface as a numpyro transform: `t(u)`, `t.inv(x)` and
    `t.log_abs_det_jacobian(u, x)`.
    """

    def __init__(self, kind: str, low: Any = None, high: Any = None):
        self.kind, self.low, self.high = kind, low, high

    def __call__(self, u: Array) -> Array:
        if self.kind == "real":
            return u
        if self.kind == "positive":
            return jnp.exp(u)
        return self.low + (self.high - self.low) * jax.nn.sigmoid(u)

    def inv(self, x: Array) -> Array:
        if self.kind == "real":
            return x
        if self.kind == "positive":
            return jnp.log(x)
        p = (x - self.low) / (self.high - self.low)
        return jnp.log(p) - jnp.log1p(-p)

    def log_abs_det_jacobian(self, u: Array, x: Array) -> Array:
        del x
        if self.kind == "real":
            return jnp.zeros_like(u)
        if self.kind == "positive":
            return u
        log_width = jnp.log(self.high - self.low)
        return log_width - jax.nn.softplus(u) - jax.nn.softplus(-u)


class EventBijection:
    """A numpyro transform onto an event-shaped support, refusing values off it.

    `t(u)` and `t.log_abs_det_jacobian(u, x)` are the transform's (one log|J|
    per event); `t.inv(x)` is NaN for each event of `x` that is off the support,
    so a value off the simplex is refused rather than projected onto it.

    A value is on the support where numpyro's constraint holds, or where it
    maps back onto itself within `sqrt(eps)` (relative), so that values the
    transform gives out are never refused for their rounding: numpyro's simplex
    check allows a sum within 1e-6 of 1, which a float32 simplex of thousands of
    categories misses.

    numpyro's transforms mix integer and float arrays (`jnp.arange` in the
    stick-breaking), which strict dtype promotion refuses, and under
    `jax_enable_x64` mix float32 with float64: they run under the standard
    promotion in `event_dtype` (float64 under x64), and each result is cast back
    to its input's dtype.
    """

    def __init__(self, transform: Any, support: Any):
        self.transform, self.support = transform, support
        self.event_dim = int(support.event_dim)
        self.latent_event_dim = int(transform.domain.event_dim)

    def __call__(self, u: Array) -> Array:
        with jax.numpy_dtype_promotion("standard"):
            return self.transform(_wide(u)).astype(u.dtype)

    def contains(self, x: Array) -> Array:
        """Whether each event of `x` lies on the support: one bool per event."""
        with jax.numpy_dtype_promotion("standard"):
            wide = _wide(x)
            return self._contains(wide, self.transform.inv(wide), x.dtype)

    def _contains(self, x: Array, u: Array, dtype: Any) -> Array:
        back = self.transform(u)
        tol = float(np.sqrt(np.finfo(dtype).eps))
        close = jnp.abs(back - x) <= tol * (1 + jnp.abs(x))
        axes = tuple(range(x.ndim - self.event_dim, x.ndim))
        return jnp.asarray(self.support(x)) | jnp.all(close, axis=axes)

    def inv(self, x: Array) -> Array:
        with jax.numpy_dtype_promotion("standard"):
            wide = _wide(x)
            u = self.transform.inv(wide)
            inside = self._contains(wide, u, x.dtype)
        inside = inside.reshape(inside.shape + (1,) * self.latent_event_dim)
        return jnp.where(inside, u, jnp.nan).astype(x.dtype)

    def log_abs_det_jacobian(self, u: Array, x: Array) -> Array:
        with jax.numpy_dtype_promotion("standard"):
            out = self.transform.log_abs_det_jacobian(_wide(u), _wide(x))
        return out.astype(u.dtype)


def event_dtype(dtype: Any) -> np.dtype:
    """The dtype numpyro's event-shaped code runs in: float64 under x64."""
    dtype, wide = np.dtype(dtype), np.dtype(jax.dtypes.canonicalize_dtype(float))
    return dtype if dtype.itemsize >= wide.itemsize else wide


def _wide(x: Array) -> Array:
    x = jnp.asarray(x)
    return x.astype(event_dtype(x.dtype))


SUPPORTS = ("real", "positive", "interval")  # the supports a prior may declare


def no_support(prior: Any) -> str:
    """The message for a prior that declares no support and has no bijection."""
    return (
        f"The prior `{type(prior).__name__}` declares no support, so it has no "
        "centred (unconstrained) parameterisation. Declare one as a class "
        'attribute, `support = "real"`, `"positive"` or `"interval"` (with `low` '
        "and `high` hyperparameters), or override its `bijector` method."
    )


def bijection_of(prior: Any, dtype: Any) -> Bijection:
    """The bijection onto the declared `support` of a prior, in `dtype`.

    `support` is `"real"`, `"positive"` or `"interval"` (bounds read from the
    prior's `low` and `high` hyperparameters).
    """
    dtype = np.dtype(dtype)
    kind = getattr(prior, "support", None)
    if kind in ("real", "positive"):
        return Bijection(kind)
    if kind == "interval":
        low, high = prior.low.value.astype(dtype), prior.high.value.astype(dtype)
        return Bijection(kind, low, high)
    raise TypeError(no_support(prior))
