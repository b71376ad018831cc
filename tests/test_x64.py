"""float64 and low-precision latents, end to end.

CI runs the whole suite twice, the second time with `EQXPURIFY_TEST_X64=1`
(conftest switches `jax_enable_x64` on). These tests check that the switch took
effect, and exercise a mixed float64/float32/bfloat16/float16 model in either
run (under `jax.enable_x64(True)` where float64 needs it).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import eqxpurify as ep

from .conftest import X64


class Mixed(eqx.Module):
    double: ep.Param
    single: ep.Param
    brain: ep.Param
    half: ep.Param
    x: ep.Fixed

    @ep.unwrapped
    def __call__(self) -> jax.Array:
        parts = [self.double, self.single, self.brain, self.half]
        total = sum(
            jnp.sum(jnp.ravel(p).astype(jnp.float64) * self.x[-p.size :]) for p in parts
        )
        return jnp.asarray(total)


def make_mixed() -> Mixed:
    return Mixed(
        double=ep.Param(shape=(3,), dtype=jnp.float64, prior=ep.LogNormal(3.0, 0.1)),
        single=ep.Param(shape=(2,), dtype=jnp.float32),
        brain=ep.Param(shape=(2, 2), dtype=jnp.bfloat16, prior=ep.Normal(1.0, 0.5)),
        half=ep.Param(shape=(), dtype=jnp.float16, prior=ep.Uniform(-1.0, 1.0)),
        x=ep.Fixed(jnp.linspace(0.0, 1.0, 4, dtype=jnp.float64)),
    )


DTYPES = {
    "double": jnp.float64,
    "single": jnp.float32,
    "brain": jnp.bfloat16,
    "half": jnp.float16,
}


def test_run_mode_matches_environment():
    expected = jnp.float64 if X64 else jnp.float32
    assert jnp.asarray(1.0).dtype == expected
    assert ep.Param(shape=()).dtype == expected
    assert ep.Normal(0.0, 1.0).mean.dtype == expected
    assert jax.config.read("jax_enable_x64") == X64


def test_mixed_precision_model_keeps_every_dtype():
    with jax.enable_x64(True):
        model = ep.normal(make_mixed(), key=jax.random.key(0))
        for name, dtype in DTYPES.items():
            param = getattr(model, name)
            assert param.latent.dtype == dtype
            assert param.value.dtype == dtype
        flat, unravel = ep.ravel(model)
        assert flat.dtype == jnp.float64 and flat.shape == (3 + 2 + 4 + 1,)
        back = unravel(flat)
        for name in DTYPES:
            a, b = getattr(back, name).latent, getattr(model, name).latent
            assert a.dtype == b.dtype
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
        assert ep.log_prior(model).dtype == jnp.float64


def test_float64_value_round_trip_is_precise():
    with jax.enable_x64(True):
        for prior in [ep.LogNormal(3.0, 0.1), ep.Normal(-2.0, 3.0), ep.Uniform(0, 5)]:
            value = jnp.asarray(2.5, jnp.float64)
            param = ep.Param(value, prior=prior)
            assert param.dtype == jnp.float64
            np.testing.assert_allclose(param.value, 2.5, rtol=1e-13)


@pytest.mark.slow
def test_gradients_and_updates_keep_latent_dtypes():
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        model = ep.normal(make_mixed(), key=jax.random.key(1))
        params, rest = ep.partition(model)
        grads = eqx.filter_grad(lambda p: ep.combine(p, rest)())(params)
        assert sorted(grads) == sorted(DTYPES)  # Fixed data gets no gradient
        for name, dtype in DTYPES.items():
            assert grads[name].dtype == dtype
        optim = optax.sgd(0.1)
        updates, _ = optim.update(grads, optim.init(params), params)
        new = ep.combine(eqx.apply_updates(params, updates), rest)
        for name, dtype in DTYPES.items():
            old, now = getattr(model, name).latent, getattr(new, name).latent
            assert now.dtype == dtype
            assert not np.array_equal(np.asarray(old), np.asarray(now))
        assert new.x.stored is model.x.stored
        assert new.x.stored.dtype == jnp.uint64  # float64 data, stored as its bits
        assert new.x.value.dtype == jnp.float64


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_latents_without_x64(dtype):
    # No float64 anywhere: a low-precision model works in a float32-only run.
    model = ep.normal(
        {"w": ep.Param(shape=(4,), dtype=dtype, prior=ep.LogNormal(2.0, 0.5))},
        key=jax.random.key(2),
    )
    assert model["w"].value.dtype == dtype
    assert bool(jnp.all(model["w"].value > 0))
    flat, unravel = ep.ravel(model)
    assert flat.dtype == jnp.float32  # the widest latent dtype, at least float32
    assert unravel(flat)["w"].latent.dtype == dtype
    value = jax.jit(lambda m: ep.unwrap(m)["w"])(model)
    assert value.dtype == dtype
