"""Many leaves: L Params of shape (4,), each operation in every framework.

The model is L independent Params under one shared prior `Normal(0, 0.5)`; its loss
is `0.5 * sum((value - 1)^2)` plus the whitened prior `0.5 * sum(latent^2)`, summed
leaf by leaf as a user's loss over a model of L arrays is. A training step is
value-and-grad, `optax.sgd` update and apply, jitted; it returns the new state and
the loss.

Every builder returns a dict `{operation: fn}`, where `fn()` performs the operation
once and returns what to block on; an operation a framework does not have is left
out. Jitted operations chain their state, as a training loop does.
"""

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

import eqxpurify as ep

SHAPE = (4,)
SCALE = 0.5
LR = 0.1
OPT = optax.sgd(LR)

INIT = "whitened init"
FLATTEN = "flatten + unflatten"
RAVEL = "ravel + unravel (eager, warm)"
RAVEL_COLD = "ravel + unravel (eager, first call)"
PARTITION = "partition + combine"
UNWRAP = "unwrap"
STEP_FIRST = "jitted step: first call (trace + compile)"
STEP = "jitted step: per call"
VG_FIRST = "jitted value-and-grad over a flat vector: first call"
VG = "jitted value-and-grad over a flat vector: per call"

OPS = [INIT, FLATTEN, RAVEL, RAVEL_COLD, PARTITION, UNWRAP]
OPS += [STEP_FIRST, STEP, VG_FIRST, VG]
# first-call operations, each timed once (after `jax.clear_caches()` when eager)
FIRST = {RAVEL_COLD: RAVEL, STEP_FIRST: STEP, VG_FIRST: VG}
COMPILED = {STEP, VG}

REF = "hand-written jax.jit (dict)"
AA = "hand-written jax.jit (dict, A/A copy)"
README = "eqxpurify (README loop: partition, jax.jit, rest closed over)"
FLAT_REF = "hand-written flat-vector loss (vectorised)"
FLAT_LEAFWISE = "hand-written flat-vector loss (leaf by leaf, static slices)"


def names(leaves: int) -> list[str]:
    return [f"p{i:05d}" for i in range(leaves)]  # sorted = index order


def loss_of(values: list[jax.Array], latents: list[jax.Array]) -> jax.Array:
    fit = sum(jnp.sum(jnp.square(v - 1.0)) for v in values)
    prior = sum(jnp.sum(jnp.square(z)) for z in latents)
    return 0.5 * fit + 0.5 * prior


def ref_loss(params: dict[str, jax.Array]) -> jax.Array:
    zs = list(params.values())
    return loss_of([0.0 + SCALE * z for z in zs], zs)


def flat_loss(v: jax.Array) -> jax.Array:
    """The same loss written over the whole vector at once."""
    return 0.5 * jnp.sum(jnp.square(SCALE * v - 1.0)) + 0.5 * jnp.sum(jnp.square(v))


def _optax_step(loss_fn: Callable, params: Any, opt_state: Any) -> tuple:
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = OPT.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def stock_equinox_step(loss_fn: Callable) -> Callable:
    """The stock Equinox loop: `eqx.filter_jit`, `eqx.filter_value_and_grad` of the
    whole model, optax on `eqx.filter(model, eqx.is_inexact_array)`."""

    @eqx.filter_jit
    def step(model: Any, opt_state: Any) -> tuple:
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        trainable = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = OPT.update(grads, opt_state, trainable)
        return eqx.apply_updates(model, updates), opt_state, loss

    return step


def stepper(step: Callable, params: Any, opt_state: Any = None) -> Callable:
    """`fn()` making one step on the current state and keeping the new one."""
    box = [(params, OPT.init(params) if opt_state is None else opt_state)]

    def call() -> Any:
        out = step(*box[0])
        box[0] = out[:2]
        return out

    return call


def _steps(step: Callable, params: Any, opt_state: Any = None) -> dict[str, Callable]:
    call = stepper(step, params, opt_state)
    return {STEP_FIRST: call, STEP: call}


def _vg(loss_fn: Callable, vector: jax.Array) -> dict[str, Callable]:
    fn = jax.jit(jax.value_and_grad(loss_fn))
    call = lambda: fn(vector)  # noqa: E731
    return {VG_FIRST: call, VG: call}


# --- hand-written JAX over a dict of arrays -----------------------------------


def ref_params(leaves: int, key: jax.Array) -> dict[str, jax.Array]:
    subkeys = jax.random.split(key, leaves)
    return {
        k: jax.random.normal(subkeys[i], SHAPE) for i, k in enumerate(names(leaves))
    }


def reference(leaves: int, *, key: jax.Array, compiled: bool) -> dict[str, Callable]:
    params = ref_params(leaves, key)

    def flatten_unflatten() -> dict[str, jax.Array]:
        leaves_, treedef = jax.tree.flatten(params)
        return jax.tree.unflatten(treedef, leaves_)

    ops: dict[str, Callable] = {
        INIT: lambda: ref_params(leaves, key),
        FLATTEN: flatten_unflatten,
        UNWRAP: lambda: {k: 0.0 + SCALE * z for k, z in params.items()},
    }
    if compiled:
        ops |= _steps(jax.jit(lambda p, o: _optax_step(ref_loss, p, o)), params)
    return ops


def ravel_pytree_ops(
    leaves: int, *, key: jax.Array, compiled: bool
) -> dict[str, Callable]:
    """`jax.flatten_util.ravel_pytree` on the dict of latents."""
    params = ref_params(leaves, key)

    def ravel_unravel() -> Any:
        flat, unravel = ravel_pytree(params)
        return unravel(flat)

    ops: dict[str, Callable] = {RAVEL: ravel_unravel, RAVEL_COLD: ravel_unravel}
    if compiled:
        flat, unravel = ravel_pytree(params)
        ops |= _vg(lambda v: ref_loss(unravel(v)), flat)
    return ops


def flat_reference(
    leaves: int, *, key: jax.Array, leafwise: bool = False
) -> dict[str, Callable]:
    """A loss over one vector, written by hand: vectorised, or leaf by leaf (one
    static slice per leaf, the loss summed as `ref_loss` sums it)."""
    flat, _ = ravel_pytree(ref_params(leaves, key))
    if not leafwise:
        return _vg(flat_loss, flat)
    size = SHAPE[0]

    def leafwise_loss(v: jax.Array) -> jax.Array:
        zs = [v[i * size : (i + 1) * size] for i in range(leaves)]
        return loss_of([0.0 + SCALE * z for z in zs], zs)

    return _vg(leafwise_loss, flat)


# --- eqxpurify ----------------------------------------------------------------


class Many(eqx.Module):
    params: list[ep.Param]


def ep_model(leaves: int) -> Many:
    prior = ep.Normal(0.0, SCALE)
    return Many([ep.Param(shape=SHAPE, prior=prior) for _ in range(leaves)])


def ep_loss(model: Many) -> jax.Array:
    values = ep.unwrap(model).params
    return loss_of(values, [p.latent for p in model.params])


def eqxpurify(
    leaves: int, *, key: jax.Array, compiled: bool, vector: bool = True
) -> dict[str, Callable]:
    """The Python-side operations, the README loop's step and (`vector`) the loss
    over `ep.ravel`'s vector."""
    abstract = ep_model(leaves)
    model = ep.normal(abstract, key=key)

    def ravel_unravel() -> Any:
        vec, unr = ep.ravel(model)
        return unr(vec)

    def flatten_unflatten() -> Any:
        zs, unf = ep.flatten(model)
        return unf(zs)

    ops: dict[str, Callable] = {
        INIT: lambda: ep.normal(abstract, key=key),
        FLATTEN: flatten_unflatten,
        RAVEL: ravel_unravel,
        RAVEL_COLD: ravel_unravel,
        PARTITION: lambda: ep.combine(*ep.partition(model)),
        UNWRAP: lambda: ep.unwrap(model),
    }
    if compiled:
        params, rest = ep.partition(model)

        @jax.jit
        def step(params: dict, opt_state: Any) -> tuple:
            loss, grads = jax.value_and_grad(lambda p: ep_loss(ep.combine(p, rest)))(
                params
            )
            updates, opt_state = OPT.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        ops |= _steps(step, params)
    if compiled and vector:
        flat, unravel = ep.ravel(model)
        ops |= _vg(lambda v: ep_loss(unravel(v)), flat)
    return ops


def ep_steps(leaves: int, *, key: jax.Array, pattern: str) -> dict[str, Callable]:
    """The other eqxpurify steps: "stock" (the stock Equinox loop on the model),
    "flatten" (the list of latents, `unflatten` closed over) or "ravel" (one
    vector, `unravel` closed over)."""
    model = ep.normal(ep_model(leaves), key=key)
    if pattern == "stock":
        opt_state = OPT.init(eqx.filter(model, eqx.is_inexact_array))
        return _steps(stock_equinox_step(ep_loss), model, opt_state)
    if pattern == "flatten":
        latents, unflatten = ep.flatten(model)
        loss = lambda zs: ep_loss(unflatten(zs))  # noqa: E731
        return _steps(jax.jit(lambda p, o: _optax_step(loss, p, o)), latents)
    flat, unravel = ep.ravel(model)
    loss = lambda v: ep_loss(unravel(v))  # noqa: E731
    return _steps(jax.jit(lambda p, o: _optax_step(loss, p, o)), flat)


# --- plain Equinox ------------------------------------------------------------


class EqxMany(eqx.Module):
    params: list[jax.Array]


def eqx_loss(model: EqxMany) -> jax.Array:
    return loss_of([0.0 + SCALE * z for z in model.params], model.params)


def equinox_(
    leaves: int, *, key: jax.Array, compiled: bool, pattern: str = "partition"
) -> dict[str, Callable]:
    """A plain Equinox model of L raw arrays: `partition + combine`, and a step:
    "partition" (`eqx.partition(model, eqx.is_inexact_array)`, a `jax.jit` step
    with `static` closed over) or "filter_jit" (the stock loop, whole model)."""
    model = EqxMany(list(ref_params(leaves, key).values()))
    ops: dict[str, Callable] = {}
    if pattern == "partition":
        ops[PARTITION] = lambda: eqx.combine(
            *eqx.partition(model, eqx.is_inexact_array)
        )
    if not compiled:
        return ops
    if pattern == "partition":
        params, static = eqx.partition(model, eqx.is_inexact_array)
        loss = lambda p: eqx_loss(eqx.combine(p, static))  # noqa: E731
        return ops | _steps(jax.jit(lambda p, o: _optax_step(loss, p, o)), params)
    opt_state = OPT.init(eqx.filter(model, eqx.is_inexact_array))
    return ops | _steps(stock_equinox_step(eqx_loss), model, opt_state)


# --- jaxpurify ----------------------------------------------------------------


def jaxpurify(leaves: int, *, key: jax.Array, compiled: bool) -> dict[str, Callable]:
    import jaxpurify as jp

    keys = names(leaves)

    def model() -> list[jax.Array]:
        return [SCALE * jp.param(SHAPE, name=k) for k in keys]

    purified = jp.purify(model)
    params = purified.normal(key)

    def loss(p: dict[str, jax.Array]) -> jax.Array:
        return loss_of(purified(p), [p[k] for k in keys])

    ops: dict[str, Callable] = {INIT: lambda: purified.normal(key)}
    if compiled:
        ops |= _steps(jax.jit(lambda p, o: _optax_step(loss, p, o)), params)
    return ops


# --- peers' tree operations ---------------------------------------------------


class _Scaled(eqx.Module):
    def __call__(self, z: jax.Array) -> jax.Array:
        return SCALE * z


def paramax_(leaves: int, *, key: jax.Array, compiled: bool) -> dict[str, Callable]:
    import paramax

    zs = jax.random.normal(key, (leaves, *SHAPE))
    model = EqxMany([paramax.Parameterize(_Scaled(), zs[i]) for i in range(leaves)])
    return {UNWRAP: lambda: paramax.unwrap(model)}


def nnx_(leaves: int, *, key: jax.Array, compiled: bool) -> dict[str, Callable]:
    from flax import nnx

    class NnxMany(nnx.Module):
        def __init__(self, zs: jax.Array):
            self.params = nnx.List([nnx.Param(zs[i]) for i in range(zs.shape[0])])

    model = NnxMany(jax.random.normal(key, (leaves, *SHAPE)))
    return {PARTITION: lambda: nnx.merge(*nnx.split(model))}
