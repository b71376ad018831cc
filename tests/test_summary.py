"""`summary`: the table of a model's nodes."""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import eqxpurify as ep
from eqxpurify import freeze, summary, wrap

from .conftest import DEFAULT_FLOAT

DEFAULT = jnp.dtype(DEFAULT_FLOAT).name  # float32, or float64 in the x64 run
SHORT = {"float32": "f32", "float64": "f64"}[DEFAULT]


class Model(eqx.Module):
    """The README's example."""

    alpha: ep.Param
    offset: ep.Param
    x_obs: ep.Fixed
    encoder: eqx.nn.Linear
    field: ep.Intermediate
    counts: jax.Array


def make_model():
    f32 = jnp.float32
    linear = eqx.nn.Linear(2, 3, key=jax.random.key(0), dtype=f32)
    linear = eqx.tree_at(
        lambda m: (m.weight, m.bias),
        linear,
        (jnp.array([[1.0, -1.0], [2.0, 0.0], [0.0, 0.5]], f32), jnp.zeros(3, f32)),
    )
    return Model(
        alpha=ep.Param(jnp.asarray(2.5, f32), prior=ep.LogNormal(3.0, 0.1)),
        offset=ep.Param(
            shape=(4,), dtype=f32, prior=ep.Normal(jnp.arange(4.0, dtype=f32), 0.5)
        ),
        x_obs=ep.Fixed(jnp.array([0.0, 1.0, 2.0], f32)),
        encoder=wrap(linear),
        field=ep.Intermediate(),
        counts=jnp.array([1, 2, 3, 4], jnp.int32),
    )


def _rows(text):
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()]


def test_rows():
    text = summary(make_model())
    rows = _rows(text)
    assert rows[0] == [
        "path", "kind", "trains", "shape", "dtype", "prior", "mean", "std", "min",
        "max",
    ]  # fmt: skip
    assert set(text.splitlines()[1]) == {"-", " "}
    body = {row[0]: row[1:] for row in rows[2:-1]}
    assert list(body) == [
        "alpha", "offset", "x_obs", "encoder.weight", "encoder.bias", "field", "counts"
    ]  # fmt: skip
    assert body["alpha"] == [
        "Param", "yes", "()", "float32", "LogNormal(mean=3, sd=0.1)", "2.5", "0", "2.5",
        "2.5",
    ]  # fmt: skip
    # Small array hyperparameters are shown by value.
    assert body["offset"] == [
        "Param", "yes", "(4,)", "float32", "Normal([0, 1, 2, 3], 0.5)", "-", "-", "-",
        "-",
    ]  # fmt: skip
    assert body["x_obs"] == [
        "Fixed", "no", "(3,)", "float32", "-", "1", "0.8165", "0", "2"
    ]  # fmt: skip
    assert body["encoder.weight"] == [
        "Param", "yes", "(3, 2)", "float32", "Normal(0, 0.7071)", "0.4167", "0.9317",
        "-1", "2",
    ]  # fmt: skip
    assert body["encoder.bias"] == [
        "Param", "yes", "(3,)", "float32", "Normal(0, 1)", "0", "0", "0", "0"
    ]  # fmt: skip
    assert body["field"] == ["Intermediate"] + ["-"] * 8
    assert body["counts"] == [
        "array", "no", "(4,)", "int32", "-", "2.5", "1.118", "1", "4"
    ]  # fmt: skip
    assert rows[-1] == [
        "Total: 4 Params (14 elements), 1 Fixed (3 elements), 1 Intermediate, "
        "1 array (4 elements)"
    ]


def test_frozen_and_keys():
    model = freeze(make_model(), "encoder")
    model = eqx.tree_at(lambda m: m.counts, model, jax.random.key(0))
    body = {row[0]: row[1:] for row in _rows(summary(model))[2:-1]}
    assert body["encoder.weight"][:5] == [
        "Fixed", "no", "(3, 2)", "float32", "Normal(0, 0.7071) (frozen)"
    ]  # fmt: skip
    assert body["counts"] == ["array", "no", "()", "key<fry>"] + ["-"] * 5
    last = summary(model).splitlines()[-1]
    assert last.startswith("Total: 2 Params (5 elements), 3 Fixed (12 elements)")


def test_empty_and_plain():
    assert (
        summary({}).splitlines()[-1]
        == "Total: 0 Params (0 elements), 0 Fixed (0 elements)"
    )
    text = summary(eqx.nn.Linear(3, 4, key=jax.random.key(0)))
    assert text.splitlines()[-1] == (
        "Total: 0 Params (0 elements), 0 Fixed (0 elements), 2 arrays (16 elements)"
    )
    # Plain floating arrays train (Equinox's meaning of trainable).
    body = {row[0]: row[1:] for row in _rows(text)[2:-1]}
    assert body["weight"][:4] == ["array", "yes", "(4, 3)", DEFAULT]
    assert body["bias"][:4] == ["array", "yes", "(4,)", DEFAULT]


def test_nested_params_are_listed():
    mu = ep.Param(0.5, prior=ep.Normal(0.0, 5.0))
    tau = ep.Param(2.0, prior=ep.HalfCauchy(1.0))
    model = {"theta": ep.Param(jnp.zeros(3), prior=ep.Normal(mu, tau))}
    rows = _rows(summary(model))
    body = {row[0]: row[1:] for row in rows[2:-1]}
    assert list(body) == ["['theta']", "['theta'].prior.mean", "['theta'].prior.sigma"]
    assert body["['theta']"][:5] == [
        "Param", "yes", "(3,)", DEFAULT,
        "Normal(Param(0.5, prior=Normal(0, 5)), Param(2, prior=HalfCauchy(1)))",
    ]  # fmt: skip
    assert body["['theta'].prior.mean"] == [
        "Param", "yes", "()", DEFAULT, "Normal(0, 5)", "0.5", "0", "0.5", "0.5"
    ]  # fmt: skip
    assert body["['theta'].prior.sigma"][:5] == [
        "Param", "yes", "()", DEFAULT, "HalfCauchy(1)"
    ]  # fmt: skip
    assert rows[-1] == ["Total: 3 Params (5 elements), 0 Fixed (0 elements)"]


def test_under_jit_values_are_dashes():
    model = make_model()
    texts = []

    @jax.jit
    def f(m):
        texts.append(summary(m))
        return ep.unwrap(m).alpha

    f(model)
    body = {row[0]: row[1:] for row in _rows(texts[0])[2:-1]}
    # Hyperparameters are traced too (in the default float: Python numbers given).
    prior = f"LogNormal(mean={SHORT}[], sd={SHORT}[])"
    assert body["alpha"] == ["Param", "yes", "()", "float32", prior] + ["-"] * 4
    assert body["x_obs"] == ["Fixed", "no", "(3,)", "float32"] + ["-"] * 5


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision(dtype):
    param = ep.Param(jnp.array([1.0, 3.0], dtype))
    rows = _rows(summary({"p": param}))
    assert rows[2] == [
        "['p']",
        "Param",
        "yes",
        "(2,)",
        jnp.dtype(dtype).name,
        "Normal(0, 1)",
        "2",
        "1",
        "1",
        "3",
    ]


def test_print_model_stays_short():
    text = str(make_model())
    assert len(text.splitlines()) <= 20
    # Physical values, not the whitened latents; priors by their hyperparameters.
    # The dtype is shown only where it is not the default float.
    note = "" if DEFAULT == "float32" else ", dtype=f32"
    assert f"alpha=Param(2.5{note}, prior=LogNormal(mean=3, sd=0.1))" in text
    assert "x_obs=Fixed([0, 1, 2])" in text


def test_gradients_and_filtered_models_summarise(float_dtype):
    class Model(eqx.Module):
        a: ep.Param
        t: ep.Fixed

        @ep.unwrapped
        def __call__(self):
            return jnp.sum(self.a * self.t)

    t = jnp.arange(3.0, dtype=float_dtype)
    model = Model(ep.Param(jnp.ones(2, float_dtype), prior=ep.Normal(0.0, 2.0)), t)
    model = eqx.tree_at(
        lambda m: m.t, model, ep.Fixed(jnp.arange(2.0, dtype=float_dtype))
    )
    grads = eqx.filter_grad(lambda m: m())(model)
    rows = {line.split()[0]: line.split() for line in summary(grads).splitlines()[2:-1]}
    # d/dz = sigma * t = [0, 2]: the latent's gradient, shown as such
    assert rows["a"][:5] == ["a", "Param", "yes", "(2,)", jnp.dtype(float_dtype).name]
    assert "(latent shown)" in summary(grads)
    assert rows["a"][-4:] == ["1", "1", "0", "2"]
    assert rows["t"] == ["t", "Fixed", *["-"] * 8]  # left out by the gradient
    assert summary(grads).endswith("Total: 1 Param (2 elements), 1 Fixed (0 elements)")
    kept = eqx.filter(model, eqx.is_inexact_array, inverse=True)
    rows = {line.split()[0]: line.split() for line in summary(kept).splitlines()[2:-1]}
    assert rows["a"][:3] == ["a", "Param", "-"] and rows["t"][-4:] == [
        "0.5",
        "0.5",
        "0",
        "1",
    ]
