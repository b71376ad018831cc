"""Python-side operations of one eqxpurify checkout, for before/after comparisons.

    python benchmarks/python_side.py                      # this checkout
    python benchmarks/python_side.py --lib ../old --leaves 10000

`--lib` imports eqxpurify from another checkout (e.g. a `git worktree` of an
older commit), so two versions of the library can be timed by the same script;
run the two alternately a few times and compare the minima. The model is L
Params of shape (4,) under one shared `Normal(0, 0.5)` prior, as in S3 of
`python -m benchmarks`. Each operation is timed `--reps` times, interleaved
with the others, after two warm-up calls; every result is blocked on.
"""

import argparse
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lib", help="a checkout to import eqxpurify from (default: this one)"
    )
    parser.add_argument("--leaves", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, args.lib or str(Path(__file__).resolve().parent.parent))

    import equinox as eqx
    import jax

    import eqxpurify as ep

    class Many(eqx.Module):
        params: list

    prior = ep.Normal(0.0, 0.5)
    abstract = Many([ep.Param(shape=(4,), prior=prior) for _ in range(args.leaves)])
    key = jax.random.key(0)
    model = ep.normal(abstract, key=key)

    def flatten_unflatten():
        latents, unflatten = ep.flatten(model)
        return unflatten(latents)

    def ravel_unravel():
        flat, unravel = ep.ravel(model)
        return unravel(flat)

    ops = {
        "normal": lambda: ep.normal(abstract, key=key),
        "flatten + unflatten": flatten_unflatten,
        "ravel + unravel": ravel_unravel,
        "partition + combine": lambda: ep.combine(*ep.partition(model)),
        "unwrap": lambda: ep.unwrap(model),
    }
    for fn in ops.values():
        for _ in range(2):
            jax.block_until_ready(fn())
    times: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(args.reps):
        for name, fn in ops.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    print(f"eqxpurify from {ep.__file__}, L={args.leaves}")
    for name, ts in times.items():
        ts.sort()
        print(
            f"  {name:22s} min {1e3 * ts[0]:8.2f} ms   "
            f"median {1e3 * ts[len(ts) // 2]:8.2f} ms"
        )


if __name__ == "__main__":
    main()
