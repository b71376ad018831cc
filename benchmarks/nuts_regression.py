"""NUTS on a data-dominated regression: eqxpurify's centred Params vs numpyro.

    python benchmarks/nuts_regression.py [--rows 5000] [--coefs 20] [--draws 1000]

The model: `y = alpha + X @ beta + sigma * eps`, with 20 coefficients under
Student-t(3, 0, 2.5) priors, alpha ~ Normal(0, 10), sigma ~ HalfNormal(1), and
5000 simulated rows, so the data dominate every prior. It is written twice:
with eqxpurify Params (centred, `whiten=False`, sampled on `ep.ravel`) and as a
numpyro model. Printed:

1. the cost of one value-and-gradient of the log density, jitted, warm (min
   over repeats): ours against numpyro's `potential_fn` of the same model;
2. gradient evaluations per effective sample (leapfrog steps of the sampling
   phase divided by the smallest bulk ESS over parameters), for
   (a) blackjax NUTS with window adaptation on each log density (the same
   sampler, so only the parameterisation differs), and (b) numpyro's own NUTS;
3. for comparison, (a) on the whitened parameterisation (the default), which
   is slow here: the data shrink each latent's posterior to a tiny width.
"""

import argparse
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import eqxpurify as ep


class Regression(eqx.Module):
    alpha: ep.Param
    beta: ep.Param
    sigma: ep.Param

    @ep.unwrapped
    def log_likelihood(self, X, y):
        mean = self.alpha + X @ self.beta
        return jnp.sum(jax.scipy.stats.norm.logpdf(y, mean, self.sigma))


def data(rows: int, coefs: int, seed: int = 0):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    X = jax.random.normal(k1, (rows, coefs))
    beta = 2.0 * jax.random.normal(k2, (coefs,))
    y = 1.0 + X @ beta + 0.5 * jax.random.normal(k3, (rows,))
    return X, y


def ours(coefs: int, whiten: bool):
    import numpyro.distributions as dist

    # Whitened Student-t needs its exact quantile: the built-in ep.StudentT.
    student_t = ep.StudentT(3.0, 0.0, 2.5) if whiten else dist.StudentT(3.0, 0.0, 2.5)
    model = Regression(
        alpha=ep.Param(prior=ep.Normal(0.0, 10.0), whiten=whiten),
        beta=ep.Param(shape=(coefs,), prior=student_t, whiten=whiten),
        sigma=ep.Param(prior=ep.HalfNormal(1.0), whiten=whiten),
    )
    return ep.zeros(model)


def numpyro_model(X, y):
    import numpyro
    import numpyro.distributions as dist

    alpha = numpyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = numpyro.sample("beta", dist.StudentT(3.0, 0.0, 2.5).expand([X.shape[1]]))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    numpyro.sample("y", dist.Normal(alpha + X @ beta, sigma), obs=y)


def best_time(fn, *args, reps: int = 50) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def blackjax_nuts(log_density, start, key, warmup: int, draws: int):
    """Positions and leapfrog steps of the sampling phase."""
    import blackjax

    k_warm, k_draw = jax.random.split(key)
    adapt = blackjax.window_adaptation(blackjax.nuts, log_density)
    (state, parameters), _ = adapt.run(k_warm, start, num_steps=warmup)
    kernel = blackjax.nuts(log_density, **parameters).step

    def one(state, key):
        state, info = kernel(key, state)
        return state, (state.position, info.num_integration_steps)

    _, (positions, steps) = jax.lax.scan(one, state, jax.random.split(k_draw, draws))
    return positions, jnp.sum(steps), parameters["step_size"]


def min_ess(draws: dict) -> float:
    import arviz

    ess = arviz.ess(arviz.from_dict(posterior=draws), method="bulk")
    return float(min(np.min(ess[k].values) for k in ess.data_vars))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--coefs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from numpyro.infer import MCMC, NUTS
    from numpyro.infer.util import initialize_model

    X, y = data(args.rows, args.coefs, args.seed)
    key = jax.random.key(args.seed + 1)

    def density(model):
        flat, unravel = ep.ravel(model)

        def log_density(v):
            m = unravel(v)
            return m.log_likelihood(X, y) + ep.log_prior(m)

        return flat, unravel, log_density

    centred = density(ours(args.coefs, whiten=False))
    info = initialize_model(key, numpyro_model, model_args=(X, y))
    potential = info.potential_fn
    start_np = info.param_info.z

    ours_vg = jax.jit(jax.value_and_grad(centred[2]))
    np_vg = jax.jit(jax.value_and_grad(lambda z: -potential(z)))
    t_ours, t_np = best_time(ours_vg, centred[0]), best_time(np_vg, start_np)
    print(f"rows {args.rows}, coefficients {args.coefs}")
    print("value-and-gradient of the log density (min, warm)")
    print(f"  eqxpurify centred   {t_ours * 1e6:8.1f} us")
    print(f"  numpyro potential   {t_np * 1e6:8.1f} us   ratio {t_ours / t_np:.2f}")

    print("gradient evaluations per effective sample (sampling phase)")
    rows = []
    variants = [("blackjax NUTS, eqxpurify centred", centred)]
    if hasattr(ep, "StudentT"):
        whitened = density(ours(args.coefs, whiten=True))
        variants.append(("blackjax NUTS, eqxpurify whitened", whitened))
    for name, (flat, unravel, log_density) in variants:
        run = jax.jit(
            lambda s, k, f=log_density: blackjax_nuts(f, s, k, args.warmup, args.draws)
        )
        t0 = time.perf_counter()
        positions, steps, step = run(flat, key)
        steps = int(steps)
        seconds = time.perf_counter() - t0
        ess = min_ess({k: v[None] for k, v in ep.draws(positions, unravel).items()})
        rows.append((name, steps / ess, step, seconds))

    def np_density(z):
        return -potential(z)

    run = jax.jit(lambda s, k: blackjax_nuts(np_density, s, k, args.warmup, args.draws))
    t0 = time.perf_counter()
    positions, steps, step = run(start_np, key)
    steps = int(steps)
    seconds = time.perf_counter() - t0
    ess = min_ess({k: np.asarray(v)[None] for k, v in positions.items()})
    rows.append(("blackjax NUTS, numpyro potential", steps / ess, step, seconds))

    mcmc = MCMC(
        NUTS(numpyro_model),
        num_warmup=args.warmup,
        num_samples=args.draws,
        progress_bar=False,
    )
    t0 = time.perf_counter()
    mcmc.run(key, X, y, extra_fields=("num_steps",))
    seconds = time.perf_counter() - t0
    steps = int(np.sum(mcmc.get_extra_fields()["num_steps"]))
    samples = mcmc.get_samples()
    ess = min_ess({k: np.asarray(samples[k])[None] for k in ("alpha", "beta", "sigma")})
    step = float(mcmc.last_state.adapt_state.step_size)
    rows.append(("numpyro NUTS", steps / ess, step, seconds))
    for name, per_ess, step, seconds in rows:
        print(f"  {name:36} {per_ess:7.1f}   (step size {step:.3g}, {seconds:.1f} s)")
    ref, numpyro_nuts = rows[-2][1], rows[-1][1]
    print(f"ratio, centred / numpyro potential (same sampler): {rows[0][1] / ref:.2f}")
    print(f"ratio, centred / numpyro NUTS: {rows[0][1] / numpyro_nuts:.2f}")


if __name__ == "__main__":
    main()
