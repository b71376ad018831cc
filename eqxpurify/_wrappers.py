"""The wrappers that tag a model's fields: `Param` and `Fixed`."""

import abc
import functools
from collections.abc import Sequence
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Shaped

from ._flat import compute_dtype, is_traced
from ._priors import AbstractPrior, Normal

__all__ = ["AbstractWrapper", "Fixed", "Param", "is_fixed", "is_param", "is_wrapper"]

_W = TypeVar("_W", bound="AbstractWrapper")

_INIT_HINT = "Initialise it with `ep.normal(model, key=key)` or `ep.zeros(model)`."


def build(cls: type[_W], **fields: Any) -> _W:
    """Make a wrapper from already-validated fields, skipping `__init__`.

    This is what `jax.tree.unflatten` does for every `eqx.Module`; the library uses
    it on its fast paths (partition, init, ravel) where the fields are known good.
    """
    obj = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    return obj


@functools.cache
def standard_normal() -> Normal:
    """The default prior, shared by every Param that names none.

    Built concretely even when first asked for inside `jax.jit`, so the cached
    instance never holds a tracer.
    """
    with jax.ensure_compile_time_eval():
        return Normal(0.0, 1.0)


def _default_float() -> np.dtype:
    return jax.dtypes.canonicalize_dtype(float)


def shape_str(shape: tuple[int, ...]) -> str:
    return (
        "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    )


class AbstractWrapper(eqx.Module):
    """A tagged field of a model. `ep.unwrap` replaces each wrapper by `.value`."""

    @property
    @abc.abstractmethod
    def value(self) -> Array:
        """The plain array that model code computes with."""

    @property
    @abc.abstractmethod
    def is_abstract(self) -> bool:
        """Whether this wrapper holds only a shape and dtype, no values yet."""

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, ...]:
        """The shape of `.value`."""

    @property
    @abc.abstractmethod
    def dtype(self) -> np.dtype:
        """The dtype of `.value`."""


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

    Arguments:
        value: the physical value (array-like), or None for an abstract Param.
        prior: an `ep.AbstractPrior`; default `ep.Normal(0, 1)`.
        shape: the shape; inferred from `value` or the prior when omitted. A scalar
            `value` is broadcast to `shape`.
        dtype: a floating dtype; default the value's floating dtype, else JAX's
            default float (float32, or float64 under `jax_enable_x64`).
        latent: the latent instead of `value` (what `from_latent` uses).

    Example:
        >>> import eqxpurify as ep
        >>> p = ep.Param(2.5, prior=ep.LogNormal(3.0, 0.1))
        >>> round(float(p.value), 4), p.shape
        (2.5, ())
        >>> ep.Param(shape=(3,)).is_abstract
        True
    """

    latent: Float[Array, "..."] | jax.ShapeDtypeStruct
    prior: AbstractPrior

    def __init__(
        self,
        value: ArrayLike | None = None,
        *,
        prior: AbstractPrior | None = None,
        shape: int | Sequence[int] | None = None,
        dtype: Any = None,
        latent: ArrayLike | None = None,
    ):
        if prior is None:
            prior = standard_normal()
        elif not isinstance(prior, AbstractPrior):
            raise TypeError(
                "`prior` must be an `ep.AbstractPrior` such as `ep.Normal(0, 1)`, "
                f"got {type(prior).__name__}."
            )
        if value is not None and latent is not None:
            raise ValueError("Pass at most one of `value` and `latent` to `ep.Param`.")
        if shape is not None:
            shape = _static_shape(shape, "ep.Param")
        given = value if latent is None else latent
        if given is None:
            dtype = _default_float() if dtype is None else np.dtype(dtype)
            _check_float(dtype)
            if shape is None:
                shape = prior.batch_shape
            _check_broadcast(prior, shape)
            self.latent = jax.ShapeDtypeStruct(shape, dtype)
        else:
            arr = jnp.asarray(given)
            if dtype is None:
                is_float = jnp.issubdtype(arr.dtype, jnp.floating)
                dtype = arr.dtype if is_float else _default_float()
            dtype = np.dtype(dtype)
            _check_float(dtype)
            if shape is None:
                shape = _broadcast(arr.shape, prior.batch_shape)
                if shape is None:
                    _check_broadcast(prior, arr.shape)  # raises, naming both shapes
                    raise AssertionError  # pragma: no cover
            if _broadcast(arr.shape, shape) != shape:
                raise ValueError(
                    f"`ep.Param` got a value of shape {shape_str(arr.shape)} that "
                    f"does not broadcast to `shape={shape_str(shape)}`."
                )
            _check_broadcast(prior, shape)
            arr = jnp.broadcast_to(arr, shape)
            if latent is None:
                ct = compute_dtype(dtype)
                arr = check_finite(
                    prior.inverse(arr.astype(ct)),
                    f"`ep.Param` got a value outside the support of its prior "
                    f"{type(prior).__name__}: `prior.inverse(value)` is not finite. "
                    "Pass a value inside the prior's support (e.g. positive for "
                    "LogNormal, strictly inside (low, high) for Uniform).",
                )
            else:
                arr = check_finite(
                    arr,
                    "`ep.Param.from_latent` got a latent that is not finite (NaN or "
                    "inf). Pass finite latents; the physical value is "
                    "`prior.forward(latent)`.",
                )
            self.latent = arr.astype(dtype)
        self.prior = prior

    @classmethod
    def from_latent(
        cls, latent: ArrayLike, *, prior: AbstractPrior | None = None, dtype: Any = None
    ) -> "Param":
        """A Param whose latent is `latent` (its value is `prior.forward(latent)`)."""
        return cls(latent=latent, prior=prior, dtype=dtype)

    @property
    def is_abstract(self) -> bool:
        return isinstance(self.latent, jax.ShapeDtypeStruct)

    @property
    def value(self) -> Array:
        """The physical value `prior.forward(latent)`."""
        if self.is_abstract:
            raise ValueError(
                f"This Param (shape {shape_str(self.shape)}) is abstract: it has a "
                f"shape but no value yet. {_INIT_HINT}"
            )
        assert not isinstance(self.latent, jax.ShapeDtypeStruct)
        return self.prior.forward(self.latent)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.latent.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.latent.dtype)


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
    """Raise `message` unless `latent` is finite: now if concrete, at run time if
    traced (with `eqx.error_if`, so a jitted constructor cannot yield NaN)."""
    if is_traced(latent):
        return eqx.error_if(latent, ~jnp.all(jnp.isfinite(latent)), message)
    if not np.all(np.isfinite(np.asarray(latent))):
        raise ValueError(message)
    return latent


def _static_shape(shape: Any, owner: str) -> tuple[int, ...]:
    """Validate a `shape=` argument: static, non-negative Python ints."""
    if isinstance(shape, int):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in dims
    ):
        raise TypeError(
            f"`{owner}`: `shape` must be a tuple of static Python ints, got "
            f"{shape!r}. Shapes cannot be traced values: pass them as Python ints "
            "(e.g. mark them static in `jax.jit`)."
        )
    if any(d < 0 for d in dims):
        raise ValueError(
            f"`{owner}`: `shape` must have non-negative dimensions, got {dims}."
        )
    return tuple(int(d) for d in dims)


class Fixed(AbstractWrapper):
    """Data that is part of the model but never trained.

    `ep.partition` puts Fixed arrays in the non-trainable half, so no optimizer
    (weight decay and momentum included) ever updates them, and `.value` is
    `stop_gradient` of the array.

    Arguments:
        value: the array (any dtype), or None for an abstract Fixed filled later
            with `eqx.tree_at` or `ep.set_value`.
        shape: the shape of an abstract Fixed.
        dtype: the dtype (default JAX's default float for an abstract Fixed).
        prior: the prior of the Param this Fixed was frozen from. `ep.freeze` sets
            it so that `ep.unfreeze` restores the Param; it is never used otherwise
            (a Fixed is not transformed) and is not trained.
    """

    array: Shaped[Array, "..."] | jax.ShapeDtypeStruct
    prior: AbstractPrior | None = eqx.field(default=None, repr=False)

    def __init__(
        self,
        value: ArrayLike | None = None,
        *,
        shape: int | Sequence[int] | None = None,
        dtype: Any = None,
        prior: AbstractPrior | None = None,
    ):
        if prior is not None and not isinstance(prior, AbstractPrior):
            raise TypeError(
                "`prior` must be an `ep.AbstractPrior` or None, got "
                f"{type(prior).__name__}."
            )
        self.prior = prior
        if shape is not None:
            shape = _static_shape(shape, "ep.Fixed")
        if value is None:
            if shape is None:
                raise ValueError(
                    "`ep.Fixed` needs a `value`, or a `shape=` for an abstract Fixed."
                )
            dtype = _default_float() if dtype is None else np.dtype(dtype)
            self.array = jax.ShapeDtypeStruct(shape, dtype)
        else:
            arr = jnp.asarray(value) if dtype is None else jnp.asarray(value, dtype)
            if shape is not None and arr.shape != shape:
                raise ValueError(
                    f"`ep.Fixed` got a value of shape {shape_str(arr.shape)} but "
                    f"`shape={shape_str(shape)}`."
                )
            self.array = arr

    @property
    def is_abstract(self) -> bool:
        return isinstance(self.array, jax.ShapeDtypeStruct)

    @property
    def value(self) -> Array:
        """The array, behind `stop_gradient`."""
        if self.is_abstract:
            raise ValueError(
                f"This Fixed (shape {shape_str(self.shape)}) is abstract: fill it "
                "with `ep.set_value(model, where, array)` or "
                "`eqx.tree_at(where, model, ep.Fixed(array))` before use."
            )
        assert not isinstance(self.array, jax.ShapeDtypeStruct)
        return jax.lax.stop_gradient(self.array)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)


@jax.jit
def _param_value(param: "Param") -> Array:
    # Eagerly, one compiled call per Param is cheaper than the prior's 3-4 ops.
    return param.value


def value_of(node: AbstractWrapper) -> Array:
    """`node.value`, through one cached compiled call for a concrete Param."""
    if isinstance(node, Param) and not is_traced(node.latent):
        return _param_value(node)
    return node.value


def check_model(model: Any) -> None:
    """Refuse a class where a model instance is expected."""
    if isinstance(model, type):
        raise TypeError(
            f"`model` must be a model instance, but got the class `{model.__name__}` "
            f"itself. Construct it first, e.g. `{model.__name__}(...)`."
        )


def is_param(node: Any) -> bool:
    """Whether `node` is an `ep.Param` (usable as `is_leaf` with JAX and Equinox)."""
    return isinstance(node, Param)


def is_fixed(node: Any) -> bool:
    """Whether `node` is an `ep.Fixed` (usable as `is_leaf` with JAX and Equinox)."""
    return isinstance(node, Fixed)


def is_wrapper(node: Any) -> bool:
    """Whether `node` is an `ep.Param` or `ep.Fixed`."""
    return isinstance(node, AbstractWrapper)
