"""Fitted models round-trip through `eqx.tree_serialise_leaves`."""

import io

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import eqxpurify as ep
from eqxpurify import freeze, values, wrap

from .conftest import tree_allclose


class Model(eqx.Module):
    alpha: ep.Param
    offset: ep.Param
    bounded: ep.Param
    x_obs: ep.Fixed
    encoder: eqx.nn.Linear
    counts: jax.Array


def make_model(key, dtype=jnp.float32):
    """A model with Params, per-element priors, Fixed data and a wrapped layer."""
    model = Model(
        alpha=ep.Param(shape=(), dtype=dtype, prior=ep.LogNormal(3.0, 0.1)),
        offset=ep.Param(
            shape=(3,), dtype=dtype, prior=ep.Normal(jnp.arange(3.0), jnp.ones(3))
        ),
        bounded=ep.Param(
            shape=(2,),
            dtype=dtype,
            prior=ep.Uniform(jnp.array([-1.0, 0.0]), jnp.array([1.0, 5.0])),
        ),
        x_obs=ep.Fixed(jnp.linspace(0.0, 1.0, 5, dtype=dtype)),
        encoder=wrap(eqx.nn.Linear(2, 3, key=jax.random.key(0), dtype=dtype)),
        counts=jnp.arange(4),
    )
    return ep.normal(model, key=key)


def _round_trip(model, like):
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, model)
    buffer.seek(0)
    return eqx.tree_deserialise_leaves(buffer, like)


def test_round_trip_file(tmp_path, getkey, float_dtype):
    fitted = make_model(getkey(), float_dtype)
    # A "fitted" model: change the Fixed data and the priors' array hyperparameters
    # too, so the template differs from the saved model in every kind of leaf.
    fitted = eqx.tree_at(
        lambda m: (m.x_obs, m.offset.prior),
        fitted,
        (
            ep.Fixed(jnp.full(5, 9.0, float_dtype)),
            ep.Normal(jnp.ones(3), jnp.full(3, 2.0)),
        ),
    )
    path = tmp_path / "model.eqx"
    eqx.tree_serialise_leaves(path, fitted)
    like = make_model(getkey(), float_dtype)
    assert not tree_allclose(like, fitted)
    loaded = eqx.tree_deserialise_leaves(path, like)
    assert tree_allclose(loaded, fitted, rtol=0, atol=0)
    assert tree_allclose(values(loaded, ep.is_wrapper), values(fitted, ep.is_wrapper))
    x = jnp.ones(2, float_dtype)
    np.testing.assert_array_equal(
        ep.unwrap(loaded).encoder(x), ep.unwrap(fitted).encoder(x)
    )


def test_round_trip_into_abstract_templates(getkey):
    fitted = make_model(getkey())
    # `ep.shapes` (latents as ShapeDtypeStructs) and `eqx.filter_eval_shape` (every
    # array abstract) both serve as templates: nothing needs computing.
    assert tree_allclose(_round_trip(fitted, ep.shapes(fitted)), fitted, rtol=0, atol=0)
    like = eqx.filter_eval_shape(make_model, getkey())
    assert tree_allclose(_round_trip(fitted, like), fitted, rtol=0, atol=0)


def test_round_trip_frozen(getkey):
    """A Fixed made by `ep.freeze` keeps its prior, and `unfreeze` still works."""
    from eqxpurify import unfreeze

    fitted = freeze(make_model(getkey()), ["encoder", "bounded"])
    like = freeze(make_model(getkey()), ["encoder", "bounded"])
    loaded = _round_trip(fitted, like)
    assert tree_allclose(loaded, fitted, rtol=0, atol=0)
    back = unfreeze(loaded, "bounded")
    np.testing.assert_allclose(back.bounded.value, fitted.bounded.value, rtol=1e-6)


def test_round_trip_low_precision():
    dtype = jnp.bfloat16
    fitted = {
        "p": ep.Param(jnp.array([0.5, 2.0], dtype), prior=ep.LogNormal(1.0, 1.0)),
        "f": ep.Fixed(jnp.array([1.0, 3.0], dtype)),
    }
    assert fitted["p"].dtype == dtype
    loaded = _round_trip(fitted, ep.shapes(fitted))
    assert loaded["p"].dtype == dtype and loaded["f"].dtype == dtype
    assert tree_allclose(loaded, fitted, rtol=0, atol=0)


def test_fixed_data_round_trips_bit_for_bit():
    # Fixed floats are stored as their bits: signed zeros, NaN payloads,
    # infinities and subnormals come back exactly, at every float dtype.
    bits = np.array([0x80000000, 0x7FC00001, 0xFFC12345, 0x7F800000, 0x1], np.uint32)
    data = {
        "f32": ep.Fixed(jnp.asarray(bits.view(np.float32))),
        "bf16": ep.Fixed(jnp.asarray(np.array([-0.0, np.inf]), jnp.bfloat16)),
        "c64": ep.Fixed(jnp.array([1 - 2j, -0.0 + 0j], jnp.complex64)),
        "i8": ep.Fixed(jnp.array([-3, 7], jnp.int8)),
    }
    assert data["f32"].stored.dtype == jnp.uint32
    assert np.asarray(data["f32"].stored).tobytes() == bits.tobytes()
    like = jax.tree.map(jnp.zeros_like, data)  # same structure, other bits
    assert np.asarray(like["f32"].stored).tobytes() != bits.tobytes()
    loaded = _round_trip(data, like)
    for name, fixed in data.items():
        got = loaded[name]
        assert (got.dtype, got.shape) == (fixed.dtype, fixed.shape), name
        assert np.asarray(got.stored).tobytes() == np.asarray(fixed.stored).tobytes()
        assert np.asarray(got.value).tobytes() == np.asarray(fixed.value).tobytes()
