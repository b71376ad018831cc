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


# --- trees that Equinox's filters and gradients make from a model -----------------


class _Hybrid(eqx.Module):
    a: ep.Param
    h: ep.Param
    t: ep.Fixed
    lin: eqx.nn.Linear

    def __init__(self):
        self.a = ep.Param(1.0, prior=ep.LogNormal(2.0, 0.5))
        mean = ep.Param(0.3, prior=ep.Normal(0.0, 2.0))
        self.h = ep.Param(jnp.ones(3), prior=ep.Normal(mean, 1.0))
        self.t = ep.Fixed(jnp.arange(3.0))
        self.lin = eqx.nn.Linear(2, 2, key=jax.random.key(0))

    @ep.unwrapped
    def __call__(self):
        return jnp.sum(self.a * self.t * self.h) + jnp.sum(self.lin(jnp.ones(2)))


def _grads():
    return eqx.filter_grad(lambda m: m())(_Hybrid())


def test_gradient_of_a_model_prints_its_latents():
    grads = _grads()
    # h = mean + z_h, so d/dz_h = a * t = [0, 1, 2]; mean = 0 + 2 * z_mean, so
    # d/dz_mean = 2 * sum(a * t) = 6.
    assert repr(grads.h) == (
        "Param(latent=[0, 1, 2], prior=Normal(Param(latent=6, prior=Normal(None, "
        "None)), None))"
    )
    assert repr(grads.t) == "Fixed(None)"
    text = eqx.tree_pformat(grads)
    assert "a=Param(latent=" in text and "prior=LogNormal(mean=None, sd=None))" in text
    assert "t=Fixed(None)" in text
    assert str(grads) == text


def test_filtered_model_prints():
    model = _Hybrid()
    trainable = eqx.filter(model, eqx.is_inexact_array)
    assert repr(trainable.t) == "Fixed(None)"
    latent = f"{float(model.a.latent):.4g}"
    assert repr(trainable.a) == (
        f"Param(latent={latent}, prior=LogNormal(mean=None, sd=None))"
    )
    rest = eqx.filter(model, eqx.is_inexact_array, inverse=True)
    assert repr(rest.a) == "Param(latent=None, prior=LogNormal(mean=2, sd=0.5))"
    assert repr(rest.t) == "Fixed([0, 1, 2])"
    for tree in (trainable, rest):
        assert "Fixed" in eqx.tree_pformat(tree)


def test_gradient_prints_under_jit_and_in_treescope(capfd):
    import treescope

    grads = _grads()
    rendered = treescope.render_to_text(grads)
    assert "Fixed(" in rendered and "stored=None" in rendered

    @jax.jit
    def show(g):
        jax.debug.print("{g}", g=g)
        return g.h.latent

    show(grads).block_until_ready()
    assert "Fixed(None)" in capfd.readouterr().out
