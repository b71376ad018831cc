"""The centred (unconstrained) parameterisation.

A whitened Param stores `z ~ N(0, 1)` and its value is `prior.forward(z)`. A
centred one stores `u` on the real line and its value is `bijection(u)`, the
bijection from the real line onto the prior's support (`exp` for a positive
prior, a scaled sigmoid for an interval); the density of `u` is then
`prior.log_prob(value) + log|J|`. `ep.Param(prior=p, whiten=False)` wraps `p`
into `ep.Centred(p)`; so does `ep.Param(prior=ep.Flat(...))` (`_improper`).
"""

from typing import Any

import jax.numpy as jnp
from jaxtyping import Array, Float

from ._abstract_prior import AbstractPrior, check_support
from ._hyper import compute

__all__ = ["Centred", "ImproperPriorError", "parameterised"]


class ImproperPriorError(ValueError):
    """A draw was asked of an improper prior (`ep.Flat`)."""


class Centred(AbstractPrior):
    """A prior in the centred (unconstrained) parameterisation.

    The latent `u` lives on the real line and the value is `bijector(u)`, the
    bijection from the real line onto the support of `prior` (the identity for
    `ep.Normal`, `exp` for a positive prior, a scaled sigmoid for `ep.Uniform`,
    numpyro's `biject_to(support)` for an `ep.Dist`). The latent's log density
    (what `ep.log_prior` sums) is `prior.log_prob(value) + log|J|`.

    `ep.Param(prior=p, whiten=False)` builds one; so does `ep.Param(prior=p)`
    for a prior without a transform from a standard normal (`ep.Flat`, an
    `ep.Dist` of a numpyro distribution without an `icdf`).

    Arguments:
        prior: the prior of the value (any `ep.AbstractPrior` with a support).

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> p = ep.Param(2.0, prior=ep.LogNormal(3.0, 1.0), whiten=False)
        >>> p
        Param(2, prior=Centred(LogNormal(mean=3, sd=1)))
        >>> round(float(p.latent), 4)  # log(2)
        0.6931
    """

    prior: AbstractPrior

    def __init__(self, prior: AbstractPrior):
        if not isinstance(prior, AbstractPrior):
            raise TypeError(
                "`ep.Centred(prior)` needs an `ep.AbstractPrior`, got "
                f"{type(prior).__name__}."
            )
        if isinstance(prior, Centred):
            raise TypeError("`ep.Centred` got a prior that is already centred.")
        check_support(prior)  # a prior without a support fails here, by name
        self.prior = prior

    @property
    def is_whitened(self) -> bool:
        return False

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.prior.batch_shape

    def latent_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.prior.latent_shape(shape)

    def value_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.prior.value_shape(shape)

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, u = compute(z)
        return jnp.asarray(self.prior.bijector(ct)(u)).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        return jnp.asarray(self.prior.bijector(ct).inv(xc)).astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        return self.prior.log_prob(x)

    def latent_log_prob(self, latent: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, u = compute(latent)
        bijector = self.prior.bijector(ct)
        x = bijector(u)
        log_det = jnp.asarray(bijector.log_abs_det_jacobian(u, x)).astype(ct)
        log_prob = jnp.asarray(self.prior.log_prob(x)).astype(ct)
        extra = log_det.ndim - log_prob.ndim  # an event-shaped prior: one per event
        if extra > 0:
            log_det = jnp.sum(log_det, axis=tuple(range(-extra, 0)))
        return log_prob + log_det

    def draw_latent(self, z: Array, key: Any) -> Array:
        """A latent whose value is a draw from the prior.

        `z` is a standard-normal draw: pushed through the prior's whitened
        transform where it has one, else the prior is sampled with `key`.
        """
        ct, zc = compute(z)
        if self.prior.is_whitened:
            x = self.prior.forward(zc)
        else:
            sample = getattr(self.prior, "sample", None)
            if sample is None:
                raise ImproperPriorError(
                    f"`{type(self.prior).__name__}` cannot be sampled."
                )
            x = sample(key, self.value_shape(tuple(z.shape)), ct)
        return jnp.asarray(self.prior.bijector(ct).inv(x)).astype(z.dtype)


def parameterised(prior: AbstractPrior, whiten: bool | None) -> AbstractPrior:
    """The prior a Param stores, given `whiten=` (None: whitened where possible).

    A prior without a whitened transform is centred when `whiten` is None, and an
    error when it is True; `whiten=False` makes any prior with a support centred.
    """
    if whiten is None:
        keep = prior.is_whitened or isinstance(prior, Centred)
        return prior if keep else Centred(prior)
    if whiten is False:
        return prior if isinstance(prior, Centred) else Centred(prior)
    if whiten is True:
        if isinstance(prior, Centred):
            raise ValueError(
                "`ep.Param(prior=ep.Centred(...), whiten=True)` is contradictory: "
                "pass the prior inside `ep.Centred` for a whitened Param."
            )
        if not prior.is_whitened:
            hint = getattr(prior, "no_whitening_hint", "")
            parts = getattr(prior, "repr_parts", None)
            name = parts()[0] if parts is not None else type(prior).__name__
            raise ValueError(
                f"`ep.Param(prior=..., whiten=True)`: the prior "
                f"`{name}` has no exact transform from a standard "
                f"normal, so it cannot be whitened. Pass `whiten=False` (or leave "
                f"`whiten` out) for the centred parameterisation.{hint}"
            )
        return prior
    raise TypeError(f"`whiten` must be True, False or None, got {whiten!r}.")
