"""The Gaussian-process field model (jaxpurify's README model), in every framework.

A white-noise latent field `xi` of size n is coloured by the power spectrum
`|k| ** alpha` and Hartley-transformed (`fft(.).real - fft(.).imag`), then read out
at fixed observation points `x_obs` by linear interpolation; `alpha` is minus a
log-normal(3.0, 0.1) variable. The loss is the whitened negative log posterior:
a Gaussian likelihood plus the standard-normal log density of every latent.

jaxpurify's README sets the k = 0 power to `inf ** alpha = 0`, whose gradient in
`alpha` is NaN; here k = 0 is replaced by 1 and its amplitude masked to 0, so the
value is the same and gradients are finite. Every implementation below shares the
same numerical code (`field`, `observe`, `neg_log_lik`, `lognormal_forward`, the
same form as `ep.LogNormal`), so their compiled programs can be compared op for op.

Each `build_*` returns `(fn, args)`: `fn(*args)` evaluates the jitted value and
gradient of the loss once. The data (`x_obs`, `y`) are closed over, as a hand-written
script does, except where a row's name says "as argument" or where a peer's idiom
passes them through its own jit (paramax's `static`, NNX's `Variable`).
"""

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import eqxpurify as ep

NOISE = 0.1
N_OBS = 32
ALPHA_MEAN, ALPHA_SIGMA = 3.0, 0.1
LOG_2PI_HALF = -0.5 * math.log(2 * math.pi)


def lognormal_forward(z: jax.Array, mean: Any, sigma: Any) -> jax.Array:
    """Log-normal of mean `mean` and sd `sigma`: the formula of `ep.LogNormal`."""
    var = jnp.log1p(jnp.square(sigma / mean))
    mu = jnp.log(mean) - 0.5 * var
    return jnp.exp(mu + jnp.sqrt(var) * z)


def field(xi: jax.Array, alpha: jax.Array) -> jax.Array:
    n = xi.shape[0]
    k = jnp.abs(jnp.fft.fftfreq(n)).astype(xi.dtype)
    k_safe = jnp.where(k == 0, jnp.ones_like(k), k)
    amp = jnp.where(k == 0, jnp.zeros_like(k), jnp.sqrt(k_safe**alpha))
    f = jnp.fft.fft(amp * xi)
    return f.real - f.imag


def observe(f: jax.Array, x_obs: jax.Array) -> jax.Array:
    x = jnp.linspace(0.0, 5.0, f.shape[0], dtype=f.dtype)
    return jnp.interp(x_obs, x, f)


def neg_log_lik(f_obs: jax.Array, y: jax.Array) -> jax.Array:
    return 0.5 * jnp.sum(jnp.square((f_obs - y) / NOISE))


def log_prior_latents(*latents: jax.Array) -> jax.Array:
    """Standard-normal log density of latents, written as `ep.log_prior` computes it."""
    count = sum(z.size for z in latents)
    total = sum(jnp.sum(jnp.square(z)) for z in latents)
    const = jnp.asarray(count * LOG_2PI_HALF, jnp.result_type(*latents))
    return -0.5 * total + const


def data(n: int, seed: int = 0) -> dict[str, Any]:
    """Observation points and synthetic data drawn from the model itself."""
    rng = np.random.default_rng(seed)
    x_obs = np.sort(rng.uniform(0.0, 5.0, N_OBS)).astype(np.float32)
    xi = rng.standard_normal(n).astype(np.float32)
    alpha = -lognormal_forward(jnp.float32(0.3), ALPHA_MEAN, ALPHA_SIGMA)
    f_obs = observe(field(jnp.asarray(xi), alpha), jnp.asarray(x_obs))
    y = np.asarray(f_obs) + NOISE * rng.standard_normal(N_OBS).astype(np.float32)
    init_xi = (0.5 * rng.standard_normal(n)).astype(np.float32)
    return {
        "x_obs": jnp.asarray(x_obs),
        "y": jnp.asarray(y, jnp.float32),
        "xi": jnp.asarray(init_xi),
        "z_alpha": jnp.float32(0.1),
    }


# --- hand-written JAX over a dict of arrays (the reference) -------------------


def ref_loss(params: dict[str, jax.Array], data_: dict[str, jax.Array]) -> jax.Array:
    alpha = -lognormal_forward(params["alpha"], ALPHA_MEAN, ALPHA_SIGMA)
    f_obs = observe(field(params["xi"], alpha), data_["x_obs"])
    return neg_log_lik(f_obs, data_["y"]) - log_prior_latents(
        params["xi"], params["alpha"]
    )


def _ref_inputs(d: dict[str, Any]) -> tuple[dict, dict]:
    # keyed like `ep.partition`'s dict (the latent of `alpha`), so that both
    # flatten in the same order
    params = {"alpha": d["z_alpha"], "xi": d["xi"]}
    return params, {"x_obs": d["x_obs"], "y": d["y"]}


def build_reference(d: dict[str, Any]) -> tuple[Callable, tuple]:
    """`jax.jit(jax.value_and_grad(loss))(params)`, data closed over."""
    params, data_ = _ref_inputs(d)
    vg = jax.value_and_grad(ref_loss)
    return jax.jit(lambda p: vg(p, data_)), (params,)


def build_reference_args(d: dict[str, Any]) -> tuple[Callable, tuple]:
    """The reference with the data passed as an argument."""
    params, data_ = _ref_inputs(d)
    return jax.jit(jax.value_and_grad(ref_loss)), (params, data_)


# --- eqxpurify ----------------------------------------------------------------


class GPField(eqx.Module):
    xi: ep.Param
    alpha: ep.Param
    x_obs: ep.Fixed

    @ep.unwrapped
    def __call__(self) -> jax.Array:
        return observe(field(self.xi, -self.alpha), self.x_obs)


def ep_model(d: dict[str, Any]) -> GPField:
    return GPField(
        xi=ep.Param.from_latent(d["xi"]),
        alpha=ep.Param.from_latent(
            d["z_alpha"], prior=ep.LogNormal(ALPHA_MEAN, ALPHA_SIGMA)
        ),
        x_obs=ep.Fixed(d["x_obs"]),
    )


def ep_loss(model: GPField, y: jax.Array) -> jax.Array:
    return neg_log_lik(model(), y) - ep.log_prior(model)


def _ep_loss_split(params: Any, rest: Any, y: jax.Array) -> jax.Array:
    return ep_loss(ep.combine(params, rest), y)


def build_eqxpurify(d: dict[str, Any]) -> tuple[Callable, tuple]:
    """The README's loop: `params, rest = ep.partition(model)`; a jitted
    value-and-grad over `params`, `rest` and the data closed over."""
    params, rest = ep.partition(ep_model(d))
    vg = jax.value_and_grad(_ep_loss_split)
    y = d["y"]
    return jax.jit(lambda p: vg(p, rest, y)), (params,)


def build_eqxpurify_flatten(d: dict[str, Any]) -> tuple[Callable, tuple]:
    """`latents, unflatten = ep.flatten(model)`; `unflatten` and the data closed
    over: the jitted value-and-grad takes the list of latents."""
    latents, unflatten = ep.flatten(ep_model(d))
    y = d["y"]
    vg = jax.value_and_grad(lambda zs: ep_loss(unflatten(zs), y))
    return jax.jit(vg), (latents,)


def build_eqxpurify_ravel(d: dict[str, Any]) -> tuple[Callable, tuple]:
    """`flat, unravel = ep.ravel(model)`; `unravel` and the data closed over."""
    flat, unravel = ep.ravel(ep_model(d))
    y = d["y"]
    return jax.jit(jax.value_and_grad(lambda v: ep_loss(unravel(v), y))), (flat,)


def build_eqxpurify_rest_arg(d: dict[str, Any]) -> tuple[Callable, tuple]:
    """`rest` (Fixed data and prior hyperparameters) and `y` passed as arguments."""
    params, rest = ep.partition(ep_model(d))
    return jax.jit(jax.value_and_grad(_ep_loss_split)), (params, rest, d["y"])


def build_eqxpurify_filter_jit(d: dict[str, Any]) -> tuple[Callable, tuple]:
    """The whole eqxpurify model through `eqx.filter_jit`."""

    @eqx.filter_jit
    def vg(model: GPField, y: jax.Array) -> Any:
        params, rest = ep.partition(model)
        return jax.value_and_grad(_ep_loss_split)(params, rest, y)

    return vg, (ep_model(d), d["y"])


# --- jaxpurify ----------------------------------------------------------------


def build_jaxpurify(d: dict[str, Any]) -> tuple[Callable, tuple]:
    import jaxpurify as jp

    n = d["xi"].shape[0]

    def model() -> jax.Array:
        alpha = -jp.log_normal_variable("alpha", mean=ALPHA_MEAN, sigma=ALPHA_SIGMA)
        xi = jp.param(n, name="xi")
        f = jp.intermediate(field(xi, alpha), name="f")
        return observe(f, jp.fixed(N_OBS, name="x_obs"))

    purified = jp.purify(model)

    def loss(params: dict[str, jax.Array], data_: dict[str, jax.Array]) -> jax.Array:
        f_obs = purified(params, x_obs=data_["x_obs"])
        return neg_log_lik(f_obs, data_["y"]) - log_prior_latents(
            params["xi"], params["alpha"]
        )

    params = {"xi": d["xi"], "alpha": d["z_alpha"]}
    data_ = {"x_obs": d["x_obs"], "y": d["y"]}
    vg = jax.value_and_grad(loss)
    return jax.jit(lambda p: vg(p, data_)), (params,)


# --- paramax + equinox --------------------------------------------------------


def _alpha_forward(z: jax.Array) -> jax.Array:
    return lognormal_forward(z, ALPHA_MEAN, ALPHA_SIGMA)


class PxGPField(eqx.Module):
    xi: jax.Array
    alpha: Any  # paramax.Parameterize
    x_obs: Any  # paramax.NonTrainable

    def __call__(self) -> jax.Array:  # called on the unwrapped model
        return observe(field(self.xi, -self.alpha), self.x_obs)


def _px_loss(params: Any, static: Any, y: jax.Array) -> jax.Array:
    import paramax

    model = eqx.combine(params, static)
    latents = (model.xi, model.alpha.args[0])
    return neg_log_lik(paramax.unwrap(model)(), y) - log_prior_latents(*latents)


def build_paramax(d: dict[str, Any]) -> tuple[Callable, tuple]:
    import paramax

    model = PxGPField(
        xi=d["xi"],
        alpha=paramax.Parameterize(_alpha_forward, d["z_alpha"]),
        x_obs=paramax.NonTrainable(d["x_obs"]),
    )
    params, static = eqx.partition(
        model,
        eqx.is_inexact_array,
        is_leaf=lambda leaf: isinstance(leaf, paramax.NonTrainable),
    )

    @eqx.filter_jit
    def vg(params: Any, static: Any, y: jax.Array) -> Any:
        return eqx.filter_value_and_grad(_px_loss)(params, static, y)

    return vg, (params, static, d["y"])


# --- Flax NNX -----------------------------------------------------------------


def build_nnx(d: dict[str, Any]) -> tuple[Callable, tuple]:
    from flax import nnx

    class NnxGPField(nnx.Module):
        def __init__(self, xi: jax.Array, z_alpha: jax.Array, x_obs: jax.Array):
            self.xi = nnx.Param(xi)
            self.z_alpha = nnx.Param(z_alpha)
            self.x_obs = nnx.Variable(x_obs)

        def __call__(self) -> jax.Array:
            alpha = -_alpha_forward(self.z_alpha[...])
            return observe(field(self.xi[...], alpha), self.x_obs[...])

    def loss(model: NnxGPField, y: jax.Array) -> jax.Array:
        lp = log_prior_latents(model.xi[...], model.z_alpha[...])
        return neg_log_lik(model(), y) - lp

    @nnx.jit
    def vg(model: NnxGPField, y: jax.Array) -> Any:
        return nnx.value_and_grad(loss)(model, y)

    return vg, (NnxGPField(d["xi"], d["z_alpha"], d["x_obs"]), d["y"])


BUILDERS: dict[str, Callable[[dict[str, Any]], tuple[Callable, tuple]]] = {
    "hand-written jax.jit": build_reference,
    "hand-written jax.jit (A/A copy)": build_reference,
    "eqxpurify (README loop): partition, rest closed over": build_eqxpurify,
    "eqxpurify: flatten, unflatten closed over": build_eqxpurify_flatten,
    "eqxpurify: ravel, unravel closed over (samplers, Hessians, scipy)": (
        build_eqxpurify_ravel
    ),
    "eqxpurify: partition, rest as argument": build_eqxpurify_rest_arg,
    "eqxpurify model, eqx.filter_jit": build_eqxpurify_filter_jit,
    "jaxpurify": build_jaxpurify,
    "paramax + eqx.filter_jit": build_paramax,
    "flax nnx.jit": build_nnx,
}
