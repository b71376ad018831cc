"""One wrapper's value, checked: the array it takes and the wrapper holding it.

`checked_array` checks a value against a wrapper's shape and dtype (nothing is
cast silently; a Python scalar takes the wrapper's dtype unless that loses
information). `with_value` gives a Param the latent of a physical value, or a
Fixed the array, keeping its sharding: `ep.set_value`, `ep.load_values` and the
surgery set each value through it. `new_param` makes a Param holding a value
(`ep.unfreeze`, `ep.wrap`).
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._abstract_prior import AbstractPrior, prior_str
from ._arrays import overflowed
from ._fixed import Fixed
from ._latent import check_flags, latent_of
from ._param import Param, with_latent
from ._plumbing import is_traced, spans_devices
from ._storage import hide
from ._wrapper_base import AbstractWrapper, build, shape_str

__all__ = ["checked_array", "new_param", "with_value"]


def checked_array(
    value: Any,
    shape: tuple[int, ...],
    dtype: Any,
    *,
    what: str,
    caller: str,
    any_shape: bool = False,
) -> Array:
    """`value` as an array of exactly `shape` and `dtype`, or a clear error.

    Any shape is accepted if `any_shape`. Python scalars (and weakly typed JAX
    scalars) take the target dtype, as JAX's own promotion would; a typed array
    must already have the target dtype, since a silent cast (float64 -> float32,
    float -> int) would lose information.
    """
    if jax.dtypes.issubdtype(dtype, jax.dtypes.extended):  # e.g. PRNG keys
        if getattr(value, "dtype", None) != dtype:
            raise TypeError(
                f"`{caller}`: {what} holds {dtype} data; pass an array of that dtype "
                f"(e.g. from `jax.random.key`), got {type(value).__name__}."
            )
        given, weak, arr = dtype, False, value
        _check_shape(arr, shape, what, caller, any_shape)
        return arr
    dtype = np.dtype(dtype)
    if isinstance(value, jax.Array):
        weak = bool(jax.typeof(value).weak_type)
        given = np.dtype(value.dtype)
    elif isinstance(value, np.ndarray | np.generic):
        weak = False
        given = np.dtype(value.dtype)
    elif isinstance(value, bool | int | float | complex):
        weak = True
        given = np.asarray(value).dtype
    else:
        raise TypeError(
            f"`{caller}`: the value for {what} must be an array or a Python scalar, "
            f"got {type(value).__name__}."
        )
    if weak:
        arr = _weak_value(value, given, dtype, what, caller)
    elif given != dtype:
        if given.kind == "c" and dtype.kind != "c":
            if what.startswith("the Param"):
                why = "a Param is real, and a real dtype cannot hold the imaginary part"
                fix = "Use two Params (real and imaginary parts), or an `ep.Fixed`"
            else:
                why = "a real dtype cannot hold the imaginary part"
                fix = "Pass real data, or replace the node with an `ep.Fixed`"
            raise TypeError(
                f"`{caller}`: {what} has dtype {dtype}, but the value has dtype "
                f"{given}: {why}. {fix} of the complex data "
                "(`eqx.tree_at(where, model, ep.Fixed(value))`)."
            )
        raise TypeError(
            f"`{caller}`: {what} has dtype {dtype}, but the value has dtype "
            f"{given}. Cast it first (`value.astype(jnp.{dtype.name})`); values are "
            "never cast silently."
        )
    else:
        arr = jnp.asarray(value)
    _check_shape(arr, shape, what, caller, any_shape)
    return arr


def _weak_value(
    value: Any, given: np.dtype, dtype: np.dtype, what: str, caller: str
) -> Array:
    """A Python scalar (or weakly typed JAX scalar) in the wrapper's dtype.

    It takes the dtype as JAX's promotion would, unless that loses information:
    a float or complex into an integer dtype, a complex into a real one, a
    number other than a bool into a bool dtype, an integer out of an integer
    dtype's range, or a finite number that overflows a float dtype.
    """
    inexact = bool(jnp.issubdtype(dtype, jnp.inexact))
    complex_ = bool(jnp.issubdtype(dtype, jnp.complexfloating))
    lossy = (given.kind in "fc" and not inexact) or (given.kind == "c" and not complex_)
    if lossy:
        raise TypeError(
            f"`{caller}`: {what} has dtype {dtype}, but the value ({given.name}) does "
            f"not fit it without loss. Pass a value of dtype {dtype}."
        )
    if dtype == np.bool_ and given.kind != "b":
        raise TypeError(
            f"`{caller}`: {what} has dtype bool, but the value ({given.name}) is not "
            "a bool. Pass `True`/`False` or a bool array."
        )
    if dtype.kind in "iu" and given.kind in "iu" and not is_traced(value):
        info = np.iinfo(dtype)
        host = np.asarray(value)
        if np.any(host < info.min) or np.any(host > info.max):
            raise ValueError(
                f"`{caller}`: the value for {what} is out of {dtype}'s range "
                f"[{info.min}, {info.max}]; got {host.tolist()}. Pass a value "
                "within the range, or use a wider dtype."
            )
    with np.errstate(over="ignore", invalid="ignore"):
        arr = jnp.asarray(value, dtype=dtype)
    # A traced scalar is checked where it is used: `ep.set_value` checks the
    # latent it gives with `eqx.error_if`.
    if inexact and not is_traced(value, arr) and overflowed(value, arr):
        raise ValueError(
            f"`{caller}`: the value for {what} overflows {dtype} (it becomes "
            f"inf). Pass a value within {dtype}'s range, or use a wider dtype."
        )
    return arr


def _check_shape(
    arr: Any, shape: tuple[int, ...], what: str, caller: str, any_shape: bool
) -> None:
    if any_shape or tuple(arr.shape) == tuple(shape):
        return
    raise ValueError(
        f"`{caller}`: {what} has shape {shape_str(tuple(shape))}, but the value "
        f"has shape {shape_str(tuple(arr.shape))}. Pass a value of shape "
        f"{shape_str(tuple(shape))}."
    )


@eqx.filter_jit
def _latent_of(prior: Any, value: Array, dtype: np.dtype) -> tuple:
    """`latent_of` as one compiled call: `(latent, outside, overflow)`."""
    return latent_of(prior, value, dtype)


def with_value(
    node: AbstractWrapper, value: Any, path: str, caller: str, *, reshape: bool = False
) -> Any:
    """`node` (a Param or Fixed) holding the physical `value`.

    A Param stores `prior.inverse(value)` as its latent; a Fixed stores the array
    (filling it if it was abstract; of any shape if `reshape`) and keeps the prior
    it remembers, if any.
    """
    kind = type(node).__name__
    what = f"the {kind} at `{path}`"
    if isinstance(node, Param):
        arr = checked_array(value, node.shape, node.dtype, what=what, caller=caller)
        latent, outside, overflow = _latent_of(node.prior, arr, node.dtype)
        latent = check_flags(
            latent,
            (
                outside,
                f"`{caller}`: the value for the Param at `{path}` is outside the "
                f"support of its prior `{prior_str(node.prior)}` (`prior.inverse"
                "(value)` is not finite). Pass a value inside the prior's support.",
            ),
            (
                overflow,
                f"`{caller}`: the value for the Param at `{path}` has a latent that "
                f"overflows {node.dtype} (`prior.inverse(value)` is too large for "
                f"{node.dtype}). Pass a value nearer the prior's median (inside its "
                "support), or use a wider dtype.",
            ),
        )
        return with_latent(node, _placed(latent, node.latent))
    if isinstance(node, Fixed):
        arr = checked_array(
            value, node.shape, node.dtype, what=what, caller=caller, any_shape=True
        )
        if not reshape:  # (after the dtype: its error comes first)
            _check_fixed_shape(arr, node.shape, what, caller)
        stored = hide(arr)
        if stored.shape == node.stored.shape:
            stored = _placed(stored, node.stored)
        return build(
            Fixed, stored=stored, kind=node.kind, prior=node.prior, name=node.name
        )
    raise TypeError(
        f"`{caller}`: the node at `{path}` is an `ep.{kind}`; only `ep.Param` and "
        "`ep.Fixed` hold values that can be set."
    )


def _check_fixed_shape(
    value: Any, shape: tuple[int, ...], what: str, caller: str
) -> None:
    """A Fixed keeps its shape unless a new one is asked for (`reshape=True`).

    A scalar in place of a grid would otherwise broadcast silently in the model.
    """
    got = tuple(np.shape(value))
    if got == tuple(shape):
        return
    fix = (
        " Pass a value of that shape, or `reshape=True` to give the Fixed a new "
        "shape on purpose (new observations of another length)."
        if caller == "ep.set_value"
        else f" Pass a value of shape {shape_str(tuple(shape))}, or give it a new "
        "shape with `ep.set_value(model, where, value, reshape=True)`."
    )
    raise ValueError(
        f"`{caller}`: {what} has shape {shape_str(tuple(shape))}, but the value has "
        f"shape {shape_str(got)}.{fix}"
    )


def _placed(new: Any, old: Any) -> Any:
    """`new` with the sharding of `old` (an array, or a struct asking for one)."""
    sharding = getattr(old, "sharding", None)
    if not spans_devices(sharding) or is_traced(new, old):
        return new
    return jax.device_put(new, sharding)


def new_param(
    value: Array | None,
    shape: tuple[int, ...],
    dtype: Any,
    prior: AbstractPrior,
    path: str,
    caller: str,
    name: str | None = None,
) -> Param:
    """A Param of `shape` and `dtype` holding `value` (abstract if None).

    The abstract Param validates prior and shape without computing; the latent is
    then one compiled `prior.inverse` call per distinct prior and shape, not one per
    operation of the prior.
    """
    sharding = getattr(value, "sharding", None)
    if not spans_devices(sharding):
        sharding = None  # single-device data: the default placement
    try:
        param = Param(
            shape=shape, dtype=dtype, prior=prior, sharding=sharding, name=name
        )
    except (TypeError, ValueError) as e:
        raise type(e)(f"`{caller}`: the array at `{path}`: {e}") from e
    if value is None:
        return param
    return with_value(param, value, path, caller)
