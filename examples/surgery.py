"""Model surgery on a fitted model: change physics, freeze the arm, keep learning.

A Feedbax-style motor-control model: a point-mass "arm" (the plant, with a
physical mass and damping) driven by a small neural controller, simulated with
`lax.scan`, reaching from the origin to 8 targets on a circle.

1. Fit. Controller and arm are fitted together ("co-design"): the controller's
   weights have LeCun-scaled `ep.Normal` priors, the arm's mass and damping
   log-normal priors around their nominal values (1 kg +- 5%, 2 N s/m +- 5%),
   so the fit moves the physics only at a cost in prior density. The loss is
   the task loss plus a weak whitened prior (a MAP fit at low temperature).
2. Surgery. The arm picks up a 0.5 kg payload: its fitted mass is changed with
   `ep.set_value` (by path or by `lambda`) and, equivalently, by replacing the
   Param with `eqx.tree_at`. The controller, tuned for the lighter arm, now
   reaches worse.
3. Freeze and keep training. The arm is built: `ep.freeze(model, "plant")`
   turns its Params into Fixed data, so `ep.partition` leaves it out of the
   trainable half. The controller adapts to the payload with AdamW (weight decay
   and momentum included), and the arm is bit-for-bit what it was.

Saves `surgery.png` (the 8 reaches after the fit, with the payload and after
adapting, and the distance to target over time) in the folder given by
`--out DIR` (default: next to this file). Run `python examples/surgery.py` or
with `--quick`.
"""

import argparse
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

import eqxpurify as ep

N_TARGETS = 8
DT = 0.05
N_STEPS = 40  # 2 seconds
PAYLOAD = 0.5  # kg

State = tuple[Float[Array, "2"], Float[Array, "2"]]


class PointMass(eqx.Module):
    """`m dv/dt = F - c v`, integrated with semi-implicit Euler."""

    mass: ep.Param  # kg
    damping: ep.Param  # N s / m

    def __init__(self):
        self.mass = ep.Param(prior=ep.LogNormal(1.0, 0.05))
        self.damping = ep.Param(prior=ep.LogNormal(2.0, 0.1))  # sd 0.1 = 5%

    @ep.unwrapped
    def __call__(self, state: State, force: Float[Array, "2"]) -> State:
        pos, vel = state
        vel = vel + DT * (force - self.damping * vel) / self.mass
        return pos + DT * vel, vel


class Dense(eqx.Module):
    weight: ep.Param
    bias: ep.Param

    def __init__(self, in_dim: int, out_dim: int):
        self.weight = ep.Param(
            prior=ep.Normal(0.0, 1 / math.sqrt(in_dim)), shape=(out_dim, in_dim)
        )
        self.bias = ep.Param(prior=ep.Normal(0.0, 0.1), shape=(out_dim,))

    @ep.unwrapped
    def __call__(self, x: Float[Array, " i"]) -> Float[Array, " o"]:
        return self.weight @ x + self.bias


class Controller(eqx.Module):
    """Force from (target - position, velocity): a one-hidden-layer tanh network."""

    hidden: Dense
    out: Dense
    gain: float = eqx.field(static=True, default=10.0)

    def __init__(self, width: int = 32):
        self.hidden = Dense(4, width)
        self.out = Dense(width, 2)

    def __call__(self, error: Float[Array, "2"], vel: Float[Array, "2"]):
        return self.gain * self.out(
            jnp.tanh(self.hidden(jnp.concatenate([error, vel])))
        )


class Reacher(eqx.Module):
    plant: PointMass
    controller: Controller

    def __call__(self, target: Float[Array, "2"]):
        """Trajectory (positions, forces) of one reach from rest at the origin."""

        def step(state, _):
            pos, vel = state
            force = self.controller(target - pos, vel)
            state = self.plant(state, force)
            return state, (state[0], force)

        start = (jnp.zeros_like(target), jnp.zeros_like(target))
        _, (positions, forces) = jax.lax.scan(step, start, None, length=N_STEPS)
        return positions, forces


def task_loss(model: Reacher, targets: Float[Array, "t 2"]) -> Float[Array, ""]:
    """Mean squared distance to the target over the reach, plus a small effort cost."""
    positions, forces = jax.vmap(model)(targets)
    error = jnp.mean(jnp.sum((positions - targets[:, None]) ** 2, axis=-1))
    effort = jnp.mean(jnp.sum(forces**2, axis=-1))
    return error + 1e-4 * effort


def objective(model: Reacher, targets) -> Float[Array, ""]:
    """Task loss plus a weak whitened prior: a MAP fit at a low temperature."""
    return task_loss(model, targets) - 1e-4 * ep.log_prior(model)


@eqx.filter_jit
def train(model: Reacher, targets, steps: int, learning_rate: float):
    """AdamW (weight decay 1e-2) on the model's trainable half, in one `lax.scan`."""
    params, rest = ep.partition(model)
    optimizer = optax.adamw(learning_rate, weight_decay=1e-2)

    def step(carry, _):
        params, opt_state = carry
        loss, grads = eqx.filter_value_and_grad(
            lambda p: objective(ep.combine(p, rest), targets)
        )(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (eqx.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(
        step, (params, optimizer.init(params)), None, length=steps
    )
    return ep.combine(params, rest), losses


def make_targets(n: int = N_TARGETS) -> Float[Array, "n 2"]:
    angles = 2 * jnp.pi * jnp.arange(n) / n
    return jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def physics(model: Reacher) -> dict[str, float]:
    plant = ep.unwrap(model.plant)
    return {"mass": float(plant.mass), "damping": float(plant.damping)}


def show(model: Reacher) -> str:
    p = physics(model)
    return f"mass {p['mass']:.4f} kg, damping {p['damping']:.4f} N s/m"


def plot_file(out: str | Path, name: str) -> Path:
    """`out` is a folder (created if missing) for `<name>.png`, or a `.png` path."""
    out = Path(out)
    path = out if out.suffix == ".png" else out / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def plot(models: dict[str, Reacher], targets, path: Path) -> None:
    """One panel of reaches per model, and the mean distance to target over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(models)
    fig, axes = plt.subplots(
        1, n + 1, figsize=(3.4 * (n + 1), 3.9), layout="constrained"
    )
    time = DT * np.arange(1, N_STEPS + 1)
    for i, (ax, (title, model)) in enumerate(zip(axes, models.items(), strict=False)):
        positions, _ = jax.vmap(model)(targets)
        positions = np.asarray(positions)
        for k, (path_, target) in enumerate(zip(positions, np.asarray(targets))):
            label = "reach" if k == 0 else None
            ax.plot(*np.vstack([[0.0, 0.0], path_]).T, c="C0", lw=1, label=label)
            label = "target" if k == 0 else None
            ax.plot(*target, "o", mfc="none", c="C3", label=label)
        ax.plot(0.0, 0.0, "k+", ms=8, label="start")
        mass = physics(model)["mass"]
        ax.set(
            title=f"{title}\n(mass {mass:.2f} kg, task loss "
            f"{float(task_loss(model, targets)):.4f})",
            aspect="equal",
            xlim=(-1.4, 1.4),
            ylim=(-1.4, 1.4),
            xlabel="x position (m)",
        )
        if i == 0:
            ax.set_ylabel("y position (m)")
            handles, labels = ax.get_legend_handles_labels()
            fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
        distance = np.linalg.norm(positions - np.asarray(targets)[:, None], axis=-1)
        axes[-1].plot(time, distance.mean(axis=0), c=f"C{i}", label=title)
    axes[-1].set(
        title="Distance to target\n(mean over the 8 reaches)",
        xlabel="time (s)",
        ylabel="distance (m)",
        ylim=(0, None),
    )
    axes[-1].legend(fontsize=7)
    fig.suptitle(
        "Point-mass arm reaching 8 targets: after the fit, with a payload, and after "
        "the controller adapts with the arm frozen",
        fontsize=10,
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(quick: bool = False, out: str | Path | None = None, seed: int = 0) -> dict:
    steps = 300 if quick else 1500
    targets = make_targets()
    key: PRNGKeyArray = jax.random.key(seed)
    model = ep.normal(Reacher(PointMass(), Controller()), key=key)
    model = eqx.tree_at(lambda m: m.plant, model, ep.zeros(model.plant))  # nominal

    # 1. Fit controller and arm together.
    print(f"nominal arm: {show(model)}; task loss {task_loss(model, targets):.4f}")
    fitted, losses = train(model, targets, steps, 3e-3)
    print(f"fitted arm:  {show(fitted)}; task loss {task_loss(fitted, targets):.4f}")

    # 2. Surgery: add the payload to the fitted mass, three equivalent ways.
    new_mass = physics(fitted)["mass"] + PAYLOAD
    by_path = ep.set_value(fitted, "plant.mass", new_mass)
    by_lambda = ep.set_value(fitted, lambda m: m.plant.mass, new_mass)
    prior = fitted.plant.mass.prior
    by_tree_at = eqx.tree_at(
        lambda m: m.plant.mass, fitted, ep.Param(new_mass, prior=prior)
    )
    same = bool(eqx.tree_equal(by_path, by_lambda, by_tree_at, rtol=1e-6, atol=1e-6))
    loaded = by_path
    loss_loaded = float(task_loss(loaded, targets))
    print(
        f"payload +{PAYLOAD} kg: mass {physics(loaded)['mass']:.4f} "
        f"(set_value by path, by lambda and eqx.tree_at agree: {same}); "
        f"task loss {loss_loaded:.4f}"
    )

    # 3. Freeze the arm, keep training the controller.
    frozen = ep.freeze(loaded, "plant")
    params, _ = ep.partition(frozen)
    n_trainable = sum(x.size for x in jax.tree.leaves(params))
    adapted, _ = train(frozen, targets, steps // 2, 3e-3)
    plant_before = jax.tree.leaves(frozen.plant)
    plant_after = jax.tree.leaves(adapted.plant)
    unchanged = all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(plant_before, plant_after, strict=True)
    )
    controller_moved = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(
            jax.tree.leaves(frozen.controller), jax.tree.leaves(adapted.controller)
        )
    )
    loss_adapted = float(task_loss(adapted, targets))
    print(
        f"frozen arm, {n_trainable} trainable numbers (the controller): task loss "
        f"{loss_loaded:.4f} -> {loss_adapted:.4f}; controller moved by up to "
        f"{controller_moved:.3f}; arm bit-for-bit unchanged: {unchanged}"
    )
    path = None
    if out is not None:
        path = plot_file(out, "surgery")
        plot(
            {
                "fitted": fitted,
                f"+{PAYLOAD} kg payload": loaded,
                "adapted (arm frozen)": adapted,
            },
            targets,
            path,
        )
        print(f"saved plot to {path}")
    return {
        "plot": path,
        "targets": targets,
        "nominal": model,
        "fitted": fitted,
        "loaded": loaded,
        "by_tree_at": by_tree_at,
        "by_lambda": by_lambda,
        "set_value_agrees": same,
        "frozen": frozen,
        "adapted": adapted,
        "losses": np.asarray(losses),
        "loss_loaded": loss_loaded,
        "loss_adapted": loss_adapted,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run, for tests")
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent),
        help="folder for the plot, created if missing (default: next to this file)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(quick=args.quick, out=args.out, seed=args.seed)
