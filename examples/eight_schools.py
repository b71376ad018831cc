"""Eight schools: a hierarchical model with nested Params, sampled with NUTS.

The classic data of Rubin (1981): the estimated effect `y_j` of coaching in
eight schools, with its measured standard error `sigma_j`. The model

    mu ~ N(0, 5),  tau ~ HalfCauchy(5),  theta_j ~ N(mu, tau),
    y_j ~ N(theta_j, sigma_j),  j = 1..8

is declared once, as class defaults: `theta` is an `ep.Param` whose prior
`ep.Normal(mu, tau)` holds two more `ep.Param`s. Every Param stores a whitened
latent (standard normal under its prior), and `theta`'s value is computed from
the current values of `mu` and `tau`, so the model is non-centred by
construction (`theta = mu + tau * z`) and NUTS never meets the funnel of the
centred form. The paths are `theta`, `theta.prior.mean` (mu) and
`theta.prior.sigma` (tau).

NUTS from blackjax (window adaptation, then sampling; 4 chains under `jax.vmap`)
runs on the vector of `ep.ravel`. `ep.draws` turns the latent draws into
physical values by path, which `arviz.from_dict` takes as they are, and ArviZ
summarises them (mean, sd, MCSE, ESS, r_hat); the number of divergent
transitions is printed too.

Run `python examples/eight_schools.py` (4 chains, 1000 warmup + 2000 draws) or
with `--quick` (2 chains, 200 + 200). It saves `eight_schools.png` (theta per
school with the pooled mean mu; tau against mu) in the folder given by
`--out DIR` (default: next to this file).
"""

import argparse
from pathlib import Path
from typing import Any

import arviz
import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm
from jaxtyping import Array, Float, PRNGKeyArray

import eqxpurify as ep

# Estimated coaching effects and their standard errors (SAT points).
Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
SCHOOLS = tuple("ABCDEFGH")
MU, TAU = "theta.prior.mean", "theta.prior.sigma"  # paths of the hyperparameters


class EightSchools(eqx.Module):
    """The eight-schools model; each field declared once, with its prior.

    A jax array may not be a dataclass default (it is not hashable); an
    `ep.Fixed` may, so the data are defaults too.
    """

    theta: ep.Param = ep.Param(
        shape=(8,),
        prior=ep.Normal(
            ep.Param(prior=ep.Normal(0.0, 5.0)),  # mu: the pooled mean effect
            ep.Param(prior=ep.HalfCauchy(5.0)),  # tau: the spread between schools
        ),
    )
    sigma: ep.Fixed = ep.Fixed(SIGMA)  # measured standard errors
    y: ep.Fixed = ep.Fixed(Y)  # measured effects


def log_likelihood(schools: EightSchools) -> Float[Array, ""]:
    """`log p(y | theta)`, on an unwrapped model (`ep.unwrap`: plain arrays)."""
    return jnp.sum(norm.logpdf(schools.y, schools.theta, schools.sigma))


def log_density(model: EightSchools) -> Float[Array, ""]:
    """The unnormalised log posterior in whitened space: what NUTS samples."""
    return ep.log_prior(model) + log_likelihood(ep.unwrap(model))


def run_nuts(
    model: EightSchools,
    n_chains: int,
    n_warmup: int,
    n_draws: int,
    *,
    key: PRNGKeyArray,
) -> tuple[Array, Array, Any]:
    """NUTS on `ep.ravel`'s latent vector: `(samples, divergent, unravel)`.

    Each chain starts from its own prior draw (`ep.normal`), adapts its own step
    size and diagonal mass matrix (Stan's window adaptation), then draws
    `n_draws`. `samples` has shape `(chains, draws, n)`.
    """
    _, unravel = ep.ravel(model)

    def logdensity(flat: Array) -> Array:
        return log_density(unravel(flat))

    def one_chain(key: PRNGKeyArray) -> tuple[Array, Array]:
        key_init, key_warmup, key_draws = jax.random.split(key, 3)
        start, _ = ep.ravel(ep.normal(model, key=key_init))
        warmup = blackjax.window_adaptation(
            blackjax.nuts, logdensity, target_acceptance_rate=0.9
        )
        (state, parameters), _ = warmup.run(key_warmup, start, num_steps=n_warmup)
        step = blackjax.nuts(logdensity, **parameters).step

        def one_step(state, key):
            state, info = step(key, state)
            return state, (state.position, info.is_divergent)

        keys = jax.random.split(key_draws, n_draws)
        _, (positions, divergent) = jax.lax.scan(one_step, state, keys)
        return positions, divergent

    keys = jax.random.split(key, n_chains)
    samples, divergent = jax.jit(jax.vmap(one_chain))(keys)
    return samples, divergent, unravel


def plot_file(out: str | Path, name: str) -> Path:
    """`out` is a folder (created if missing) for `<name>.png`, or a `.png` path."""
    out = Path(out)
    path = out if out.suffix == ".png" else out / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def plot(draws: dict[str, np.ndarray], divergent: np.ndarray, path: Path) -> None:
    """Theta per school with the pooled mean; tau against mu (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    theta = draws["theta"].reshape(-1, 8)
    mu, tau = draws[MU].reshape(-1), draws[TAU].reshape(-1)
    div = divergent.reshape(-1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")

    x = np.arange(8)
    lo, hi = np.percentile(mu, [5, 95])
    left.axhspan(lo, hi, color="C0", alpha=0.15, label="pooled mean mu: 90% interval")
    left.axhline(mu.mean(), color="C0", lw=1, label="pooled mean mu: posterior mean")
    t_lo, t_hi = np.percentile(theta, [5, 95], axis=0)
    t_mean = theta.mean(axis=0)
    left.errorbar(
        x - 0.1,
        t_mean,
        yerr=[t_mean - t_lo, t_hi - t_mean],
        fmt="o",
        c="C1",
        capsize=3,
        label="theta: posterior mean and 90% interval",
    )
    left.errorbar(
        x + 0.1,
        Y,
        yerr=SIGMA,
        fmt="s",
        c="0.4",
        ms=4,
        lw=1,
        capsize=2,
        label="measured effect y +- sigma",
    )
    left.set(
        xticks=x,
        xticklabels=SCHOOLS,
        xlabel="school",
        ylabel="coaching effect (SAT points)",
        title="Effect per school: posterior shrinks towards the pooled mean",
    )
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)

    right.scatter(mu[~div], tau[~div], s=3, alpha=0.3, c="C0", label="draws")
    if div.any():
        right.scatter(
            mu[div], tau[div], s=12, c="C3", label=f"divergent ({int(div.sum())})"
        )
    right.set_yscale("log")
    right.set(
        xlabel="pooled mean mu (SAT points)",
        ylabel="between-school sd tau (SAT points, log scale)",
        title="Hyperparameters: joint posterior of tau and mu",
    )
    right.legend(fontsize=8, loc="lower right")
    fig.suptitle(
        f"Eight schools, NUTS on eqxpurify's whitened latents ({len(mu)} draws)"
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(quick: bool = False, out: str | Path | None = None, seed: int = 0) -> dict:
    n_chains, n_warmup, n_draws = (2, 200, 200) if quick else (4, 1000, 2000)
    model = ep.zeros(EightSchools())  # concrete, so ep.ravel can fix the layout
    samples, divergent, unravel = run_nuts(
        model, n_chains, n_warmup, n_draws, key=jax.random.key(seed)
    )
    draws = {k: np.asarray(v) for k, v in ep.draws(samples, unravel).items()}
    divergent = np.asarray(divergent)
    idata = arviz.from_dict(posterior=draws)
    summary = arviz.summary(idata, kind="all", round_to="none")

    print(
        f"NUTS (blackjax): {n_chains} chains x {n_draws} draws after {n_warmup} "
        f"warmup steps, on the {samples.shape[-1]} whitened latents of ep.ravel"
    )
    columns = ["mean", "sd", "mcse_mean", "ess_bulk", "r_hat"]
    with _pandas_display():
        print(summary[columns].round(3).to_string())
    print(f"divergent transitions: {int(divergent.sum())} of {divergent.size}")
    means = {
        "mu": float(draws[MU].mean()),
        "tau": float(draws[TAU].mean()),
        "theta": draws["theta"].mean(axis=(0, 1)),
    }
    print(
        f"posterior means: mu ({MU}) {means['mu']:.3f}, tau ({TAU}) "
        f"{means['tau']:.3f}, theta "
        + " ".join(f"{s}:{t:.2f}" for s, t in zip(SCHOOLS, means["theta"]))
    )

    path = None
    if out is not None:
        path = plot_file(out, "eight_schools")
        plot(draws, divergent, path)
        print(f"saved plot to {path}")
    return {
        "draws": draws,
        "divergent": divergent,
        "idata": idata,
        "summary": summary,
        "means": means,
        "plot": path,
    }


def _pandas_display():
    import pandas as pd

    return pd.option_context("display.width", 120, "display.max_columns", 10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 chains x 200 + 200 steps, for tests"
    )
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent),
        help="folder for the plot, created if missing (default: next to this file)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(quick=args.quick, out=args.out, seed=args.seed)
