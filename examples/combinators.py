"""Define a network once: Stax-style combinators with abstract Params.

Stax builds networks from `serial` and `parallel` combinators and returns an
`init_fun` that computes output and parameter shapes before any weights exist.
The "define once" proposal asked for the same without the separate init
function. In eqxpurify that is just an Equinox module whose Params are declared
by shape: the network *is* its own shape specification.

- `Serial`, `Parallel`, `FanOut`, `FanInSum`/`FanInConcat` and `Activation` are
  small `eqx.Module`s that compose any callables, as in Stax.
- `Repeat` applies one block several times: the block is stored once, so its
  parameters are shared and its gradient is the sum of every use's contribution.
  The same block can also be placed twice (a `Serial` holding it two times)
  once `ep.share(block, "block")` has named its Params: one set of parameters
  in two places, with the same gradient as `Repeat` (checked below). Without a
  name eqxpurify refuses one object in two places, since a pytree copies it.
- Weight scales live in priors: `ep.Normal(0, 1/sqrt(fan_in))` makes
  `ep.normal` a LeCun initialisation. A layer names only its output size: its
  input size is `ep.INPUT`, and `ep.infer_shapes(model, x)` resolves every one
  (and each LeCun prior, a function of the resolved shape) from one example
  input, under `jax.eval_shape`.
- `ep.shapes(model)` gives every parameter's shape and `eqx.filter_eval_shape`
  the output's, without a value existing or a FLOP being run.
- An ensemble of 8 members is `eqx.filter_vmap` over `ep.normal` with 8 keys,
  and its prediction one `eqx.filter_vmap` over the stacked models.

Run `python examples/combinators.py` (or with `--quick`; both are fast). It saves
`combinators.png` (the ensemble's functions along a line through input space) in
the folder given by `--out DIR` (default: next to this file).
"""

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

import eqxpurify as ep

# --- the combinators -------------------------------------------------------------


def lecun(shape: tuple[int, ...]) -> ep.Normal:
    """The LeCun prior of a weight of `shape` `(out, in)`: sd `1 / sqrt(in)`."""
    return ep.Normal(0.0, 1 / math.sqrt(shape[-1]))


class Dense(eqx.Module):
    """`weight @ x + bias`: only the output size is given; the input size is
    `ep.INPUT`, found by `ep.infer_shapes`, and the weight's prior is LeCun's
    for that size."""

    weight: ep.Param
    bias: ep.Param

    def __init__(self, out_dim: int):
        self.weight = ep.Param(prior=lecun, shape=(out_dim, ep.INPUT))
        self.bias = ep.Param(prior=ep.Normal(0.0, 0.1), shape=(out_dim,))

    @ep.unwrapped
    def __call__(self, x: Float[Array, " in_dim"]) -> Float[Array, " out_dim"]:
        return self.weight @ x + self.bias


class Activation(eqx.Module):
    """An elementwise function (a module-level function, so nothing recompiles)."""

    fn: Callable[[Array], Array] = eqx.field(static=True)

    def __call__(self, x: Array) -> Array:
        return self.fn(x)


class Serial(eqx.Module):
    """Apply layers one after the other (Stax's `serial`)."""

    layers: tuple[Callable, ...]

    def __init__(self, *layers: Callable):
        self.layers = layers

    def __call__(self, x: PyTree) -> PyTree:
        for layer in self.layers:
            x = layer(x)
        return x


class Parallel(eqx.Module):
    """Apply the i-th layer to the i-th input of a tuple (Stax's `parallel`)."""

    layers: tuple[Callable, ...]

    def __init__(self, *layers: Callable):
        self.layers = layers

    def __call__(self, xs: tuple) -> tuple:
        return tuple(layer(x) for layer, x in zip(self.layers, xs, strict=True))


class FanOut(eqx.Module):
    """Copy the input `n` times (Stax's `FanOut`)."""

    n: int = eqx.field(static=True)

    def __call__(self, x: PyTree) -> tuple:
        return (x,) * self.n


class FanInSum(eqx.Module):
    """Sum a tuple of inputs (Stax's `FanInSum`)."""

    def __call__(self, xs: tuple) -> Array:
        return sum(xs[1:], xs[0])


class FanInConcat(eqx.Module):
    """Concatenate a tuple of inputs (Stax's `FanInConcat`)."""

    def __call__(self, xs: tuple) -> Array:
        return jnp.concatenate(xs, axis=-1)


class Repeat(eqx.Module):
    """Apply one block `times` times. The block's parameters are shared."""

    block: Callable
    times: int = eqx.field(static=True)

    def __call__(self, x: PyTree) -> PyTree:
        for _ in range(self.times):
            x = self.block(x)
        return x


def make_model(in_dim: int = 4, hidden: int = 16, out_dim: int = 3) -> Serial:
    """The network, defined once (all Params abstract: shapes, no values).

    input -> Dense -> tanh -> [shared Dense -> tanh] x 2 -> two heads, concatenated:
    a residual head (Dense -> tanh -> Dense, plus a linear skip) and a linear head.
    No input size is written: `ep.infer_shapes` finds every one from the shape
    of one example input, without computing anything.
    """
    tanh = Activation(jnp.tanh)
    shared = Serial(Dense(hidden), tanh)
    residual_head = Serial(
        FanOut(2),
        Parallel(Serial(Dense(hidden), tanh, Dense(out_dim)), Dense(out_dim)),
        FanInSum(),
    )
    model = Serial(
        Dense(hidden),
        tanh,
        Repeat(shared, times=2),
        FanOut(2),
        Parallel(residual_head, Dense(out_dim)),
        FanInConcat(),
    )
    return ep.infer_shapes(model, jax.ShapeDtypeStruct((in_dim,), jnp.float32))


# --- what the example shows ------------------------------------------------------


def param_shapes(model: PyTree) -> dict[str, tuple[int, ...]]:
    """Path -> shape of every Param, from `ep.shapes` (no compute)."""
    leaves = jtu.tree_flatten_with_path(ep.shapes(model), is_leaf=ep.is_param)[0]
    return {
        jtu.keystr(path).lstrip("."): tuple(node.latent.shape)
        for path, node in leaves
        if ep.is_param(node)
    }


def output_shape(model: PyTree, x: jax.ShapeDtypeStruct) -> jax.ShapeDtypeStruct:
    """The output's shape and dtype, traced abstractly: no values, no FLOPs.

    The Params are filled with `ep.zeros` *inside* `filter_eval_shape`, so even
    the zeros are only shapes.
    """
    return eqx.filter_eval_shape(lambda m, x: ep.zeros(m)(x), model, x)


def untie(model: Serial) -> Serial:
    """The same network with the shared block replaced by two independent copies."""
    repeat = model.layers[2]
    block = repeat.block
    untied = Serial(*([block] * repeat.times))  # a pytree holds two copies
    return eqx.tree_at(lambda m: m.layers[2], model, untied)


def shared_gradient_check(model: Serial, x: Array) -> dict:
    """Gradient of the shared block vs. the sum of both copies' gradients."""

    def loss(params, rest):
        return jnp.sum(ep.combine(params, rest)(x) ** 2)

    # `ep.partition` gives the gradients as a dict by path: pick out the block's
    # entries (shared) and those of its two untied copies.
    grads = jax.grad(loss)(*ep.partition(model))
    untied_grads = jax.grad(loss)(*ep.partition(untie(model)))

    def under(tree: dict, prefix: str) -> dict:
        return {k[len(prefix) :]: v for k, v in tree.items() if k.startswith(prefix)}

    shared = under(grads, "layers[2].block")
    first = under(untied_grads, "layers[2].layers[0]")
    second = under(untied_grads, "layers[2].layers[1]")
    summed = {k: first[k] + second[k] for k in first}
    assert shared.keys() == summed.keys() and shared
    err = max(float(jnp.max(jnp.abs(shared[k] - summed[k]))) for k in shared)
    return {"shared": shared, "first_use": first, "second_use": second, "err": err}


def placed_twice(model: Serial) -> Serial:
    """The same network with the repeated block placed twice, as one shared block.

    `ep.share` names the block's Params, so the two places hold one set of
    parameters (without it, eqxpurify would refuse one object in two places).
    """
    repeat = model.layers[2]
    block = ep.share(repeat.block, "block")
    return eqx.tree_at(lambda m: m.layers[2], model, Serial(block, block))


def share_check(model: Serial, x: Array) -> float:
    """`Repeat` and a block placed twice with `ep.share`: one network, one gradient."""

    def loss(params, rest):
        return jnp.sum(ep.combine(params, rest)(x) ** 2)

    twice = placed_twice(model)
    grads = jax.grad(loss)(*ep.partition(model))
    twice_grads = jax.grad(loss)(*ep.partition(twice))
    assert len(twice_grads) == len(grads)  # the second place adds no parameter
    renamed = {
        k.replace("layers[2].layers[0]", "layers[2].block"): v
        for k, v in twice_grads.items()
    }
    assert renamed.keys() == grads.keys()
    return max(float(jnp.max(jnp.abs(grads[k] - renamed[k]))) for k in grads)


def make_ensemble(model: PyTree, n: int, *, key: PRNGKeyArray) -> PyTree:
    """`n` independently initialised members, stacked along a leading axis."""
    keys = jax.random.split(key, n)
    return eqx.filter_vmap(lambda k: ep.normal(model, key=k))(keys)


@eqx.filter_jit
def ensemble_predict(ensemble: PyTree, x: Array) -> Array:
    return eqx.filter_vmap(lambda m: m(x))(ensemble)


def plot_file(out: str | Path, name: str) -> Path:
    """`out` is a folder (created if missing) for `<name>.png`, or a `.png` path."""
    out = Path(out)
    path = out if out.suffix == ".png" else out / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def plot(ensemble: PyTree, x: Array, out_dim: int, path: Path) -> None:
    """Each member's outputs along the line `t * x / |x|` through input space."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    norm = float(jnp.linalg.norm(x))
    reach = max(3.0, 1.25 * norm)
    t = np.linspace(-reach, reach, 121)
    inputs = jnp.asarray(t)[:, None] * (x / norm)
    preds = np.asarray(jax.vmap(lambda xi: ensemble_predict(ensemble, xi))(inputs))
    heads = {"residual head, output 1": 0, "linear head, output 1": out_dim}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True, layout="constrained")
    for ax, (title, j) in zip(axes, heads.items(), strict=True):
        ys = preds[:, :, j]
        for i in range(ys.shape[1]):
            ax.plot(t, ys[:, i], c="C0", lw=1, alpha=0.6)
        ax.plot([], [], c="C0", lw=1, alpha=0.6, label="ensemble members (8)")
        mean, sd = ys.mean(axis=1), ys.std(axis=1)
        ax.plot(t, mean, c="k", lw=2, label="ensemble mean")
        ax.fill_between(t, mean - sd, mean + sd, color="k", alpha=0.12, label="± 1 sd")
        ax.axvline(norm, c="C3", ls="--", lw=1, label="the printed input x")
        ax.set(title=title, xlabel="t  (input = t · x / |x|)")
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("network output")
    fig.suptitle(
        "Untrained 8-member ensemble (eqx.filter_vmap over ep.normal) along a line "
        "through input space",
        fontsize=10,
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(quick: bool = False, out: str | Path | None = None, seed: int = 0) -> dict:
    """Print shapes, the shared-gradient check and the ensemble; with `out`, plot."""
    del quick  # the full run is already fast
    plot_to = out  # (`out` names the output shape below)
    in_dim = 4
    model = make_model(in_dim=in_dim)

    print("Parameter shapes (ep.shapes, no values exist yet):")
    shapes = param_shapes(model)
    width = max(map(len, shapes))
    for path, shape in shapes.items():
        print(f"  {path:{width}s} {shape}")
    n_params = sum(math.prod(s) for s in shapes.values())
    print(f"  {len(shapes)} Params, {n_params} numbers")
    x_struct = jax.ShapeDtypeStruct((in_dim,), jnp.zeros(()).dtype)
    out = output_shape(model, x_struct)
    print(f"Output (eqx.filter_eval_shape, no FLOPs): {out.shape} {out.dtype}")

    key_init, key_x, key_ens = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(key_x, (in_dim,))
    model = ep.normal(model, key=key_init)
    check = shared_gradient_check(model, x)
    print(
        "Shared block: |grad - (grad of use 1 + grad of use 2)|_max = "
        f"{check['err']:.2e}"
    )
    share_err = share_check(model, x)
    print(
        "The block placed twice with ep.share: |grad - grad with Repeat|_max = "
        f"{share_err:.2e}"
    )

    ensemble = make_ensemble(make_model(in_dim=in_dim), 8, key=key_ens)
    preds = ensemble_predict(ensemble, x)
    print("Ensemble of 8 (eqx.filter_vmap over ep.normal), predictions:")
    for i, p in enumerate(preds):
        print(f"  member {i}: " + " ".join(f"{v:+.3f}" for v in p))
    spread = " ".join(f"{v:.3f}" for v in jnp.std(preds, axis=0))
    print(f"  sd across members, per output: {spread}")
    if plot_to is not None:
        path = plot_file(plot_to, "combinators")
        plot(ensemble, x, out_dim=3, path=path)
        print(f"saved plot to {path}")
    return {
        "shapes": shapes,
        "out": out,
        "model": model,
        "x": x,
        "gradient_check": check,
        "share_check": share_err,
        "ensemble": ensemble,
        "predictions": preds,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same as the full run")
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent),
        help="folder for the plot, created if missing (default: next to this file)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(quick=args.quick, out=args.out, seed=args.seed)
