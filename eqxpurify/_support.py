"""Supports of the built-in priors, and the bijections from the real line onto them.

The centred (unconstrained) parameterisation stores `u` on the real line with
value `x = bijection(u)`. The three supports of the built-in priors use the
bijections numpyro's `biject_to` gives them (identity, `exp`, a scaled
sigmoid), written here so that centred built-in priors need no numpyro. A
numpyro distribution (`ep.Dist`) uses numpyro's own `biject_to` instead.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

__all__ = ["SUPPORTS", "Bijection", "bijection_of", "no_support"]


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
