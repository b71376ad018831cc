"""The built-in priors: bijections from a standard normal, and their densities.

Each hyperparameter is an `ep.Fixed` (a constant, stored so that no optimiser
sees it) or an `ep.Param` (a hierarchical prior: the hyperparameter is itself
a whitened latent). Numbers and arrays given to a constructor become `ep.Fixed`.
Every map is evaluated in at least float32 and from the nearer tail, so both
tails keep their precision over `z` in [-8, 8].
"""

import functools
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfc, erfinv, log_ndtr, ndtr, ndtri
from jaxtyping import Array, ArrayLike, Float

from ._abstract_prior import AbstractPrior
from ._flat import compute_dtype, is_traced
from ._wrappers import Fixed, Param, is_wrapper

__all__ = [
    "Exponential",
    "HalfCauchy",
    "HalfNormal",
    "LogNormal",
    "Normal",
    "Uniform",
    "standard_normal",
    "standard_normal_logpdf_constant",
]

Hyper = Fixed | Param
_LOG_2PI = math.log(2 * math.pi)


def standard_normal_logpdf_constant() -> float:
    """`-0.5 * log(2 pi)`, the per-element constant of the standard normal density."""
    return -0.5 * _LOG_2PI


@functools.cache
def standard_normal() -> "Normal":
    """The default prior, shared by every Param that names none.

    Built concretely even when first asked for inside `jax.jit`, so the cached
    instance never holds a tracer.
    """
    with jax.ensure_compile_time_eval():
        return Normal(0.0, 1.0)


# --------------------------------------------------------------------------------
# Hyperparameters: conversion and validation.


def _describe(arr: Any) -> str:
    if is_traced(arr):
        return "a traced value"
    host = np.asarray(arr)
    return str(host.tolist()) if host.size <= 8 else f"an array of shape {host.shape}"


def _hyper(value: Any, name: str, owner: str) -> Hyper:
    """A hyperparameter as a wrapper: Params and Fixed kept, numbers made Fixed.

    Integers become JAX's default float through float64 on the host, so a large
    Python int (`2**40`) needs no int64; booleans are refused.
    """
    if isinstance(value, Param | Fixed):
        if not jnp.issubdtype(value.dtype, jnp.floating):
            raise TypeError(
                f"`{owner}({name}=...)` must be floating, got an `ep."
                f"{type(value).__name__}` of dtype {value.dtype}."
            )
        return value
    if value is None or isinstance(value, str | bytes) or not _array_like(value):
        raise TypeError(
            f"`{owner}({name}=...)` must be a number, an array, an `ep.Fixed` or an "
            f"`ep.Param` (for a hierarchical prior), got {type(value).__name__}."
        )
    if isinstance(value, jax.Array):
        arr, host = value, None
    else:
        host = np.asarray(value)
        if host.dtype == object:
            raise TypeError(
                f"`{owner}({name}=...)` must be a number, an array, an `ep.Fixed` or "
                f"an `ep.Param` (for a hierarchical prior), got {type(value).__name__}"
                " of other objects."
            )
        arr = host
    if arr.dtype == np.bool_:
        raise TypeError(
            f"`{owner}({name}=...)` must be a real number, got a bool ({value!r}). "
            "Pass a float."
        )
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"`{owner}({name}=...)` must be real, got {arr.dtype}.")
    if host is None:
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            arr = arr.astype(jax.dtypes.canonicalize_dtype(float))
        return Fixed(arr)
    if not jnp.issubdtype(host.dtype, jnp.floating):
        host = host.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        arr = host.astype(jax.dtypes.canonicalize_dtype(host.dtype))
    if np.any(np.isfinite(host) & ~np.isfinite(arr)):
        raise ValueError(
            f"`{owner}({name}=...)` overflows {arr.dtype}; got {_describe(host)}. Pass "
            "a smaller value, or enable float64 (`jax.config.update("
            '"jax_enable_x64", True)`).'
        )
    return Fixed(arr)


def _array_like(value: Any) -> bool:
    return isinstance(value, int | float | np.ndarray | np.generic | jax.Array) or (
        isinstance(value, list | tuple) and len(value) > 0
    )


def _current(h: Hyper) -> Any:
    """The value of a hyperparameter now (None when not concrete)."""
    if h.is_abstract:
        return None
    if isinstance(h, Param) and (is_traced(h.latent) or _has_tracer(h.prior)):
        return h.value  # traced: checked at run time
    if isinstance(h, Fixed) and is_traced(h.stored):
        return h.value
    from ._wrappers import value_of

    return value_of(h)


def _has_tracer(tree: Any) -> bool:
    return any(is_traced(leaf) for leaf in jax.tree.leaves(tree))


def _validate(h: Hyper, bad: Any, message: str) -> Hyper:
    """Raise `message` where `bad(value)` holds for the hyperparameter's value.

    The check runs now if the value is concrete, and at run time (`eqx.error_if`)
    if it was built under a trace.
    """
    x = _current(h)
    if x is None:
        return h
    if is_traced(x):
        if isinstance(h, Fixed):
            text = message.replace("{value}", "a traced value")
            return Fixed(eqx.error_if(x, bad(x), text), prior=h.prior)
        return h  # a traced Param's value is its prior's business
    host = np.asarray(x, dtype=np.float64 if x.dtype.itemsize >= 8 else np.float32)
    if np.any(bad(host)):
        raise ValueError(message.replace("{value}", _describe(host)))
    return h


def _finite(h: Hyper, name: str, owner: str) -> Hyper:
    return _validate(
        h,
        lambda x: ~jnp.isfinite(x) if is_traced(x) else ~np.isfinite(x),
        f"`{owner}({name}=...)` must be finite (not NaN or inf); got {{value}}.",
    )


def _positive(h: Hyper, name: str, owner: str) -> Hyper:
    hint = (
        " A hierarchical scale needs a positive prior such as `ep.HalfNormal`, "
        "`ep.HalfCauchy`, `ep.LogNormal` or `ep.Exponential`."
        if isinstance(h, Param)
        else ""
    )
    return _validate(
        h,
        lambda x: ~((x > 0) & (jnp.isfinite(x) if is_traced(x) else np.isfinite(x))),
        f"`{owner}({name}=...)` must be finite and > 0; got {{value}}. Pass a "
        f"positive `{name}`.{hint}",
    )


def _check_jointly(
    hypers: tuple[Hyper, ...], checks: list[tuple[Any, str]]
) -> tuple[Hyper, ...]:
    """Checks between traced hyperparameters, at run time (`eqx.error_if`).

    Each check is `(failed, message)` with `failed` a traced boolean. They are
    attached to the first constant (`ep.Fixed`) hyperparameter, whose value every
    use of the prior reads; when all are Params, their priors own the checks.
    """
    out = list(hypers)
    for k, h in enumerate(hypers):
        if isinstance(h, Fixed):
            x = _current(h)
            for failed, message in checks:
                x = eqx.error_if(x, failed, message)
            out[k] = Fixed(x, prior=h.prior)
            break
    return tuple(out)


def _broadcastable(owner: str, **hypers: Hyper) -> None:
    shapes = {name: h.shape for name, h in hypers.items()}
    try:
        jnp.broadcast_shapes(*shapes.values())
    except ValueError:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(
            f"`{owner}` hyperparameters of shapes {listed} do not broadcast together. "
            "Give them the same shape, or make one a scalar."
        ) from None


def _v(h: Hyper, dtype: np.dtype) -> Array:
    """A hyperparameter's value in the compute dtype."""
    return h.value.astype(dtype)


def _ct(x: Array) -> tuple[np.dtype, Array]:
    ct = compute_dtype(x.dtype)
    return ct, x.astype(ct)


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

    mean: Hyper
    sigma: Hyper

    def __init__(self, mean: ArrayLike | Hyper = 0.0, sigma: ArrayLike | Hyper = 1.0):
        self.mean = _finite(_hyper(mean, "mean", "Normal"), "mean", "Normal")
        self.sigma = _positive(_hyper(sigma, "sigma", "Normal"), "sigma", "Normal")
        _broadcastable("Normal", mean=self.mean, sigma=self.sigma)

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = _ct(z)
        return (_v(self.mean, ct) + _v(self.sigma, ct) * zc).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = _ct(x)
        return ((xc - _v(self.mean, ct)) / _v(self.sigma, ct)).astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = _ct(x)
        sigma = _v(self.sigma, ct)
        u = (xc - _v(self.mean, ct)) / sigma
        return -0.5 * jnp.square(u) - jnp.log(sigma) - 0.5 * _LOG_2PI


class LogNormal(AbstractPrior):
    """Log-normal prior parameterised by the mean and sd of the variable itself.

    `x = exp(mu + s * z)` with `s**2 = log(1 + sigma**2 / mean**2)` and
    `mu = log(mean) - s**2 / 2`, so that `E[x] = mean` and `sd[x] = sigma`.

    Arguments:
        mean: the mean of the log-normal variable, > 0.
        sigma: its standard deviation, > 0.

    Examples:
        >>> import eqxpurify as ep
        >>> prior = ep.LogNormal(3.0, 0.1)  # mean 3, standard deviation 0.1
        >>> ep.Param(2.9, prior=prior)
        Param(2.9, prior=LogNormal(3, 0.1))
        >>> ep.zeros(ep.Param(prior=prior))  # z = 0: the median, below the mean
        Param(2.998, prior=LogNormal(3, 0.1))
    """

    mean: Hyper
    sigma: Hyper

    def __init__(self, mean: ArrayLike | Hyper, sigma: ArrayLike | Hyper):
        self.mean = _positive(_hyper(mean, "mean", "LogNormal"), "mean", "LogNormal")
        self.sigma = _positive(
            _hyper(sigma, "sigma", "LogNormal"), "sigma", "LogNormal"
        )
        _broadcastable("LogNormal", mean=self.mean, sigma=self.sigma)
        mean_now, sigma_now = _current(self.mean), _current(self.sigma)
        if mean_now is None or sigma_now is None:
            return
        dtype = compute_dtype(self.mean.dtype)
        _, s = self._log_params(dtype)
        message = (
            "`LogNormal(mean, sigma)`: `sigma / mean` is too extreme for "
            f"{dtype} (the log-scale sd overflows or vanishes); got "
            f"mean={_describe(mean_now)}, sigma={_describe(sigma_now)}. Use a "
            "wider dtype or a less extreme ratio."
        )
        if is_traced(s):
            failed = ~jnp.all(jnp.isfinite(s) & (s > 0))
            self.mean, self.sigma = _check_jointly(
                (self.sigma, self.mean), [(failed, message)]
            )[::-1]
            return
        s = np.asarray(s)
        if not np.all(np.isfinite(s) & (s > 0)):
            raise ValueError(message)

    def _log_params(self, dtype: np.dtype) -> tuple[Array, Array]:
        mean = _v(self.mean, dtype)
        var = jnp.log1p(jnp.square(_v(self.sigma, dtype) / mean))
        return jnp.log(mean) - 0.5 * var, jnp.sqrt(var)

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = _ct(z)
        mu, s = self._log_params(ct)
        return jnp.exp(mu + s * zc).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = _ct(x)
        mu, s = self._log_params(ct)
        return ((jnp.log(xc) - mu) / s).astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = _ct(x)
        mu, s = self._log_params(ct)
        pos = xc > 0
        logx = jnp.log(jnp.where(pos, xc, 1))
        lp = -0.5 * jnp.square((logx - mu) / s) - jnp.log(s) - logx - 0.5 * _LOG_2PI
        return jnp.where(pos, lp, -jnp.inf)


def _open_interval(u: Array) -> Array:
    """Keep a probability away from 0, where `ndtri` is infinite.

    So a value that rounded onto a bound maps back to a finite latent (that maps
    onto the bound).
    """
    return jnp.maximum(u, jnp.finfo(u.dtype).tiny)


def _uniform_checked(low: Hyper, high: Hyper) -> tuple[Hyper, Hyper]:
    """`low < high` and a finite width, now or (traced) at run time."""
    lo, hi = _current(low), _current(high)
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
        order, width = messages(_describe(lo), _describe(hi))
        checks = [
            (~jnp.all(hi_t > lo_t), order),
            (~jnp.all(jnp.isfinite(hi_t - lo_t)), width),
        ]
        high, low = _check_jointly((high, low), checks)
        return low, high
    lo_h, hi_h = np.asarray(lo, dtype), np.asarray(hi, dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        width_h = hi_h - lo_h
    order, width = messages(_describe(lo_h), _describe(hi_h))
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

    low: Hyper
    high: Hyper

    def __init__(self, low: ArrayLike | Hyper, high: ArrayLike | Hyper):
        low_ = _finite(_hyper(low, "low", "Uniform"), "low", "Uniform")
        high_ = _finite(_hyper(high, "high", "Uniform"), "high", "Uniform")
        _broadcastable("Uniform", low=low_, high=high_)
        self.low, self.high = _uniform_checked(low_, high_)

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = _ct(z)
        low, high = _v(self.low, ct), _v(self.high, ct)
        width = high - low
        x = jnp.where(zc < 0, low + width * ndtr(zc), high - width * ndtr(-zc))
        return x.astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = _ct(x)
        low, high = _v(self.low, ct), _v(self.high, ct)
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
            ndtri(_open_interval(jnp.where(lower, u_low, 0.5))),
            -ndtri(_open_interval(jnp.where(lower, 0.5, u_high))),
        )
        return jnp.where(outside, jnp.nan, z).astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = _ct(x)
        low, high = _v(self.low, ct), _v(self.high, ct)
        inside = (xc >= low) & (xc <= high)
        return jnp.where(inside, -jnp.log(high - low), -jnp.inf)


def _from_tails(z: Array, low: Any, high: Any) -> Array:
    """`low(z)` for z < 0, `high(z)` otherwise.

    Each branch only ever sees its own half of the line, so the branch not taken
    cannot produce NaN gradients.
    """
    return jnp.where(z < 0, low(jnp.minimum(z, 0)), high(jnp.maximum(z, 0)))


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

    sigma: Hyper

    def __init__(self, sigma: ArrayLike | Hyper = 1.0):
        self.sigma = _positive(
            _hyper(sigma, "sigma", "HalfNormal"), "sigma", "HalfNormal"
        )

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = _ct(z)
        root2 = jnp.sqrt(jnp.asarray(2.0, ct))
        x = _from_tails(
            zc,
            lambda lo: root2 * erfinv(ndtr(lo)),
            lambda hi: -ndtri(0.5 * ndtr(-hi)),
        )
        return (_v(self.sigma, ct) * x).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = _ct(x)
        y = xc / _v(self.sigma, ct)
        r2 = jnp.sqrt(jnp.asarray(2.0, ct))
        z = _to_tails(
            y,
            y < 0.6744897501960817,  # the median: Phi^-1(3/4)
            lambda lo: ndtri(_open_interval(jax.lax.erf(lo / r2))),
            lambda hi: -ndtri(_open_interval(erfc(hi / r2))),
            safe=1.0,
        )
        return z.astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = _ct(x)
        sigma = _v(self.sigma, ct)
        lp = (
            math.log(2.0)
            - 0.5 * jnp.square(xc / sigma)
            - jnp.log(sigma)
            - 0.5 * _LOG_2PI
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

    scale: Hyper

    def __init__(self, scale: ArrayLike | Hyper = 1.0):
        self.scale = _positive(
            _hyper(scale, "scale", "HalfCauchy"), "scale", "HalfCauchy"
        )

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = _ct(z)
        half_pi = jnp.asarray(0.5 * math.pi, ct)
        x = _from_tails(
            zc,
            lambda lo: jnp.tan(half_pi * ndtr(lo)),
            lambda hi: 1 / jnp.tan(half_pi * ndtr(-hi)),
        )
        return (_v(self.scale, ct) * x).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = _ct(x)
        y = xc / _v(self.scale, ct)
        two_over_pi = jnp.asarray(2 / math.pi, ct)
        z = _to_tails(
            y,
            y < 1,  # the median
            lambda lo: ndtri(_open_interval(two_over_pi * jnp.arctan(lo))),
            lambda hi: -ndtri(_open_interval(two_over_pi * jnp.arctan(1 / hi))),
            safe=1.0,
        )
        return z.astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = _ct(x)
        scale = _v(self.scale, ct)
        lp = math.log(2 / math.pi) - jnp.log(scale) - jnp.log1p(jnp.square(xc / scale))
        return jnp.where(xc >= 0, lp, -jnp.inf)


def _median_overflows(rate: Any) -> Any:
    """Where `log(2) / rate`, the median of an Exponential, is not finite."""
    if is_traced(rate):
        return ~jnp.isfinite(math.log(2.0) / rate)
    with np.errstate(over="ignore", divide="ignore"):
        return ~np.isfinite(math.log(2.0) / rate)


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

    rate: Hyper

    def __init__(self, rate: ArrayLike | Hyper = 1.0):
        rate_ = _positive(_hyper(rate, "rate", "Exponential"), "rate", "Exponential")
        self.rate = _validate(
            rate_,
            _median_overflows,
            "`Exponential(rate=...)` is so small that the median `log(2) / rate` "
            f"overflows {compute_dtype(rate_.dtype)} (every value would be inf); got "
            "{value}. Pass a larger `rate`, or use float64.",
        )

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = _ct(z)
        x = _from_tails(zc, lambda lo: -jnp.log1p(-ndtr(lo)), lambda hi: -log_ndtr(-hi))
        return (x / _v(self.rate, ct)).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = _ct(x)
        y = xc * _v(self.rate, ct)
        z = _to_tails(
            y,
            y < math.log(2.0),  # the median
            lambda lo: ndtri(_open_interval(-jnp.expm1(-lo))),
            lambda hi: -ndtri(_open_interval(jnp.exp(-hi))),
            safe=math.log(2.0),
        )
        return z.astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = _ct(x)
        rate = _v(self.rate, ct)
        return jnp.where(xc >= 0, jnp.log(rate) - rate * xc, -jnp.inf)


def is_prior(x: Any) -> bool:
    return isinstance(x, AbstractPrior)


def has_params(prior: Any) -> bool:
    """Whether a prior holds a Param anywhere (a hierarchical prior)."""
    return any(
        isinstance(leaf, Param) for leaf in jax.tree.leaves(prior, is_leaf=is_wrapper)
    )
