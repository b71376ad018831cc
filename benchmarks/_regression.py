"""The 5-parameter regression model and one optax step of it, in every framework.

After GenJAX's differentiable-programming notebook: inputs `x` scatter around
`x_mu ~ U(-3, 3)` and outputs follow `y ~ N(a x + b + c x^2, sigma)` with
`a ~ U(-4, 4)`, `b ~ U(-3, 3)`, `c ~ N(0, 1)`, `sigma ~ LogNormal(1, 0.5)`:
five scalar Params, 100 data points. The loss is the whitened negative log
posterior; one step is value-and-grad, `optax.adam` update and apply, jitted, and
returns the new state and the loss (as a training loop that logs it does).

Each `build_*` returns a `Case` (see `_timing`): `run(k)` makes k chained steps,
as a training loop does, and returns the state to block on. The `hlo_*` functions
return a jitted step and its arguments, for the compiled-program comparisons.
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

from ._gp import log_prior_latents, lognormal_forward

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


def data(seed: int = 0) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    x = rng.normal(1.0, 1.0, N).astype(np.float32)
    y = (0.7 * x - 1.2 + 0.1 * x**2 + 0.3 * rng.standard_normal(N)).astype(np.float32)
    return {"x": jnp.asarray(x), "y": jnp.asarray(y)}


OPT = optax.adam(LR)


def _chain(step: Callable, state: tuple) -> Callable[[int], Any]:
    """A `Case` running k steps. `step(*state)` returns `(params, opt_state, loss)`;
    the next state is the new `(params, opt_state)` followed by the rest of the old
    state (the arguments a step takes besides those, such as `rest` and `y`)."""
    box = [state]

    def run(k: int) -> Any:
        s = box[0]
        out = None
        for _ in range(k):
            out = step(*s)
            s = (out[0], out[1], *s[2:])
        box[0] = s
        return out

    return run


def _optax_step(loss_fn: Callable, params: Any, opt_state: Any) -> tuple:
    """The step every `jax.jit` row shares: value-and-grad, update, apply."""
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = OPT.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


# --- hand-written JAX over a dict of arrays -----------------------------------


def ref_loss(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    """The loss of the model written by hand, with the same maths as eqxpurify's
    (prior transforms, likelihood, `ep.log_prior`'s formula)."""
    v = {k: forward(PRIORS[k][0], z, *PRIORS[k][1:]) for k, z in params.items()}
    return neg_log_lik(v, x, y) - log_prior_latents(*params.values())


def hlo_reference(d: dict) -> tuple[Callable, tuple]:
    """`jax.jit(step)(params, opt_state)` over a dict of arrays, data closed over."""
    params = {k: jnp.zeros(()) for k in PRIORS}

    @jax.jit
    def step(params: dict, opt_state: Any) -> tuple:
        return _optax_step(lambda p: ref_loss(p, d["x"], d["y"]), params, opt_state)

    return step, (params, OPT.init(params))


def build_reference(d: dict) -> Callable[[int], Any]:
    return _chain(*hlo_reference(d))


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


def hlo_readme(d: dict) -> tuple[Callable, tuple]:
    """The README's training loop: `params, rest = ep.partition(model)`, a
    `jax.jit` step over `(params, opt_state)` with `rest` and the data closed over."""
    params, rest = ep.partition(ep_model(d))
    y = d["y"]

    @jax.jit
    def step(params: dict, opt_state: Any) -> tuple:
        loss, grads = jax.value_and_grad(lambda p: ep_loss(ep.combine(p, rest), y))(
            params
        )
        updates, opt_state = OPT.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step, (params, OPT.init(params))


def build_readme(d: dict) -> Callable[[int], Any]:
    return _chain(*hlo_readme(d))


def build_ep_partition_arg(d: dict) -> Callable[[int], Any]:
    """`jax.jit(step)(params, opt_state, rest, y)`: `rest` passed as an argument."""
    params, rest = ep.partition(ep_model(d))

    @jax.jit
    def step(params: dict, opt_state: Any, rest: ep.Rest, y: jax.Array) -> tuple:
        return _optax_step(lambda p: ep_loss(ep.combine(p, rest), y), params, opt_state)

    return _chain(step, (params, OPT.init(params), rest, d["y"]))


def _flatten_step(latents: list, opt_state: Any, unflatten: Any, y: jax.Array) -> tuple:
    return _optax_step(lambda zs: ep_loss(unflatten(zs), y), latents, opt_state)


def hlo_flatten(d: dict) -> tuple[Callable, tuple]:
    """`latents, unflatten = ep.flatten(model)`; `jax.jit(step)(latents,
    opt_state)`, `unflatten` and the data closed over."""
    latents, unflatten = ep.flatten(ep_model(d))
    step = jax.jit(functools.partial(_flatten_step, unflatten=unflatten, y=d["y"]))
    return step, (latents, OPT.init(latents))


def build_ep_flatten_closed(d: dict) -> Callable[[int], Any]:
    return _chain(*hlo_flatten(d))


def build_ep_flatten_arg(d: dict) -> Callable[[int], Any]:
    """`jax.jit(step)(latents, opt, unflatten, y)`: the unflatten module (Fixed data
    and prior hyperparameters) passed as an argument."""
    latents, unflatten = ep.flatten(ep_model(d))
    step = jax.jit(_flatten_step)
    return _chain(step, (latents, OPT.init(latents), unflatten, d["y"]))


def _ravel_step(flat: jax.Array, opt_state: Any, unravel: Any, y: jax.Array) -> tuple:
    return _optax_step(lambda v: ep_loss(unravel(v), y), flat, opt_state)


def build_ep_ravel_closed(d: dict) -> Callable[[int], Any]:
    """`flat, unravel = ep.ravel(model)`; `jax.jit(step)(flat, opt)`, unravel closed."""
    flat, unravel = ep.ravel(ep_model(d))
    step = jax.jit(functools.partial(_ravel_step, unravel=unravel, y=d["y"]))
    return _chain(step, (flat, OPT.init(flat)))


def build_ep_ravel_arg(d: dict) -> Callable[[int], Any]:
    """`jax.jit(step)(flat, opt, unravel, y)`: the unravel module passed as argument."""
    flat, unravel = ep.ravel(ep_model(d))
    step = jax.jit(_ravel_step)
    return _chain(step, (flat, OPT.init(flat), unravel, d["y"]))


def build_ep_filter_jit(d: dict) -> Callable[[int], Any]:
    """The whole eqxpurify model through `eqx.filter_jit`, partitioned inside."""
    y = d["y"]

    @eqx.filter_jit
    def step(model: Regression, opt_state: Any) -> tuple:
        params, rest = ep.partition(model)
        params, opt_state, loss = _optax_step(
            lambda p: ep_loss(ep.combine(p, rest), y), params, opt_state
        )
        return ep.combine(params, rest), opt_state, loss

    model = ep_model(d)
    return _chain(step, (model, OPT.init(ep.partition(model)[0])))


def _stock_equinox_step(loss_fn: Callable) -> Callable:
    """The stock Equinox loop: `eqx.filter_jit`, `eqx.filter_value_and_grad` of the
    whole model, optax on `eqx.filter(model, eqx.is_inexact_array)`,
    `eqx.apply_updates`."""

    @eqx.filter_jit
    def step(model: Any, opt_state: Any) -> tuple:
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        trainable = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = OPT.update(grads, opt_state, trainable)
        return eqx.apply_updates(model, updates), opt_state, loss

    return step


def build_ep_stock_equinox(d: dict) -> Callable[[int], Any]:
    """The stock Equinox loop run on the eqxpurify model (Fixed data is stored as
    bits, so `eqx.is_inexact_array` leaves it out)."""
    model = ep_model(d)
    step = _stock_equinox_step(functools.partial(ep_loss, y=d["y"]))
    return _chain(step, (model, OPT.init(eqx.filter(model, eqx.is_inexact_array))))


# --- plain Equinox ------------------------------------------------------------


class EqxRegression(eqx.Module):
    """The latents as plain arrays; the prior transforms are written in the loss
    (the data stay outside the model, or `eqx.is_inexact_array` would train it)."""

    a: jax.Array
    b: jax.Array
    c: jax.Array
    sigma: jax.Array
    x_mu: jax.Array


def _eqx_loss(model: EqxRegression, x: jax.Array, y: jax.Array) -> jax.Array:
    return ref_loss({k: getattr(model, k) for k in PRIORS}, x, y)


def _eqx_model() -> EqxRegression:
    return EqxRegression(**{k: jnp.zeros(()) for k in PRIORS})


def build_equinox_partition(d: dict) -> Callable[[int], Any]:
    """`params, static = eqx.partition(model, eqx.is_inexact_array)`; a `jax.jit`
    step over `(params, opt_state)` with `static` and the data closed over."""
    params, static = eqx.partition(_eqx_model(), eqx.is_inexact_array)

    @jax.jit
    def step(params: EqxRegression, opt_state: Any) -> tuple:
        return _optax_step(
            lambda p: _eqx_loss(eqx.combine(p, static), d["x"], d["y"]),
            params,
            opt_state,
        )

    return _chain(step, (params, OPT.init(params)))


def build_equinox_filter_jit(d: dict) -> Callable[[int], Any]:
    """The plain Equinox model through the stock loop (`eqx.filter_jit` step)."""
    model = _eqx_model()
    step = _stock_equinox_step(functools.partial(_eqx_loss, x=d["x"], y=d["y"]))
    return _chain(step, (model, OPT.init(eqx.filter(model, eqx.is_inexact_array))))


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


def _jp_loss(purified: Callable, d: dict) -> Callable:
    def loss(params: dict) -> jax.Array:
        values = purified(params)
        return neg_log_lik(values, d["x"], d["y"]) - log_prior_latents(*params.values())

    return loss


def build_jaxpurify(d: dict) -> Callable[[int], Any]:
    loss = _jp_loss(_jp_model(), d)
    step = jax.jit(functools.partial(_optax_step, loss))
    params = {k: jnp.zeros(()) for k in PRIORS}
    return _chain(step, (params, OPT.init(params)))


def build_jaxpurify_eager(d: dict) -> Callable[[int], Any]:
    """jaxpurify's default: the purified model un-jitted (optax step eager too)."""
    step = functools.partial(_optax_step, _jp_loss(_jp_model(), d))
    params = {k: jnp.zeros(()) for k in PRIORS}
    return _chain(step, (params, OPT.init(params)))


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
            k: paramax.Parameterize(_Fwd(*spec), jnp.zeros(()))
            for k, spec in PRIORS.items()
        }
    )

    def loss(model: PxRegression, x: jax.Array, y: jax.Array) -> jax.Array:
        v = paramax.unwrap(model)
        vals = {k: getattr(v, k) for k in PRIORS}
        return neg_log_lik(vals, x, y) - log_prior_latents(*model.latents())

    @eqx.filter_jit
    def step(model: PxRegression, opt_state: Any) -> tuple:
        params, static = eqx.partition(
            model,
            eqx.is_inexact_array,
            is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable),
        )
        value, grads = eqx.filter_value_and_grad(
            lambda p: loss(eqx.combine(p, static), d["x"], d["y"])
        )(params)
        updates, opt_state = OPT.update(grads, opt_state, params)
        return eqx.apply_updates(model, updates), opt_state, value

    opt_state = OPT.init(eqx.filter(model, eqx.is_inexact_array))
    return _chain(step, (model, opt_state))


# --- Flax NNX -----------------------------------------------------------------


def build_nnx(d: dict) -> Callable[[int], Any]:
    from flax import nnx

    class NnxRegression(nnx.Module):
        def __init__(self) -> None:
            for k in PRIORS:
                setattr(self, k, nnx.Param(jnp.zeros(())))

        def loss(self, x: jax.Array, y: jax.Array) -> jax.Array:
            return ref_loss({k: getattr(self, k)[...] for k in PRIORS}, x, y)

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


README = "eqxpurify (README loop): partition, jax.jit step, rest closed over"
STOCK = "stock Equinox loop (eqx.filter_jit, filter_value_and_grad) on eqxpurify model"

BUILDERS: dict[str, Callable[[dict], Callable[[int], Any]]] = {
    "hand-written jax.jit": build_reference,
    "hand-written jax.jit (A/A copy)": build_reference,
    README: build_readme,
    "equinox partition + jax.jit (plain arrays)": build_equinox_partition,
    "equinox eqx.filter_jit, whole model (plain arrays)": build_equinox_filter_jit,
    STOCK: build_ep_stock_equinox,
    "eqxpurify: partition, rest as argument": build_ep_partition_arg,
    "eqxpurify: flatten, unflatten closed over": build_ep_flatten_closed,
    "eqxpurify: flatten, unflatten as argument": build_ep_flatten_arg,
    "eqxpurify: ravel, unravel closed over (samplers, Hessians, scipy)": (
        build_ep_ravel_closed
    ),
    "eqxpurify: ravel, unravel as argument": build_ep_ravel_arg,
    "eqxpurify model, eqx.filter_jit, partition inside": build_ep_filter_jit,
    "jaxpurify (jax.jit step)": build_jaxpurify,
    "paramax + eqx.filter_jit": build_paramax,
    "flax nnx.jit": build_nnx,
    "jaxpurify, un-jitted (its default)": build_jaxpurify_eager,
}
