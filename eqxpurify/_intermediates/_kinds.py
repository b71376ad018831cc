"""Which higher-order primitive an equation is, and the parameters the harvester reads.

The primitives the harvester looks inside (`jit`, `checkpoint`, `scan`, `cond`,
`while_loop`, `custom_jvp`, `custom_vjp`) are not imported from JAX: each is
found by tracing a public function that emits it, and the parameter keys the
harvester reads (`PARAM_KEYS`) are checked on those very equations. A renamed
primitive or key is then a `JaxInternalsError`, never a dropped tap.
"""

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax import lax

from ._primitive import (
    HARVEST,
    closed_call_p,
    intermediate_p,
    internals_error,
    require,
    sub_jaxprs,
)

# The parameter keys the harvester reads, per kind of equation. `param` refuses
# any other key, and `harvest_kinds` checks these on real traces, so a renamed
# key is a `JaxInternalsError`, never a dropped tap.
PARAM_KEYS: dict[str, tuple[str, ...]] = {
    "tap": ("name", "kind", "axes"),
    "inline": ("jaxpr",),
    "closed_call": ("call_jaxpr",),
    "checkpoint": ("jaxpr", "prevent_cse", "policy"),
    "scan": ("jaxpr", "num_consts", "num_carry", "length", "reverse", "unroll"),
    "cond": ("branches",),
    "while_loop": (),
    "custom_jvp": ("call_jaxpr",),
    "custom_vjp": ("call_jaxpr",),
}


@jax.custom_jvp
def _sample_custom_jvp(x):
    return x + 1


_sample_custom_jvp.defjvp(lambda primals, tangents: (primals[0] + 1, tangents[0]))


@jax.custom_vjp
def _sample_custom_vjp(x):
    return x + 1


_sample_custom_vjp.defvjp(lambda x: (x + 1, None), lambda _, g: (g,))

# Each kind and a function whose jaxpr holds exactly one equation of that kind.
SAMPLES: dict[str, Callable[[Any], Any]] = {
    "inline": lambda x: jax.jit(lambda y: y + 1)(x),
    "checkpoint": lambda x: jax.checkpoint(lambda y: y + 1)(x),
    "scan": lambda x: lax.scan(lambda c, _: (c + 1, None), x, length=2)[0],
    "cond": lambda x: lax.cond(x > 0, lambda y: y + 1, lambda y: y - 1, x),
    "while_loop": lambda x: lax.while_loop(lambda c: c < 3, lambda c: c + 1, x),
    "custom_jvp": _sample_custom_jvp,
    "custom_vjp": _sample_custom_vjp,
}

_KINDS: dict[Any, str] = {}


def harvest_kinds() -> dict[Any, str]:
    """Map each higher-order primitive the harvester handles to its kind."""
    if _KINDS:
        return _KINDS
    require(HARVEST)
    kinds: dict[Any, str] = {intermediate_p: "tap", closed_call_p: "closed_call"}
    for kind, fn in SAMPLES.items():
        with jax.disable_jit(False):
            jaxpr = jax.make_jaxpr(fn)(np.float32(1)).jaxpr
        eqns = [e for e in jaxpr.eqns if any(True for _ in sub_jaxprs(e))]
        if len(eqns) != 1:
            raise internals_error(
                f"the primitive of `{kind}`",
                f"a `{kind}` traces to {len(eqns)} higher-order equations, not 1",
                "`ep.intermediates`",
            )
        (eqn,) = eqns
        missing = [k for k in PARAM_KEYS[kind] if k not in eqn.params]
        if missing:
            raise internals_error(
                f"parameter `{missing[0]}` of the `{eqn.primitive.name}` primitive",
                f"its parameters are {sorted(eqn.params)}",
                "`ep.intermediates`",
            )
        kinds[eqn.primitive] = kind
    _KINDS.update(kinds)
    return _KINDS


def kind_of(eqn: Any) -> str | None:
    """The kind of `eqn` ("tap", "scan", ...), or None for other primitives."""
    return harvest_kinds().get(eqn.primitive)


def primitive_name(eqn: Any) -> str:
    return eqn.primitive.name


def param(eqn: Any, key: str) -> Any:
    """The parameter `key` of `eqn`, one of the keys `PARAM_KEYS` declares."""
    kind = kind_of(eqn)
    assert kind is not None and key in PARAM_KEYS[kind], (kind, key)
    try:
        return eqn.params[key]
    except KeyError:
        raise internals_error(
            f"parameter `{key}` of the `{eqn.primitive.name}` primitive",
            f"its parameters are {sorted(eqn.params)}",
            "`ep.intermediates`",
        ) from None
