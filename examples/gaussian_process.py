"""A Gaussian-process field fitted in whitened space, with the field as a tap.

The model of jaxpurify's README, in eqxpurify style. A field on 100 grid points
in [0, 5] is white noise `xi ~ N(0, I)` coloured by a power-law spectrum,

    f = Re F - Im F,    F = FFT(sqrt(P) * xi),    P(k) = |k|^(-alpha), P(0) = 0,

with the slope `alpha` log-normal(mean 3.0, sd 0.1), and read out by linear
interpolation at fixed observation points `x_obs`. `xi` and `alpha` are
`ep.Param`s, the grid and `x_obs` are `ep.Fixed` data, and the field is tapped
with `ep.intermediate(..., name="f")` so that `ep.intermediates` can harvest it.

The README writes the spectrum as `k[0] = inf; P = |k|**alpha`; its values are
right (`inf ** -3 = 0`) but its gradient with respect to alpha is
`0 * log(inf) = NaN`. Here the zero mode is masked instead, and the amplitude
`|k|^(-alpha/2)` is computed directly (no `sqrt` at 0), so every gradient is
finite.

The program simulates data from a known latent, fits the maximum of the
whitened posterior (`0.5 |z|^2 + 0.5 |(f(x_obs) - y) / sigma|^2`) with optax
L-BFGS on the vector from `ep.ravel`, harvests the fitted field and plots data,
fitted field and true field. The whitened posterior is badly conditioned: its
curvature spans 1 (directions the data do not constrain) to ~1e8 (the long
modes, amplitude ~1e3, seen through noise sigma = 1; ~1e10 at sigma = 0.1), so
the fit runs in float64, inside `main` under `jax.enable_x64(True)` (importing
this file changes no global setting), with an L-BFGS memory larger than the
number of observations.

Run `python examples/gaussian_process.py` or with `--quick`. It saves
`gaussian_process.png` (data, fitted and true field) in the folder given by
`--out DIR` (default: next to this file).
"""

import argparse
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

import eqxpurify as ep

N_GRID = 100
LENGTH = 5.0
N_OBS = 30
NOISE_SIGMA = 1.0
MEMORY = 64  # L-BFGS memory


def amplitude(n: int, alpha: Float[Array, ""]) -> Float[Array, " n"]:
    """`sqrt(P(k)) = |k|^(-alpha/2)` on the FFT frequencies, 0 at k = 0."""
    k = jnp.abs(jnp.fft.fftfreq(n)).astype(alpha.dtype)
    zero = k == 0
    safe = jnp.where(zero, jnp.ones_like(k), k)  # finite gradient at k = 0
    return jnp.where(zero, jnp.zeros_like(k), safe ** (-alpha / 2))


def field(xi: Float[Array, " n"], alpha: Float[Array, ""]) -> Float[Array, " n"]:
    """The coloured field (a Hartley transform of `sqrt(P) * xi`)."""
    f = jnp.fft.fft(amplitude(xi.shape[0], alpha) * xi)
    return f.real - f.imag


class GaussianProcess(eqx.Module):
    """White-noise latent, power-law slope, field read out at `x_obs`."""

    xi: ep.Param
    alpha: ep.Param
    x: ep.Fixed
    x_obs: ep.Fixed

    def __init__(self, x_obs: Float[Array, " m"], n: int = N_GRID):
        self.xi = ep.Param(shape=(n,))  # white noise: the default N(0, 1) prior
        self.alpha = ep.Param(prior=ep.LogNormal(3.0, 0.1))
        self.x = ep.Fixed(jnp.linspace(0.0, LENGTH, n, dtype=x_obs.dtype))
        self.x_obs = ep.Fixed(x_obs)

    @ep.unwrapped
    def __call__(self) -> Float[Array, " m"]:
        f = ep.intermediate(field(self.xi, self.alpha), name="f")
        return jnp.interp(self.x_obs, self.x, f)


def neg_log_posterior(
    model: GaussianProcess, y: Float[Array, " m"], sigma: float
) -> Float[Array, ""]:
    """`-log p(latents | y)` up to a constant, in whitened space."""
    chi2 = jnp.sum(jnp.square((model() - y) / sigma))
    return 0.5 * chi2 - ep.log_prior(model)


@eqx.filter_jit
def lbfgs(loss, start: Float[Array, " d"], max_iter: int, tol: float):
    """Minimise `loss` from `start` with optax L-BFGS (zoom line search)."""
    # The data constrain ~N_OBS directions with curvature up to ~1e8 while the
    # rest sit at 1: the memory must hold more pairs than that (the default 10
    # stalls at |grad| ~ 30 after thousands of iterations).
    optimizer = optax.lbfgs(memory_size=MEMORY)
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry):
        v, state = carry
        value, grad = value_and_grad(v, state=state)
        updates, state = optimizer.update(
            grad, state, v, value=value, grad=grad, value_fn=loss
        )
        return optax.apply_updates(v, updates), state

    def keep_going(carry):
        _, state = carry
        count = optax.tree.get(state, "count")
        grad_norm = optax.tree.norm(optax.tree.get(state, "grad"))
        return (count == 0) | ((count < max_iter) & (grad_norm >= tol))

    v, state = jax.lax.while_loop(keep_going, step, (start, optimizer.init(start)))
    return v, optax.tree.get(state, "count")


@eqx.filter_jit
def observe(model: GaussianProcess, sigma: float, *, key: PRNGKeyArray):
    prediction = model()
    return prediction + sigma * jax.random.normal(key, prediction.shape)


def simulate(key: PRNGKeyArray, n_obs: int, sigma: float):
    """A true model (latents drawn from the prior) and noisy data from it."""
    k_obs, k_true, k_noise = jax.random.split(key, 3)
    x_obs = jnp.sort(jax.random.uniform(k_obs, (n_obs,), minval=0.0, maxval=LENGTH))
    truth = ep.normal(GaussianProcess(x_obs), key=k_true)
    return truth, observe(truth, sigma, key=k_noise)


def plot_file(out: str | Path, name: str) -> Path:
    """`out` is a folder (created if missing) for `<name>.png`, or a `.png` path."""
    out = Path(out)
    path = out if out.suffix == ".png" else out / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def plot(truth, f_fit, y, sigma, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    true = ep.unwrap(truth)
    grid = np.asarray(true.x)
    f_true = np.asarray(field(true.xi, true.alpha))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(grid, f_true, "k--", lw=1, label="true field")
    ax.plot(
        grid, np.asarray(f_fit), c="C0", label='fitted field (the tap "f", harvested)'
    )
    ax.errorbar(
        np.asarray(true.x_obs),
        np.asarray(y),
        yerr=sigma,
        fmt="o",
        c="C3",
        ms=3,
        lw=1,
        label=f"data (error bars: noise sd {sigma:g})",
    )
    ax.set(
        xlabel="position x (arbitrary units)",
        ylabel="field f(x) (arbitrary units)",
        title="Power-law Gaussian-process field: data, truth and whitened MAP fit",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _main(quick: bool, out: str | Path | None, seed: int) -> dict:
    sigma = NOISE_SIGMA
    n_obs = 15 if quick else N_OBS
    truth, y = simulate(jax.random.key(seed), n_obs, sigma)
    model = ep.zeros(GaussianProcess(ep.unwrap(truth).x_obs))
    flat, unravel = ep.ravel(model)

    def loss(v):
        return neg_log_posterior(unravel(v), y, sigma)

    grad = jax.jit(jax.grad(loss))
    grad_norm_start = float(jnp.linalg.norm(grad(flat)))
    v, iters = lbfgs(loss, flat, max_iter=3000, tol=1e-8)
    fitted = unravel(v)
    grad_norm = float(jnp.linalg.norm(grad(v)))

    prediction, harvested = eqx.filter_jit(ep.intermediates(fitted))()
    values = ep.unwrap(fitted)
    recomputed = field(values.xi, values.alpha)
    residuals = np.asarray((prediction - y) / sigma)

    curvature = np.linalg.eigvalsh(np.asarray(jax.jit(jax.hessian(loss))(v)))
    print(
        f"true alpha {float(ep.unwrap(truth).alpha):.4f}, "
        f"fitted alpha {float(values.alpha):.4f}"
    )
    print(
        f"L-BFGS (float64): {int(iters)} iterations, |grad| {grad_norm_start:.2e} "
        f"at the start, {grad_norm:.2e} at the end"
    )
    print(
        f"curvature of the whitened posterior spans {curvature.min():.2e} .. "
        f"{curvature.max():.2e} (condition number "
        f"{curvature.max() / curvature.min():.1e})"
    )
    print(
        f"residuals / sigma: max |.| = {np.abs(residuals).max():.2f}, "
        f"chi^2 = {np.sum(residuals**2):.1f} for {len(residuals)} points"
    )
    print(
        "max |harvested f - field(fitted xi, alpha)| = "
        f"{float(jnp.max(jnp.abs(harvested['f'] - recomputed))):.1e}"
    )
    path = None
    if out is not None:
        path = plot_file(out, "gaussian_process")
        plot(truth, harvested["f"], y, sigma, path)
        print(f"saved plot to {path}")
    return {
        "alpha_true": float(ep.unwrap(truth).alpha),
        "alpha_fit": float(values.alpha),
        "iterations": int(iters),
        "grad_norm": grad_norm,
        "curvature": curvature,
        "residuals": residuals,
        "f": np.asarray(harvested["f"]),
        "f_recomputed": np.asarray(recomputed),
        "xi_fit": np.asarray(values.xi),
        "x": np.asarray(values.x),
        "x_obs": np.asarray(values.x_obs),
        "y": np.asarray(y),
        "sigma": sigma,
        "plot": path,
    }


def main(quick: bool = False, out: str | Path | None = None, seed: int = 0) -> dict:
    """Simulate, fit and print; with `out`, also save the plot there."""
    with jax.enable_x64(True):
        return _main(quick, out, seed)


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
