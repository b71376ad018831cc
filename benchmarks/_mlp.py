"""A small MLP regression, hand-written over a dict and with eqxpurify, for S4.

Weights have the prior `Normal(0, 1/sqrt(fan_in))` (so `ep.normal` is a LeCun
init) and biases `Normal(0, 1)`; the loss is the mean squared error on a fixed
batch plus the whitened prior. The hand-written version applies the same prior
transforms, so both can compile to the same program. `build_*` return a jitted
value-and-grad and its arguments; `step_*` a jitted optax (adam) training step
(value-and-grad, update, apply; returns the new state and the loss) and its
arguments.
"""

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import eqxpurify as ep

from ._gp import log_prior_latents

SIZES = (8, 64, 64, 1)
BATCH = 128


def data(seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
    y = np.sin(x.sum(axis=1, keepdims=True)).astype(np.float32)
    return {"x": jnp.asarray(x), "y": jnp.asarray(y)}


def _forward(layers: list[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
    for i, (bias, weight) in enumerate(layers):
        x = x @ weight + bias
        if i < len(layers) - 1:
            x = jnp.tanh(x)
    return x


# --- hand-written -------------------------------------------------------------


def ref_params(key: jax.Array) -> dict[str, dict[str, jax.Array]]:
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        key, kw, kb = jax.random.split(key, 3)
        params[f"layer{i}"] = {
            "bias": jax.random.normal(kb, (fan_out,)),
            "weight": jax.random.normal(kw, (fan_in, fan_out)),
        }
    return params


def ref_loss(params: dict, d: dict[str, jax.Array]) -> jax.Array:
    layers = []
    for i, fan_in in enumerate(SIZES[:-1]):
        p = params[f"layer{i}"]
        layers.append(
            (0.0 + 1.0 * p["bias"], 0.0 + (1 / math.sqrt(fan_in)) * p["weight"])
        )
    fit = jnp.mean(jnp.square(_forward(layers, d["x"]) - d["y"]))
    latents = [z for p in params.values() for z in (p["bias"], p["weight"])]
    return fit - log_prior_latents(*latents)


def build_reference(key: jax.Array, d: dict) -> tuple[Callable, tuple]:
    vg = jax.value_and_grad(ref_loss)
    return jax.jit(lambda p: vg(p, d)), (ref_params(key),)


# --- eqxpurify ----------------------------------------------------------------


class Linear(eqx.Module):
    bias: ep.Param
    weight: ep.Param

    def __init__(self, fan_in: int, fan_out: int):
        self.bias = ep.Param(shape=(fan_out,), prior=ep.Normal(0.0, 1.0))
        self.weight = ep.Param(
            shape=(fan_in, fan_out), prior=ep.Normal(0.0, 1 / math.sqrt(fan_in))
        )


class MLP(eqx.Module):
    layers: list[Linear]

    def __init__(self) -> None:
        self.layers = [Linear(i, o) for i, o in zip(SIZES[:-1], SIZES[1:], strict=True)]

    @ep.unwrapped
    def __call__(self, x: jax.Array) -> jax.Array:
        return _forward([(lay.bias, lay.weight) for lay in self.layers], x)


def ep_model(key: jax.Array) -> MLP:
    """The same latents as `ref_params(key)`."""
    model = MLP()
    params = ref_params(key)
    latents = [z for p in params.values() for z in (p["bias"], p["weight"])]
    flat = jnp.concatenate([z.ravel() for z in latents])
    return ep.ravel(ep.zeros(model))[1](flat)


def ep_loss(model: MLP, d: dict[str, jax.Array]) -> jax.Array:
    return jnp.mean(jnp.square(model(d["x"]) - d["y"])) - ep.log_prior(model)


def build_eqxpurify(key: jax.Array, d: dict) -> tuple[Callable, tuple]:
    params, rest = ep.partition(ep_model(key))
    vg = jax.value_and_grad(lambda p: ep_loss(ep.combine(p, rest), d))
    return jax.jit(vg), (params,)


def build_eqxpurify_flatten(key: jax.Array, d: dict) -> tuple[Callable, tuple]:
    latents, unflatten = ep.flatten(ep_model(key))
    vg = jax.value_and_grad(lambda zs: ep_loss(unflatten(zs), d))
    return jax.jit(vg), (latents,)


def build_eqxpurify_ravel(key: jax.Array, d: dict) -> tuple[Callable, tuple]:
    flat, unravel = ep.ravel(ep_model(key))
    return jax.jit(jax.value_and_grad(lambda v: ep_loss(unravel(v), d))), (flat,)


# --- one optax training step -------------------------------------------------

OPT = optax.adam(1e-3)


def _optax_step(loss_fn: Callable, params: Any, opt_state: Any) -> tuple:
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = OPT.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def step_reference(key: jax.Array, d: dict) -> tuple[Callable, tuple]:
    """The hand-written step: `jax.jit` over `(params, opt_state)`, a dict of
    arrays, the data closed over."""
    params = ref_params(key)

    @jax.jit
    def step(params: dict, opt_state: Any) -> tuple:
        return _optax_step(lambda p: ref_loss(p, d), params, opt_state)

    return step, (params, OPT.init(params))


def step_readme(key: jax.Array, d: dict) -> tuple[Callable, tuple]:
    """The README's loop: `params, rest = ep.partition(model)`, a `jax.jit` step
    over `(params, opt_state)` with `rest` and the data closed over."""
    params, rest = ep.partition(ep_model(key))

    @jax.jit
    def step(params: dict, opt_state: Any) -> tuple:
        loss, grads = jax.value_and_grad(lambda p: ep_loss(ep.combine(p, rest), d))(
            params
        )
        updates, opt_state = OPT.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step, (params, OPT.init(params))


def check_same_value(key: jax.Array) -> Any:
    """Both versions give the same loss (a guard against comparing different maths)."""
    d = data()
    f, a = build_reference(key, d)
    g, b = build_eqxpurify(key, d)
    return float(f(*a)[0]), float(g(*b)[0])
