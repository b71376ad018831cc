"""`ep.Fixed`: it keeps the dtype of its value, and refuses a value that overflows
the dtype asked for."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep

from .conftest import (
    X64,
    raises_and_keeps,
)

FLOATS = ["bfloat16", "float16", "float32", "float64"]


def _key():
    return jax.random.key(0)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", FLOATS)
def test_fixed_and_wrap_keep_the_dtype_of_their_values(dtype):
    with jax.enable_x64(X64 or dtype == "float64"):
        value = jnp.asarray([0.5, -1.25, 3.0], dtype)
        fixed = ep.Fixed(value)
        assert fixed.dtype == jnp.dtype(dtype) and fixed.value.dtype == value.dtype
        np.testing.assert_array_equal(fixed.value, value)
        linear = eqx.nn.Linear(2, 3, key=_key(), dtype=jnp.dtype(dtype))
        wrapped = ep.wrap(linear)
        assert wrapped.weight.dtype == jnp.dtype(dtype)
        assert ep.unwrap(wrapped).weight.dtype == jnp.dtype(dtype)


@pytest.mark.parametrize(
    "value, dtype",
    [(1e6, jnp.float16), (1e39, jnp.bfloat16), (np.float32(7e4), jnp.float16)],
    ids=["1e6-f16", "1e39-bf16", "np-7e4-f16"],
)
def test_fixed_constructor_overflow(value, dtype):
    raises_and_keeps(
        lambda: ep.Fixed(value, dtype=dtype),
        None,
        ValueError,
        match=r"overflows (float16|bfloat16)",
    )
