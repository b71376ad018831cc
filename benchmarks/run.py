"""eqxpurify's performance benchmarks against hand-written JAX and its peers.

    python -m benchmarks --quick              # under 3 minutes on 2 idle CPU cores
    python -m benchmarks --out results.json   # the full run
    python -m benchmarks --only S2 S4         # some scenarios

Scenarios (see SPEC.md section 8):

- S1: the GP field model, jitted value-and-grad of the whitened negative log
  posterior, n = 10^2, 10^4, 10^6: median and minimum time per call, first call.
- S2: dispatch: one full optax (adam) step of the 5-parameter regression model.
- S3: many leaves: L Params of shape (4,), L = 10 .. 10^4: init, flatten +
  unflatten, ravel + unravel (warm and first call) against `ravel_pytree`,
  partition + combine, unwrap, a jitted optax (sgd) step, and a jitted
  value-and-grad over `ep.ravel`'s vector against `ravel_pytree`'s and a
  hand-written flat-vector loss (first call and per call).
- S4: compiled-program identity: the optimized HLO of eqxpurify's step against the
  hand-written step, for the GP model, an MLP and the regression model.

The row "eqxpurify (README loop)" is the training loop the README recommends:
`params, rest = ep.partition(model)`, a `jax.jit` step over `(params, opt_state)`
with `rest` and the data closed over, `jax.value_and_grad` of
`loss(ep.combine(params, rest))`, optax update and apply. The other eqxpurify rows
are the alternatives (`ep.flatten`'s list, `ep.ravel`'s vector for samplers,
Hessians and scipy, the stock Equinox loop run on an eqxpurify model); "equinox"
rows are a plain Equinox model of raw arrays.

Rows of one table are timed interleaved (round-robin), each sample a batch of calls
blocked on, and the hand-written reference is run twice (the A/A row) to show the
noise floor. Ratios are to the reference: median/median and min/min.
Peers (jaxpurify, paramax, Flax NNX) run when installed: `pip install -e .[bench]`.
"""

import argparse
import gc
import importlib
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

if __package__ in (None, ""):  # `python benchmarks/run.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

import jax

from benchmarks import _timing
from benchmarks.perf_page import S4_HEADER, fmt_time

REF = "hand-written jax.jit"
AA = "hand-written jax.jit (A/A copy)"
PEERS = {"jaxpurify": "jaxpurify", "paramax": "paramax", "flax": "flax nnx"}


def _available() -> dict[str, bool]:
    out = {}
    for module in PEERS:
        try:
            importlib.import_module(module)
            out[module] = True
        except ImportError:
            out[module] = False
    return out


def _needs(name: str) -> str | None:
    low = name.lower()
    for module in PEERS:
        if module in low or (module == "flax" and "nnx" in low):
            return module
    return None


def fmt_ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _timing_table(res: dict[str, dict[str, Any]], first: dict[str, float]) -> str:
    ref = res[REF]
    rows = []
    for name, r in res.items():
        rows.append(
            [
                name,
                fmt_time(r["median"]),
                fmt_time(r["min"]),
                fmt_ratio(r["median"] / ref["median"]),
                fmt_ratio(r["min"] / ref["min"]),
                fmt_time(first.get(name)),
            ]
        )
    header = ["implementation", "median", "min", "median ratio", "min/min ratio"]
    return _table(header + ["first call (trace+compile+run)"], rows)


# --- S1 -----------------------------------------------------------------------


def s1(cfg: dict, avail: dict[str, bool]) -> tuple[str, dict]:
    from benchmarks import _gp

    text, out = [], {}
    for n, rounds in cfg["s1_sizes"]:
        d = _gp.data(n)
        cases, first = {}, {}
        for name, build in _gp.BUILDERS.items():
            need = _needs(name)
            if (need and not avail[need]) or name in cfg["s1_skip"]:
                continue
            fn, args = build(d)
            first[name] = _timing.first_call(lambda fn=fn, args=args: fn(*args))
            cases[name] = _timing.repeat_each(lambda fn=fn, args=args: fn(*args))
        res = _timing.interleaved(cases, rounds=rounds, target=cfg["target"])
        out[str(n)] = {"timing": res, "first_call": first}
        text.append(f"**n = {n:,}** ({rounds} interleaved samples per row)\n")
        text.append(_timing_table(res, first) + "\n")
        del cases
    return "\n".join(text), out


# --- S2 -----------------------------------------------------------------------


def s2(cfg: dict, avail: dict[str, bool]) -> tuple[str, dict]:
    from benchmarks import _regression

    d = _regression.data()
    cases, first = {}, {}
    for name, build in _regression.BUILDERS.items():
        need = _needs(name)
        if need and not avail[need]:
            continue
        case = build(d)
        first[name] = _timing.first_call(lambda case=case: case(1))
        cases[name] = case
    res = _timing.interleaved(cases, rounds=cfg["s2_rounds"], target=cfg["target"])
    text = f"({cfg['s2_rounds']} interleaved samples per row)\n\n" + _timing_table(
        res, first
    )
    return text + "\n", {"timing": res, "first_call": first}


# --- S3 -----------------------------------------------------------------------

RAVEL_PYTREE = "jax.flatten_util.ravel_pytree (dict)"
RAVEL_PYTREE_VG = RAVEL_PYTREE + ": the same loss over its vector"
EQXPURIFY = "eqxpurify"
# per operation: the row the other rows' min/min ratios are taken to
S3_REFERENCE = {
    "whitened init": "hand-written jax.jit (dict)",
    "flatten + unflatten": "hand-written jax.jit (dict)",
    "ravel + unravel (eager, warm)": RAVEL_PYTREE,
    "ravel + unravel (eager, first call)": RAVEL_PYTREE,
    "partition + combine": "equinox partition + jax.jit (plain arrays)",
    "unwrap": "hand-written jax.jit (dict)",
    "jitted step: first call (trace + compile)": "hand-written jax.jit (dict)",
    "jitted step: per call": "hand-written jax.jit (dict)",
    "jitted value-and-grad over a flat vector: first call": RAVEL_PYTREE_VG,
    "jitted value-and-grad over a flat vector: per call": RAVEL_PYTREE_VG,
}


def _s3_impls(
    leaves: int, cfg: dict, avail: dict[str, bool], key: jax.Array
) -> dict[str, Callable[[], dict[str, Callable]]]:
    from benchmarks import _leaves as lv

    compiled = leaves <= cfg["s3_compile_max"]
    # one vector cut into L pieces: slow to compile on XLA:CPU at L = 1000
    vector = compiled and leaves <= cfg["s3_vector_max"]
    impls: dict[str, Callable[[], dict[str, Callable]]] = {
        lv.REF: lambda: lv.reference(leaves, key=key, compiled=compiled),
        lv.AA: lambda: lv.reference(leaves, key=key, compiled=compiled),
        EQXPURIFY: lambda: lv.eqxpurify(
            leaves, key=key, compiled=compiled, vector=vector
        ),
        "equinox partition + jax.jit (plain arrays)": lambda: lv.equinox_(
            leaves, key=key, compiled=compiled
        ),
    }
    if leaves <= cfg["s3_ravel_pytree_max"]:
        impls[RAVEL_PYTREE] = lambda: lv.ravel_pytree_ops(
            leaves, key=key, compiled=vector
        )
    if vector:
        impls[lv.FLAT_REF] = lambda: lv.flat_reference(leaves, key=key)
        impls[lv.FLAT_LEAFWISE] = lambda: lv.flat_reference(
            leaves, key=key, leafwise=True
        )
    if compiled:  # the stock Equinox loop, on the plain and the eqxpurify model
        impls |= {
            "equinox eqx.filter_jit, whole model (plain arrays)": lambda: lv.equinox_(
                leaves, key=key, compiled=True, pattern="filter_jit"
            ),
            "stock Equinox loop (eqx.filter_jit) on eqxpurify model": lambda: (
                lv.ep_steps(leaves, key=key, pattern="stock")
            ),
        }
    if leaves <= cfg["s3_compile_all_max"]:  # the other steps
        impls |= {
            "eqxpurify: flatten step": lambda: lv.ep_steps(
                leaves, key=key, pattern="flatten"
            ),
            "eqxpurify: ravel step": lambda: lv.ep_steps(
                leaves, key=key, pattern="ravel"
            ),
        }
    peers = {"jaxpurify": lv.jaxpurify, "paramax": lv.paramax_, "flax": lv.nnx_}
    for module, build in peers.items():
        if avail[module]:
            impls[PEERS[module]] = lambda build=build: build(
                leaves, key=key, compiled=leaves <= cfg["s3_compile_all_max"]
            )
    return impls


def _s3_label(impl: str, op: str) -> str:
    """The row name of an implementation's operation."""
    from benchmarks import _leaves as lv

    if impl == EQXPURIFY and op in (lv.STEP, lv.STEP_FIRST):
        return lv.README
    if op in (lv.VG, lv.VG_FIRST):
        if impl == EQXPURIFY:
            return "eqxpurify: loss over ep.ravel's vector"
        if impl == RAVEL_PYTREE:
            return RAVEL_PYTREE_VG
    return impl


def s3(cfg: dict, avail: dict[str, bool]) -> tuple[str, dict]:
    from benchmarks import _leaves as lv

    key = jax.random.key(0)
    results: dict[str, dict[str, dict[int, Any]]] = {}  # op -> row -> L -> stats
    sizes = cfg["s3_sizes"]
    for leaves in sizes:
        built = {
            impl: make() for impl, make in _s3_impls(leaves, cfg, avail, key).items()
        }
        by_op: dict[str, dict[str, Callable]] = {}
        for impl, ops in built.items():
            for op, fn in ops.items():
                by_op.setdefault(op, {})[_s3_label(impl, op)] = fn
        gc.collect()
        gc.freeze()  # the models are long-lived: keep them out of the GC's scans

        def record(op: str, row: str, stats: dict, leaves: int = leaves) -> None:
            results.setdefault(op, {}).setdefault(row, {})[leaves] = stats

        # eager first calls, each from empty caches (before anything is compiled)
        for row, fn in by_op.get(lv.RAVEL_COLD, {}).items():
            jax.clear_caches()
            t = _timing.first_call(fn)
            record(lv.RAVEL_COLD, row, {"median": t, "min": t})
        # jitted first calls: each function is new, so its first call traces and
        # compiles it (caches are kept, so that later rows can reuse them)
        for op in (lv.STEP_FIRST, lv.VG_FIRST):
            for row, fn in by_op.get(op, {}).items():
                t = _timing.first_call(fn)
                record(op, row, {"median": t, "min": t})
        rounds = cfg["s3_rounds"] if leaves < 10_000 else cfg["s3_rounds_10k"]
        for op, fns in by_op.items():
            if op in lv.FIRST:
                continue
            cases = {row: _timing.repeat_each(fn) for row, fn in fns.items()}
            res = _timing.interleaved(cases, rounds=rounds, target=cfg["target"])
            for row, r in res.items():
                record(op, row, r)
        del built, by_op
        gc.unfreeze()
        gc.collect()
        print(f"  (S3: L={leaves:,} done)", flush=True)
    header = ["operation", "implementation"] + [f"L={L:,}" for L in sizes]
    big, small = sizes[-1], sizes[-2] if len(sizes) > 1 else None
    if small:
        header.append(f"L={big:,} / L={small:,} (median; min)")
    rows = []
    for op in lv.OPS:
        per_row = results.get(op, {})
        ref = per_row.get(S3_REFERENCE[op], {})
        for row, per_size in per_row.items():
            cells = []
            for L in sizes:
                r, r0 = per_size.get(L), ref.get(L)
                cell = fmt_time(r["median"]) if r else "—"
                if r and r0 and row != S3_REFERENCE[op]:
                    cell += f" ({r['min'] / r0['min']:.2f}x)"
                cells.append(cell)
            line = [op, row] + cells
            if small:
                a, b = per_size.get(small), per_size.get(big)
                line.append(
                    f"{b['median'] / a['median']:.1f}; {b['min'] / a['min']:.1f}"
                    if a and b
                    else "—"
                )
            rows.append(line)
    note = (
        f"(median per call of {cfg['s3_rounds']} interleaved samples, "
        f"{cfg['s3_rounds_10k']} at L=10,000, and in brackets the min/min ratio "
        "to the operation's reference row: the hand-written dict for init, "
        "flatten, unwrap and steps, `ravel_pytree` for ravel and the flat-vector "
        "value-and-grad, Equinox for partition. First calls are single "
        "measurements; eager ones start from `jax.clear_caches()`. Jitted "
        f"operations run up to L={cfg['s3_compile_max']:,} (the losses over one "
        f"vector up to L={cfg['s3_vector_max']:,}; the flatten and ravel steps up "
        f"to L={cfg['s3_compile_all_max']:,}), `ravel_pytree` up to "
        f"L={cfg['s3_ravel_pytree_max']:,}.)\n\n"
    )
    out = {
        op: {row: {str(L): r for L, r in v.items()} for row, v in d.items()}
        for op, d in results.items()
    }
    return note + _table(header, rows) + "\n", out


# --- S4 -----------------------------------------------------------------------


def s4(cfg: dict, avail: dict[str, bool]) -> tuple[str, dict]:
    from benchmarks import _gp, _hlo, _mlp, _regression

    comparisons: list[tuple[str, str, Callable, Callable]] = []
    closed = "reference, data closed over"
    for n in cfg["s4_gp_sizes"]:
        d = _gp.data(n)
        readme = (
            f"GP n={n:,}",
            f"README loop: partition, rest closed over  vs  {closed}",
            lambda d=d: _gp.build_reference(d),
            lambda d=d: _gp.build_eqxpurify(d),
        )
        if n > cfg["s4_all_patterns_max"]:  # quick mode: the README loop only
            comparisons.append(readme)
            continue
        comparisons += [
            readme,
            (
                f"GP n={n:,}",
                f"flatten, unflatten closed over  vs  {closed}",
                lambda d=d: _gp.build_reference(d),
                lambda d=d: _gp.build_eqxpurify_flatten(d),
            ),
            (
                f"GP n={n:,}",
                "partition, rest as argument  vs  reference, data as argument",
                lambda d=d: _gp.build_reference_args(d),
                lambda d=d: _gp.build_eqxpurify_rest_arg(d),
            ),
            (
                f"GP n={n:,}",
                f"ravel, unravel closed over  vs  {closed}",
                lambda d=d: _gp.build_reference(d),
                lambda d=d: _gp.build_eqxpurify_ravel(d),
            ),
        ]
    key, d = jax.random.key(1), _mlp.data()
    comparisons += [
        (
            "MLP 8-64-64-1, optax adam step",
            f"README loop: partition, rest closed over  vs  {closed}",
            lambda: _mlp.step_reference(key, d),
            lambda: _mlp.step_readme(key, d),
        ),
        (
            "MLP 8-64-64-1, value-and-grad",
            f"flatten, unflatten closed over  vs  {closed}",
            lambda: _mlp.build_reference(key, d),
            lambda: _mlp.build_eqxpurify_flatten(key, d),
        ),
        (
            "MLP 8-64-64-1, value-and-grad",
            f"ravel, unravel closed over  vs  {closed}",
            lambda: _mlp.build_reference(key, d),
            lambda: _mlp.build_eqxpurify_ravel(key, d),
        ),
    ]
    rd = _regression.data()
    comparisons += [
        (
            "regression, optax adam step (S2)",
            f"README loop: partition, rest closed over  vs  {closed}",
            lambda: _regression.hlo_reference(rd),
            lambda: _regression.hlo_readme(rd),
        ),
        (
            "regression, optax adam step (S2)",
            f"flatten, unflatten closed over  vs  {closed}",
            lambda: _regression.hlo_reference(rd),
            lambda: _regression.hlo_flatten(rd),
        ),
    ]
    rows, out = [], []
    for model, what, build_ref, build_ep in comparisons:
        ref_text = _hlo.optimized_hlo(*build_ref())
        ep_text = _hlo.optimized_hlo(*build_ep())
        c = _hlo.compare(ref_text, ep_text)
        extra = ", ".join(f"{n}x {op}" for op, n in c["only_in_b"].items()) or "none"
        missing = ", ".join(f"{n}x {op}" for op, n in c["only_in_a"].items())
        if missing:
            extra += f" (and lacks: {missing})"
        same = "yes" if c["identical_text"] else "no"
        if same == "no" and c["same_up_to_order"]:
            same = "same graph, instructions declared in another order"
        rows.append([model, what, same, str(c["ops_a"]), str(c["ops_b"]), extra])
        out.append({"model": model, "comparison": what, **c})
    header = S4_HEADER
    note = (
        '\n"same optimized HLO": the compiled modules\' text is equal once names, '
        'metadata and source tables are stripped; "same graph": every instruction '
        "with its operands, parameters and called computations matches, declared "
        "in another order. Large constants print as `{...}` in both.\n"
    )
    return _table(header, rows) + "\n" + note, {"comparisons": out}


SCENARIOS = {"S1": s1, "S2": s2, "S3": s3, "S4": s4}
TITLES = {
    "S1": "S1: GP field model, jitted value-and-grad per call",
    "S2": "S2: dispatch, one optax step of the 5-parameter regression model",
    "S3": "S3: many leaves (Params of shape (4,))",
    "S4": "S4: compiled-program identity (optimized HLO)",
}

QUICK = {  # under 3 minutes on an idle 2-core machine; the FULL run has the rest
    "target": 0.01,
    "s1_sizes": [(100, 15), (10_000, 9)],
    "s1_skip": ["eqxpurify: partition, rest as argument"],
    "s2_rounds": 20,
    "s3_sizes": [10, 100, 1000],
    "s3_rounds": 5,
    "s3_rounds_10k": 3,
    "s3_compile_max": 100,  # compiling a step over 1000 arrays: 15-60 s per row
    "s3_vector_max": 10,
    "s3_compile_all_max": 10,
    "s3_ravel_pytree_max": 100,
    "s4_gp_sizes": [100, 10_000],
    "s4_all_patterns_max": 100,
}
FULL = {
    "target": 0.05,
    "s1_sizes": [(100, 31), (10_000, 21), (1_000_000, 7)],
    "s1_skip": [],
    "s2_rounds": 41,
    "s3_sizes": [10, 100, 1000, 10_000],
    "s3_rounds": 7,
    "s3_rounds_10k": 5,
    "s3_compile_max": 1000,
    "s3_vector_max": 1000,
    "s3_compile_all_max": 1000,
    "s3_ravel_pytree_max": 1000,
    "s4_gp_sizes": [100, 10_000, 1_000_000],
    "s4_all_patterns_max": 1_000_000,
}


def machine() -> dict[str, Any]:
    import equinox
    import jaxlib

    versions = {"jax": jax.__version__, "jaxlib": jaxlib.__version__}
    versions["equinox"] = equinox.__version__
    for dist in ["eqxpurify", "optax", "jaxpurify", "paramax", "flax"]:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "backend": jax.default_backend(),
        "python": platform.python_version(),
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="the short run (under 3 minutes)"
    )
    parser.add_argument("--out", help="write all results as JSON to this file")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), default=None)
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    avail = _available()
    info = machine()
    start = time.perf_counter()
    load0 = os.getloadavg()
    command = "python -m benchmarks" + (" --quick" if args.quick else "")
    print(f"# eqxpurify benchmarks (`{command}`)\n")
    print(
        f"{info['cores']} cores ({info['cpu']}), {info['backend']} backend, Python "
        f"{info['python']}; "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + f". Load average at start: {load0[0]:.1f}.\n"
    )
    missing = [m for m, ok in avail.items() if not ok]
    if missing:
        print(
            f"Not installed, rows skipped: {', '.join(missing)} "
            "(`pip install -e .[bench]`).\n"
        )
    # one throwaway compile, so the first row does not pay JAX's start-up
    jax.block_until_ready(jax.jit(lambda x: x + 1)(jax.numpy.ones(3)))
    results: dict[str, Any] = {"machine": info, "config": cfg, "quick": args.quick}
    for name in args.only or list(SCENARIOS):
        # Start each scenario as if in a fresh process: drop compiled programs and
        # move surviving objects out of the garbage collector's view, so that
        # earlier scenarios do not slow the Python-side timings of later ones.
        jax.clear_caches()
        gc.collect()
        gc.freeze()
        t0 = time.perf_counter()
        text, data = SCENARIOS[name](cfg, avail)
        dt = time.perf_counter() - t0
        print(f"## {TITLES[name]}\n\n{text}\n({name} took {dt:.0f} s)\n", flush=True)
        results[name] = data
        # the tables as printed, for benchmarks/perf_page.py
        results.setdefault("markdown", {})[name] = text
    total = time.perf_counter() - start
    load1 = os.getloadavg()
    print(f"Total {total:.0f} s; load average at end: {load1[0]:.1f}.")
    results["total_seconds"] = total
    results["load_average"] = {"start": load0, "end": load1}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1, default=str)
        print(f"Wrote {args.out}.")


if __name__ == "__main__":
    main()
