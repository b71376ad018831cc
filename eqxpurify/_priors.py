"""The built-in priors: bijections from a standard normal, and their densities.

Each hyperparameter is an `ep.Fixed` (a constant, stored so that no optimiser
sees it) or an `ep.Param` (a hierarchical prior: the hyperparameter is itself
a whitened latent). Numbers and arrays given to a constructor become `ep.Fixed`.
Every map is evaluated in at least float32 and from the nearer tail, so both
tails keep their precision over `z` in [-8, 8].
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri
from jaxtyping import Array, ArrayLike, Float

from ._abstract_prior import AbstractPrior
from ._fixed import Fixed
from ._hyper import (
    LOG_2PI,
    Hyper,
    broadcastable,
    compute,
    describe,
    open_interval,
    to_hyper,
    value_in,
)
from ._hyper_checks import check_jointly, current, finite, positive
from ._param import Param
from ._plumbing import compute_dtype, is_traced

__all__ = [
    "LogNormal",
    "Normal",
    "Uniform",
    "standard_normal",
    "standard_normal_logpdf_constant",
]


def standard_normal_logpdf_constant() -> float:
    """`-0.5 * log(2 pi)`, the per-element constant of the standard normal density."""
    return -0.5 * LOG_2PI


@functools.cache
def standard_normal() -> "Normal":
    """The default prior, shared by every Param that names none.

    Built concretely even when first asked for inside `jax.jit`, so the cached
    instance never holds a tracer.
    """
    with jax.ensure_compile_time_eval():
        return Normal(0.0, 1.0)


# --------------------------------------------------------------------------------
# The priors.


class Normal(AbstractPrior):
    """Normal prior: `x = mean + sigma * z`.

    Arguments:
        mean: the mean (a number, an array broadcasting against the Param's shape,
            an `ep.Fixed`, or an `ep.Param` for a hierarchical prior).
        sigma: the standard deviation, > 0. `ep.Normal(0, 1 / sqrt(fan_in))` makes
            `ep.normal` a LeCun initialisation.

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> prior = ep.Normal(1.0, 2.0)
        >>> prior.forward(jnp.array([0.0, 1.0]))
        Array([1., 3.], dtype=float32)
        >>> ep.Param(jnp.array([1.0, 5.0]), prior=prior).latent  # (x - 1) / 2
        Array([0., 2.], dtype=float32)
    """

    support = "real"

    mean: Hyper
    sigma: Hyper

    def __init__(self, mean: ArrayLike | Hyper = 0.0, sigma: ArrayLike | Hyper = 1.0):
        self.mean = finite(to_hyper(mean, "mean", "Normal"), "mean", "Normal")
        self.sigma = positive(to_hyper(sigma, "sigma", "Normal"), "sigma", "Normal")
        broadcastable("Normal", mean=self.mean, sigma=self.sigma)

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = compute(z)
        return (value_in(self.mean, ct) + value_in(self.sigma, ct) * zc).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        z = (xc - value_in(self.mean, ct)) / value_in(self.sigma, ct)
        return z.astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        sigma = value_in(self.sigma, ct)
        u = (xc - value_in(self.mean, ct)) / sigma
        return -0.5 * jnp.square(u) - jnp.log(sigma) - 0.5 * LOG_2PI


class LogNormal(AbstractPrior):
    """Log-normal prior parameterised by the mean and sd of the variable itself.

    `x = exp(mu + s * z)` with `s**2 = log(1 + sigma**2 / mean**2)` and
    `mu = log(mean) - s**2 / 2`, so that `E[x] = mean` and `sd[x] = sigma`.

    Not numpyro's, Stan's or scipy's meaning (the `loc` and `scale` of
    `log(x)`): for that one, use `ep.LogNormal.from_log(loc, scale)`.

    Arguments:
        mean: the mean of the log-normal variable, > 0.
        sigma: its standard deviation, > 0 (also spelled `sd=`:
            `ep.LogNormal(mean=3.0, sd=0.1)`).

    Examples:
        >>> import eqxpurify as ep
        >>> prior = ep.LogNormal(3.0, 0.1)  # mean 3, standard deviation 0.1
        >>> ep.Param(2.9, prior=prior)
        Param(2.9, prior=LogNormal(mean=3, sd=0.1))
        >>> ep.zeros(ep.Param(prior=prior))  # z = 0: the median, below the mean
        Param(2.998, prior=LogNormal(mean=3, sd=0.1))
    """

    support = "positive"

    mean: Hyper
    sigma: Hyper

    def __init__(
        self,
        mean: ArrayLike | Hyper,
        sigma: ArrayLike | Hyper | None = None,
        *,
        sd: ArrayLike | Hyper | None = None,
    ):
        if (sigma is None) == (sd is None):
            raise TypeError(
                "`ep.LogNormal(mean, sd)` takes the standard deviation of the "
                "variable once: as `sigma` (the second argument) or as `sd=`. For "
                "numpyro's meaning (`loc`, `scale` of the log), use "
                "`ep.LogNormal.from_log(loc, scale)`."
            )
        sigma = sd if sigma is None else sigma
        self.mean = positive(to_hyper(mean, "mean", "LogNormal"), "mean", "LogNormal")
        self.sigma = positive(
            to_hyper(sigma, "sigma", "LogNormal"), "sigma", "LogNormal"
        )
        broadcastable("LogNormal", mean=self.mean, sigma=self.sigma)
        mean_now, sigma_now = current(self.mean), current(self.sigma)
        if mean_now is None or sigma_now is None:
            return
        dtype = compute_dtype(self.mean.dtype)
        _, s = self._log_params(dtype)
        message = (
            "`LogNormal(mean, sigma)`: `sigma / mean` is too extreme for "
            f"{dtype} (the log-scale sd overflows or vanishes); got "
            f"mean={describe(mean_now)}, sigma={describe(sigma_now)}. Use a "
            "wider dtype or a less extreme ratio."
        )
        if is_traced(s):
            failed = ~jnp.all(jnp.isfinite(s) & (s > 0))
            self.mean, self.sigma = check_jointly(
                (self.sigma, self.mean), [(failed, message)]
            )[::-1]
            return
        s = np.asarray(s)
        if not np.all(np.isfinite(s) & (s > 0)):
            raise ValueError(message)

    @classmethod
    def from_log(cls, loc: ArrayLike | Hyper, scale: ArrayLike | Hyper) -> "LogNormal":
        """The log-normal with `log(x) ~ Normal(loc, scale)` (numpyro, Stan, scipy).

        The prior is stored by the mean and sd of the variable itself,
        `mean = exp(loc + scale**2 / 2)` and `sd = mean * sqrt(exp(scale**2) - 1)`,
        so `loc` and `scale` must be numbers or arrays. For hyperparameters of the
        log that are Params, use `ep.Dist(numpyro.distributions.LogNormal,
        loc=..., scale=...)`.

        Examples:
            >>> import eqxpurify as ep
            >>> ep.LogNormal.from_log(0.0, 1.0)  # the standard log-normal
            LogNormal(mean=1.649, sd=2.161)
        """
        for name, x in (("loc", loc), ("scale", scale)):
            if isinstance(x, Param | Fixed):
                raise TypeError(
                    f"`ep.LogNormal.from_log({name}=...)` must be a number or an "
                    "array. For a hierarchical log-normal in log space, use "
                    "`ep.Dist(numpyro.distributions.LogNormal, loc=..., scale=...)`."
                )
        loc_h, scale_h = (
            to_hyper(loc, "loc", "LogNormal.from_log"),
            to_hyper(scale, "scale", "LogNormal.from_log"),
        )
        finite(loc_h, "loc", "LogNormal.from_log")
        positive(scale_h, "scale", "LogNormal.from_log")
        mu, s = loc_h.value, scale_h.value
        s2 = jnp.square(s.astype(compute_dtype(s.dtype)))
        mean = jnp.exp(mu + 0.5 * s2)
        return cls(mean, sd=mean * jnp.sqrt(jnp.expm1(s2)))

    def repr_parts(self) -> tuple[str, list[tuple[str | None, Any]]]:
        """Printed with keywords, so it is never read as numpyro's `(loc, scale)`."""
        return "LogNormal", [("mean", self.mean), ("sd", self.sigma)]

    def _log_params(self, dtype: np.dtype) -> tuple[Array, Array]:
        mean = value_in(self.mean, dtype)
        var = jnp.log1p(jnp.square(value_in(self.sigma, dtype) / mean))
        return jnp.log(mean) - 0.5 * var, jnp.sqrt(var)

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = compute(z)
        mu, s = self._log_params(ct)
        return jnp.exp(mu + s * zc).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        mu, s = self._log_params(ct)
        return ((jnp.log(xc) - mu) / s).astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        mu, s = self._log_params(ct)
        pos = xc > 0
        logx = jnp.log(jnp.where(pos, xc, 1))
        lp = -0.5 * jnp.square((logx - mu) / s) - jnp.log(s) - logx - 0.5 * LOG_2PI
        return jnp.where(pos, lp, -jnp.inf)


def _uniform_checked(low: Hyper, high: Hyper) -> tuple[Hyper, Hyper]:
    """`low < high` and a finite width, now or (traced) at run time."""
    lo, hi = current(low), current(high)
    if lo is None or hi is None:
        return low, high
    dtype = compute_dtype(np.result_type(lo.dtype, hi.dtype))

    def messages(lo_text: str, hi_text: str) -> tuple[str, str]:
        got = f"got low={lo_text}, high={hi_text}."
        return (
            f"`Uniform(low, high)` needs low < high; {got} Swap or widen the bounds.",
            f"`Uniform(low, high)`: `high - low` overflows {dtype}; {got} "
            "Narrow the bounds or use float64.",
        )

    if is_traced(lo, hi):
        lo_t, hi_t = jnp.asarray(lo, dtype), jnp.asarray(hi, dtype)
        order, width = messages(describe(lo), describe(hi))
        checks = [
            (~jnp.all(hi_t > lo_t), order),
            (~jnp.all(jnp.isfinite(hi_t - lo_t)), width),
        ]
        high, low = check_jointly((high, low), checks)
        return low, high
    lo_h, hi_h = np.asarray(lo, dtype), np.asarray(hi, dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        width_h = hi_h - lo_h
    order, width = messages(describe(lo_h), describe(hi_h))
    if not np.all(hi_h > lo_h):
        raise ValueError(order)
    if not np.all(np.isfinite(width_h)):
        raise ValueError(width)
    return low, high


class Uniform(AbstractPrior):
    """Uniform prior on `(low, high)` through the standard normal CDF.

    `x = low + (high - low) * Phi(z)`, evaluated from whichever end is nearer so
    that both tails keep full precision. A value that rounds onto a bound (large
    `|z|` in low precision) maps back to a finite latent.

    Arguments:
        low: lower bound.
        high: upper bound, > `low`, with `high - low` finite in its dtype.

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> prior = ep.Uniform(0.0, 10.0)
        >>> ep.Param(jnp.array([1.0, 5.0]), prior=prior)
        Param([1, 5], prior=Uniform(0, 10))
        >>> round(float(prior.log_prob(jnp.array(3.0))), 4)  # -log(10)
        -2.3026
    """

    support = "interval"

    low: Hyper
    high: Hyper

    def __init__(self, low: ArrayLike | Hyper, high: ArrayLike | Hyper):
        low_ = finite(to_hyper(low, "low", "Uniform"), "low", "Uniform")
        high_ = finite(to_hyper(high, "high", "Uniform"), "high", "Uniform")
        broadcastable("Uniform", low=low_, high=high_)
        self.low, self.high = _uniform_checked(low_, high_)

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = compute(z)
        low, high = value_in(self.low, ct), value_in(self.high, ct)
        width = high - low
        x = jnp.where(zc < 0, low + width * ndtr(zc), high - width * ndtr(-zc))
        return x.astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        low, high = value_in(self.low, ct), value_in(self.high, ct)
        width = high - low
        # In a dtype narrower than `ct`, the bounds themselves round: a value on
        # the rounded bound (possibly just outside the exact one) is the bound.
        low_r, high_r = low.astype(x.dtype).astype(ct), high.astype(x.dtype).astype(ct)
        outside = (xc < jnp.minimum(low, low_r)) | (xc > jnp.maximum(high, high_r))
        u_low = jnp.clip((xc - low) / width, 0, 1)
        u_high = jnp.clip((high - xc) / width, 0, 1)
        lower = u_low < 0.5
        # Out of support stays NaN; onto a bound stays finite.
        # The branch not taken gets a harmless argument so its gradient stays finite.
        z = jnp.where(
            lower,
            ndtri(open_interval(jnp.where(lower, u_low, 0.5))),
            -ndtri(open_interval(jnp.where(lower, 0.5, u_high))),
        )
        return jnp.where(outside, jnp.nan, z).astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        low, high = value_in(self.low, ct), value_in(self.high, ct)
        inside = (xc >= low) & (xc <= high)
        return jnp.where(inside, -jnp.log(high - low), -jnp.inf)
