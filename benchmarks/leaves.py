"""Time eqxpurify's Python-side operations on a model with very many Params.

    python benchmarks/leaves.py                        # L = 1000 and 10000
    python benchmarks/leaves.py --leaves 10000 --reps 9
    python benchmarks/leaves.py --lib ../old --leaves 1000   # another checkout

The one many-leaves timer of the project (`python -m benchmarks` S3 times the
jitted steps of the same model). The model is a module holding L Params of shape
(4,) under one shared `Normal(0, 0.5)` prior, so `unwrap` really transforms every
leaf. Each size runs in a fresh Python process, so "cold" (the first call:
tracing, compiling and caching included) is honest for every size; "warm" is the
median and minimum of `--reps` further calls, the operations interleaved
round-robin so that a change of load touches them all alike. Every result is
blocked on with `jax.block_until_ready`.

`--lib` imports eqxpurify from another checkout (e.g. a `git worktree` of an
older commit): run the two alternately a few times and compare the minima.
"""

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

FLOOR = "floor: jax.tree flatten + unflatten"
OPS = [
    "normal",
    "zeros",
    "flatten + unflatten",
    "partition + combine",
    "ravel + unravel",
    "unwrap",
    FLOOR,
]


def _measure(leaves: int, reps: int) -> dict[str, dict[str, float]]:
    import equinox as eqx
    import jax

    import eqxpurify as ep

    class Many(eqx.Module):
        params: list

    prior = ep.Normal(0.0, 0.5)
    abstract = Many([ep.Param(shape=(4,), prior=prior) for _ in range(leaves)])
    key = jax.random.key(0)
    with jax.ensure_compile_time_eval():  # the input, built without compiling
        model = jax.tree.map(
            lambda p: ep.Param.from_latent(jax.numpy.zeros((4,)), prior=prior),
            abstract,
            is_leaf=ep.is_param,
        )

    def floor():
        # what any pass over the model costs: flatten to Params and rebuild it
        nodes, treedef = jax.tree.flatten(model, is_leaf=ep.is_param)
        return jax.tree.unflatten(treedef, nodes)

    def flatten_unflatten():
        latents, unflatten = ep.flatten(model)
        return unflatten(latents)

    def ravel_unravel():
        flat, unravel = ep.ravel(model)
        return unravel(flat)

    calls = {
        "normal": lambda: ep.normal(abstract, key=key),
        "zeros": lambda: ep.zeros(abstract),
        "flatten + unflatten": flatten_unflatten,
        "partition + combine": lambda: ep.combine(*ep.partition(model)),
        "ravel + unravel": ravel_unravel,
        "unwrap": lambda: ep.unwrap(model),
        FLOOR: floor,
    }
    # The model is long-lived: move it out of the garbage collector's view, as a
    # program that built it at start-up would (`gc.freeze`), so that collections
    # triggered by an operation's own allocations do not rescan it every time.
    gc.collect()
    gc.freeze()
    cold = {}
    for name in OPS:
        start = time.perf_counter()
        jax.block_until_ready(calls[name]())
        cold[name] = time.perf_counter() - start
    warm: dict[str, list[float]] = {name: [] for name in OPS}
    for _ in range(reps):
        for name in OPS:
            start = time.perf_counter()
            jax.block_until_ready(calls[name]())
            warm[name].append(time.perf_counter() - start)
    return {
        name: {
            "cold": cold[name],
            "median": statistics.median(warm[name]),
            "min": min(warm[name]),
        }
        for name in OPS
    }


def _child(leaves: int, reps: int, lib: str | None) -> dict[str, dict[str, float]]:
    cmd = [sys.executable, __file__, "--child", "--leaves", str(leaves)]
    cmd += ["--reps", str(reps)] + (["--lib", lib] if lib else [])
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leaves", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument(
        "--lib", help="a checkout to import eqxpurify from (default: this one)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    lib = str(Path(args.lib).resolve()) if args.lib else None
    sys.path.insert(0, lib or str(Path(__file__).resolve().parent.parent))
    if args.child:
        print(json.dumps(_measure(args.leaves[0], args.reps)))
        return

    import jax

    import eqxpurify as ep

    results = {n: _child(n, args.reps, lib) for n in args.leaves}
    print(f"eqxpurify from {Path(ep.__file__).parent}")
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, Param shape (4,)")
    print("seconds; cold = the first call in a fresh process; warm = median (min)")
    print(f"of {args.reps} calls after it\n")
    header = "| operation |" + "".join(
        f" cold L={n} | warm L={n} |" for n in args.leaves
    )
    if len(args.leaves) >= 2:
        header += f" warm ratio {args.leaves[-1]}/{args.leaves[-2]} (median; min) |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in OPS:
        row = f"| {name} |"
        for n in args.leaves:
            r = results[n][name]
            row += f" {r['cold']:.3f} | {r['median']:.4f} ({r['min']:.4f}) |"
        if len(args.leaves) >= 2:
            a, b = results[args.leaves[-2]][name], results[args.leaves[-1]][name]
            row += f" {b['median'] / a['median']:.1f}; {b['min'] / a['min']:.1f} |"
        print(row)


if __name__ == "__main__":
    main()
