"""Prior hyperparameters: numbers made `ep.Fixed`, and their validation."""

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._abstract_prior import AbstractPrior
from ._flat import compute_dtype, is_traced
from ._wrapper_base import host_kind_error
from ._wrappers import Fixed, Param

__all__ = [
    "Hyper",
    "LOG_2PI",
    "array_like",
    "broadcastable",
    "check_jointly",
    "compute",
    "current",
    "describe",
    "finite",
    "has_tracer",
    "open_interval",
    "positive",
    "to_hyper",
    "validate",
    "value_in",
]

Hyper = Fixed | Param
LOG_2PI = math.log(2 * math.pi)


def describe(arr: Any) -> str:
    if is_traced(arr):
        return "a traced value"
    host = np.asarray(arr)
    return str(host.tolist()) if host.size <= 8 else f"an array of shape {host.shape}"


def to_hyper(value: Any, name: str, owner: str) -> Hyper:
    """A hyperparameter as a wrapper: Params and Fixed kept, numbers made Fixed.

    Integers become JAX's default float through float64 on the host, so a large
    Python int (`2**40`) needs no int64; booleans are refused.
    """
    if isinstance(value, Param | Fixed):
        if not jnp.issubdtype(value.dtype, jnp.floating):
            raise TypeError(
                f"`{owner}({name}=...)` must be floating, got an `ep."
                f"{type(value).__name__}` of dtype {value.dtype}."
            )
        return value
    if value is None or isinstance(value, str | bytes) or not array_like(value):
        raise TypeError(
            f"`{owner}({name}=...)` must be a number, an array, an `ep.Fixed` or an "
            f"`ep.Param` (for a hierarchical prior), got {type(value).__name__}."
        )
    if isinstance(value, jax.Array):
        arr, host = value, None
    else:
        host = np.asarray(value)
        error = host_kind_error(host.dtype, f"{owner}({name}=...)")
        if error is not None:
            raise error
        arr = host
    if arr.dtype == np.bool_:
        raise TypeError(
            f"`{owner}({name}=...)` must be a real number, got a bool ({value!r}). "
            "Pass a float."
        )
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"`{owner}({name}=...)` must be real, got {arr.dtype}.")
    if host is None:
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            arr = arr.astype(jax.dtypes.canonicalize_dtype(float))
        return Fixed(arr)
    if not jnp.issubdtype(host.dtype, jnp.floating):
        host = host.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        arr = host.astype(jax.dtypes.canonicalize_dtype(host.dtype))
    if np.any(np.isfinite(host) & ~np.isfinite(arr)):
        raise ValueError(
            f"`{owner}({name}=...)` overflows {arr.dtype}; got {describe(host)}. Pass "
            "a smaller value, or enable float64 (`jax.config.update("
            '"jax_enable_x64", True)`).'
        )
    return Fixed(arr)


def array_like(value: Any) -> bool:
    return isinstance(value, int | float | np.ndarray | np.generic | jax.Array) or (
        isinstance(value, list | tuple) and len(value) > 0
    )


def current(h: Hyper) -> Any:
    """The value of a hyperparameter now (None when not concrete)."""
    if h.is_abstract:
        return None
    if isinstance(h, Param) and (is_traced(h.latent) or has_tracer(h.prior)):
        return h.value  # traced: checked at run time
    if isinstance(h, Fixed) and is_traced(h.stored):
        return h.value
    from ._wrappers import value_of

    return value_of(h)


def has_tracer(tree: Any) -> bool:
    return any(is_traced(leaf) for leaf in jax.tree.leaves(tree))


def validate(h: Hyper, bad: Any, message: str) -> Hyper:
    """Raise `message` where `bad(value)` holds for the hyperparameter's value.

    The check runs now if the value is concrete, and at run time (`eqx.error_if`)
    if it was built under a trace.
    """
    x = current(h)
    if x is None:
        return h
    if is_traced(x):
        if isinstance(h, Fixed):
            text = message.replace("{value}", "a traced value")
            return Fixed(eqx.error_if(x, bad(x), text), prior=h.prior)
        return h  # a traced Param's value is its prior's business
    host = np.asarray(x, dtype=np.float64 if x.dtype.itemsize >= 8 else np.float32)
    if np.any(bad(host)):
        raise ValueError(message.replace("{value}", describe(host)))
    return h


def finite(h: Hyper, name: str, owner: str) -> Hyper:
    return validate(
        h,
        lambda x: ~jnp.isfinite(x) if is_traced(x) else ~np.isfinite(x),
        f"`{owner}({name}=...)` must be finite (not NaN or inf); got {{value}}.",
    )


def positive(h: Hyper, name: str, owner: str) -> Hyper:
    """`h`, refused if its value, or the support of its prior, is not all > 0.

    A hyperparameter that is a Param must have a prior whose values are positive:
    a Normal (or a Uniform reaching below zero) would move it where the density is
    NaN in training or sampling, even if its value is positive now (a value that
    is not positive now is refused first, with that value). A prior's support is
    what its class declares (`support`: `"real"`, `"positive"` or `"interval"`;
    a centred prior's is its prior's); a prior that declares none is trusted.
    """
    hint = (
        " A hierarchical scale needs a positive prior such as `ep.HalfNormal`, "
        "`ep.HalfCauchy`, `ep.LogNormal` or `ep.Exponential`."
        if isinstance(h, Param)
        else ""
    )
    h = validate(
        h,
        lambda x: ~((x > 0) & (jnp.isfinite(x) if is_traced(x) else np.isfinite(x))),
        f"`{owner}({name}=...)` must be finite and > 0; got {{value}}. Pass a "
        f"positive `{name}`.{hint}",
    )
    if isinstance(h, Param) and _reaches_below_zero(h.prior):
        prior = type(h.prior).__name__
        raise ValueError(
            f"`{owner}({name}=...)` is an `ep.Param` whose prior `{prior}` reaches "
            f"zero or below, but `{name}` must be > 0: the log density would be NaN "
            "wherever training or sampling takes it. Give it a positive prior, "
            f"e.g. `{name}=ep.Param(prior=ep.HalfNormal(1.0))` or "
            "`ep.Param(prior=ep.LogNormal(1.0, 0.5))`."
        )
    return h


def _reaches_below_zero(prior: Any) -> bool:
    """Whether a prior is known to give values <= 0 (see `positive`)."""
    inner = getattr(prior, "prior", None)
    if isinstance(inner, AbstractPrior):  # `ep.Centred`: the support of its prior
        return _reaches_below_zero(inner)
    support = getattr(type(prior), "support", None)
    if support == "real":
        return True
    if support == "interval":  # (low, high): below zero where `low` is
        if isinstance(prior.low, Param) and _reaches_below_zero(prior.low.prior):
            return True
        low = current(prior.low)
        return low is not None and not is_traced(low) and bool(np.any(low < 0))
    return False


def check_jointly(
    hypers: tuple[Hyper, ...], checks: list[tuple[Any, str]]
) -> tuple[Hyper, ...]:
    """Checks between traced hyperparameters, at run time (`eqx.error_if`).

    Each check is `(failed, message)` with `failed` a traced boolean. They are
    attached to the first constant (`ep.Fixed`) hyperparameter, whose value every
    use of the prior reads; when all are Params, their priors own the checks.
    """
    out = list(hypers)
    for k, h in enumerate(hypers):
        if isinstance(h, Fixed):
            x = current(h)
            for failed, message in checks:
                x = eqx.error_if(x, failed, message)
            out[k] = Fixed(x, prior=h.prior)
            break
    return tuple(out)


def broadcastable(owner: str, **hypers: Hyper) -> None:
    shapes = {name: h.shape for name, h in hypers.items()}
    try:
        jnp.broadcast_shapes(*shapes.values())
    except ValueError:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(
            f"`{owner}` hyperparameters of shapes {listed} do not broadcast together. "
            "Give them the same shape, or make one a scalar."
        ) from None


def value_in(h: Any, dtype: np.dtype) -> Array:
    """A hyperparameter's value in the compute dtype (a non-wrapper is reported)."""
    try:
        value = h.value
    except AttributeError:
        if isinstance(h, Fixed | Param):
            raise
        raise _not_a_wrapper(h) from None
    return value.astype(dtype)


def _not_a_wrapper(h: Any) -> TypeError:
    """The error for a hyperparameter replaced by a raw number or array."""
    shown = describe(h) if array_like(h) else type(h).__name__
    return TypeError(
        f"A prior hyperparameter holds {shown} of type {type(h).__name__}, not an "
        "`ep.Fixed` or `ep.Param`: was it replaced with `eqx.tree_at(lambda p: "
        "p.prior.mean, param, 2.0)`? A raw floating array there would be trained "
        "by every optimiser. Put a wrapper there: `eqx.tree_at(lambda p: "
        "p.prior.mean, param, ep.Fixed(2.0))` for a constant (an `ep.Param` for a "
        "hierarchical prior), or replace the whole prior, which checks its "
        "hyperparameters: `eqx.tree_at(lambda p: p.prior, param, ep.Normal(2.0, "
        "1.0))`."
    )


def compute(x: Array) -> tuple[np.dtype, Array]:
    ct = compute_dtype(x.dtype)
    return ct, x.astype(ct)


def open_interval(u: Array) -> Array:
    """Keep a probability away from 0, where `ndtri` is infinite.

    So a value that rounded onto a bound maps back to a finite latent (that maps
    onto the bound).
    """
    return jnp.maximum(u, jnp.finfo(u.dtype).tiny)
