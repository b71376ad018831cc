"""`ep.Param`: a trainable quantity, a whitened latent pushed through a prior.

Also its text (`param_str`). Its value as every other module reads it, one
cached compiled call, is `_param_value`'s.
"""

import functools
import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._abstract_prior import AbstractPrior, prior_str
from ._arrays import (
    as_array,
    broadcast,
    check_broadcast,
    check_float,
    default_float,
    ints_as_floats,
    static_shape,
)
from ._centred import parameterised
from ._format import dtype_note, spec, value_str
from ._latent import (
    check_finite,
    check_flags,
    latent_of,
    param_value,
)
from ._numpyro import as_prior
from ._pending import PendingShape, pending_dims
from ._plumbing import is_traced
from ._wrapper_base import (
    HOLDS,
    AbstractWrapper,
    abstract_error,
    check_name,
    fields_of,
    is_complete,
    shape_str,
)

__all__ = ["Param", "is_param", "param_str", "with_latent"]


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

    _array_field: ClassVar[str] = "latent"
    _trains: ClassVar[bool] = True
    _fill_hint: ClassVar[str] = (
        "Initialise it first: `model = ep.normal(model, key=key)` or "
        "`model = ep.zeros(model)`."
    )

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
        self.name = check_name(name, "ep.Param")
        pending = pending_dims(shape, "ep.Param")
        prior_fn = None
        if pending is not None and _is_function(prior):
            prior_fn, prior = prior, None  # a prior made for the resolved shape
        if prior is None:
            # The package's one import inside a function: the default prior is a
            # Normal, and `_priors` imports this module (a prior's hyperparameters
            # may be Params, which its checks read through `value_of`).
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
            check_float(dtype)
            self.latent = PendingShape(pending, dtype, sharding, prior_fn)
            self.prior = chosen
            return
        if shape is not None:
            shape = static_shape(shape, "ep.Param")
        given = value if latent is None else latent
        if given is None:
            dtype = default_float() if dtype is None else np.dtype(dtype)
            check_float(dtype)
            if shape is None:
                shape = chosen.batch_shape
            check_broadcast(chosen, shape)
            latent_shape = chosen.latent_shape(shape)
            self.latent = jax.ShapeDtypeStruct(latent_shape, dtype, sharding=sharding)
        else:
            what = "value" if latent is None else "latent"
            arr = as_array(ints_as_floats(given), None, "ep.Param")
            if jnp.issubdtype(arr.dtype, jnp.complexfloating):
                raise TypeError(
                    f"`ep.Param` got a complex {what}; a Param is real. Use two "
                    "Params (real and imaginary parts), or `ep.Fixed` for data."
                )
            if dtype is None:
                is_float = jnp.issubdtype(arr.dtype, jnp.floating)
                dtype = arr.dtype if is_float else default_float()
            dtype = np.dtype(dtype)
            check_float(dtype)
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
            if broadcast(arr.shape, target) != target:
                raise ValueError(
                    f"`ep.Param` got a {what} of shape {shape_str(arr.shape)} that "
                    f"does not broadcast to `shape={shape_str(target)}`."
                )
            check_broadcast(chosen, shape)
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

    def __repr__(self) -> str:
        return param_str(self)

    @property
    def _hyper_text(self) -> str:
        """A hierarchical hyperparameter: the Param as it prints."""
        return param_str(self)

    @property
    def _shown_value(self) -> Any:
        return self.value


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


def param_str(node: Param) -> str:
    """A Param by its physical value: the text of `repr(param)`.

    For example `Param(1.811, prior=Normal(1, 0.5))` or
    `Param(abstract, shape=(4,), prior=Normal(0, 1))`.
    """
    kind = type(node).__name__
    prior = getattr(node, "prior", None)
    tail = "" if prior is None else f", prior={prior_str(prior)}"
    name = node.__dict__.get("name")
    prior_fn = getattr(node.__dict__.get("latent"), "prior_fn", None)
    if prior_fn is not None:  # a prior made for a shape that waits for an input
        tail = f", prior={getattr(prior_fn, '__name__', 'function')}(shape)"
    if name is not None:
        tail += f", name={name!r}"
    latent = node.latent
    if not isinstance(latent, HOLDS):
        return f"{kind}(latent={latent!r}{tail})"
    if not is_complete(node):  # a gradient or a filtered model: no value
        shown = "abstract" if node.is_abstract else value_str(latent)
        return f"{kind}(latent={shown}{dtype_note(node.dtype)}{tail})"
    if node.is_abstract:
        return f"{kind}(abstract, shape={node.shape}{dtype_note(node.dtype)}{tail})"
    if is_traced(latent) or any(is_traced(x) for x in jax.tree.leaves(prior)):
        return f"{kind}({spec(node.shape, node.dtype)}{tail})"
    try:
        shown = value_str(node.value)
    except (ValueError, TypeError):  # a prior of another shape: show, don't fail
        shown = f"<latent {spec(node.shape, node.dtype)}, prior of another shape>"
    return f"{kind}({shown}{dtype_note(node.dtype)}{tail})"


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
