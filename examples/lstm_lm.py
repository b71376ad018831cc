"""An LSTM language model that memorises [4, 8, 15, 16, 23, 42].

A faithful eqxpurify port of the LSTM language model in Sabrina Mielke's
"From PyTorch to JAX: towards neural net frameworks that purify stateful code"
(2020): vocabulary 43, dimension 17, a PyTorch-style LSTM cell, an embedding
matrix that is both the input lookup and the (tied) linear readout to the 43
logits, a learned initial cell state `c_0` with `h_0 = tanh(c_0)`, summed
cross-entropy, truncated backpropagation through time over chunks of 3 tokens
(the state is carried into the next chunk without gradient, like PyTorch's
`hc.detach()`), and plain SGD with learning rate 0.1 for 101 epochs.

What eqxpurify adds to the Equinox version: every weight is an `ep.Param` and
the training loop only ever sees `params` from `ep.partition`. The Params keep
the default `ep.Normal(0, 1)` prior, whose latent *is* the value, so SGD on the
latents is exactly the tutorial's SGD on the weights. The initial values are
drawn the way PyTorch draws them (embeddings U(0, 1), `nn.Linear` weights and
biases U(-1/sqrt(17), 1/sqrt(17)), `c_0 = 0`) from `jax.random.key(seed)`,
seed 0 by default.

Run `python examples/lstm_lm.py` (full: 101 epochs, a few seconds) or with
`--quick` (21 epochs, for the tests). It saves `lstm_lm.png` (the probability of
each next token before and after training, and the logged losses) in the folder
given by `--out DIR` (default: next to this file).
"""

import argparse
import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

import eqxpurify as ep

DATA = (4, 8, 15, 16, 23, 42)
VOCAB = 43
DIM = 17
BPTT = 3
LEARNING_RATE = 0.1

State = tuple[Float[Array, " dim"], Float[Array, " dim"]]


def _uniform(key: PRNGKeyArray, shape: tuple[int, ...], bound: float) -> Array:
    return jax.random.uniform(key, shape, minval=-bound, maxval=bound)


class LSTMCell(eqx.Module):
    """PyTorch's LSTM cell: gates `i, f, g, o` from two affine maps."""

    weight_ih: ep.Param
    bias_ih: ep.Param
    weight_hh: ep.Param
    bias_hh: ep.Param

    def __init__(self, in_dim: int, out_dim: int, *, key: PRNGKeyArray):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        # torch.nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        b_ih, b_hh = 1 / math.sqrt(in_dim), 1 / math.sqrt(out_dim)
        self.weight_ih = ep.Param(_uniform(k1, (4 * out_dim, in_dim), b_ih))
        self.bias_ih = ep.Param(_uniform(k2, (4 * out_dim,), b_ih))
        self.weight_hh = ep.Param(_uniform(k3, (4 * out_dim, out_dim), b_hh))
        self.bias_hh = ep.Param(_uniform(k4, (4 * out_dim,), b_hh))

    @ep.unwrapped
    def __call__(self, inputs: Float[Array, " in_dim"], hc: State) -> State:
        h, c = hc
        ifgo = (
            self.weight_ih @ inputs + self.bias_ih + self.weight_hh @ h + self.bias_hh
        )
        i, f, g, o = jnp.split(ifgo, 4)
        new_c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        new_h = jax.nn.sigmoid(o) * jnp.tanh(new_c)
        return new_h, new_c


class LSTMLM(eqx.Module):
    """The language model: embeddings (also the readout), one cell, learned `c_0`."""

    cell: LSTMCell
    embeddings: ep.Param
    c_0: ep.Param

    def __init__(self, vocab_size: int = VOCAB, dim: int = DIM, *, key: PRNGKeyArray):
        k_cell, k_emb = jax.random.split(key)
        self.cell = LSTMCell(dim, dim, key=k_cell)
        self.embeddings = ep.Param(jax.random.uniform(k_emb, (vocab_size, dim)))
        self.c_0 = ep.Param(jnp.zeros(dim))

    @property
    @ep.unwrapped
    def hc_0(self) -> State:
        return jnp.tanh(self.c_0), self.c_0

    @ep.unwrapped
    def __call__(
        self, seq: Int[Array, " t"], hc: State
    ) -> tuple[Float[Array, ""], State]:
        """Summed next-token cross-entropy over `seq`, and the final state."""

        def step(hc, idx):
            logits = self.embeddings @ hc[0]
            nll = -jax.nn.log_softmax(logits)[idx]
            return self.cell(self.embeddings[idx], hc), nll

        hc, nlls = jax.lax.scan(step, hc, seq)
        return jnp.sum(nlls), hc

    @ep.unwrapped
    def greedy_argmax(self, length: int = len(DATA)) -> Int[Array, " length"]:
        """Greedy decoding from the learned initial state."""

        def step(hc, _):
            idx = jnp.argmax(self.embeddings @ hc[0])
            return self.cell(self.embeddings[idx], hc), idx

        _, idxs = jax.lax.scan(step, self.hc_0, None, length=length)
        return idxs


optimizer = optax.sgd(LEARNING_RATE)


@eqx.filter_jit
def train_chunk(params, opt_state, rest, chunk, hc):
    """One SGD step on one chunk. `hc=None` starts from the learned `hc_0`.

    The incoming state is an argument, not a function of `params`, so no gradient
    flows back into the previous chunk: truncated BPTT.
    """

    def loss_fn(params):
        model = ep.combine(params, rest)
        return model(chunk, model.hc_0 if hc is None else hc)

    (loss, hc_out), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = eqx.apply_updates(params, updates)
    return params, opt_state, loss, jax.lax.stop_gradient(hc_out)


def train(model: LSTMLM, data: Array, epochs: int, log_every: int = 50):
    params, rest = ep.partition(model)
    opt_state = optimizer.init(params)
    losses = {}
    for epoch in range(epochs):
        hc = None
        total = jnp.zeros(())
        for start in range(0, len(data), BPTT):
            chunk = data[start : start + BPTT]
            params, opt_state, loss, hc = train_chunk(
                params, opt_state, rest, chunk, hc
            )
            total = total + loss
        if epoch % log_every == 0:
            losses[epoch] = float(total)
            print(f"epoch {epoch:3d}  loss {losses[epoch]:.4f}")
    return ep.combine(params, rest), losses


def plot_file(out: str | Path, name: str) -> Path:
    """`out` is a folder (created if missing) for `<name>.png`, or a `.png` path."""
    out = Path(out)
    path = out if out.suffix == ".png" else out / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def next_token_probabilities(model: LSTMLM, data: Array) -> list[float]:
    """The probability the model gives each token of `data`, from the ones before.

    Read off the model's own summed loss over growing prefixes of `data`.
    """
    hc = model.hc_0
    summed = [0.0] + [float(model(data[: k + 1], hc)[0]) for k in range(len(data))]
    return [math.exp(a - b) for a, b in zip(summed, summed[1:])]


def plot(initial: LSTMLM, trained: LSTMLM, losses: dict, data: Array, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax_p, ax_l) = plt.subplots(
        1, 2, figsize=(10, 3.8), width_ratios=(3, 2), layout="constrained"
    )
    x = np.arange(len(data))
    for offset, (label, model, colour) in zip(
        (-0.2, 0.2),
        (("before training", initial, "0.6"), ("after training", trained, "C0")),
    ):
        p = next_token_probabilities(model, data)
        ax_p.bar(x + offset, p, width=0.4, color=colour, label=label)
    ax_p.axhline(1 / VOCAB, c="k", ls=":", lw=1, label=f"uniform (1/{VOCAB})")
    ax_p.set_xticks(x, [str(int(t)) for t in data])
    ax_p.set(
        ylim=(0, 1.22),
        yticks=np.linspace(0, 1, 6),
        xlabel="token of the sequence (in order)",
        ylabel="probability given the tokens before",
        title="Next-token probability of [4, 8, 15, 16, 23, 42]",
    )
    ax_p.legend(fontsize=8, loc="upper center", ncol=3)
    epochs = sorted(losses)
    ax_l.plot(epochs, [losses[e] for e in epochs], "o-", c="C0", label="training loss")
    ax_l.set(
        xlabel="epoch",
        ylabel="summed cross-entropy (nats)",
        title="Training loss at the logged epochs",
        ylim=(0, None),
    )
    ax_l.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(quick: bool = False, out: str | Path | None = None, seed: int = 0) -> dict:
    """Train and print samples; with `out`, also save the plot there."""
    epochs = 21 if quick else 101
    log_every = 10 if quick else 50
    data = jnp.array(DATA)
    model = LSTMLM(VOCAB, DIM, key=jax.random.key(seed))
    initial = model
    before = [int(i) for i in model.greedy_argmax()]
    print("sample before:", before)
    model, losses = train(model, data, epochs, log_every)
    after = [int(i) for i in model.greedy_argmax()]
    print("sample after: ", after)
    if out is not None:
        path = plot_file(out, "lstm_lm")
        plot(initial, model, losses, data, path)
        print(f"saved plot to {path}")
    return {"before": before, "after": after, "losses": losses, "model": model}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="21 epochs, for tests")
    parser.add_argument(
        "--out",
        default=str(Path(__file__).parent),
        help="folder for the plot, created if missing (default: next to this file)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(quick=args.quick, out=args.out, seed=args.seed)
