"""Checks of prior hyperparameters' values: now if concrete, at run time if traced.

A hyperparameter that is an `ep.Param` is read through `value_of` (one compiled
call), so these checks sit above `_param`; the priors that use them do too.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._abstract_prior import AbstractPrior
from ._fixed import Fixed
from ._hyper import Hyper, describe
from ._param import Param
from ._param_value import value_of
from ._plumbing import is_traced

__all__ = ["check_jointly", "current", "finite", "positive", "validate"]


def current(h: Hyper) -> Any:
    """The value of a hyperparameter now (None when not concrete)."""
    if h.is_abstract:
        return None
    if isinstance(h, Param) and (is_traced(h.latent) or has_tracer(h.prior)):
        return h.value  # traced: checked at run time
    if isinstance(h, Fixed) and is_traced(h.stored):
        return h.value
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
