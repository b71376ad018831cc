"""`repr`/`print` of wrappers, priors and models show physical meaning."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import eqxpurify as ep

from .conftest import X64

# The texts pin float32 spellings (`f32[...]`); float64 runs print `f64`.
pytestmark = pytest.mark.skipif(X64, reason="pins float32 text")


def test_scalar_param_shows_value_and_prior():
    p = ep.Param(1.811, prior=ep.Normal(1.0, 0.5))
    assert repr(p) == "Param(1.811, prior=Normal(1, 0.5))"


def test_vector_param_and_array_hyperparameters():
    p = ep.Param(jnp.array([0.5, 1.5, 2.5]), prior=ep.LogNormal(jnp.ones(3), 0.5))
    assert repr(p) == "Param([0.5, 1.5, 2.5], prior=LogNormal(mean=[1, 1, 1], sd=0.5))"


def test_large_param_shows_statistics_not_elements():
    p = ep.Param(jnp.arange(100.0).reshape(50, 2), prior=ep.Normal(0.0, 10.0))
    mean, std = float(jnp.mean(jnp.arange(100.0))), float(jnp.std(jnp.arange(100.0)))
    assert repr(p) == (
        f"Param(f32[50,2](mean={mean:.4g}, std={std:.4g}), prior=Normal(0, 10))"
    )


def test_abstract_param():
    p = ep.Param(shape=(4,), prior=ep.Uniform(-1.0, 1.0))
    assert repr(p) == "Param(abstract, shape=(4,), prior=Uniform(-1, 1))"


def test_bf16_param_names_its_dtype():
    p = ep.Param(jnp.array([1.0, 2.0], jnp.bfloat16))
    assert repr(p) == "Param([1, 2], dtype=bf16, prior=Normal(0, 1))"


def test_traced_param_prints_its_shape():
    seen = []

    @jax.jit
    def f(p):
        seen.append(repr(p))
        return p.value

    f(ep.Param(jnp.zeros(3), prior=ep.HalfNormal(2.0)))
    assert seen == ["Param(f32[3], prior=HalfNormal(f32[]))"]


def test_frozen_param_and_fixed():
    model = {"a": ep.Param(1.25, prior=ep.Normal(1.0, 0.5))}
    frozen = ep.freeze(model, "['a']")
    assert repr(frozen["a"]) == "Fixed(1.25, frozen from Normal(1, 0.5))"
    assert repr(ep.Fixed(jnp.array([1, 2, 3]))) == "Fixed([1, 2, 3])"
    assert repr(ep.Fixed(shape=(2,))) == "Fixed(abstract, shape=(2,))"


def test_hierarchical_prior():
    mu = ep.Param(0.5, prior=ep.Normal(0.0, 5.0))
    tau = ep.Param(2.0, prior=ep.HalfCauchy(5.0))
    theta = ep.Param(jnp.array([1.0, 2.0]), prior=ep.Normal(mu, tau))
    assert repr(theta) == (
        "Param([1, 2], prior=Normal(Param(0.5, prior=Normal(0, 5)), "
        "Param(2, prior=HalfCauchy(5))))"
    )


class Decay(eqx.Module):
    amplitude: ep.Param
    lifetime: ep.Param
    t: ep.Fixed


def test_print_model_keeps_equinox_layout():
    model = Decay(
        ep.Param(1.811, prior=ep.Normal(1.0, 0.5)),
        ep.Param(3.224, prior=ep.LogNormal(3.0, 1.0)),
        ep.Fixed(jnp.zeros(50)),
    )
    assert str(model) == (
        "Decay(\n"
        "  amplitude=Param(1.811, prior=Normal(1, 0.5)),\n"
        "  lifetime=Param(3.224, prior=LogNormal(mean=3, sd=1)),\n"
        "  t=Fixed(f32[50](mean=0, std=0))\n"
        ")"
    )


# treescope reads every public `jax` name, deprecated ones included (jax < 0.10).
@pytest.mark.filterwarnings("ignore::DeprecationWarning:treescope.canonical_aliases")
def test_treescope_shows_physical_value():
    treescope = pytest.importorskip("treescope")
    model = {"lifetime": ep.Param(3.224, prior=ep.LogNormal(3.0, 1.0))}
    text = treescope.render_to_text(model)
    assert "3.224" in text and "trains=True" in text
    assert "LogNormal" in text
