"""Time eqxpurify's Python-side operations on a model with very many Param leaves.

    python benchmarks/scale.py                   # L = 1000 and 10000
    python benchmarks/scale.py --leaves 10000    # one size

Each size runs in a fresh Python process, so "cold" (the first call: tracing,
compiling and caching included) is honest for every size; "warm" is the median
(and minimum) of `--reps` further calls. Every timed result is blocked on with
`jax.block_until_ready`. The model is a module holding L Params of shape (4,),
with a shared non-trivial prior, so `unwrap` really transforms every leaf.
"""

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time

FLOOR = "floor"
OPS = [
    "normal",
    "flatten",
    "unflatten",
    "partition",
    "combine",
    "ravel",
    "unravel",
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
    model = ep.normal(abstract, key=key)
    jax.block_until_ready(model)
    flat, unravel = ep.ravel(model)
    jax.block_until_ready(flat)
    latents, unflatten = ep.flatten(model)
    params, rest = ep.partition(model)

    def floor():
        # what any pass over the model costs: flatten to Params and rebuild it
        nodes, treedef = jax.tree.flatten(model, is_leaf=ep.is_param)
        return jax.tree.unflatten(treedef, nodes)

    calls = {
        FLOOR: floor,
        "normal": lambda: ep.normal(abstract, key=key),
        "flatten": lambda: ep.flatten(model)[0],
        "unflatten": lambda: unflatten(latents),
        "partition": lambda: ep.partition(model)[0],
        "combine": lambda: ep.combine(params, rest),
        "ravel": lambda: ep.ravel(model)[0],
        "unravel": lambda: unravel(flat),
        "unwrap": lambda: ep.unwrap(model),
    }
    # `normal` and `ravel` above already ran once to build the inputs; measure the
    # cold call of those two in a clean state by clearing JAX's caches first.
    jax.clear_caches()
    # The model is long-lived: move it out of the garbage collector's view, as a
    # program that built it at start-up would (`gc.freeze`), so that collections
    # triggered by an operation's own allocations do not rescan it every time.
    gc.collect()
    gc.freeze()
    out: dict[str, dict[str, float]] = {}
    for name in OPS:
        fn = calls[name]
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        cold = time.perf_counter() - t0
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            times.append(time.perf_counter() - t0)
        out[name] = {
            "cold": cold,
            "median": statistics.median(times),
            "min": min(times),
        }
    return out


def _child(leaves: int, reps: int) -> dict[str, dict[str, float]]:
    cmd = [sys.executable, __file__, "--child", "--leaves", str(leaves)]
    cmd += ["--reps", str(reps)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leaves", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.leaves[0], args.reps)))
        return

    import jax

    results = {n: _child(n, args.reps) for n in args.leaves}
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, Param shape (4,)")
    print(f"seconds; warm = median (min) of {args.reps} calls after the cold one;")
    print("floor = `jax.tree.flatten(model, is_leaf=ep.is_param)` + unflatten\n")
    header = "| operation |" + "".join(
        f" cold L={n} | warm L={n} |" for n in args.leaves
    )
    if len(args.leaves) >= 2:
        header += f" warm ratio {args.leaves[-1]}/{args.leaves[-2]} (median; min) |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name in OPS:
        row = f"| {'floor: jax.tree flatten + unflatten' if name == FLOOR else name} |"
        for n in args.leaves:
            r = results[n][name]
            row += f" {r['cold']:.3f} | {r['median']:.4f} ({r['min']:.4f}) |"
        if len(args.leaves) >= 2:
            a, b = results[args.leaves[-2]][name], results[args.leaves[-1]][name]
            row += f" {b['median'] / a['median']:.1f}; {b['min'] / a['min']:.1f} |"
        print(row)


if __name__ == "__main__":
    main()
