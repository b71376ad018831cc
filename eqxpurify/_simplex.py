"""Simplex- and correlation-valued priors: `ep.Dirichlet` and `ep.LKJCholesky`.

Both are numpyro distributions (`ep.Dist`) with an event shape: the value of a
Param is a whole simplex or a whole Cholesky factor of a correlation matrix,
its latent the unconstrained vector that numpyro's `biject_to(support)` maps
onto it (stick-breaking for the simplex, the signed-partial-correlation
transform for the factor). The latent is smaller than the value, so there is no
exact whitening: these Params are always centred, and the log density is one
number per event.
"""

import operator

import numpy as np
from jaxtyping import ArrayLike

from ._hyper import Hyper, to_hyper
from ._hyper_checks import positive
from ._numpyro import Dist, numpyro_distributions

__all__ = ["Dirichlet", "LKJCholesky"]


def Dirichlet(concentration: ArrayLike | Hyper) -> Dist:
    """A Dirichlet prior: a simplex-valued Param, its last axis summing to 1.

    numpyro's `Dirichlet` as an `ep.Dist` (it needs the `priors` extra,
    `pip install "eqxpurify[priors]"`). A Param of `K` categories stores `K - 1`
    unconstrained latents, mapped onto the simplex by numpyro's stick-breaking
    transform; it is always centred (`whiten=True` is an error). `ep.zeros`
    gives the uniform simplex `1 / K`; `ep.normal` draws the value from the
    prior. `prior.log_prob(x)` is one number per simplex (per event), and
    `ep.log_prior` adds the stick-breaking log-Jacobian per simplex.

    Arguments:
        concentration: the concentration, positive, with the categories on its
            last axis (at least 2); leading axes make a batch of simplices. An
            `ep.Param` (with a positive prior) makes the prior hierarchical.

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> p = ep.Param(jnp.array([0.2, 0.3, 0.5]), prior=ep.Dirichlet(jnp.ones(3)))
        >>> p
        Param([0.2, 0.3, 0.5], prior=Centred(Dirichlet(concentration=[1, 1, 1])))
        >>> p.latent.shape, round(float(ep.log_prob(p)), 4)  # log Gamma(3)
        ((2,), 0.6931)
    """
    dist = numpyro_distributions("ep.Dirichlet")
    h = positive(
        to_hyper(concentration, "concentration", "Dirichlet"),
        "concentration",
        "Dirichlet",
    )
    if len(h.shape) < 1 or h.shape[-1] < 2:
        raise ValueError(
            "`Dirichlet(concentration=...)` needs the categories on its last axis, "
            f"at least 2 of them; got shape {tuple(h.shape)}. For `K` equal "
            "concentrations, pass e.g. `jnp.ones(K)`."
        )
    return Dist(dist.Dirichlet, concentration=h)


def LKJCholesky(dimension: int, concentration: ArrayLike | Hyper = 1.0) -> Dist:
    """An LKJ prior on the Cholesky factor of a correlation matrix.

    numpyro's `LKJCholesky` as an `ep.Dist` (it needs the `priors` extra,
    `pip install "eqxpurify[priors]"`). The value of a Param is a lower
    triangular `(dimension, dimension)` matrix `L` with a positive diagonal and
    rows of unit norm, so `L @ L.T` is a correlation matrix; it stores
    `dimension * (dimension - 1) / 2` unconstrained latents, mapped onto `L` by
    numpyro's `CorrCholeskyTransform`. It is always centred (`whiten=True` is
    an error). `ep.zeros` gives the identity; `ep.normal` draws the value from
    the prior. `prior.log_prob(L)` is one number per matrix (per event), and
    `ep.log_prior` adds the transform's log-Jacobian per matrix.

    Arguments:
        dimension: the size of the matrix, an int of at least 2 (static).
        concentration: the LKJ concentration, positive: 1 is uniform over
            correlation matrices, larger values favour the identity. An
            `ep.Param` (with a positive prior) makes the prior hierarchical; an
            array gives a batch of matrices.

    Examples:
        >>> import jax, eqxpurify as ep
        >>> p = ep.zeros(ep.Param(prior=ep.LKJCholesky(3, concentration=2.0)))
        >>> p.latent.shape, p.shape
        ((3,), (3, 3))
        >>> p.value
        Array([[1., 0., 0.],
               [0., 1., 0.],
               [0., 0., 1.]], dtype=float32)
    """
    dist = numpyro_distributions("ep.LKJCholesky")
    if isinstance(dimension, bool | np.bool_):
        dimension = 0  # refused below
    try:
        size = operator.index(dimension)
    except TypeError:
        size = 0
    if size < 2:
        raise ValueError(
            f"`LKJCholesky(dimension=...)` must be an int of at least 2, got "
            f"{dimension!r}."
        )
    h = positive(
        to_hyper(concentration, "concentration", "LKJCholesky"),
        "concentration",
        "LKJCholesky",
    )
    return Dist(dist.LKJCholesky, dimension=size, concentration=h)
