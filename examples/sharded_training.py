"""Data- and model-parallel training of a physics + neural-network model on a mesh.

A damped oscillator, `A exp(-t / tau) cos(omega t + phi)`, whose four physical
parameters are `ep.Param`s with priors, plus a slow drift that no equation
describes, learned by an `eqx.nn.MLP` turned into Params with `ep.wrap`. The
model is fitted by MAP in whitened space with the recommended loop
(`ep.partition`, a jitted step, `eqx.filter_value_and_grad`, optax adam,
`eqx.apply_updates`) on a `("data", "model")` device mesh:

- data parallel: the observations are split over the `"data"` axis; each process
  holds only its own rows and `jax.make_array_from_process_local_data` makes
  them one global batch. The sums in the loss become all-reduces.
- model parallel: the network's hidden layer is split over the `"model"` axis
  (`MODEL_SPECS`); every other Param is replicated. `ep.normal` creates each
  latent directly in its shards.

The same script runs, unchanged,

- on one CPU: it asks XLA for 8 simulated CPU devices (unless `XLA_FLAGS`
  already sets a count), giving a 4 x 2 mesh;
- on GPUs or TPUs: the flag only concerns the CPU backend, so the mesh is built
  from the accelerators (1 device gives a 1 x 1 mesh);
- across processes and hosts: `--distributed` calls
  `jax.distributed.initialize()`, which finds the coordinator, process count and
  process index itself under SLURM, Open MPI and on Cloud TPU; or give them with
  `--coordinator HOST:PORT --num-processes N --process-id I`. Every process runs
  the same script; only process 0 prints and writes files.

The network can absorb a little of the oscillation, so the fitted physics comes
close to the truth (within a few per cent), not onto it. The numbers do not
depend on the mesh: 1 device, 8 devices and 2 processes print the same fit.

It prints the fitted physical parameters against the truth and saves
`sharded_training.png` (the loss curve; data, fit and drift) in `--out DIR`
(default: next to this file). `--quick` runs fewer steps on fewer points.

    python examples/sharded_training.py [--quick] [--out DIR]
    srun python examples/sharded_training.py --distributed     # under SLURM
"""

import os


def _ask_for_cpu_devices(count: int = 8) -> None:
    """Simulate `count` CPU devices unless `XLA_FLAGS` already sets a count.

    Must run before JAX starts. It only changes the CPU backend, so on a machine
    with GPUs or TPUs JAX still uses those.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        flag = f"--xla_force_host_platform_device_count={count}"
        os.environ["XLA_FLAGS"] = f"{flags} {flag}".strip()


_ask_for_cpu_devices()

import argparse  # noqa: E402
import math  # noqa: E402
from pathlib import Path  # noqa: E402

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P  # noqa: E402

import eqxpurify as ep  # noqa: E402

T_MAX = 10.0  # seconds observed
NOISE = 0.05  # noise sd of each observation
WIDTH = 64  # hidden width of the drift network (split over "model")
TRUTH = {"amplitude": 1.5, "decay_time": 4.0, "frequency": 2.0, "phase": 0.6}
# The drift network's hidden layer, split over the "model" axis: the first layer
# by its outputs, the next two by their inputs (an `eqx.nn.Linear` weight is laid
# out (out, in)). Every Param not named here is replicated.
MODEL_SPECS = {
    "drift.layers[0].weight": P("model", None),
    "drift.layers[0].bias": P("model"),
    "drift.layers[1].weight": P(None, "model"),
    "drift.layers[2].weight": P(None, "model"),
}


class Oscillator(eqx.Module):
    """`x(t) = A exp(-t / tau) cos(omega t + phi) + drift(t)`."""

    amplitude: ep.Param  # A
    decay_time: ep.Param  # tau, seconds
    frequency: ep.Param  # omega, rad / s
    phase: ep.Param  # phi, rad
    drift: eqx.nn.MLP  # its weights and biases are Params (see `build`)

    @ep.unwrapped  # inside, every Param is a plain array
    def __call__(self, t: jax.Array) -> jax.Array:
        decay = jnp.exp(-t / self.decay_time)
        physics = self.amplitude * decay * jnp.cos(self.frequency * t + self.phase)
        return physics + self.drift(_scaled(t))[0]


def _scaled(t: jax.Array) -> jax.Array:
    """The network's input: time mapped from [0, T_MAX] to [-2, 2]."""
    return (4.0 / T_MAX) * (t - T_MAX / 2)[None]


def true_drift(t: jax.Array) -> jax.Array:
    return 0.3 * jnp.tanh(0.8 * (t - 5.0)) + 0.1


def build(*, key: jax.Array) -> Oscillator:
    """The model: the physical Params abstract (a prior, no value yet), the
    network's Params holding `eqx.nn.MLP`'s initial weights (`ep.normal` redraws
    every one of them)."""
    mlp = eqx.nn.MLP(1, 1, WIDTH, 2, activation=jax.nn.tanh, key=key)
    return Oscillator(
        amplitude=ep.Param(prior=ep.LogNormal(1.0, 0.5)),
        decay_time=ep.Param(prior=ep.LogNormal(3.0, 1.5)),
        frequency=ep.Param(prior=ep.LogNormal(2.1, 0.1)),
        phase=ep.Param(prior=ep.Uniform(-math.pi, math.pi)),
        # LeCun priors on the weights: `ep.normal` is then a LeCun initialisation.
        drift=ep.wrap(mlp),
    )


def with_shardings(model: Oscillator, mesh: jax.sharding.Mesh) -> Oscillator:
    """Every Param latent made abstract with a sharding on `mesh`: the spec in
    `MODEL_SPECS` for the paths named there, replicated (`P()`) for the rest."""
    params = ep.named_params(model)
    unknown = set(MODEL_SPECS) - set(params)
    if unknown:
        raise ValueError(f"`MODEL_SPECS` names no Param at {sorted(unknown)}")
    structs = [
        jax.ShapeDtypeStruct(
            p.shape, p.dtype, sharding=NamedSharding(mesh, MODEL_SPECS.get(path, P()))
        )
        for path, p in params.items()
    ]
    return eqx.tree_at(
        lambda m: [p.latent for p in ep.named_params(m).values()], model, structs
    )


def observations(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The whole data set: `n` noisy observations on [0, T_MAX]."""
    t = jnp.linspace(0.0, T_MAX, n)
    decay = TRUTH["amplitude"] * jnp.exp(-t / TRUTH["decay_time"])
    clean = decay * jnp.cos(TRUTH["frequency"] * t + TRUTH["phase"]) + true_drift(t)
    y = clean + NOISE * jax.random.normal(jax.random.key(1), (n,))
    return np.asarray(t), np.asarray(y)


def local_rows(n: int) -> slice:
    """This process's rows of the data set (all of them with one process)."""
    per_process = n // jax.process_count()
    start = jax.process_index() * per_process
    return slice(start, start + per_process)


def loss_fn(model: Oscillator, t: jax.Array, y: jax.Array) -> jax.Array:
    """Whitened negative log posterior (sums over the batch: all-reduces)."""
    residual = (jax.vmap(model)(t) - y) / NOISE
    return 0.5 * jnp.sum(residual**2) - ep.log_prior(model)


def make_optimizer(steps: int) -> optax.GradientTransformation:
    """Adam, with larger steps for the four physical latents than for the network
    (whose thousands of weights would otherwise jitter its output)."""
    lr_physics, lr_net = 1e-1, 1e-2

    def labels(params):
        def label(path, _):
            return "network" if "drift" in jax.tree_util.keystr(path) else "physics"

        return jax.tree_util.tree_map_with_path(label, params)

    def adam(lr: float) -> optax.GradientTransformation:
        return optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.05))

    return optax.multi_transform(
        {"physics": adam(lr_physics), "network": adam(lr_net)}, labels
    )


def make_step(optim: optax.GradientTransformation, shardings):
    """The jitted training step. `out_shardings` pins the new params and optimizer
    state to `shardings` (those they came in with): left to itself, XLA may pick
    another layout for them, and the next call would compile again."""

    def step(params, rest, opt_state, t, y):
        loss, grads = eqx.filter_value_and_grad(
            lambda p: loss_fn(ep.combine(p, rest), t, y)
        )(params)
        updates, opt_state = optim.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, out_shardings=(*shardings, None))


def plot_file(out: str | Path, name: str) -> Path:
    """`out` is a folder (created if missing) for `<name>.png`, or a `.png` path."""
    out = Path(out)
    path = out if out.suffix == ".png" else out / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def plot(losses, t_data, y_data, t_grid, curves, mesh_text: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    steps = np.arange(1, len(losses) + 1)
    ax0.plot(steps, losses, c="C0", label="training loss (whitened MAP)")
    ax0.set(
        xscale="log",
        yscale="log",
        xlabel="optimizer step",
        ylabel="negative log posterior per observation",
        title=f"Loss on a {mesh_text} mesh",
    )
    ax0.legend()
    ax1.plot(t_data, y_data, ".", c="0.6", ms=2, label="observations (process 0)")
    ax1.plot(t_grid, curves["truth"], "k--", lw=1, label="truth")
    ax1.plot(t_grid, curves["fit"], c="C0", lw=1.5, label="fit: physics + drift")
    ax1.plot(t_grid, curves["drift"], c="C1", lw=1.5, label="fitted drift (MLP)")
    ax1.plot(t_grid, true_drift(t_grid), c="C1", ls=":", lw=1, label="true drift")
    ax1.set(
        xlabel="time t (s)",
        ylabel="displacement x(t) (arbitrary units)",
        title="Damped oscillator with a learned drift",
    )
    ax1.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def on_mesh(x: jax.Array, mesh: jax.sharding.Mesh) -> jax.Array:
    """`x` itself if it is already on `mesh`, else `x` replicated over it."""
    if isinstance(x.sharding, NamedSharding) and x.sharding.mesh == mesh:
        return x
    return jax.device_put(x, NamedSharding(mesh, P()))


def fit(mesh: jax.sharding.Mesh, n_points: int, steps: int, seed: int):
    """Build the model and data on `mesh` and fit; run by every process alike."""
    # Every process builds the same model from the same key ...
    model = with_shardings(build(key=jax.random.key(seed)), mesh)
    model = ep.normal(model, key=jax.random.key(seed + 1))  # made in its shards
    # ... and holds only its own rows of the data.
    t_all, y_all = observations(n_points)
    rows = local_rows(n_points)
    batch = NamedSharding(mesh, P("data"))
    t = jax.make_array_from_process_local_data(batch, t_all[rows], t_all.shape)
    y = jax.make_array_from_process_local_data(batch, y_all[rows], y_all.shape)

    params, rest = ep.partition(model)
    optim = make_optimizer(steps)
    # Adam's moments follow the params' shardings; its step counters are made on
    # the default device: replicate them, so every array of the step is on the mesh.
    opt_state = jax.tree.map(lambda x: on_mesh(x, mesh), optim.init(params))
    shardings = jax.tree.map(lambda x: x.sharding, (params, opt_state))
    step = make_step(optim, shardings)
    losses = []
    for _ in range(steps):
        params, opt_state, loss = step(params, rest, opt_state, t, y)
        # Reading the loss waits for the step. (On simulated CPU devices, many
        # steps queued at once can stall XLA's collectives.)
        losses.append(float(loss) / n_points)
    fitted = ep.combine(params, rest)
    return fitted, losses, (t_all[rows], y_all[rows])


def main(
    quick: bool = False,
    out: str | Path | None = None,
    model_parallel: int = 2,
    seed: int = 0,
    steps: int | None = None,
) -> dict:
    """Fit on every device of every process; process 0 prints and plots."""
    n_devices = jax.device_count()
    n_model = model_parallel if n_devices % model_parallel == 0 else 1
    mesh = jax.make_mesh(
        (n_devices // n_model, n_model),
        ("data", "model"),
        axis_types=(AxisType.Auto, AxisType.Auto),
    )
    mesh_text = f"data={mesh.shape['data']} x model={mesh.shape['model']}"
    n_points, default_steps = (1024, 400) if quick else (8192, 2000)
    steps = default_steps if steps is None else steps
    t_grid = np.linspace(0.0, T_MAX, 400)

    @eqx.filter_jit  # the model holds functions (the MLP's activation)
    def curves(model: Oscillator) -> dict[str, jax.Array]:
        def drift(t: jax.Array) -> jax.Array:
            return ep.unwrap(model.drift)(_scaled(t))[0]

        out = {"fit": jax.vmap(model)(t_grid), "drift": jax.vmap(drift)(t_grid)}
        return jax.lax.with_sharding_constraint(out, NamedSharding(mesh, P()))

    fitted, losses, (t_local, y_local) = fit(mesh, n_points, steps, seed)
    drawn = {k: np.asarray(v) for k, v in curves(fitted).items()}  # every process

    hidden = fitted.drift.layers[1].weight.latent
    shard_shape = hidden.addressable_shards[0].data.shape
    estimates = {name: float(getattr(fitted, name).value) for name in TRUTH}
    if jax.process_index() != 0:  # only process 0 prints and writes files
        return {"fit": estimates, "losses": losses}
    print(
        f"{n_devices} devices in {jax.process_count()} process(es), mesh "
        f"{mesh_text}; {n_points} observations, {steps} steps"
    )
    print(
        f"drift.layers[1].weight {hidden.shape}: {hidden.sharding.spec}, "
        f"each device holds {shard_shape}"
    )
    print(f"loss per observation: {losses[0]:.3f} -> {losses[-1]:.3f}")
    print(f"{'parameter':12s} {'truth':>8s} {'fit':>8s}")
    for name, value in estimates.items():
        print(f"{name:12s} {TRUTH[name]:8.3f} {value:8.3f}")
    if out is not None:
        decay = TRUTH["amplitude"] * np.exp(-t_grid / TRUTH["decay_time"])
        phase = TRUTH["frequency"] * t_grid + TRUTH["phase"]
        drawn["truth"] = decay * np.cos(phase) + np.asarray(true_drift(t_grid))
        path = plot_file(out, "sharded_training")
        every = max(1, len(t_local) // 500)
        data = (t_local[::every], y_local[::every])
        plot(losses, *data, t_grid, drawn, mesh_text, path)
        print(f"saved plot to {path}")
    return {
        "fit": estimates,
        "losses": losses,
        "mesh": dict(mesh.shape),
        "shard_shape": shard_shape,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run, for tests")
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent),
        help="folder for the plot, created if missing (default: next to this file)",
    )
    parser.add_argument(
        "--model-parallel",
        type=int,
        default=2,
        help="size of the mesh's 'model' axis (1 if it does not divide the devices)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--steps", type=int, help="optimizer steps (default: 2000, quick: 400)"
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() and let it detect the cluster "
        "(SLURM, Open MPI, Cloud TPU)",
    )
    parser.add_argument("--coordinator", help="HOST:PORT of process 0")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    args = parser.parse_args()
    if args.distributed or args.coordinator is not None:
        # CPU devices of different processes talk through gloo (GPUs use NCCL).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            args.coordinator, args.num_processes, args.process_id
        )
    main(args.quick, args.out, args.model_parallel, args.seed, args.steps)
