"""Four kinds of inference on one small regression model, all on one eqxpurify model.

The model of GenJAX's differentiable-programming notebook:

    x_mu ~ U(-3, 3),  a ~ U(-4, 4),  b ~ U(-3, 3)
    x_i ~ N(x_mu, 1),  y_i ~ N(a x_i + b, 1),  i = 1..100

`x_mu`, `a` and `b` are `ep.Param`s with `ep.Uniform` priors, so each is stored as
a whitened latent `z` (standard normal under the prior, `value = low + (high -
low) Phi(z)`); the observed `x` and `y` are `ep.Fixed` data. On this one model:

- maximum likelihood and MAP, both with optax inside `lax.scan` (2000 steps) on
  `params` from `ep.partition`;
- MALA (Metropolis-adjusted Langevin) on the ravelled latent vector from
  `ep.ravel`, preconditioned with the Laplace covariance from `jax.hessian` of
  the same vector, several chains under `jax.vmap`;
- mean-field Gaussian variational inference in whitened space.

The closed form. The uniform priors are flat where the likelihood has its mass
(the bounds lie > 10 posterior sds away), so the posterior is the normalised
likelihood: `x_mu | x ~ N(mean(x), 1/N)`, independent of `(a, b) | x, y ~
N(beta, (X^T X)^-1)` with `X = [x, 1]` and `beta` the least-squares solution.
Maximum likelihood is `(mean(x), beta)`. The whitened MAP maximises
`log p(data | theta) + sum log N(z)`; since `N(z) = p_uniform(theta) |dtheta/dz|`
this is the likelihood times the Jacobian `|dtheta/dz|`, so it sits slightly
off the maximum likelihood, by about `Sigma grad_theta log|dtheta/dz|` (printed).

Run `python examples/regression_inference.py` (full) or with `--quick`. It saves
`regression_inference.png` (the data, and each parameter's posterior by all four
methods against the closed form) in the folder given by `--out DIR` (default:
next to this file).
"""

import argparse
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.stats import norm
from jaxtyping import Array, Float, PRNGKeyArray
from scipy.stats import norm as sp_norm

import eqxpurify as ep

NAMES = ("x_mu", "a", "b")
TRUTH = {"x_mu": 1.0, "a": 2.0, "b": -0.5}
N_POINTS = 100
STEP_SIZE = 1.4  # MALA step in Laplace-whitened units: acceptance ~0.6


class Regression(eqx.Module):
    """Linear regression with uncertain inputs; `x` and `y` are observed data."""

    x_mu: ep.Param
    a: ep.Param
    b: ep.Param
    x: ep.Fixed
    y: ep.Fixed

    def __init__(self, x: Float[Array, " n"], y: Float[Array, " n"]):
        self.x_mu = ep.Param(prior=ep.Uniform(-3.0, 3.0))
        self.a = ep.Param(prior=ep.Uniform(-4.0, 4.0))
        self.b = ep.Param(prior=ep.Uniform(-3.0, 3.0))
        self.x = ep.Fixed(x)
        self.y = ep.Fixed(y)

    @ep.unwrapped
    def log_likelihood(self) -> Float[Array, ""]:
        log_px = norm.logpdf(self.x, self.x_mu, 1.0)
        log_py = norm.logpdf(self.y, self.a * self.x + self.b, 1.0)
        return jnp.sum(log_px) + jnp.sum(log_py)

    def log_posterior(self) -> Float[Array, ""]:
        """Unnormalised log density of the whitened latents given the data."""
        return self.log_likelihood() + ep.log_prior(self)

    @ep.unwrapped
    def physical(self) -> Float[Array, "3"]:
        """`[x_mu, a, b]` as physical values."""
        return jnp.stack([self.x_mu, self.a, self.b])


def simulate(key: PRNGKeyArray, x_mu: float, a: float, b: float, n: int):
    kx, ky = jax.random.split(key)
    x = x_mu + jax.random.normal(kx, (n,))
    y = a * x + b + jax.random.normal(ky, (n,))
    return x, y


def closed_form(x: np.ndarray, y: np.ndarray) -> dict:
    """Posterior means and sds (= the maximum likelihood and its errors), in numpy."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    design = np.stack([x, np.ones_like(x)], axis=1)
    cov_ab = np.linalg.inv(design.T @ design)
    beta = cov_ab @ design.T @ y
    mean = np.array([x.mean(), beta[0], beta[1]])
    cov = np.zeros((3, 3))
    cov[0, 0] = 1 / len(x)
    cov[1:, 1:] = cov_ab
    return {"mean": mean, "sd": np.sqrt(np.diag(cov)), "cov": cov}


# --- optimisation: MAP and maximum likelihood ------------------------------------


@eqx.filter_jit
def fit(model: Regression, objective: str, steps: int = 2000) -> Regression:
    """Maximise `model.log_posterior()` or `model.log_likelihood()` with Adam.

    The whole loop is one `lax.scan`; only `params` (the three latents) are
    carried and updated, the data stay in `rest`.
    """
    params, rest = ep.partition(model)
    schedule = optax.cosine_decay_schedule(0.05, steps, alpha=1e-3)
    optimizer = optax.adam(schedule)

    def loss(params):
        m = ep.combine(params, rest)
        lp = m.log_posterior() if objective == "map" else m.log_likelihood()
        return -lp

    def step(carry, _):
        params, opt_state = carry
        value, grads = eqx.filter_value_and_grad(loss)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (eqx.apply_updates(params, updates), opt_state), value

    carry = (params, optimizer.init(params))
    (params, _), _ = jax.lax.scan(step, carry, None, length=steps)
    return ep.combine(params, rest)


def jacobian_shift(ml: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Predicted MAP - ML: one Newton step on `sum log N(z(theta))` from the ML.

    For `theta = low + w Phi(z)`, `d/dtheta log N(z(theta)) = -z dz/dtheta`
    with `dz/dtheta = 1 / (w phi(z))`.
    """
    low = np.array([-3.0, -4.0, -3.0])
    width = np.array([6.0, 8.0, 6.0])
    z = sp_norm.ppf((ml - low) / width)
    grad = -z / (width * sp_norm.pdf(z))
    return cov @ grad


# --- MALA on the ravelled latent vector ------------------------------------------


def mala(
    logp,
    start: Float[Array, " d"],
    precond_chol: Float[Array, "d d"],
    step_size: float,
    n_steps: int,
    *,
    key: PRNGKeyArray,
):
    """One preconditioned MALA chain; returns the states and acceptance flags.

    Proposal `v' = v + h^2/2 M grad logp(v) + h L xi` with `M = L L^T`.
    """
    h = step_size
    chol = precond_chol
    mass = chol @ chol.T
    value_and_grad = jax.value_and_grad(logp)

    def log_q(to, frm, grad_frm):
        mean = frm + 0.5 * h**2 * mass @ grad_frm
        white = jax.scipy.linalg.solve_triangular(chol, to - mean, lower=True)
        return -0.5 * jnp.sum(white**2) / h**2

    def step(carry, key):
        v, lp, g = carry
        k_prop, k_acc = jax.random.split(key)
        noise = jax.random.normal(k_prop, v.shape, v.dtype)
        prop = v + 0.5 * h**2 * mass @ g + h * chol @ noise
        lp_prop, g_prop = value_and_grad(prop)
        log_ratio = lp_prop - lp + log_q(v, prop, g_prop) - log_q(prop, v, g)
        u = jax.random.uniform(k_acc, (), v.dtype)
        accept = jnp.log(u) < log_ratio
        v, lp, g = jax.tree.map(
            lambda new, old: jnp.where(accept, new, old),
            (prop, lp_prop, g_prop),
            (v, lp, g),
        )
        return (v, lp, g), (v, accept)

    lp0, g0 = value_and_grad(start)
    keys = jax.random.split(key, n_steps)
    _, (states, accepted) = jax.lax.scan(step, (start, lp0, g0), keys)
    return states, accepted


def batch_means_mcse(samples: np.ndarray, n_batches: int = 20) -> np.ndarray:
    """Monte Carlo standard error of the mean of `samples` (chains, steps, d).

    Each chain is cut into `n_batches` consecutive batches; the batch means are
    nearly independent when a batch is much longer than the autocorrelation
    time, so their spread gives the standard error honestly.
    """
    chains, steps, d = samples.shape
    length = steps // n_batches
    batches = samples[:, : n_batches * length].reshape(chains, n_batches, length, d)
    means = batches.mean(axis=2).reshape(chains * n_batches, d)
    return means.std(axis=0, ddof=1) / math.sqrt(chains * n_batches)


@eqx.filter_jit
def run_mala(model, n_chains, n_steps, step_size, *, key):
    flat, unravel = ep.ravel(model)

    def logp(v):
        return unravel(v).log_posterior()

    # Laplace approximation at the MAP: the latent posterior covariance.
    cov = jnp.linalg.inv(jax.hessian(lambda v: -logp(v))(flat))
    chol = jnp.linalg.cholesky(cov)
    k_start, k_chains = jax.random.split(key)
    # Overdispersed starts: 2x the Laplace width around the MAP.
    noise = jax.random.normal(k_start, (n_chains, flat.shape[0]), flat.dtype)
    starts = flat + 2.0 * noise @ chol.T
    keys = jax.random.split(k_chains, n_chains)
    run = jax.vmap(lambda s, k: mala(logp, s, chol, step_size, n_steps, key=k))
    states, accepted = run(starts, keys)
    values = jax.vmap(jax.vmap(lambda v: unravel(v).physical()))(states)
    return values, accepted


def mala_summary(values: np.ndarray, accepted: np.ndarray, burn_in: int) -> dict:
    kept = values[:, burn_in:]
    flat = kept.reshape(-1, kept.shape[-1])
    mean, sd = flat.mean(axis=0), flat.std(axis=0)
    mcse_mean = batch_means_mcse(kept)
    # sd = sqrt(E (theta - mean)^2): delta method on the squared deviations.
    mcse_var = batch_means_mcse((kept - mean) ** 2)
    return {
        "mean": mean,
        "sd": sd,
        "mcse_mean": mcse_mean,
        "mcse_sd": mcse_var / (2 * sd),
        "acceptance": float(accepted[:, burn_in:].mean()),
        "n_samples": flat.shape[0],
        "samples": flat,
    }


# --- mean-field Gaussian variational inference in whitened space -----------------


class MeanField(eqx.Module):
    """q(v) = N(loc, diag(exp(log_scale))^2) over the ravelled latent vector."""

    loc: Float[Array, " d"]
    log_scale: Float[Array, " d"]

    def sample(self, key: PRNGKeyArray, n: int) -> Float[Array, "n d"]:
        eps = jax.random.normal(key, (n, self.loc.shape[0]), self.loc.dtype)
        return self.loc + jnp.exp(self.log_scale) * eps


@eqx.filter_jit
def run_vi(model, steps: int, n_mc: int, *, key: PRNGKeyArray):
    flat, unravel = ep.ravel(model)

    def neg_elbo(q, key):
        v = q.sample(key, n_mc)
        log_joint = jax.vmap(lambda v: unravel(v).log_posterior())(v)
        entropy = jnp.sum(q.log_scale)  # up to a constant
        return -(jnp.mean(log_joint) + entropy)

    q = MeanField(jnp.zeros_like(flat), jnp.full_like(flat, -1.0))
    optimizer = optax.adam(optax.cosine_decay_schedule(0.05, steps, alpha=0.02))

    def step(carry, key):
        q, opt_state = carry
        grads = jax.grad(neg_elbo)(q, key)
        updates, opt_state = optimizer.update(grads, opt_state, q)
        return (eqx.apply_updates(q, updates), opt_state), None

    k_fit, k_draw = jax.random.split(key)
    keys = jax.random.split(k_fit, steps)
    (q, _), _ = jax.lax.scan(step, (q, optimizer.init(q)), keys)
    draws = jax.vmap(lambda v: unravel(v).physical())(q.sample(k_draw, 20_000))
    return q, draws


# --- the program -----------------------------------------------------------------


def plot_file(out: str | Path, name: str) -> Path:
    """`out` is a folder (created if missing) for `<name>.png`, or a `.png` path."""
    out = Path(out)
    path = out if out.suffix == ".png" else out / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def plot(x, y, exact, ml, map_, mala_samples, vi_draws, path: Path) -> None:
    """The data and exact posterior line; each parameter's marginal by every method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.9), layout="constrained")
    ax = axes[0]
    grid = np.linspace(x.min() - 0.5, x.max() + 0.5, 100)
    design = np.stack([grid, np.ones_like(grid)], axis=1)
    line = design @ exact["mean"][1:]
    band = 1.96 * np.sqrt(
        np.einsum("ni,ij,nj->n", design, exact["cov"][1:, 1:], design)
    )
    ax.scatter(x, y, s=8, c="k", alpha=0.5, label="data")
    ax.plot(grid, TRUTH["a"] * grid + TRUTH["b"], c="0.4", ls=":", label="truth")
    ax.plot(grid, line, c="k", lw=1.5, label="exact posterior mean")
    ax.fill_between(
        grid, line - band, line + band, color="k", alpha=0.2, label="exact 95% band"
    )
    ax.set(
        xlabel="x",
        ylabel="y",
        title="Data, y ~ N(a x + b, 1),\nand the exact posterior line",
    )
    ax.legend(fontsize=7, loc="upper left")

    symbols = {"x_mu": "x_μ", "a": "a (slope)", "b": "b (intercept)"}
    for i, (ax, name) in enumerate(zip(axes[1:], NAMES, strict=True)):
        mean, sd = exact["mean"][i], exact["sd"][i]
        t = np.linspace(mean - 4.5 * sd, mean + 4.5 * sd, 200)
        density = np.exp(-0.5 * ((t - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        bins = np.linspace(t[0], t[-1], 46)
        ax.fill_between(t, density, color="k", alpha=0.15, label="exact posterior")
        ax.hist(
            mala_samples[:, i],
            bins,
            density=True,
            histtype="step",
            color="C0",
            lw=1.5,
            label="MALA samples",
        )
        ax.hist(
            vi_draws[:, i],
            bins,
            density=True,
            histtype="step",
            color="C2",
            lw=1.5,
            label="VI (mean-field) draws",
        )
        ax.axvline(ml[i], c="C1", lw=1.5, label="maximum likelihood (ML)")
        ax.axvline(map_[i], c="C3", ls="--", lw=1.5, label="whitened MAP")
        ax.text(
            0.03,
            0.97,
            f"ML   {ml[i]:.3f}\nMAP {map_[i]:.3f}",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            family="monospace",
        )
        ax.set(
            xlabel=symbols[name],
            ylabel="posterior density",
            title=f"{symbols[name]}\nexact posterior mean {mean:.3f}, sd {sd:.3f}",
            xlim=(t[0], t[-1]),
        )
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=8)
    fig.suptitle(
        "Regression posterior by four methods (ML, MAP, MALA, mean-field VI) against "
        "the closed form",
        fontsize=10,
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(quick: bool = False, out: str | Path | None = None, seed: int = 0) -> dict:
    # MALA sizes: chains x steps after burn-in; quick keeps the test under ~10 s.
    n_chains, n_steps, burn_in = (16, 2500, 500) if quick else (32, 20_000, 1000)
    vi_steps = 1000 if quick else 3000
    key_data, key_mala, key_vi = jax.random.split(jax.random.key(seed), 3)

    x, y = simulate(key_data, TRUTH["x_mu"], TRUTH["a"], TRUTH["b"], N_POINTS)
    model = ep.zeros(Regression(x, y))  # every latent 0: each prior's midpoint
    exact = closed_form(np.asarray(x), np.asarray(y))

    ml = np.asarray(fit(model, "ml").physical())
    map_model = fit(model, "map")
    map_ = np.asarray(map_model.physical())
    predicted_shift = jacobian_shift(exact["mean"], exact["cov"])

    values, accepted = run_mala(
        map_model, n_chains, n_steps + burn_in, STEP_SIZE, key=key_mala
    )
    mcmc = mala_summary(np.asarray(values), np.asarray(accepted), burn_in)

    _, vi_draws = run_vi(map_model, vi_steps, 64, key=key_vi)
    vi_draws = np.asarray(vi_draws)
    vi = {"mean": vi_draws.mean(axis=0), "sd": vi_draws.std(axis=0)}
    # The best mean-field Gaussian for a Gaussian posterior has sd 1/sqrt(precision).
    mean_field_sd = 1 / np.sqrt(np.diag(np.linalg.inv(exact["cov"])))

    header = (
        f"{'':5} {'truth':>7} {'exact mean':>10} {'exact sd':>8} {'ML':>8} "
        f"{'MAP':>8} {'MAP-ML':>8} {'MALA mean':>15} {'MALA sd':>15} "
        f"{'VI mean':>8} {'VI sd':>7} {'MF sd':>7}"
    )
    print(header)
    for i, name in enumerate(NAMES):
        print(
            f"{name:5} {TRUTH[name]:7.3f} {exact['mean'][i]:10.4f} "
            f"{exact['sd'][i]:8.4f} {ml[i]:8.4f} {map_[i]:8.4f} "
            f"{map_[i] - ml[i]:+8.4f} "
            f"{mcmc['mean'][i]:8.4f}+-{mcmc['mcse_mean'][i]:.4f} "
            f"{mcmc['sd'][i]:8.4f}+-{mcmc['mcse_sd'][i]:.4f} "
            f"{vi['mean'][i]:8.4f} {vi['sd'][i]:7.4f} {mean_field_sd[i]:7.4f}"
        )
    print(
        "MAP - ML predicted from the whitening Jacobian: "
        + ", ".join(f"{n} {s:+.4f}" for n, s in zip(NAMES, predicted_shift))
    )
    print(
        f"MALA: {n_chains} chains x {n_steps} steps (+{burn_in} burn-in), "
        f"acceptance rate {mcmc['acceptance']:.3f}; +- are batch-means standard errors"
    )
    print(
        "VI: mean-field Gaussian in whitened space; its sds understate the correlated "
        "(a, b) posterior, as the exact mean-field optimum (MF sd) says they should."
    )

    path = None
    if out is not None:
        path = plot_file(out, "regression_inference")
        plot(
            np.asarray(x),
            np.asarray(y),
            exact,
            ml,
            map_,
            mcmc["samples"],
            vi_draws,
            path,
        )
        print(f"saved plot to {path}")
    return {
        "x": np.asarray(x),
        "y": np.asarray(y),
        "ml": ml,
        "map": map_,
        "predicted_shift": predicted_shift,
        "mala": mcmc,
        "vi": vi,
        "mean_field_sd": mean_field_sd,
        "exact": exact,
        "plot": path,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run, for tests")
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent),
        help="folder for the plot, created if missing (default: next to this file)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(quick=args.quick, out=args.out, seed=args.seed)
