"""eqxpurify's performance benchmarks against hand-written JAX and its peers.

    python -m benchmarks --quick              # under 3 minutes on 2 CPU cores
    python -m benchmarks --out results.json   # the full run
    python -m benchmarks --only S2 S4         # some scenarios

Scenarios (see SPEC.md section 8 and notes/performance.md):

- S1: the GP field model, jitted value-and-grad of the whitened negative log
  posterior, n = 10^2, 10^4, 10^6: median and minimum time per call, first call.
- S2: dispatch: one full optax (adam) step of the 5-parameter regression model.
- S3: many leaves: L Params of shape (4,), L = 10 .. 10^4: init, flatten +
  unflatten, ravel + unravel, partition + combine, unwrap, and a jitted gradient
  step (compile, per call).
- S4: compiled-program identity: the optimized HLO of eqxpurify's step against the
  hand-written step, for the GP model and an MLP.

eqxpurify's recommended training step is the `ep.flatten` one (a jitted step over
the list of latents, `unflatten` closed over); `ep.ravel`'s flat vector is the
pattern for samplers, Hessians and scipy.

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


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


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


def s3(cfg: dict, avail: dict[str, bool]) -> tuple[str, dict]:
    from benchmarks import _leaves

    key = jax.random.key(0)
    results: dict[str, dict[str, dict[int, Any]]] = {}  # op -> impl -> L -> stats
    sizes = cfg["s3_sizes"]
    for leaves in sizes:
        compile_ok = leaves <= cfg["s3_compile_max"]
        impls: dict[str, Callable[[], dict[str, Callable]]] = {
            "hand-written (dict)": lambda L=leaves: _leaves.reference(
                L, key=key, ravel=L <= cfg["s3_ravel_pytree_max"]
            ),
            "eqxpurify (step: flatten, recommended)": lambda L=leaves: (
                _leaves.eqxpurify(L, key=key, pattern="flatten")
            ),
            "eqxpurify (step: ravel)": lambda L=leaves: _leaves.eqxpurify(
                L, key=key, pattern="ravel", python_ops=False
            ),
            "eqxpurify (step: partition)": lambda L=leaves: _leaves.eqxpurify(
                L, key=key, pattern="partition", python_ops=False
            ),
            "equinox": lambda L=leaves: _leaves.equinox_(L, key=key),
        }
        if avail["jaxpurify"]:
            impls["jaxpurify"] = lambda L=leaves: _leaves.jaxpurify(L, key=key)
        if avail["paramax"]:
            impls["paramax"] = lambda L=leaves: _leaves.paramax_(L, key=key)
        if avail["flax"]:
            impls["flax nnx"] = lambda L=leaves: _leaves.nnx_(L, key=key)
        built = {name: make() for name, make in impls.items()}
        gc.collect()
        gc.freeze()  # the models are long-lived: keep them out of the GC's scans
        by_op: dict[str, dict[str, Callable]] = {}
        for impl, ops in built.items():
            for op, fn in ops.items():
                if op in _leaves.COMPILED and not compile_ok:
                    continue
                label = impl
                if op not in _leaves.COMPILED and impl.startswith("eqxpurify"):
                    label = "eqxpurify"
                by_op.setdefault(op, {})[label] = fn
        first_op, per_op = _leaves.COMPILED
        for impl, fn in by_op.get(first_op, {}).items():
            t = _timing.first_call(fn)
            results.setdefault(first_op, {}).setdefault(impl, {})[leaves] = {
                "median": t,
                "min": t,
            }
        for op, fns in by_op.items():
            if op == first_op:
                continue
            cases = {impl: _timing.repeat_each(fn) for impl, fn in fns.items()}
            rounds = cfg["s3_rounds"] if leaves < 10_000 else cfg["s3_rounds_10k"]
            res = _timing.interleaved(cases, rounds=rounds, target=cfg["target"])
            for impl, r in res.items():
                results.setdefault(op, {}).setdefault(impl, {})[leaves] = r
        del built, by_op
        gc.unfreeze()
        gc.collect()
    header = ["operation", "implementation"] + [f"L={L:,}" for L in sizes]
    big, small = sizes[-1], sizes[-2] if len(sizes) > 1 else None
    if small:
        header.append(f"L={big:,} / L={small:,} (median; min)")
    rows = []
    for op in _leaves.OPS:
        for impl, per_size in results.get(op, {}).items():
            row = [op, impl] + [
                fmt_time(per_size.get(L, {}).get("median")) for L in sizes
            ]
            if small:
                a, b = per_size.get(small), per_size.get(big)
                row.append(
                    f"{b['median'] / a['median']:.1f}; {b['min'] / a['min']:.1f}"
                    if a and b
                    else "—"
                )
            rows.append(row)
    note = (
        f"(medians of {cfg['s3_rounds']} interleaved samples, "
        f"{cfg['s3_rounds_10k']} at L=10,000; jitted steps compiled "
        f"up to L={cfg['s3_compile_max']:,}, `ravel_pytree` up to "
        f"L={cfg['s3_ravel_pytree_max']:,}: its first unravel compiles one program "
        "per leaf)\n\n"
    )
    out = {
        op: {impl: {str(L): r for L, r in v.items()} for impl, v in d.items()}
        for op, d in results.items()
    }
    return note + _table(header, rows) + "\n", out


# --- S4 -----------------------------------------------------------------------


def s4(cfg: dict, avail: dict[str, bool]) -> tuple[str, dict]:
    from benchmarks import _gp, _hlo, _mlp, _regression

    comparisons: list[tuple[str, str, Callable, Callable]] = []
    for n in cfg["s4_gp_sizes"]:
        d = _gp.data(n)
        recommended = (
            f"GP n={n:,}",
            "flatten, unflatten closed over (recommended)  vs  reference, data "
            "closed over",
            lambda d=d: _gp.build_reference(d),
            lambda d=d: _gp.build_eqxpurify_flatten(d),
        )
        if n > cfg["s4_all_patterns_max"]:  # quick mode: the recommended step only
            comparisons.append(recommended)
            continue
        comparisons += [
            recommended,
            (
                f"GP n={n:,}",
                "partition, rest closed over  vs  reference, data closed over",
                lambda d=d: _gp.build_reference(d),
                lambda d=d: _gp.build_eqxpurify(d),
            ),
            (
                f"GP n={n:,}",
                "partition, Fixed as argument  vs  reference, data as argument",
                lambda d=d: _gp.build_reference_args(d),
                lambda d=d: _gp.build_eqxpurify_fixed_arg(d),
            ),
            (
                f"GP n={n:,}",
                "partition, rest as argument  vs  reference, data as argument",
                lambda d=d: _gp.build_reference_args(d),
                lambda d=d: _gp.build_eqxpurify_rest_arg(d),
            ),
            (
                f"GP n={n:,}",
                "ravel, unravel closed over  vs  reference, data closed over",
                lambda d=d: _gp.build_reference(d),
                lambda d=d: _gp.build_eqxpurify_ravel(d),
            ),
        ]
    key, d = jax.random.key(1), _mlp.data()
    comparisons += [
        (
            "MLP 8-64-64-1",
            "flatten, unflatten closed over (recommended)  vs  reference, data "
            "closed over",
            lambda: _mlp.build_reference(key, d),
            lambda: _mlp.build_eqxpurify_flatten(key, d),
        ),
        (
            "MLP 8-64-64-1",
            "partition, rest closed over  vs  reference, data closed over",
            lambda: _mlp.build_reference(key, d),
            lambda: _mlp.build_eqxpurify(key, d),
        ),
        (
            "MLP 8-64-64-1",
            "ravel, unravel closed over  vs  reference, data closed over",
            lambda: _mlp.build_reference(key, d),
            lambda: _mlp.build_eqxpurify_ravel(key, d),
        ),
    ]
    rd = _regression.data()
    comparisons.append(
        (
            "regression, optax adam step (S2)",
            "flatten, unflatten closed over (recommended)  vs  reference, data "
            "closed over",
            lambda: _regression.hlo_reference(rd),
            lambda: _regression.hlo_flatten(rd),
        )
    )
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
    header = [
        "model",
        "eqxpurify step  vs  hand-written step",
        "same optimized HLO",
        "ops (ref)",
        "ops (eqxpurify)",
        "only in eqxpurify's program",
    ]
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

QUICK = {
    "target": 0.01,
    "s1_sizes": [(100, 15), (10_000, 15), (1_000_000, 7)],
    "s1_skip": ["eqxpurify: partition, rest as argument"],
    "s2_rounds": 30,
    "s3_sizes": [10, 100, 1000, 10_000],
    "s3_rounds": 3,
    "s3_rounds_10k": 3,
    "s3_compile_max": 100,
    "s3_ravel_pytree_max": 100,
    "s4_gp_sizes": [100, 10_000, 1_000_000],
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
    parser.add_argument("--quick", action="store_true", help="the < 3 minute run")
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
