"""`ep.normal`, `ep.zeros` and `ep.shapes` on several devices: each latent is
created in its shards, with the numbers of the one-device draw."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep

from .conftest import (
    outside,
)

_INIT_PLACEMENT = """
from jax.sharding import NamedSharding, PartitionSpec as P
devs = jax.devices()
mesh = jax.make_mesh((4,), ("x",))
rows = NamedSharding(mesh, P("x"))
pair = NamedSharding(jax.make_mesh((2,), ("y",), devices=devs[2:]), P("y"))
model = {
    "u": ep.Param(shape=(8,)),
    "v": ep.Param.from_latent(jax.device_put(jnp.zeros(8), devs[2])),
    "w": ep.Param(shape=(8,), sharding=rows),
    "x": ep.Param(shape=(4,), dtype=jnp.bfloat16, sharding=pair),
}
key = jax.random.key(3)

def where(x):
    s = x.sharding
    spec = list(s.spec) if isinstance(s, NamedSharding) else None
    return [sorted(d.id for d in s.device_set), spec]

def want(j, shape, dtype):
    z = jax.random.normal(jax.random.fold_in(key, j), shape, jnp.float32)
    return np.asarray(z.astype(dtype), np.float64).tolist()

drawn = ep.normal(model, key=key)
jitted = jax.jit(lambda k: ep.normal(model, key=k))(key)
zeros = ep.zeros(model)
structs = ep.shapes(drawn)
# (how many compiled draws there are: no public function tells)
from eqxpurify._initialise import _sharded_draw
print(json.dumps({
    "sharded_draws": _sharded_draw.cache_info().currsize,
    "u_committed": drawn["u"].latent.committed,
    "drawn": {k: where(p.latent) for k, p in drawn.items()},
    "values": {k: np.asarray(p.latent, np.float64).tolist() for k, p in drawn.items()},
    "jitted": {k: np.asarray(p.latent, np.float64).tolist() for k, p in jitted.items()},
    "want": {
        "u": want(0, (8,), jnp.float32),
        "v": want(1, (8,), jnp.float32),
        "w": want(2, (8,), jnp.float32),
        "x": want(3, (4,), jnp.bfloat16),
    },
    "dtypes": {k: str(p.latent.dtype) for k, p in drawn.items()},
    "zeros": {k: where(p.latent) for k, p in zeros.items()},
    "zero_values": {
        k: np.asarray(p.latent, np.float64).tolist() for k, p in zeros.items()
    },
    "zero_dtypes": {k: str(p.latent.dtype) for k, p in zeros.items()},
    "structs": {
        k: None if p.latent.sharding is None else where(p.latent)
        for k, p in structs.items()
    },
}))
"""


@pytest.mark.slow
def test_normal_zeros_shapes_place_each_latent_on_several_devices():
    model = {"u": ep.Param(shape=(8,)), "x": ep.Param(shape=(4,))}
    ep.shapes(ep.zeros(ep.normal(model, key=jax.random.key(3))))  # (for mutmut)
    got = outside(_INIT_PLACEMENT)
    placed = {
        "u": [[0], None],
        "v": [[2], None],
        "w": [[0, 1, 2, 3], ["x"]],
        "x": [[2, 3], ["y"]],
    }
    assert got["drawn"] == placed
    assert got["zeros"] == placed
    # (u, drawn in one group with the committed v, comes back committed to the
    # default device, so its struct may record that device.)
    assert {k: got["structs"][k] for k in "vwx"} == {k: placed[k] for k in "vwx"}
    assert got["structs"]["u"] in (None, [[0], None])
    # Latent j is normal(fold_in(key, j)), whatever the route and the placement.
    assert got["values"] == got["want"]
    assert got["jitted"] == got["want"]
    dtypes = {"u": "float32", "v": "float32", "w": "float32", "x": "bfloat16"}
    assert got["dtypes"] == dtypes and got["zero_dtypes"] == dtypes
    assert got["zero_values"] == {k: [0.0] * (4 if k == "x" else 8) for k in "uvwx"}
    # w and x (spanning devices) are drawn in their shards, by one compiled draw
    # each; u and v (one device each) are drawn together.
    assert got["sharded_draws"] == 2


def test_normal_leaves_an_uncommitted_latent_uncommitted_on_several_devices():
    ep.normal({"u": ep.Param(shape=(8,))}, key=jax.random.key(3))
    assert outside(_INIT_PLACEMENT)["u_committed"] is False


_SHARDED_NUMBERS = """
from jax.sharding import NamedSharding, PartitionSpec as P
everywhere = NamedSharding(jax.make_mesh((4,), ("x",)), P())
key = jax.random.key(5)
model = {
    "a": ep.Param(shape=(3,), sharding=everywhere),
    "b": ep.Param(shape=(2, 2), dtype=jnp.bfloat16, sharding=everywhere),
}
drawn = ep.normal(model, key=key)
print(json.dumps({
    k: [str(p.latent.dtype), list(p.latent.shape), len(p.latent.sharding.device_set),
        np.asarray(p.latent, np.float64).tolist()]
    for k, p in drawn.items()
}))
"""


@pytest.mark.slow
def test_draw_one_makes_the_same_numbers():
    # A latent spanning several devices is drawn in its shards (the sharded route):
    # the same numbers as latent j's one-device draw, normal(fold_in(key, j)).
    key = jax.random.key(5)
    ep.normal({"a": ep.Param(shape=(3,))}, key=key)  # (in this process too)
    got = outside(_SHARDED_NUMBERS)
    for j, (name, shape, dtype) in enumerate(
        [("a", (3,), jnp.float32), ("b", (2, 2), jnp.bfloat16)]
    ):
        want = jax.random.normal(jax.random.fold_in(key, j), shape, jnp.float32)
        want = np.asarray(want.astype(dtype), np.float64).tolist()
        assert got[name] == [jnp.dtype(dtype).name, list(shape), 4, want]
    assert outside(_INIT_PLACEMENT)["sharded_draws"] == 2
