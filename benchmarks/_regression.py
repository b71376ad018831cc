"""The 5-parameter regression model and one optax step of it, in every framework.

After GenJAX's differentiable-programming notebook: inputs `x` scatter around
`x_mu ~ U(-3, 3)` and outputs follow `y ~ N(a x + b + c x^2, sigma)` with
`a ~ U(-4, 4)`, `b ~ U(-3, 3)`, `c ~ N(0, 1)`, `sigma ~ LogNormal(1, 0.5)`:
five scalar Params, 100 data points. The loss is the whitened negative log
posterior; one step is value-and-grad, `optax.adam` update and apply, jitted.

Each `build_*` returns a `Case` (see `_timing`): `run(k)` makes k chained steps,
as a training loop does, and returns the state to block on.
"""

import functools
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import ndtr

import eqxpurify as ep

from ._gp import lognormal_forward

N = 100
LR = 1e-2
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# (prior kind, hyperparameters) per Param, in alphabetical (= flattening) order
PRIORS = {
    "a": ("uniform", -4.0, 4.0),
    "b": ("uniform", -3.0, 3.0),
    "c": ("normal", 0.0, 1.0),
    "sigma": ("lognormal", 1.0, 0.5),
    "x_mu": ("uniform", -3.0, 3.0),
}


def uniform_forward(z: jax.Array, low: Any, high: Any) -> jax.Array:
    """The same formula as `ep.Uniform.forward`."""
    width = high - low
    return jnp.where(z < 0, low + width * ndtr(z), high - width * ndtr(-z))


def forward(kind: str, z: jax.Array, p: Any, q: Any) -> jax.Array:
    if kind == "uniform":
        return uniform_forward(z, p, q)
    if kind == "normal":
        return p + q * z
    return lognormal_forward(z, p, q)


def neg_log_lik(v: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    x_term = 0.5 * jnp.sum(jnp.square(x - v["x_mu"]))
    mean = v["a"] * x + v["b"] + v["c"] * jnp.square(x)
    resid = (y - mean) / v["sigma"]
    return x_term + jnp.sum(0.5 * jnp.square(resid) + jnp.log(v["sigma"]))


def neg_log_prior(latents: list[jax.Array]) -> jax.Array:
    return 0.5 * sum(jnp.sum(jnp.square(z)) for z in latents) + len(latents) * (
        HALF_LOG_2PI
    )


def data(seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 1.0, N).astype(np.float32)
    y = (0.7 * x - 1.2 + 0.1 * x**2 + 0.3 * rng.standard_normal(N)).astype(np.float32)
    return {"x": jnp.asarray(x), "y": jnp.asarray(y)}


OPT = optax.adam(LR)


def _chain(step: Callable, state: tuple) -> Callable[[int], Any]:
    """A `Case` running `state = step(*state)` k times."""
    box = [state]

    def run(k: int) -> Any:
        s = box[0]
        for _ in range(k):
            s = step(*s)
        box[0] = s
        return s

    return run


# --- hand-written JAX over a dict of arrays -----------------------------------


def ref_loss(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    v = {k: forward(PRIORS[k][0], z, *PRIORS[k][1:]) for k, z in params.items()}
    return neg_log_lik(v, x, y) + neg_log_prior(list(params.values()))


def _ref_step(params: dict, opt_state: Any, data_: dict) -> tuple:
    grads = jax.grad(ref_loss)(params, data_["x"], data_["y"])
    updates, opt_state = OPT.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def build_reference(d: dict) -> Callable[[int], Any]:
    """`jax.jit(step)(params, opt_state)` on a dict of arrays, data closed over."""
    params = {k: jnp.float32(0.0) for k in PRIORS}
    step = jax.jit(functools.partial(_ref_step, data_=d))
    return _chain(step, (params, OPT.init(params)))


# --- eqxpurify ----------------------------------------------------------------


def _prior(kind: str, p: float, q: float) -> ep.AbstractPrior:
    return {"uniform": ep.Uniform, "normal": ep.Normal, "lognormal": ep.LogNormal}[
        kind
    ](p, q)


class Regression(eqx.Module):
    a: ep.Param
    b: ep.Param
    c: ep.Param
    sigma: ep.Param
    x_mu: ep.Param
    x: ep.Fixed

    @ep.unwrapped
    def neg_log_lik(self, y: jax.Array) -> jax.Array:
        v = {k: getattr(self, k) for k in PRIORS}
        return neg_log_lik(v, self.x, y)


def ep_model(d: dict) -> Regression:
    abstract = Regression(
        **{k: ep.Param(prior=_prior(*spec)) for k, spec in PRIORS.items()},
        x=ep.Fixed(d["x"]),
    )
    return ep.zeros(abstract)


def ep_loss(model: Regression, y: jax.Array) -> jax.Array:
    return model.neg_log_lik(y) - ep.log_prior(model)


def _ep_step(params: Any, opt_state: Any, rest: Any, y: jax.Array) -> tuple:
    grads = jax.grad(lambda p: ep_loss(ep.combine(p, rest), y))(params)
    updates, opt_state = OPT.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def build_ep_partition_arg(d: dict) -> Callable[[int], Any]:
    """`params, rest = ep.partition(model)`; `jax.jit(step)(params, opt, rest, y)`."""
    params, rest = ep.partition(ep_model(d))
    step = jax.jit(_ep_step)

    def run(p: Any, o: Any, r: Any, y: Any) -> tuple:
        return (*step(p, o, r, y), r, y)

    return _chain(run, (params, OPT.init(params), rest, d["y"]))


def build_ep_partition_closed(d: dict) -> Callable[[int], Any]:
    """`rest` (and the data) closed over: `jax.jit(step)(params, opt)`."""
    params, rest = ep.partition(ep_model(d))
    step = jax.jit(functools.partial(_ep_step, rest=rest, y=d["y"]))
    return _chain(step, (params, OPT.init(params)))


def _flatten_step(latents: list, opt_state: Any, unflatten: Any, y: jax.Array) -> tuple:
    grads = jax.grad(lambda zs: ep_loss(unflatten(zs), y))(latents)
    updates, opt_state = OPT.update(grads, opt_state, latents)
    return optax.apply_updates(latents, updates), opt_state


def build_ep_flatten_closed(d: dict) -> Callable[[int], Any]:
    """The recommended step: `latents, unflatten = ep.flatten(model)`;
    `jax.jit(step)(latents, opt_state)`, `unflatten` and the data closed over."""
    latents, unflatten = ep.flatten(ep_model(d))
    step = jax.jit(functools.partial(_flatten_step, unflatten=unflatten, y=d["y"]))
    return _chain(step, (latents, OPT.init(latents)))


def hlo_reference(d: dict) -> tuple[Callable, tuple]:
    """The hand-written step and its arguments, for S4's HLO comparison."""
    params = {k: jnp.float32(0.0) for k in PRIORS}
    step = jax.jit(functools.partial(_ref_step, data_=d))
    return step, (params, OPT.init(params))


def hlo_flatten(d: dict) -> tuple[Callable, tuple]:
    """The recommended `ep.flatten` step and its arguments, for S4."""
    latents, unflatten = ep.flatten(ep_model(d))
    step = jax.jit(functools.partial(_flatten_step, unflatten=unflatten, y=d["y"]))
    return step, (latents, OPT.init(latents))


def build_ep_flatten_arg(d: dict) -> Callable[[int], Any]:
    """`jax.jit(step)(latents, opt, unflatten, y)`: the unflatten module (Fixed data
    and prior hyperparameters) passed as an argument."""
    latents, unflatten = ep.flatten(ep_model(d))
    step = jax.jit(_flatten_step)

    def run(z: Any, o: Any, u: Any, y: Any) -> tuple:
        return (*step(z, o, u, y), u, y)

    return _chain(run, (latents, OPT.init(latents), unflatten, d["y"]))


def _ravel_step(flat: jax.Array, opt_state: Any, unravel: Any, y: jax.Array) -> tuple:
    grads = jax.grad(lambda v: ep_loss(unravel(v), y))(flat)
    updates, opt_state = OPT.update(grads, opt_state, flat)
    return optax.apply_updates(flat, updates), opt_state


def build_ep_ravel_closed(d: dict) -> Callable[[int], Any]:
    """`flat, unravel = ep.ravel(model)`; `jax.jit(step)(flat, opt)`, unravel closed."""
    flat, unravel = ep.ravel(ep_model(d))
    step = jax.jit(functools.partial(_ravel_step, unravel=unravel, y=d["y"]))
    return _chain(step, (flat, OPT.init(flat)))


def build_ep_ravel_arg(d: dict) -> Callable[[int], Any]:
    """`jax.jit(step)(flat, opt, unravel, y)`: the unravel module passed as argument."""
    flat, unravel = ep.ravel(ep_model(d))
    step = jax.jit(_ravel_step)

    def run(f: Any, o: Any, u: Any, y: Any) -> tuple:
        return (*step(f, o, u, y), u, y)

    return _chain(run, (flat, OPT.init(flat), unravel, d["y"]))


def build_ep_filter_jit(d: dict) -> Callable[[int], Any]:
    """The whole eqxpurify model through `eqx.filter_jit`."""

    @eqx.filter_jit
    def step(model: Regression, opt_state: Any) -> tuple:
        params, rest = ep.partition(model)
        params, opt_state = _ep_step(params, opt_state, rest, d["y"])
        return ep.combine(params, rest), opt_state

    model = ep_model(d)
    return _chain(step, (model, OPT.init(ep.partition(model)[0])))


# --- jaxpurify ----------------------------------------------------------------


def _jp_model() -> Any:
    import jaxpurify as jp

    def model() -> jax.Array:  # jaxpurify returns arrays, not pytrees: stack them
        return jnp.stack(
            [
                forward(kind, jp.param(name=k), p, q)
                for k, (kind, p, q) in PRIORS.items()
            ]
        )

    purified = jp.purify(model)
    return lambda params: dict(zip(PRIORS, purified(params), strict=True))


def build_jaxpurify(d: dict) -> Callable[[int], Any]:
    purified = _jp_model()

    def loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
        return neg_log_lik(purified(params), x, y) + neg_log_prior(
            list(params.values())
        )

    @jax.jit
    def step(params: dict, opt_state: Any) -> tuple:
        grads = jax.grad(loss)(params, d["x"], d["y"])
        updates, opt_state = OPT.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    params = {k: jnp.float32(0.0) for k in PRIORS}
    return _chain(step, (params, OPT.init(params)))


def build_jaxpurify_eager(d: dict) -> Callable[[int], Any]:
    """jaxpurify's default: the purified model un-jitted (optax step eager too)."""
    purified = _jp_model()

    def loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
        return neg_log_lik(purified(params), x, y) + neg_log_prior(
            list(params.values())
        )

    def step(params: dict, opt_state: Any, data_: dict) -> tuple:
        grads = jax.grad(loss)(params, data_["x"], data_["y"])
        updates, opt_state = OPT.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, data_

    params = {k: jnp.float32(0.0) for k in PRIORS}
    return _chain(step, (params, OPT.init(params), d))


# --- paramax + equinox --------------------------------------------------------


class _Fwd(eqx.Module):
    """A prior transform as a module (paramax.Parameterize's `fn`), hashable."""

    kind: str = eqx.field(static=True)
    p: float = eqx.field(static=True)
    q: float = eqx.field(static=True)

    def __call__(self, z: jax.Array) -> jax.Array:
        return forward(self.kind, z, self.p, self.q)


class PxRegression(eqx.Module):
    a: Any
    b: Any
    c: Any
    sigma: Any
    x_mu: Any

    def latents(self) -> list[jax.Array]:
        return [getattr(self, k).args[0] for k in PRIORS]


def build_paramax(d: dict) -> Callable[[int], Any]:
    import paramax

    model = PxRegression(
        **{
            k: paramax.Parameterize(_Fwd(*spec), jnp.float32(0.0))
            for k, spec in PRIORS.items()
        }
    )

    def loss(model: PxRegression, x: jax.Array, y: jax.Array) -> jax.Array:
        v = paramax.unwrap(model)
        vals = {k: getattr(v, k) for k in PRIORS}
        return neg_log_lik(vals, x, y) + neg_log_prior(model.latents())

    @eqx.filter_jit
    def step(model: PxRegression, opt_state: Any) -> tuple:
        params, static = eqx.partition(
            model,
            eqx.is_inexact_array,
            is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable),
        )
        grads = eqx.filter_grad(lambda p: loss(eqx.combine(p, static), d["x"], d["y"]))(
            params
        )
        updates, opt_state = OPT.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state

    opt_state = OPT.init(eqx.filter(model, eqx.is_inexact_array))
    return _chain(step, (model, opt_state))


# --- Flax NNX -----------------------------------------------------------------


def build_nnx(d: dict) -> Callable[[int], Any]:
    from flax import nnx

    class NnxRegression(nnx.Module):
        def __init__(self) -> None:
            for k in PRIORS:
                setattr(self, k, nnx.Param(jnp.float32(0.0)))

        def loss(self, x: jax.Array, y: jax.Array) -> jax.Array:
            zs = {k: getattr(self, k)[...] for k in PRIORS}
            v = {k: forward(PRIORS[k][0], z, *PRIORS[k][1:]) for k, z in zs.items()}
            return neg_log_lik(v, x, y) + neg_log_prior(list(zs.values()))

    model = NnxRegression()
    optimizer = nnx.Optimizer(model, OPT, wrt=nnx.Param)

    @nnx.jit
    def step(model: Any, optimizer: Any) -> jax.Array:
        loss, grads = nnx.value_and_grad(lambda m: m.loss(d["x"], d["y"]))(model)
        optimizer.update(model, grads)
        return loss

    def run(k: int) -> Any:
        out = None
        for _ in range(k):
            out = step(model, optimizer)
        return out

    return run


BUILDERS: dict[str, Callable[[dict], Callable[[int], Any]]] = {
    "hand-written jax.jit": build_reference,
    "hand-written jax.jit (A/A copy)": build_reference,
    "eqxpurify: flatten (recommended)": build_ep_flatten_closed,
    "eqxpurify: flatten, unflatten as argument": build_ep_flatten_arg,
    "eqxpurify: ravel, unravel closed over (samplers, Hessians, scipy)": (
        build_ep_ravel_closed
    ),
    "eqxpurify: ravel, unravel as argument": build_ep_ravel_arg,
    "eqxpurify: partition, rest closed over": build_ep_partition_closed,
    "eqxpurify: partition, rest as argument": build_ep_partition_arg,
    "eqxpurify model, eqx.filter_jit": build_ep_filter_jit,
    "jaxpurify (jax.jit step)": build_jaxpurify,
    "paramax + eqx.filter_jit": build_paramax,
    "flax nnx.jit": build_nnx,
    "jaxpurify, un-jitted (its default)": build_jaxpurify_eager,
}
