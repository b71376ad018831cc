"""Priors on the half-line: HalfNormal, HalfCauchy and Exponential."""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfc, erfinv, log_ndtr, ndtr, ndtri
from jaxtyping import Array, ArrayLike, Float

from ._abstract_prior import AbstractPrior
from ._hyper import LOG_2PI, Hyper, compute, open_interval, to_hyper, value_in
from ._hyper_checks import positive, validate
from ._plumbing import compute_dtype, is_traced

__all__ = ["Exponential", "HalfCauchy", "HalfNormal"]


def _scale_hyper(value: Any, name: str, owner: str) -> Hyper:
    """The one positive hyperparameter of a half-line prior, validated."""
    return positive(to_hyper(value, name, owner), name, owner)


def _from_tails(z: Array, low: Any, high: Any) -> Array:
    """`low(z)` for z < 0, `high(z)` otherwise.

    Each branch only ever sees its own half of the line, so the branch not taken
    cannot produce NaN gradients; the branch taken sees `z` itself, so its whole
    gradient reaches `z` (at `z = 0` too, where `ep.zeros` puts every latent).
    """
    lower = z < 0
    return jnp.where(lower, low(jnp.where(lower, z, 0)), high(jnp.where(lower, 0, z)))


def _to_tails(y: Array, lower: Array, z_low: Any, z_high: Any, safe: Any) -> Array:
    """The inverse of `_from_tails`: `z_low(y)` where `lower`, else `z_high(y)`.

    The branch not taken gets the harmless argument `safe`. Negative `y` (outside
    the support) is NaN.
    """
    z = jnp.where(
        lower, z_low(jnp.where(lower, y, safe)), z_high(jnp.where(lower, safe, y))
    )
    return jnp.where(y < 0, jnp.nan, z)


class HalfNormal(AbstractPrior):
    """Half-normal prior on `[0, inf)`: `|N(0, sigma^2)|`.

    `x = sigma * sqrt(2) * erfinv(Phi(z))` in the lower half and
    `x = -sigma * Phi^-1(Phi(-z) / 2)` in the upper, so both tails are accurate.

    Arguments:
        sigma: the scale, > 0 (the sd of the underlying normal).

    Examples:
        >>> import jax, eqxpurify as ep
        >>> ep.zeros(ep.Param(prior=ep.HalfNormal(2.0)))  # z = 0: the median
        Param(1.349, prior=HalfNormal(2))
        >>> ep.Param.from_latent(3.0, prior=ep.HalfNormal(2.0))
        Param(6.41, prior=HalfNormal(2))

        A positive scale for a hierarchical prior:

        >>> tau = ep.Param(1.0, prior=ep.HalfNormal(5.0))
        >>> model = {"theta": ep.Param(shape=(8,), prior=ep.Normal(0.0, tau))}
        >>> params, rest = ep.partition(ep.normal(model, key=jax.random.key(0)))
        >>> {path: z.shape for path, z in params.items()}
        {"['theta']": (8,), "['theta'].prior.sigma": ()}
    """

    support = "positive"

    sigma: Hyper

    def __init__(self, sigma: ArrayLike | Hyper = 1.0):
        self.sigma = _scale_hyper(sigma, "sigma", "HalfNormal")

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = compute(z)
        root2 = jnp.sqrt(jnp.asarray(2.0, ct))
        x = _from_tails(
            zc,
            lambda lo: root2 * erfinv(ndtr(lo)),
            lambda hi: -ndtri(0.5 * ndtr(-hi)),
        )
        return (value_in(self.sigma, ct) * x).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        y = xc / value_in(self.sigma, ct)
        r2 = jnp.sqrt(jnp.asarray(2.0, ct))
        z = _to_tails(
            y,
            y < 0.6744897501960817,  # the median: Phi^-1(3/4)
            lambda lo: ndtri(open_interval(jax.lax.erf(lo / r2))),
            lambda hi: -ndtri(open_interval(erfc(hi / r2))),
            safe=1.0,
        )
        return z.astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        sigma = value_in(self.sigma, ct)
        lp = (
            math.log(2.0)
            - 0.5 * jnp.square(xc / sigma)
            - jnp.log(sigma)
            - 0.5 * LOG_2PI
        )
        return jnp.where(xc >= 0, lp, -jnp.inf)


class HalfCauchy(AbstractPrior):
    """Half-Cauchy prior on `[0, inf)` with scale `scale`.

    `x = scale * tan(pi/2 * Phi(z))`, evaluated as `scale / tan(pi/2 * Phi(-z))`
    in the upper half so the heavy tail stays accurate.

    Arguments:
        scale: the scale, > 0 (the median of the distribution).

    Examples:
        >>> import eqxpurify as ep
        >>> ep.zeros(ep.Param(prior=ep.HalfCauchy(2.0)))  # z = 0: the median
        Param(2, prior=HalfCauchy(2))
        >>> ep.Param.from_latent(3.0, prior=ep.HalfCauchy(2.0))  # the heavy tail
        Param(943.2, prior=HalfCauchy(2))
    """

    support = "positive"

    scale: Hyper  # the median

    def __init__(self, scale: ArrayLike | Hyper = 1.0):
        self.scale = _scale_hyper(scale, "scale", "HalfCauchy")

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = compute(z)
        half_pi = jnp.asarray(0.5 * math.pi, ct)
        x = _from_tails(
            zc,
            lambda lo: jnp.tan(half_pi * ndtr(lo)),
            lambda hi: 1 / jnp.tan(half_pi * ndtr(-hi)),
        )
        return (value_in(self.scale, ct) * x).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        y = xc / value_in(self.scale, ct)
        two_over_pi = jnp.asarray(2 / math.pi, ct)
        z = _to_tails(
            y,
            y < 1,  # the median
            lambda lo: ndtri(open_interval(two_over_pi * jnp.arctan(lo))),
            lambda hi: -ndtri(open_interval(two_over_pi * jnp.arctan(1 / hi))),
            safe=1.0,
        )
        return z.astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        scale = value_in(self.scale, ct)
        lp = math.log(2 / math.pi) - jnp.log(scale) - jnp.log1p(jnp.square(xc / scale))
        return jnp.where(xc >= 0, lp, -jnp.inf)


def _median_overflows(rate: Any) -> Any:
    """Where `log(2) / rate`, the median of an Exponential, is not finite.

    On the device, that is: XLA flushes a subnormal rate to zero, so on the host
    a positive rate below the smallest normal number of its compute dtype counts.
    """
    if is_traced(rate):
        return ~jnp.isfinite(math.log(2.0) / rate)
    tiny = np.finfo(compute_dtype(rate.dtype)).tiny
    with np.errstate(over="ignore", divide="ignore"):
        return ~np.isfinite(math.log(2.0) / rate) | ((0 < rate) & (rate < tiny))


class Exponential(AbstractPrior):
    """Exponential prior on `[0, inf)` with rate `rate` (mean `1 / rate`).

    `x = -log(1 - Phi(z)) / rate`, as `-log1p(-Phi(z))` in the lower half and
    `-log Phi(-z)` (via `log_ndtr`) in the upper, so both tails are accurate.

    Arguments:
        rate: the rate, > 0.

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> ep.zeros(ep.Param(prior=ep.Exponential(2.0)))  # z = 0: the median
        Param(0.3466, prior=Exponential(2))
        >>> round(float(ep.Exponential(2.0).log_prob(jnp.array(0.5))), 4)
        -0.3069
    """

    support = "positive"

    rate: Hyper

    def __init__(self, rate: ArrayLike | Hyper = 1.0):
        rate_ = positive(to_hyper(rate, "rate", "Exponential"), "rate", "Exponential")
        self.rate = validate(
            rate_,
            _median_overflows,
            "`Exponential(rate=...)` is so small that the median `log(2) / rate` "
            f"overflows {compute_dtype(rate_.dtype)} (every value would be inf; a "
            "rate below its smallest normal number counts as 0); got "
            "{value}. Pass a larger `rate`, or use float64.",
        )

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = compute(z)
        x = _from_tails(zc, lambda lo: -jnp.log1p(-ndtr(lo)), lambda hi: -log_ndtr(-hi))
        return (x / value_in(self.rate, ct)).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        y = xc * value_in(self.rate, ct)
        z = _to_tails(
            y,
            y < math.log(2.0),  # the median
            lambda lo: ndtri(open_interval(-jnp.expm1(-lo))),
            lambda hi: -ndtri(open_interval(jnp.exp(-hi))),
            safe=math.log(2.0),
        )
        return z.astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        rate = value_in(self.rate, ct)
        return jnp.where(xc >= 0, jnp.log(rate) - rate * xc, -jnp.inf)
