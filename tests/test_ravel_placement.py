"""`unravel` puts each latent back where it was: the shardings of committed
arrays on several devices, nothing recorded on one device."""

import jax
import jax.numpy as jnp
import pytest

import eqxpurify as ep

from .conftest import outside
from .models import two_params

_PLACEMENT = """
from jax.sharding import NamedSharding, PartitionSpec as P
devs = jax.devices()
mesh = jax.make_mesh((4,), ("x",))
sharded = NamedSharding(mesh, P("x"))
model = {
    "w": ep.Param.from_latent(jax.device_put(jnp.arange(8.0), sharded)),
    "b": ep.Param.from_latent(jax.device_put(jnp.ones(()), devs[1])),
    "c": ep.Param(2.0),
}

def where_s(s):
    spec = list(s.spec) if isinstance(s, NamedSharding) else None
    return [sorted(d.id for d in s.device_set), spec]

def where(x):
    return where_s(x.sharding)

flat, unravel = ep.ravel(model)
back = unravel(flat + 1)
print(json.dumps({
    "recorded": [None if s is None else where_s(s) for s in unravel.shardings],
    "placed": {k: where(p.latent) for k, p in back.items()},
    "values": {k: np.asarray(p.latent).tolist() for k, p in back.items()},
}))
"""


@pytest.mark.slow
def test_unravel_restores_shardings_on_several_devices():
    flat, unravel = ep.ravel(two_params())
    unravel(flat)  # (in this process too, for mutmut)
    # On one device nothing is recorded; called here so that mutmut runs this
    # test (and the subprocess below, which inherits the mutant) for its mutants.
    committed = {
        "a": ep.Param.from_latent(jax.device_put(jnp.ones(2), jax.devices()[0]))
    }
    assert ep.ravel(committed)[1].shardings == (None,)
    assert ep.ravel({"a": ep.Param.from_latent(jnp.ones(2))})[1].shardings == (None,)
    got = outside(_PLACEMENT)
    # Path order: b, c, w. The committed arrays not on the default device have
    # their placement recorded; `c` goes wherever new arrays go.
    assert got["recorded"] == [[[1], None], None, [[0, 1, 2, 3], ["x"]]]
    assert got["placed"]["w"] == [[0, 1, 2, 3], ["x"]]
    assert got["placed"]["c"] == [[0], None]
    assert got["values"] == {
        "b": 2.0,
        "c": 3.0,
        "w": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
    }


def test_unravel_keeps_a_single_device_placement():
    flat, unravel = ep.ravel(two_params())
    unravel(flat)
    got = outside(_PLACEMENT)
    assert got["placed"]["b"] == [[1], None]
