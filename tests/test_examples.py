"""The examples in `examples/`, run in their quick modes (and the LSTM in full).

Each test checks an example's returned numbers against something computed here
independently: closed forms, hand-written JAX or numpy, or exact equality.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

import eqxpurify as ep

from .conftest import load_example

# --- lstm_lm.py ------------------------------------------------------------------


@pytest.mark.slow
def test_lstm_cell_is_pytorch_lstm(getkey):
    lstm = load_example("lstm_lm")
    cell = lstm.LSTMCell(5, 7, key=getkey())
    values = ep.unwrap(cell)
    reference = eqx.nn.LSTMCell(5, 7, key=getkey())  # same gate order as PyTorch
    reference = eqx.tree_at(
        lambda c: (c.weight_ih, c.weight_hh, c.bias),
        reference,
        (values.weight_ih, values.weight_hh, values.bias_ih + values.bias_hh),
    )
    x = jax.random.normal(getkey(), (5,))
    hc = (jax.random.normal(getkey(), (7,)), jax.random.normal(getkey(), (7,)))
    for got, want in zip(cell(x, hc), reference(x, hc), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_lstm_quick():
    lstm = load_example("lstm_lm")
    result = lstm.main(quick=True)
    losses = result["losses"]
    assert sorted(losses) == [0, 10, 20]
    assert losses[0] > losses[10] > losses[20]
    assert len(result["after"]) == len(lstm.DATA)
    assert all(0 <= i < lstm.VOCAB for i in result["after"])


@pytest.mark.slow
def test_lstm_full_run_memorises_the_data():
    lstm = load_example("lstm_lm")
    result = lstm.main()
    assert result["before"] != [4, 8, 15, 16, 23, 42]
    assert result["after"] == [4, 8, 15, 16, 23, 42]
    losses = result["losses"]
    assert sorted(losses) == [0, 50, 100]
    assert losses[0] > losses[50] > losses[100]


# --- regression_inference.py -----------------------------------------------------


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    example = load_example("regression_inference")
    out = tmp_path_factory.mktemp("regression") / "regression.png"
    with jax.numpy_dtype_promotion("standard"):  # for optax's internals
        return example.main(quick=True, out=out)


def _exact_posterior(x, y):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    design = np.column_stack([x, np.ones_like(x)])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    cov_ab = np.linalg.inv(design.T @ design)
    mean = np.array([x.mean(), beta[0], beta[1]])
    sd = np.array([1 / math.sqrt(len(x)), *np.sqrt(np.diag(cov_ab))])
    return mean, sd


@pytest.mark.slow
def test_regression_maximum_likelihood_and_map(regression):
    mean, _ = _exact_posterior(regression["x"], regression["y"])
    np.testing.assert_allclose(regression["ml"], mean, atol=1e-3, rtol=0)
    assert np.all(np.abs(regression["map"] - regression["ml"]) < 0.02)

    # The whitened MAP maximises log-likelihood + sum log N(z(theta)); find it
    # here with scipy in float64, independently of the example.
    x, y = (np.asarray(regression[k], np.float64) for k in ("x", "y"))
    low, width = np.array([-3.0, -4.0, -3.0]), np.array([6.0, 8.0, 6.0])

    def neg_log_post(theta):
        x_mu, a, b = theta
        z = stats.norm.ppf((theta - low) / width)
        loglik = -0.5 * np.sum((x - x_mu) ** 2) - 0.5 * np.sum((y - a * x - b) ** 2)
        return -(loglik + np.sum(stats.norm.logpdf(z)))

    exact_map = optimize.minimize(
        neg_log_post,
        mean,
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20_000},
    ).x
    np.testing.assert_allclose(regression["map"], exact_map, atol=1e-3, rtol=0)
    assert np.all(np.abs(exact_map - mean) > 1e-4)  # the shift is real


def test_regression_mala_matches_closed_form(regression):
    mean, sd = _exact_posterior(regression["x"], regression["y"])
    mala = regression["mala"]
    assert 0.3 < mala["acceptance"] < 0.95
    assert np.all(mala["mcse_mean"] > 0) and np.all(mala["mcse_sd"] > 0)
    assert np.all(np.abs(mala["mean"] - mean) < 4 * mala["mcse_mean"])
    assert np.all(np.abs(mala["sd"] - sd) < 4 * mala["mcse_sd"])
    # The standard errors are small enough for the comparison to mean something.
    assert np.all(mala["mcse_mean"] < 0.05 * sd)


def test_regression_variational_inference(regression):
    mean, _ = _exact_posterior(regression["x"], regression["y"])
    assert np.all(np.abs(regression["vi"]["mean"] - mean) < 0.05)
    assert regression["plot"].exists()


# --- gaussian_process.py ---------------------------------------------------------


@pytest.mark.slow
def test_gaussian_process_quick(tmp_path, standard_promotion):
    example = load_example("gaussian_process")
    r = example.main(quick=True, out=tmp_path / "gp.png")
    assert r["grad_norm"] < 1e-6
    # The field, recomputed here in numpy from the fitted latents.
    n = r["xi_fit"].shape[0]
    k = np.abs(np.fft.fftfreq(n))
    amplitude = np.zeros(n)
    amplitude[k > 0] = k[k > 0] ** (-r["alpha_fit"] / 2)
    spectrum = np.fft.fft(amplitude * r["xi_fit"])
    field = spectrum.real - spectrum.imag
    np.testing.assert_allclose(
        r["f"], field, rtol=1e-9, atol=1e-9 * np.abs(field).max()
    )
    np.testing.assert_allclose(r["f"], r["f_recomputed"], rtol=0, atol=0)
    residuals = (np.interp(r["x_obs"], r["x"], field) - r["y"]) / r["sigma"]
    assert np.all(np.abs(residuals) < 3)
    assert (tmp_path / "gp.png").exists()


# --- combinators.py --------------------------------------------------------------


def _hand_written(v, x):
    """The combinators example's network in plain JAX, on physical values.

    The shared block appears as two separate argument sets, `s1` and `s2`.
    """

    def dense(p, h):
        return p["w"] @ h + p["b"]

    h = jnp.tanh(dense(v["in"], x))
    h = jnp.tanh(dense(v["s1"], h))
    h = jnp.tanh(dense(v["s2"], h))
    residual = dense(v["r2"], jnp.tanh(dense(v["r1"], h))) + dense(v["skip"], h)
    return jnp.concatenate([residual, dense(v["head"], h)])


@pytest.mark.slow
def test_combinators_shared_gradient_is_sum_of_uses(getkey):
    example = load_example("combinators")
    model = ep.normal(example.make_model(), key=getkey())
    x = jax.random.normal(getkey(), (4,))
    u = ep.unwrap(model)
    res, head = u.layers[4].layers
    (branch, skip) = res.layers[1].layers
    layers = {
        "in": u.layers[0],
        "shared": u.layers[2].block.layers[0],
        "r1": branch.layers[0],
        "r2": branch.layers[2],
        "skip": skip,
        "head": head,
    }
    v = {k: {"w": d.weight, "b": d.bias} for k, d in layers.items() if k != "shared"}
    v["s1"] = v["s2"] = {"w": layers["shared"].weight, "b": layers["shared"].bias}
    np.testing.assert_allclose(model(x), _hand_written(v, x), rtol=1e-5, atol=1e-6)

    def loss(v):
        return jnp.sum(_hand_written(v, x) ** 2)

    g_hand = jax.grad(loss)(v)
    g_model = eqx.filter_grad(lambda p, rest: jnp.sum(ep.combine(p, rest)(x) ** 2))(
        *ep.partition(model)
    )
    shared = model.layers[2].block.layers[0]
    for name in ("weight", "bias"):
        # d loss / d latent = sigma * d loss / d value for an ep.Normal prior.
        sigma = np.asarray(getattr(shared, name).prior.sigma.value)
        key = name[0]
        use1, use2 = g_hand["s1"][key], g_hand["s2"][key]
        got = g_model[f"layers[2].block.layers[0].{name}"]
        np.testing.assert_allclose(got, sigma * (use1 + use2), rtol=1e-4, atol=1e-6)
        # Both uses contribute: neither alone is the gradient.
        assert not np.allclose(got, sigma * use1, rtol=1e-2, atol=1e-4)
        assert not np.allclose(got, sigma * use2, rtol=1e-2, atol=1e-4)
    g_in = g_model["layers[0].weight"]
    sigma_in = np.asarray(model.layers[0].weight.prior.sigma.value)
    np.testing.assert_allclose(g_in, sigma_in * g_hand["in"]["w"], rtol=1e-4, atol=1e-6)


class _Probe(eqx.Module):
    """Counts how many times the computation really runs (not just traces)."""

    def __call__(self, x):
        jax.debug.callback(_PROBE_CALLS.append, 1)
        return x


_PROBE_CALLS: list[int] = []


@pytest.mark.slow
def test_combinators_shapes_without_flops():
    example = load_example("combinators")
    in_dim, hidden, out_dim = 5, 8, 2
    model = example.Serial(_Probe(), example.make_model(in_dim, hidden, out_dim))

    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        _PROBE_CALLS.clear()
        struct = jax.ShapeDtypeStruct((in_dim,), jnp.zeros(()).dtype)
        out = example.output_shape(model, struct)
        shapes = example.param_shapes(model)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []
    assert _PROBE_CALLS == []
    assert isinstance(out, jax.ShapeDtypeStruct)
    assert out.shape == (2 * out_dim,)
    assert len(shapes) == 12
    assert shapes["layers[1].layers[0].weight"] == (hidden, in_dim)
    assert shapes["layers[1].layers[2].block.layers[0].weight"] == (hidden, hidden)
    head = "layers[1].layers[4].layers[1]"
    assert shapes[f"{head}.weight"] == (out_dim, hidden)
    assert shapes[f"{head}.bias"] == (out_dim,)
    # Every Param is still abstract: no values were made.
    assert all(
        p.is_abstract
        for p in jax.tree.leaves(model, is_leaf=ep.is_param)
        if ep.is_param(p)
    )

    # The probe does fire when the model really runs.
    concrete = ep.normal(model, key=jax.random.key(0))
    jax.block_until_ready(concrete(jnp.ones(in_dim)))
    jax.effects_barrier()
    assert _PROBE_CALLS == [1]


@pytest.mark.slow
def test_combinators_quick_ensemble():
    example = load_example("combinators")
    r = example.main(quick=True)
    assert r["gradient_check"]["err"] < 1e-5
    assert r["share_check"] < 1e-5  # the block placed twice with ep.share
    preds = np.asarray(r["predictions"])
    assert preds.shape == (8, 6)
    for i in range(8):
        for j in range(i):
            assert np.max(np.abs(preds[i] - preds[j])) > 1e-3
    w = np.asarray(r["ensemble"].layers[0].weight.latent)
    assert w.shape == (8, 16, 4)
    assert len({w[i].tobytes() for i in range(8)}) == 8


# --- surgery.py ------------------------------------------------------------------


@pytest.mark.slow
def test_surgery_quick_frozen_part_unchanged(tmp_path, standard_promotion):
    example = load_example("surgery")
    r = example.main(quick=True, out=tmp_path / "surgery.png")
    assert (tmp_path / "surgery.png").exists()
    fitted, loaded, frozen, adapted = (
        r[k] for k in ("fitted", "loaded", "frozen", "adapted")
    )

    # set_value and eqx.tree_at put the same physical mass into the fitted model.
    mass_fitted = float(ep.unwrap(fitted.plant).mass)
    for model in (loaded, r["by_tree_at"], r["by_lambda"]):
        assert float(ep.unwrap(model.plant).mass) == pytest.approx(
            mass_fitted + example.PAYLOAD, rel=1e-5
        )
    assert r["set_value_agrees"]

    # Frozen: the plant is Fixed data and bit-for-bit unchanged by training.
    plant_nodes = jax.tree.leaves(frozen.plant, is_leaf=ep.is_wrapper)
    assert plant_nodes and all(ep.is_fixed(n) for n in plant_nodes)
    before = jax.tree.leaves(frozen.plant)
    after = jax.tree.leaves(adapted.plant)
    assert len(before) == len(after) > 0
    for a, b in zip(before, after, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    np.testing.assert_allclose(
        float(ep.unwrap(adapted.plant).mass), mass_fitted + example.PAYLOAD, rtol=1e-5
    )

    # ... while the rest did train.
    latents_before = jax.tree.leaves(ep.partition(frozen.controller)[0])
    latents_after = jax.tree.leaves(ep.partition(adapted.controller)[0])
    assert len(latents_before) == len(latents_after) == 4
    moved = [
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(latents_before, latents_after, strict=True)
    ]
    assert all(moved)
    assert r["loss_adapted"] < r["loss_loaded"]
