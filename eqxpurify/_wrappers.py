"""The wrappers that tag a model's fields: `Param` and `Fixed`."""

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Shaped

from ._abstract_prior import AbstractPrior
from ._flat import is_traced
from ._format import pdoc, treescope_constructor, wrapper_str
from ._storage import hide, is_array, reveal, storage_dtype, storage_shape

__all__ = ["AbstractWrapper", "Fixed", "Param", "is_fixed", "is_param", "is_wrapper"]

_W = TypeVar("_W", bound="AbstractWrapper")


def abstract_error(
    node: "AbstractWrapper", path: str | None = None, caller: str | None = None
) -> ValueError:
    """The one error for using an abstract wrapper: its path and how to fill it."""
    kind = type(node).__name__
    where = f" at `{path}`" if path else ""
    lead = f"`{caller}`: the" if caller else "The"
    if isinstance(node, Param):
        fix = (
            "Initialise it first: `model = ep.normal(model, key=key)` or "
            "`model = ep.zeros(model)`."
        )
    else:
        fix = (
            "Fill it first: `ep.set_value(model, where, array)` or "
            "`eqx.tree_at(where, model, ep.Fixed(array))`."
        )
    return ValueError(
        f"{lead} {kind}{where} is abstract (shape {shape_str(node.shape)}, no value "
        f"yet). {fix}"
    )


def build(cls: type[_W], **fields: Any) -> _W:
    """Make a wrapper from already-validated fields, skipping `__init__`.

    This is what `jax.tree.unflatten` does for every `eqx.Module`; the library uses
    it on its fast paths (partition, init, ravel) where the fields are known good.
    """
    obj = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(obj, name, value)
    return obj


def with_prior(node: "_W", prior: Any) -> "_W":
    """`node` (a Param or Fixed) with its `prior` field replaced, unvalidated."""
    fields = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
    fields["prior"] = prior
    return build(type(node), **fields)


def _any_dtype(dtype: Any) -> Any:
    """`np.dtype(dtype)`, or JAX's extended dtype (PRNG keys) as it is."""
    if jax.dtypes.issubdtype(dtype, jax.dtypes.extended):
        return dtype
    return np.dtype(dtype)


def _default_float() -> np.dtype:
    return jax.dtypes.canonicalize_dtype(float)


def shape_str(shape: tuple[int, ...]) -> str:
    return (
        "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    )


_ARRAY_HINT = (
    "An `ep.{kind}` is a wrapper, not an array: read its array with `.value`, or "
    "let model code see plain arrays by decorating the method with `@ep.unwrapped` "
    "(or calling `ep.unwrap(model)` first)."
)


def _not_an_array(name: str) -> Any:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        del args, kwargs
        raise TypeError(
            f"`{name}` is not defined on `ep.{type(self).__name__}`. "
            + _ARRAY_HINT.format(kind=type(self).__name__)
        )

    method.__name__ = name
    return method


_OPERATORS = (
    "__add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ "
    "__floordiv__ __rfloordiv__ __mod__ __rmod__ __pow__ __rpow__ __matmul__ "
    "__rmatmul__ __neg__ __pos__ __abs__ __lt__ __le__ __gt__ __ge__ __getitem__ "
    "__array__ __jax_array__ __float__ __int__ __index__"
).split()


class AbstractWrapper(eqx.Module):
    """A tagged field of a model: `ep.Param` or `ep.Fixed`.

    Closed: not for subclassing. `ep.unwrap` replaces each wrapper by its `.value`.
    """

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
    def dtype(self) -> Any:
        """The dtype of `.value`."""

    # Readable text: physical values, via `print`/`repr` and Equinox's printer.
    __repr__ = wrapper_str
    __pdoc__ = pdoc

    def __treescope_repr__(self, path: Any, subtree_renderer: Any) -> Any:
        """Render in treescope by physical value, prior, and whether it trains."""
        if self.is_abstract:
            value: Any = jax.ShapeDtypeStruct(self.shape, self.dtype)
        elif isinstance(self, Fixed) and self.stored.dtype != storage_dtype(self.kind):
            value = self.stored
        else:
            value = self.value
        attributes = {"value": value}
        if getattr(self, "prior", None) is not None:
            attributes["prior"] = self.prior
        attributes["trains"] = isinstance(self, Param)
        return treescope_constructor(self, attributes, path, subtree_renderer)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ != __name__:
            raise TypeError(
                "`ep.AbstractWrapper` is closed: the library's functions know "
                "exactly `ep.Param` and `ep.Fixed`. Put a Param or Fixed in a field "
                "of your own `eqx.Module` instead of subclassing."
            )


for _name in _OPERATORS:
    setattr(AbstractWrapper, _name, _not_an_array(_name))
del _name


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
        prior: an `ep.AbstractPrior`; default `ep.Normal(0, 1)`.
        shape: the shape; inferred from `value` or the prior when omitted. A scalar
            `value` is broadcast to `shape`.
        dtype: a floating dtype; default the value's floating dtype, else JAX's
            default float (float32, or float64 under `jax_enable_x64`).
        latent: the latent instead of `value` (what `from_latent` uses).
        sharding: a `jax.sharding.Sharding` for the latent. An abstract Param
            keeps it in its `jax.ShapeDtypeStruct`, so `ep.normal` and `ep.zeros`
            create the latent directly in its shards.

    Examples:
        >>> import eqxpurify as ep
        >>> p = ep.Param(2.5, prior=ep.LogNormal(3.0, 0.1))
        >>> p
        Param(2.5, prior=LogNormal(3, 0.1))
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
        sharding: jax.sharding.Sharding | None = None,
    ):
        if prior is None:
            from ._priors import standard_normal

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
            self.latent = jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
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
                dtype = arr.dtype if is_float else _default_float()
            dtype = np.dtype(dtype)
            _check_float(dtype)
            if shape is None:
                # A scalar fills the prior's batch shape; an array is the shape.
                shape = tuple(arr.shape) if arr.ndim else prior.batch_shape
            elif _broadcast(arr.shape, shape) != shape:
                raise ValueError(
                    f"`ep.Param` got a {what} of shape {shape_str(arr.shape)} that "
                    f"does not broadcast to `shape={shape_str(shape)}`."
                )
            _check_broadcast(prior, shape)
            arr = jnp.broadcast_to(arr, shape)
            if latent is None:
                arr = as_array(arr, dtype, "ep.Param")
                z, outside, overflow = latent_of(prior, arr, dtype)
                arr = check_flags(
                    z,
                    (
                        outside,
                        "`ep.Param` got a value outside the support of its prior "
                        f"{type(prior).__name__} (`prior.inverse(value)` is not "
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
        """The physical value `prior.forward(latent)`: the latent's shape and dtype.

        A prior whose hyperparameters would broadcast the value to another shape
        (swapped in with `eqx.tree_at`, say) is an error.
        """
        if self.is_abstract:
            raise abstract_error(self)
        assert not isinstance(self.latent, jax.ShapeDtypeStruct)
        out = self.prior.forward(self.latent)
        if jnp.shape(out) != self.latent.shape:
            raise ValueShapeError(
                f"The prior `{type(self.prior).__name__}` makes the value of shape "
                f"{shape_str(jnp.shape(out))} from a latent of shape "
                f"{shape_str(self.latent.shape)}: its hyperparameters have shape "
                f"{shape_str(self.prior.batch_shape)}, which does not broadcast to "
                "the Param's shape (was the prior replaced with `eqx.tree_at`?). "
                "Give the prior hyperparameters of a broadcastable shape, or build "
                "the Param anew: `ep.Param(value, prior=...)`."
            )
        if out.dtype != self.latent.dtype:  # e.g. float64 hyperparameters
            out = out.astype(self.latent.dtype)
        return out

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.latent.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.latent.dtype)


class ValueShapeError(ValueError):
    """A Param whose prior gives its value another shape than its latent's."""


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
    # NaN: outside the support; inf from a finite value: an overflowing latent.
    outside = ~fits & (jnp.isnan(latent) | ~jnp.isfinite(x))
    if np.dtype(dtype).itemsize >= 4:
        return latent, outside, ~fits & ~outside
    big = float(jnp.finfo(dtype).max)
    clamped = jnp.clip(jnp.nan_to_num(latent, nan=0.0), -big, big).astype(dtype)
    same = prior.forward(clamped).astype(dtype) == x
    saturated = ~fits & ~jnp.isnan(latent) & same
    latent = jnp.where(saturated, clamped, latent)
    outside = outside & ~saturated
    return latent, outside, ~fits & ~saturated & ~outside


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

    A floating array is stored as its bits, viewed as an unsigned integer of the
    same width (`stored`), so no tool that trains "every floating array" of a model
    (`eqx.is_inexact_array` filters, adamw's weight decay, numpyro's
    `random_eqx_module`) can see or move it, and `jax.grad` of a whole model
    refuses it rather than differentiating it. `.value` bit-casts it back (free in
    XLA) behind `stop_gradient`. Integer, boolean and key data is stored as it is.

    Arguments:
        value: the array (any dtype), or None for an abstract Fixed filled later
            with `ep.set_value` or `eqx.tree_at`.
        shape: the shape of an abstract Fixed.
        dtype: the dtype (default JAX's default float for an abstract Fixed).
        prior: the prior of the Param this Fixed was frozen from. `ep.freeze` sets
            it so that `ep.unfreeze` restores the Param; it is never used otherwise
            (a Fixed is not transformed) and is not trained.

    Examples:
        >>> import jax.numpy as jnp, equinox as eqx, eqxpurify as ep
        >>> t = ep.Fixed(jnp.array([0.0, 0.5, 1.0]))
        >>> t.value, t.dtype
        (Array([0. , 0.5, 1. ], dtype=float32), dtype('float32'))
        >>> eqx.is_inexact_array(t.stored)  # invisible to optimizers
        False
    """

    stored: Shaped[Array, "..."] | jax.ShapeDtypeStruct
    kind: np.dtype = eqx.field(static=True)
    prior: "AbstractPrior | None" = eqx.field(default=None, repr=False)

    def __init__(
        self,
        value: ArrayLike | None = None,
        *,
        shape: int | Sequence[int] | None = None,
        dtype: Any = None,
        prior: "AbstractPrior | None" = None,
    ):
        if prior is not None and not isinstance(prior, AbstractPrior):
            raise TypeError(
                "`ep.Fixed(prior=...)` must be an `ep.AbstractPrior` or None, got "
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
            kind = _default_float() if dtype is None else _any_dtype(dtype)
            self.stored = jax.ShapeDtypeStruct(
                storage_shape(shape, kind), storage_dtype(kind)
            )
            self.kind = kind
            return
        if is_wrapper(value):
            raise TypeError(
                f"`ep.Fixed` got an `ep.{type(value).__name__}`; pass its array "
                "(`.value`), or use `ep.freeze` to turn a Param into a Fixed."
            )
        arr = as_array(value, dtype, "ep.Fixed")
        if shape is not None and arr.shape != shape:
            raise ValueError(
                f"`ep.Fixed` got a value of shape {shape_str(arr.shape)} but "
                f"`shape={shape_str(shape)}`."
            )
        self.kind = arr.dtype
        self.stored = hide(arr)

    @property
    def is_abstract(self) -> bool:
        return isinstance(self.stored, jax.ShapeDtypeStruct)

    @property
    def array(self) -> Array:
        """The array itself (without `stop_gradient`)."""
        if self.is_abstract:
            raise abstract_error(self)
        check_storage(self)
        return reveal(self.stored, self.kind)

    @property
    def value(self) -> Array:
        """The array, behind `stop_gradient`."""
        return jax.lax.stop_gradient(self.array)

    @property
    def shape(self) -> tuple[int, ...]:
        shape = tuple(self.stored.shape)
        return shape[:-1] if jnp.issubdtype(self.kind, jnp.complexfloating) else shape

    @property
    def dtype(self) -> Any:
        return self.kind


def as_array(value: Any, dtype: Any, owner: str) -> Array:
    """`value` as an array (of `dtype` if given), refusing non-array objects.

    A finite number that becomes inf in the array's dtype is an error.
    """
    if value is None or isinstance(value, str | bytes | AbstractPrior):
        raise TypeError(
            f"`{owner}` needs an array or a number, got {type(value).__name__}."
        )
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            if dtype is None:
                if isinstance(value, jax.Array):
                    return value
                arr = jnp.asarray(value)
            else:
                arr = jnp.asarray(value, dtype)
    except OverflowError as e:  # a Python int too large for JAX's default int
        raise ValueError(
            f"`{owner}` got {e}. Pass an array of an explicit dtype (e.g. "
            "`np.int64`, with `jax_enable_x64`) or a float."
        ) from e
    except TypeError as e:
        raise TypeError(
            f"`{owner}` needs an array or a number, got {type(value).__name__}."
        ) from e
    message = (
        f"`{owner}`: the value overflows {arr.dtype} (it becomes inf). Pass a value "
        f"within {arr.dtype}'s range, or a wider `dtype=`."
    )
    if not jnp.issubdtype(arr.dtype, jnp.inexact):
        return arr
    if is_traced(value, arr):
        overflowed = jnp.isfinite(value) & ~jnp.isfinite(arr)
        return eqx.error_if(arr, jnp.any(overflowed), message)
    if _overflowed(value, arr):
        raise ValueError(message)
    return arr


def _overflowed(value: Any, arr: Array) -> bool:
    """Whether a concrete `value` has a finite number that is inf in `arr`."""
    source = getattr(value, "dtype", None)
    source = np.asarray(value).dtype if source is None else np.dtype(source)
    if source == arr.dtype or source.kind not in "fciubV":  # V: bfloat16, float8
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        given = np.isfinite(np.asarray(value))
        got = np.isfinite(np.asarray(arr))
    return bool(np.any(given & ~got))


def check_storage(fixed: "Fixed", path: str | None = None) -> None:
    """Raise if a Fixed's storage no longer has the dtype it was stored with.

    That happens when a tool converts every leaf of a model to floating point
    (optimistix with `y0=model`, a blanket `jax.tree.map(astype)`): the data is
    then lost, and must not be used as if it were still there.
    """
    got = fixed.stored.dtype
    want = storage_dtype(fixed.kind)
    if got != want:
        where = f" at `{path}`" if path else ""
        raise ValueError(
            f"The Fixed{where} stores {fixed.kind} data as {want}, but its storage "
            f"now has dtype {got}: something converted every leaf of the model to "
            "a floating array (optimistix with `y0=model` and a blanket "
            "`jax.tree.map(lambda x: x.astype(...), model)` both do), and its data "
            "is lost. Give such tools only the trainable part: "
            "`params, rest = ep.partition(model)`, pass `params` (e.g. `y0=params`) "
            "and rebuild with `ep.combine(params, rest)` inside the function."
        )


@jax.jit
def _param_value(param: "Param") -> Array:
    # Eagerly, one compiled call per Param is cheaper than the prior's 3-4 ops.
    return param.value


def value_of(node: AbstractWrapper) -> Array:
    """`node.value`, through one cached compiled call for a concrete Param."""
    if isinstance(node, Param) and not is_traced(node.latent):
        if all(is_array(leaf) for leaf in jax.tree.leaves(node.prior)):
            return _param_value(node)
    return node.value


def value_at(node: AbstractWrapper, path: str, caller: str) -> Array:
    """`value_of(node)`, with the path in the error of a Param of the wrong shape."""
    try:
        return value_of(node)
    except ValueShapeError as e:
        raise ValueShapeError(f"`{caller}`: the Param at `{path}`: {e}") from None


def check_model(model: Any) -> None:
    """Refuse a class, or the `rest` half of `ep.partition`, where a model is due."""
    from ._filters import Rest

    if isinstance(model, Rest):
        raise TypeError(
            "Got the `rest` half of `ep.partition`, not a model. Rebuild the model "
            "with `ep.combine(params, rest)` first (e.g. inside the loss: "
            "`ep.unwrap(ep.combine(params, rest))`)."
        )
    if isinstance(model, type):
        raise TypeError(
            f"`model` must be a model instance, but got the class `{model.__name__}` "
            f"itself. Construct it first, e.g. `{model.__name__}(...)`."
        )


def is_param(node: Any) -> bool:
    """Whether `node` is an `ep.Param` (usable as `is_leaf` with JAX and Equinox).

    Examples:
        >>> import jax, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"w": ep.Param(jnp.ones(2)), "t": ep.Fixed(jnp.zeros(3))}
        >>> [k for k, v in model.items() if ep.is_param(v)]
        ['w']
        >>> jax.tree.leaves(model, is_leaf=ep.is_param)[-1]  # a Param stays whole
        Param([1, 1], prior=Normal(0, 1))
    """
    return isinstance(node, Param)


def is_fixed(node: Any) -> bool:
    """Whether `node` is an `ep.Fixed` (usable as `is_leaf` with JAX and Equinox).

    Examples:
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> model = {"w": ep.Param(jnp.ones(2)), "t": ep.Fixed(jnp.zeros(3))}
        >>> ep.is_fixed(model["t"]), ep.is_fixed(model["w"])
        (True, False)
        >>> ep.values(model, ep.is_fixed)  # the data instead of the Params
        {"['t']": Array([0., 0., 0.], dtype=float32)}
    """
    return isinstance(node, Fixed)


def is_wrapper(node: Any) -> bool:
    """Whether `node` is an `ep.Param` or `ep.Fixed`.

    Examples:
        >>> import jax, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"w": ep.Param(jnp.ones(2)), "t": ep.Fixed(jnp.zeros(3))}
        >>> ep.is_wrapper(model["t"]), ep.is_wrapper(jnp.ones(2))
        (True, False)
        >>> jax.tree.map(lambda x: x.shape, model, is_leaf=ep.is_wrapper)
        {'t': (3,), 'w': (2,)}
    """
    return isinstance(node, AbstractWrapper)
