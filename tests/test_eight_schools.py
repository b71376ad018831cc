"""`examples/eight_schools.py`: the quick mode end to end, and (slow) its
posterior against an independent NUTS run written in plain numpyro."""

import math
import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from .conftest import load_example

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "eight_schools.py"

# A row of the printed ArviZ summary: name, mean, sd, mcse_mean, ess_bulk, r_hat.
_NUMBER = r"(-?[0-9.]+|nan|inf)"
_ROW = re.compile(
    rf"^(\S+)\s+{_NUMBER}\s+{_NUMBER}\s+{_NUMBER}\s+{_NUMBER}\s+{_NUMBER}$"
)


def _summary_rows(stdout: str) -> dict[str, list[float]]:
    rows = {}
    for line in stdout.splitlines():
        match = _ROW.match(line.strip())
        if match:
            rows[match.group(1)] = [float(match.group(i)) for i in range(2, 7)]
    return rows


@pytest.mark.slow
def test_quick_mode_prints_named_summary_and_saves_plot(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "2 chains x 200 draws after 200 warmup steps" in out
    rows = _summary_rows(out)
    names = [f"theta[{j}]" for j in range(8)] + [
        "theta.prior.mean",
        "theta.prior.sigma",
    ]
    assert sorted(rows) == sorted(names)
    for name, (mean, sd, mcse, ess, r_hat) in rows.items():
        assert math.isfinite(r_hat) and 0.9 < r_hat < 1.2, (name, r_hat)
        assert math.isfinite(mean) and sd > 0 and mcse > 0 and ess > 10, name
    assert rows["theta.prior.sigma"][0] > 0  # tau is a scale
    divergences = re.search(r"divergent transitions: (\d+) of (\d+)", out)
    assert divergences is not None and int(divergences.group(2)) == 400
    assert re.search(r"posterior means: mu \(theta.prior.mean\) -?[0-9.]+", out)
    png = tmp_path / "eight_schools.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def _numpyro_eight_schools(y, sigma, *, num_chains, num_warmup, num_samples, seed):
    """Non-centred eight schools in plain numpyro: draws of mu, tau and theta,
    each of shape (chains, draws, ...)."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    def model(sigma, y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
        with numpyro.plate("schools", len(y)):
            theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
            theta = numpyro.deterministic("theta", mu + tau * theta_tilde)
            numpyro.sample("y", dist.Normal(theta, sigma), obs=y)

    mcmc = MCMC(
        NUTS(model, target_accept_prob=0.9),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(seed), jnp.asarray(sigma), jnp.asarray(y))
    samples = mcmc.get_samples(group_by_chain=True)
    extra = mcmc.get_extra_fields(group_by_chain=True)
    draws = {k: np.asarray(samples[k]) for k in ("mu", "tau", "theta")}
    return draws, int(np.sum(extra["diverging"]))


def _means_and_mcse(draws: dict[str, np.ndarray]) -> dict[str, tuple]:
    import arviz

    idata = arviz.from_dict(posterior=draws)
    mcse = arviz.mcse(idata, method="mean")
    return {
        k: (v.mean(axis=(0, 1)), np.asarray(mcse[k].values)) for k, v in draws.items()
    }


@pytest.mark.slow
def test_full_posterior_matches_plain_numpyro(standard_promotion, capsys):
    example = load_example("eight_schools")
    result = example.main(quick=False, seed=0)
    ours = _means_and_mcse(
        {
            "mu": result["draws"][example.MU],
            "tau": result["draws"][example.TAU],
            "theta": result["draws"]["theta"],
        }
    )
    reference_draws, reference_divergences = _numpyro_eight_schools(
        example.Y,
        example.SIGMA,
        num_chains=4,
        num_warmup=1000,
        num_samples=10_000,
        seed=1,
    )
    reference = _means_and_mcse(reference_draws)

    lines = []
    for name in ("mu", "tau", "theta"):
        (a, se_a), (b, se_b) = ours[name], reference[name]
        combined = np.sqrt(se_a**2 + se_b**2)
        z = (a - b) / combined
        for i in np.ndindex(np.shape(a)):
            label = name + (f"[{i[0]}]" if i else "")
            lines.append(
                f"{label:9} eqxpurify {a[i]:7.3f} +- {se_a[i]:.3f}   numpyro "
                f"{b[i]:7.3f} +- {se_b[i]:.3f}   diff/combined mcse {z[i]:+.2f}"
            )
        assert np.all(se_a > 0) and np.all(se_b > 0)
        assert np.all(np.abs(z) < 4), (name, a, b, combined)
    with capsys.disabled():
        print("\n" + "\n".join(lines))
        print(
            f"divergences: eqxpurify {int(result['divergent'].sum())} of "
            f"{result['divergent'].size}, numpyro {reference_divergences} of 40000"
        )
    # Both agree with the well-known posterior too (mu ~ 4.4, tau ~ 3.6).
    assert 3.5 < ours["mu"][0] < 5.2 and 2.8 < ours["tau"][0] < 4.5
