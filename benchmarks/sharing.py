"""Shared Params: 1000 uses of 10 named Params against 1000 unshared Params.

    python benchmarks/sharing.py [--uses 1000] [--names 10] [--reps 7]

Both models are a list of `--uses` Params of shape (4,) under one
`Normal(0, 0.5)` prior; in the shared one, use i is the Param named
`w{i % names}` (so `names` parameters), in the other every use is its own
Param. Each operation is timed `--reps` times, interleaved, after two warm-up
calls, every result blocked on; the table gives the minimum of each and the
ratio shared / unshared (the target is at most 1.2).
"""

import argparse
import time

import equinox as eqx
import jax

import eqxpurify as ep


class Many(eqx.Module):
    params: list


def models(uses: int, names: int) -> tuple[Many, Many]:
    prior = ep.Normal(0.0, 0.5)
    named = [ep.Param(shape=(4,), prior=prior, name=f"w{j}") for j in range(names)]
    shared = Many([named[i % names] for i in range(uses)])
    plain = Many([ep.Param(shape=(4,), prior=prior) for _ in range(uses)])
    return shared, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uses", type=int, default=1000)
    parser.add_argument("--names", type=int, default=10)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    key = jax.random.key(0)
    abstract = dict(zip(("shared", "unshared"), models(args.uses, args.names)))
    concrete = {k: ep.normal(m, key=key) for k, m in abstract.items()}
    ops = {
        "normal": lambda k: ep.normal(abstract[k], key=key),
        "partition": lambda k: ep.partition(concrete[k]),
        "partition + combine": lambda k: ep.combine(*ep.partition(concrete[k])),
        "ravel": lambda k: ep.ravel(concrete[k]),
    }
    best = {(op, k): float("inf") for op in ops for k in abstract}
    for op, fn in ops.items():
        for k in abstract:
            for _ in range(2):
                jax.block_until_ready(fn(k))
    for _ in range(args.reps):
        for op, fn in ops.items():
            for k in abstract:
                start = time.perf_counter()
                jax.block_until_ready(fn(k))
                best[op, k] = min(best[op, k], time.perf_counter() - start)
    n = args.uses
    print(f"{n} uses of {args.names} shared Params vs {n} Params (min of {args.reps})")
    print(f"{'operation':22} {'shared ms':>10} {'unshared ms':>12} {'ratio':>6}")
    for op in ops:
        s, u = best[op, "shared"] * 1e3, best[op, "unshared"] * 1e3
        print(f"{op:22} {s:10.2f} {u:12.2f} {s / u:6.2f}")


if __name__ == "__main__":
    main()
