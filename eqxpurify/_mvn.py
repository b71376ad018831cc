"""An event-shaped prior: the multivariate normal, covariance from Params.

Its latent is a whole vector (the last axis of the Param), so its log density
is one number per vector (per event), not one per element. The covariance may
be a constant matrix or a module that computes it from Params and Fixed data
(a Gaussian-process kernel on a fixed grid), which makes the prior
hierarchical: the kernel's Params are nested Params like any other.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular
from jaxtyping import Array, ArrayLike, Float

from ._abstract_prior import AbstractPrior
from ._hyper import Hyper, compute, to_hyper, value_in
from ._hyper_checks import finite

__all__ = ["MultivariateNormal"]


class MultivariateNormal(AbstractPrior):
    """Multivariate normal prior: `x = loc + L @ z`, with `L L^T` the covariance.

    Whitened, the latent `z` is a standard-normal vector and `L` the Cholesky
    factor of the covariance; centred (`whiten=False`), the latent is the value
    itself. The density is of the whole vector: `log_prob(x)` gives one number
    per vector along the last axis, and `ep.log_prob` sums them.

    Arguments:
        loc: the mean (a number or a vector; an `ep.Param` for a hierarchy).
        covariance: the covariance matrix, either an array (constant) or an
            `eqx.Module` that, called with no arguments, returns it; a module may
            hold Params (kernel amplitudes, length scales) and Fixed data (the
            grid). Give the Param its shape: `ep.Param(shape=(n,), prior=...)`.
        jitter: added to the diagonal before the Cholesky factorisation.

    Examples:
        >>> import equinox as eqx, jax, jax.numpy as jnp, eqxpurify as ep
        >>> class Kernel(eqx.Module):
        ...     amplitude: ep.Param
        ...     x: ep.Fixed
        ...     @ep.unwrapped
        ...     def __call__(self):
        ...         d = self.x[:, None] - self.x[None, :]
        ...         return self.amplitude**2 * jnp.exp(-0.5 * d**2)
        >>> kernel = Kernel(ep.Param(1.0, prior=ep.LogNormal(1.0, 0.5)),
        ...                 ep.Fixed(jnp.linspace(0.0, 3.0, 4)))
        >>> f = ep.Param(shape=(4,), prior=ep.MultivariateNormal(0.0, kernel))
        >>> f = ep.normal(f, key=jax.random.key(0))
        >>> f.value.shape, ep.log_prob(f).shape
        ((4,), ())
    """

    support = "real"

    loc: Hyper
    covariance: Any
    jitter: float = eqx.field(static=True)

    def __init__(
        self, loc: ArrayLike | Hyper = 0.0, covariance: Any = None, jitter: float = 0.0
    ):
        self.loc = finite(
            to_hyper(loc, "loc", "MultivariateNormal"), "loc", "MultivariateNormal"
        )
        if covariance is None:
            raise TypeError(
                "`MultivariateNormal(loc, covariance)` needs a covariance: a "
                "matrix, or an `eqx.Module` that returns one when called."
            )
        if not isinstance(covariance, eqx.Module):
            covariance = to_hyper(covariance, "covariance", "MultivariateNormal")
            if len(covariance.shape) != 2 or covariance.shape[0] != covariance.shape[1]:
                raise ValueError(
                    "`MultivariateNormal(covariance=...)` must be a square matrix, "
                    f"got shape {covariance.shape}."
                )
        elif not callable(covariance):
            raise TypeError(
                "`MultivariateNormal(covariance=...)`: a module must be callable "
                "with no arguments, returning the matrix; "
                f"`{type(covariance).__name__}` is not callable."
            )
        self.covariance = covariance
        self.jitter = float(jitter)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.loc.shape)

    def _matrix(self, ct: Any) -> Array:
        cov = self.covariance
        matrix = cov() if callable(cov) else cov.value
        matrix = jnp.asarray(matrix).astype(ct)
        if self.jitter:
            matrix = matrix + self.jitter * jnp.eye(matrix.shape[-1], dtype=ct)
        return matrix

    def _check(self, x: Array, matrix: Array) -> None:
        if x.shape[-1:] != matrix.shape[-1:]:
            raise ValueError(
                f"`MultivariateNormal`: a Param of shape {x.shape} under a covariance "
                f"of shape {matrix.shape}: the last axis must have length "
                f"{matrix.shape[-1]}."
            )

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = compute(z)
        matrix = self._matrix(ct)
        self._check(zc, matrix)
        lower = jnp.linalg.cholesky(matrix)
        x = value_in(self.loc, ct) + jnp.einsum("ij,...j->...i", lower, zc)
        return x.astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        matrix = self._matrix(ct)
        self._check(xc, matrix)
        lower = jnp.linalg.cholesky(matrix)
        centred = jnp.broadcast_to(xc - value_in(self.loc, ct), xc.shape)
        flat = centred.reshape(-1, xc.shape[-1]).T
        z = solve_triangular(lower, flat, lower=True).T.reshape(xc.shape)
        return z.astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """The log density of each vector along the last axis (one per event)."""
        ct, xc = compute(x)
        matrix = self._matrix(ct)
        self._check(xc, matrix)
        mean = jnp.broadcast_to(value_in(self.loc, ct), xc.shape)
        return jnp.asarray(jax.scipy.stats.multivariate_normal.logpdf(xc, mean, matrix))
