"""`ep.Fixed`'s storage as unsigned bits: a model whose storage was cast to float
(by a blanket `astype`, or a solver given the model) is refused with the fix."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

import eqxpurify as ep

from .conftest import raises_and_keeps
from .models import fitted


def test_fixed_storage_converted_to_float():
    # What optimistix with `y0=model` or a blanket `astype` does to a model.
    def to_float(x: Any) -> Any:
        if eqx.is_array(x) and not jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jnp.asarray(x, jnp.float32)
        return x

    model = jax.tree.map(to_float, fitted())
    for call in (ep.unwrap, lambda m: m.x_obs.value):
        raises_and_keeps(
            lambda: call(model),
            model,
            ValueError,
            match=(
                r"Fixed.*stores float(32|64) data as uint(32|64), but its storage now "
                r"has dtype float32.*`params, rest = ep.partition\(model\)`"
            ),
        )
