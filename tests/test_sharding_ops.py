"""Every operation that returns a model keeps a model-parallel Param's sharding.

JAX fixes the device count when it starts, so the checks run in a fresh Python
process (this file as a script) with 8 simulated CPU devices, and print one JSON
line per check; the test asserts on them.
"""

import json
import os
import subprocess
import sys

import pytest

CHECKS = [
    "normal",
    "normal_never_gathers",
    "zeros",
    "shapes",
    "ravel_unravel",
    "set_value",
    "set_value_fixed_new_shape",
    "load_values",
    "freeze_unfreeze",
    "partition_combine",
    "unwrap",
]


def _run_checks() -> dict:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    import eqxpurify as ep

    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("model", "data"))
    rows = NamedSharding(mesh, P("model", None))

    class Net(eqx.Module):
        w: ep.Param
        b: ep.Param
        x: ep.Fixed

    def make(sharding):
        return Net(
            ep.Param(shape=(8, 6), prior=ep.Normal(0.0, 0.5), sharding=sharding),
            ep.Param(shape=(6,), prior=ep.LogNormal(1.0, 0.5)),
            ep.Fixed(jnp.arange(16.0).reshape(8, 2)),
        )

    key = jax.random.key(0)
    sharded = ep.normal(make(rows), key=key)
    plain = ep.normal(make(None), key=key)
    w = sharded.w.latent
    out = {}

    def same(a, b):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))

    def kept(x):
        return x.sharding.is_equivalent_to(rows, x.ndim)

    out["normal"] = kept(w) and same(w, plain.w.latent)
    shard_shapes = {tuple(s.data.shape) for s in w.addressable_shards}
    out["normal_never_gathers"] = shard_shapes == {(2, 6)} and len(
        w.addressable_shards
    ) == len(jax.devices())
    z = ep.zeros(make(rows)).w.latent
    out["zeros"] = kept(z) and same(z, jnp.zeros((8, 6)))
    struct = ep.shapes(sharded).w.latent
    out["shapes"] = struct.sharding is not None and struct.sharding.is_equivalent_to(
        rows, 2
    )
    flat, unravel = ep.ravel(sharded)
    back = unravel(flat)
    out["ravel_unravel"] = kept(back.w.latent) and same(back.w.latent, w)
    new = jnp.full((8, 6), 0.25)
    set_ = ep.set_value(sharded, "w", new)
    out["set_value"] = kept(set_.w.latent) and np.allclose(set_.w.value, 0.25)
    # A Fixed sharded by rows: data of its shape keeps the sharding; data of a
    # new shape of the same rank (6 rows: not a multiple of the 4 row shards) is
    # placed anew, with its values, whatever the old sharding.
    grid = {"x": ep.Fixed(jax.device_put(jnp.arange(16.0).reshape(8, 2), rows))}
    same_shape = ep.set_value(grid, "['x']", jnp.ones((8, 2)))["x"]
    new_rows = jnp.arange(12.0).reshape(6, 2)
    longer = ep.set_value(grid, "['x']", new_rows, reshape=True)["x"]
    out["set_value_fixed_new_shape"] = (
        kept(same_shape.stored)
        and same(same_shape.value, jnp.ones((8, 2)))
        and longer.shape == (6, 2)
        and same(longer.value, new_rows)
    )
    loaded = ep.load_values(sharded, ep.values(sharded))
    out["load_values"] = kept(loaded.w.latent) and np.allclose(
        loaded.w.value, sharded.w.value, rtol=1e-6, atol=1e-7
    )
    frozen = ep.freeze(sharded, "w")
    thawed = ep.unfreeze(frozen, "w")
    out["freeze_unfreeze"] = (
        kept(frozen.w.stored)
        and kept(thawed.w.latent)
        and np.allclose(thawed.w.value, sharded.w.value, rtol=1e-6, atol=1e-7)
    )
    params, rest = ep.partition(sharded)
    out["partition_combine"] = kept(params["w"]) and kept(
        ep.combine(params, rest).w.latent
    )
    out["unwrap"] = kept(ep.unwrap(sharded).w)
    return out


@pytest.mark.slow
def test_every_operation_keeps_the_sharding():
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, __file__],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    failed = [name for name in CHECKS if not got.get(name)]
    assert not failed, f"sharding lost or values changed in: {failed}; {got}"


if __name__ == "__main__":
    print(json.dumps(_run_checks()))
elif os.environ.get("EQXPURIFY_TEST_X64", "0") == "1":
    pytestmark = pytest.mark.skip(reason="runs its own process at default precision")
