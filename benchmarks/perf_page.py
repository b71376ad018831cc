"""Render a benchmarks JSON into the generated part of docs/performance.md.

    python -m benchmarks --out results.json          # the full run (or --quick)
    python benchmarks/perf_page.py results.json     # rewrite the page's tables

The script keeps a copy of the JSON next to itself (`benchmarks/results.json`),
so the page can be regenerated from the very numbers it shows:

    python benchmarks/perf_page.py benchmarks/results.json

Everything between the page's `<!-- benchmarks:begin -->` and
`<!-- benchmarks:end -->` lines is replaced: the command, the machine, the load
average, and one table per scenario. A scenario whose JSON carries its own
Markdown (a `"markdown"` entry) is shown as it is; otherwise its table is built
from the timings.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PAGE = ROOT / "docs" / "performance.md"
COPY = HERE / "results.json"
BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"
REF = "hand-written jax.jit"
TITLES = {
    "S1": "S1: GP field model, jitted value-and-grad per call",
    "S2": "S2: dispatch, one optax step of the 5-parameter regression model",
    "S3": "S3: many leaves (Params of shape (4,))",
    "S4": "S4: compiled-program identity (optimized HLO)",
}


S4_HEADER = [
    "model",
    "eqxpurify step  vs  hand-written step",
    "same optimized HLO",
    "ops (ref)",
    "ops (eqxpurify)",
    "only in eqxpurify's program",
]


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def timing_table(timing: dict[str, dict], first: dict[str, float]) -> str:
    """Rows of median/min per call, with ratios to the hand-written reference."""
    ref = timing.get(REF)
    rows = []
    for name, r in timing.items():
        ratios = ["—", "—"]
        if ref:
            ratios = [
                f"{r['median'] / ref['median']:.2f}x",
                f"{r['min'] / ref['min']:.2f}x",
            ]
        rows.append(
            [name, fmt_time(r["median"]), fmt_time(r["min"]), *ratios]
            + [fmt_time(first.get(name))]
        )
    header = ["implementation", "median", "min", "median ratio", "min/min ratio"]
    return table(header + ["first call (trace+compile+run)"], rows)


def s1(data: dict) -> str:
    parts = []
    for n, d in data.items():
        body = timing_table(d["timing"], d["first_call"])
        parts.append(f"**n = {int(n):,}**\n\n{body}")
    return "\n\n".join(parts)


def s2(data: dict) -> str:
    return timing_table(data["timing"], data["first_call"])


def _s3_layout() -> tuple[list[str], dict[str, str]]:
    """The benchmarks' order of S3 operations and each one's reference row, when
    the `benchmarks` package of this checkout provides them (else: JSON order,
    no ratios)."""
    try:
        sys.path.insert(0, str(ROOT))
        from benchmarks import _leaves, run

        return list(_leaves.OPS), dict(run.S3_REFERENCE)
    except Exception:  # a rewritten or missing benchmarks package
        return [], {}
    finally:
        sys.path.remove(str(ROOT))


def s3(data: dict) -> str:
    """Per operation and implementation: the median at each number of leaves,
    with the min/min ratio to the operation's reference row in brackets."""
    order, reference = _s3_layout()
    ops = [op for op in order if op in data] + [op for op in data if op not in order]
    sizes = sorted({int(L) for rows in data.values() for r in rows.values() for L in r})
    header = ["operation", "implementation"] + [f"L={L:,}" for L in sizes]
    big, small = sizes[-1], sizes[-2] if len(sizes) > 1 else None
    if small:
        header.append(f"L={big:,} / L={small:,} (median; min)")
    rows = []
    for op in ops:
        ref = data[op].get(reference.get(op, ""), {})
        for name, per_size in data[op].items():
            cells = []
            for L in sizes:
                r, r0 = per_size.get(str(L)), ref.get(str(L))
                cell = fmt_time(r["median"]) if r else "—"
                if r and r0 and name != reference.get(op):
                    cell += f" ({r['min'] / r0['min']:.2f}x)"
                cells.append(cell)
            if small:
                a, b = per_size.get(str(small)), per_size.get(str(big))
                cells.append(
                    f"{b['median'] / a['median']:.1f}; {b['min'] / a['min']:.1f}"
                    if a and b
                    else "—"
                )
            rows.append([op, name, *cells])
    note = "(median per call; in brackets the min/min ratio to the operation's "
    note += "reference row)"
    return note + "\n\n" + table(header, rows)


def s4(data: dict) -> str:
    rows = []
    for c in data["comparisons"]:
        if c.get("identical_text"):
            same = "yes"
        elif c.get("same_up_to_order"):
            same = "same graph, instructions declared in another order"
        else:
            same = "no"
        extra = ", ".join(f"{n}x {op}" for op, n in c.get("only_in_b", {}).items())
        missing = ", ".join(f"{n}x {op}" for op, n in c.get("only_in_a", {}).items())
        extra = extra or "none"
        if missing:
            extra += f" (and lacks: {missing})"
        rows.append(
            [
                c["model"],
                c["comparison"],
                same,
                str(c.get("ops_a", "—")),
                str(c.get("ops_b", "—")),
                extra,
            ]
        )
    return table(S4_HEADER, rows)


RENDER = {"S1": s1, "S2": s2, "S3": s3, "S4": s4}


def render(results: dict[str, Any]) -> str:
    """The generated Markdown for a benchmarks JSON."""
    machine = results.get("machine", {})
    quick = results.get("quick", False)
    command = "python -m benchmarks" + (" --quick" if quick else "") + " --out FILE"
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items())
    merged = bool(results.get("runs"))
    files = "FILE [FILE ...]" if merged else "FILE"
    lines = [
        f"Generated from `{command}` by `python benchmarks/perf_page.py {files}`"
        + (
            " (the scenarios of a later run replace those of an earlier one)."
            if merged
            else "."
        ),
        "",
        f"- Machine: {machine.get('cores', '?')} cores ({machine.get('cpu', '?')}), "
        f"{machine.get('backend', '?')} backend, Python {machine.get('python', '?')}.",
        f"- Versions: {versions}." if versions else "- Versions: not recorded.",
    ]
    runs = results.get("runs") or [
        {
            "scenarios": [k for k in results if k in RENDER],
            "load_average": results.get("load_average", {}),
            "total_seconds": results.get("total_seconds"),
        }
    ]
    for run in runs:
        load = run.get("load_average") or {}
        start = load.get("start", [None])[0]
        end = load.get("end", [None])[0]
        what = ", ".join(run["scenarios"]) if len(runs) > 1 else ""

        def item(text: str, what: str = what) -> str:
            return f"- {what}: {text}" if what else f"- {text[0].upper()}{text[1:]}"

        if start is not None and end is not None:
            cores = machine.get("cores") or 1
            busy = " (a busy machine: expect noisy timings)" if start > cores else ""
            load_text = f"load average {start:.1f} at the start, {end:.1f} at the end"
            lines.append(item(f"{load_text}{busy}."))
        if run.get("total_seconds") is not None:
            lines.append(item(f"total time {run['total_seconds']:.0f} s."))
    markdown = results.get("markdown", {})
    for name in sorted(k for k in results if k in RENDER or k in markdown):
        data = results.get(name, {})
        text = markdown.get(name) or (
            data.get("markdown") if isinstance(data, dict) else None
        )
        body = text if text else RENDER[name](data)
        lines += ["", f"### {TITLES.get(name, name)}", "", body.strip()]
    return "\n".join(lines)


def rewrite(page: Path, generated: str) -> None:
    text = page.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{page} has no `{BEGIN}` ... `{END}` section to rewrite.")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    page.write_text(f"{head}{BEGIN}\n{generated}\n{END}{tail}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "results",
        nargs="+",
        help="JSON written by `python -m benchmarks`; with several (e.g. a run "
        "`--only S2 S3` after a full one), each replaces the scenarios it has",
    )
    parser.add_argument("--page", default=str(PAGE), help="the page to rewrite")
    args = parser.parse_args(argv)
    sources = [Path(r).resolve() for r in args.results]
    results = merge([json.loads(source.read_text()) for source in sources])
    rewrite(Path(args.page), render(results))
    if len(sources) > 1:
        COPY.write_text(json.dumps(results, indent=1) + "\n")
    elif sources[0] != COPY.resolve():
        shutil.copyfile(sources[0], COPY)
    print(f"Rewrote {args.page} from {', '.join(args.results)}.")


def merge(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One results dict from several runs on one machine: later scenarios win."""
    if len(runs) == 1:
        return runs[0]
    merged: dict[str, Any] = {"machine": runs[0].get("machine", {}), "runs": []}
    merged["markdown"] = {}
    for run in runs:
        if run.get("machine") != merged["machine"]:
            raise SystemExit("the runs were made on different machines or versions")
        names = [k for k in run if k in RENDER]
        merged["quick"] = run.get("quick", False)
        for old in merged["runs"]:
            old["scenarios"] = [n for n in old["scenarios"] if n not in names]
        merged["runs"] = [r for r in merged["runs"] if r["scenarios"]]
        merged["runs"].append(
            {
                "scenarios": names,
                "load_average": run.get("load_average", {}),
                "total_seconds": run.get("total_seconds"),
            }
        )
        for name in names:
            merged[name] = run[name]
            text = run.get("markdown", {}).get(name)
            if text:
                merged["markdown"][name] = text
            else:
                merged["markdown"].pop(name, None)
    return merged


if __name__ == "__main__":
    main()
