"""`ep.Param`: it keeps the dtype of its value, through a shape, a latent and the
split and back."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep

from .conftest import (
    X64,
)

FLOATS = ["bfloat16", "float16", "float32", "float64"]


def _priors():
    return {
        "default": None,
        "lognormal": ep.LogNormal(1.0, 0.5),
        "uniform": ep.Uniform(0.0, 2.0),
        "normal-array": ep.Normal(jnp.array([1.0, 2.0]), 1.0),
    }


@pytest.mark.slow
@pytest.mark.parametrize("prior", list(_priors()))
@pytest.mark.parametrize("source", ["jax", "numpy", "jax-scalar"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_param_keeps_the_dtype_of_its_value(dtype, source, prior):
    with jax.enable_x64(X64 or dtype == "float64"):
        prior_ = _priors()[prior]
        values = np.array([0.5, 1.25])
        if source == "jax":
            value = jnp.asarray(values, dtype)
        elif source == "numpy":
            value = values.astype(jnp.dtype(dtype))
        else:
            value = jnp.asarray(values, dtype)[1]
        p = ep.Param(value) if prior_ is None else ep.Param(value, prior=prior_)
        assert p.dtype == jnp.dtype(dtype)
        assert p.latent.dtype == jnp.dtype(dtype)
        assert p.value.dtype == jnp.dtype(dtype)
        if prior != "normal-array":  # (that prior's batch shape is (2,))
            assert p.shape == np.shape(value)
        tol = {"bfloat16": 2e-2, "float16": 2e-3}.get(dtype, 1e-6)
        np.testing.assert_allclose(
            np.asarray(p.value, np.float64), np.asarray(value, np.float64), rtol=tol
        )
        # Broadcast to a shape, and from a latent: the same dtype.
        q = ep.Param(value, shape=(3, 2)) if np.ndim(value) else ep.Param(value)
        assert q.dtype == jnp.dtype(dtype)
        r = ep.Param.from_latent(p.latent, prior=p.prior)
        assert r.dtype == jnp.dtype(dtype) and r.value.dtype == jnp.dtype(dtype)
        # Through the params-dict partition and back.
        params, rest = ep.partition({"p": p})
        assert params["['p']"].dtype == jnp.dtype(dtype)
        assert ep.combine(params, rest)["p"].dtype == jnp.dtype(dtype)


@pytest.mark.skipif(X64, reason="a Python int above int32 is an int64 under x64")
def test_large_python_int_value():
    p = ep.Param(2**31, prior=ep.Normal(0.0, 1e10))
    assert float(p.value) == 2.0**31
