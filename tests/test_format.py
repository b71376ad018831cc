"""`repr`/`print` of wrappers, priors and models show physical meaning."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep
from eqxpurify._format import dtype_note, short_dtype, spec, value_str

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


# --- the text of one array or dtype (`_format`'s pieces) ----------------------------


@pytest.mark.parametrize(
    "dtype, text",
    [
        (jnp.float32, "f32"),
        (jnp.float16, "f16"),
        (jnp.bfloat16, "bf16"),
        (jnp.int8, "i8"),
        (jnp.uint16, "u16"),
        (jnp.complex64, "c64"),
        (jnp.bool_, "bool"),
        (np.dtype("V4"), "void32"),  # no short prefix: the dtype's own name
    ],
)
def test_short_dtype(dtype, text):
    assert short_dtype(dtype) == text


def test_short_dtype_and_text_of_keys():
    keys = jax.random.split(jax.random.key(0), 3)
    assert short_dtype(keys.dtype) == "key<fry>"
    assert value_str(keys) == "key<fry>[3]" and value_str(keys[0]) == "key<fry>[]"


def test_spec_and_dtype_note():
    assert spec((100, 3), jnp.float32) == "f32[100,3]"
    assert spec((), jnp.int32) == "i32[]"
    assert dtype_note(jnp.float32) == "" and dtype_note(jnp.float16) == ", dtype=f16"


@pytest.mark.parametrize(
    "x, text",
    [
        (jnp.asarray(1.8114), "1.811"),
        (jnp.asarray([True, False]), "[True, False]"),
        (jnp.asarray(1 + 2j, jnp.complex64), "1+2j"),
        (jnp.asarray([12345, 7]), "[12345, 7]"),  # integers as they are
        (jnp.asarray(1 / 3, jnp.bfloat16), "0.334"),  # bf16 and f16 via float32
        (jnp.asarray([1 / 3], jnp.float16), "[0.3333]"),
        (jnp.arange(6.0), "[0, 1, 2, 3, 4, 5]"),  # six elements one by one
        (jnp.arange(7.0), "f32[7](mean=3, std=2)"),  # seven: statistics
        (jnp.ones((2, 3)), "f32[2,3][1, 1, 1, 1, 1, 1]"),
        (jnp.arange(10), "i32[10](mean=4.5, std=2.872)"),
        (jnp.ones(10, bool), "bool[10]"),  # no statistics for booleans
        (jnp.ones(10, jnp.complex64), "c64[10]"),  # nor for complex numbers
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_value_str(x, text):
    assert value_str(x) == text


def test_value_str_of_a_traced_array_is_its_spec():
    seen = []

    @jax.jit
    def f(x):
        seen.append(value_str(x))
        return x

    f(jnp.ones((2, 3)))
    assert seen == ["f32[2,3]"]


def test_treescope_marks_wrappers_as_not_roundtrippable_and_keeps_paths():
    # `Param(value=..., prior=...)` is not a call that rebuilds the Param: in
    # treescope's round-trip mode it is shown in angle brackets; and the paths
    # its "copy path" buttons give reach into the wrapper.
    treescope = pytest.importorskip("treescope")
    model = {"lifetime": ep.Param(3.224, prior=ep.LogNormal(3.0, 1.0))}
    text = treescope.render_to_text(model, roundtrip_mode=True)
    assert "<eqxpurify._param.Param(" in text
    html = treescope.render_to_html(model, compressed=False)
    assert "data-copy=\"['lifetime'].prior\"" in html


def test_value_str_of_a_large_float64_array():
    # Statistics are computed in float32 whatever the dtype (a float64 mean beside
    # a float32 std would be a promotion error under the suite's strict rules).
    with jax.enable_x64(True):
        x = jnp.arange(7.0, dtype=jnp.float64)
        assert value_str(x) == "f64[7](mean=3, std=2)"
