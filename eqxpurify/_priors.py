"""Priors: bijections that push a standard-normal latent to a physical value.

Every prior is an `eqx.Module` whose hyperparameters are array leaves, so equal
priors have equal tree structure (rebuilding a model never recompiles) and
hyperparameters may be arrays that broadcast against the Param's shape.
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri
from jaxtyping import Array, ArrayLike, Float

from ._flat import compute_dtype, is_traced

__all__ = ["AbstractPrior", "LogNormal", "Normal", "Uniform"]


def _hyper(value: ArrayLike, name: str, owner: str) -> Array:
    """Convert a hyperparameter to a (non-weak) floating array."""
    try:
        arr = jnp.asarray(value)
    except TypeError as e:
        raise TypeError(
            f"`{owner}({name}=...)` must be a number or an array, got "
            f"{type(value).__name__}."
        ) from e
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jax.dtypes.canonicalize_dtype(float))
    return jnp.asarray(arr, dtype=arr.dtype)  # drops weak typing


def _check(arr: Array, bad: ArrayLike, message: str) -> Array:
    """Raise `message` where `bad` holds: at once if concrete, at run time if traced."""
    if is_traced(bad):
        return eqx.error_if(arr, bad, message)
    if np.any(np.asarray(bad)):
        raise ValueError(message)
    return arr


def _broadcastable(owner: str, **arrays: Array) -> None:
    """Hyperparameters must broadcast against each other."""
    shapes = {name: jnp.shape(a) for name, a in arrays.items()}
    try:
        jnp.broadcast_shapes(*shapes.values())
    except ValueError:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(
            f"`{owner}` hyperparameters of shapes {listed} do not broadcast together. "
            "Give them the same shape, or make one a scalar."
        ) from None


def _positive(arr: Array, name: str, owner: str) -> Array:
    return _check(
        arr,
        ~(arr > 0),
        f"`{owner}({name}=...)` must be > 0 (and not NaN); got {_show(arr)}. "
        f"Pass a positive `{name}`.",
    )


def _show(arr: Array) -> str:
    if is_traced(arr):
        return "a traced value"
    host = np.asarray(arr)
    return str(host.tolist()) if host.size <= 8 else f"an array of shape {host.shape}"


class AbstractPrior(eqx.Module):
    """A bijection from a standard-normal latent `z` to a physical value `x`.

    Subclass it to define your own prior: implement `forward` (z -> x) and
    `inverse` (x -> z) as methods, and store hyperparameters as array fields.
    Methods live on the class, so rebuilding a model with an equal prior never
    recompiles (unlike a lambda stored per instance).

    !!! example

        ```python
        class Exponential(ep.AbstractPrior):
            rate: jax.Array

            def forward(self, z):
                u = jax.scipy.special.ndtr(-z)  # upper tail, stable for large z
                return -jnp.log(u) / self.rate.astype(z.dtype)

            def inverse(self, x):
                u = jnp.exp(-self.rate.astype(x.dtype) * x)
                return -jax.scipy.special.ndtri(u)
        ```
    """

    @abc.abstractmethod
    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        """Map a standard-normal latent to the physical value."""

    @abc.abstractmethod
    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """Map a physical value back to its standard-normal latent."""

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The broadcast shape of this prior's array hyperparameters."""
        shapes = [jnp.shape(leaf) for leaf in jax.tree.leaves(self)]
        return tuple(jnp.broadcast_shapes(*shapes)) if shapes else ()


class Normal(AbstractPrior):
    """Normal prior: `x = mean + sigma * z`.

    Arguments:
        mean: the mean (scalar or array broadcasting against the Param's shape).
        sigma: the standard deviation, > 0. `ep.Normal(0, 1 / sqrt(fan_in))` makes
            `ep.normal` a LeCun initialisation.
    """

    mean: Array
    sigma: Array

    def __init__(self, mean: ArrayLike = 0.0, sigma: ArrayLike = 1.0):
        self.mean = _hyper(mean, "mean", "Normal")
        self.sigma = _positive(_hyper(sigma, "sigma", "Normal"), "sigma", "Normal")
        _broadcastable("Normal", mean=self.mean, sigma=self.sigma)

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct = compute_dtype(z.dtype)
        x = self.mean.astype(ct) + self.sigma.astype(ct) * z.astype(ct)
        return x.astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct = compute_dtype(x.dtype)
        z = (x.astype(ct) - self.mean.astype(ct)) / self.sigma.astype(ct)
        return z.astype(x.dtype)


class LogNormal(AbstractPrior):
    """Log-normal prior parameterised by the mean and sd of the variable itself.

    `x = exp(mu + s * z)` with `s**2 = log(1 + sigma**2 / mean**2)` and
    `mu = log(mean) - s**2 / 2`, so that `E[x] = mean` and `sd[x] = sigma`.

    Arguments:
        mean: the mean of the log-normal variable, > 0.
        sigma: its standard deviation, > 0.
    """

    mean: Array
    sigma: Array

    def __init__(self, mean: ArrayLike, sigma: ArrayLike):
        self.mean = _positive(_hyper(mean, "mean", "LogNormal"), "mean", "LogNormal")
        self.sigma = _positive(
            _hyper(sigma, "sigma", "LogNormal"), "sigma", "LogNormal"
        )
        _broadcastable("LogNormal", mean=self.mean, sigma=self.sigma)

    def _log_params(self, dtype: jnp.dtype) -> tuple[Array, Array]:
        mean = self.mean.astype(dtype)
        var = jnp.log1p(jnp.square(self.sigma.astype(dtype) / mean))
        return jnp.log(mean) - 0.5 * var, jnp.sqrt(var)

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct = compute_dtype(z.dtype)
        mu, s = self._log_params(ct)
        return jnp.exp(mu + s * z.astype(ct)).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct = compute_dtype(x.dtype)
        mu, s = self._log_params(ct)
        return ((jnp.log(x.astype(ct)) - mu) / s).astype(x.dtype)


class Uniform(AbstractPrior):
    """Uniform prior on `(low, high)` through the standard normal CDF.

    `x = low + (high - low) * Phi(z)`, evaluated from whichever end is nearer so
    that both tails keep full precision.

    Arguments:
        low: lower bound.
        high: upper bound, > `low`.
    """

    low: Array
    high: Array

    def __init__(self, low: ArrayLike, high: ArrayLike):
        low_ = _hyper(low, "low", "Uniform")
        high_ = _hyper(high, "high", "Uniform")
        _broadcastable("Uniform", low=low_, high=high_)
        self.low = low_
        self.high = _check(
            high_,
            ~(high_ > low_),
            f"`Uniform(low, high)` needs low < high; got low={_show(low_)}, "
            f"high={_show(high_)}. Swap or widen the bounds.",
        )

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct = compute_dtype(z.dtype)
        low, high = self.low.astype(ct), self.high.astype(ct)
        zc = z.astype(ct)
        width = high - low
        x = jnp.where(zc < 0, low + width * ndtr(zc), high - width * ndtr(-zc))
        return x.astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct = compute_dtype(x.dtype)
        low, high = self.low.astype(ct), self.high.astype(ct)
        xc = x.astype(ct)
        width = high - low
        u_low = (xc - low) / width
        u_high = (high - xc) / width
        lower = u_low < 0.5
        # The branch not taken gets a harmless argument so its gradient stays finite.
        z = jnp.where(
            lower,
            ndtri(jnp.where(lower, u_low, 0.5)),
            -ndtri(jnp.where(lower, 0.5, u_high)),
        )
        return z.astype(x.dtype)


def standard_normal_logpdf_constant() -> float:
    """`-0.5 * log(2 pi)`, the per-element constant of the standard normal density."""
    return -0.5 * math.log(2 * math.pi)
