"""The README's code runs: the 20-line model, both training loops, intermediates."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

README = (Path(__file__).parent.parent / "README.md").read_text()


def block_after(heading: str) -> str:
    """The first ```python block after `heading`."""
    start = README.index(heading)
    match = re.compile(r"```python\n(.*?)```", re.S).search(README, start)
    assert match is not None, heading
    return match.group(1)


def test_model_and_training_loops_run(standard_promotion):
    ns: dict = {}
    exec(block_after("## A model in 20 lines"), ns)
    model = ns["model"]
    t = np.asarray(model.t.array)
    truth = 1.3 * jnp.exp(-jnp.asarray(t) / 3.0)
    ns["y_obs"] = truth + 0.02 * jax.random.normal(jax.random.key(1), truth.shape)
    start_loss = float(ns["loss"](model, ns["y_obs"]))

    exec(block_after("## Training: the canonical loop"), ns)
    trained = ns["model"]
    np.testing.assert_array_equal(trained.t.array, t)  # Fixed data untouched
    assert float(ns["loss"](trained, ns["y_obs"])) < start_loss

    ns["model"] = model
    exec(block_after("### The fastest step: `ep.flatten`"), ns)
    fast = ns["model"]
    np.testing.assert_array_equal(fast.t.array, t)
    assert float(ns["loss"](fast, ns["y_obs"])) < start_loss
    # Both loops run the same adamw steps from the same start.
    np.testing.assert_allclose(fast.lifetime.value, trained.lifetime.value, rtol=1e-4)


def test_intermediates_example_runs():
    ns: dict = {}
    exec(block_after("## Intermediates: values from the middle of a model"), ns)
    values = ns["values"]
    assert values["level"].shape == (32,)
    assert values["smoother.field"].shape == (32,)
    grads = ns["grads"]
    assert jnp.all(jnp.isfinite(grads.smoother.noise.latent))
