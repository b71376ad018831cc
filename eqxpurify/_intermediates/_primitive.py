"""JAX internals: the tap primitive, its rules, and every other internal taps use.

This is the only module of eqxpurify that imports `jax.interpreters`,
`jax.extend` or `jax._src`. Each internal is looked up by `_internal` on its own
line, with a comment saying which JAX versions it is for. A lookup that fails
does not break `import eqxpurify`: it is recorded, and the first tap or harvest
that needs it raises `JaxInternalsError` naming the internal and the JAX
versions eqxpurify's taps are tested with. Nothing is ever silently skipped.
"""

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np

# The JAX versions the whole test suite passes with (the declared floor, and the
# newest release CI installs). Named in every `JaxInternalsError`.
TESTED_JAX = "jax 0.8.1 to 0.10.2"

TAP = "tap"  # needed to bind a tap at all (model code, unharvested)
HARVEST = "harvest"  # needed by `ep.intermediates`

_MISSING: list[tuple[str, str, str]] = []  # (need, internal, what went wrong)
LOOKUPS: list[tuple[str, str, str]] = []  # (module, attr, need) of every lookup


class JaxInternalsError(RuntimeError):
    """A JAX internal that taps rely on is missing or changed in this JAX."""


def _internal(module: str, attr: str, need: str) -> Any:
    """`module.attr`, or None (recorded as missing for `need`) if it is absent."""
    LOOKUPS.append((module, attr, need))
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        _MISSING.append((need, f"{module}.{attr}", f"{type(e).__name__}: {e}"))
        return None


def _register(need: str, internal: str, table: Any, rule: Any) -> None:
    """`table[intermediate_p] = rule`, or record `internal` as missing."""
    if table is None or intermediate_p is None:
        return  # already recorded by `_internal`
    try:
        table[intermediate_p] = rule
    except Exception as e:  # e.g. no longer a dict
        _MISSING.append((need, internal, f"{type(e).__name__}: {e}"))


def internals_error(internal: str, problem: str, user: str) -> JaxInternalsError:
    return JaxInternalsError(
        f"{user} needs the JAX internal `{internal}`, which this JAX "
        f"({jax.__version__}) does not provide ({problem}). eqxpurify's taps are "
        f"tested with {TESTED_JAX}: install a JAX in that range, or an eqxpurify "
        "release that supports this JAX."
    )


def require(need: str) -> None:
    """Raise `JaxInternalsError` if an internal needed for `need` is missing."""
    for need_, internal, problem in _MISSING:
        if need_ == TAP or need_ == need:
            user = "`ep.intermediates`" if need == HARVEST else "A tap"
            raise internals_error(internal, problem, user)


# ----------------------------------------------------------------------------
# Internals, one lookup per line
# ----------------------------------------------------------------------------

# Each comment says which JAX versions the lookup below it is for (the
# versions the whole test suite is run with; `TESTED_JAX`).

# jax 0.8.1-0.10.2: the base class of primitives.
_Primitive = _internal("jax.extend.core", "Primitive", TAP)
# jax 0.8.1-0.10.2: MLIR lowering rules.
_register_lowering = _internal("jax.interpreters.mlir", "register_lowering", TAP)
# jax 0.8.1-0.10.2: JVP rules.
_primitive_jvps = _internal("jax.interpreters.ad", "primitive_jvps", TAP)
# jax 0.8.1-0.10.2: transpose rules.
_primitive_transposes = _internal("jax.interpreters.ad", "primitive_transposes", TAP)
# jax 0.8.1-0.10.2: batching (vmap) rules.
_primitive_batchers = _internal("jax.interpreters.batching", "primitive_batchers", TAP)
# jax 0.8.1-0.10.2: dead-code elimination rules (a tap has no outputs: keep it).
_dce_rules = _internal("jax.interpreters.partial_eval", "dce_rules", HARVEST)
# jax 0.8.1-0.10.2: partial-evaluation rules for `jax.checkpoint` under autodiff.
_pe_custom_rules = _internal(
    "jax.interpreters.partial_eval", "partial_eval_jaxpr_custom_rules", HARVEST
)
# jax 0.8.1-0.10.2: tracer-based partial evaluation (`jax.grad` through a scan).
_pe_rules = _internal(
    "jax.interpreters.partial_eval", "custom_partial_eval_rules", HARVEST
)
# jax 0.8.1-0.10.2, private (`jax._src`, no public equivalent): keeping a tap on
# a value that partial evaluation does not know yet, like an effect.
_EffectHandle = _internal("jax._src.interpreters.partial_eval", "EffectHandle", HARVEST)
# jax 0.8.1-0.10.2, private (`jax._src`, no public equivalent): as above.
_new_eqn_recipe = _internal(
    "jax._src.interpreters.partial_eval", "new_eqn_recipe", HARVEST
)
# jax 0.8.1-0.10.2: source locations, to re-issue equations where they were.
_source_info_util = _internal("jax.extend", "source_info_util", HARVEST)
# jax 0.8.1-0.10.2: the jaxpr data model the harvester interprets.
_ClosedJaxpr = _internal("jax.extend.core", "ClosedJaxpr", HARVEST)
# jax 0.8.1-0.10.2: as above.
_Jaxpr = _internal("jax.extend.core", "Jaxpr", HARVEST)
# jax 0.8.1-0.10.2: as above.
_Literal = _internal("jax.extend.core", "Literal", HARVEST)
# jax 0.8.1-0.10.2: the call primitive that partial evaluation of a scan under
# `jax.checkpoint` emits (no public function emits it directly).
closed_call_p = _internal("jax.extend.core.primitives", "closed_call_p", HARVEST)


# ----------------------------------------------------------------------------
# The primitive
# ----------------------------------------------------------------------------

# A tap is a statement: `intermediate_p` takes the tapped array and has no
# outputs, and `ep.intermediate(x, ...)` returns `x` itself. Code after the tap
# uses the very same value, so JAX's own optimisations (residual forwarding,
# CSE, DCE of what the tap does not need) see no difference.
#
# Params: `name` (str, or None for a slot not yet named by `ep.intermediates`),
# `kind` ("tap", "slot", or "tangent" for the marker a tap of a tangent leaves
# when reverse-mode autodiff drops it) and `axes` (positions of the `jax.vmap`
# axes in the operand, outermost vmap first).

_watchers = threading.local()


def _watch_stack() -> list[Callable[[str | None], None] | None]:
    if not hasattr(_watchers, "stack"):
        _watchers.stack = []
    return _watchers.stack


@contextlib.contextmanager
def watch_binds(callback: Callable[[str | None], None] | None) -> Iterator[None]:
    """Call `callback(name)` for every tap bound inside the block.

    The innermost block wins; `None` hides the block's taps from an outer one.
    """
    stack = _watch_stack()
    stack.append(callback)
    try:
        yield
    finally:
        stack.pop()


intermediate_p: Any = None  # None when this JAX has no `Primitive` to subclass
if _Primitive is not None:

    class _TapPrimitive(_Primitive):
        def bind(self, *args, **params):
            stack = _watch_stack()
            if stack and stack[-1] is not None:
                stack[-1](params["name"])
            return super().bind(*args, **params)

    intermediate_p = _TapPrimitive("intermediate")
    intermediate_p.multiple_results = True

    @intermediate_p.def_impl
    def _impl(x, *, name, kind, axes):
        del x, name, kind, axes
        return []

    @intermediate_p.def_abstract_eval
    def _abstract_eval(aval, *, name, kind, axes):
        del aval, name, kind, axes
        return []


def bind_tap(x: Any, *, name: str | None, kind: str, axes: tuple[int, ...]) -> None:
    require(TAP)
    assert intermediate_p is not None
    intermediate_p.bind(x, name=name, kind=kind, axes=axes)


def _lowering(ctx, x, *, name, kind, axes):
    del ctx, x, name, kind, axes
    return []


def _jvp(primals, tangents, *, name, kind, axes):
    # Only the primal value is tapped; tangents are not.
    del tangents
    intermediate_p.bind(*primals, name=name, kind=kind, axes=axes)
    return [], []


# A stand-in operand for the marker below (a tap has no outputs, so none is used).
_NO_VALUE = np.zeros((), np.float32)


def _transpose(cts, x, *, name, kind, axes):
    # Reached when reverse-mode autodiff (or `jax.linear_transpose`) meets a tap
    # of a linear value: a tangent, e.g. inside a `jax.custom_jvp` rule. Reverse
    # mode never computes tangents, so the value is gone; leave a marker, so
    # that a harvest that wants this name raises instead of missing it.
    del cts, x, kind, axes
    intermediate_p.bind(_NO_VALUE, name=name, kind="tangent", axes=())
    return [None]


def _batch(args, dims, *, name, kind, axes):
    (x,), (d,) = args, dims
    if d is not None:
        # The new (outer) vmap axis is inserted at `d`; earlier axes at or
        # after it move one place to the right.
        axes = (d,) + tuple(a + (a >= d) for a in axes)
    intermediate_p.bind(x, name=name, kind=kind, axes=axes)
    return [], []


def _dce(used_outputs, eqn):
    # A tap has no outputs, so the default rule would always delete it. Keep
    # it: it costs nothing, and deleting it would make a harvested value
    # silently disappear.
    del used_outputs
    return [True], eqn


def _partial_eval_custom(saveable, unks_in, inst_in, eqn):
    # Used by `jax.checkpoint` under autodiff: the tap stays on the side that
    # computes its value (known: the forward pass), and is not recomputed.
    del saveable, inst_in
    if unks_in[0]:
        return None, eqn, [], [], []
    return eqn, None, [], [], []


def _partial_eval(trace, tracer, **params):
    # Tracer-based partial evaluation (e.g. `jax.grad` through a `lax.scan`
    # inside the model) keeps only what its outputs reach. Register a tap on a
    # not-yet-known value like an effect, so that it is kept.
    try:
        known = tracer.pval.get_known()
        if known is not None:
            return intermediate_p.bind(known, **params)
        tracer = trace.instantiate_const(tracer)
        source = _source_info_util.current()
        recipe = _new_eqn_recipe(
            trace, [tracer], [], intermediate_p, params, set(), source
        )
        trace.effect_handles.append(_EffectHandle([tracer], recipe))
    except AttributeError as e:
        raise internals_error(
            "partial evaluation tracers", f"AttributeError: {e}", "A tap"
        ) from e
    return []


if _register_lowering is not None and intermediate_p is not None:
    try:
        _register_lowering(intermediate_p, _lowering)
    except Exception as e:
        _MISSING.append((TAP, "jax.interpreters.mlir.register_lowering", repr(e)))
_register(TAP, "jax.interpreters.ad.primitive_jvps", _primitive_jvps, _jvp)
_register(
    TAP, "jax.interpreters.ad.primitive_transposes", _primitive_transposes, _transpose
)
_register(
    TAP, "jax.interpreters.batching.primitive_batchers", _primitive_batchers, _batch
)
_register(HARVEST, "jax.interpreters.partial_eval.dce_rules", _dce_rules, _dce)
_register(
    HARVEST,
    "jax.interpreters.partial_eval.partial_eval_jaxpr_custom_rules",
    _pe_custom_rules,
    _partial_eval_custom,
)
if None not in (_EffectHandle, _new_eqn_recipe, _source_info_util):
    _register(
        HARVEST,
        "jax.interpreters.partial_eval.custom_partial_eval_rules",
        _pe_rules,
        _partial_eval,
    )


# ----------------------------------------------------------------------------
# Jaxprs
# ----------------------------------------------------------------------------


def sub_jaxprs(eqn: Any) -> Iterator[Any]:
    """The jaxprs held in an equation's parameters (as open jaxprs)."""
    for value in eqn.params.values():
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, _Jaxpr):
                yield v
            elif isinstance(v, _ClosedJaxpr):
                yield v.jaxpr


def open_jaxpr(jaxpr: Any) -> tuple[Any, Sequence[Any]]:
    """`(jaxpr, consts)` of a closed or open jaxpr."""
    if isinstance(jaxpr, _ClosedJaxpr):
        return jaxpr.jaxpr, jaxpr.consts
    return jaxpr, ()


def reader(env: dict[Any, Any]) -> Callable[[Any], Any]:
    """Read a jaxpr variable from `env`, or a literal's value."""

    def read(v):
        return v.val if isinstance(v, _Literal) else env[v]

    return read


def is_pass_through(jaxpr: Any) -> bool:
    """Whether a (closed) jaxpr computes nothing from its inputs.

    It returns them, or constants and placeholders (a skipped loop step).
    """
    jaxpr, _ = open_jaxpr(jaxpr)
    return all(isinstance(v, _Literal) for e in jaxpr.eqns for v in e.invars)


def bind_eqn(eqn: Any, invals: Sequence[Any]) -> list[Any]:
    """Re-issue an equation unchanged in the current trace."""
    try:
        params = eqn.primitive.get_bind_params(eqn.params)
        # jax 0.8.1-0.9.1 return `(subfuns, params)`; jax 0.9.2-0.10.2 `params`.
        subfuns, params = params if isinstance(params, tuple) else ((), params)
        name_stack = _source_info_util.current_name_stack() + eqn.source_info.name_stack
        context = _source_info_util.user_context(
            eqn.source_info.traceback, name_stack=name_stack
        )
        manager = eqn.ctx.manager
    except AttributeError as e:
        raise internals_error(
            "jaxpr equations", f"AttributeError: {e}", "`ep.intermediates`"
        ) from e
    with context, manager:
        out = eqn.primitive.bind(*subfuns, *invals, **params)
    return list(out) if eqn.primitive.multiple_results else [out]
