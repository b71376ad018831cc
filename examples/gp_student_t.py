"""A hierarchical Gaussian-process model with Student-t noise, sampled both ways.

Three sensors record one slowly varying signal on a shared grid of 20 times in
[0, 10]. Each sensor reads it with its own calibration offset, and its noise
has heavy tails (a few readings are far off). The model

    mu ~ N(0, 2),  tau ~ HalfNormal(1),  offset_g ~ N(mu, tau),  g = 1..3,
    amplitude ~ Gamma(4, 4),  lengthscale ~ Gamma(4, 2),
    signal ~ MVN(0, K),  K_ij = amplitude^2 k_3/2(|x_i - x_j| / lengthscale),
    noise ~ HalfNormal(0.5),
    y_gi ~ StudentT(df=3, offset_g + signal_i, noise)

is a hierarchy twice over: the offsets' prior `ep.Normal(mu, tau)` holds two
Params, and the signal's prior `ep.MultivariateNormal(0, kernel)` holds a
kernel module (a Matern-3/2 covariance on the fixed grid) whose amplitude and
length scale are Params with `ep.Gamma` priors (Gamma(concentration, rate)).
The Student-t likelihood is written with `jax.scipy.stats.t.logpdf`; its
degrees of freedom are fixed data. The readings are simulated from known
offsets, a known signal (two sinusoids) and Student-t noise of the model's
form, with a fixed seed.

One class builds the model in both parameterisations:

- whitened (`whiten=True`, the default): every latent is standard normal under
  its prior; the signal is `L z` with `L` the Cholesky factor of `K`, and the
  offsets are `mu + tau z` (non-centred).
- centred (`whiten=False` on every Param): the latent is the value itself, or
  its logarithm for a positive one (`ep.Centred`); the signal's log prior is
  the multivariate normal density of the vector.

NUTS from blackjax (window adaptation of the step size and a dense mass
matrix, then sampling; chains under `jax.vmap`) samples each on the vector of
`ep.ravel`. `ep.draws` gives physical values by path for `arviz.from_dict`.
The script prints an ArviZ summary of each run, the posterior means side by
side, and what each run cost: divergent transitions, the adapted step size,
the gradient evaluations while drawing and the smallest bulk ESS per 1000 of
them.

Run `python examples/gp_student_t.py` (4 chains, 1000 warmup + 1000 draws) or
with `--quick` (2 chains, 300 + 200). It saves `gp_student_t.png` (readings
and fitted curves; the joint posterior of amplitude and length scale; the
ridge between the mean offset and the signal's mean level, in both
parameterisations) in the folder given by `--out DIR` (default: next to this
file).
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
from jax.scipy.stats import t as student_t
from jaxtyping import Array, Float, PRNGKeyArray

import eqxpurify as ep

N_GROUPS, N_TIMES = 3, 20
X = np.linspace(0.0, 10.0, N_TIMES)  # the shared observation grid
DF = 3.0  # the noise's degrees of freedom (fixed)
JITTER = 1e-4  # relative to amplitude^2, on the kernel's diagonal
SENSORS = ("sensor 1", "sensor 2", "sensor 3")

OFFSET, SIGNAL, NOISE = "offset", "signal", "noise"  # paths of the top-level Params

# The values the data are simulated from, and the seed of the noise.
TRUE_OFFSET = np.array([0.6, 1.4, 0.9])
TRUE_NOISE = 0.4
DATA_SEED = 0


def true_signal(x: np.ndarray) -> np.ndarray:
    return np.sin(0.9 * x) + 0.4 * np.cos(2.1 * x + 0.5)


def simulate(seed: int = DATA_SEED) -> np.ndarray:
    """Readings `(sensors, times)`: offset + signal + Student-t noise."""
    rng = np.random.default_rng(seed)
    noise = TRUE_NOISE * rng.standard_t(DF, size=(N_GROUPS, N_TIMES))
    return TRUE_OFFSET[:, None] + true_signal(X)[None, :] + noise


def matern32(
    x: Float[Array, " n"], amplitude: Float[Array, ""], lengthscale: Float[Array, ""]
) -> Float[Array, "n n"]:
    """The Matern-3/2 covariance matrix of the points `x`, with a small jitter."""
    r = jnp.sqrt(3.0) * jnp.abs(x[:, None] - x[None, :]) / lengthscale
    unit = (1.0 + r) * jnp.exp(-r) + JITTER * jnp.eye(x.shape[0], dtype=x.dtype)
    return amplitude**2 * unit


class Kernel(eqx.Module):
    """The covariance of the signal on the grid: a module of two Params."""

    amplitude: ep.Param
    lengthscale: ep.Param
    x: ep.Fixed

    @ep.unwrapped
    def __call__(self) -> Float[Array, "n n"]:
        return matern32(self.x, self.amplitude, self.lengthscale)


class SensorModel(eqx.Module):
    """Three offset sensors reading one Gaussian-process signal.

    `y` holds the readings, `(sensors, times)`. `whiten` is passed to every
    Param: True for the whitened (non-centred) model, False for the centred
    one. The Params are abstract until `ep.zeros` or `ep.normal` fills them.
    """

    offset: ep.Param
    signal: ep.Param
    noise: ep.Param
    y: ep.Fixed
    df: ep.Fixed

    def __init__(self, y: np.ndarray, *, whiten: bool = True):
        mu = ep.Param(prior=ep.Normal(0.0, 2.0), whiten=whiten)
        tau = ep.Param(prior=ep.HalfNormal(1.0), whiten=whiten)
        self.offset = ep.Param(
            shape=(N_GROUPS,), prior=ep.Normal(mu, tau), whiten=whiten
        )
        kernel = Kernel(
            amplitude=ep.Param(prior=ep.Gamma(4.0, 4.0), whiten=whiten),
            lengthscale=ep.Param(prior=ep.Gamma(4.0, 2.0), whiten=whiten),
            x=ep.Fixed(X),
        )
        self.signal = ep.Param(
            shape=(N_TIMES,),
            prior=ep.MultivariateNormal(0.0, kernel),
            whiten=whiten,
        )
        self.noise = ep.Param(prior=ep.HalfNormal(0.5), whiten=whiten)
        self.y = ep.Fixed(y)
        self.df = ep.Fixed(np.array(DF))


def paths(*, whiten: bool) -> dict[str, str]:
    """The paths of the Params, as `ep.draws` names them, by short name.

    A centred Param wraps its prior in `ep.Centred`, whose field is `prior`, so
    a hyperparameter of a centred prior has one more `.prior` in its path.
    """
    prior = "prior" if whiten else "prior.prior"
    return {
        "mu": f"{OFFSET}.{prior}.mean",
        "tau": f"{OFFSET}.{prior}.sigma",
        "amplitude": f"{SIGNAL}.{prior}.covariance.amplitude",
        "lengthscale": f"{SIGNAL}.{prior}.covariance.lengthscale",
        "noise": NOISE,
        "offset": OFFSET,
        "signal": SIGNAL,
    }


def log_likelihood(model: SensorModel) -> Float[Array, ""]:
    """`log p(y | offset, signal, noise)`, on an unwrapped model (plain arrays)."""
    mean = model.offset[:, None] + model.signal[None, :]
    return jnp.sum(student_t.logpdf(model.y, model.df, mean, model.noise))


def log_density(model: SensorModel) -> Float[Array, ""]:
    """The unnormalised log posterior of the latents: what NUTS samples."""
    return ep.log_prior(model) + log_likelihood(ep.unwrap(model))


def run_nuts(
    model: SensorModel,
    n_chains: int,
    n_warmup: int,
    n_draws: int,
    *,
    key: PRNGKeyArray,
) -> dict[str, Any]:
    """NUTS on `ep.ravel`'s latent vector, one chain per key under `jax.vmap`.

    Each chain starts from its own prior draw, adapts its own step size and
    dense mass matrix (Stan's window adaptation), then draws `n_draws`. The
    mass matrix is dense because the data fix only the sum of an offset and
    the signal: the offsets and the signal's mean level lie along a straight
    ridge, which a dense mass matrix absorbs and a diagonal one does not.
    Returns `samples` `(chains, draws, n)`, `divergent` and `steps` (leapfrog
    steps, one gradient each) per draw, `step_size` per chain, and `unravel`.
    """
    _, unravel = ep.ravel(model)

    def logdensity(flat: Array) -> Array:
        return log_density(unravel(flat))

    def one_chain(key: PRNGKeyArray) -> tuple[Array, Array, Array, Array]:
        key_init, key_warmup, key_draws = jax.random.split(key, 3)
        start, _ = ep.ravel(ep.normal(model, key=key_init))
        warmup = blackjax.window_adaptation(
            blackjax.nuts,
            logdensity,
            is_mass_matrix_diagonal=False,
            target_acceptance_rate=0.8,
        )
        (state, parameters), _ = warmup.run(key_warmup, start, num_steps=n_warmup)
        step = blackjax.nuts(logdensity, **parameters).step

        def one_step(state, key):
            state, info = step(key, state)
            return state, (
                state.position,
                info.is_divergent,
                info.num_integration_steps,
            )

        keys = jax.random.split(key_draws, n_draws)
        _, (positions, divergent, steps) = jax.lax.scan(one_step, state, keys)
        return positions, divergent, steps, parameters["step_size"]

    keys = jax.random.split(key, n_chains)
    samples, divergent, steps, step_size = jax.jit(jax.vmap(one_chain))(keys)
    return {
        "samples": samples,
        "divergent": np.asarray(divergent),
        "steps": np.asarray(steps),
        "step_size": np.asarray(step_size),
        "unravel": unravel,
    }


def fit(
    y: np.ndarray,
    *,
    whiten: bool,
    n_chains: int,
    n_warmup: int,
    n_draws: int,
    key: PRNGKeyArray,
) -> dict[str, Any]:
    """Build the model in one parameterisation, sample it and summarise it.

    Returns the draws by path (`draws`) and by short name (`named`, the keys of
    `paths`), the ArviZ `summary`, `divergent` per draw, the adapted
    `step_size` per chain, the number of `gradients` evaluated while drawing
    and the smallest bulk ESS over every value (`min_ess`).
    """
    model = ep.zeros(SensorModel(y, whiten=whiten))  # concrete, for ep.ravel
    run = run_nuts(model, n_chains, n_warmup, n_draws, key=key)
    draws = ep.draws(run["samples"], run["unravel"])
    draws = {k: np.asarray(v) for k, v in draws.items()}
    summary = arviz.summary(
        arviz.from_dict(posterior=draws), kind="all", round_to="none"
    )
    return {
        "draws": draws,
        "named": {name: draws[p] for name, p in paths(whiten=whiten).items()},
        "summary": summary,
        "divergent": run["divergent"],
        "step_size": run["step_size"],
        "gradients": int(run["steps"].sum()),
        "min_ess": float(np.min(summary["ess_bulk"].to_numpy())),
        "n_latents": int(run["samples"].shape[-1]),
    }


def plot_file(out: str | Path, name: str) -> Path:
    """`out` is a folder (created if missing) for `<name>.png`, or a `.png` path."""
    out = Path(out)
    path = out if out.suffix == ".png" else out / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def plot(y: np.ndarray, fits: dict[str, dict[str, Any]], path: Path) -> None:
    """Readings with fitted curves; amplitude against length scale; the ridge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(
        1, 3, figsize=(16, 4.8), layout="constrained"
    )
    named = fits["whitened"]["named"]
    curves = named["offset"][..., :, None] + named["signal"][..., None, :]
    curves = curves.reshape(-1, N_GROUPS, N_TIMES)
    lo, hi = np.percentile(curves, [5, 95], axis=0)
    fine = np.linspace(X[0], X[-1], 200)
    for g in range(N_GROUPS):
        c = f"C{g}"
        left.fill_between(X, lo[g], hi[g], color=c, alpha=0.2, lw=0)
        left.plot(X, curves[:, g].mean(axis=0), c=c, lw=1.5)
        left.plot(fine, TRUE_OFFSET[g] + true_signal(fine), c=c, lw=1, ls=":")
        left.plot(X, y[g], "o", c=c, ms=3.5, label=SENSORS[g])
    left.plot([], [], c="0.3", lw=1.5, label="posterior mean, 90% band")
    left.plot([], [], c="0.3", lw=1, ls=":", label="truth")
    left.set(
        xlabel="time",
        ylabel="reading",
        title="Readings and fit: offset + shared signal (whitened run)",
    )
    left.legend(fontsize=8, ncol=2, loc="upper left")

    for (name, result), c in zip(fits.items(), ("C0", "C1")):
        named = result["named"]
        div = result["divergent"].reshape(-1)
        amp, ls = named["amplitude"].reshape(-1), named["lengthscale"].reshape(-1)
        level = named["signal"].mean(axis=-1).reshape(-1)
        offset = named["offset"].mean(axis=-1).reshape(-1)
        middle.scatter(ls, amp, s=4, alpha=0.35, c=c, label=name)
        right.scatter(level, offset, s=4, alpha=0.35, c=c, label=name)
        if div.any():
            label = f"{name}: divergent ({int(div.sum())})"
            middle.scatter(ls[div], amp[div], s=14, c="C3", marker="x", label=label)
            right.scatter(level[div], offset[div], s=14, c="C3", marker="x")
    middle.set(
        xlabel="length scale",
        ylabel="amplitude",
        title="Kernel hyperparameters (Gamma priors)",
    )
    right.set(
        xlabel="signal, mean over the grid",
        ylabel="offset, mean over the sensors",
        title="The ridge: the data fix only the sum",
    )
    for ax in (middle, right):
        ax.legend(fontsize=8, markerscale=3)
    n = fits["whitened"]["named"]["mu"].size
    fig.suptitle(
        "Three sensors reading one GP signal, Student-t noise: NUTS on the "
        f"whitened and the centred latents ({n} draws each)"
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(quick: bool = False, out: str | Path | None = None, seed: int = 0) -> dict:
    n_chains, n_warmup, n_draws = (2, 300, 200) if quick else (4, 1000, 1000)
    y = simulate()  # the same readings whatever the sampler's seed
    columns = ["mean", "sd", "mcse_mean", "ess_bulk", "r_hat"]
    fits = {}
    for name, whiten in (("whitened", True), ("centred", False)):
        result = fit(
            y,
            whiten=whiten,
            n_chains=n_chains,
            n_warmup=n_warmup,
            n_draws=n_draws,
            key=jax.random.key(seed),
        )
        fits[name] = result
        print(
            f"{name}: NUTS (blackjax), {n_chains} chains x {n_draws} draws after "
            f"{n_warmup} warmup steps, on the {result['n_latents']} latents of "
            "ep.ravel"
        )
        summary = result["summary"]
        is_signal = summary.index.str.startswith(f"{SIGNAL}[")
        with _pandas_display():
            print(summary.loc[~is_signal, columns].round(3).to_string())
        print(
            f"{SIGNAL}[0] .. {SIGNAL}[{N_TIMES - 1}]: largest r_hat "
            f"{summary.loc[is_signal, 'r_hat'].max():.3f}, smallest ess_bulk "
            f"{summary.loc[is_signal, 'ess_bulk'].min():.1f}"
        )

    print("posterior means:")
    scalars = ("mu", "tau", "amplitude", "lengthscale", "noise")
    print(f"{'':10}" + "".join(f"{s:>12}" for s in scalars) + "   offset")
    for name, result in fits.items():
        named = result["named"]
        cells = "".join(f"{named[s].mean():>12.3f}" for s in scalars)
        offsets = " ".join(f"{v:.3f}" for v in named["offset"].mean(axis=(0, 1)))
        print(f"{name:10}{cells}   {offsets}")

    print("sampling cost (draws only, warmup left out):")
    print(
        f"{'':10}{'divergent':>12}{'step size':>12}{'gradients':>12}"
        f"{'min ess_bulk':>14}{'ess per 1000 gradients':>24}"
    )
    for name, result in fits.items():
        div = result["divergent"]
        per_1000 = 1000 * result["min_ess"] / result["gradients"]
        print(
            f"{name:10}{f'{int(div.sum())} of {div.size}':>12}"
            f"{float(np.mean(result['step_size'])):>12.3f}"
            f"{result['gradients']:>12d}{result['min_ess']:>14.1f}{per_1000:>24.2f}"
        )
    print(
        f"truth: offset {' '.join(f'{v:.3f}' for v in TRUE_OFFSET)}, noise scale "
        f"{TRUE_NOISE} (Student-t, {DF:g} degrees of freedom)"
    )

    path = None
    if out is not None:
        path = plot_file(out, "gp_student_t")
        plot(y, fits, path)
        print(f"saved plot to {path}")
    return {"y": y, "fits": fits, "plot": path}


def _pandas_display():
    import pandas as pd

    return pd.option_context("display.width", 120, "display.max_columns", 10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 chains x 300 + 200 steps, for tests"
    )
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent),
        help="folder for the plot, created if missing (default: next to this file)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(quick=args.quick, out=args.out, seed=args.seed)
