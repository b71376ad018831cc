"""Models that several test files share.

Kept out of `conftest.py`, which pytest imports before jaxtyping installs its
import hook for the package.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import eqxpurify as ep


def two_params():
    return {"a": ep.Param(jnp.zeros(2)), "b": ep.Param(1.0)}


class Holder(eqx.Module):
    p: ep.Param


class Encoder(eqx.Module):
    layers: list[dict[str, ep.Param]]


class Model(eqx.Module):
    """Every kind of leaf: Params (nested in lists and dicts), a Fixed, integer
    data, a mutable NumPy array, a typed key and a static field."""

    alpha: ep.Param
    encoder: Encoder
    x_obs: ep.Fixed
    counts: jax.Array  # integer data
    grid: np.ndarray  # a mutable NumPy array: must survive every failed call
    key: jax.Array  # a typed PRNG key
    name: str = eqx.field(static=True)

    @ep.unwrapped
    def __call__(self) -> jax.Array:
        h = self.x_obs[:3] @ self.encoder.layers[0]["weight"]
        return self.alpha * jnp.sum(h + self.encoder.layers[1]["bias"])


def template() -> Model:
    """The model as declared: Params abstract, data given."""
    return Model(
        alpha=ep.Param(prior=ep.LogNormal(3.0, 0.1)),
        encoder=Encoder(
            [
                {"weight": ep.Param(shape=(3, 2))},
                {"bias": ep.Param(shape=(2,), prior=ep.Normal(0.0, 0.5))},
            ]
        ),
        x_obs=ep.Fixed(jnp.linspace(0.0, 1.0, 4)),
        counts=jnp.arange(3),
        # Integer data: a floating NumPy array would be trainable (see
        # `test_numpy_floating_leaves_train`).
        grid=np.arange(5),
        key=jax.random.key(0),
        name="model",
    )


def fitted() -> Model:
    return ep.normal(template(), key=jax.random.key(1))


class Enc(eqx.Module):
    weight: ep.Param
    bias: ep.Param


class Net(eqx.Module):
    alpha: ep.Param
    enc: Enc
    x: ep.Fixed
    table: dict


def net() -> Net:
    return Net(
        ep.Param(2.5, prior=ep.LogNormal(3.0, 0.1)),
        Enc(ep.Param(jnp.ones((2, 2))), ep.Param(jnp.zeros(2))),
        ep.Fixed(jnp.arange(3.0)),
        {"a": ep.Param(1.0), "b b": ep.Param(2.0)},
    )
