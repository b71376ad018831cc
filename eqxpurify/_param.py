"""`ep.Param`: a trainable quantity, a whitened latent pushed through a prior."""

import functools
import inspect
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._abstract_prior import AbstractPrior
from ._flat import is_traced
from ._pending import PendingShape, pending_dims
from ._wrapper_base import (
    AbstractWrapper,
    abstract_error,
    as_array,
    check_name,
    default_float,
    fields_of,
    shape_str,
    static_shape,
)

__all__ = [
    "Param",
    "ValueShapeError",
    "check_finite",
    "check_flags",
    "latent_dtype_error",
    "latent_of",
    "with_latent",
]


class Param(AbstractWrapper):
    """A trainable quantity, stored as a whitened latent pushed through a prior.

    The latent `z` is standard normal under the prior; the physical value is
    `prior.forward(z)`. Optimisers, samplers and `ep.ravel` see only `z`; prior
    hyperparameters are never trained.

    Construct it in one of three ways:

    - abstract, by shape only: `ep.Param(shape=(n,))` or
      `ep.Param(prior=ep.LogNormal(3.0, 0.1))` (the shape defaults to the prior's
      hyperparameter shape, `()` for scalars). Fill it with `ep.normal`/`ep.zeros`.
    - from a physical value: `ep.Param(2.5, prior=ep.LogNormal(3.0, 0.1))` stores
      `z = prior.inverse(2.5)`.
    - from a latent: `ep.Param.from_latent(z, prior=...)`.

    In float16, bfloat16 and float8 a prior's values saturate in its tails: they
    overflow to inf, underflow to 0 or round onto a Uniform bound. Such a value
    maps back to a latent clamped to the dtype's finite range that gives the same
    value, so every value the library gives out (`ep.values`, `ep.freeze`) loads
    back. A latent too large for the dtype is an error naming the dtype.

    Arguments:
        value: the physical value (array-like), or None for an abstract Param.
        prior: an `ep.AbstractPrior` or a numpyro distribution (made an
            `ep.Dist`); default `ep.Normal(0, 1)`.
        shape: the value's shape (the latent's too, except under a prior whose
            latent is smaller, such as `ep.Dirichlet`: see `prior.latent_shape`);
            inferred from `value` or the prior when omitted. A scalar
            `value` is broadcast to `shape`. A size may be `ep.INPUT`, the last
            axis of the input of the module that holds the Param, resolved by
            `ep.infer_shapes(model, x)` from one example input; the `prior` may
            then be a function from the resolved shape to a prior (a module-level
            function, e.g. a LeCun scale from the fan-in).
        dtype: a floating dtype; default the value's floating dtype, else JAX's
            default float (float32, or float64 under `jax_enable_x64`).
        latent: the latent instead of `value` (what `from_latent` uses).
        sharding: a `jax.sharding.Sharding` for the latent. An abstract Param
            keeps it in its `jax.ShapeDtypeStruct`, so `ep.normal` and `ep.zeros`
            create the latent directly in its shards.
        whiten: the parameterisation. None (default): whitened (latent ~ N(0, 1),
            value `prior.forward(latent)`) where the prior has an exact transform
            from a standard normal, centred otherwise (`ep.Flat`, numpyro
            distributions without an `icdf`). False: centred, the prior wrapped in
            `ep.Centred` (latent on the real line, value the support's bijection
            of it). True: whitened, or an error for a prior without a transform.
        name: a name that makes the Param shareable: every Param of one name in
            a model is one parameter (one latent, trained once, its prior counted
            once), wherever it is used: two fields, a layer applied twice, a
            hyperparameter of several priors. The first use in path order holds
            the parameter. The same Param object in several places needs a name,
            so that the tie survives JAX transformations; see `ep.share`.

    Examples:
        >>> import eqxpurify as ep
        >>> p = ep.Param(2.5, prior=ep.LogNormal(3.0, 0.1))
        >>> p
        Param(2.5, prior=LogNormal(mean=3, sd=0.1))
        >>> round(float(p.value), 4), p.shape
        (2.5, ())
        >>> ep.Param(shape=(3,)).is_abstract
        True
    """

    latent: Float[Array, "..."] | jax.ShapeDtypeStruct | PendingShape
    prior: AbstractPrior
    name: str | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        value: ArrayLike | None = None,
        *,
        prior: Any = None,
        shape: int | np.integer | Sequence[Any] | None = None,  # ints, `ep.INPUT`
        dtype: Any = None,
        latent: ArrayLike | None = None,
        sharding: jax.sharding.Sharding | None = None,
        whiten: bool | None = None,
        name: str | None = None,
    ):
        # Priors are built from Params (hierarchies), so their modules import this.
        from ._centred import parameterised
        from ._numpyro import as_prior

        self.name = check_name(name, "ep.Param")
        pending = pending_dims(shape, "ep.Param")
        prior_fn = None
        if pending is not None and _is_function(prior):
            prior_fn, prior = prior, None  # a prior made for the resolved shape
        if prior is None:
            from ._priors import standard_normal

            prior = standard_normal()
        else:
            prior = as_prior(prior)
        if not isinstance(prior, AbstractPrior):
            raise TypeError(
                "`prior` must be an `ep.AbstractPrior` such as `ep.Normal(0, 1)`, "
                f"or a numpyro distribution, got {type(prior).__name__}."
            )
        chosen: AbstractPrior = parameterised(prior, whiten)
        if value is not None and latent is not None:
            raise ValueError("Pass at most one of `value` and `latent` to `ep.Param`.")
        if pending is not None:  # a size that waits for an input
            if value is not None or latent is not None:
                raise ValueError(
                    "`ep.Param`: a `shape` with `ep.INPUT` is for a Param without a "
                    "value yet; `ep.infer_shapes(model, x)` resolves it."
                )
            dtype = default_float() if dtype is None else np.dtype(dtype)
            _check_float(dtype)
            self.latent = PendingShape(pending, dtype, sharding, prior_fn)
            self.prior = chosen
            return
        if shape is not None:
            shape = static_shape(shape, "ep.Param")
        given = value if latent is None else latent
        if given is None:
            dtype = default_float() if dtype is None else np.dtype(dtype)
            _check_float(dtype)
            if shape is None:
                shape = chosen.batch_shape
            _check_broadcast(chosen, shape)
            latent_shape = chosen.latent_shape(shape)
            self.latent = jax.ShapeDtypeStruct(latent_shape, dtype, sharding=sharding)
        else:
            what = "value" if latent is None else "latent"
            arr = as_array(_ints_as_floats(given), None, "ep.Param")
            if jnp.issubdtype(arr.dtype, jnp.complexfloating):
                raise TypeError(
                    f"`ep.Param` got a complex {what}; a Param is real. Use two "
                    "Params (real and imaginary parts), or `ep.Fixed` for data."
                )
            if dtype is None:
                is_float = jnp.issubdtype(arr.dtype, jnp.floating)
                dtype = arr.dtype if is_float else default_float()
            dtype = np.dtype(dtype)
            _check_float(dtype)
            # `shape` is the value's; a latent has `chosen.latent_shape(shape)`.
            if shape is None:
                # A scalar fills the prior's batch shape; an array is the shape.
                if not arr.ndim:
                    shape = chosen.batch_shape
                elif latent is None:
                    shape = tuple(arr.shape)
                else:
                    shape = chosen.value_shape(tuple(arr.shape))
            target = shape if latent is None else chosen.latent_shape(shape)
            if _broadcast(arr.shape, target) != target:
                raise ValueError(
                    f"`ep.Param` got a {what} of shape {shape_str(arr.shape)} that "
                    f"does not broadcast to `shape={shape_str(target)}`."
                )
            _check_broadcast(chosen, shape)
            arr = jnp.broadcast_to(arr, target)
            if latent is None:
                arr = as_array(arr, dtype, "ep.Param")
                z, outside, overflow = latent_of(chosen, arr, dtype)
                arr = check_flags(
                    z,
                    (
                        outside,
                        "`ep.Param` got a value outside the support of its prior "
                        f"{type(chosen).__name__} (`prior.inverse(value)` is not "
                        "finite). Pass a value inside the prior's support (e.g. "
                        "positive for LogNormal, strictly inside (low, high) for "
                        "Uniform).",
                    ),
                    (
                        overflow,
                        f"`ep.Param` got a value whose latent overflows {dtype.name}"
                        ": `prior.inverse(value)` is not finite. Pass a value "
                        "nearer the prior's median (inside its support), or a wider "
                        "`dtype=`.",
                    ),
                )
            else:
                arr = check_finite(
                    arr.astype(dtype),
                    "`ep.Param.from_latent` got a latent that is not finite (NaN or "
                    "inf) in its dtype. Pass finite latents; the physical value is "
                    "`prior.forward(latent)`.",
                )
            if sharding is not None:
                arr = jax.device_put(arr, sharding)
            self.latent = arr
        self.prior = chosen

    @classmethod
    def from_latent(
        cls,
        latent: ArrayLike,
        *,
        prior: Any = None,
        dtype: Any = None,
        whiten: bool | None = None,
        name: str | None = None,
    ) -> "Param":
        """A Param whose latent is `latent` (its value is `prior.forward(latent)`).

        With `whiten=False` the latent is the unconstrained one (centred: the
        value is the support's bijection of it).
        """
        return cls(latent=latent, prior=prior, dtype=dtype, whiten=whiten, name=name)

    @property
    def is_abstract(self) -> bool:
        return isinstance(self.latent, jax.ShapeDtypeStruct | PendingShape)

    @property
    def value(self) -> Array:
        """The physical value `prior.forward(latent)`: the latent's shape and dtype.

        A prior whose hyperparameters would broadcast the value to another shape
        (swapped in with `eqx.tree_at`, say) is an error.
        """
        if self.is_abstract:
            raise abstract_error(self)
        assert not isinstance(self.latent, jax.ShapeDtypeStruct | PendingShape)
        return param_value(self.latent, self.prior)

    @property
    def shape(self) -> tuple[Any, ...]:
        """The shape of `.value` (with `ep.INPUT` where a size waits for an input).

        The latent has this shape too, except under a prior whose latent is
        smaller than its value (`ep.Dirichlet`, `ep.LKJCholesky`): then
        `prior.latent_shape(shape)`.
        """
        latent = self.latent
        if isinstance(latent, PendingShape):
            return tuple(latent.shape)
        prior = self.prior
        if isinstance(prior, AbstractPrior):
            return prior.value_shape(tuple(latent.shape))
        return tuple(latent.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.latent.dtype)


def _is_function(prior: Any) -> bool:
    """Whether `prior` is a function that makes a prior for a resolved shape.

    A numpyro distribution is callable too (it samples), so callability is not
    the test.
    """
    return inspect.isroutine(prior) or isinstance(prior, functools.partial)


def with_latent(param: Param, latent: Any) -> Param:
    """`param` with another latent (an array or a struct), unvalidated."""
    new = object.__new__(Param)
    fields = fields_of(new)
    fields.update(fields_of(param))
    fields["latent"] = latent
    return new


def param_value(latent: Array, prior: AbstractPrior) -> Array:
    """`prior.forward(latent)`, checked to keep the latent's shape and dtype."""
    if not jnp.issubdtype(latent.dtype, jnp.floating):
        raise latent_dtype_error(None, latent.dtype, None)
    out = prior.forward(latent)
    if jnp.shape(out) != prior.value_shape(tuple(latent.shape)):
        raise ValueShapeError(
            f"The prior `{type(prior).__name__}` makes the value of shape "
            f"{shape_str(jnp.shape(out))} from a latent of shape "
            f"{shape_str(latent.shape)}: its hyperparameters have shape "
            f"{shape_str(prior.batch_shape)}, which does not broadcast to "
            "the Param's shape (was the prior replaced with `eqx.tree_at`?). "
            "Give the prior hyperparameters of a broadcastable shape, or build "
            "the Param anew: `ep.Param(value, prior=...)`."
        )
    if out.dtype != latent.dtype:  # e.g. float64 hyperparameters
        out = out.astype(latent.dtype)
    return out


class ValueShapeError(ValueError):
    """A Param whose prior gives its value another shape than its latent's."""


class LatentDtypeError(TypeError):
    """A Param whose latent is not a floating array (e.g. set with `eqx.tree_at`)."""


def latent_dtype_error(
    path: str | None, dtype: Any, caller: str | None
) -> LatentDtypeError:
    """The error for a Param whose latent has a non-floating `dtype`."""
    lead = f"`{caller}`: the" if caller else "The"
    where = f" at `{path}`" if path else ""
    return LatentDtypeError(
        f"{lead} Param{where} has a latent of dtype {dtype}, not a floating array "
        "(was `.latent` set with `eqx.tree_at`?), so it would silently drop out of "
        "training. Set Params with `ep.set_value(model, where, value)` (physical "
        "value) or replace the whole node: `eqx.tree_at(where, model, "
        "ep.Param(value, prior=...))`."
    )


def _check_float(dtype: np.dtype) -> None:
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"`ep.Param` needs a floating dtype, got {dtype}. Integer and boolean "
            "data is never trained: store it as `ep.Fixed(...)` or a plain field."
        )


def _broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """The broadcast shape, or None where the shapes do not broadcast."""
    try:
        return tuple(jnp.broadcast_shapes(*shapes))
    except ValueError:
        return None


def _check_broadcast(prior: AbstractPrior, shape: tuple[int, ...]) -> None:
    batch = prior.batch_shape
    if _broadcast(batch, shape) != shape:
        raise ValueError(
            f"The prior's hyperparameters have shape {shape_str(batch)}, which does "
            f"not broadcast to the Param's shape {shape_str(shape)}. Give the Param "
            "a matching `shape=` or hyperparameters of a broadcastable shape."
        )


def check_finite(latent: Array, message: str) -> Array:
    """Raise `message` unless `latent` is finite.

    The check runs now if `latent` is concrete, and at run time if it is traced
    (with `eqx.error_if`, so a jitted constructor cannot yield NaN).
    """
    if is_traced(latent):
        return eqx.error_if(latent, ~jnp.all(jnp.isfinite(latent)), message)
    if not np.all(np.isfinite(np.asarray(latent))):
        raise ValueError(message)
    return latent


def check_flags(latent: Array, *checks: tuple[Any, str]) -> Array:
    """Raise the message of the first `(flags, message)` whose flags hold.

    Now if the flags are concrete, at run time (`eqx.error_if`) if traced.
    """
    for flags, message in checks:
        if is_traced(flags):
            latent = eqx.error_if(latent, jnp.any(flags), message)
        elif np.any(np.asarray(flags)):
            raise ValueError(message)
    return latent


def latent_of(prior: AbstractPrior, value: Array, dtype: np.dtype) -> tuple:
    """`(latent, outside, overflow)` of a physical value, for a Param of `dtype`.

    `outside` flags values outside the prior's support, `overflow` latents too
    large for `dtype`. Built-in priors compute in at least float32. In a lower
    precision their values saturate for moderate latents (|z| < 8): they overflow
    to inf, underflow to 0, or round onto a bound. So a low-precision value whose
    latent is not finite gets the latent clamped to `dtype`'s finite range if
    that latent maps back onto the very same value: the library takes back every
    value it gives out. (In float32 and float64 they do not saturate; an inf value
    is refused.)
    """
    x = value.astype(dtype)
    latent = jnp.asarray(prior.inverse(x)).astype(dtype)
    fits = jnp.isfinite(latent)
    if not is_traced(fits) and np.all(np.asarray(fits)):
        return latent, False, False
    if latent.shape != x.shape:  # a prior with fewer latents than values
        outside = jnp.any(jnp.isnan(latent)) | jnp.any(~jnp.isfinite(x))
        return latent, outside, jnp.any(~fits) & ~outside
    # NaN: outside the support; inf from a finite value: an overflowing latent.
    outside = ~fits & (jnp.isnan(latent) | ~jnp.isfinite(x))
    if np.dtype(dtype).itemsize >= 4:
        return latent, outside, ~fits & ~outside
    clamped = _saturating_latent(prior, x, latent, dtype)
    same = prior.forward(clamped).astype(dtype) == x
    saturated = ~fits & ~jnp.isnan(latent) & same
    latent = jnp.where(saturated, clamped, latent)
    outside = outside & ~saturated
    return latent, outside, ~fits & ~saturated & ~outside


def _saturating_latent(
    prior: AbstractPrior, x: Array, latent: Array, dtype: np.dtype
) -> Array:
    """The latent of least magnitude that maps onto a saturated value `x`.

    Tried on a ladder of powers of two (8, 16, ... up to the dtype's largest
    finite number), on the side of `latent`'s sign: so a value that underflowed
    to 0 or overflowed to inf gets a latent such as -256, whose log density and
    gradient stay finite, rather than the dtype's largest number (whose square is
    inf). Where no rung maps onto `x`, the largest finite number is returned (and
    `latent_of` finds that it does not map back either).
    """
    info = jnp.finfo(dtype)
    ladder = np.append(2.0 ** np.arange(3, info.maxexp), float(info.max))
    ladder = jnp.asarray(ladder.astype(dtype))
    sign = jnp.where(latent < 0, -1, 1).astype(dtype)
    hits = jax.vmap(lambda c: prior.forward(sign * c).astype(dtype) == x)(ladder)
    rung = ladder[jnp.argmax(hits, axis=0)]
    return sign * jnp.where(jnp.any(hits, axis=0), rung, ladder[-1])


def _ints_as_floats(value: Any) -> Any:
    """Python or NumPy integers and bools for a Param value, as float64 on the host.

    So a large Python int (`2**31`) needs no int64; the Param's dtype is JAX's
    default float either way.
    """
    if isinstance(value, jax.Array | AbstractWrapper | AbstractPrior | str | bytes):
        return value
    try:
        host = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        return value
    return host.astype(np.float64) if host.dtype.kind in "iub" else value
