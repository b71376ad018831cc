"""Data-parallel training over 8 simulated CPU devices gives the one-device result.

The device count is fixed when JAX starts, so the training runs in a fresh Python
process (this file, run as a script) with
`XLA_FLAGS=--xla_force_host_platform_device_count=8`. It trains the same model
twice with the recommended loop (`ep.partition`, `eqx.filter_value_and_grad`,
optax adamw, `eqx.apply_updates`, `ep.combine`, one `jax.jit` step): once with
the batch sharded over a `("data",)` mesh and the model replicated, once on a
single device, and prints what the test compares.
"""

import json
import math
import os
import subprocess
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import eqxpurify as ep

DEVICES = 8
BATCH = 64
STEPS = 20


class MLP(eqx.Module):
    """A small regression network: Params, Fixed normalisation data, static fields."""

    w1: ep.Param
    b1: ep.Param
    w2: ep.Param
    b2: ep.Param
    x_mean: ep.Fixed
    x_std: ep.Fixed
    activation: str = eqx.field(static=True)

    def __init__(self, x_mean: jax.Array, x_std: jax.Array, width: int = 16):
        n_in = x_mean.shape[0]
        self.w1 = ep.Param(
            shape=(n_in, width), prior=ep.Normal(0.0, 1 / math.sqrt(n_in))
        )
        self.b1 = ep.Param(shape=(width,), prior=ep.Normal(0.0, 0.1))
        self.w2 = ep.Param(shape=(width,), prior=ep.Normal(0.0, 1 / math.sqrt(width)))
        self.b2 = ep.Param(prior=ep.Normal(0.0, 1.0))
        self.x_mean = ep.Fixed(x_mean)
        self.x_std = ep.Fixed(x_std)
        self.activation = "tanh"

    @ep.unwrapped
    def __call__(self, x: jax.Array) -> jax.Array:
        h = jnp.tanh(((x - self.x_mean) / self.x_std) @ self.w1 + self.b1)
        return h @ self.w2 + self.b2


def loss_fn(params, rest, x, y):
    model = ep.combine(params, rest)
    residual = jax.vmap(model)(x) - y
    return jnp.mean(residual**2) - ep.log_prior(model) / BATCH


optim = optax.adamw(1e-2, weight_decay=1e-3)


@jax.jit
def step(params, rest, opt_state, x, y):
    loss, grads = eqx.filter_value_and_grad(loss_fn)(params, rest, x, y)
    updates, opt_state = optim.update(grads, opt_state, params)
    return eqx.apply_updates(params, updates), opt_state, loss


def train(model, x, y):
    params, rest = ep.partition(model)
    opt_state = optim.init(params)
    losses = []
    for _ in range(STEPS):
        params, opt_state, loss = step(params, rest, opt_state, x, y)
        losses.append(float(loss))
    return ep.combine(params, rest), losses


def data():
    kx, kn = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (BATCH, 3)) * jnp.array([1.0, 2.0, 0.5]) + 1.0
    y = jnp.sin(x[:, 0]) + 0.3 * x[:, 1] + 0.1 * jax.random.normal(kn, (BATCH,))
    model = MLP(jnp.mean(x, axis=0), jnp.std(x, axis=0))
    return ep.normal(model, key=jax.random.key(1)), x, y


def main() -> None:
    if os.environ.get("EQXPURIFY_TEST_X64", "0") == "1":
        jax.config.update("jax_enable_x64", True)
    model, x, y = data()

    # One device: everything on the default device.
    single, single_losses = train(model, x, y)

    # Data parallel: the batch split over the mesh, the model replicated on it.
    mesh = Mesh(np.array(jax.devices()), ("data",))
    batch = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    x_sharded = jax.device_put(x, batch)
    y_sharded = jax.device_put(y, batch)
    model_replicated = jax.device_put(model, replicated)
    sharded, sharded_losses = train(model_replicated, x_sharded, y_sharded)

    def latents(m):
        return [
            np.asarray(p).ravel().tolist() for p in jax.tree.leaves(ep.partition(m)[0])
        ]

    out_params = jax.tree.leaves(ep.partition(sharded)[0])
    report = {
        "device_count": jax.device_count(),
        "x_devices": len(x_sharded.sharding.device_set),
        "x_shard_rows": sorted({s.data.shape[0] for s in x_sharded.addressable_shards}),
        "params_devices": sorted({len(p.sharding.device_set) for p in out_params}),
        "params_replicated": all(p.sharding.is_fully_replicated for p in out_params),
        "single": latents(single),
        "sharded": latents(sharded),
        "initial": latents(model),
        "single_losses": single_losses,
        "sharded_losses": sharded_losses,
        "fixed_unchanged": all(
            np.array_equal(np.asarray(a.array), np.asarray(b.array))
            for m in (single, sharded)
            for a, b in ((m.x_mean, model.x_mean), (m.x_std, model.x_std))
        ),
    }
    print(json.dumps(report))


@pytest.mark.slow
def test_data_parallel_training_matches_one_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={DEVICES}"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, __file__],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    assert report["device_count"] == DEVICES
    assert report["x_devices"] == DEVICES  # the batch really is split ...
    assert report["x_shard_rows"] == [BATCH // DEVICES]  # ... 8 rows per device
    assert report["params_devices"] == [DEVICES]  # trained params live on all 8
    assert report["params_replicated"]
    assert report["fixed_unchanged"]
    single, sharded = report["single"], report["sharded"]
    assert len(single) == len(sharded) == 4
    for a, b, init in zip(single, sharded, report["initial"], strict=True):
        assert not np.allclose(a, init)  # training moved every Param
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        report["sharded_losses"], report["single_losses"], rtol=1e-5
    )
    assert report["single_losses"][-1] < report["single_losses"][0]


if __name__ == "__main__":
    main()
