"""Quantiles of the gamma, beta and Student-t distributions, with exact gradients.

JAX has the regularized incomplete gamma and beta functions (`gammainc`,
`gammaincc`, `betainc`) but not their inverses, which a whitened prior needs:
its value is the quantile of `Phi(z)`. These are written here rather than taken
from TensorFlow Probability's JAX substrate, which would add a large dependency
whose releases trail JAX's, for three functions.

Each quantile is found in a space where the log CDF is concave (log `x` for the
gamma, logit `x` for the beta, as the log and logit of these variables have
log-concave densities), by a fixed number of Halley steps from a standard initial
guess (Wilson-Hilferty and the small-`x` series for the gamma; Cran, Martin and
Thomas's AS 109 for the beta). The equation solved is always the nearer tail's,
`log P = log p` or `log Q = log q`, so both tails keep their relative precision.
No Python `if` looks at a traced value: every element takes the same steps.

Gradients are implicit (`jax.custom_jvp`), not differentiated through the
iterations: for `CDF(x; theta) = p`, `dx/dp = 1 / pdf(x)` and
`dx/dtheta = -(dCDF/dtheta) / pdf(x)`. `gammainc` and `gammaincc` have accurate
derivatives in the shape `a` (XLA's `igamma_grad_a`, relative error ~1e-14 in both
tails). `betainc` has none in `a` or `b` ("Betainc gradient with respect to a and
b not supported"), so `d log I_x(a, b) / d(a, b)` is computed here by forward-mode
differentiation of the incomplete beta's continued fraction (Numerical Recipes'
`betacf`) at a fixed number of terms, evaluated where it converges fast.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jax.scipy.special import (
    betainc,
    betaln,
    digamma,
    gammainc,
    gammaincc,
    gammaln,
    log_ndtr,
    ndtri,
)
from jaxtyping import Array, ArrayLike

__all__ = [
    "abs_student_t_quantile",
    "beta_logit_quantile",
    "gamma_log_quantile",
    "student_t_quantile",
]

_LOG2 = math.log(2.0)


def _steps(dtype: np.dtype) -> int:
    """Halley steps for the gamma: cubic convergence from its ~1e-1 initial guess.

    The beta takes 4 in every dtype: AS 109's guess can be off by ~3 in logit
    (near `b = 1` with large `a`, or `b < 1` with large `a`), measured on a grid
    of shapes from 0.1 to 3000.
    """
    return 3 if np.dtype(dtype).itemsize >= 8 else 2


def _small(dtype: np.dtype) -> float:
    """Below this `x` the incomplete functions use their leading series terms."""
    return float(np.sqrt(np.finfo(dtype).tiny))


# --------------------------------------------------------------------------------
# The gamma: t = log x with log P(a, x) = lp (lower) or log Q(a, x) = lp (upper).


def _gamma_log_tail(a: Array, t: Array, upper: bool) -> Array:
    """Log P(a, x) (or log Q), x = exp(t); by the leading term where it underflows.

    The leading term is only a guide for the steps far from the root: at the
    root the tail is `exp(lp)`, which is representable.
    """
    x = jnp.exp(t)
    floor = jnp.finfo(t.dtype).tiny / jnp.finfo(t.dtype).eps
    if upper:
        q = gammaincc(a, x)
        lead = (a - 1) * t - x - gammaln(a)  # Q ~ x^(a-1) e^-x / Gamma(a)
        return jnp.where(q > floor, jnp.log(jnp.maximum(q, floor)), lead)
    small = x < _small(t.dtype)
    p = gammainc(a, jnp.where(small, 1, x))
    series = a * t - gammaln(a + 1) + jnp.log1p(-a * x / (a + 1))
    lead = a * t - x - gammaln(a + 1)  # P ~ x^a e^-x / Gamma(a + 1)
    return jnp.where(
        small, series, jnp.where(p > floor, jnp.log(jnp.maximum(p, floor)), lead)
    )


def _gamma_guess(a: Array, lp: Array, upper: bool) -> Array:
    tiny = jnp.finfo(lp.dtype).tiny
    z = ndtri(jnp.maximum(jnp.exp(lp), tiny))
    z = -z if upper else z
    c = 1 - 1 / (9 * a) + z / (3 * jnp.sqrt(a))  # Wilson-Hilferty
    t_wh = jnp.where(c > 0, jnp.log(a) + 3 * jnp.log(jnp.maximum(c, tiny)), -jnp.inf)
    if not upper:  # P ~ x^a / Gamma(a + 1): a lower bound, exact as x -> 0
        return jnp.maximum((lp + gammaln(a + 1)) / a, t_wh)
    t_low = (jnp.log1p(-jnp.exp(lp)) + gammaln(a + 1)) / a
    y = -lp - gammaln(a)  # Q ~ x^(a-1) e^-x / Gamma(a) for large x
    x2 = y + (a - 1) * jnp.log(jnp.maximum(y, 1))
    t_tail = jnp.where(x2 > 0, jnp.log(jnp.maximum(x2, tiny)), -jnp.inf)
    return jnp.maximum(t_low, jnp.where(a < 1, t_tail, t_wh))


def _gamma_log_xpdf(a: Array, t: Array) -> Array:
    """log(x * pdf(x)) of the standard gamma at x = exp(t)."""
    return a * t - jnp.exp(t) - gammaln(a)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def gamma_log_quantile(upper: bool, a: ArrayLike, lp: ArrayLike) -> Array:
    """`log x` where the standard gamma's lower (or upper) tail at `x` is `exp(lp)`."""
    a, lp = jnp.asarray(a), jnp.asarray(lp)
    t = _gamma_guess(a, lp, upper)
    for _ in range(_steps(t.dtype)):
        x = jnp.exp(t)
        log_tail = _gamma_log_tail(a, t, upper)
        f = log_tail - lp
        r = jnp.exp(_gamma_log_xpdf(a, t) - log_tail)  # |d log tail / dt|
        if upper:
            t = t + (f / r) / jnp.maximum(1 + f * (a - x + r) / (2 * r), 0.5)
        else:
            t = t - (f / r) / jnp.maximum(1 - f * (a - x - r) / (2 * r), 0.5)
    return t


def _is_zero(tangent: object) -> bool:
    return isinstance(tangent, SymbolicZero)


def _gamma_log_quantile_jvp(upper: bool, primals: tuple, tangents: tuple) -> tuple:
    a, lp = primals
    a_dot, lp_dot = tangents
    t = gamma_log_quantile(upper, a, lp)
    x = jnp.exp(t)
    dt_dlp = jnp.exp(lp - _gamma_log_xpdf(a, t))  # 1 / |d log tail / dt|
    sign = -1 if upper else 1
    out = jnp.zeros_like(t) if _is_zero(lp_dot) else sign * dt_dlp * lp_dot
    if _is_zero(a_dot):  # a constant shape: no derivative of the tail in `a`
        return t, out
    ones = jnp.ones_like(a)
    if upper:
        q, dq_da = jax.jvp(lambda a_: gammaincc(a_, x), (a,), (ones,))
        dt_da = dt_dlp * dq_da / q
    else:
        small = x < _small(t.dtype)
        x_safe = jnp.where(small, 1, x)
        p, dp_da = jax.jvp(lambda a_: gammainc(a_, x_safe), (a,), (ones,))
        dlog_da = jnp.where(small, t - digamma(a + 1), dp_da / p)
        dt_da = -dt_dlp * dlog_da
    return t, out + dt_da * a_dot


gamma_log_quantile.defjvp(_gamma_log_quantile_jvp, symbolic_zeros=True)


def gamma_quantile_log(a: Array, z: Array) -> Array:
    """`log x`, `x` the standard gamma's quantile of `Phi(z)`, from the nearer tail."""
    a, z = jnp.broadcast_arrays(a, z)
    lower = gamma_log_quantile(False, a, log_ndtr(jnp.where(z < 0, z, 0)))
    upper = gamma_log_quantile(True, a, log_ndtr(-jnp.where(z < 0, 0, z)))
    return jnp.where(z < 0, lower, upper)


# --------------------------------------------------------------------------------
# The beta: t = logit x with log I_x(a, b) = lp, for lp <= log(1/2) (lower tail).


def _beta_log_cdf(a: Array, b: Array, t: Array) -> Array:
    """Log I_x(a, b) at x = sigmoid(t); by the leading term where it underflows."""
    log_x, log_1mx = -jax.nn.softplus(-t), -jax.nn.softplus(t)
    x, y = jnp.exp(log_x), jnp.exp(log_1mx)
    small = x < _small(t.dtype)
    lead = a * log_x + b * log_1mx - jnp.log(a) - betaln(a, b)
    series = lead - b * log_1mx + jnp.log1p(a * (1 - b) * x / (a + 1))
    # Past the mean, 1 - I_{1-x}(b, a): 1 - x is exact there, x alone is not.
    flip = t > jnp.log((a + 1) / (b + 1))
    v = betainc(
        jnp.where(flip, b, a),
        jnp.where(flip, a, b),
        jnp.where(flip, y, jnp.where(small, 0.5, x)),
    )
    floor = jnp.finfo(t.dtype).tiny / jnp.finfo(t.dtype).eps
    direct = jnp.where(v > floor, jnp.log(jnp.maximum(v, floor)), lead)
    return jnp.where(small, series, jnp.where(flip, jnp.log1p(-v), direct))


def _beta_log_xpdf(a: Array, b: Array, t: Array) -> Array:
    """log(x (1 - x) pdf(x)) at x = sigmoid(t)."""
    return -a * jax.nn.softplus(-t) - b * jax.nn.softplus(t) - betaln(a, b)


def _beta_guess(a: Array, b: Array, lp: Array) -> Array:
    """AS 109's starting value (Cran, Martin and Thomas 1977), as a logit."""
    tiny = jnp.finfo(lp.dtype).tiny
    y = -ndtri(jnp.maximum(jnp.exp(lp), tiny))
    lbeta = betaln(a, b)
    r = (y * y - 3) / 6
    s, u = 1 / (2 * a - 1), 1 / (2 * b - 1)
    h = 2 / (s + u)
    w = y * jnp.sqrt(jnp.maximum(h + r, 0)) / h - (u - s) * (r + 5 / 6 - 2 / (3 * h))
    t_big = jnp.log(a / b) - 2 * w
    c = 1 / (9 * b)
    chi = 2 * b * (1 - c + y * jnp.sqrt(c)) ** 3
    t_b = -(jnp.log1p(-jnp.exp(lp)) + jnp.log(b) + lbeta) / b  # -log(1 - x)
    t_near1 = t_b + jnp.log(-jnp.expm1(-jnp.maximum(t_b, tiny)))
    t2 = (4 * a + 2 * b - 2) / chi
    log_x = jnp.minimum((lp + jnp.log(a) + lbeta) / a, -1e-6)
    t_small = log_x - jnp.log(-jnp.expm1(log_x))
    t_mid = jnp.log(jnp.maximum(t2 - 1, tiny) / 2)
    other = jnp.where(chi <= 0, t_near1, jnp.where(t2 <= 1, t_small, t_mid))
    return jnp.where((a > 1) & (b > 1), t_big, other)


def _betacf_log(a: Array, b: Array, t: Array, terms: int = 96) -> Array:
    """Log I_x(a, b) at x = sigmoid(t) by its continued fraction (for the gradient)."""
    log_x, log_1mx = -jax.nn.softplus(-t), -jax.nn.softplus(t)
    x = jnp.exp(log_x)
    fpmin = jnp.finfo(t.dtype).tiny * 1e4

    def guard(v: Array) -> Array:
        return jnp.where(jnp.abs(v) < fpmin, fpmin, v)

    def term(m: Array, carry: tuple) -> tuple:
        c, d, h = carry
        for num in (
            m * (b - m) * x / ((a - 1 + 2 * m) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 1 + 2 * m)),
        ):
            d = 1 / guard(1 + num * d)
            c = guard(1 + num / c)
            h = h * d * c
        return c, d, h

    d = 1 / guard(1 - (a + b) * x / (a + 1))
    init = (jnp.ones_like(x), d, d)
    _, _, h = jax.lax.fori_loop(
        1, terms + 1, lambda m, cr: term(m.astype(x.dtype), cr), init
    )
    return a * log_x + b * log_1mx - betaln(a, b) - jnp.log(a) + jnp.log(h)


def _beta_dlog_cdf(a: Array, b: Array, t: Array) -> tuple[Array, Array]:
    """The derivatives of log I_x(a, b) in `a` and `b`, at x = sigmoid(t)."""
    flip = t > jnp.log((a + 1) / (b + 1))
    ones = jnp.ones_like(a)

    def direct(a_: Array, b_: Array) -> Array:
        return _betacf_log(a_, b_, t)

    def mirrored(a_: Array, b_: Array) -> Array:  # log(1 - I_{1-x}(b, a))
        return jnp.log1p(-jnp.exp(_betacf_log(b_, a_, -t)))

    out = []
    for tangent in ((ones, 0 * ones), (0 * ones, ones)):
        _, d_direct = jax.jvp(direct, (a, b), tangent)
        _, d_mirror = jax.jvp(mirrored, (a, b), tangent)
        out.append(jnp.where(flip, d_mirror, d_direct))
    return out[0], out[1]


@jax.custom_jvp
def beta_logit_quantile(a: ArrayLike, b: ArrayLike, lp: ArrayLike) -> Array:
    """`logit x` where the Beta(a, b) CDF at `x` is `exp(lp)` (lower half)."""
    a, b, lp = jnp.asarray(a), jnp.asarray(b), jnp.asarray(lp)
    t = _beta_guess(a, b, lp)
    for _ in range(4):
        x = jax.nn.sigmoid(t)
        log_cdf = _beta_log_cdf(a, b, t)
        f = log_cdf - lp
        r = jnp.exp(_beta_log_xpdf(a, b, t) - log_cdf)
        slope = a * (1 - x) - b * x
        t = t - (f / r) / jnp.maximum(1 - f * (slope - r) / (2 * r), 0.5)
    return t


def _beta_logit_quantile_jvp(primals: tuple, tangents: tuple) -> tuple:
    a, b, lp = primals
    a_dot, b_dot, lp_dot = tangents
    t = beta_logit_quantile(a, b, lp)
    dt_dlp = jnp.exp(lp - _beta_log_xpdf(a, b, t))
    out = jnp.zeros_like(t) if _is_zero(lp_dot) else lp_dot
    if not (_is_zero(a_dot) and _is_zero(b_dot)):  # the shapes vary
        dlog_da, dlog_db = _beta_dlog_cdf(a, b, t)
        a_dot = jnp.zeros_like(t) if _is_zero(a_dot) else a_dot
        b_dot = jnp.zeros_like(t) if _is_zero(b_dot) else b_dot
        out = out - dlog_da * a_dot - dlog_db * b_dot
    return t, dt_dlp * out


beta_logit_quantile.defjvp(_beta_logit_quantile_jvp, symbolic_zeros=True)


def beta_quantile_logit(a: Array, b: Array, z: Array) -> Array:
    """`logit x` with `x` the Beta(a, b) quantile of `Phi(z)`, from the nearer tail."""
    a, b, z = jnp.broadcast_arrays(a, b, z)
    lower = z < 0  # else 1 - x ~ Beta(b, a), in its lower tail: one solve for both
    t = beta_logit_quantile(
        jnp.where(lower, a, b), jnp.where(lower, b, a), log_ndtr(-jnp.abs(z))
    )
    return jnp.where(lower, t, -t)


# --------------------------------------------------------------------------------
# Student's t, through |T|: T^2 / (df + T^2) ~ Beta(1/2, df/2).


def _abs_t(df: Array, lp_in: Array, lp_out: Array, inner: Array) -> Array:
    """`|T|` from `log P(|T| <= t) = lp_in` (`inner`) or `log P(|T| > t) = lp_out`."""
    half = jnp.full_like(df, 0.5)
    # T^2 / (df + T^2) ~ Beta(1/2, df/2) near 0; df / (df + T^2) ~ Beta(df/2, 1/2)
    # in the tails. One solve for both.
    s = beta_logit_quantile(
        jnp.where(inner, half, df / 2),
        jnp.where(inner, df / 2, half),
        jnp.where(inner, lp_in, lp_out),
    )
    return jnp.sqrt(df) * jnp.exp(jnp.where(inner, s, -s) / 2)


def abs_student_t_quantile(df: Array, z: Array) -> Array:
    """The quantile of `Phi(z)` of |T|, T a standard Student t with `df` degrees."""
    df, z = jnp.broadcast_arrays(df, z)
    inner = z < 0
    return _abs_t(
        df, log_ndtr(jnp.where(z < 0, z, 0)), log_ndtr(-jnp.where(z < 0, 0, z)), inner
    )


# Where |z| = Phi^-1(3/4), P(|T| <= t) = 1/2: the two problems meet.
_Z_MEDIAN_ABS = 0.6744897501960817


@jax.custom_jvp
def student_t_quantile(df: ArrayLike, z: ArrayLike) -> Array:
    """The quantile of `Phi(z)` of a standard Student t with `df` degrees."""
    return _student_t(jnp.asarray(df), jnp.asarray(z))


def _student_t(df: Array, z: Array) -> Array:
    df, z = jnp.broadcast_arrays(df, z)
    az = jnp.abs(z)
    inner = az <= _Z_MEDIAN_ABS
    az_in = jnp.where(inner & (az > 0), az, 0.5)
    lp_in = jnp.log(jax.lax.erf(az_in / math.sqrt(2.0)))  # P(|T| <= t)
    lp_out = _LOG2 + log_ndtr(-jnp.maximum(az, _Z_MEDIAN_ABS))  # P(|T| > t)
    t = _abs_t(df, lp_in, lp_out, inner)
    return jnp.where(z == 0, 0, jnp.sign(z) * t)


def _student_t_quantile_jvp(primals: tuple, tangents: tuple) -> tuple:
    df, z = primals
    df_dot, z_dot = tangents
    if _is_zero(df_dot):
        t, dt_ddf = _student_t(df, z), None
    else:
        t, dt_ddf = jax.jvp(lambda d: _student_t(d, z), (df,), (df_dot,))
    out = jnp.zeros_like(t) if dt_ddf is None else dt_ddf
    if not _is_zero(z_dot):
        # dt/dz = phi(z) / pdf_t(t), exact at z = 0 where |z| has a kink.
        log_pdf = jax.scipy.stats.t.logpdf(t, df)
        log_phi = -0.5 * jnp.square(z) - 0.5 * math.log(2 * math.pi)
        out = out + jnp.exp(log_phi - log_pdf) * z_dot
    return t, out


student_t_quantile.defjvp(_student_t_quantile_jvp, symbolic_zeros=True)
