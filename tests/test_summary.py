"""`summary`: the table of a model's nodes."""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import eqxpurify as ep
from eqxpurify import freeze, summary, wrap

from .conftest import DEFAULT_FLOAT, raises_and_keeps

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


# ---------------------------------------------------------------------------
# The whole table, pinned: every number below was checked by hand (see the
# comment beside each model).


def mixed_model():
    """One of each kind of entry, floats in the default float of the run."""
    f32 = DEFAULT_FLOAT
    mu = ep.Param(jnp.asarray(0.5, f32), prior=ep.Normal(0.0, 5.0), name="mu")
    return {
        "a": ep.Param(jnp.array([1.0, 3.0], f32), prior=ep.Normal(mu, 2.0)),
        "b": ep.Param(jnp.array([2.0], f32), prior=ep.Normal(mu, 1.0)),
        "bools": jnp.array([True, False, True]),
        "c": jnp.array([1 + 2j, 3j], jnp.complex64),
        "empty": jnp.zeros((0, 3), f32),
        "f": ep.Fixed(jnp.arange(1000.0, dtype=f32)),
        "fn": jnp.tanh,
        "g": ep.Fixed(jnp.array([1, 2], jnp.int32)),
        "i": ep.Intermediate(),
        "i2": ep.Intermediate(),
        "k": ep.Fixed(jax.random.key(0)),
        "n": 3.0,
    }


# a = [1, 3]: mean 2, std 1; mu = 0.5 (shared: one row, counted once); b = [2];
# bools = [1, 0, 1]: mean 2/3, std sqrt(2/9) = 0.4714; complex and empty arrays
# have no statistics but train (inexact); arange(1000): mean 499.5, std
# sqrt((1000**2 - 1) / 12) = 288.68; [1, 2]: 1.5, 0.5; keys: no statistics;
# functions and Python numbers are not listed. Params: 2 + 1 + 1 = 4 elements;
# Fixed: 1000 + 2 + 1 (a key) = 1,003; arrays: 3 + 2 + 0 = 5.
MIXED = """\
path              kind          trains  shape    dtype      prior                                                   mean     std  min  max
----------------  ------------  ------  -------  ---------  ----------------------------------------------------  ------  ------  ---  ---
['a']             Param         yes     (2,)     float32    Normal(Param(0.5, prior=Normal(0, 5), name='mu'), 2)       2       1    1    3
['a'].prior.mean  Param         yes     ()       float32    Normal(0, 5)                                             0.5       0  0.5  0.5
['b']             Param         yes     (1,)     float32    Normal(Param(0.5, prior=Normal(0, 5), name='mu'), 1)       2       0    2    2
['bools']         array         no      (3,)     bool       -                                                     0.6667  0.4714    0    1
['c']             array         yes     (2,)     complex64  -                                                          -       -    -    -
['empty']         array         yes     (0, 3)   float32    -                                                          -       -    -    -
['f']             Fixed         no      (1000,)  float32    -                                                      499.5   288.7    0  999
['g']             Fixed         no      (2,)     int32      -                                                        1.5     0.5    1    2
['i']             Intermediate  -       -        -          -                                                          -       -    -    -
['i2']            Intermediate  -       -        -          -                                                          -       -    -    -
['k']             Fixed         no      ()       key<fry>   -                                                          -       -    -    -
Total: 3 Params (4 elements), 3 Fixed (1,003 elements), 2 Intermediates, 3 arrays (5 elements)"""  # noqa: E501


def test_whole_table_of_every_kind():
    assert summary(mixed_model()) == MIXED.replace("float32", DEFAULT)


def test_whole_table_of_a_frozen_hierarchical_model():
    # Freezing `a` freezes its prior's Params too: the shared `mu` is one
    # parameter, so `b`'s use of it is frozen as well, and listed (a frozen Param
    # in a Param's prior) under `b`. Fixed: 1,003 + a's 2 + mu's 1 = 1,006.
    text = summary(freeze(mixed_model(), "['a']"))
    lines = text.replace(DEFAULT, "float32").splitlines()
    assert lines[:5] == [
        "path              kind          trains  shape    dtype      prior                      mean     std  min  max",  # noqa: E501
        "----------------  ------------  ------  -------  ---------  -----------------------  ------  ------  ---  ---",  # noqa: E501
        "['a']             Fixed         no      (2,)     float32    Normal(0.5, 2) (frozen)       2       1    1    3",  # noqa: E501
        "['b']             Param         yes     (1,)     float32    Normal(0.5, 1)                2       0    2    2",  # noqa: E501
        "['b'].prior.mean  Fixed         no      ()       float32    Normal(0, 5) (frozen)       0.5       0  0.5  0.5",  # noqa: E501
    ]
    assert lines[-1] == (
        "Total: 1 Param (1 element), 5 Fixed (1,006 elements), 2 Intermediates, "
        "3 arrays (5 elements)"
    )


def test_whole_table_of_abstract_entries():
    # No values: dashes, but shapes, dtypes, priors and element counts are known.
    text = summary(ep.shapes(mixed_model()))
    lines = text.replace(DEFAULT, "float32").splitlines()
    assert lines[2] == (
        "['a']             Param         yes     (2,)     float32    "
        "Normal(Param(abstract, shape=(), prior=Normal(0, 5), name='mu'), 2)"
        "       -       -    -    -"
    )
    assert lines[3] == (
        "['a'].prior.mean  Param         yes     ()       float32    Normal(0, 5)"
        + " " * 62
        + "-       -    -    -"
    )
    assert lines[-1] == (
        "Total: 3 Params (4 elements), 3 Fixed (1,003 elements), 2 Intermediates, "
        "3 arrays (5 elements)"
    )
    # An abstract Fixed, and an abstract frozen Param (its remembered prior holds
    # the frozen, abstract `mu`).
    model = {
        "t": ep.Fixed(shape=(2, 3), dtype=jnp.int32),
        "w": ep.Param(shape=(4,), dtype=jnp.float32, prior=ep.Normal(0.0, 2.0)),
    }
    assert summary(freeze(model, "['w']")) == "\n".join(
        [
            "path   kind   trains  shape   dtype    prior                  mean  std  min  max",  # noqa: E501
            "-----  -----  ------  ------  -------  ---------------------  ----  ---  ---  ---",  # noqa: E501
            "['t']  Fixed  no      (2, 3)  int32    -                         -    -    -    -",  # noqa: E501
            "['w']  Fixed  no      (4,)    float32  Normal(0, 2) (frozen)     -    -    -    -",  # noqa: E501
            "Total: 0 Params (0 elements), 2 Fixed (10 elements)",
        ]
    )


def test_one_of_each_is_singular():
    f32 = jnp.float32
    model = {
        "f": ep.Fixed(jnp.asarray(4.0, f32)),
        "i": ep.Intermediate(),
        "p": ep.Param(jnp.asarray(-2.0, f32)),
        "x": jnp.asarray(7, jnp.int32),
    }
    assert summary(model) == "\n".join(
        [
            "path   kind          trains  shape  dtype    prior         mean  std  min  max",  # noqa: E501
            "-----  ------------  ------  -----  -------  ------------  ----  ---  ---  ---",  # noqa: E501
            "['f']  Fixed         no      ()     float32  -                4    0    4    4",  # noqa: E501
            "['i']  Intermediate  -       -      -        -                -    -    -    -",  # noqa: E501
            "['p']  Param         yes     ()     float32  Normal(0, 1)    -2    0   -2   -2",  # noqa: E501
            "['x']  array         no      ()     int32    -                7    0    7    7",  # noqa: E501
            "Total: 1 Param (1 element), 1 Fixed (1 element), 1 Intermediate, "
            "1 array (1 element)",
        ]
    )


def test_a_lone_param_and_big_numbers():
    # A model that is one Param: its path is `<model>`.
    assert summary(ep.Param(jnp.asarray(2.0, jnp.float32))).splitlines()[2] == (
        "<model>  Param  yes     ()     float32  Normal(0, 1)     2    0    2    2"
    )
    # Four significant digits, in exponent form when large: [1e6, 3e6] has mean
    # 2e6 and std 1e6.
    big = {"big": ep.Fixed(jnp.array([1_000_000, 3_000_000], jnp.int32))}
    assert _rows(summary(big))[2] == [
        "['big']", "Fixed", "no", "(2,)", "int32", "-", "2e+06", "1e+06", "1e+06",
        "3e+06",
    ]  # fmt: skip
    # [0.123456, 1.0]: mean 0.561728, std 0.438272.
    small = {"s": ep.Fixed(jnp.array([0.123456, 1.0], jnp.float32))}
    assert _rows(summary(small))[2][-4:] == ["0.5617", "0.4383", "0.1235", "1"]
    # uint8 and negative integers are statistics too.
    data = {"u": jnp.array([0, 255], jnp.uint8), "n": jnp.array([-3, -1], jnp.int8)}
    body = {r[0]: r[1:] for r in _rows(summary(data))[2:-1]}
    assert body["['u']"][-4:] == ["127.5", "127.5", "0", "255"]
    assert body["['n']"][-4:] == ["-2", "1", "-3", "-1"]


def test_shared_param_is_one_row():
    layer = ep.share({"w": ep.Param(jnp.array([1.0, 2.0], jnp.float32))}, "layer")
    text = summary({"first": layer, "second": layer})
    assert [row[0] for row in _rows(text)[2:-1]] == ["['first']['w']"]
    assert text.splitlines()[-1] == (
        "Total: 1 Param (2 elements), 0 Fixed (0 elements)"
    )
    # Unnamed Params are separate rows, and a shared one in a prior is listed
    # at its first use only, with its own hyperparameter Params.
    nu = ep.Param(jnp.asarray(1.0, jnp.float32), name="nu")
    mu = ep.Param(jnp.asarray(0.0, jnp.float32), prior=ep.Normal(nu, 1.0), name="mu")
    model = {
        "x": ep.Param(jnp.zeros(2, jnp.float32), prior=ep.Normal(mu, 1.0)),
        "y": mu,
        "z": ep.Param(jnp.zeros(3, jnp.float32), prior=ep.Normal(nu, 1.0)),
    }
    assert [row[0] for row in _rows(summary(model))[2:-1]] == [
        "['x']", "['x'].prior.mean", "['x'].prior.mean.prior.mean", "['z']"
    ]  # fmt: skip
    assert summary(model).splitlines()[-1] == (
        "Total: 4 Params (7 elements), 0 Fixed (0 elements)"
    )


def test_one_unnamed_param_in_two_places_is_refused():
    """As by every other function: listed twice, it would read as two
    parameters, and it is two after any rebuild. Named, it is one row."""
    theta = ep.Param(jnp.asarray(1.0, jnp.float32), prior=ep.LogNormal(1.0, 1.0))
    fix = '`ep.Param(..., name="...")`, or `ep.share(module, "name")`'
    for model, first, later in [
        ({"a": theta, "b": theta}, "['a']", "['b']"),
        (
            {"a": ep.Param(jnp.zeros(2), prior=ep.Normal(theta, 1.0)), "b": theta},
            "['a'].prior.mean",
            "['b']",
        ),
    ]:
        raises_and_keeps(
            lambda: summary(model),
            model,
            ValueError,
            f"`ep.summary`: the Param at `{later}` is the same object as the one "
            f"at `{first}`.",
            fix,
        )
    named = ep.Param(jnp.asarray(1.0, jnp.float32), name="theta")
    assert [row[0] for row in _rows(summary({"a": named, "b": named}))[2:-1]] == [
        "['a']"
    ]


def test_gradient_of_a_hierarchical_model():
    f32 = jnp.float32
    mu = ep.Param(jnp.asarray(0.5, f32), prior=ep.Normal(0.0, 5.0))
    model = {
        "t": ep.Param(jnp.array([1.0, 3.0], f32), prior=ep.Normal(mu, 2.0)),
        "x": ep.Fixed(jnp.array([1.0, 2.0], f32)),
    }

    def loss(m):
        plain = ep.unwrap(m)
        return jnp.sum(plain["t"] * plain["x"])

    grads = eqx.filter_grad(loss)(model)
    # t = mu + 2 z_t, mu = 5 z_mu: d/dz_t = 2 x = [2, 4]; d/dz_mu = 5 sum(x) = 15.
    rows = {row[0]: row[1:] for row in _rows(summary(grads))[2:-1]}
    assert rows["['t']"][:4] == ["Param", "yes", "(2,)", "float32"]
    assert rows["['t']"][4].endswith(" (latent shown)")
    assert rows["['t']"][-4:] == ["3", "1", "2", "4"]
    assert rows["['t'].prior.mean"][-5:] == [
        "Normal(None, None) (latent shown)", "15", "0", "15", "15"
    ]  # fmt: skip
    assert rows["['x']"] == ["Fixed"] + ["-"] * 8
    # A filtered model keeping the latents: the latents, z_t = (t - 0.5) / 2 =
    # [0.25, 1.25] and z_mu = 0.5 / 5 = 0.1, are shown.
    kept = eqx.filter(model, eqx.is_inexact_array)
    rows = {row[0]: row[1:] for row in _rows(summary(kept))[2:-1]}
    assert rows["['t']"][-4:] == ["0.75", "0.5", "0.25", "1.25"]
    assert rows["['t'].prior.mean"][-4:] == ["0.1", "0", "0.1", "0.1"]
    # A frozen Param left out by a filter still shows the prior it remembers.
    out = eqx.filter(freeze(model, "['t']"), lambda x: False)
    assert summary(out) == "\n".join(
        [
            "path   kind   trains  shape  dtype  prior                        mean  std  min  max",  # noqa: E501
            "-----  -----  ------  -----  -----  ---------------------------  ----  ---  ---  ---",  # noqa: E501
            "['t']  Fixed  -       -      -      Normal(None, None) (frozen)     -    -    -    -",  # noqa: E501
            "['x']  Fixed  -       -      -      -                               -    -    -    -",  # noqa: E501
            "Total: 0 Params (0 elements), 2 Fixed (0 elements)",
        ]
    )


def test_under_vmap_values_are_dashes():
    f32 = jnp.float32
    texts = []

    def f(z):
        model = {
            "p": ep.Param.from_latent(z, prior=ep.Normal(1.0, 2.0)),
            "t": ep.Fixed(z),
        }
        texts.append(summary(model))
        return z

    jax.vmap(f)(jnp.ones((3, 2), f32))
    rows = {row[0]: row[1:] for row in _rows(texts[0])[2:-1]}
    assert rows["['p']"][:3] == ["Param", "yes", "(2,)"]
    assert rows["['p']"][-4:] == ["-"] * 4
    assert rows["['t']"] == ["Fixed", "no", "(2,)", "float32", "-"] + ["-"] * 4
    assert texts[0].splitlines()[-1] == (
        "Total: 1 Param (2 elements), 1 Fixed (2 elements)"
    )


def test_summary_errors(unchecked_types):
    class Holder(eqx.Module):
        p: ep.Param

    info = raises_and_keeps(
        lambda: summary(Holder), None, TypeError, "got the class `Holder` itself"
    )
    assert "Construct it first" in str(info.value)
    model = Holder(1.0)  # pyright: ignore[reportArgumentType]
    raises_and_keeps(
        lambda: summary(model),
        model,
        TypeError,
        "`ep.summary`: the field `p` is declared `Param` but holds a float",
        "`ep.set_value(model, where, value)`",
    )
    # None in a wrapper's place is how a filter leaves it out: shown, not refused.
    assert summary(Holder(None)).splitlines()[-1] == (  # pyright: ignore[reportArgumentType]
        "Total: 0 Params (0 elements), 0 Fixed (0 elements)"
    )


def test_summary_of_a_prior_of_another_shape_names_the_path():
    model = {"p": ep.Param(jnp.ones(2))}
    bad = eqx.tree_at(lambda m: m["p"].prior, model, ep.Normal(jnp.zeros((3, 2)), 1.0))
    raises_and_keeps(
        lambda: summary(bad),
        bad,
        ValueError,
        "`ep.summary`: the Param at `['p']`: The prior `Normal` makes the value of "
        "shape (3, 2) from a latent of shape (2,)",
    )
