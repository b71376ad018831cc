"""`ep.Dist`: a numpyro distribution as a prior.

numpyro is an optional dependency (`pip install "eqxpurify[priors]"`), imported
only when a numpyro prior is built. Densities, supports and bijections are
numpyro's own: `log_prob`, `support` and `biject_to(support)`; the whitened
transform is `icdf(Phi(z))` where the distribution has an `icdf`. An
event-shaped distribution (Dirichlet, LKJCholesky) is centred, with a latent of
the size of the transform's domain and one density per event.
"""

import contextlib
import inspect
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
from ._support import EventBijection, event_dtype

__all__ = ["Dist", "as_prior", "numpyro_distributions"]

_INSTALL = 'pip install "eqxpurify[priors]"'
_HAS_ICDF: dict[type, bool] = {}
_BUILT_IN = {
    "Gamma": "ep.Gamma",
    "InverseGamma": "ep.InverseGamma",
    "StudentT": "ep.StudentT",
    "Beta": "ep.Beta",
}


def numpyro_distributions(owner: str | None = None) -> Any:
    """`numpyro.distributions`, or an error naming the `priors` extra."""
    try:
        import numpyro.distributions as dist  # optional: only for numpyro priors
    except ImportError:
        what = f"`{owner}`" if owner else "A numpyro distribution as a prior"
        raise ImportError(
            f"{what} needs numpyro, the `priors` extra: `{_INSTALL}`."
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
    numpyro's `log_prob`. Continuous distributions are accepted, univariate or
    event-shaped: an event-shaped one (`Dirichlet`, `LKJCholesky`; see
    `ep.Dirichlet` and `ep.LKJCholesky`) is always centred, its latent has the
    shape of the transform's domain (`K - 1` for a simplex of `K`), and
    `log_prob` gives one number per event, with `log|J|` per event in
    `ep.log_prior`. Arguments that are not numpyro parameters (`arg_constraints`)
    and are Python ints or strings, such as `LKJCholesky`'s `dimension`, are
    static.
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
    static_args: tuple[tuple[str, Any], ...] = eqx.field(static=True)
    event_shape: tuple[int, ...] = eqx.field(static=True)
    latent_event_shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, cls: type, /, **args: ArrayLike | Hyper | int | str):
        dist = numpyro_distributions()
        if not (isinstance(cls, type) and issubclass(cls, dist.Distribution)):
            raise TypeError(
                "`ep.Dist(cls, **args)` needs a numpyro distribution class such as "
                f"`numpyro.distributions.Gamma`, got {cls!r}. For a ready "
                "distribution, pass it as the prior: `ep.Param(prior=d)`."
            )
        name = cls.__name__
        self.cls = cls
        params = getattr(cls, "arg_constraints", {})
        static = {k: v for k, v in args.items() if _is_static(k, v, params)}
        self.static_args = tuple((k, _as_static(v)) for k, v in static.items())
        self.args = {
            k: to_hyper(v, k, name) for k, v in args.items() if k not in static
        }
        if self.args:
            broadcastable(name, **self.args)
        self.event_shape = self.latent_event_shape = ()
        try:
            d = self._probe()
        except (TypeError, ValueError) as e:
            raise type(e)(f"`ep.Dist({name}, ...)`: {e}") from None
        if d.support.is_discrete:
            raise ValueError(
                f"`ep.Dist({name}, ...)` is discrete; a Param is continuous."
            )
        if d.event_shape != ():
            from numpyro.distributions.transforms import biject_to  # optional

            try:
                transform = biject_to(d.support)
            except NotImplementedError:
                raise ValueError(
                    f"`ep.Dist({name}, ...)`: numpyro has no bijection onto its "
                    f"support {d.support}, so it has no unconstrained latent."
                ) from None
            self.event_shape = tuple(int(n) for n in d.event_shape)
            latent = transform.inverse_shape(self.event_shape)
            self.latent_event_shape = tuple(int(n) for n in latent)

    def _probe(self) -> Any:
        """The distribution with every argument 1: for its shapes and methods."""
        ones = {k: np.ones(v.shape, np.float32) for k, v in self.args.items()}
        with jax.numpy_dtype_promotion("standard"):  # see `_promotion`
            return self.cls(**ones, **dict(self.static_args))

    def _dist(self, dtype: np.dtype) -> Any:
        args: dict[str, Any] = {k: value_in(v, dtype) for k, v in self.args.items()}
        args.update(self.static_args)
        if self.event_shape:  # its support is checked here (`EventBijection`)
            args["validate_args"] = False
        with self._promotion():
            return self.cls(**args)

    def _promotion(self) -> Any:
        """The dtype promotion numpyro runs under: standard for event shapes.

        numpyro's `LKJCholesky` mixes integer and float arrays, which strict
        promotion refuses. Univariate distributions run as they are.
        """
        if self.event_shape:
            return jax.numpy_dtype_promotion("standard")
        return contextlib.nullcontext()

    def repr_parts(self) -> tuple[str, list[tuple[str | None, Any]]]:
        return self.cls.__name__, [*self.static_args, *self.args.items()]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The shape of a Param with this prior unless it is given one.

        The broadcast shape of the arguments; for an event-shaped distribution,
        its batch shape followed by its event shape.
        """
        if self.event_shape:  # e.g. a Dirichlet's concentration ends in its event
            d = self._probe()
            return tuple(int(n) for n in (*d.batch_shape, *d.event_shape))
        shapes = [tuple(v.shape) for v in self.args.values()]
        return tuple(int(d) for d in np.broadcast_shapes(*shapes)) if shapes else ()

    def latent_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The latent's shape: the transform's domain where there is an event.

        `K - 1` latents for a simplex of `K`; `shape` itself for a univariate
        distribution.
        """
        event = self.event_shape
        if not event:
            return shape
        if tuple(shape[len(shape) - len(event) :]) != event:
            raise ValueError(
                f"`{self.cls.__name__}` has values of event shape {event}; a Param "
                f"of shape {tuple(shape)} does not end in it."
            )
        return tuple(shape[: len(shape) - len(event)]) + self.latent_event_shape

    def value_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The value's shape for a latent of `shape` (see `latent_shape`)."""
        event = self.latent_event_shape
        if not self.event_shape:
            return shape
        return tuple(shape[: len(shape) - len(event)]) + self.event_shape

    @property
    def is_whitened(self) -> bool:
        """Whether numpyro gives this distribution an `icdf` (never with events)."""
        if self.event_shape:
            return False
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
        if self.event_shape:
            return (
                f" `{self.cls.__name__}` has values of event shape "
                f"{self.event_shape} from {self.latent_event_shape} latents (the "
                "transform onto its support), with no exact map from as many "
                "standard normals: it is always centred."
            )
        built_in = _BUILT_IN.get(self.cls.__name__)
        return (
            f" Or use the built-in `{built_in}`, which is whitened." if built_in else ""
        )

    def bijector(self, dtype: Any = np.float32) -> Any:
        """The bijection `biject_to(support)`, as an `EventBijection` with events.

        The `EventBijection`'s `inv` is NaN for values off the support.
        """
        return _bijector(self._dist(np.dtype(dtype)))

    def sample(self, key: Any, shape: tuple[int, ...], dtype: Any) -> Array:
        """Draws of the value, of `shape` (for a centred Param's `ep.normal`)."""
        d = self._dist(event_dtype(dtype) if self.event_shape else np.dtype(dtype))
        drawn = len(d.batch_shape) + len(d.event_shape)
        with self._promotion():
            draws = d.sample(key, shape[: len(shape) - drawn])
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
        """The distribution's `log_prob`, -inf off the support.

        One number per element, or per event for an event-shaped distribution.
        """
        ct, xc = compute(x)
        if self.event_shape:
            return self._event_log_prob(xc, ct)
        d = self._dist(ct)
        inside = d.support(xc)
        lp = d.log_prob(jnp.where(inside, xc, self._inside_point(d, ct)))
        return jnp.broadcast_to(jnp.where(inside, lp, -jnp.inf), x.shape)

    def _event_log_prob(self, x: Array, ct: Any) -> Array:
        """One log density per event, computed in `event_dtype` (see there)."""
        wide = event_dtype(ct)
        d, xw = self._dist(wide), x.astype(wide)
        inside = _bijector(d).contains(x)  # to the precision of `ct`
        ndim = len(self.event_shape)
        where = inside.reshape(inside.shape + (1,) * ndim)
        safe = jnp.where(where, xw, d.support.feasible_like(xw))
        with self._promotion():
            lp = jnp.asarray(d.log_prob(safe))
        lp = jnp.where(inside, lp, -jnp.inf).astype(ct)
        return jnp.broadcast_to(lp, x.shape[: x.ndim - ndim])

    @staticmethod
    def _inside_point(d: Any, ct: Any) -> Array:
        return jnp.asarray(d.support.feasible_like(jnp.zeros((), ct)), ct)

    def _no_icdf(self) -> str:
        return (
            f"`{self.cls.__name__}` has no `icdf` in numpyro, so it has no whitened "
            "transform; a Param with it is centred (`whiten=False`)."
            + self.no_whitening_hint
        )


def _bijector(d: Any) -> Any:
    from numpyro.distributions.transforms import biject_to  # optional

    transform = biject_to(d.support)
    return EventBijection(transform, d.support) if d.event_shape else transform


def _is_static(name: str, value: Any, params: dict) -> bool:
    """Whether an argument is kept static rather than made an array.

    One that is no numpyro parameter and a Python int or string, such as
    `LKJCholesky`'s `dimension` and `sample_method`.
    """
    if name in params or isinstance(value, bool | np.bool_):
        return False
    return isinstance(value, int | np.integer | str)


def _as_static(value: Any) -> Any:
    return int(value) if isinstance(value, np.integer) else value


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
        signature = inspect.signature(cls.__init__).parameters
        for k, parameter in signature.items():  # e.g. `dimension`, if not default
            value = getattr(prior, k, None)
            if k in args or k == "self" or not _is_static(k, value, {}):
                continue
            if value != parameter.default:
                args[k] = value
        rebuilt = Dist(cls, **args)
    except (AttributeError, TypeError) as e:
        raise TypeError(
            f"`ep.Param(prior=...)` could not read the arguments {names} of the "
            f"numpyro `{cls.__name__}` ({e}). Build the prior explicitly: "
            f"`ep.Dist(numpyro.distributions.{cls.__name__}, arg=value, ...)`."
        ) from None
    return rebuilt
