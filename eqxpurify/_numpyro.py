"""`ep.Dist`: a numpyro distribution as a prior.

numpyro is an optional dependency (`pip install "eqxpurify[priors]"`), imported
only when a numpyro prior is built. Densities, supports and bijections are
numpyro's own: `log_prob`, `support` and `biject_to(support)`; the whitened
transform is `icdf(Phi(z))` where the distribution has an `icdf`.
"""

import sys
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri
from jaxtyping import Array, ArrayLike, Float

from ._abstract_prior import AbstractPrior
from ._hyper import Hyper, broadcastable, compute, open_interval, to_hyper, value_in

__all__ = ["Dist", "as_prior"]

_INSTALL = 'pip install "eqxpurify[priors]"'
_HAS_ICDF: dict[type, bool] = {}
_BUILT_IN = {
    "Gamma": "ep.Gamma",
    "InverseGamma": "ep.InverseGamma",
    "StudentT": "ep.StudentT",
    "Beta": "ep.Beta",
}


def _numpyro_distributions() -> Any:
    try:
        import numpyro.distributions as dist  # optional: only for numpyro priors
    except ImportError:
        raise ImportError(
            f"A numpyro distribution as a prior needs numpyro: `{_INSTALL}`."
        ) from None
    return dist


class Dist(AbstractPrior):
    """A numpyro distribution as a prior, with hyperparameters that may be Params.

    `ep.Dist(numpyro.distributions.Gamma, concentration=2.0, rate=tau)` holds
    the distribution class (a static field) and its arguments as
    hyperparameters: numbers become `ep.Fixed`, an `ep.Param` stays a Param (a
    hierarchical prior, at the path `x.prior.args['rate']`). `ep.Param(prior=d)`
    with a ready distribution `d` builds one for you.

    Whitened (the default) where the distribution has an `icdf`: the value is
    `icdf(Phi(z))` (Normal, Cauchy, Laplace, LogNormal, HalfNormal, HalfCauchy,
    Exponential, Uniform, ...). Without one (Gamma, Beta, StudentT without
    tensorflow-probability, Weibull) a Param with this prior is centred
    automatically: its latent is `biject_to(support).inv(value)`. The density is
    numpyro's `log_prob`. Only univariate continuous distributions are accepted.
    The whitened transform goes through numpyro's `cdf` and `icdf` in the
    compute dtype, so in float32 its far upper tail (`z` above about 5)
    saturates onto the largest value; the built-in priors keep full precision
    over `z` in [-8, 8].

    Arguments:
        cls: a `numpyro.distributions.Distribution` subclass.
        **args: its constructor's arguments: numbers, arrays, `ep.Fixed` or
            `ep.Param`.

    Examples:
        >>> import numpyro.distributions as dist, eqxpurify as ep
        >>> ep.Param(1.0, prior=dist.Cauchy(0.0, 2.0))
        Param(1, prior=Cauchy(loc=0, scale=2))
        >>> tau = ep.Param(1.0, prior=ep.HalfNormal(1.0))
        >>> ep.Param(0.5, prior=ep.Dist(dist.Gamma, concentration=2.0, rate=tau)).prior
        Centred(Gamma(concentration=2, rate=Param(1, prior=HalfNormal(1))))
    """

    cls: type = eqx.field(static=True)
    args: dict[str, Hyper]

    def __init__(self, cls: type, /, **args: ArrayLike | Hyper):
        dist = _numpyro_distributions()
        if not (isinstance(cls, type) and issubclass(cls, dist.Distribution)):
            raise TypeError(
                "`ep.Dist(cls, **args)` needs a numpyro distribution class such as "
                f"`numpyro.distributions.Gamma`, got {cls!r}. For a ready "
                "distribution, pass it as the prior: `ep.Param(prior=d)`."
            )
        name = cls.__name__
        self.cls = cls
        self.args = {k: to_hyper(v, k, name) for k, v in args.items()}
        if self.args:
            broadcastable(name, **self.args)
        try:
            d = self._probe()
        except TypeError as e:
            raise TypeError(f"`ep.Dist({name}, ...)`: {e}") from None
        if d.event_shape != ():
            raise ValueError(
                f"`ep.Dist({name}, ...)` has event shape {d.event_shape}; only "
                "univariate distributions are priors for now."
            )
        if d.support.is_discrete:
            raise ValueError(
                f"`ep.Dist({name}, ...)` is discrete; a Param is continuous."
            )

    def _probe(self) -> Any:
        """The distribution with every argument 1: for its shapes and methods."""
        ones = {k: np.ones(v.shape, np.float32) for k, v in self.args.items()}
        return self.cls(**ones)

    def _dist(self, dtype: np.dtype) -> Any:
        return self.cls(**{k: value_in(v, dtype) for k, v in self.args.items()})

    def repr_parts(self) -> tuple[str, list[tuple[str | None, Any]]]:
        return self.cls.__name__, list(self.args.items())

    @property
    def batch_shape(self) -> tuple[int, ...]:
        shapes = [tuple(v.shape) for v in self.args.values()]
        return tuple(int(d) for d in np.broadcast_shapes(*shapes)) if shapes else ()

    @property
    def is_whitened(self) -> bool:
        """Whether numpyro gives this distribution an `icdf`."""
        if self.cls not in _HAS_ICDF:
            probe = self._probe()
            try:
                jax.eval_shape(lambda: probe.icdf(jnp.full((), 0.5, np.float32)))
                _HAS_ICDF[self.cls] = True
            except (NotImplementedError, ImportError):
                _HAS_ICDF[self.cls] = False
        return _HAS_ICDF[self.cls]

    @property
    def no_whitening_hint(self) -> str:
        built_in = _BUILT_IN.get(self.cls.__name__)
        return (
            f" Or use the built-in `{built_in}`, which is whitened." if built_in else ""
        )

    def bijector(self, dtype: Any = np.float32) -> Any:
        from numpyro.distributions.transforms import biject_to  # optional

        return biject_to(self._dist(np.dtype(dtype)).support)

    def sample(self, key: Any, shape: tuple[int, ...], dtype: Any) -> Array:
        """Draws of the value, of `shape` (for a centred Param's `ep.normal`)."""
        d = self._dist(np.dtype(dtype))
        batch = d.batch_shape
        draws = d.sample(key, shape[: len(shape) - len(batch)])
        return jnp.broadcast_to(draws, shape).astype(dtype)

    def forward(self, z: Float[Array, "..."]) -> Float[Array, "..."]:
        if not self.is_whitened:
            raise TypeError(self._no_icdf())
        ct, zc = compute(z)
        x = self._dist(ct).icdf(ndtr(zc))
        return jnp.broadcast_to(x, z.shape).astype(z.dtype)

    def inverse(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        if not self.is_whitened:
            raise TypeError(self._no_icdf())
        ct, xc = compute(x)
        d = self._dist(ct)
        u = jnp.clip(d.cdf(xc), 0, 1)
        z = ndtri(open_interval(u))
        z = jnp.where(u >= 1, -ndtri(jnp.finfo(ct).tiny), z)  # onto the upper bound
        z = jnp.where(d.support(xc), z, jnp.nan)  # outside the support: NaN
        return jnp.broadcast_to(z, x.shape).astype(x.dtype)

    def log_prob(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        ct, xc = compute(x)
        d = self._dist(ct)
        inside = d.support(xc)
        lp = d.log_prob(jnp.where(inside, xc, self._inside_point(d, ct)))
        return jnp.broadcast_to(jnp.where(inside, lp, -jnp.inf), x.shape)

    @staticmethod
    def _inside_point(d: Any, ct: Any) -> Array:
        return jnp.asarray(d.support.feasible_like(jnp.zeros((), ct)), ct)

    def _no_icdf(self) -> str:
        return (
            f"`{self.cls.__name__}` has no `icdf` in numpyro, so it has no whitened "
            "transform; a Param with it is centred (`whiten=False`)."
            + self.no_whitening_hint
        )


def as_prior(prior: Any) -> Any:
    """A numpyro distribution instance as an `ep.Dist`; anything else unchanged.

    numpyro is looked up only if already imported: an object can only be a
    numpyro distribution once numpyro is.
    """
    module = sys.modules.get("numpyro.distributions")
    if module is None or not isinstance(prior, module.Distribution):
        return prior
    cls = type(prior)
    names = list(getattr(cls, "arg_constraints", {}))
    try:
        args = {k: getattr(prior, k) for k in names}
        rebuilt = Dist(cls, **args)
    except (AttributeError, TypeError) as e:
        raise TypeError(
            f"`ep.Param(prior=...)` could not read the arguments {names} of the "
            f"numpyro `{cls.__name__}` ({e}). Build the prior explicitly: "
            f"`ep.Dist(numpyro.distributions.{cls.__name__}, arg=value, ...)`."
        ) from None
    return rebuilt
