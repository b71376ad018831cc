"""`check_prior`: test that a custom prior's three methods agree."""

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ._abstract_prior import AbstractPrior

__all__ = ["PriorCheck", "check_prior"]

# Gauss-Legendre nodes per interval between sorted draws, for the integral of the
# density; exact for polynomials of degree 15, ample between neighbouring draws.
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)


@dataclasses.dataclass(frozen=True)
class PriorCheck:
    """What `ep.check_prior` measured (returned when every check passed).

    Attributes:
        jacobian_error: the largest `|log_prob(forward(z)) + log|dforward/dz| -
            log N(z; 0, 1)|` over the grid and the draws.
        round_trip_error: the largest `|inverse(forward(z)) - z|`.
        inverse_jacobian_error: the largest `|log|dforward/dz| +
            log|dinverse/dx||`.
        kuiper: Kuiper's statistic between the draws `forward(z)` and the CDF
            integrated from `exp(log_prob)`.
        p_value: its asymptotic p-value.
        n: the number of draws.
    """

    jacobian_error: float
    round_trip_error: float
    inverse_jacobian_error: float
    kuiper: float
    p_value: float
    n: int


@jax.jit
def _log_prob(prior: AbstractPrior, x: Any) -> Any:
    return prior.log_prob(x)


def _kuiper_p_value(v: float, n: int) -> float:
    """P(V > v) for Kuiper's statistic of `n` draws (Stephens' approximation)."""
    lam = (math.sqrt(n) + 0.155 + 0.24 / math.sqrt(n)) * v
    if lam < 0.4:
        return 1.0
    total = sum(
        (4 * j * j * lam * lam - 1) * math.exp(-2 * j * j * lam * lam)
        for j in range(1, 101)
    )
    return float(min(max(2 * total, 0.0), 1.0))


def _check(
    name: str,
    what: str,
    z: np.ndarray,
    ok: np.ndarray,
    excess: np.ndarray,
    detail: Callable[[int], str],
) -> None:
    """Raise `what` unless `ok` holds everywhere, at the point of largest `excess`.

    A NaN excess is the largest; `detail(i)` describes the flat index `i` there.
    """
    if np.all(ok):
        return
    i = int(np.nanargmax(np.where(np.isnan(excess), np.inf, excess)))
    raise ValueError(
        f"`check_prior({name})`: {what} at z={float(z.flat[i]):.6g}: " + detail(i)
    )


def check_prior(
    prior: AbstractPrior,
    *,
    key: PRNGKeyArray,
    n: int = 20_000,
    alpha: float = 1e-4,
    z_max: float = 5.0,
    atol: float | None = None,
) -> PriorCheck:
    """Check that a prior's `forward`, `inverse` and `log_prob` agree.

    Four checks, each on a grid of `z` in `[-z_max, z_max]` and on `n` standard
    normal draws (with the prior's batch shape):

    1. The change of variables, pointwise and exact: `log_prob(forward(z)) +
       log|dforward/dz|` must equal the standard normal log density of `z`. A
       `log_prob` that is not normalised, or a `forward` that pushes `N(0, 1)` to
       another distribution, fails here.
    2. `inverse(forward(z)) == z`, to `atol` plus the resolution of `x` itself.
    3. The log-Jacobians: `log|dforward/dz| + log|dinverse/dx| == 0`.
    4. A statistical test of (1) that uses `log_prob` alone: Kuiper's statistic
       between the draws `forward(z)` and the CDF obtained by integrating
       `exp(log_prob)` between neighbouring draws (Gauss-Legendre). Kuiper's
       statistic ignores the unknown CDF below the smallest draw. It fails when
       its p-value is below `alpha`; a Kuiper distance of `5 / sqrt(n)` (0.035
       for the default `n`) or more is flagged with probability above 0.999.

    The prior must act elementwise (every built-in prior does).

    **Arguments:**

    - `prior`: the prior to check (an `ep.AbstractPrior`).
    - `key`: a PRNG key for the draws.
    - `n`: the number of draws.
    - `alpha`: the significance level of the statistical test.
    - `z_max`: the half-width of the grid of latents.
    - `atol`: the tolerance of checks 1-3 (default 1e-7 in float64, 2e-3 in
      float32, the dtype of JAX's default float).

    **Returns:** a `PriorCheck` with the errors and the statistic measured.

    **Raises:** `ValueError` naming the check that failed, the `z` where it
    failed worst and the numbers.

    Examples:
        >>> import jax, eqxpurify as ep
        >>> report = ep.check_prior(ep.Gamma(2.0, 3.0), key=jax.random.key(0))
        >>> report.p_value > 1e-4
        True
        >>> class Wrong(ep.AbstractPrior):  # log_prob misses the 1/2
        ...     def forward(self, z):
        ...         return 2.0 * z
        ...     def inverse(self, x):
        ...         return x / 2.0
        ...     def log_prob(self, x):
        ...         return jax.scipy.stats.norm.logpdf(x / 2.0)
        >>> ep.check_prior(Wrong(), key=jax.random.key(0))
        Traceback (most recent call last):
        ...
        ValueError: `check_prior(Wrong)`: the change of variables fails at z=...
    """
    if not isinstance(prior, AbstractPrior):
        raise TypeError(
            f"`check_prior(prior)` needs an `ep.AbstractPrior`, got "
            f"{type(prior).__name__}."
        )
    name = type(prior).__name__
    dtype = jnp.dtype(jax.dtypes.canonicalize_dtype(float))
    x64 = dtype.itemsize >= 8
    atol = (1e-7 if x64 else 2e-3) if atol is None else atol
    eps = float(jnp.finfo(dtype).eps)
    batch = tuple(prior.batch_shape)

    grid = jnp.linspace(-z_max, z_max, 201, dtype=dtype)
    grid = jnp.broadcast_to(grid.reshape(201, *([1] * len(batch))), (201, *batch))
    draws = jax.random.normal(key, (n, *batch), dtype)
    z = jnp.concatenate([grid, draws])

    @jax.jit
    def evaluate(prior: Any, z: Any) -> tuple:
        x, dx = jax.jvp(prior.forward, (z,), (jnp.ones_like(z),))
        back, dback = jax.jvp(prior.inverse, (x,), (jnp.ones_like(x),))
        lp = prior.log_prob(x)
        return x, jnp.log(jnp.abs(dx)), back, jnp.log(jnp.abs(dback)), lp

    x, log_dx, back, log_dback, lp = (np.asarray(v) for v in evaluate(prior, z))
    zh = np.asarray(z)
    if not np.all(np.isfinite(x)):
        bad = ~np.isfinite(x)
        raise ValueError(
            f"`check_prior({name})`: `forward` is not finite at "
            f"z={float(zh[bad].flat[0]):.6g} (got {x[bad].flat[0]}). A prior maps "
            "every latent to a finite value; lower `z_max` if its tail overflows."
        )

    # 1. The change of variables.
    expected = -0.5 * zh**2 - 0.5 * math.log(2 * math.pi)
    got = lp + log_dx
    err1 = np.abs(got - expected)
    tol1 = atol * (1 + np.abs(expected))
    _check(
        name,
        "the change of variables fails",
        zh,
        err1 <= tol1,
        err1 - tol1,
        lambda i: (
            f"log_prob(forward(z)) + log|dforward/dz| = {got.flat[i]:.6g}, "
            f"but the standard normal log density is {expected.flat[i]:.6g}. `forward` "
            "does not push N(0, 1) to the density of `log_prob` (or `log_prob` is not "
            "normalised)."
        ),
    )

    # 2. The round trip, as exact as the value `x` determines `z`.
    err2 = np.abs(back - zh)
    tol2 = atol + 4 * eps * np.abs(x) / np.exp(log_dx)
    _check(
        name,
        "`inverse` does not undo `forward`",
        zh,
        err2 <= tol2,
        err2 - tol2,
        lambda i: (
            f"inverse(forward(z)) = {back.flat[i]:.6g} (forward(z) = {x.flat[i]:.6g})."
        ),
    )

    # 3. The log-Jacobians of the two directions cancel.
    err3 = np.abs(log_dx + log_dback)
    _check(
        name,
        "the log-Jacobians of `forward` and `inverse` do not cancel",
        zh,
        err3 <= atol * (1 + np.abs(log_dx)),
        err3,
        lambda i: (
            f"log|dforward/dz| = {log_dx.flat[i]:.6g}, log|dinverse/dx| = "
            f"{log_dback.flat[i]:.6g}."
        ),
    )

    # 4. Kuiper's test on the draws, for each element of the batch.
    xs = np.sort(x[len(grid) :], axis=0)
    mid, half = 0.5 * (xs[1:] + xs[:-1]), 0.5 * (xs[1:] - xs[:-1])
    expand = (-1,) + (1,) * mid.ndim
    nodes = mid + half * _GL_NODES.reshape(expand)
    dens = np.exp(np.asarray(_log_prob(prior, jnp.asarray(nodes, dtype))))
    mass = half * np.sum(_GL_WEIGHTS.reshape(expand) * dens, axis=0)
    cdf = np.concatenate([np.zeros_like(mass[:1]), np.cumsum(mass, axis=0)])
    ranks = np.arange(n).reshape((n,) + (1,) * len(batch))
    kuiper = np.max((ranks + 1) / n - cdf, axis=0) + np.max(cdf - ranks / n, axis=0)
    v = float(np.max(kuiper))
    p_value = _kuiper_p_value(v, n)
    if not p_value >= alpha:
        raise ValueError(
            f"`check_prior({name})`: the draws `forward(z)`, z ~ N(0, 1), do not "
            f"follow `exp(log_prob)`: Kuiper's statistic is {v:.4g} over {n} draws "
            f"(p = {p_value:.3g} < alpha = {alpha:g}). `forward` and `log_prob` "
            "describe different distributions."
        )
    return PriorCheck(
        jacobian_error=float(np.max(err1)),
        round_trip_error=float(np.max(err2)),
        inverse_jacobian_error=float(np.max(err3)),
        kuiper=v,
        p_value=p_value,
        n=n,
    )
