"""Quickstart: fit a decay curve in whitened space (the README's headline example).

A physics-style forward model with a log-normal lifetime, a normal amplitude, a
fixed observation grid and fixed data, fitted by MAP in whitened space with
`ep.partition`, `eqx.filter_grad` and optax. Prints the fitted values beside the
truth.

    python examples/quickstart.py
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import eqxpurify as ep


class Decay(eqx.Module):
    amplitude: ep.Param  # physical parameters, each with a prior
    lifetime: ep.Param
    t: ep.Fixed  # the observation grid: data, never trained

    @ep.unwrapped  # inside, every Param/Fixed is a plain array
    def __call__(self):
        return self.amplitude * jnp.exp(-self.t / self.lifetime)


def neg_log_posterior(model, y_obs, noise):
    residual = (model() - y_obs) / noise
    return 0.5 * jnp.sum(residual**2) - ep.log_prior(model)


def fit(model, y_obs, noise, steps=500):
    params, rest = ep.partition(model)  # latents | everything else
    optim = optax.adamw(5e-2, weight_decay=0.0)
    opt_state = optim.init(params)

    @eqx.filter_jit
    def step(params, opt_state):
        loss, grads = eqx.filter_value_and_grad(
            lambda p: neg_log_posterior(ep.combine(p, rest), y_obs, noise)
        )(params)
        updates, opt_state = optim.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, loss

    for _ in range(steps):
        params, opt_state, loss = step(params, opt_state)
    return ep.combine(params, rest), loss


def main():
    model = Decay(
        amplitude=ep.Param(prior=ep.Normal(1.0, 0.5)),
        lifetime=ep.Param(prior=ep.LogNormal(2.0, 1.0)),
        t=ep.Fixed(jnp.linspace(0.0, 10.0, 50)),
    )
    true_model = eqx.tree_at(
        lambda m: (m.amplitude, m.lifetime),
        model,
        (
            ep.Param(1.3, prior=ep.Normal(1.0, 0.5)),
            ep.Param(3.0, prior=ep.LogNormal(2.0, 1.0)),
        ),
    )
    noise = 0.02
    y_obs = true_model() + noise * jax.random.normal(jax.random.key(1), (50,))

    start = ep.normal(model, key=jax.random.key(0))  # a draw from the prior
    fitted, loss = fit(start, y_obs, noise)
    print(f"{'':10s} {'truth':>8s} {'fit':>8s}")
    for name in ("amplitude", "lifetime"):
        true = getattr(true_model, name).value
        got = getattr(fitted, name).value
        print(f"{name:10s} {float(true):8.3f} {float(got):8.3f}")
    print(f"final loss {float(loss):.3f}")
    return fitted, true_model


if __name__ == "__main__":
    main()
