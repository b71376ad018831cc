"""The harvesting interpreter: evaluates a jaxpr, collecting what its taps record.

`Harvester.eval` runs a jaxpr equation by equation in the caller's trace (so
outer `jit`/`grad`/`vmap` see ordinary JAX operations). Each tap equation is
recorded and bound again, so a harvest inside a harvested function leaves its
taps visible to the outer one. Each higher-order equation that contains a
wanted tap is re-issued through JAX's public API with the tapped values
threaded out as extra outputs (`lax.scan` stacks them over steps, `lax.switch`
selects them, `jax.checkpoint` and custom-derivative functions return them;
`jax.jit` bodies are inlined). Where that is impossible (`lax.while_loop`,
unknown primitives) it raises an error naming the tap.

Taps that JAX only runs while transforming the function (in a `jax.custom_jvp`
rule, or a `jax.custom_vjp` `fwd`/`bwd`) were not traced with it, so they
cannot be harvested: binding one while a harvest runs raises an error.
"""

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._batched_map import map_batch, merge_batches
from ._kinds import kind_of, param, primitive_name
from ._primitive import bind_eqn, bind_tap, open_jaxpr, reader, sub_jaxprs, watch_binds
from ._records import Record, check_branches, finalize
from ._sites import Sites


def describe(name: str | None) -> str:
    return "an unnamed `ep.Intermediate` slot" if name is None else f"`{name}`"


UNNAMED_SLOT_MSG = (
    "An `ep.Intermediate` slot without a name was recorded. `ep.intermediates` "
    "names slots by their path in `fn` and in its arguments, and this one was "
    "reached neither way (e.g. a model captured by a closure or a lambda). Pass "
    "the model itself, `ep.intermediates(model)(x)`, or pass it as an argument, "
    "`ep.intermediates(loss)(model, x)`; or give the slot a `name=`."
)

_IN_RULE = "a rule that JAX runs while transforming the function (the JVP rule of "
_IN_RULE += "a `jax.custom_jvp`, or the `fwd` of a `jax.custom_vjp`)"
_IN_BWD = "the `bwd` of a `jax.custom_vjp`, which JAX runs in the backward pass"


class Harvester:
    """Evaluates jaxprs, recording the taps whose names are wanted."""

    def __init__(self, names: frozenset[str] | None, jaxpr: Any):
        self.names = names
        self.sites = Sites()
        self.known = {name for name, _ in self.sites(jaxpr)}
        self.rebind = True

    def wanted(self, name: str | None) -> bool:
        return self.names is None or name in self.names

    def wanted_in(self, jaxpr: Any) -> list[str | None]:
        return [name for name, _ in self.sites(jaxpr) if self.wanted(name)]

    def watcher(self, where: str):
        """A bind watcher that raises for a wanted tap bound in `where`.

        A tap of the harvested jaxpr itself is fine (e.g. a rule that calls the
        function).
        """

        def watch(name):
            if name in self.known or not self.wanted(name):
                return
            raise ValueError(
                f"Cannot harvest {describe(name)}: it is recorded inside {where}, "
                "not by the function itself, so `ep.intermediates` cannot return "
                "it. Tap the value in the function, harvest the derivative instead "
                "(`ep.intermediates(jax.grad(f))`), or leave it out of the harvest "
                "with `names=`."
            )

        return watch

    def check_kept(self, bound: Iterable[str | None]) -> None:
        """Raise for a wanted tap bound while tracing that JAX left out of the jaxpr.

        E.g. dropped by the auto-DCE of a linearization's tangents.
        """
        for name in bound:
            if name not in self.known and self.wanted(name):
                raise ValueError(
                    f"Cannot harvest {describe(name)}: it was recorded while the "
                    "function was traced, but JAX left it out of the computation: a "
                    "tap of a tangent under reverse-mode autodiff (e.g. in the JVP "
                    "rule of a `jax.custom_jvp` under `jax.grad`: tangents are never "
                    "computed), a tap in the function of a `jax.custom_vjp` under "
                    "`jax.grad` (its `fwd` runs instead), or a tap in code traced "
                    "only for shapes (`jax.eval_shape`). Tap a value the computation "
                    "keeps, use forward mode (`jax.jvp`), or leave it out of the "
                    "harvest with `names=`."
                )

    def run(self, jaxpr: Any, consts: Sequence[Any], args: Sequence[Any]):
        with watch_binds(self.watcher(_IN_RULE)):
            return self.eval(jaxpr, consts, args)

    def eval(self, jaxpr: Any, consts: Sequence[Any], args: Sequence[Any]):
        env: dict[Any, Any] = {}
        read = reader(env)
        for v, val in zip(jaxpr.constvars, consts, strict=True):
            env[v] = val
        for v, val in zip(jaxpr.invars, args, strict=True):
            env[v] = val
        records: list[Record] = []
        for eqn in jaxpr.eqns:
            invals = [read(v) for v in eqn.invars]
            kind = kind_of(eqn)
            if kind == "tap":
                self.tap(eqn, invals[0], records)
                outvals = []
            else:
                subs = list(sub_jaxprs(eqn))
                wanted = [n for s in subs for n in self.wanted_in(s)]
                if kind == "scan" and wanted:
                    batch = map_batch(eqn, jaxpr)
                    outvals = self.scan(eqn, invals, records, batch)
                elif wanted or self.watch_vjp(kind, subs):
                    outvals = self.higher_order(eqn, kind, invals, wanted, records)
                else:
                    outvals = bind_eqn(eqn, invals)
            for v, val in zip(eqn.outvars, outvals, strict=True):
                env[v] = val  # (a dropped output is written and never read)
        return [read(v) for v in jaxpr.outvars], records

    def watch_vjp(self, kind: str | None, subs: list[Any]) -> bool:
        """Whether to re-issue an equation to watch the `bwd` of custom VJPs in it.

        Their `bwd` runs after the harvest. There is nothing to watch if
        nothing is wanted, and no way to inside a `while_loop` or an unknown
        primitive.
        """
        if self.names == frozenset() or kind in (None, "while_loop"):
            return False
        return kind == "custom_vjp" or any(self.sites.has_custom_vjp(s) for s in subs)

    def tap(self, eqn, x, records):
        name, kind = param(eqn, "name"), param(eqn, "kind")
        axes = param(eqn, "axes")
        if self.rebind:
            # Bound again, so that a harvest of a function that calls this one
            # sees this tap too.
            bind_tap(x, name=name, kind=kind, axes=axes)
        if not self.wanted(name):
            return
        if name is None:
            raise ValueError(UNNAMED_SLOT_MSG)
        if kind == "tangent":
            raise ValueError(
                f"Cannot harvest `{name}`: it taps a tangent (e.g. in the JVP rule "
                "of a `jax.custom_jvp`) or the input of a linear function, and "
                "transposition (`jax.grad`, `jax.vjp`, `jax.linear_transpose`) "
                "never computes those. Tap a primal value, use forward mode "
                "(`jax.jvp`, `jax.jacfwd`), or leave it out of the harvest with "
                "`names=`."
            )
        if not isinstance(x, jax.Array):  # a literal
            x = jnp.asarray(x)
        value = jnp.moveaxis(x, axes, tuple(range(len(axes)))) if axes else x
        records.append(Record(name, kind, value, len(axes)))

    def higher_order(self, eqn, kind, invals, wanted, records):
        if kind in ("inline", "closed_call"):
            key = "jaxpr" if kind == "inline" else "call_jaxpr"
            jaxpr, consts = open_jaxpr(param(eqn, key))
            outs, recs = self.eval(jaxpr, consts, invals)
            records.extend(recs)
            return outs
        if kind == "checkpoint":
            return self.remat(eqn, invals, records)
        if kind == "scan":  # (with no wanted tap: only to watch custom VJPs)
            return self.scan(eqn, invals, records)
        if kind == "cond":
            return self.cond(eqn, invals, records)
        if kind == "custom_jvp":
            return self.custom_jvp(eqn, invals, records)
        if kind == "custom_vjp":
            return self.custom_vjp(eqn, invals, records)
        what = describe(wanted[0])
        if kind == "while_loop":
            raise ValueError(
                f"Cannot harvest {what}: it is inside a `lax.while_loop` (or a "
                "`lax.fori_loop` with traced bounds), whose number of steps is not "
                "known when tracing, so its values cannot be stacked. Use "
                "`lax.scan` or `lax.fori_loop` with Python-int bounds, move the tap "
                "out of the loop, or leave it out of the harvest with `names=`."
            )
        raise ValueError(
            f"Cannot harvest {what}: it is inside a `{primitive_name(eqn)}` "
            "primitive, which `ep.intermediates` cannot look inside. Move the tap "
            "out of it, or leave it out of the harvest with `names=`."
        )

    def run_closed(self, closed, args, meta, axes=None):
        """Evaluate a sub-jaxpr, returning its outputs and finalised taps.

        `axes`, if given, gets each name's number of vmap axes (see `Record`).
        """
        jaxpr, consts = open_jaxpr(closed)
        outs, recs = self.eval(jaxpr, consts, args)
        entries = finalize(recs)
        meta.clear()
        meta.update({name: kind for name, (kind, _) in entries.items()})
        if axes is not None:
            counts = {r.name: 0 for r in recs}
            for r in recs:
                counts[r.name] += 1
            axes.update({r.name: r.axes if counts[r.name] == 1 else None for r in recs})
        return outs, {name: value for name, (_, value) in entries.items()}

    def remat(self, eqn, invals, records):
        meta: list[tuple[str, str]] = []

        def body(*args):
            outs, recs = self.eval(param(eqn, "jaxpr"), (), args)
            meta[:] = [(r.name, r.kind) for r in recs]
            return outs, [r.value for r in recs]

        ckpt = jax.checkpoint(
            body, prevent_cse=param(eqn, "prevent_cse"), policy=param(eqn, "policy")
        )
        outs, values = ckpt(*invals)
        records.extend(Record(n, k, v) for (n, k), v in zip(meta, values, strict=True))
        return outs

    def scan(self, eqn, invals, records, batch=None):
        """Re-issue a scan, its taps stacked over steps.

        `batch`: the batch size if the scan is a `lax.map(..., batch_size=)` (see
        `_batched_map`), whose taps get one value per element.
        """
        n_consts, n_carry = param(eqn, "num_consts"), param(eqn, "num_carry")
        consts = invals[:n_consts]
        init = invals[n_consts : n_consts + n_carry]
        xs = invals[n_consts + n_carry :]
        meta: dict[str, str] = {}
        axes: dict[str, int | None] = {}

        def step(carry, x):
            outs, entries = self.run_closed(
                param(eqn, "jaxpr"), [*consts, *carry, *x], meta, axes
            )
            return outs[:n_carry], (outs[n_carry:], entries)

        carry, (ys, entries) = lax.scan(
            step,
            init,
            xs,
            length=param(eqn, "length"),
            reverse=param(eqn, "reverse"),
            unroll=param(eqn, "unroll"),
        )
        if batch is None:
            records.extend(Record(n, meta[n], entries[n]) for n in meta)
        else:
            records.extend(
                Record(
                    n, meta[n], merge_batches(n, entries[n], axes[n], batch), 1, True
                )
                for n in meta
            )
        return [*carry, *ys]

    def cond(self, eqn, invals, records):
        index, *ops = invals
        branches = param(eqn, "branches")
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
                check_branches(metas, shapes, branches)
            raise
        check_branches(metas, shapes, branches)
        meta0 = metas[0]
        assert meta0 is not None  # every branch has been traced
        records.extend(Record(n, meta0[n], entries[n]) for n in meta0)
        return outs

    def entries(self, closed, args, meta):
        """The tapped values of a custom-derivative function, again, in its rule.

        They are not bound again: they are the primal's taps.
        """
        self.rebind, rebind = False, self.rebind
        try:
            return jax.lax.stop_gradient(self.run_closed(closed, args, meta)[1])
        finally:
            self.rebind = rebind

    def custom_jvp(self, eqn, invals, records):
        # Outputs keep the function's own JVP rule; tapped values are harvested
        # without a derivative (the custom rule defines none for them).
        meta: dict[str, str] = {}
        call_jaxpr = param(eqn, "call_jaxpr")

        def primal(*args):
            return self.run_closed(call_jaxpr, args, meta)

        fn = jax.custom_jvp(primal)

        def fn_jvp(primals, tangents):
            outs, out_dots = jax.jvp(
                functools.partial(bind_eqn, eqn), (list(primals),), (list(tangents),)
            )
            entries = self.entries(call_jaxpr, primals, meta)
            zeros = jax.tree_util.tree_map(_zero_tangent, entries)
            return (outs, entries), (out_dots, zeros)

        fn.defjvp(fn_jvp)
        outs, entries = fn(*invals)
        records.extend(Record(n, meta[n], entries[n]) for n in meta)
        return outs

    def custom_vjp(self, eqn, invals, records):
        # Outputs keep the function's own VJP rule; tapped values are harvested
        # without a derivative (the custom rule defines none for them).
        meta: dict[str, str] = {}
        call_jaxpr = param(eqn, "call_jaxpr")

        def primal(*args):
            return self.run_closed(call_jaxpr, args, meta)

        def fwd(*args):
            outs, vjp = jax.vjp(functools.partial(bind_eqn, eqn), list(args))
            return (outs, self.entries(call_jaxpr, args, meta)), vjp

        def bwd(vjp, cts):
            out_cts, _ = cts
            with watch_binds(self.watcher(_IN_BWD)):
                (arg_cts,) = vjp(out_cts)
            return tuple(arg_cts)

        fn = jax.custom_vjp(primal)
        fn.defvjp(fwd, bwd)
        outs, entries = fn(*invals)
        records.extend(Record(n, meta[n], entries[n]) for n in meta)
        return outs


def _zero_tangent(x):
    dtype = jnp.result_type(x)
    if jnp.issubdtype(dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return np.zeros(jnp.shape(x), dtype=jax.dtypes.float0)
