"""`ep.Fixed`: data that is part of a model and never trained."""

from collections.abc import Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Shaped

from ._abstract_prior import AbstractPrior, prior_str
from ._arrays import any_dtype, as_array, default_float, static_shape
from ._format import dtype_note, spec, value_str
from ._plumbing import is_traced
from ._storage import hide, reveal, storage_dtype, storage_shape
from ._wrapper_base import (
    AbstractWrapper,
    abstract_error,
    check_name,
    deleted_error,
    has_data,
    has_params,
    is_wrapper,
    shape_str,
)

__all__ = ["Fixed", "check_storage", "is_fixed"]


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
        name: the name of the shared Param this Fixed was frozen from (set by
            `ep.freeze`): Fixed arrays of one name are one array, as Params are.

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
    name: str | None = eqx.field(static=True, default=None)

    _array_field: ClassVar[str] = "stored"
    _trains: ClassVar[bool] = False  # data: its storage is invisible to optimizers
    _fill_hint: ClassVar[str] = (
        "Fill it first: `ep.set_value(model, where, array)` or "
        "`eqx.tree_at(where, model, ep.Fixed(array))`."
    )

    def __init__(
        self,
        value: ArrayLike | None = None,
        *,
        shape: int | np.integer | Sequence[int | np.integer] | None = None,
        dtype: Any = None,
        prior: "AbstractPrior | None" = None,
        name: str | None = None,
    ):
        self.name = check_name(name, "ep.Fixed")
        if prior is not None and not isinstance(prior, AbstractPrior):
            raise TypeError(
                "`ep.Fixed(prior=...)` must be an `ep.AbstractPrior` or None, got "
                f"{type(prior).__name__}."
            )
        if has_params(prior):
            raise TypeError(
                "`ep.Fixed(prior=...)` got a prior that holds an `ep.Param`: a Fixed "
                "only remembers its prior (for `ep.unfreeze`) and trains nothing, "
                "so that Param would be trained by `ep.partition` yet belong to no "
                "parameter. Freeze the prior's Params first: "
                "`ep.Fixed(value, prior=ep.freeze(prior, lambda p: p))`."
            )
        self.prior = prior
        if shape is not None:
            shape = static_shape(shape, "ep.Fixed")
        if value is None:
            if shape is None:
                raise ValueError(
                    "`ep.Fixed` needs a `value`, or a `shape=` for an abstract Fixed."
                )
            kind = default_float() if dtype is None else any_dtype(dtype)
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

    def __repr__(self) -> str:
        return fixed_str(self)

    @property
    def _hyper_text(self) -> str:
        """A constant hyperparameter: just its value."""
        if not has_data(self):  # filtered out (a gradient, `eqx.filter`)
            return repr(self.stored)
        if self.is_abstract or is_traced(self.stored):
            return spec(self.shape, self.dtype)
        return value_str(self.array)

    @property
    def _shown_value(self) -> Any:
        """The value, or the storage where a tool converted it (its data lost)."""
        if self.stored.dtype != storage_dtype(self.kind):
            return self.stored
        return self.value


def fixed_str(node: Fixed) -> str:
    """A Fixed by its value: the text of `repr(fixed)`.

    For example `Fixed(f32[50](mean=5, std=2.9))`, or
    `Fixed(0.5, frozen from Normal(0, 1))` for one frozen from a Param.
    """
    kind = type(node).__name__
    prior = getattr(node, "prior", None)
    name = node.__dict__.get("name")
    if not has_data(node):  # filtered out (a gradient, `eqx.filter`)
        return f"{kind}({node.stored!r})"
    if node.is_abstract:
        return f"{kind}(abstract, shape={node.shape}{dtype_note(node.dtype)})"
    if is_traced(node.stored):
        shown = spec(node.shape, node.dtype)
    else:
        try:
            shown = value_str(node.array)
        except ValueError as e:  # storage converted by a tool: say so, don't fail
            del e
            shown = f"<storage converted to {node.stored.dtype}: data lost>"
    frozen = "" if prior is None else f", frozen from {prior_str(prior)}"
    named = "" if name is None else f", name={name!r}"
    return f"{kind}({shown}{frozen}{named})"


def check_storage(fixed: "Fixed", path: str | None = None) -> None:
    """Raise if a Fixed's storage no longer holds its data.

    That is when its dtype is no longer the one it was stored with, because a
    tool converted every leaf of the model to floating point (optimistix with
    `y0=model`, a blanket `jax.tree.map(astype)`) or an array of another dtype
    was put there; or when the array was deleted, donated to a jitted function.
    The data is then lost, and must not be used as if it were still there.
    """
    stored = fixed.stored
    if isinstance(stored, jax.Array) and not is_traced(stored) and stored.is_deleted():
        raise deleted_error(path, "Fixed")
    got = stored.dtype
    want = storage_dtype(fixed.kind)
    if got == want:
        return
    where = f" at `{path}`" if path else ""
    if jnp.issubdtype(got, jnp.inexact):
        raise ValueError(
            f"The Fixed{where} stores {fixed.kind} data as {want}, but its storage "
            f"now has dtype {got}: something converted every leaf of the model to "
            "a floating array (optimistix with `y0=model` and a blanket "
            "`jax.tree.map(lambda x: x.astype(...), model)` both do), and its data "
            "is lost. Give such tools only the trainable part: "
            "`params, rest = ep.partition(model)`, pass `params` (e.g. `y0=params`) "
            "and rebuild with `ep.combine(params, rest)` inside the function."
        )
    raise ValueError(
        f"The Fixed{where} stores {fixed.kind} data as {want}, but its storage "
        f"(`.stored`) now holds an array of dtype {got}: it was replaced directly "
        "(e.g. `eqx.tree_at(lambda m: ....stored, model, array)`), and its data "
        "is lost. Set data with `ep.set_value(model, where, array)`, or replace "
        "the whole node: `eqx.tree_at(where, model, ep.Fixed(array))`."
    )


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
