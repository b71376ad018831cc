"""Quickstart: fit a decay curve in whitened space (the README's headline example).

A physics-style forward model with a normal amplitude and a log-normal
lifetime, declared once with their priors, a fixed observation grid, fitted by
MAP in whitened space with the recommended loop (`ep.partition`, a `jax.jit`
step, optax). Prints the fitted model beside the truth, and plots data, truth,
fit and the starting point.

    python examples/quickstart.py [--quick] [--out DIR]

`--quick` runs fewer steps; `--out DIR` is the folder for `quickstart.png`
(default: next to this file).
"""

import argparse
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import eqxpurify as ep

NOISE = 0.05


class Decay(eqx.Module):
    # Each field is declared once, where it lives, with its prior.
    amplitude: ep.Param = ep.Param(prior=ep.Normal(1.0, 0.5))
    lifetime: ep.Param = ep.Param(prior=ep.LogNormal(3.0, 1.0))
    t: ep.Fixed = ep.Fixed(jnp.linspace(0.0, 10.0, 50))  # data: never trained

    @ep.unwrapped  # inside, every Param and Fixed is a plain array
    def __call__(self):
        return self.amplitude * jnp.exp(-self.t / self.lifetime)


def neg_log_posterior(model, y_obs):
    """Whitened negative log posterior: Gaussian noise, standard-normal latents."""
    residual = (model() - y_obs) / NOISE
    return 0.5 * jnp.sum(residual**2) - ep.log_prior(model)


def fit(model, y_obs, steps=1000):
    """MAP in whitened space with the recommended training loop."""
    params, rest = ep.partition(model)  # trainable arrays by path | the rest
    optim = optax.adam(5e-2)
    opt_state = optim.init(params)

    @jax.jit
    def step(params, opt_state):
        loss, grads = jax.value_and_grad(
            lambda p: neg_log_posterior(ep.combine(p, rest), y_obs)
        )(params)
        updates, opt_state = optim.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    for _ in range(steps):
        params, opt_state, loss = step(params, opt_state)
    return ep.combine(params, rest), loss


def plot_file(out: str | Path, name: str) -> Path:
    """`out` is a folder (created if missing) for `<name>.png`, or a `.png` path."""
    out = Path(out)
    path = out if out.suffix == ".png" else out / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def plot(start, fitted, true_model, y_obs, noise: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def label(what, m):
        v = ep.unwrap(m)
        return f"{what}: A = {float(v.amplitude):.3f}, τ = {float(v.lifetime):.3f}"

    t = ep.unwrap(true_model).t
    fig, ax = plt.subplots(figsize=(6.4, 4), layout="constrained")
    ax.errorbar(
        t,
        y_obs,
        yerr=noise,
        fmt="o",
        ms=3,
        c="k",
        lw=1,
        label=f"data (error bars: noise sd {noise})",
    )
    ax.plot(t, true_model(), "k--", lw=1, label=label("truth", true_model))
    ax.plot(
        t, fitted(), c="C0", lw=2, alpha=0.8, label=label("whitened MAP fit", fitted)
    )
    ax.plot(t, start(), c="C1", ls=":", label=label("start (a prior draw)", start))
    ax.set(
        xlabel="time t (arbitrary units)",
        ylabel="signal A exp(-t / τ) (arbitrary units)",
        title="Decay curve: data, truth and whitened MAP fit",
    )
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(quick: bool = False, out: str | Path | None = None):
    """Fit and print; with `out`, also save the plot there (see `plot_file`)."""
    true_model = ep.load_values(Decay(), {"amplitude": 1.3, "lifetime": 3.0})
    y_obs = true_model() + NOISE * jax.random.normal(jax.random.key(1), (50,))

    start = ep.normal(Decay(), key=jax.random.key(0))  # a draw from the prior
    fitted, loss = fit(start, y_obs, steps=300 if quick else 1000)
    print(f"{'':10s} {'truth':>8s} {'fit':>8s}")
    for name in ("amplitude", "lifetime"):
        true = getattr(true_model, name).value
        got = getattr(fitted, name).value
        print(f"{name:10s} {float(true):8.3f} {float(got):8.3f}")
    print(f"final loss {float(loss):.3f}")
    if out is not None:
        path = plot_file(out, "quickstart")
        plot(start, fitted, true_model, y_obs, NOISE, path)
        print(f"saved plot to {path}")
    return fitted, true_model


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent),
        help="folder for the plot, created if missing (default: next to this file)",
    )
    args = parser.parse_args()
    main(quick=args.quick, out=args.out)
