"""Priors through exact quantiles: Gamma, InverseGamma, StudentT, HalfStudentT, Beta.

`x = F^-1(Phi(z))`, with `F^-1` from `_special` (solved from the nearer tail, with
implicit gradients in `z` and in every hyperparameter), and
`z = Phi^-1(F(x))` from the nearer tail too. Parameter names and meanings are
numpyro's; densities are `jax.scipy.stats`'.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import stats
from jax.scipy.special import betainc, erfinv, gammainc, gammaincc, ndtri
from jaxtyping import Array, ArrayLike, Float

from ._abstract_prior import AbstractPrior
from ._hyper import Hyper, broadcastable, compute, open_interval, to_hyper, value_in
from ._hyper_checks import finite, positive
from ._special import (
    abs_student_t_quantile,
    beta_quantile_logit,
    gamma_quantile_log,
    student_t_quantile,
)
from ._support import Bijection

__all__ = ["Beta", "Gamma", "HalfStudentT", "InverseGamma", "StudentT"]


def _positive(value: ArrayLike | Hyper, name: str, owner: str) -> Hyper:
    return positive(to_hyper(value, name, owner), name, owner)


def _positives(owner: str, **hypers: ArrayLike | Hyper) -> tuple[Hyper, ...]:
    """`owner`'s hyperparameters, each positive, in order; they must broadcast."""
    checked = {name: _positive(value, name, owner) for name, value in hypers.items()}
    broadcastable(owner, **checked)
    return tuple(checked.values())


def _from_tails(lower_p: Array, upper_p: Array) -> Array:
    """`Phi^-1` of a CDF given as its lower and upper tails, from the smaller."""
    lower = lower_p < 0.5
    return jnp.where(
        lower,
        ndtri(open_interval(jnp.where(lower, lower_p, 0.5))),
        -ndtri(open_interval(jnp.where(lower, 0.5, upper_p))),
    )


def _gamma_latent(a: Array, y: Array) -> Array:
    """The latent of a standard gamma value `y` (NaN below 0)."""
    y_safe = jnp.where(y >= 0, y, 1)
    z = _from_tails(gammainc(a, y_safe), gammaincc(a, y_safe))
    return jnp.where(y >= 0, z, jnp.nan)


def _abs_t_tails(df: Array, y: Array) -> tuple[Array, Array]:
    """P(|T| <= y) and P(|T| > y) for a standard Student t, y >= 0."""
    r2 = jnp.square(y / jnp.sqrt(df))
    inner = betainc(0.5, df / 2, 1 / (1 + 1 / r2))
    outer = betainc(df / 2, 0.5, 1 / (1 + r2))
    return inner, outer


class Gamma(AbstractPrior):
    """Gamma prior with shape `concentration` and rate `rate` (mean `a / rate`).

    `x = F^-1(Phi(z))` exactly: the quantile solved from the nearer tail, so both
    tails keep their precision, with gradients in `z` and in both
    hyperparameters.

    Arguments:
        concentration: the shape `a`, > 0.
        rate: the rate, > 0 (`1 / scale`).

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> ep.zeros(ep.Param(prior=ep.Gamma(2.0, 1.0)))  # z = 0: the median
        Param(1.678, prior=Gamma(2, 1))
        >>> round(float(ep.Gamma(2.0, 1.0).log_prob(jnp.array(1.0))), 4)
        -1.0
    """

    support = "positive"

    concentration: Hyper
    rate: Hyper

    def __init__(self, concentration: ArrayLike | Hyper, rate: ArrayLike | Hyper = 1.0):
        self.concentration, self.rate = _positives(
            "Gamma", concentration=concentration, rate=rate
        )

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = compute(z)
        a, rate = value_in(self.concentration, ct), value_in(self.rate, ct)
        return (jnp.exp(gamma_quantile_log(a, zc)) / rate).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        a, rate = value_in(self.concentration, ct), value_in(self.rate, ct)
        return _gamma_latent(a, xc * rate).astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        a, rate = value_in(self.concentration, ct), value_in(self.rate, ct)
        return stats.gamma.logpdf(xc * rate, a) + jnp.log(rate)


class InverseGamma(AbstractPrior):
    """Inverse-gamma prior: `x = scale / g` with `g ~ Gamma(concentration, 1)`.

    numpyro calls `scale` `rate`; it multiplies `x`: the mean is
    `scale / (concentration - 1)` for `concentration > 1`. Exact quantiles from
    the nearer tail, with gradients in `z` and both hyperparameters.

    Arguments:
        concentration: the shape `a`, > 0.
        scale: the scale, > 0.

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> ep.zeros(ep.Param(prior=ep.InverseGamma(3.0, 2.0)))  # the median
        Param(0.7479, prior=InverseGamma(3, 2))
    """

    support = "positive"

    concentration: Hyper
    scale: Hyper

    def __init__(
        self, concentration: ArrayLike | Hyper, scale: ArrayLike | Hyper = 1.0
    ):
        self.concentration, self.scale = _positives(
            "InverseGamma", concentration=concentration, scale=scale
        )

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = compute(z)
        a, scale = value_in(self.concentration, ct), value_in(self.scale, ct)
        return (scale * jnp.exp(-gamma_quantile_log(a, -zc))).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        a, scale = value_in(self.concentration, ct), value_in(self.scale, ct)
        y = jnp.where(xc > 0, scale / jnp.where(xc > 0, xc, 1), -1)
        return (-_gamma_latent(a, y)).astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        # The gamma density of `scale / x` times the Jacobian `scale / x^2`.
        ct, xc = compute(x)
        a, scale = value_in(self.concentration, ct), value_in(self.scale, ct)
        pos = xc > 0
        x_safe = jnp.where(pos, xc, 1)
        lp = (
            stats.gamma.logpdf(scale / x_safe, a) + jnp.log(scale) - 2 * jnp.log(x_safe)
        )
        return jnp.where(pos, lp, -jnp.inf)


class StudentT(AbstractPrior):
    """Student-t prior with `df` degrees of freedom, location `loc`, scale `scale`.

    `x = loc + scale * F^-1(Phi(z))`, with the standard t quantile computed
    through the incomplete beta function from the nearer tail (`Phi(z)` or
    `Phi(-z)`, and `P(|T| <= t)` near the centre), so both tails and the centre
    keep their precision. `df = 1` is the Cauchy distribution.

    Arguments:
        df: the degrees of freedom, > 0.
        loc: the location (the median).
        scale: the scale, > 0.

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> prior = ep.StudentT(3.0, 1.0, 2.0)
        >>> ep.Param.from_latent(jnp.array([-2.0, 0.0, 2.0]), prior=prior)
        Param([-5.614, 1, 7.614], prior=StudentT(3, 1, 2))
    """

    support = "real"

    df: Hyper
    loc: Hyper
    scale: Hyper

    def __init__(
        self,
        df: ArrayLike | Hyper,
        loc: ArrayLike | Hyper = 0.0,
        scale: ArrayLike | Hyper = 1.0,
    ):
        self.df = _positive(df, "df", "StudentT")
        self.loc = finite(to_hyper(loc, "loc", "StudentT"), "loc", "StudentT")
        self.scale = _positive(scale, "scale", "StudentT")
        broadcastable("StudentT", df=self.df, loc=self.loc, scale=self.scale)

    def _hypers(self, ct: jnp.dtype) -> tuple[Array, Array, Array]:
        return (
            value_in(self.df, ct),
            value_in(self.loc, ct),
            value_in(self.scale, ct),
        )

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = compute(z)
        df, loc, scale = self._hypers(ct)
        return (loc + scale * student_t_quantile(df, zc)).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        df, loc, scale = self._hypers(ct)
        u = (xc - loc) / scale
        inner, outer = _abs_t_tails(df, jnp.abs(u))
        central = inner < 0.5
        az = jnp.where(
            central,
            math.sqrt(2.0) * erfinv(jnp.where(central, inner, 0.5)),
            -ndtri(open_interval(jnp.where(central, 0.5, outer / 2))),
        )
        return (jnp.sign(u) * az).astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        df, loc, scale = self._hypers(ct)
        return stats.t.logpdf(xc, df, loc, scale)


class HalfStudentT(AbstractPrior):
    """Half-Student-t prior on `[0, inf)`: `|StudentT(df, 0, scale)|`.

    A heavy-tailed prior for a scale; `df = 1` is the half-Cauchy. Exact
    quantiles from the nearer tail, with gradients in `z`, `df` and `scale`.

    Arguments:
        df: the degrees of freedom, > 0.
        scale: the scale, > 0.

    Examples:
        >>> import eqxpurify as ep
        >>> ep.zeros(ep.Param(prior=ep.HalfStudentT(3.0, 2.0)))  # the median
        Param(1.53, prior=HalfStudentT(3, 2))
    """

    support = "positive"

    df: Hyper
    scale: Hyper

    def __init__(self, df: ArrayLike | Hyper, scale: ArrayLike | Hyper = 1.0):
        self.df, self.scale = _positives("HalfStudentT", df=df, scale=scale)

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = compute(z)
        df, scale = value_in(self.df, ct), value_in(self.scale, ct)
        return (scale * abs_student_t_quantile(df, zc)).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        df, scale = value_in(self.df, ct), value_in(self.scale, ct)
        y = xc / scale
        inner, outer = _abs_t_tails(df, jnp.abs(y))
        return jnp.where(y >= 0, _from_tails(inner, outer), jnp.nan).astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        df, scale = value_in(self.df, ct), value_in(self.scale, ct)
        lp = math.log(2.0) + stats.t.logpdf(xc, df, 0, scale)
        return jnp.where(xc >= 0, lp, -jnp.inf)


class Beta(AbstractPrior):
    """Beta prior on `[0, 1]` with `concentration1` (`a`) and `concentration0` (`b`).

    The mean is `a / (a + b)`. `x = I^-1(Phi(z))` exactly, solved in logit space
    from the nearer tail (the upper tail as `1 - x ~ Beta(b, a)`), so values
    near 0 and near 1 both keep their precision; gradients in `z`, `a` and `b`.

    Arguments:
        concentration1: `a`, > 0 (the weight of 1).
        concentration0: `b`, > 0 (the weight of 0).

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> ep.zeros(ep.Param(prior=ep.Beta(2.0, 2.0)))  # z = 0: the median
        Param(0.5, prior=Beta(2, 2))
        >>> ep.Param.from_latent(jnp.array([-3.0, 3.0]), prior=ep.Beta(2.0, 5.0))
        Param([0.009609, 0.807], prior=Beta(2, 5))
    """

    support = "interval"

    def bijector(self, dtype: Any = np.float32) -> Any:
        """The bijection from the real line onto (0, 1): a sigmoid."""
        dtype = np.dtype(dtype)
        return Bijection("interval", np.zeros((), dtype), np.ones((), dtype))

    concentration1: Hyper
    concentration0: Hyper

    def __init__(
        self, concentration1: ArrayLike | Hyper, concentration0: ArrayLike | Hyper
    ):
        self.concentration1, self.concentration0 = _positives(
            "Beta", concentration1=concentration1, concentration0=concentration0
        )

    def _ab(self, ct: jnp.dtype) -> tuple[Array, Array]:
        return value_in(self.concentration1, ct), value_in(self.concentration0, ct)

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, zc = compute(z)
        a, b = self._ab(ct)
        return jax.nn.sigmoid(beta_quantile_logit(a, b, zc)).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        a, b = self._ab(ct)
        inside = (xc >= 0) & (xc <= 1)
        x_safe = jnp.where(inside, xc, 0.5)
        z = _from_tails(betainc(a, b, x_safe), betainc(b, a, 1 - x_safe))
        return jnp.where(inside, z, jnp.nan).astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        a, b = self._ab(ct)
        return stats.beta.logpdf(xc, a, b)
