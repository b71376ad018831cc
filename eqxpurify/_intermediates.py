"""Taps and harvesting: named values taken out of the middle of a computation.

The mechanism is a primitive, `intermediate_p`, that is a statement: it takes
the tapped array and has no outputs, and `ep.intermediate(x, ...)` returns `x`
itself. `ep.intermediate` and `ep.Intermediate` slots always bind it, so every
trace of model code (including traces that `jax.jit` caches and reuses)
contains one equation per tap, while the code after the tap uses the very same
value as without it. Its rules make it free when nobody harvests: evaluation
and MLIR lowering do nothing (no HLO at all), JVP taps the primal only,
batching records where the `jax.vmap` axes are, and dead-code elimination and
partial evaluation keep the equation (so a tap never silently disappears).

`ep.intermediates(fn)` traces `fn` to a jaxpr and evaluates that jaxpr itself,
equation by equation, in the caller's trace (so outer `jit`/`grad`/`vmap` see
ordinary JAX operations). Each tap equation is recorded; each higher-order
primitive that contains a tap is re-issued through JAX's public API with the
tapped values threaded out as extra outputs (`lax.scan` stacks them over steps,
`lax.switch` selects them, `jax.checkpoint` and custom-derivative functions
return them; `jax.jit` bodies are inlined). Where that is impossible
(`lax.while_loop`, unknown primitives) harvesting raises an error naming the
tap.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.extend.core as jex
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import source_info_util
from jax.extend.core import primitives as jprims
from jax.interpreters import ad, batching, mlir, partial_eval as pe
from jaxtyping import Array, ArrayLike, PyTree

from ._paths import path_str

# ----------------------------------------------------------------------------
# The primitive
# ----------------------------------------------------------------------------

# A tap is a statement: `intermediate_p` takes the tapped array and has no
# outputs, and `ep.intermediate(x, ...)` returns `x` itself. Code after the tap
# uses the very same value, so JAX's own optimisations (residual forwarding,
# CSE, DCE of what the tap does not need) see no difference.
#
# Params: `name` (str, or None for a slot not yet named by `ep.intermediates`),
# `kind` ("tap" or "slot") and `axes` (positions of the `jax.vmap` axes in the
# operand, outermost vmap first).
intermediate_p = jex.Primitive("intermediate")
intermediate_p.multiple_results = True


@intermediate_p.def_impl
def _impl(x, *, name, kind, axes):
    del x, name, kind, axes
    return []


@intermediate_p.def_abstract_eval
def _abstract_eval(aval, *, name, kind, axes):
    del aval, name, kind, axes
    return []


def _lowering(ctx, x, *, name, kind, axes):
    del ctx, x, name, kind, axes
    return []


mlir.register_lowering(intermediate_p, _lowering)


def _jvp(primals, tangents, *, name, kind, axes):
    # Only the primal value is tapped; tangents are not.
    del tangents
    intermediate_p.bind(*primals, name=name, kind=kind, axes=axes)
    return [], []


ad.primitive_jvps[intermediate_p] = _jvp


def _transpose(cts, x, *, name, kind, axes):
    # Reached only by `jax.linear_transpose` of code that taps a linear input.
    # A tap has no outputs, so it contributes no cotangent.
    del cts, x, name, kind, axes
    return [None]


ad.primitive_transposes[intermediate_p] = _transpose


def _batch(args, dims, *, name, kind, axes):
    (x,), (d,) = args, dims
    if d is not None:
        # The new (outer) vmap axis is inserted at `d`; earlier axes at or
        # after it move one place to the right.
        axes = (d,) + tuple(a + (a >= d) for a in axes)
    intermediate_p.bind(x, name=name, kind=kind, axes=axes)
    return [], []


batching.primitive_batchers[intermediate_p] = _batch


def _dce(used_outputs, eqn):
    # A tap has no outputs, so the default rule would always delete it. Keep
    # it: it costs nothing, and deleting it would make a harvested value
    # silently disappear.
    del used_outputs
    return [True], eqn


pe.dce_rules[intermediate_p] = _dce


def _partial_eval_custom(saveable, unks_in, inst_in, eqn):
    # Used by `jax.checkpoint` under autodiff: the tap stays on the side that
    # computes its value (known: the forward pass), and is not recomputed.
    del saveable, inst_in
    if unks_in[0]:
        return None, eqn, [], [], []
    return eqn, None, [], [], []


pe.partial_eval_jaxpr_custom_rules[intermediate_p] = _partial_eval_custom


try:  # JAX internals, for the rule below.
    from jax._src.interpreters.partial_eval import (
        EffectHandle as _EffectHandle,
        new_eqn_recipe as _new_eqn_recipe,
    )
except ImportError:  # pragma: no cover
    pass
else:

    def _partial_eval(trace, tracer, **params):
        # Tracer-based partial evaluation (e.g. `jax.grad` through a `lax.scan`
        # inside the model) keeps only what its outputs reach. Register a tap
        # on a not-yet-known value like an effect, so that it is kept.
        known = tracer.pval.get_known()
        if known is not None:
            return intermediate_p.bind(known, **params)
        tracer = trace.instantiate_const(tracer)
        source = source_info_util.current()
        recipe = _new_eqn_recipe(
            trace, [tracer], [], intermediate_p, params, set(), source
        )
        trace.effect_handles.append(_EffectHandle([tracer], recipe))
        return []

    pe.custom_partial_eval_rules[intermediate_p] = _partial_eval


# ----------------------------------------------------------------------------
# Public tap and slot
# ----------------------------------------------------------------------------


def _check_array(x: Any, what: str) -> None:
    if not isinstance(
        x, (jax.Array, np.ndarray, np.generic, bool, int, float, complex)
    ):
        raise TypeError(
            f"{what} takes a single array, but got a {type(x).__name__}. To tap a "
            "pytree, tap each of its arrays with its own name."
        )


def intermediate(x: ArrayLike, *, name: str) -> Array:
    """Tap a value: return `x` unchanged, and let `ep.intermediates` harvest it.

    A tap adds no operation to the compiled program, so it costs nothing unless
    the function is run through [`eqxpurify.intermediates`][]. It works inside
    `jax.jit`, `jax.vmap`, `lax.scan`, `lax.cond`, `jax.checkpoint` and
    custom-derivative functions.

    Args:
        x: the array to record.
        name: the name it is harvested under. Each name may be recorded at most
            once per call of the harvested function.

    Returns:
        `x`, as a JAX array.

    Example:
        >>> import jax.numpy as jnp
        >>> import eqxpurify as ep
        >>> def f(x):
        ...     h = ep.intermediate(jnp.sin(x), name="h")
        ...     return 2 * h
        >>> out, values = ep.intermediates(f)(jnp.array(0.5))
        >>> bool(values["h"] == jnp.sin(0.5))
        True
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"`name` must be a non-empty string, got {name!r}.")
    _check_array(x, "`ep.intermediate`")
    x = jnp.asarray(x)
    intermediate_p.bind(x, name=name, kind="tap", axes=())
    return x


class Intermediate(eqx.Module):
    """A named slot for an internal value of a module's computation.

    Declare it as a field and call it on the value to record; it returns the
    value unchanged. [`eqxpurify.intermediates`][] names each slot by its path
    in the model (e.g. `encoder.layers[0].hidden`) unless it has an explicit
    `name`. A slot has no array leaves, so it never becomes a parameter.

    A slot that is called several times in one call (a block applied in a
    Python loop) is harvested as the stack of its values along a new leading
    axis, in call order.

    Attributes:
        name: an explicit name, or `None` (the default) to use the slot's path.

    Example:
        >>> import equinox as eqx
        >>> import jax.numpy as jnp
        >>> import eqxpurify as ep
        >>> class Block(eqx.Module):
        ...     hidden: ep.Intermediate = ep.Intermediate()
        ...     def __call__(self, x):
        ...         return jnp.tanh(self.hidden(2 * x))
        >>> class Model(eqx.Module):
        ...     block: Block = Block()
        ...     def __call__(self, x):
        ...         return self.block(x)
        >>> out, values = ep.intermediates(Model())(jnp.ones(3))
        >>> list(values)
        ['block.hidden']
    """

    name: str | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise TypeError(
                f"`name` must be a non-empty string or None, got {self.name!r}."
            )

    def __call__(self, x: ArrayLike) -> Array:
        """Record `x` in this slot and return it unchanged."""
        _check_array(x, "An `ep.Intermediate` slot")
        x = jnp.asarray(x)
        intermediate_p.bind(x, name=self.name, kind="slot", axes=())
        return x


def is_intermediate(x: Any) -> bool:
    """Whether `x` is an [`eqxpurify.Intermediate`][] slot.

    Usable as `is_leaf` with `jax.tree_util` and as a filter with Equinox.

    Example:
        >>> import eqxpurify as ep
        >>> ep.is_intermediate(ep.Intermediate()), ep.is_intermediate(1.0)
        (True, False)
    """
    return isinstance(x, Intermediate)


# ----------------------------------------------------------------------------
# Naming slots by path
# ----------------------------------------------------------------------------


class _Naming:
    """Names unnamed slots by their path; remembers which names it gave."""

    def __init__(self):
        self.given: dict[str, str] = {}  # name -> the root it was found in
        self.explicit: set[str] = set()

    def name(self, tree: Any, root: str) -> Any:
        leaves, treedef = jax.tree_util.tree_flatten_with_path(
            tree, is_leaf=is_intermediate
        )
        if not any(is_intermediate(leaf) for _, leaf in leaves):
            return tree
        new_leaves = []
        for path, leaf in leaves:
            if is_intermediate(leaf) and leaf.name is not None:
                self.explicit.add(leaf.name)
            elif is_intermediate(leaf):
                if not path:
                    raise ValueError(
                        f"An `ep.Intermediate` slot is passed directly as {root}, "
                        "so it has no path to be named by; give it a `name=`."
                    )
                name = path_str(path)
                if self.given.get(name, root) != root:
                    raise ValueError(
                        f"Two `ep.Intermediate` slots would both be named `{name}` "
                        f"(one in {self.given[name]}, one in {root}); give one of "
                        "them an explicit `name=`."
                    )
                self.given[name] = root
                leaf = Intermediate(name=name)
            new_leaves.append(leaf)
        return jax.tree_util.tree_unflatten(treedef, new_leaves)

    def check(self) -> None:
        clash = sorted(set(self.given) & self.explicit)
        if clash:
            raise ValueError(
                f"The `ep.Intermediate` slot at path `{clash[0]}` in "
                f"{self.given[clash[0]]} would be named `{clash[0]}`, which another "
                "slot already has as its explicit `name`; rename that slot."
            )

    def unname(self, tree: Any) -> Any:
        """Undo `name` on the slots of an output (e.g. a returned model)."""
        if not self.given:
            return tree

        def restore(leaf):
            if is_intermediate(leaf) and leaf.name in self.given:
                return Intermediate()
            return leaf

        return jax.tree_util.tree_map(restore, tree, is_leaf=is_intermediate)


# ----------------------------------------------------------------------------
# Finding taps in jaxprs
# ----------------------------------------------------------------------------


def _open(jaxpr: Any) -> tuple[Any, Sequence[Any]]:
    if isinstance(jaxpr, jex.ClosedJaxpr):
        return jaxpr.jaxpr, jaxpr.consts
    return jaxpr, ()


class _Sites:
    """Memoised search for the (name, kind) of every tap inside a jaxpr."""

    def __init__(self):
        self._cache: dict[int, tuple[Any, list[tuple[str | None, str]]]] = {}

    def __call__(self, jaxpr: Any) -> list[tuple[str | None, str]]:
        hit = self._cache.get(id(jaxpr))
        if hit is not None and hit[0] is jaxpr:
            return hit[1]
        sites = []
        for eqn in jaxpr.eqns:
            if eqn.primitive is intermediate_p:
                sites.append((eqn.params["name"], eqn.params["kind"]))
            else:
                for sub in jex.jaxprs_in_params(eqn.params):
                    sites.extend(self(sub))
        self._cache[id(jaxpr)] = (jaxpr, sites)
        return sites


def _describe(name: str | None) -> str:
    return "an unnamed `ep.Intermediate` slot" if name is None else f"`{name}`"


# ----------------------------------------------------------------------------
# The harvesting interpreter
# ----------------------------------------------------------------------------


class _Record:
    __slots__ = ("name", "kind", "value")

    def __init__(self, name: str, kind: str, value: Any):
        self.name, self.kind, self.value = name, kind, value


_UNNAMED_SLOT_MSG = (
    "An `ep.Intermediate` slot without a name was recorded. `ep.intermediates` "
    "names slots by their path in `fn` and in its arguments, and this one was "
    "reached neither way (e.g. a model captured by a closure or a lambda). Pass "
    "the model itself, `ep.intermediates(model)(x)`, or pass it as an argument, "
    "`ep.intermediates(loss)(model, x)`; or give the slot a `name=`."
)


class _Harvester:
    def __init__(self, names: frozenset[str] | None):
        self.names = names
        self.sites = _Sites()

    def wanted(self, name: str | None) -> bool:
        return self.names is None or name in self.names

    def wanted_in(self, jaxpr: Any) -> list[str | None]:
        return [name for name, _ in self.sites(jaxpr) if self.wanted(name)]

    def eval(self, jaxpr: Any, consts: Sequence[Any], args: Sequence[Any]):
        env: dict[Any, Any] = {}

        def read(v):
            return v.val if isinstance(v, jex.Literal) else env[v]

        for v, val in zip(jaxpr.constvars, consts, strict=True):
            env[v] = val
        for v, val in zip(jaxpr.invars, args, strict=True):
            env[v] = val
        records: list[_Record] = []
        for eqn in jaxpr.eqns:
            invals = [read(v) for v in eqn.invars]
            if eqn.primitive is intermediate_p:
                self.tap(eqn, invals[0], records)
                outvals = []
            else:
                wanted = [
                    n
                    for s in jex.jaxprs_in_params(eqn.params)
                    for n in self.wanted_in(s)
                ]
                if wanted:
                    outvals = self.higher_order(eqn, invals, wanted, records)
                else:
                    outvals = _bind(eqn, invals)
            for v, val in zip(eqn.outvars, outvals, strict=True):
                if not isinstance(v, jex.DropVar):
                    env[v] = val
        return [read(v) for v in jaxpr.outvars], records

    def tap(self, eqn, x, records):
        name, kind, axes = eqn.params["name"], eqn.params["kind"], eqn.params["axes"]
        if not self.wanted(name):
            return
        if name is None:
            raise ValueError(_UNNAMED_SLOT_MSG)
        if not isinstance(x, jax.Array):  # a literal
            x = jnp.asarray(x)
        value = jnp.moveaxis(x, axes, tuple(range(len(axes)))) if axes else x
        records.append(_Record(name, kind, value))

    def higher_order(self, eqn, invals, wanted, records):
        prim = eqn.primitive
        if prim in (jprims.jit_p, jprims.closed_call_p, jprims.call_p):
            key = "jaxpr" if prim is jprims.jit_p else "call_jaxpr"
            jaxpr, consts = _open(eqn.params[key])
            outs, recs = self.eval(jaxpr, consts, invals)
            records.extend(recs)
            return outs
        if prim is jprims.remat_p:
            return self.remat(eqn, invals, records)
        if prim is jprims.scan_p:
            return self.scan(eqn, invals, records)
        if prim is jprims.cond_p:
            return self.cond(eqn, invals, records)
        if prim is jprims.custom_jvp_call_p:
            return self.custom_jvp(eqn, invals, records)
        if prim is jprims.custom_vjp_call_p:
            return self.custom_vjp(eqn, invals, records)
        what = _describe(wanted[0])
        if prim is jprims.while_p:
            raise ValueError(
                f"Cannot harvest {what}: it is inside a `lax.while_loop` (or a "
                "`lax.fori_loop` with traced bounds), whose number of steps is not "
                "known when tracing, so its values cannot be stacked. Use "
                "`lax.scan` or `lax.fori_loop` with Python-int bounds, move the tap "
                "out of the loop, or leave it out of the harvest with `names=`."
            )
        raise ValueError(
            f"Cannot harvest {what}: it is inside a `{prim.name}` primitive, which "
            "`ep.intermediates` cannot look inside. Move the tap out of it, or "
            "leave it out of the harvest with `names=`."
        )

    def run_closed(self, closed, args, meta):
        """Evaluate a sub-jaxpr, returning its outputs and finalised taps."""
        jaxpr, consts = _open(closed)
        outs, recs = self.eval(jaxpr, consts, args)
        entries = _finalize(recs)
        meta.clear()
        meta.update({name: kind for name, (kind, _) in entries.items()})
        return outs, {name: value for name, (_, value) in entries.items()}

    def remat(self, eqn, invals, records):
        params = eqn.params
        meta: list[tuple[str, str]] = []

        def body(*args):
            outs, recs = self.eval(params["jaxpr"], (), args)
            meta[:] = [(r.name, r.kind) for r in recs]
            return outs, [r.value for r in recs]

        ckpt = jax.checkpoint(
            body, prevent_cse=params["prevent_cse"], policy=params["policy"]
        )
        outs, values = ckpt(*invals)
        records.extend(_Record(n, k, v) for (n, k), v in zip(meta, values, strict=True))
        return outs

    def scan(self, eqn, invals, records):
        params = eqn.params
        n_consts, n_carry = params["num_consts"], params["num_carry"]
        consts = invals[:n_consts]
        init = invals[n_consts : n_consts + n_carry]
        xs = invals[n_consts + n_carry :]
        meta: dict[str, str] = {}

        def step(carry, x):
            outs, entries = self.run_closed(
                params["jaxpr"], [*consts, *carry, *x], meta
            )
            return outs[:n_carry], (outs[n_carry:], entries)

        carry, (ys, entries) = lax.scan(
            step,
            init,
            xs,
            length=params["length"],
            reverse=params["reverse"],
            unroll=params["unroll"],
        )
        records.extend(_Record(n, meta[n], entries[n]) for n in meta)
        return [*carry, *ys]

    def cond(self, eqn, invals, records):
        index, *ops = invals
        branches = eqn.params["branches"]
        metas: list[dict[str, str] | None] = [None] * len(branches)
        shapes: list[dict[str, Any] | None] = [None] * len(branches)

        def make_branch(i, closed):
            def branch(*args):
                meta: dict[str, str] = {}
                outs, entries = self.run_closed(closed, args, meta)
                metas[i] = meta
                shapes[i] = {
                    n: (jnp.shape(v), jnp.result_type(v)) for n, v in entries.items()
                }
                return outs, entries

            return branch

        fns = [make_branch(i, b) for i, b in enumerate(branches)]
        try:
            outs, entries = lax.switch(index, fns, *ops)
        except Exception:
            if all(m is not None for m in metas):
                _check_branches(metas, shapes)
            raise
        _check_branches(metas, shapes)
        meta0 = metas[0]
        assert meta0 is not None  # every branch has been traced
        records.extend(_Record(n, meta0[n], entries[n]) for n in meta0)
        return outs

    def custom_jvp(self, eqn, invals, records):
        # Outputs keep the function's own JVP rule; tapped values are harvested
        # without a derivative (the custom rule defines none for them).
        meta: dict[str, str] = {}

        def primal(*args):
            return self.run_closed(eqn.params["call_jaxpr"], args, meta)

        fn = jax.custom_jvp(primal)

        def fn_jvp(primals, tangents):
            outs, out_dots = jax.jvp(
                functools.partial(_bind, eqn), (list(primals),), (list(tangents),)
            )
            _, entries = primal(*primals)
            entries = jax.lax.stop_gradient(entries)
            return (outs, entries), (
                out_dots,
                jax.tree_util.tree_map(_zero_tangent, entries),
            )

        fn.defjvp(fn_jvp)
        outs, entries = fn(*invals)
        records.extend(_Record(n, meta[n], entries[n]) for n in meta)
        return outs

    def custom_vjp(self, eqn, invals, records):
        # Outputs keep the function's own VJP rule; tapped values are harvested
        # without a derivative (the custom rule defines none for them).
        meta: dict[str, str] = {}

        def primal(*args):
            return self.run_closed(eqn.params["call_jaxpr"], args, meta)

        def fwd(*args):
            outs, vjp = jax.vjp(functools.partial(_bind, eqn), list(args))
            _, entries = primal(*args)
            return (outs, entries), vjp

        def bwd(vjp, cts):
            out_cts, _ = cts
            (arg_cts,) = vjp(out_cts)
            return tuple(arg_cts)

        fn = jax.custom_vjp(primal)
        fn.defvjp(fwd, bwd)
        outs, entries = fn(*invals)
        records.extend(_Record(n, meta[n], entries[n]) for n in meta)
        return outs


def _bind(eqn, invals):
    """Re-issue an equation unchanged in the current trace."""
    params = eqn.primitive.get_bind_params(eqn.params)
    name_stack = source_info_util.current_name_stack() + eqn.source_info.name_stack
    with (
        source_info_util.user_context(eqn.source_info.traceback, name_stack=name_stack),
        eqn.ctx.manager,
    ):
        out = eqn.primitive.bind(*invals, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def _zero_tangent(x):
    dtype = jnp.result_type(x)
    if jnp.issubdtype(dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return np.zeros(jnp.shape(x), dtype=jax.dtypes.float0)


def _finalize(records: Sequence[_Record]) -> dict[str, tuple[str, Any]]:
    """Group records by name: one per tap, slots called n > 1 times stacked."""
    grouped: dict[str, list[_Record]] = {}
    for record in records:
        grouped.setdefault(record.name, []).append(record)
    out = {}
    for name, group in grouped.items():
        kinds = {r.kind for r in group}
        if len(kinds) > 1:
            raise ValueError(
                f"The name `{name}` is used both by an `ep.intermediate` tap and by "
                "an `ep.Intermediate` slot; rename the tap."
            )
        (kind,) = kinds
        if len(group) == 1:
            out[name] = (kind, group[0].value)
        elif kind == "tap":
            raise ValueError(
                f"The tap `{name}` was recorded {len(group)} times in one call. A "
                "name may be recorded once per call: give each `ep.intermediate` "
                "its own `name` (for a function called several times, pass the "
                "name in as an argument). Inside `jax.vmap`, a `lax.cond` with a "
                "batched predicate runs every branch, recording taps in each."
            )
        else:
            types = [(jnp.shape(r.value), jnp.result_type(r.value)) for r in group]
            if len(set(types)) > 1:
                raise ValueError(
                    f"The `ep.Intermediate` slot `{name}` was called {len(group)} "
                    f"times with values of different shapes or dtypes {types}, so "
                    "they cannot be stacked; use a separate slot for each call."
                )
            out[name] = (kind, jnp.stack([r.value for r in group]))
    return out


def _check_branches(metas, shapes) -> None:
    names0 = set(metas[0])
    for i, meta in enumerate(metas[1:], start=1):
        if set(meta) != names0:
            missing = sorted(names0 ^ set(meta))
            raise ValueError(
                f"Cannot harvest `{missing[0]}`: it is recorded in some branches of "
                f"a `lax.cond`/`lax.switch` but not in others (branches 0 and {i} "
                "differ). Record it in every branch, or move it out of the cond, or "
                "leave it out of the harvest with `names=`."
            )
        for name in meta:
            if meta[name] != metas[0][name] or shapes[i][name] != shapes[0][name]:
                raise ValueError(
                    f"Cannot harvest `{name}`: the branches of a `lax.cond`/"
                    "`lax.switch` record it with different shapes, dtypes or kinds "
                    f"({shapes[0][name]} in branch 0, {shapes[i][name]} in branch "
                    f"{i}). Record values of one shape and dtype in every branch."
                )


# ----------------------------------------------------------------------------
# Public harvesting
# ----------------------------------------------------------------------------


class _Intermediates(eqx.Module):
    fn: Callable[..., Any]
    names: tuple[str, ...] | None = eqx.field(static=True)

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[PyTree, dict[str, Array]]:
        naming = _Naming()
        fn, method = self.fn, None
        owner = getattr(fn, "__self__", None)
        if isinstance(owner, eqx.Module) and hasattr(fn, "__func__"):
            # A bound method of a model: name slots by their path in the model.
            fn, method = owner, getattr(fn, "__func__")
        fn = naming.name(fn, "`fn`")
        args = tuple(naming.name(a, f"argument {i}") for i, a in enumerate(args))
        kwargs = {k: naming.name(v, f"argument `{k}`") for k, v in kwargs.items()}
        naming.check()

        dynamic, static = eqx.partition((fn, args, kwargs), eqx.is_array)
        flat, treedef = jax.tree_util.tree_flatten(dynamic)
        out_store: list[Any] = []

        def flat_fn(*flat_args):
            fn_, args_, kwargs_ = eqx.combine(
                jax.tree_util.tree_unflatten(treedef, flat_args), static
            )
            out = (
                fn_(*args_, **kwargs_)
                if method is None
                else method(fn_, *args_, **kwargs_)
            )
            out_dynamic, out_static = eqx.partition(out, eqx.is_array)
            out_flat, out_tree = jax.tree_util.tree_flatten(out_dynamic)
            out_store[:] = [out_tree, out_static]
            return out_flat

        closed = jax.make_jaxpr(flat_fn)(*flat)
        out_tree, out_static = out_store

        harvester = _Harvester(None if self.names is None else frozenset(self.names))
        if self.names is not None:
            available = {n for n, _ in harvester.sites(closed.jaxpr) if n is not None}
            unknown = [n for n in self.names if n not in available]
            if unknown:
                unnamed = any(n is None for n, _ in harvester.sites(closed.jaxpr))
                hint = (
                    " Some `ep.Intermediate` slots have no name: pass the model to "
                    "`ep.intermediates` itself or as an argument so that they are "
                    "named by their path."
                    if unnamed
                    else ""
                )
                raise ValueError(
                    f"`names` contains `{unknown[0]}`, which no tap or slot records in "
                    f"this call. Recorded names: {sorted(available)}.{hint}"
                )
        outs, records = harvester.eval(closed.jaxpr, closed.consts, flat)
        entries = _finalize(records)
        values = {name: value for name, (_, value) in entries.items()}
        if self.names is not None:
            values = {name: values[name] for name in self.names}
        outs = [o if isinstance(o, jax.Array) else jnp.asarray(o) for o in outs]
        out = eqx.combine(jax.tree_util.tree_unflatten(out_tree, outs), out_static)
        out = naming.unname(out)
        return out, values


def intermediates(
    fn: Callable[..., Any], *, names: Sequence[str] | None = None
) -> Callable[..., tuple[PyTree, dict[str, Array]]]:
    """Run `fn` and return its output together with the values it taps.

    `ep.intermediates(fn)(*args, **kwargs)` returns `(out, values)`, where `out`
    is `fn(*args, **kwargs)` and `values` maps each name recorded by
    [`eqxpurify.intermediate`][] taps and [`eqxpurify.Intermediate`][] slots to
    its value, in the order they were recorded (outer `jax.jit`, `jax.grad` or
    `jax.vmap` return it with sorted keys, as they do any dict). Slots without
    an explicit name are named by their path in `fn` (when `fn` is a model or a
    bound method of one) or in the argument that holds them, e.g.
    `encoder.layers[0].hidden`.

    The harvested function can be wrapped in `jax.jit` (`eqx.filter_jit` when
    `fn` is a model holding arrays), `jax.grad` (harvested values carry
    gradients; use `has_aux=True`) and `jax.vmap` (values gain the batch axis).
    Every call traces `fn` again, so wrap it in a jit for repeated use.
    Inside `fn`:

    - a tap inside `lax.scan` is stacked over steps (leading axis, one per
      enclosing scan, outermost first);
    - a tap inside `jax.vmap` gets the vmapped axes leading, after any scan
      axes (outermost vmap first); a value that does not depend on the vmapped
      inputs is not batched and is harvested once, without that axis;
    - a tap inside `lax.cond`/`lax.switch` must be recorded in every branch
      with the same shape and dtype, and gives the taken branch's value (a
      `jax.vmap` inside `fn` turns a cond with a batched predicate into both
      branches plus a select; their taps then need distinct names);
    - taps inside `jax.jit`, `jax.checkpoint`, `jax.custom_jvp` and
      `jax.custom_vjp` functions are harvested as if inlined; those inside a
      custom-derivative function carry no derivative (its custom rule defines
      the derivative of its outputs only);
    - a tap that cannot be harvested (inside `lax.while_loop`, or a primitive
      such as `shard_map` or `pallas_call`) raises an error naming it.

    Each tap name may be recorded once per call; a slot called n > 1 times is
    harvested as its n values stacked along a new leading axis.

    Args:
        fn: the function or model to run. Array leaves of `fn` (when it is a
            pytree, such as an Equinox module) and of the arguments are traced;
            other leaves are static.
        names: the names to harvest, in the order to return them. Other taps
            then cost nothing and may sit anywhere (even in a
            `lax.while_loop`). A name that nothing records is an error.
            Defaults to every tap and slot.

    Returns:
        A function with the signature of `fn` that returns `(out, values)`,
        with `values` a `dict[str, Array]`.

    Example:
        >>> import jax
        >>> import jax.numpy as jnp
        >>> import eqxpurify as ep
        >>> def f(x):
        ...     def step(c, xi):
        ...         c = c + xi
        ...         return c, ep.intermediate(c, name="running")
        ...     return jax.lax.scan(step, 0.0, x)[0]
        >>> out, values = jax.jit(ep.intermediates(f))(jnp.arange(4.0))
        >>> values["running"]
        Array([0., 1., 3., 6.], dtype=float32)
    """
    if not callable(fn):
        raise TypeError(f"`fn` must be callable, got {type(fn).__name__}.")
    if names is not None:
        if isinstance(names, str):
            raise TypeError(
                "`names` must be a sequence of names, not a single string; write "
                f"`names=[{names!r}]`."
            )
        names = tuple(names)
        for name in names:
            if not isinstance(name, str):
                raise TypeError(f"`names` must contain strings, got {name!r}.")
        if len(set(names)) != len(names):
            raise ValueError(f"`names` contains a name twice: {list(names)}.")
    return _Intermediates(fn, names)
