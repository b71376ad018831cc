"""What one wrapper node costs the stock Equinox loop, by how the node is built.

    python benchmarks/node_cost.py              # L = 100 parameters of shape (3,)
    python benchmarks/node_cost.py --leaves 1000 --reps 7

The stock Equinox loop (`eqx.filter_jit` over the whole model,
`filter_value_and_grad`, optax on `eqx.filter(model, eqx.is_inexact_array)`: S3's
step) flattens the model in Python on every call. This times one step of that
loop on models of L parameters that differ only in what holds each array:

- plain: the array itself, in a list (the equivalent plain Equinox model);
- module, static prior: an `eqx.Module` with the array and a hashable constant
  prior in a static field (one Python-flattened node per parameter);
- dataclass, static prior: a frozen dataclass registered with
  `jax.tree_util.register_dataclass` (flattened by JAX's C++ pytree code), the
  prior in its metadata;
- dataclass, prior as a tuple: the same with the constant prior as a plain
  tuple `("normal", loc, scale)` in its metadata, which JAX hashes and compares
  without calling Python code (no `__hash__`/`__eq__` of a class of ours);
- dataclass, no metadata: the same with nothing static;
- `ep.Param`: today's Param under an `ep.Normal(0, 1)` prior (a Param node, its
  prior and two `ep.Fixed` hyperparameters: four nodes, three arrays).

Every model computes the same loss; the rows are timed interleaved by S3's timer
(`benchmarks/_timing.py`), each the minimum per call over `--reps` samples.
"""

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import eqxpurify as ep  # noqa: E402
from benchmarks import _timing  # noqa: E402
from benchmarks._leaves import OPT, stepper, stock_equinox_step  # noqa: E402


class Many(eqx.Module):
    params: list


class ConstantPrior:
    """A hashable stand-in for a constant prior: loc and scale as Python floats."""

    def __init__(self, loc: float, scale: float):
        self.loc, self.scale = loc, scale
        self._hash = hash((loc, scale))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConstantPrior) and (self.loc, self.scale) == (
            other.loc,
            other.scale,
        )


class ModuleNode(eqx.Module):
    latent: jax.Array
    prior: ConstantPrior = eqx.field(static=True)


@dataclasses.dataclass(frozen=True)
class DataclassNode:
    latent: jax.Array
    prior: ConstantPrior


@dataclasses.dataclass(frozen=True)
class TupleNode:
    latent: jax.Array
    prior: tuple  # ("normal", loc, scale)


@dataclasses.dataclass(frozen=True)
class BareNode:
    latent: jax.Array


jax.tree_util.register_dataclass(
    DataclassNode, data_fields=["latent"], meta_fields=["prior"]
)
jax.tree_util.register_dataclass(
    TupleNode, data_fields=["latent"], meta_fields=["prior"]
)
jax.tree_util.register_dataclass(BareNode, data_fields=["latent"], meta_fields=[])


def stock_step(value: Any) -> Any:
    """The stock Equinox loop's step on a loss of each parameter's value."""
    return stock_equinox_step(
        lambda model: sum(jnp.sum(jnp.square(value(p) - 1.0)) for p in model.params)
    )


def constant(p: Any) -> jax.Array:
    return p.prior.loc + p.prior.scale * p.latent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leaves", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    keys = jax.random.split(jax.random.key(0), args.leaves)
    arrays = [jax.random.normal(k, (3,)) for k in keys]
    prior = ConstantPrior(0.0, 1.0)
    cases = {
        "plain arrays": (Many(arrays), stock_step(lambda a: a)),
        "eqx.Module node, static prior": (
            Many([ModuleNode(a, prior) for a in arrays]),
            stock_step(constant),
        ),
        "registered dataclass, static prior": (
            Many([DataclassNode(a, prior) for a in arrays]),
            stock_step(constant),
        ),
        "registered dataclass, prior as a tuple of floats": (
            Many([TupleNode(a, ("normal", 0.0, 1.0)) for a in arrays]),
            stock_step(lambda p: p.prior[1] + p.prior[2] * p.latent),
        ),
        "registered dataclass, nothing static": (
            Many([BareNode(a) for a in arrays]),
            stock_step(lambda p: p.latent),
        ),
        "ep.Param, ep.Normal(0, 1) prior": (
            Many([ep.Param.from_latent(a, prior=ep.Normal(0.0, 1.0)) for a in arrays]),
            stock_step(lambda p: p.value),
        ),
    }
    timed = _timing.interleaved(
        {
            name: _timing.repeat_each(
                stepper(step, model, OPT.init(eqx.filter(model, eqx.is_inexact_array)))
            )
            for name, (model, step) in cases.items()
        },
        rounds=args.reps,
    )
    best = {name: r["min"] for name, r in timed.items()}
    base = best["plain arrays"]
    print(f"stock Equinox loop, L={args.leaves} parameters of shape (3,), S3's optax")
    print(f"min per call over {args.reps} interleaved samples (S3's timer)\n")
    print("| node | per step | ratio to plain arrays |")
    print("|---|---|---|")
    for name, t in best.items():
        print(f"| {name} | {1e6 * t:.0f} µs | {t / base:.2f}x |")


if __name__ == "__main__":
    main()
