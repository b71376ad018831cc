"""Honest timing: warm-up, blocking, interleaved rounds, medians and minimums."""

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax

# A case is `run(k)`: make k calls of the thing being timed and return the last
# result (timing blocks on it). Cases that time independent calls block on every
# call themselves; training-step cases chain their state, as a real loop does.
Case = Callable[[int], Any]


def block(x: Any) -> Any:
    return jax.block_until_ready(x)


def first_call(fn: Callable[[], Any]) -> float:
    """Seconds taken by one call, blocked on (trace + compile + run for a new jit)."""
    t0 = time.perf_counter()
    block(fn())
    return time.perf_counter() - t0


def calibrate(case: Case, target: float) -> int:
    """The number of calls per sample so that one sample takes about `target` s
    (from the fastest of three trials, so a busy moment does not shrink it)."""
    k = 1
    while True:
        trials = []
        for _ in range(3):
            t0 = time.perf_counter()
            block(case(k))
            trials.append(time.perf_counter() - t0)
        dt = min(trials)
        if dt >= target / 8 or k >= 1 << 16:
            return max(1, round(k * target / max(dt, 1e-9)))
        k *= 4


def interleaved(
    cases: Mapping[str, Case], *, rounds: int, target: float = 0.02
) -> dict[str, dict[str, float]]:
    """Time every case `rounds` times, interleaved, and summarise per call.

    Each round visits every case once (rotating the starting case, so no case is
    always first after another), and each visit is one sample: `k` calls, timed
    together and divided by `k`, with `k` calibrated per case so that a sample takes
    about `target` seconds. Returns seconds per call: median and min over samples.
    """
    names = list(cases)
    ks = {}
    for name in names:  # warm-up (compile, fill caches), then calibrate
        t0 = time.perf_counter()
        block(cases[name](1))
        slow = time.perf_counter() - t0 >= target
        ks[name] = 1 if slow else calibrate(cases[name], target)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            k = ks[name]
            t0 = time.perf_counter()
            block(cases[name](k))
            samples[name].append((time.perf_counter() - t0) / k)
    return {
        name: {
            "median": statistics.median(s),
            "min": min(s),
            "calls_per_sample": ks[name],
            "samples": len(s),
        }
        for name, s in samples.items()
    }


def repeat_each(fn: Callable[[], Any]) -> Case:
    """A case that calls `fn` k times and blocks on every result."""

    def run(k: int) -> Any:
        out = None
        for _ in range(k):
            out = block(fn())
        return out

    return run
