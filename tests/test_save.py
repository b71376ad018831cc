"""`save`/`load`: atomic checkpoints with a header that `load` checks.

Round trips are exact (compared on the raw bytes of every leaf); a truncated,
corrupted or foreign file and a template that differs from the saved model are
each a `ValueError` naming the path and the fix.
"""

import io
import json
import os
import pathlib
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep
from eqxpurify._save import load, save
from eqxpurify._save_file import END, MAGIC, write
from eqxpurify._wrapper_base import deleted_error

from .conftest import DEFAULT_FLOAT, X64, raises_and_keeps

LOW_PRECISION = [jnp.float32, jnp.float16, jnp.bfloat16]


class Model(eqx.Module):
    theta: ep.Param
    offset: ep.Param
    bounded: ep.Param
    x_obs: ep.Fixed
    key_data: ep.Fixed
    key: jax.Array
    mlp: eqx.nn.MLP
    counts: jax.Array
    extra: dict
    scale: float


def make_model(seed, dtype=jnp.float32):
    """A fitted-looking model with every kind of leaf, distinct for each seed."""
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    model = Model(
        theta=ep.Param(shape=(2,), dtype=dtype, prior=ep.LogNormal(3.0, 0.1)),
        offset=ep.Param(shape=(3,), dtype=dtype, prior=ep.Normal(jnp.arange(3.0), 2.0)),
        bounded=ep.Param(shape=(), dtype=dtype, prior=ep.Uniform(-1.0, 4.0)),
        x_obs=ep.Fixed(jnp.linspace(0.0, 1.0, 5, dtype=dtype) + seed),
        key_data=ep.Fixed(jax.random.split(k1, 2)),
        key=k2,
        mlp=eqx.nn.MLP(2, 2, 4, 1, key=k3, dtype=dtype),
        counts=jnp.arange(4, dtype=jnp.int32) * (seed + 1),
        extra={
            "layers": [
                ep.Param(shape=(2,), dtype=dtype),
                jnp.array([seed, 1], jnp.int8),
            ],
            "flags": (np.array([True, seed % 2 == 0]),),
        },
        scale=0.1 * (seed + 1),
    )
    return ep.normal(model, key=jax.random.key(seed + 100))


def raw_leaves(tree):
    """Every leaf as (type, dtype, shape, bytes): equal iff bit-for-bit equal."""
    out = []
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(
            leaf.dtype, jax.dtypes.prng_key
        ):
            data = np.asarray(jax.random.key_data(leaf))
            out.append(("key", str(leaf.dtype), data.shape, data.tobytes()))
        elif isinstance(leaf, jax.Array | np.ndarray | np.generic):
            arr = np.asarray(leaf)
            kind = type(leaf).__name__ if not isinstance(leaf, jax.Array) else "jax"
            out.append((kind, str(arr.dtype), arr.shape, arr.tobytes()))
        else:
            out.append((type(leaf).__name__, repr(leaf)))
    return out


def assert_bit_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    assert raw_leaves(a) == raw_leaves(b)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "model.ckpt"


# --- exact round trips ------------------------------------------------------------


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=lambda d: jnp.dtype(d).name)
def test_round_trip_exact(path, dtype):
    model = make_model(0, dtype)
    like = make_model(1, dtype)
    assert raw_leaves(like) != raw_leaves(model)
    save(path, model)
    loaded = load(path, like)
    assert_bit_equal(loaded, model)
    assert loaded.theta.dtype == dtype and loaded.x_obs.dtype == dtype
    np.testing.assert_array_equal(
        np.asarray(loaded.theta.value, np.float32),
        np.asarray(model.theta.value, np.float32),
    )


def test_round_trip_float64(path):
    with jax.enable_x64(True):
        model = make_model(0, jnp.float64)
        assert model.theta.dtype == jnp.float64
        save(path, model)
        loaded = load(path, make_model(1, jnp.float64))
        assert_bit_equal(loaded, model)
        assert loaded.x_obs.value.dtype == jnp.float64


def test_round_trip_special_values(path):
    """NaN payloads, signed zeros, infinities, subnormals and extremes survive."""
    bits = np.array([0x7FC00001, 0x80000000, 0x7F800000, 0x00000001, 0x7F7FFFFF])
    special = jnp.asarray(bits.astype(np.uint32).view(np.float32))
    model = {
        "plain": special,
        "fixed": ep.Fixed(special),
        "bf16": jnp.array([jnp.inf, -0.0, jnp.nan], jnp.bfloat16),
        "f8": jnp.array([0.5, -448.0], jnp.float8_e4m3fn),
        "i4": jnp.array([-8, 7], jnp.int4),
        "ints": jnp.array([jnp.iinfo(jnp.int32).min, -1], jnp.int32),
        "u8": np.array([0, 255], np.uint8),
        "py": [True, 2**62, -0.0, 1.5 - 2j],
        "np_scalar": np.float32(np.nan),
    }
    save(path, model)
    like = jax.tree.map(lambda x: x * 0 if isinstance(x, jax.Array) else x, model)
    assert_bit_equal(load(path, like), model)


def test_round_trip_keys(path):
    """Typed keys (default and rbg) in a field and in an `ep.Fixed` round-trip and
    give the same random numbers."""
    model = {
        "key": jax.random.key(7),
        "rbg": jax.random.key(3, impl="rbg"),
        "keys": ep.Fixed(jax.random.split(jax.random.key(1), 3)),
    }
    like = {
        "key": jax.random.key(0),
        "rbg": jax.random.key(0, impl="rbg"),
        "keys": ep.Fixed(jax.random.split(jax.random.key(0), 3)),
    }
    save(path, model)
    loaded = load(path, like)
    assert_bit_equal(loaded, model)
    assert str(jax.random.key_impl(loaded["rbg"])) == "rbg"
    for name in ("key", "rbg"):
        np.testing.assert_array_equal(
            jax.random.normal(loaded[name], (4,)), jax.random.normal(model[name], (4,))
        )
    np.testing.assert_array_equal(
        jax.random.key_data(loaded["keys"].value),
        jax.random.key_data(model["keys"].value),
    )


def test_round_trip_frozen(path):
    model = ep.freeze(make_model(0), ["theta", "mlp"])
    assert ep.is_fixed(model.theta)
    save(path, model)
    loaded = load(path, ep.freeze(make_model(1), ["theta", "mlp"]))
    assert_bit_equal(loaded, model)
    back = ep.unfreeze(loaded, "theta")
    np.testing.assert_array_equal(
        back.theta.value, ep.unfreeze(model, "theta").theta.value
    )


def test_round_trip_mlp_runs(path):
    """A plain `eqx.nn.MLP` loads and computes the same; its activation function (a
    leaf that is not data) comes from the template."""
    model = {"net": eqx.nn.MLP(3, 2, 8, 2, key=jax.random.key(0))}
    like = {"net": eqx.nn.MLP(3, 2, 8, 2, key=jax.random.key(1))}
    save(path, model)
    loaded = load(path, like)
    x = jnp.array([0.1, -0.2, 0.3])
    np.testing.assert_array_equal(loaded["net"](x), model["net"](x))
    assert loaded["net"].activation is like["net"].activation


def test_abstract_templates(path):
    """Abstract Params and Fixed, `ep.shapes` and `eqx.filter_eval_shape` templates
    load the same exact model, and nothing is computed to build them."""
    model = make_model(0)
    save(path, model)
    assert_bit_equal(load(path, ep.shapes(model)), model)
    assert_bit_equal(load(path, eqx.filter_eval_shape(make_model, 1)), model)

    small = {
        "p": ep.Param(
            jnp.array([0.5, 2.0], jnp.bfloat16), prior=ep.LogNormal(1.0, 1.0)
        ),
        "f": ep.Fixed(jnp.array([1.0, 3.0], jnp.float16)),
        "c": ep.Fixed(jnp.array([1 + 2j], jnp.complex64)),
        "k": ep.Fixed(jax.random.split(jax.random.key(0), 2)),
    }
    like = {
        "p": ep.Param(shape=(2,), dtype=jnp.bfloat16, prior=ep.LogNormal(2.0, 3.0)),
        "f": ep.Fixed(shape=(2,), dtype=jnp.float16),
        "c": eqx.filter_eval_shape(lambda: ep.Fixed(jnp.zeros(1, jnp.complex64))),
        # Abstract complex and key Fixed from `eqx.filter_eval_shape`:
        # `ep.Fixed(shape=..., dtype=...)` refuses key dtypes and gives a complex
        # one the wrong `.shape` today.
        "k": eqx.filter_eval_shape(
            lambda: ep.Fixed(jax.random.split(jax.random.key(1), 2))
        ),
    }
    save(path, small)
    loaded = load(path, like)
    assert_bit_equal(loaded, small)
    assert loaded["f"].value.dtype == jnp.float16
    assert not loaded["p"].is_abstract and not loaded["f"].is_abstract


def test_frozen_hierarchical_abstract(path):
    """A Fixed frozen from a Param keeps its prior; an abstract Fixed in `like`
    with that prior loads into the same model."""
    model = ep.freeze({"a": ep.Param(1.5, prior=ep.LogNormal(2.0, 0.5))}, "['a']")
    like = {"a": ep.Fixed(shape=(), prior=ep.LogNormal(1.0, 1.0))}
    save(path, model)
    loaded = load(path, like)
    assert_bit_equal(loaded, model)
    assert isinstance(loaded["a"].prior, ep.LogNormal)


def test_paths_and_like_unchanged(path):
    """`pathlib` and `str` paths; no suffix is added; `like` is not modified."""
    model = make_model(0)
    like = make_model(1)
    before = raw_leaves(like)
    save(str(path), model)
    assert os.listdir(path.parent) == [path.name]
    assert_bit_equal(load(pathlib.Path(path), like), model)
    assert raw_leaves(like) == before


def test_header_format(path):
    """The documented layout: magic, version, header length, JSON header with one
    record per array leaf (path, module classes, shape, dtype), payload, trailer."""
    theta = ep.Param(2.0, prior=ep.LogNormal(1.0, 1.0), dtype=jnp.float32)
    model = {"theta": theta, "n": jnp.arange(3, dtype=jnp.int32)}
    save(path, model)
    raw = path.read_bytes()
    assert raw.startswith(MAGIC) and raw.endswith(END)
    assert int.from_bytes(raw[14:18], "little") == 1
    size = int.from_bytes(raw[18:26], "little")
    header = json.loads(raw[26 : 26 + size])
    records = header["leaves"]
    assert [r["path"] for r in records] == [
        "['n']",
        "['theta'].latent",
        "['theta'].prior.mean.stored",
        "['theta'].prior.sigma.stored",
    ]
    assert records[0]["nodes"] == [""] and records[0]["shape"] == [3]
    assert records[0]["dtype"] == "int32"
    assert records[1]["nodes"] == ["", "Param"]
    assert records[2]["nodes"] == ["", "Param", "LogNormal", "Fixed"]
    assert records[1]["wrapper"] == {"class": "Param", "shape": [], "dtype": "float32"}
    payload = int.from_bytes(raw[-48:-40], "little")
    assert 26 + size + payload + 48 == len(raw)


# --- atomic writes ----------------------------------------------------------------


def test_deterministic(path, tmp_path):
    """The same model gives the same bytes; saving does not change the model."""
    model = make_model(0)
    before = raw_leaves(model)
    save(path, model)
    save(tmp_path / "again.ckpt", model)
    assert path.read_bytes() == (tmp_path / "again.ckpt").read_bytes()
    assert raw_leaves(model) == before


def test_overwrite_and_permissions(path):
    save(path, {"a": jnp.zeros(3)})
    save(path, {"a": jnp.ones(3)})
    np.testing.assert_array_equal(load(path, {"a": jnp.zeros(3)})["a"], jnp.ones(3))
    assert os.listdir(path.parent) == [path.name]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_failed_write_keeps_old_file(path, monkeypatch):
    """A writer that dies mid-file leaves the old checkpoint whole and no temporary
    file; the real error (here a full disk) is raised, not Equinox's wrapper."""
    save(path, {"a": jnp.zeros(3), "b": jnp.zeros(2)})
    old = path.read_bytes()
    import eqxpurify._save as save_module

    real = save_module._stored
    calls = []

    def dying(x):
        calls.append(x)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(x)

    monkeypatch.setattr(save_module, "_stored", dying)
    with pytest.raises(OSError, match="No space left") as info:
        save(path, {"a": jnp.ones(3), "b": jnp.ones(2)})
    assert type(info.value) is OSError
    assert path.read_bytes() == old
    assert os.listdir(path.parent) == [path.name]


def test_interrupted_write_keeps_old_file(path, monkeypatch):
    save(path, {"a": jnp.zeros(3)})
    old = path.read_bytes()

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save(path, {"a": jnp.ones(3)})
    assert path.read_bytes() == old
    assert os.listdir(path.parent) == [path.name]


# --- files that are not whole checkpoints -----------------------------------------


def _cut(path, size):
    raw = path.read_bytes()
    path.write_bytes(raw[:size])
    return raw


@pytest.mark.parametrize(
    "where, detail",
    [
        ("empty", "it is empty"),
        ("magic", "after 5 bytes, inside the magic bytes"),
        ("version", "after 20 bytes, inside the format version"),
        ("header", r"inside its \d+-byte header"),
        ("payload", "without the end marker"),
        ("trailer", "without the end marker"),
        ("one byte short", "without the end marker"),
    ],
)
def test_truncated(path, where, detail):
    model = make_model(0)
    save(path, model)
    raw = path.read_bytes()
    header = int.from_bytes(raw[18:26], "little")
    size = {
        "empty": 0,
        "magic": 5,
        "version": 20,
        "header": 26 + header // 2,
        "payload": (26 + header + len(raw)) // 2,
        "trailer": len(raw) - 20,
        "one byte short": len(raw) - 1,
    }[where]
    _cut(path, size)
    like = make_model(1)
    before = raw_leaves(like)
    with pytest.raises(ValueError, match="is truncated") as info:
        load(path, like)
    assert type(info.value) is ValueError
    assert info.value.__cause__ is None
    assert str(path) in str(info.value)
    assert "save the model again" in str(info.value)
    assert info.match(detail)
    assert raw_leaves(like) == before


def test_corrupted(path):
    save(path, make_model(0))
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0x01  # one bit in the data
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="is corrupted .*SHA-256"):
        load(path, make_model(1))
    raw[-100] ^= 0x01
    path.write_bytes(bytes(raw[:-60]) + b"extra")  # cut short, then appended to
    with pytest.raises(ValueError, match="truncated .*without the end marker"):
        load(path, make_model(1))


def test_extra_bytes(path):
    """A whole checkpoint with bytes appended is not called truncated: the message
    counts the extra bytes and says how long the checkpoint is."""
    save(path, make_model(0))
    whole = path.read_bytes()
    path.write_bytes(whole + b"extra")
    with pytest.raises(ValueError, match=rf"has 5 extra bytes .*first {len(whole)} "):
        load(path, make_model(1))
    assert path.read_bytes() == whole + b"extra"
    path.write_bytes(whole + whole)  # two checkpoints joined
    with pytest.raises(ValueError, match=rf"has {len(whole)} extra bytes"):
        load(path, make_model(1))
    path.write_bytes(whole)
    assert_bit_equal(load(path, make_model(1)), make_model(0))


def test_foreign_files(path):
    path.write_bytes(b"just some text, not a checkpoint at all")
    with pytest.raises(ValueError, match="not a checkpoint written by `ep.save`"):
        load(path, make_model(1))
    eqx.tree_serialise_leaves(path, {"a": jnp.zeros(2)})
    with pytest.raises(ValueError, match=r"eqx.tree_deserialise_leaves\(path, like\)"):
        load(path, {"a": jnp.zeros(2)})
    with pytest.raises(FileNotFoundError):
        load(path.parent / "missing.ckpt", {"a": jnp.zeros(2)})


def test_newer_format(path):
    save(path, {"a": jnp.zeros(2)})
    raw = bytearray(path.read_bytes())
    raw[14:18] = (2).to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="format 2 by a newer eqxpurify.*Upgrade"):
        load(path, {"a": jnp.zeros(2)})


# --- templates that differ from the saved model -----------------------------------


def _load_error(path, model, like):
    save(path, model)
    before = raw_leaves(like)
    with pytest.raises(ValueError) as info:
        load(path, like)
    assert type(info.value) is ValueError
    assert raw_leaves(like) == before
    return str(info.value)


def test_changed_prior_kind(path):
    message = _load_error(
        path,
        {"theta": ep.Param(0.5, prior=ep.Normal(-1.0, 1.0))},
        {"theta": ep.Param(prior=ep.LogNormal(1.0, 1.0))},
    )
    assert "differ at `['theta'].prior`" in message
    assert "saved model has `Normal`, `like` has `LogNormal`" in message
    assert "the same priors" in message


def test_param_where_fixed_was_saved(path):
    message = _load_error(path, ep.freeze(make_model(0), "offset"), make_model(1))
    assert "differ at `offset`" in message
    assert "`Fixed`, `like` has `Param`" in message
    assert "ep.freeze" in message


def test_changed_shape(path):
    message = _load_error(
        path,
        {"w": ep.Param(jnp.zeros(3, jnp.float32))},
        {"w": ep.Param(shape=(2,), dtype=jnp.float32)},
    )
    assert "differ at `['w']`" in message
    assert "`ep.Param` of shape (3,) and dtype float32" in message
    assert "one of shape (2,) and dtype float32" in message
    message = _load_error(path, {"n": jnp.arange(3)}, {"n": jnp.arange(4)})
    assert "differ at `['n']`: the saved model has an array of shape (3,)" in message


def test_changed_dtype(path):
    message = _load_error(
        path,
        {"f": ep.Fixed(jnp.zeros(2, jnp.float32))},
        {"f": ep.Fixed(shape=(2,), dtype=jnp.bfloat16)},
    )
    assert "differ at `['f']`" in message
    assert "dtype float32, `like` has one of shape (2,) and dtype bfloat16" in message
    n32 = jnp.arange(3, dtype=jnp.int32)
    message = _load_error(path, {"n": n32}, {"n": jnp.zeros(3, jnp.float32)})
    assert "dtype int32, `like` has one of shape (3,) and dtype float32" in message
    save(path, {"n": jnp.arange(3)})  # NumPy and JAX arrays load into each other
    loaded = load(path, {"n": np.zeros(3, jnp.arange(3).dtype)})["n"]
    assert type(loaded) is np.ndarray
    np.testing.assert_array_equal(loaded, np.arange(3))
    message = _load_error(path, {"n": jnp.arange(3)}, {"n": 1})
    assert "a JAX array, `like` has a Python int" in message
    message = _load_error(
        path, {"k": jax.random.key(0)}, {"k": jnp.zeros(2, jnp.uint32)}
    )
    assert "a JAX PRNG key array, `like` has a JAX array" in message


@pytest.mark.skipif(X64, reason="the hint is for runs without jax_enable_x64")
def test_float64_file_without_x64(path):
    with jax.enable_x64(True):
        save(path, {"w": ep.Param(jnp.zeros(2, jnp.float64))})
    with pytest.raises(ValueError, match="dtype float64.*turn on `jax_enable_x64`"):
        load(path, {"w": ep.Param(shape=(2,))})


def test_more_params_in_file(path):
    model = {"a": ep.Param(1.0), "b": ep.Param(2.0)}
    message = _load_error(path, model, {"a": ep.Param(0.0)})
    assert "the file holds 6 arrays but `like` has 3" in message
    assert "the saved `['b'].latent`" in message
    assert "never drops saved data" in message


def test_fewer_params_in_file(path):
    message = _load_error(
        path, {"a": ep.Param(1.0)}, {"a": ep.Param(0.0), "b": ep.Param(2.0)}
    )
    assert "the file holds 3 arrays but `like` has 6" in message
    assert "`like` has `['b'].latent`" in message


def test_renamed_field(path):
    message = _load_error(path, {"a": jnp.zeros(2)}, {"z": jnp.zeros(2)})
    assert (
        "array leaf 0 of the saved model is `['a']`, but in `like` it is `['z']`"
        in (message)
    )


# --- what cannot be saved ---------------------------------------------------------


def test_save_refuses(path):
    with pytest.raises(ValueError, match=r"`theta.latent` is abstract.*ep.normal"):
        save(path, ep.shapes(make_model(0)))
    with pytest.raises(ValueError, match=r"`\['big'\]` .*not numeric data"):
        save(path, {"big": 2**70})
    with pytest.raises(ValueError, match=r"`\['s'\]` .*not numeric data.*static"):
        save(path, {"s": np.array(["text"])})

    @eqx.filter_jit
    def inside(model):
        save(path, model)
        return model

    with pytest.raises(ValueError, match=r"`\['a'\]` is a JAX tracer.*outside"):
        inside({"a": jnp.zeros(2)})
    assert not path.exists()
    assert os.listdir(path.parent) == []


def test_vmapped_ensemble(path):
    """An ensemble made with `eqx.filter_vmap` saves and loads like any model."""
    keys = jax.random.split(jax.random.key(0), 3)
    ensemble = eqx.filter_vmap(make_mlp)(keys)
    save(path, ensemble)
    like = eqx.filter_vmap(make_mlp)(jax.random.split(jax.random.key(1), 3))
    assert_bit_equal(load(path, like), ensemble)


def make_mlp(key):
    return ep.wrap(eqx.nn.MLP(2, 1, 3, 1, key=key))


_SHARDED = """
import json, os, sys
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import eqxpurify as ep
from eqxpurify._save import load, save

mesh = Mesh(np.array(jax.devices()), ("x",))
split = NamedSharding(mesh, P("x"))
def build(seed):
    model = {
        "w": ep.Param(jnp.arange(8.0) + seed),
        "keys": jax.random.split(jax.random.key(seed), 4),
        "n": jnp.arange(8) * seed,
    }
    whole = NamedSharding(mesh, P())
    return jax.tree.map(lambda x: jax.device_put(x, split if x.ndim else whole), model)
path = os.path.join(sys.argv[1], "sharded.ckpt")
model = build(1)
save(path, model)
like = build(2)
loaded = load(path, like)
print(json.dumps({
    "devices": len(jax.devices()),
    "w": loaded["w"].latent.sharding == like["w"].latent.sharding,
    "keys": loaded["keys"].sharding == like["keys"].sharding,
    "n": loaded["n"].sharding == like["n"].sharding,
    "equal": bool(np.array_equal(loaded["w"].latent, model["w"].latent))
    and bool(np.array_equal(jax.random.key_data(loaded["keys"]),
                            jax.random.key_data(model["keys"])))
    and bool(np.array_equal(loaded["n"], model["n"])),
}))
"""


def test_load_keeps_template_shardings(tmp_path):
    """Loaded arrays (PRNG keys included) get the shardings of the template's arrays,
    on 4 simulated CPU devices (a fresh process: the device count is fixed at
    start). The same calls run here first, on one device, so that a mutation
    run, which picks the tests that call a function in its own process, runs
    this one for the placement code too."""
    import subprocess
    import sys

    one = {"w": ep.Param(jnp.arange(2.0)), "keys": jax.random.split(jax.random.key(0))}
    save(tmp_path / "one.ckpt", one)
    assert_bit_equal(load(tmp_path / "one.ckpt", one), one)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, "-c", _SHARDED, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {"devices": 4, "w": True, "keys": True, "n": True, "equal": True}


# --- data already lost, host copies, permissions and links -------------------------


def test_save_refuses_converted_fixed_storage(path):
    """A blanket cast destroys a Fixed's storage (its bits become a float): saving
    it is refused, naming the path and the fix, and nothing is written."""
    model = {
        "a": ep.Param(2.0, prior=ep.LogNormal(1.0, 0.5)),
        "x": ep.Fixed(jnp.arange(3.0)),
    }
    cast = jax.tree.map(lambda x: x.astype(jnp.float32), model)
    before = raw_leaves(cast)
    with pytest.raises(
        ValueError, match=r"Cannot save .*`\['a'\].prior.mean` .*ep.partition"
    ):
        save(path, cast)
    assert not path.exists() and os.listdir(path.parent) == []
    assert raw_leaves(cast) == before
    wrong = eqx.tree_at(lambda m: m["x"].stored, model, jnp.zeros(3, jnp.uint16))
    with pytest.raises(
        ValueError, match=r"Cannot save .*`\['x'\]` .*dtype uint16.*ep.set_value"
    ):
        save(path, wrong)
    assert os.listdir(path.parent) == []


def test_host_copy_round_trip(path):
    """`jax.device_get(model)` (NumPy leaves) saves and loads into the model on
    devices, and a model on devices loads into a host copy: NumPy and JAX arrays
    load into each other, and the template says which one comes back."""
    model = make_model(0)
    host = jax.device_get(model)
    save(path, host)
    loaded = load(path, make_model(1))
    assert_bit_equal(loaded, model)  # (leaf types included: JAX arrays again)
    save(path, model)
    back = load(path, jax.device_get(make_model(1)))
    assert_bit_equal(back, host)


def test_32_bit_file_in_x64_session(path):
    """A float32 checkpoint loaded with `jax_enable_x64` on: the advice (build the
    template with 64-bit mode off) is one that works, also at a prior's
    hyperparameter, where `shape=`/`dtype=` do not apply."""
    with jax.enable_x64(False):
        model = {
            "a": ep.Param(2.0, prior=ep.Normal(1.0, 0.5)),
            "x": ep.Fixed(jnp.arange(3.0)),
        }
        save(path, model)
    with jax.enable_x64(True):
        like64 = {"a": ep.Param(prior=ep.Normal(1.0, 0.5)), "x": ep.Fixed(shape=(3,))}
        with pytest.raises(ValueError, match=r"`\['a'\]`.*enable_x64\(False\)"):
            load(path, like64)
        half = {
            "a": ep.Param(prior=ep.Normal(1.0, 0.5), dtype=jnp.float32),
            "x": ep.Fixed(shape=(3,), dtype=jnp.float32),
        }
        with pytest.raises(
            ValueError, match=r"`\['a'\].prior.mean`.*enable_x64\(False\)"
        ) as info:
            load(path, half)
        assert "`shape=`" not in str(info.value)
        with jax.enable_x64(False):
            like = {"a": ep.Param(prior=ep.Normal(1.0, 0.5)), "x": ep.Fixed(shape=(3,))}
        loaded = load(path, like)
        assert loaded["a"].dtype == jnp.float32
        np.testing.assert_allclose(float(loaded["a"].value), 2.0, rtol=1e-6)
    assert_bit_equal(loaded, model)


def test_save_keeps_permissions(path):
    """Saving over a private (0600) checkpoint keeps it private."""
    save(path, {"a": jnp.zeros(3)})
    os.chmod(path, 0o600)
    save(path, {"a": jnp.ones(3)})
    assert os.stat(path).st_mode & 0o777 == 0o600
    np.testing.assert_array_equal(load(path, {"a": jnp.zeros(3)})["a"], jnp.ones(3))
    os.chmod(path, 0o640)
    save(path, {"a": jnp.zeros(3)})
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_save_through_symlink(tmp_path):
    """Saving to a symbolic link writes the file it points to and keeps the link."""
    target = tmp_path / "real" / "model.ckpt"
    target.parent.mkdir()
    link = tmp_path / "latest.ckpt"
    save(target, {"a": jnp.zeros(3)})
    link.symlink_to(target)
    save(link, {"a": jnp.ones(3)})
    assert link.is_symlink() and os.readlink(link) == str(target)
    np.testing.assert_array_equal(load(target, {"a": jnp.zeros(3)})["a"], jnp.ones(3))
    assert sorted(os.listdir(tmp_path)) == ["latest.ckpt", "real"]
    assert os.listdir(target.parent) == ["model.ckpt"]


# --- the header, record by record -------------------------------------------------


def _header(path):
    """The JSON header of the checkpoint at `path`, as bytes and parsed."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[18:26], "little")
    text = raw[26 : 26 + size]
    return text, json.loads(text)


def _records(path):
    return {r["path"]: r for r in _header(path)[1]["leaves"]}


class _Pair:
    """A custom pytree node registered without keys (`FlattenedIndexKey` paths)."""

    def __init__(self, a, b):
        self.a, self.b = a, b


jax.tree_util.register_pytree_node(
    _Pair, lambda p: ((p.a, p.b), None), lambda _, c: _Pair(*c)
)


class _Keyed:
    """A custom pytree node whose key is a plain string (not a JAX key type)."""

    def __init__(self, a):
        self.a = a


jax.tree_util.register_pytree_with_keys(
    _Keyed, lambda k: ((("slot", k.a),), None), lambda _, c: _Keyed(*c)
)


class _Holder(eqx.Module):
    """A user module with a field that happens to be called `stored`."""

    stored: jax.Array
    inner: dict


def test_custom_nodes_holding_subtrees(path):
    """Custom pytree nodes (keys JAX cannot look up by itself) whose children are
    subtrees, not arrays: the arrays under them save with their whole paths and
    load back bit for bit."""
    model = {
        "p": _Pair(
            {"x": jnp.arange(3.0, dtype=jnp.float32)},
            [ep.Param(1.5, prior=ep.LogNormal(1.0, 1.0), dtype=jnp.float32)],
        ),
        "k": _Keyed(_Pair(jnp.ones(2, jnp.int32), {"f": ep.Fixed(jnp.zeros(2))})),
    }
    save(path, model)
    assert sorted(_records(path)) == [
        "['k']['slot'][0]",
        "['k']['slot'][1]['f'].stored",
        "['p'][0]['x']",
        "['p'][1][0].latent",
        "['p'][1][0].prior.mean.stored",
        "['p'][1][0].prior.sigma.stored",
    ]
    loaded = load(path, model)
    assert_bit_equal(loaded, model)
    assert isinstance(loaded["p"].b[0], ep.Param) and loaded["p"].b[0].value == 1.5


def test_header_is_compact_json_with_writer(path):
    """The header is compact JSON (no spaces) with the writer's version and one
    record per array leaf, and nothing else."""
    import importlib.metadata

    save(path, {"a b": jnp.zeros(2, jnp.float32), "c": 1.5})
    text, header = _header(path)
    assert set(header) == {"writer", "leaves"}
    assert header["writer"] == "eqxpurify " + importlib.metadata.version("eqxpurify")
    assert text == json.dumps(header, separators=(",", ":")).encode("utf-8")
    assert b", " not in text and b'": ' not in text
    assert [r["path"] for r in header["leaves"]] == ["['a b']", "['c']"]


def test_header_records_of_every_leaf_kind(path):
    """Each kind of leaf has the documented record: path and steps as written,
    the Module class per step, the leaf's type, shape and dtype, the holding
    wrapper's, and what is stored (ml_dtypes as unsigned integers of their width,
    keys as their uint32 key data, Python numbers as NumPy's 64-bit types)."""
    model = {
        "p": _Pair(jnp.zeros(1, jnp.float32), np.ones(2, np.float32)),
        "kk": _Keyed(jnp.zeros(1, jnp.float32)),
        "m": _Holder(jnp.zeros(2, jnp.int32), {"q": ep.Param(1.5, dtype=jnp.float32)}),
        "s": (True, 3, 2.5, 1 - 2j),
        "k": jax.random.key(0),
        "bf": jnp.ones(2, jnp.bfloat16),
        "ns": np.float32(2.0),
        "fb": ep.Fixed(jnp.array([True, False])),
        "fc": ep.Fixed(jnp.array([1 + 1j], jnp.complex64)),
        "fk": ep.Fixed(jax.random.split(jax.random.key(0), 2)),
        "f": jnp.tanh,  # not data: no record
    }
    save(path, model)
    records = _records(path)
    # (the Param's default prior's records are checked elsewhere)
    records = {k: v for k, v in records.items() if ".prior" not in k}
    plain = {"type": "array", "shape": [1], "dtype": "float32"}
    stored_f4 = {"stored_shape": [1], "stored_dtype": "<f4"}
    assert records == {
        "['bf']": {
            "path": "['bf']",
            "steps": ["['bf']"],
            "nodes": [""],
            "type": "array",
            "shape": [2],
            "dtype": "bfloat16",
            "stored_shape": [2],
            "stored_dtype": "<u2",
        },
        "['fb'].stored": {
            "path": "['fb'].stored",
            "steps": ["['fb']", ".stored"],
            "nodes": ["", "Fixed"],
            "type": "array",
            "wrapper": {"class": "Fixed", "shape": [2], "dtype": "bool"},
            "shape": [2],
            "dtype": "bool",
            "stored_shape": [2],
            "stored_dtype": "|b1",
        },
        # complex64 data is stored as pairs of 32-bit words
        "['fc'].stored": {
            "path": "['fc'].stored",
            "steps": ["['fc']", ".stored"],
            "nodes": ["", "Fixed"],
            "type": "array",
            "wrapper": {"class": "Fixed", "shape": [1], "dtype": "complex64"},
            "shape": [1, 2],
            "dtype": "uint32",
            "stored_shape": [1, 2],
            "stored_dtype": "<u4",
        },
        "['fk'].stored": {
            "path": "['fk'].stored",
            "steps": ["['fk']", ".stored"],
            "nodes": ["", "Fixed"],
            "type": "key",
            "wrapper": {"class": "Fixed", "shape": [2], "dtype": "key<fry>"},
            "shape": [2],
            "dtype": "key<fry>",
            "impl": "threefry2x32",
            "stored_shape": [2, 2],
            "stored_dtype": "<u4",
        },
        "['k']": {
            "path": "['k']",
            "steps": ["['k']"],
            "nodes": [""],
            "type": "key",
            "shape": [],
            "dtype": "key<fry>",
            "impl": "threefry2x32",
            "stored_shape": [2],
            "stored_dtype": "<u4",
        },
        "['kk']['slot']": {
            "path": "['kk']['slot']",
            "steps": ["['kk']", "['slot']"],
            "nodes": ["", ""],
            **plain,
            **stored_f4,
        },
        "['m'].stored": {
            "path": "['m'].stored",
            "steps": ["['m']", ".stored"],
            "nodes": ["", "_Holder"],
            "type": "array",
            "shape": [2],
            "dtype": "int32",
            "stored_shape": [2],
            "stored_dtype": "<i4",
        },
        "['m'].inner['q'].latent": {
            "path": "['m'].inner['q'].latent",
            "steps": ["['m']", ".inner", "['q']", ".latent"],
            "nodes": ["", "_Holder", "", "Param"],
            "type": "array",
            "wrapper": {"class": "Param", "shape": [], "dtype": "float32"},
            "shape": [],
            "dtype": "float32",
            "stored_shape": [],
            "stored_dtype": "<f4",
        },
        "['ns']": {
            "path": "['ns']",
            "steps": ["['ns']"],
            "nodes": [""],
            "type": "numpy",
            "shape": [],
            "dtype": "float32",
            "stored_shape": [],
            "stored_dtype": "<f4",
        },
        "['p'][0]": {
            "path": "['p'][0]",
            "steps": ["['p']", "[0]"],
            "nodes": ["", ""],
            **plain,
            **stored_f4,
        },
        "['p'][1]": {
            "path": "['p'][1]",
            "steps": ["['p']", "[1]"],
            "nodes": ["", ""],
            "type": "numpy",
            "shape": [2],
            "dtype": "float32",
            "stored_shape": [2],
            "stored_dtype": "<f4",
        },
        **{
            f"['s'][{i}]": {
                "path": f"['s'][{i}]",
                "steps": ["['s']", f"[{i}]"],
                "nodes": ["", ""],
                "type": kind,
                "shape": [],
                "dtype": kind,
                "stored_shape": [],
                "stored_dtype": stored,
            }
            for i, (kind, stored) in enumerate(
                [("bool", "|b1"), ("int", "<i8"), ("float", "<f8"), ("complex", "<c16")]
            )
        },
    }
    loaded = load(path, model)
    assert_bit_equal(loaded, model)
    assert loaded["f"] is jnp.tanh


def test_header_of_root_leaf_and_root_param(path):
    """A model that is one array has the path `<model>` (no steps); a model that
    is one Param records the Param as the holder of its latent."""
    save(path, jnp.arange(3, dtype=jnp.int32))
    assert _header(path)[1]["leaves"] == [
        {
            "path": "<model>",
            "steps": [],
            "nodes": [],
            "type": "array",
            "shape": [3],
            "dtype": "int32",
            "stored_shape": [3],
            "stored_dtype": "<i4",
        }
    ]
    loaded = load(path, jnp.zeros(3, jnp.int32))
    np.testing.assert_array_equal(loaded, [0, 1, 2])
    save(path, ep.Param(1.5, prior=ep.Normal(0.0, 1.0), dtype=jnp.float32))
    records = _header(path)[1]["leaves"]
    assert [r["path"] for r in records] == [
        "latent",
        "prior.mean.stored",
        "prior.sigma.stored",
    ]
    assert records[0]["steps"] == [".latent"]
    assert records[0]["nodes"] == ["Param"]
    assert records[0]["wrapper"] == {"class": "Param", "shape": [], "dtype": "float32"}
    assert records[1]["steps"] == [".prior", ".mean", ".stored"]
    assert records[1]["nodes"] == ["Param", "Normal", "Fixed"]
    default = jnp.dtype(DEFAULT_FLOAT).name  # the prior's Python floats
    assert records[2]["wrapper"] == {"class": "Fixed", "shape": [], "dtype": default}
    loaded = load(path, ep.Param(prior=ep.Normal(3.0, 4.0), dtype=jnp.float32))
    assert float(loaded.value) == 1.5
    assert float(loaded.prior.mean.value) == 0.0
    assert float(loaded.prior.sigma.value) == 1.0


def test_header_paths_of_siblings(path):
    """Leaves that share part of their path with the previous leaf get their own
    path, steps and classes (the walk down the tree is shared, not the result)."""
    model = {
        "a": {"x": jnp.zeros(1), "y": [jnp.zeros(1), jnp.zeros(2)]},
        "b": {"x": jnp.zeros(3), "y": [_Holder(jnp.zeros(1), {})]},
        "c": ep.Param(jnp.zeros(2, jnp.float32)),
    }
    save(path, model)
    records = _header(path)[1]["leaves"]
    assert [(r["path"], r["steps"], r["nodes"], r["shape"]) for r in records] == [
        ("['a']['x']", ["['a']", "['x']"], ["", ""], [1]),
        ("['a']['y'][0]", ["['a']", "['y']", "[0]"], ["", "", ""], [1]),
        ("['a']['y'][1]", ["['a']", "['y']", "[1]"], ["", "", ""], [2]),
        ("['b']['x']", ["['b']", "['x']"], ["", ""], [3]),
        (
            "['b']['y'][0].stored",
            ["['b']", "['y']", "[0]", ".stored"],
            ["", "", "", "_Holder"],
            [1],
        ),
        ("['c'].latent", ["['c']", ".latent"], ["", "Param"], [2]),
        (  # the default prior, Normal(0, 1)
            "['c'].prior.mean.stored",
            ["['c']", ".prior", ".mean", ".stored"],
            ["", "Param", "Normal", "Fixed"],
            [],
        ),
        (
            "['c'].prior.sigma.stored",
            ["['c']", ".prior", ".sigma", ".stored"],
            ["", "Param", "Normal", "Fixed"],
            [],
        ),
    ]
    assert ["wrapper" in r for r in records] == [False] * 5 + [True] * 3
    assert_bit_equal(load(path, jax.tree.map(lambda x: x + 1, model)), model)


def test_template_records():
    """A template's records (what `load` compares) mark abstract leaves and hold
    nothing about storage; a concrete leaf's record is not marked abstract."""
    from eqxpurify._save_header import array_leaves, describe

    like = {"a": jax.ShapeDtypeStruct((2,), jnp.float32), "k": jax.random.key(0)}
    leaves, all_leaves, _ = array_leaves(like)
    assert len(all_leaves) == 2
    records = [describe(leaf, saving=False) for leaf in leaves]
    assert records == [
        {
            "path": "['a']",
            "steps": ["['a']"],
            "nodes": [""],
            "type": "array",
            "abstract": True,
            "shape": [2],
            "dtype": "float32",
        },
        {
            "path": "['k']",
            "steps": ["['k']"],
            "nodes": [""],
            "type": "key",
            "shape": [],
            "dtype": "key<fry>",
        },
    ]


# --- round trips of every kind of entry --------------------------------------------


PRIORS = [
    lambda: ep.Normal(0.5, 2.0),
    lambda: ep.LogNormal(1.0, 0.5),
    lambda: ep.Uniform(-1.0, 3.0),
    lambda: ep.HalfNormal(2.0),
    lambda: ep.Beta(2.0, 3.0),
]


@pytest.mark.parametrize("make_prior", PRIORS, ids=lambda f: type(f()).__name__)
def test_round_trip_params_of_priors(path, make_prior, float_dtype):
    """Params of several priors and dtypes load their values, latents and prior
    hyperparameters exactly, into a template with other values."""
    prior = make_prior()
    value = jnp.asarray([0.25, 0.75], float_dtype)
    model = {"p": ep.Param(value, prior=prior), "n": jnp.arange(2, dtype=jnp.int32)}
    like = {
        "p": ep.Param(shape=(2,), dtype=float_dtype, prior=prior),
        "n": jnp.ones(2, jnp.int32),
    }
    save(path, model)
    loaded = load(path, like)
    assert_bit_equal(loaded, model)
    assert loaded["p"].dtype == float_dtype
    np.testing.assert_allclose(
        np.asarray(loaded["p"].value, np.float64), [0.25, 0.75], rtol=1e-6
    )


@pytest.mark.parametrize(
    "dtype", [jnp.float16, jnp.bfloat16], ids=lambda d: jnp.dtype(d).name
)
def test_round_trip_half_precision_entries(path, dtype):
    """Half-precision Params and Fixed are stored as 16-bit words and load back
    bit for bit (values exactly representable, checked against literals)."""
    model = {
        "p": ep.Param(jnp.asarray([0.5, 2.0], dtype), prior=ep.LogNormal(1.0, 1.0)),
        "f": ep.Fixed(jnp.asarray([1.5, -3.0], dtype)),
        "a": jnp.asarray([0.25, -0.125], dtype),
        "n": np.asarray([4.0, 8.0], dtype),
    }
    save(path, model)
    records = _records(path)
    assert records["['a']"]["dtype"] == jnp.dtype(dtype).name
    # float16 is a NumPy type; bfloat16 (ml_dtypes) is stored as 16-bit words
    stored = "<f2" if dtype == jnp.float16 else "<u2"
    assert records["['a']"]["stored_dtype"] == stored
    assert records["['n']"]["stored_dtype"] == stored
    like = {
        "p": ep.Param(shape=(2,), dtype=dtype, prior=ep.LogNormal(1.0, 1.0)),
        "f": ep.Fixed(shape=(2,), dtype=dtype),
        "a": jnp.zeros(2, dtype),
        "n": np.zeros(2, dtype),
    }
    loaded = load(path, like)
    assert_bit_equal(loaded, model)
    np.testing.assert_array_equal(
        np.asarray(loaded["f"].value, np.float32), [1.5, -3.0]
    )
    np.testing.assert_array_equal(np.asarray(loaded["a"], np.float32), [0.25, -0.125])
    assert type(loaded["n"]) is np.ndarray and loaded["n"].dtype == dtype
    np.testing.assert_allclose(np.asarray(loaded["p"].value, np.float32), [0.5, 2.0])


def test_round_trip_fixed_of_every_kind(path):
    """Fixed of floats, ints, bools, complex numbers and keys load their values."""
    model = {
        "f": ep.Fixed(jnp.asarray([1.5, -2.0], jnp.float32)),
        "i": ep.Fixed(jnp.asarray([3, -4], jnp.int32)),
        "b": ep.Fixed(jnp.asarray([True, False])),
        "c": ep.Fixed(jnp.asarray([1 - 2j], jnp.complex64)),
        "k": ep.Fixed(jax.random.split(jax.random.key(5), 2)),
    }
    like = {
        "f": ep.Fixed(jnp.zeros(2, jnp.float32)),
        "i": ep.Fixed(jnp.zeros(2, jnp.int32)),
        "b": ep.Fixed(jnp.asarray([False, True])),
        "c": ep.Fixed(jnp.zeros(1, jnp.complex64)),
        "k": ep.Fixed(jax.random.split(jax.random.key(0), 2)),
    }
    save(path, model)
    loaded = load(path, like)
    assert_bit_equal(loaded, model)
    np.testing.assert_array_equal(loaded["f"].value, [1.5, -2.0])
    np.testing.assert_array_equal(loaded["i"].value, [3, -4])
    np.testing.assert_array_equal(loaded["b"].value, [True, False])
    np.testing.assert_array_equal(loaded["c"].value, [1 - 2j])
    np.testing.assert_array_equal(
        jax.random.key_data(loaded["k"].value),
        jax.random.key_data(jax.random.split(jax.random.key(5), 2)),
    )


def test_round_trip_python_numbers(path):
    """Python numbers load as the template's type with the saved value."""
    model = {"b": True, "i": -7, "f": 2.5, "c": 1.5 - 2j, "big": 2**40}
    save(path, model)
    loaded = load(path, {"b": False, "i": 0, "f": 0.0, "c": 0j, "big": 1})
    assert loaded == model
    assert [type(loaded[k]) for k in ("b", "i", "f", "c", "big")] == [
        bool,
        int,
        float,
        complex,
        int,
    ]


def test_round_trip_numpy_into_abstract_and_jax(path):
    """NumPy data loads as NumPy into an abstract template, and into a NumPy
    scalar as that scalar's type; JAX data into an abstract template is JAX."""
    model = {"n": np.asarray([1, 2, 3], np.int32), "g": np.float32(1.5)}
    save(path, model)
    out = load(path, {"n": jax.ShapeDtypeStruct((3,), np.int32), "g": np.float32(0)})
    assert type(out["n"]) is np.ndarray and type(out["g"]) is np.float32
    np.testing.assert_array_equal(out["n"], [1, 2, 3])
    assert out["g"] == 1.5
    out = load(path, {"n": jnp.zeros(3, jnp.int32), "g": np.float32(0)})
    assert isinstance(out["n"], jax.Array)
    np.testing.assert_array_equal(out["n"], [1, 2, 3])
    save(path, {"n": jnp.asarray([4, 5], jnp.int32)})
    out = load(path, {"n": jax.ShapeDtypeStruct((2,), jnp.int32)})
    assert isinstance(out["n"], jax.Array)
    np.testing.assert_array_equal(out["n"], [4, 5])


def test_round_trip_raw_bytes(path):
    """Unstructured NumPy void data of 4 and 8 bytes is saved as raw words."""
    four = np.frombuffer(bytes(range(8)), "V4")
    eight = np.frombuffer(bytes(range(8, 16)), "V8")
    save(path, {"a": four, "b": eight})
    records = _records(path)
    assert records["['a']"]["stored_dtype"] == "<u4"
    assert records["['b']"]["stored_dtype"] == "<u8"
    out = load(path, {"a": np.zeros(2, "V4"), "b": np.zeros(1, "V8")})
    assert out["a"].tobytes() == bytes(range(8))
    assert out["b"].tobytes() == bytes(range(8, 16))


def test_round_trip_hierarchical_shared_frozen(path, float_dtype):
    """Hierarchical Params, shared (named) Params, frozen Params and a module with
    an `ep.Intermediate` slot (no arrays) load exactly."""

    class Block(eqx.Module):
        w: ep.Param
        hidden: ep.Intermediate = ep.Intermediate()

    def build(mu, x, s):
        shared = ep.share(ep.Param(jnp.asarray(s, float_dtype)), "s")
        mean = ep.Param(jnp.asarray(mu, float_dtype), prior=ep.Normal(0.0, 1.0))
        return {
            "x": ep.Param(jnp.asarray(x, float_dtype), prior=ep.Normal(mean, 2.0)),
            "s1": shared,
            "s2": shared,
            "frozen": ep.Param(jnp.asarray(mu, float_dtype)),
            "block": Block(ep.Param(jnp.asarray([x, mu], float_dtype))),
        }

    model = ep.freeze(build(0.5, 1.5, 2.0), "['frozen']")
    like = ep.freeze(build(0.0, 0.0, 0.0), "['frozen']")
    assert ep.is_fixed(model["frozen"])
    save(path, model)
    paths = [r["path"] for r in _header(path)[1]["leaves"]]
    assert "['x'].prior.mean.latent" in paths
    assert "['block'].w.latent" in paths
    loaded = load(path, like)
    assert_bit_equal(loaded, model)
    assert float(loaded["x"].prior.mean.value) == 0.5
    assert float(loaded["x"].value) == 1.5
    assert float(loaded["s2"].value) == 2.0
    assert float(loaded["frozen"].value) == 0.5
    assert isinstance(loaded["block"].hidden, ep.Intermediate)


def test_abstract_fixed_with_abstract_prior(path):
    """An abstract Fixed whose prior holds an abstract Fixed, and a concrete Fixed
    whose prior holds one, are templates for the frozen hierarchical model."""
    mean = ep.Fixed(jnp.asarray(0.25, jnp.float32))
    model = ep.freeze(
        {"a": ep.Param(1.5, prior=ep.Normal(mean, 1.0), dtype=jnp.float32)}, "['a']"
    )
    assert ep.is_fixed(model["a"])
    save(path, model)
    abstract_mean = ep.Fixed(shape=(), dtype=jnp.float32)
    for like in (
        {
            "a": ep.Fixed(
                shape=(), dtype=jnp.float32, prior=ep.Normal(abstract_mean, 1.0)
            )
        },
        {
            "a": ep.Fixed(
                jnp.asarray(0.0, jnp.float32), prior=ep.Normal(abstract_mean, 1.0)
            )
        },
    ):
        loaded = load(path, like)
        assert_bit_equal(loaded, model)
        assert float(loaded["a"].value) == 1.5
        assert float(loaded["a"].prior.mean.value) == 0.25
        assert not loaded["a"].prior.mean.is_abstract


def test_abstract_fixed_keeps_its_name(path):
    """A named abstract Fixed in `like`, at the top and inside a prior, loads as
    the named Fixed that was saved: the loaded model has the saved model's
    structure, names included."""
    mean = ep.Fixed(jnp.asarray(0.25, jnp.float32), name="mu")
    model = {
        "grid": ep.Fixed(jnp.arange(3.0, dtype=jnp.float32), name="grid"),
        "a": ep.Param(1.5, prior=ep.Normal(mean, 1.0), dtype=jnp.float32),
    }
    save(path, model)
    like = {
        "grid": ep.Fixed(shape=(3,), dtype=jnp.float32, name="grid"),
        "a": ep.Param(
            prior=ep.Normal(ep.Fixed(shape=(), dtype=jnp.float32, name="mu"), 1.0),
            dtype=jnp.float32,
        ),
    }
    loaded = load(path, like)
    assert loaded["grid"].name == "grid"
    assert loaded["a"].prior.mean.name == "mu"
    assert jax.tree.structure(loaded) == jax.tree.structure(model)
    assert_bit_equal(loaded, model)
    # The same with an `eqx.filter_eval_shape` template of the model itself.
    loaded = load(path, eqx.filter_eval_shape(lambda: model))
    assert jax.tree.structure(loaded) == jax.tree.structure(model)


def test_user_field_named_stored(path):
    """A field called `stored` outside an `ep.Fixed` is plain data, not a Fixed's
    storage: it saves and loads at any dtype."""
    model = _Holder(jnp.asarray([1.0, 2.0], jnp.float32), {"n": jnp.arange(2)})
    save(path, model)
    loaded = load(path, _Holder(jnp.zeros(2, jnp.float32), {"n": jnp.zeros(2, int)}))
    np.testing.assert_array_equal(loaded.stored, [1.0, 2.0])
    assert_bit_equal(loaded, model)


# --- refusals, whole messages ----------------------------------------------------


def _whole(message):
    """An anchored regular expression for exactly `message`."""
    return "^" + re.escape(message) + "$"


def test_save_refuses_abstract_whole_message(path):
    model = {"a": jax.ShapeDtypeStruct((2,), jnp.float32)}
    raises_and_keeps(
        lambda: save(path, model),
        model,
        ValueError,
        match=_whole(
            "Cannot save the model: the array at `['a']` is abstract (a "
            "`jax.ShapeDtypeStruct`: a Param or Fixed with a shape but no value "
            "yet). Initialise it first, e.g. `ep.normal(model, key=key)`."
        ),
    )
    root = jax.ShapeDtypeStruct((2,), jnp.float32)
    raises_and_keeps(
        lambda: save(path, root), root, ValueError, "the array at `<model>` is abstract"
    )
    assert os.listdir(path.parent) == []


def test_tracer_refused_whole_messages(path):
    tail = (
        "the array at `['a']` is a JAX tracer (this was called inside `jax.jit`, "
        "`grad` or `vmap`). Call `ep.save`/`ep.load` outside transformed functions."
    )

    @jax.jit
    def saving(x):
        save(path, {"a": x})
        return x

    with pytest.raises(ValueError) as info:
        saving(jnp.zeros(2))
    # (JAX may append a note on its traceback filtering after a newline)
    assert str(info.value).split("\n")[0] == "Cannot save the model: " + tail
    assert os.listdir(path.parent) == []
    save(path, {"a": jnp.zeros(2)})

    @jax.jit
    def loading(x):
        return load(path, {"a": x})["a"]

    with pytest.raises(ValueError) as info:
        loading(jnp.zeros(2))
    assert str(info.value).split("\n")[0] == "Cannot load into `like`: " + tail


@pytest.mark.parametrize(
    "bad, shown",
    [
        (np.zeros(2, "V3"), "|V3"),
        (np.zeros(1, "V16"), "|V16"),
        (np.zeros(2, [("a", "<f4")]), "[('a', '<f4')]"),
        (np.array(["a"]), "<U1"),
    ],
    ids=["void3", "void16", "structured", "text"],
)
def test_save_refuses_non_numeric_whole_message(path, bad, shown):
    model = {"x": bad}
    raises_and_keeps(
        lambda: save(path, model),
        model,
        ValueError,
        match=_whole(
            f"Cannot save the model: the leaf at `['x']` ({bad!r:.60}) is not "
            f"numeric data (dtype {shown}). Store it as a static field "
            "(`eqx.field(static=True)`) or as an array."
        ),
    )
    assert os.listdir(path.parent) == []


def test_save_refuses_deleted_array(path):
    x = jnp.zeros(3)
    x.delete()
    with pytest.raises(ValueError) as info:
        save(path, {"a": jnp.ones(2), "b": x})
    assert str(info.value) == "Cannot save the model: " + str(
        deleted_error("['b']", "array")
    )
    assert str(info.value).startswith(
        "Cannot save the model: The array at `['b']` has been deleted: its buffer "
        "was donated"
    )
    assert os.listdir(path.parent) == []


def test_save_refuses_converted_fixed_whole_message(path):
    model = {"x": ep.Fixed(jnp.arange(3.0, dtype=jnp.float32))}
    wrong = eqx.tree_at(lambda m: m["x"].stored, model, jnp.zeros(3, jnp.uint16))
    info = raises_and_keeps(
        lambda: save(path, wrong),
        wrong,
        ValueError,
        "Cannot save the model: The Fixed at `['x']` stores",
    )
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert os.listdir(path.parent) == []


def test_load_dtype_that_cannot_be_made(path):
    """A float64 file loaded with 64-bit mode off into an abstract float64
    template (which cannot be made): the whole message, with the x64 hint."""
    with jax.enable_x64(True):
        save(path, {"w": jnp.asarray([1.0, 2.0], jnp.float64)})
    like = {"w": jax.ShapeDtypeStruct((2,), np.float64)}
    with jax.enable_x64(False):
        with pytest.raises(ValueError) as info:
            load(path, like)
    assert str(info.value) == (
        f"Cannot load `{path}`: the array at `['w']` was saved as float64 but loads "
        "as float32. The file holds 64-bit data: turn on `jax_enable_x64` "
        '(`jax.config.update("jax_enable_x64", True)`, or `with '
        "jax.enable_x64(True):`) before building `like` and loading."
    )
    with jax.enable_x64(True):
        out = load(path, like)
        assert out["w"].dtype == jnp.float64
        np.testing.assert_array_equal(out["w"], [1.0, 2.0])


# --- files whose data does not match their header ----------------------------------


def _rewrite(path, edit=None, extra=b""):
    """Rewrite a checkpoint (valid framing and checksum) with its records edited
    by `edit` and `extra` bytes appended to its payload."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[18:26], "little")
    header = json.loads(raw[26 : 26 + size])
    payload = raw[26 + size : -48]
    if edit is not None:
        edit(header["leaves"])
    write(
        path, json.dumps(header).encode("utf-8"), lambda out: out.write(payload + extra)
    )


def _corrupt_message(path):
    return _whole(
        f"Cannot load `{path}`: the file is corrupted (its data does not match its "
        "header). Save the model again or restore the file from a backup."
    )


def test_stored_dtype_not_numeric(path):
    model = {"a": jnp.zeros(2, jnp.float32)}
    save(path, model)

    def edit(records):
        records[0]["stored_dtype"] = "|O"

    _rewrite(path, edit)
    info = raises_and_keeps(
        lambda: load(path, model), model, ValueError, match=_corrupt_message(path)
    )
    assert type(info.value.__cause__) is ValueError
    assert str(info.value.__cause__) == "stored dtype object"


def test_stored_shape_differs_from_data(path):
    model = {"a": jnp.zeros(2, jnp.float32)}
    save(path, model)

    def edit(records):
        records[0]["stored_shape"] = [3]

    _rewrite(path, edit)
    info = raises_and_keeps(
        lambda: load(path, model), model, ValueError, match=_corrupt_message(path)
    )
    assert info.value.__cause__ is not None


def test_data_after_the_last_array(path):
    """More data than the header describes: corrupted, not silently ignored."""
    model = {"a": jnp.zeros(2, jnp.float32)}
    save(path, model)
    buffer = io.BytesIO()
    np.save(buffer, np.ones(2, np.float32))
    _rewrite(path, extra=buffer.getvalue())
    info = raises_and_keeps(
        lambda: load(path, model), model, ValueError, match=_corrupt_message(path)
    )
    assert info.value.__cause__ is None


def test_load_disk_error_is_raised_as_is(path, monkeypatch):
    """An `OSError` while reading the data (a failing disk) is raised itself, not
    Equinox's wrapper nor a 'corrupted' error; another failure is 'corrupted'."""
    model = {"a": jnp.zeros(2, jnp.float32)}
    save(path, model)

    def failing(*args, **kwargs):
        raise OSError(5, "Input/output error") from KeyError("sector 7")

    monkeypatch.setattr(np, "load", failing)
    info = raises_and_keeps(
        lambda: load(path, model), model, OSError, match="Input/output error"
    )
    assert type(info.value) is OSError
    assert info.value.__cause__ is None and info.value.__suppress_context__

    def broken(*args, **kwargs):
        raise ValueError("not a .npy array")

    monkeypatch.setattr(np, "load", broken)
    info = raises_and_keeps(
        lambda: load(path, model), model, ValueError, match=_corrupt_message(path)
    )
    assert info.value.__cause__ is not None
