"""Many leaves: L Params of shape (4,), each operation in every framework.

The model is L independent Params under one shared prior `Normal(0, 0.5)`; its loss
is `0.5 * sum((value - 1)^2)` plus the whitened prior. Every builder returns a dict
`{operation: fn}`, where `fn()` performs the operation once and returns what to
block on; an operation a framework does not have is left out.
"""

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

import eqxpurify as ep

SHAPE = (4,)
SCALE = 0.5
LR = 0.1

OPS = [
    "whitened init",
    "flatten + unflatten",
    "ravel + unravel",
    "partition + combine",
    "unwrap",
    "jitted step: first call (trace + compile)",
    "jitted step: per call",
]
COMPILED = OPS[-2:]
PYTHON_OPS = OPS[:-2]


def names(leaves: int) -> list[str]:
    return [f"p{i:05d}" for i in range(leaves)]  # sorted = index order


def _loss_of_values(values: list[jax.Array], latents: list[jax.Array]) -> jax.Array:
    fit = sum(jnp.sum(jnp.square(v - 1.0)) for v in values)
    prior = sum(jnp.sum(jnp.square(z)) for z in latents)
    return 0.5 * fit + 0.5 * prior


def _chain_case(step: Callable, state: Any) -> tuple[Callable, Callable]:
    """(first_call, per_call): one jitted step on `state`; repeated calls chain."""
    box = [state]

    def call() -> Any:
        box[0] = step(box[0])
        return box[0]

    return call, call


# --- hand-written JAX over a dict of arrays -----------------------------------


def reference(leaves: int, *, key: jax.Array, ravel: bool) -> dict[str, Callable]:
    keys = names(leaves)

    def init() -> dict[str, jax.Array]:
        subkeys = jax.random.split(key, leaves)
        return {k: jax.random.normal(subkeys[i], SHAPE) for i, k in enumerate(keys)}

    params = init()

    def unwrap() -> dict[str, jax.Array]:
        return {k: SCALE * z for k, z in params.items()}

    def loss(p: dict[str, jax.Array]) -> jax.Array:
        zs = list(p.values())
        return _loss_of_values([SCALE * z for z in zs], zs)

    @jax.jit
    def step(p: dict[str, jax.Array]) -> dict[str, jax.Array]:
        grads = jax.grad(loss)(p)
        return jax.tree.map(lambda z, g: z - LR * g, p, grads)

    def flatten_unflatten() -> dict[str, jax.Array]:
        leaves_, treedef = jax.tree.flatten(params)
        return jax.tree.unflatten(treedef, leaves_)

    ops = {
        "whitened init": init,
        "flatten + unflatten": flatten_unflatten,
        "unwrap": unwrap,
    }
    if ravel:

        def ravel_unravel() -> Any:
            flat, unravel = ravel_pytree(params)
            return unravel(flat)

        ops["ravel + unravel"] = ravel_unravel
    first, per = _chain_case(step, params)
    ops[COMPILED[0]] = first
    ops[COMPILED[1]] = per
    return ops


# --- eqxpurify ----------------------------------------------------------------


class Many(eqx.Module):
    params: list[ep.Param]


def ep_model(leaves: int) -> Many:
    prior = ep.Normal(0.0, SCALE)
    return Many([ep.Param(shape=SHAPE, prior=prior) for _ in range(leaves)])


def ep_loss(model: Many) -> jax.Array:
    values = ep.unwrap(model).params
    return _loss_of_values(values, [p.latent for p in model.params])


def eqxpurify(
    leaves: int, *, key: jax.Array, pattern: str, python_ops: bool = True
) -> dict[str, Callable]:
    """`pattern` is the jitted step's: "flatten" (the list of latents, `unflatten`
    closed over), "ravel" (a flat vector, `unravel` closed over) or "partition"
    (`params` argument, `rest` closed over). `python_ops=False` leaves out the
    Python-side operations (they do not depend on the pattern)."""
    abstract = ep_model(leaves)
    model = ep.normal(abstract, key=key)
    flat, unravel = ep.ravel(model)

    def ravel_unravel() -> Any:
        vec, unr = ep.ravel(model)
        return unr(vec)

    def flatten_unflatten() -> Any:
        zs, unf = ep.flatten(model)
        return unf(zs)

    def partition_combine() -> Any:
        return ep.combine(*ep.partition(model))

    ops: dict[str, Callable] = {}
    if python_ops:
        ops = {
            "whitened init": lambda: ep.normal(abstract, key=key),
            "flatten + unflatten": flatten_unflatten,
            "ravel + unravel": ravel_unravel,
            "partition + combine": partition_combine,
            "unwrap": lambda: ep.unwrap(model),
        }
    if pattern == "flatten":
        latents, unflatten = ep.flatten(model)

        @jax.jit
        def step(zs: list[jax.Array]) -> list[jax.Array]:
            grads = jax.grad(lambda u: ep_loss(unflatten(u)))(zs)
            return [z - LR * g for z, g in zip(zs, grads, strict=True)]

        state: Any = latents
    elif pattern == "ravel":

        @jax.jit
        def step(v: jax.Array) -> jax.Array:
            return v - LR * jax.grad(lambda u: ep_loss(unravel(u)))(v)

        state = flat
    else:
        params, rest = ep.partition(model)

        @jax.jit
        def step(p: Any) -> Any:
            grads = jax.grad(lambda q: ep_loss(ep.combine(q, rest)))(p)
            return jax.tree.map(lambda z, g: z - LR * g, p, grads)

        state = params
    first, per = _chain_case(step, state)
    ops[COMPILED[0]] = first
    ops[COMPILED[1]] = per
    return ops


# --- jaxpurify ----------------------------------------------------------------


def jaxpurify(leaves: int, *, key: jax.Array) -> dict[str, Callable]:
    import jaxpurify as jp

    keys = names(leaves)

    def model() -> list[jax.Array]:
        return [SCALE * jp.param(SHAPE, name=k) for k in keys]

    purified = jp.purify(model)
    params = purified.normal(key)

    def loss(p: dict[str, jax.Array]) -> jax.Array:
        return _loss_of_values(purified(p), [p[k] for k in keys])

    @jax.jit
    def step(p: dict[str, jax.Array]) -> dict[str, jax.Array]:
        grads = jax.grad(loss)(p)
        return jax.tree.map(lambda z, g: z - LR * g, p, grads)

    first, per = _chain_case(step, params)
    return {
        "whitened init": functools.partial(purified.normal, key),
        COMPILED[0]: first,
        COMPILED[1]: per,
    }


# --- peers' tree operations ---------------------------------------------------


class _Scaled(eqx.Module):
    def __call__(self, z: jax.Array) -> jax.Array:
        return SCALE * z


def paramax_(leaves: int, *, key: jax.Array) -> dict[str, Callable]:
    import paramax

    zs = jax.random.normal(key, (leaves, *SHAPE))
    model = Many([paramax.Parameterize(_Scaled(), zs[i]) for i in range(leaves)])
    return {"unwrap": lambda: paramax.unwrap(model)}


def equinox_(leaves: int, *, key: jax.Array) -> dict[str, Callable]:
    zs = jax.random.normal(key, (leaves, *SHAPE))
    model = Many([zs[i] for i in range(leaves)])

    def partition_combine() -> Any:
        return eqx.combine(*eqx.partition(model, eqx.is_inexact_array))

    return {"partition + combine": partition_combine}


def nnx_(leaves: int, *, key: jax.Array) -> dict[str, Callable]:
    from flax import nnx

    class NnxMany(nnx.Module):
        def __init__(self, zs: jax.Array):
            self.params = nnx.List([nnx.Param(zs[i]) for i in range(zs.shape[0])])

    model = NnxMany(jax.random.normal(key, (leaves, *SHAPE)))

    def split_merge() -> Any:
        return nnx.merge(*nnx.split(model))

    return {"partition + combine": split_merge}
