import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep

from .conftest import raises_and_keeps
from .models import fitted


def test_abstract_param_by_shape():
    p = ep.Param(shape=(3,))
    assert p.is_abstract
    assert p.shape == (3,)
    assert p.dtype == jnp.float32 or p.dtype == jnp.float64
    assert isinstance(p.latent, jax.ShapeDtypeStruct)
    assert isinstance(p.prior, ep.Normal)


def test_abstract_scalar_param_from_prior():
    p = ep.Param(prior=ep.LogNormal(3.0, 0.1))
    assert p.is_abstract and p.shape == ()


def test_abstract_param_shape_from_array_hyperparameters():
    p = ep.Param(prior=ep.Normal(jnp.arange(4.0), 1.0))
    assert p.shape == (4,)


def test_param_from_value_stores_inverse(float_dtype):
    prior = ep.LogNormal(3.0, 0.1)
    p = ep.Param(jnp.asarray(2.5, float_dtype), prior=prior)
    assert p.dtype == float_dtype
    np.testing.assert_allclose(p.latent, prior.inverse(jnp.asarray(2.5, float_dtype)))
    np.testing.assert_allclose(p.value, 2.5, rtol=1e-6)


def test_param_from_python_float():
    p = ep.Param(2.5, prior=ep.LogNormal(3.0, 0.1))
    np.testing.assert_allclose(p.value, 2.5, rtol=1e-6)
    assert not p.is_abstract


def test_param_value_broadcasts_to_shape():
    p = ep.Param(0.5, shape=(2, 3))
    assert p.shape == (2, 3)
    np.testing.assert_array_equal(p.latent, np.full((2, 3), 0.5, p.dtype))


def test_param_value_broadcasts_to_prior_with_explicit_shape():
    q = ep.Param(1.0, shape=(3,), prior=ep.Normal(jnp.array([0.0, 1.0, 2.0]), 1.0))
    assert q.shape == (3,)
    np.testing.assert_allclose(q.latent, [1.0, 0.0, -1.0])


def test_param_value_broadcasts_to_prior():
    q = ep.Param(1.0, prior=ep.Normal(jnp.array([0.0, 1.0, 2.0]), 1.0))
    assert q.shape == (3,)
    np.testing.assert_allclose(q.latent, [1.0, 0.0, -1.0])


def test_param_from_latent():
    z = jnp.array([0.0, 1.0])
    p = ep.Param.from_latent(z, prior=ep.Normal(1.0, 2.0))
    np.testing.assert_allclose(p.latent, z)
    np.testing.assert_allclose(p.value, [1.0, 3.0])


def test_param_int_value_gets_float_dtype():
    p = ep.Param(3, prior=ep.Normal(0.0, 1.0))
    assert jnp.issubdtype(p.dtype, jnp.floating)


def test_param_bfloat16():
    p = ep.Param(jnp.array([1.0, 2.0]), dtype=jnp.bfloat16)
    assert p.latent.dtype == jnp.bfloat16
    assert p.value.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(p.value, np.float32), [1.0, 2.0])


def test_param_under_jit_and_vmap():
    prior = ep.LogNormal(3.0, 0.1)

    @jax.jit
    def roundtrip(x):
        return ep.Param(x, prior=prior).value

    np.testing.assert_allclose(roundtrip(2.9), 2.9, rtol=1e-6)
    xs = jnp.array([2.8, 3.0, 3.2])
    np.testing.assert_allclose(
        jax.vmap(lambda x: ep.Param(x, prior=prior).value)(xs), xs, rtol=1e-6
    )
    g = jax.grad(lambda z: ep.Param.from_latent(z, prior=prior).value)(0.0)
    assert jnp.isfinite(g) and g > 0


def test_fixed_value_is_stop_gradient():
    x = jnp.array([1.0, 2.0])
    g = jax.grad(lambda a: jnp.sum(ep.Fixed(a).value ** 2))(x)
    np.testing.assert_array_equal(g, [0.0, 0.0])


def test_fixed_keeps_dtype():
    assert ep.Fixed(jnp.arange(3, dtype=jnp.int32)).dtype == jnp.int32
    assert ep.Fixed(jnp.zeros(2, jnp.bfloat16)).value.dtype == jnp.bfloat16


def test_abstract_fixed():
    f = ep.Fixed(shape=(3,))
    assert f.is_abstract and f.shape == (3,)
    with pytest.raises(
        ValueError,
        match=r"The Fixed is abstract \(shape \(3,\), no value yet\)\. Fill it first",
    ):
        f.value


def test_abstract_param_value_error():
    with pytest.raises(ValueError, match=r"is abstract.*ep\.normal\(model, key=key\)"):
        ep.Param(shape=(2,)).value


def test_predicates():
    p, f = ep.Param(1.0), ep.Fixed(jnp.zeros(2))
    assert ep.is_param(p) and not ep.is_param(f) and not ep.is_param(jnp.zeros(2))
    assert ep.is_fixed(f) and not ep.is_fixed(p)
    assert ep.is_wrapper(p) and ep.is_wrapper(f) and not ep.is_wrapper(1.0)


def test_predicates_as_is_leaf():
    tree = {"a": ep.Param(1.0), "b": [ep.Fixed(jnp.zeros(2)), jnp.ones(3)]}
    leaves = jax.tree.leaves(tree, is_leaf=ep.is_wrapper)
    assert [type(x).__name__ for x in leaves] == ["Param", "Fixed", "ArrayImpl"]
    params = eqx.filter(tree, ep.is_param, is_leaf=ep.is_param)
    assert isinstance(params["a"], ep.Param)
    # The Fixed keeps its structure; its storage (its only leaf) is filtered out.
    assert isinstance(params["b"][0], ep.Fixed)
    assert params["b"][0].stored is None and params["b"][1] is None


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: ep.Param(shape=(2,), dtype=jnp.int32), TypeError, "floating dtype"),
        (
            lambda: ep.Param(shape=(2,), prior=ep.Normal(jnp.zeros(3))),
            ValueError,
            r"shape \(3,\), which does not broadcast to the Param's shape \(2,\)",
        ),
        (
            lambda: ep.Param(jnp.zeros(3), shape=(2,)),
            ValueError,
            r"value of shape \(3,\) that does not broadcast to `shape=\(2,\)`",
        ),
        (
            lambda: ep.Param(-1.0, prior=ep.LogNormal(3.0, 0.1)),
            ValueError,
            "outside the support of its prior",
        ),
        (
            lambda: ep.Param(5.0, prior=ep.Uniform(0.0, 1.0)),
            ValueError,
            "outside the support",
        ),
        (
            lambda: ep.Param(1.0, latent=1.0),
            ValueError,
            "at most one of `value` and `latent`",
        ),
        (lambda: ep.Param(1.0, prior="normal"), TypeError, "prior"),
        (lambda: ep.Fixed(), ValueError, r"needs a `value`, or a `shape=`"),
        (lambda: ep.Fixed(jnp.zeros(3), shape=(2,)), ValueError, r"shape \(3,\)"),
    ],
)
def test_construction_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_print_is_short():
    p = ep.Param(jnp.zeros(1000), prior=ep.Normal(0.0, 1.0))
    text = repr(p)
    assert re.search(r"f(32|64)\[1000\]", text) and len(text) < 120


def test_default_prior_first_built_under_jit_does_not_leak(monkeypatch):
    import functools

    from eqxpurify import _priors

    # A fresh cache, so the default prior is first built inside the trace below.
    cached = functools.cache(_priors.standard_normal.__wrapped__)
    monkeypatch.setattr(_priors, "standard_normal", cached)
    out = jax.jit(lambda x: ep.Param(shape=(3,)).shape[0] * x)(1.0)
    assert out == 3.0
    # The cached default prior is concrete: later Params can use it eagerly.
    np.testing.assert_array_equal(ep.unwrap(ep.zeros(ep.Param(shape=(3,)))), 0.0)
    assert cached.cache_info().currsize == 1
    sigma = cached().sigma
    assert isinstance(sigma, ep.Fixed)
    assert not isinstance(sigma.stored, jax.core.Tracer)
    assert float(sigma.value) == 1.0


@pytest.mark.parametrize("cls", [ep.Param, ep.Fixed])
def test_wrappers_have_no_methods_for_equinox_to_bind(cls):
    # Wrappers look attributes up with `object.__getattribute__` (fast flattens),
    # which is only the same as `eqx.Module`'s when no plain method is reachable
    # from an instance: `eqx.Module` binds those as pytrees.
    import inspect

    assert cls.__getattribute__ is object.__getattribute__
    plain = [
        name
        for name, attr in inspect.getmembers(cls)
        if inspect.isfunction(attr)
        and not (name.startswith("__") and name.endswith("__"))
        and name != "_abc_impl"
    ]
    assert plain == [], f"plain methods {plain}: drop the fast lookup or bind them"


def test_wrapper_fields_read_through_the_fast_lookup():
    p = ep.Param(jnp.arange(3.0), prior=ep.Normal(1.0, 2.0))
    f = ep.Fixed(jnp.ones(2))
    assert isinstance(p.__dict__, dict) and set(p.__dict__) >= {"latent", "prior"}
    np.testing.assert_allclose(p.value, jnp.arange(3.0))
    np.testing.assert_allclose(p.latent, (jnp.arange(3.0) - 1.0) / 2.0)
    assert f.shape == (2,) and f.dtype == jnp.ones(2).dtype
    leaves, treedef = jax.tree.flatten(p)
    np.testing.assert_allclose(jax.tree.unflatten(treedef, leaves).value, p.value)


def test_replaced_fixed_storage_is_not_blamed_on_optimistix():
    """An array of another width put into a Fixed's storage is reported as what it
    is (the storage replaced directly), with the fix, not as a blanket cast."""
    fixed = ep.Fixed(jnp.arange(3.0, dtype=jnp.float32))
    wrong = eqx.tree_at(lambda f: f.stored, fixed, jnp.zeros(3, jnp.uint16))
    with pytest.raises(ValueError, match=r"now holds an array of dtype uint16") as e:
        wrong.value
    assert "optimistix" not in str(e.value)
    assert "ep.set_value" in str(e.value) and "ep.Fixed(array)" in str(e.value)
    with pytest.raises(ValueError, match=r"Fixed at `\['t'\]` .*uint16.*ep.set_value"):
        ep.unwrap({"t": wrong})
    cast = eqx.tree_at(lambda f: f.stored, fixed, jnp.zeros(3, jnp.float32))
    with pytest.raises(ValueError, match="converted every leaf.*optimistix"):
        cast.value


def test_prior_hyperparameter_replaced_by_a_raw_value_names_the_fix():
    """`eqx.tree_at` on a prior's hyperparameter with a raw number or array: the
    value says how to put a wrapper there (or replace the prior), and
    `ep.partition` refuses a raw floating array there by path, since every
    optimiser would train it. A wrapper there works."""
    param = ep.Param(1.0, prior=ep.Normal(0.0, 1.0))
    for raw in (jnp.array(2.0), 2.0):
        edited = eqx.tree_at(lambda p: p.prior.mean, param, raw)
        with pytest.raises(
            TypeError, match=r"hyperparameter holds 2.0 .*ep.Fixed\(2.0\)"
        ):
            edited.value
    edited = eqx.tree_at(lambda p: p.prior.mean, param, jnp.array(2.0))
    with pytest.raises(
        TypeError,
        match=r"`ep.partition`: the prior hyperparameter `\['p'\].prior.mean`",
    ):
        ep.partition({"p": edited})
    fixed = eqx.tree_at(lambda p: p.prior.mean, param, ep.Fixed(2.0))
    np.testing.assert_allclose(fixed.value, 3.0, rtol=1e-6)


# Host data is taken as it is, or refused: never changed at construction.

_X64 = bool(jax.config.read("jax_enable_x64"))


@pytest.mark.parametrize(
    "data, dtype",
    [
        (np.array([1_700_000_000_000_000_000, 3], np.int64), "int32"),
        (np.array([-(2**40)], np.int64), "int32"),
        (np.array([2**63], np.uint64), "uint32"),
    ],
)
def test_fixed_refuses_integers_that_would_wrap_without_x64(data, dtype):
    if _X64:  # they fit: kept exactly
        fixed = ep.Fixed(data)
        np.testing.assert_array_equal(np.asarray(fixed.value), np.asarray(data))
        return
    with pytest.raises(
        ValueError,
        match=rf"`ep.Fixed` got \w+ data with the value -?\d+, outside the range of "
        rf"{dtype} .*it would wrap around.*jax_enable_x64.*float `dtype=`",
    ):
        ep.Fixed(data)


def test_fixed_keeps_64_bit_integers_that_fit_and_refuses_a_narrow_dtype():
    fixed = ep.Fixed(np.array([3, -(2**31)], np.int64))
    np.testing.assert_array_equal(fixed.value, [3, -(2**31)])
    with pytest.raises(
        ValueError, match=r"outside the range of int8 .*Pass a wider integer `dtype=`"
    ):
        ep.Fixed(np.array([300]), dtype=np.int8)
    with pytest.raises(ValueError, match=r"outside the range of uint32"):
        ep.Fixed(np.array([-1]), dtype=np.uint32)


@pytest.mark.parametrize(
    "data, match",
    [
        (np.array(["2020-01-01"], "datetime64[D]"), r"datetime64\[D\].*not dates"),
        (np.array([1, 2], "timedelta64[s]"), r"timedelta64\[s\].*not dates"),
        (np.array(["a", "b"]), r"<U1.*not strings.*category codes"),
        (np.array([1.0, None], object), r"object.*`np.asarray\(x, dtype=float\)`"),
    ],
)
@pytest.mark.parametrize("make", [ep.Fixed, ep.Param, lambda x: ep.Normal(x, 1.0)])
def test_non_numeric_host_data_is_refused_with_how_to_convert_it(make, data, match):
    with pytest.raises(TypeError, match=r"got an? (array of dtype )?\w*" + match):
        make(data)


@pytest.mark.parametrize("shape", [np.int64(8), (np.int64(2), np.int32(4))])
def test_a_shape_may_be_given_as_numpy_integers(shape):
    expected = (8,) if isinstance(shape, np.integer) else (2, 4)
    p, f = ep.Param(shape=shape), ep.Fixed(shape=shape)
    assert p.shape == f.shape == expected
    assert all(type(d) is int for d in p.shape + f.shape)
    assert ep.Fixed(jnp.zeros(expected), shape=shape).shape == expected


def test_an_integer_latent_is_refused_where_the_model_is_next_used():
    model = {"p": ep.Param(jnp.ones(3)), "q": ep.Param(1.0)}
    bad = eqx.tree_at(lambda m: m["p"].latent, model, jnp.arange(3))
    pattern = (
        r"the Param at `\['p'\]` has a latent of dtype int\d+, not a floating "
        r"array .*`eqx.tree_at\(where, model, ep.Param\(value, prior=...\)\)`"
    )
    for call, fn in [
        ("ep.partition", ep.partition),
        ("ep.unwrap", ep.unwrap),
        ("ep.values", ep.values),
        ("ep.ravel", ep.ravel),
    ]:
        with pytest.raises(TypeError, match=rf"`{call}`: " + pattern):
            fn(bad)
    with pytest.raises(TypeError, match=r"^The Param has a latent of dtype int"):
        bad["p"].value
    assert model["p"].latent.dtype == jnp.ones(3).dtype  # the model is unchanged


_AS_ARRAY = (
    r"is not defined on `ep\.{kind}`.*read its array with `\.value`.*@ep\.unwrapped"
)


@pytest.mark.parametrize(
    "call, kind",
    [
        (lambda m: m.alpha + 1.0, "Param"),
        (lambda m: 2.0 * m.alpha, "Param"),
        (lambda m: m.alpha * m.x_obs, "Param"),
        (lambda m: m.x_obs[0], "Fixed"),
        (lambda m: jnp.sin(m.alpha), "Param"),
        (lambda m: jnp.sum(m.x_obs), "Fixed"),
        (lambda m: np.asarray(m.x_obs), "Fixed"),
        (lambda m: float(m.alpha), "Param"),
    ],
    ids=["add", "rmul", "mul-wrappers", "index", "jnp", "jnp-fixed", "numpy", "float"],
)
def test_wrapper_used_as_an_array(call, kind):
    model = fitted()
    raises_and_keeps(
        lambda: call(model), model, TypeError, match=_AS_ARRAY.format(kind=kind)
    )


def test_wrappers_are_closed_to_subclassing():
    from eqxpurify._wrapper_base import AbstractWrapper

    with pytest.raises(TypeError, match=r"`ep.AbstractWrapper` is closed"):

        class Mine(AbstractWrapper):  # pyright: ignore[reportUnusedClass]
            pass


def test_wrapper_in_a_lax_call_fails_loudly():
    # `lax.*` functions reject any object that is not an array before our code can
    # run, with JAX's own error (docs/typing.md shows the fix); it never computes.
    with pytest.raises((TypeError, ValueError), match=r"__jax_array__|valid JAX type"):
        jax.lax.sin(fitted().alpha)
