"""Physical values by path: `ep.set_value` and `ep.load_values` check each value
(shape, dtype, range, support) and name the path; a failed call changes
nothing."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep
from eqxpurify import freeze, load_values, set_value, unfreeze

from .conftest import DEFAULT_FLOAT, fingerprint, raises_and_keeps
from .models import Holder, fitted, net

LOW = [jnp.float16, jnp.bfloat16, jnp.float8_e4m3fn]


class Low(eqx.Module):
    p: ep.Param
    x: ep.Fixed


def low(dtype: Any) -> Low:
    return Low(ep.Param(jnp.zeros(2, dtype)), ep.Fixed(jnp.zeros(2, dtype)))


@pytest.mark.parametrize("dtype", LOW, ids=lambda d: jnp.dtype(d).name)
def test_python_float_into_low_precision(dtype):
    model = low(dtype)
    want = jnp.full((2,), 1.5, dtype)
    for where in ("p", "x"):
        out = ep.set_value(model, where, np.full(2, 1.5, dtype))
        assert getattr(ep.unwrap(out), where).dtype == jnp.dtype(dtype)
    scalar = Low(ep.Param(jnp.zeros((), dtype)), ep.Fixed(jnp.zeros((), dtype)))
    for where in ("p", "x"):
        out = ep.set_value(scalar, where, 1.5)
        got = getattr(ep.unwrap(out), where)
        assert got.dtype == jnp.dtype(dtype) and float(got) == 1.5
    out = ep.load_values(scalar, {"p": 1.5, "x": 1.5})
    plain = ep.unwrap(out)
    assert float(plain.p) == float(plain.x) == 1.5
    assert bool(jnp.all(ep.unwrap(ep.set_value(model, "x", want)).x == want))


@pytest.mark.parametrize(
    "dtype",
    [
        jnp.float16,
        jnp.bfloat16,
    ],
    ids=["f16", "bf16"],
)
def test_python_float_overflowing_low_precision(dtype):
    model = Low(ep.Param(jnp.zeros((), dtype)), ep.Fixed(jnp.zeros((), dtype)))
    name = jnp.dtype(dtype).name
    for where in ("p", "x"):
        raises_and_keeps(
            lambda: ep.set_value(model, where, 1e39),
            model,
            ValueError,
            match=(
                rf"`ep\.set_value`: the value for the (Param|Fixed) at `{where}` "
                rf"overflows "
                rf"{name} \(it becomes inf\)\. Pass a value within {name}'s range, or "
                rf"use "
                r"a wider dtype"
            ),
        )
    raises_and_keeps(
        lambda: ep.load_values(model, {"p": 0.0, "x": 1e39}),
        model,
        ValueError,
        match=rf"`ep\.load_values`: the value for the Fixed at `x` overflows {name}",
    )


def test_typed_array_of_another_float_dtype():
    model = low(jnp.float16)
    raises_and_keeps(
        lambda: ep.set_value(model, "x", np.ones(2, np.float32)),
        model,
        TypeError,
        match=(
            r"the Fixed at `x` has dtype float16, but the value has dtype float32\. "
            r"Cast "
            r"it first \(`value\.astype\(jnp\.float16\)`\)"
        ),
    )
    out = ep.set_value(model, "x", np.ones(2, np.float16))
    assert ep.unwrap(out).x.tolist() == [1.0, 1.0]


def test_set_value_latent_overflow_names_the_dtype():
    model = Holder(ep.Param(0.0, prior=ep.Normal(0.0, 1e-5), dtype=jnp.float16))
    raises_and_keeps(
        lambda: ep.set_value(model, "p", 1.0),
        model,
        ValueError,
        match=r"Param at `p`.*overflows float16.*wider",
    )


def test_traced_low_precision_overflow():
    model = Holder(ep.Param(0.0, prior=ep.Normal(0.0, 1e-5), dtype=jnp.float16))
    fn = eqx.filter_jit(lambda m, v: ep.set_value(m, "p", v).p.latent)
    with pytest.raises(Exception) as info:
        jax.block_until_ready(fn(model, jnp.float16(1.0)))
    assert "Param at `p`" in str(info.value)
    assert float(fn(model, jnp.float16(1e-5))) == pytest.approx(1.0, rel=1e-2)


@pytest.mark.parametrize(
    "dtype, value", [(jnp.int8, 300), (jnp.uint8, -1)], ids=["int8-300", "uint8--1"]
)
def test_python_int_out_of_range_names_the_path(dtype, value):
    model = {"counts": ep.Fixed(jnp.arange(3, dtype=dtype))}
    raises_and_keeps(
        lambda: ep.set_value(model, "['counts']", value),
        model,
        ValueError,
        match=r"Fixed at `\['counts'\]`.*(int8|uint8)",
    )


def test_python_int_into_a_bool_fixed():
    model = {"mask": ep.Fixed(jnp.array([True, False]))}
    raises_and_keeps(
        lambda: ep.set_value(model, "['mask']", 2),
        model,
        TypeError,
        match=r"Fixed at `\['mask'\]` has dtype bool",
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"table['a']": 1.0, 'table["a"]': 2.0},
        {".alpha": 1.0},
        {" alpha": 1.0},
        {"alpha ": 1.0},
    ],
    ids=["quotes", "leading-dot", "leading-space", "trailing-space"],
)
def test_load_values_path_given_twice(extra):
    model = net()
    values = {**ep.values(model), **extra}
    raises_and_keeps(
        lambda: ep.load_values(model, values),
        model,
        ValueError,
        match=(
            r"`ep\.load_values`: the path `(table\['a'\]|alpha)` is given twice \(as "
            r"`.+` "
            r"and another spelling of it\)\. Give each path once"
        ),
    )


@pytest.mark.parametrize("key", [None, 3], ids=["None", "int"])
def test_load_values_key_of_wrong_type(key, unchecked_types):
    model = net()
    raises_and_keeps(
        lambda: ep.load_values(model, {key: 1.0}, strict=False),
        model,
        TypeError,
        match=r"`ep\.load_values`.*path",
    )


def test_load_values_unknown_and_inner_paths():
    model = net()
    values = ep.values(model)
    raises_and_keeps(
        lambda: ep.load_values(model, {**values, "alpha.latent": 1.0}),
        model,
        ValueError,
        match=(
            r"`ep\.load_values`: the model has no `ep\.Param` or `ep\.Fixed` at "
            r"`alpha\.latent`\. Closest existing paths: `alpha`"
        ),
    )
    raises_and_keeps(
        lambda: ep.load_values(model, {**values, "enc": 1.0}),
        model,
        ValueError,
        match=r"`ep\.load_values`: `enc` names a submodule",
    )
    raises_and_keeps(
        lambda: ep.load_values(
            model, {k: v for k, v in values.items() if k != "alpha"}
        ),
        model,
        ValueError,
        match=(
            r"no value given for 1 Param\(s\) of the model: `alpha`\. Give every Param "
            r"a value, or pass `strict=False`"
        ),
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda m: set_value(m, "encoder.layers[0]['weight']", jnp.zeros((2, 3))),
            ValueError,
            r"Param at `encoder.layers\[0\]\[.weight.\]` has shape \(3, 2\).*"
            r"Pass a value of shape \(3, 2\)",
        ),
        (
            lambda m: set_value(
                m, "encoder.layers[0]['weight']", jnp.zeros((3, 2), jnp.float16)
            ),
            TypeError,
            r"has dtype float(32|64), but the value has dtype float16.*Cast it first",
        ),
        (
            lambda m: set_value(m, "alhpa", 2.0),
            ValueError,
            r"no `ep.Param` or `ep.Fixed` at `alhpa`.*Closest existing paths: `alpha`",
        ),
        (
            lambda m: set_value(m, "counts", jnp.zeros(3, jnp.int32)),
            ValueError,
            r"`counts` is a plain leaf.*`eqx.tree_at`",
        ),
        (
            lambda m: set_value(m, lambda t: t.alpha, -1.0),
            ValueError,
            r"Param at `alpha` is outside the support.*Pass a value inside",
        ),
        (
            lambda m: set_value(m, lambda t: t.alpha.value, 2.0),
            ValueError,
            r"`where`.*select a Param itself, not its `.value`",
        ),
        (
            lambda m: load_values(m, {"alpha": 2.0, "x_ob": jnp.zeros(4)}),
            ValueError,
            r"`ep.load_values`.*at `x_ob`.*Closest existing paths: `x_obs`",
        ),
        (
            lambda m: load_values(m, {"alpha": 2.0}),
            ValueError,
            r"no value given for 2 Param\(s\).*`encoder.layers\[0\].*`strict=False`",
        ),
        (
            lambda m: freeze(m, "encoder.layer"),
            ValueError,
            r"`ep.freeze`.*`encoder.layer`.*Closest existing paths: `encoder.layers",
        ),
        (
            lambda m: unfreeze(m, "x_obs"),
            ValueError,
            r"Fixed at `x_obs` was not made by `ep.freeze`.*Pass `prior=`",
        ),
    ],
    ids=[
        "set_value-shape",
        "set_value-dtype",
        "set_value-unknown-path",
        "set_value-plain-leaf",
        "set_value-outside-support",
        "set_value-selects-value",
        "load_values-unknown-path",
        "load_values-missing",
        "freeze-unknown-path",
        "unfreeze-never-frozen",
    ],
)
def test_bad_surgery(call, error, match):
    model = fitted()
    raises_and_keeps(lambda: call(model), model, error, match=match)


def test_set_value_traced_outside_support_fails_at_run_time():
    model = fitted()
    before = fingerprint(model)
    step = eqx.filter_jit(lambda m, v: set_value(m, "alpha", v))
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"`alpha` is outside"):
        step(model, jnp.asarray(-1.0, model.alpha.dtype))  # a typed array
    assert fingerprint(model) == before


def test_set_value_traced_weak_scalar_outside_support_fails_at_run_time():
    model = fitted()
    step = eqx.filter_jit(lambda m, v: set_value(m, "alpha", v))
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"`alpha` is outside"):
        step(model, jnp.array(-1.0))


# ---------------------------------------------------------------------------
# named_params and values: which entries, in which order, under transformations


def every_kind(dtype: Any = DEFAULT_FLOAT) -> dict:
    """A Param, a hierarchical Param with a shared hyperparameter, a Fixed, an
    abstract Param, integer data and a plain array, in a dict (path order is
    key order)."""
    mu = ep.Param(jnp.asarray(0.5, dtype), prior=ep.Normal(0.0, 5.0), name="mu")
    return {
        "a": ep.Param(jnp.array([1.0, 3.0], dtype), prior=ep.Normal(mu, 2.0)),
        "b": ep.Param(jnp.array([2.0], dtype), prior=ep.Normal(mu, 1.0)),
        "c": jnp.ones(2, dtype),
        "d": ep.Param(shape=(3,), dtype=dtype),
        "f": ep.Fixed(jnp.array([4.0, 5.0], dtype)),
        "g": ep.Fixed(jnp.array([1, 2], jnp.int32)),
        "h": ep.Param(jnp.asarray(2.0, dtype), prior=ep.LogNormal(1.0, 0.5)),
    }


def filled(dtype: Any = DEFAULT_FLOAT) -> dict:
    """`every_kind` with `d` given the value [0, 0, 0]."""
    return ep.set_value(every_kind(dtype), "['d']", jnp.zeros(3, dtype))


def test_named_params_lists_every_param_once_in_path_order(float_dtype):
    model = every_kind(float_dtype)
    named = ep.named_params(model)
    # Params only (abstract included), the shared `mu` once, at its first use.
    assert list(named) == ["['a']", "['a'].prior.mean", "['b']", "['d']", "['h']"]
    assert named["['a']"] is model["a"] and named["['d']"] is model["d"]
    assert named["['a'].prior.mean"] is model["a"].prior.mean
    assert named["['h']"] is model["h"]
    # A frozen Param is a Fixed: no longer listed, nor its prior's Params.
    frozen = ep.freeze(model, "['a']")
    assert list(ep.named_params(frozen)) == ["['b']", "['d']", "['h']"]
    assert ep.named_params({"t": ep.Fixed(jnp.zeros(2))}) == {}


def test_named_params_under_jit_and_vmap():
    model = every_kind()
    paths = []

    @eqx.filter_jit
    def f(m):
        named = ep.named_params(m)
        paths.append(list(named))
        return named["['h']"].latent

    assert float(f(ep.zeros(model))) == 0.0
    assert paths == [["['a']", "['a'].prior.mean", "['b']", "['d']", "['h']"]]
    zs = jnp.arange(3.0, dtype=DEFAULT_FLOAT)
    shapes = jax.vmap(
        lambda z: ep.named_params({"p": ep.Param.from_latent(z)})["['p']"].latent
    )(zs)
    assert shapes.tolist() == [0.0, 1.0, 2.0]


def test_values_selects_wrappers_by_filter(float_dtype):
    model = filled(float_dtype)
    got = ep.values(model)
    assert list(got) == ["['a']", "['a'].prior.mean", "['b']", "['d']", "['h']"]
    # The physical values, as given.
    assert got["['a']"].tolist() == [1.0, 3.0]
    assert got["['a'].prior.mean"].tolist() == 0.5
    assert got["['b']"].tolist() == [2.0]
    assert got["['d']"].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(got["['h']"], 2.0, rtol=1e-6)
    assert all(v.dtype == jnp.dtype(float_dtype) for v in got.values())
    fixed = ep.values(model, ep.is_fixed)
    assert list(fixed) == ["['f']", "['g']"]
    assert fixed["['f']"].tolist() == [4.0, 5.0]
    assert fixed["['g']"].tolist() == [1, 2] and fixed["['g']"].dtype == jnp.int32
    both = ep.values(model, ep.is_wrapper)
    assert list(both) == [
        "['a']", "['a'].prior.mean", "['b']", "['d']", "['f']", "['g']", "['h']"
    ]  # fmt: skip
    # The predicate sees wrappers only: plain arrays are never values.
    assert list(ep.values(model, lambda n: True)) == list(both)
    assert ep.values(model, lambda n: False) == {}
    scalars = ep.values(model, lambda n: n.shape == ())
    assert list(scalars) == ["['a'].prior.mean", "['h']"]


def test_values_of_an_abstract_wrapper_names_the_path():
    model = every_kind()  # `d` is abstract
    raises_and_keeps(
        lambda: ep.values(model),
        model,
        ValueError,
        "`ep.values`: the Param at `['d']` is abstract (shape (3,), no value yet)",
        "Initialise it first: `model = ep.normal(model, key=key)`",
    )
    # Not selected: no error.
    assert list(ep.values(model, ep.is_fixed)) == ["['f']", "['g']"]
    empty = {"w": ep.Param(jnp.zeros(2)), "t": ep.Fixed(shape=(2,))}
    raises_and_keeps(
        lambda: ep.values(empty, ep.is_wrapper),
        empty,
        ValueError,
        "`ep.values`: the Fixed at `['t']` is abstract (shape (2,), no value yet)",
        "`ep.set_value(model, where, array)`",
    )


def test_values_under_jit_grad_and_vmap(float_dtype):
    prior = ep.Normal(1.0, 2.0)  # value = 1 + 2 z

    def value(z):
        return ep.values({"p": ep.Param.from_latent(z, prior=prior)})["['p']"]

    z = jnp.asarray(0.25, float_dtype)
    assert float(jax.jit(value)(z)) == 1.5
    assert float(jax.grad(value)(z)) == pytest.approx(2.0)
    zs = jnp.array([0.0, 1.0, -1.0], float_dtype)
    assert jax.vmap(value)(zs).tolist() == [1.0, 3.0, -1.0]
    # The whole dict comes out of jit.
    model = filled(float_dtype)
    out = eqx.filter_jit(lambda m: ep.values(m, ep.is_wrapper))(model)
    assert out["['a']"].tolist() == [1.0, 3.0] and out["['g']"].tolist() == [1, 2]


# ---------------------------------------------------------------------------
# load_values


def test_load_values_fills_and_replaces(float_dtype):
    model = every_kind(float_dtype)
    saved = ep.values(filled(float_dtype))
    loaded = ep.load_values(ep.shapes(model), saved)
    assert ep.values(loaded)["['a']"].tolist() == [1.0, 3.0]
    assert loaded["d"].latent.tolist() == [0.0, 0.0, 0.0]
    # Fixed arrays are optional under strict=True, and set when given; an
    # abstract Fixed is filled.
    new = {"['f']": jnp.array([6.0, 7.0], float_dtype), **saved}
    out = ep.load_values(filled(float_dtype), new)
    assert out["f"].value.tolist() == [6.0, 7.0]
    assert out["g"].value.tolist() == [1, 2]
    abstract = {"t": ep.Fixed(shape=(2,), dtype=float_dtype), "p": ep.Param(1.0)}
    got = ep.load_values(abstract, {"['t']": jnp.ones(2, float_dtype), "['p']": 3.0})
    assert got["t"].value.tolist() == [1.0, 1.0]
    assert float(got["p"].value) == 3.0
    # strict=False loads a subset: the rest is kept, bit for bit.
    part = ep.load_values(filled(float_dtype), {"['h']": 4.0}, strict=False)
    np.testing.assert_allclose(part["h"].value, 4.0, rtol=1e-6)
    # LogNormal(mean=1, sd=0.5): log-space s^2 = log(1 + 0.5^2 / 1^2) and
    # m = log(1) - s^2 / 2, so the latent is (log 4 - m) / s = 3.1709.
    s2 = np.log(1.25)
    want = (np.log(4.0) + s2 / 2) / np.sqrt(s2)
    np.testing.assert_allclose(part["h"].latent, want, rtol=1e-5)
    assert part["d"].latent.tolist() == [0.0, 0.0, 0.0]
    assert part["a"].latent.tolist() == model["a"].latent.tolist()


def test_load_values_errors(unchecked_types):
    model = filled()
    raises_and_keeps(
        lambda: ep.load_values(model, [1.0]),  # pyright: ignore[reportArgumentType]
        model,
        TypeError,
        "`ep.load_values(model, values)`: `values` must be a mapping from path",
        "got list",
        "`flat, unravel = ep.ravel(model)` and `unravel(vector)`",
    )
    raises_and_keeps(
        lambda: ep.load_values(model, {3: 1.0}, strict=False),  # pyright: ignore[reportArgumentType]
        model,
        TypeError,
        "`ep.load_values`: the keys of `values` must be path strings",
        "got the key 3 of type int",
    )
    raises_and_keeps(
        lambda: ep.load_values(model, {"['h']": 1.0, '["h"]': 2.0}, strict=False),
        model,
        ValueError,
        "`ep.load_values`: the path `['h']` is given twice (as `[\"h\"]` and "
        "another spelling of it). Give each path once.",
    )
    # Every unknown path is named, one line each, before missing Params.
    info = raises_and_keeps(
        lambda: ep.load_values(model, {"x": 1.0, "['c']": jnp.ones(2)}),
        model,
        ValueError,
        "`ep.load_values`: the model has no `ep.Param` or `ep.Fixed` at `x`.",
        "`ep.load_values`: `['c']` is a plain leaf of the model",
    )
    assert len(str(info.value).splitlines()) == 2
    raises_and_keeps(
        lambda: ep.load_values(model, {"['d']": 1.0}, strict=False),
        model,
        ValueError,
        "`ep.load_values`: the Param at `['d']` has shape (3,), but the value has "
        "shape (). Pass a value of shape (3,).",
    )


def test_load_values_lists_at_most_ten_missing_params():
    model = {f"p{i:02d}": ep.Param(1.0) for i in range(12)}
    shown = ", ".join(f"`['p{i:02d}']`" for i in range(10))
    raises_and_keeps(
        lambda: ep.load_values(model, {"['p03']": 2.0}),
        model,
        ValueError,
        "`ep.load_values`: no value given for 11 Param(s) of the model: ",
        "`['p02']`, `['p04']`",
        "and 1 more. Give every Param a value, or pass `strict=False`",
    )
    raises_and_keeps(
        lambda: ep.load_values(model, {}),
        model,
        ValueError,
        f"for 12 Param(s) of the model: {shown} and 2 more.",
    )
    assert float(ep.load_values(model, {}, strict=False)["p00"].value) == 1.0


def test_load_values_under_jit_grad_and_vmap(float_dtype):
    prior = ep.Normal(1.0, 2.0)  # latent = (value - 1) / 2
    model = {"p": ep.Param(jnp.asarray(0.0, float_dtype), prior=prior)}

    def latent(v):
        return ep.load_values(model, {"['p']": v})["p"].latent

    v = jnp.asarray(4.0, float_dtype)
    assert float(jax.jit(latent)(v)) == 1.5
    assert float(jax.grad(latent)(v)) == pytest.approx(0.5)
    vs = jnp.array([1.0, 3.0, -1.0], float_dtype)
    assert jax.vmap(latent)(vs).tolist() == [0.0, 1.0, -1.0]


# ---------------------------------------------------------------------------
# Setting a hyperparameter keeps the value of the Params whose prior holds it


def hierarchy(dtype: Any = DEFAULT_FLOAT) -> dict:
    """theta ~ Normal(mu, 2), mu ~ Normal(nu, 2), nu ~ Normal(0, 1)."""
    nu = ep.Param(jnp.asarray(1.0, dtype))
    mu = ep.Param(jnp.asarray(0.5, dtype), prior=ep.Normal(nu, 2.0))
    return {"theta": ep.Param(jnp.array([1.0, 3.0], dtype), prior=ep.Normal(mu, 2.0))}


MU, NU = "['theta'].prior.mean", "['theta'].prior.mean.prior.mean"


def test_setting_a_hyperparameter_keeps_the_holders_value(float_dtype):
    model = hierarchy(float_dtype)
    out = ep.load_values(model, {MU: 1.5}, strict=False)
    # theta keeps [1, 3]: its latent is (theta - 1.5) / 2 under the new mu.
    assert out["theta"].latent.tolist() == [-0.25, 0.75]
    assert out["theta"].value.tolist() == [1.0, 3.0]
    assert float(out["theta"].prior.mean.value) == 1.5
    # Two levels down: nu = 3 keeps mu = 0.5 (latent (0.5 - 3) / 2) and theta.
    out = ep.load_values(model, {NU: 3.0}, strict=False)
    assert float(out["theta"].prior.mean.latent) == -1.25
    assert float(out["theta"].prior.mean.value) == 0.5
    assert out["theta"].latent.tolist() == model["theta"].latent.tolist()
    assert out["theta"].value.tolist() == [1.0, 3.0]
    # A holder given a value itself takes it, under the new prior: (2 - 1.5) / 2.
    out = ep.load_values(
        model, {MU: 1.5, "['theta']": jnp.array([2.0, 2.0], float_dtype)}, strict=False
    )
    assert out["theta"].latent.tolist() == [0.25, 0.25]
    # Both levels at once: mu = 1.5 under nu = 3 has latent -0.75; theta kept.
    out = ep.load_values(model, {MU: 1.5, NU: 3.0}, strict=False)
    assert float(out["theta"].prior.mean.latent) == -0.75
    assert out["theta"].latent.tolist() == [-0.25, 0.75]


def test_setting_a_shared_hyperparameter_keeps_every_holder():
    mu = ep.Param(jnp.asarray(0.5, DEFAULT_FLOAT), name="mu")
    model = {
        "x": ep.Param(jnp.array([1.0, 3.0]), prior=ep.Normal(mu, 2.0)),
        "y": ep.Param(jnp.array([2.5]), prior=ep.Normal(mu, 0.5)),
    }
    out = ep.load_values(model, {"['x'].prior.mean": 1.5}, strict=False)
    assert out["x"].value.tolist() == [1.0, 3.0]
    assert out["y"].value.tolist() == [2.5]
    assert out["y"].latent.tolist() == [2.0]  # (2.5 - 1.5) / 0.5
    assert float(out["y"].prior.mean.value) == 1.5  # one parameter
    assert out["y"].prior.mean.name == "mu"


def test_setting_a_hyperparameter_of_an_abstract_param():
    # No value to keep: the holder stays abstract.
    model = {
        "theta": ep.Param(shape=(2,), prior=ep.Normal(ep.Param(0.5), 2.0)),
        "other": ep.Param(1.0),
    }
    out = ep.load_values(model, {"['theta'].prior.mean": 1.5}, strict=False)
    assert out["theta"].is_abstract and out["theta"].shape == (2,)
    assert float(out["theta"].prior.mean.value) == 1.5
    assert out["other"] is model["other"]


# --- each function names itself in the errors of the model's walk -----------------


@pytest.mark.parametrize(
    "caller, call",
    [
        ("ep.values", lambda m: ep.values(m)),
        ("ep.named_params", lambda m: ep.named_params(m)),
        ("ep.load_values", lambda m: ep.load_values(m, {})),
        ("ep.set_value", lambda m: ep.set_value(m, "['a']", 2.0)),
    ],
    ids=["values", "named_params", "load_values", "set_value"],
)
def test_walk_errors_name_the_function(caller, call):
    p = ep.Param(1.0)
    model = {"a": p, "b": p}  # one unnamed Param object in two places
    raises_and_keeps(
        lambda: call(model),
        model,
        ValueError,
        f"`{caller}`: the Param at `['b']` is the same object as the one at `['a']`.",
    )


def test_values_of_a_prior_of_another_shape_names_the_path():
    model = {"p": ep.Param(jnp.ones(2))}
    bad = eqx.tree_at(lambda m: m["p"].prior, model, ep.Normal(jnp.zeros((3, 2)), 1.0))
    raises_and_keeps(
        lambda: ep.values(bad),
        bad,
        ValueError,
        "`ep.values`: the Param at `['p']`: The prior `Normal` makes the value",
    )


def _chain():
    # a ~ Normal(0, sigma), sigma ~ HalfNormal(tau), tau ~ HalfNormal(1)
    tau = ep.Param(1.5, prior=ep.HalfNormal(1.0))
    sigma = ep.Param(2.0, prior=ep.HalfNormal(tau))
    return {"a": ep.Param(3.0, prior=ep.Normal(0.0, sigma))}


def test_load_values_refusals_whole(unchecked_types):
    model = _chain()
    raises_and_keeps(
        lambda: ep.load_values(model, [1.0]),
        model,
        TypeError,
        match=(
            r"^`ep\.load_values\(model, values\)`: `values` must be a mapping from "
            r"path to value, as `ep\.values\(model\)` returns it \(e\.g\. "
            r'`\{"alpha": 2\.5\}`\); got list\. For a vector of latents use '
            r"`flat, unravel = ep\.ravel\(model\)` and `unravel\(vector\)`\.$"
        ),
    )
    raises_and_keeps(
        lambda: ep.load_values(model, {1: 2.0}),
        model,
        TypeError,
        match=(
            r"^`ep\.load_values`: the keys of `values` must be path strings, as "
            r"`ep\.values` gives them \(e\.g\. `\"encoder\.weight\"`\); got the key 1 "
            r"of type int\.$"
        ),
    )
    raises_and_keeps(
        lambda: ep.load_values(model, {"": 1.0}),
        model,
        ValueError,
        match=r"^`ep\.load_values`: `where` is an empty path\.",
    )
    # Every unknown path, one per line.
    info = raises_and_keeps(
        lambda: ep.load_values(model, {"x": 1.0, "y": 2.0}),
        model,
        ValueError,
    )
    lines = str(info.value).split("\n")
    assert len(lines) == 2
    assert lines[0].startswith("`ep.load_values`: the model has no `ep.Param` or ")
    assert lines[1].startswith("`ep.load_values`: the model has no `ep.Param` or ")
    assert "at `x`." in lines[0] and "at `y`." in lines[1]


def test_load_values_keeps_a_grand_holder_when_its_holder_is_set():
    # Setting sigma and tau: sigma is given its value, and `a`, which holds sigma
    # (and through it tau), keeps its physical value.
    model = ep.load_values(
        _chain(),
        {"['a'].prior.sigma": 4.0, "['a'].prior.sigma.prior.sigma": 0.5},
        strict=False,
    )
    got = {k: float(v) for k, v in ep.values(model).items()}
    assert got == pytest.approx(
        {"['a']": 3.0, "['a'].prior.sigma": 4.0, "['a'].prior.sigma.prior.sigma": 0.5},
        rel=1e-5,
    )


def test_load_values_does_not_reshape_a_fixed():
    model = {"t": ep.Fixed(jnp.zeros(3)), "w": ep.Param(1.0)}
    raises_and_keeps(
        lambda: ep.load_values(model, {"['t']": jnp.ones(4)}, strict=False),
        model,
        ValueError,
        "`ep.load_values`",
        "(4,)",
    )


def test_set_value_reshapes_a_fixed_when_asked():
    model = {"t": ep.Fixed(jnp.zeros(3)), "w": ep.Param(1.0)}
    new = ep.set_value(model, "['t']", jnp.arange(4.0), reshape=True)
    np.testing.assert_array_equal(new["t"].value, np.arange(4.0))
    assert new["t"].shape == (4,)


def test_setting_under_an_abstract_holder_of_a_concrete_param_names_the_holder():
    # The outer Param's value (kept through the change) needs the abstract
    # hyperparameter's: the error names that one, by its path, and the caller.
    deep = ep.Param(1.0, prior=ep.LogNormal(1.0, 1.0))
    holder = ep.Param(shape=(), prior=ep.Normal(deep, 1.0))
    outer = ep.Param(jnp.zeros(()), prior=ep.Normal(0.0, 1.0))
    model = {"a": eqx.tree_at(lambda p: p.prior, outer, ep.Normal(holder, 1.0))}
    message = (
        "the Param at `['a'].prior.mean` is abstract (shape (), no value yet). "
        "Initialise it first: `model = ep.normal(model, key=key)` or "
        "`model = ep.zeros(model)`."
    )
    for call, caller in [
        (lambda: ep.set_value(model, "['a'].prior.mean.prior.mean", 2.0), "set_value"),
        (lambda: ep.values(model), "values"),
    ]:
        info = raises_and_keeps(call, model, ValueError)
        assert str(info.value) == f"`ep.{caller}`: {message}"
