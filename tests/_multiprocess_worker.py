"""One process of the multi-process training test (`tests/test_multiprocess.py`).

Run as a script, never imported by the tests for its side effects (importing it
does nothing but define names).

    python tests/_multiprocess_worker.py OUT
        the reference: one process, one device. Writes `OUT/single.npz`.
    python tests/_multiprocess_worker.py OUT --coordinator localhost:PORT \
        --num-processes 2 --process-id I
        one of the processes of a `jax.distributed` run (each with 2 CPU devices,
        `XLA_FLAGS=--xla_force_host_platform_device_count=2`). Every process trains;
        process 0 alone writes `OUT/distributed.npz`.

Both modes train the same model from the same key on the same 64 data points with
the recommended loop (`ep.partition`, a jitted step taking `params` and `rest`,
`eqx.filter_value_and_grad` on `params` with `rest` closed over, optax adam,
`eqx.apply_updates`, the loss on `ep.combine(params, rest)`):

- data parallel: a `("data",)` mesh over every device of every process, the batch
  split over it (each process holds only its own half of the rows, made global by
  `jax.make_array_from_process_local_data`), the model replicated;
- model parallel: a `("data", "model")` mesh, one row of devices per process, the
  hidden layer's Params split over `"model"` and created directly in their shards
  by `ep.normal`, the batch split over `"data"`.

Each process prints one JSON line of what it saw (device counts, shardings, the
shape of each buffer it holds) for the test to check.
"""

import argparse
import json
import math
import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import eqxpurify as ep

BATCH = 64
N_IN = 3
WIDTH = 16
STEPS = 25
LEARNING_RATE = 1e-2
# The hidden layer's Params, split over the "model" axis in the model-parallel run.
MODEL_SPECS = {"w1": P(None, "model"), "b1": P("model"), "w2": P("model")}


class MLP(eqx.Module):
    """One hidden layer, a prior on every weight, Fixed input normalisation."""

    w1: ep.Param
    b1: ep.Param
    w2: ep.Param
    b2: ep.Param
    x_mean: ep.Fixed
    x_std: ep.Fixed

    def __init__(self, x_mean: jax.Array, x_std: jax.Array):
        self.w1 = ep.Param(
            shape=(N_IN, WIDTH), prior=ep.Normal(0.0, 1 / math.sqrt(N_IN))
        )
        self.b1 = ep.Param(shape=(WIDTH,), prior=ep.Normal(0.0, 0.1))
        self.w2 = ep.Param(shape=(WIDTH,), prior=ep.Normal(0.0, 1 / math.sqrt(WIDTH)))
        self.b2 = ep.Param(prior=ep.Normal(0.0, 1.0))
        self.x_mean = ep.Fixed(x_mean)
        self.x_std = ep.Fixed(x_std)

    @ep.unwrapped
    def __call__(self, x: jax.Array) -> jax.Array:
        h = jnp.tanh(((x - self.x_mean) / self.x_std) @ self.w1 + self.b1)
        return h @ self.w2 + self.b2


def data() -> tuple[np.ndarray, np.ndarray]:
    """The whole data set, the same in every process (each keeps only its rows)."""
    kx, kn = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (BATCH, N_IN)) * jnp.array([1.0, 2.0, 0.5]) + 1.0
    y = jnp.sin(x[:, 0]) + 0.3 * x[:, 1] + 0.1 * jax.random.normal(kn, (BATCH,))
    return np.asarray(x), np.asarray(y)


def abstract_model(x: np.ndarray) -> MLP:
    return MLP(jnp.asarray(x.mean(axis=0)), jnp.asarray(x.std(axis=0)))


def loss_fn(model: MLP, x: jax.Array, y: jax.Array) -> jax.Array:
    residual = jax.vmap(model)(x) - y
    return jnp.mean(residual**2) - ep.log_prior(model) / BATCH


optim = optax.adam(LEARNING_RATE)


@jax.jit
def step(params, rest, opt_state, x, y):
    loss, grads = eqx.filter_value_and_grad(
        lambda p: loss_fn(ep.combine(p, rest), x, y)
    )(params)
    updates, opt_state = optim.update(grads, opt_state, params)
    return eqx.apply_updates(params, updates), opt_state, loss


def train(model: MLP, x: jax.Array, y: jax.Array) -> tuple[MLP, list[float]]:
    params, rest = ep.partition(model)
    opt_state = optim.init(params)
    losses = []
    for _ in range(STEPS):
        params, opt_state, loss = step(params, rest, opt_state, x, y)
        losses.append(float(loss))
    return ep.combine(params, rest), losses


def to_numpy(tree: dict[str, jax.Array]) -> dict[str, np.ndarray]:
    """Every array as numpy on every process (gathering sharded ones)."""
    if jax.process_count() == 1:
        return {k: np.asarray(v) for k, v in tree.items()}
    from jax.experimental import multihost_utils

    return {
        k: np.asarray(multihost_utils.process_allgather(v, tiled=True))
        for k, v in tree.items()
    }


def describe(model: MLP) -> dict[str, dict]:
    """Per Param: its partition spec (or None) and the shapes of this process's
    buffers."""
    out = {}
    for name in ("w1", "b1", "w2", "b2"):
        latent = getattr(model, name).latent
        sharding = latent.sharding
        spec = sharding.spec if isinstance(sharding, NamedSharding) else None
        out[name] = {
            "spec": None if spec is None else [s for s in spec],
            "devices": len(sharding.device_set),
            "local_shapes": [list(s.data.shape) for s in latent.addressable_shards],
        }
    return out


def single(out: Path) -> None:
    x, y = data()
    model = ep.normal(abstract_model(x), key=jax.random.key(1))
    trained, losses = train(model, jnp.asarray(x), jnp.asarray(y))
    arrays = {f"init/{k}": v for k, v in to_numpy(ep.values(model)).items()}
    arrays |= {f"single/{k}": v for k, v in to_numpy(ep.values(trained)).items()}
    arrays["single_losses"] = np.asarray(losses)
    np.savez(out / "single.npz", **arrays)
    print(
        json.dumps({"device_count": jax.device_count(), "describe": describe(trained)})
    )


def distributed(out: Path) -> None:
    pid, nproc = jax.process_index(), jax.process_count()
    x, y = data()
    rows = slice(pid * BATCH // nproc, (pid + 1) * BATCH // nproc)
    x_local, y_local = x[rows], y[rows]  # each process holds only its own rows
    abstract = abstract_model(x)
    report: dict = {
        "process_index": pid,
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
    }

    # Data parallel: the batch over every device, the model replicated.
    mesh = Mesh(np.array(jax.devices()), ("data",))
    batch = NamedSharding(mesh, P("data"))
    xs = jax.make_array_from_process_local_data(batch, x_local, x.shape)
    ys = jax.make_array_from_process_local_data(batch, y_local, y.shape)
    report["x_local_shapes"] = [list(s.data.shape) for s in xs.addressable_shards]
    model = ep.normal(abstract, key=jax.random.key(1))
    model = jax.device_put(model, NamedSharding(mesh, P()))
    dp, dp_losses = train(model, xs, ys)
    report["dp"] = describe(dp)

    # Model parallel: the hidden layer split over "model", the batch over "data".
    grid = np.array(jax.devices()).reshape(nproc, jax.local_device_count())
    mesh = Mesh(grid, ("data", "model"))
    batch = NamedSharding(mesh, P("data"))
    xs = jax.make_array_from_process_local_data(batch, x_local, x.shape)
    ys = jax.make_array_from_process_local_data(batch, y_local, y.shape)
    sharded = eqx.tree_at(
        lambda m: tuple(getattr(m, name).latent for name in MODEL_SPECS),
        abstract,
        tuple(
            jax.ShapeDtypeStruct(
                getattr(abstract, name).shape,
                getattr(abstract, name).dtype,
                sharding=NamedSharding(mesh, spec),
            )
            for name, spec in MODEL_SPECS.items()
        ),
    )
    mp_init = ep.normal(sharded, key=jax.random.key(1))  # created in its shards
    report["mp_init"] = describe(mp_init)
    mp, mp_losses = train(mp_init, xs, ys)
    report["mp"] = describe(mp)

    arrays = {f"mp_init/{k}": v for k, v in to_numpy(ep.values(mp_init)).items()}
    arrays |= {f"dp/{k}": v for k, v in to_numpy(ep.values(dp)).items()}
    arrays |= {f"mp/{k}": v for k, v in to_numpy(ep.values(mp)).items()}
    if pid == 0:  # only one process writes files
        arrays["dp_losses"] = np.asarray(dp_losses)
        arrays["mp_losses"] = np.asarray(mp_losses)
        np.savez(out / "distributed.npz", **arrays)
    print(json.dumps(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--coordinator")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    args = parser.parse_args()
    if os.environ.get("EQXPURIFY_TEST_X64", "0") == "1":
        jax.config.update("jax_enable_x64", True)
    if args.coordinator is None:
        single(args.out)
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
        initialization_timeout=30,
    )
    try:
        distributed(args.out)
    finally:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main()
