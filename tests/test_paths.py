"""Paths, `named_params`, `values` and `load_values`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep
from eqxpurify import load_values, named_params, values
from eqxpurify._path_names import ROOT, path_str

from .conftest import FLOAT_DTYPES, tree_allclose


class Layer(eqx.Module):
    weight: ep.Param
    bias: ep.Param


class Encoder(eqx.Module):
    layers: list[Layer]
    scale: ep.Param


class Model(eqx.Module):
    encoder: Encoder
    heads: dict[str, ep.Param]
    alpha: ep.Param
    x_obs: ep.Fixed
    steps: jax.Array
    n: int = eqx.field(static=True, default=3)


PATHS = [
    "encoder.layers[0].weight",
    "encoder.layers[0].bias",
    "encoder.layers[1].weight",
    "encoder.layers[1].bias",
    "encoder.scale",
    "heads['mean']",
    "heads['sd']",
    "alpha",
]


def make_model(dtype=jnp.float32):
    def layer(n_in, n_out):
        return Layer(
            ep.Param(shape=(n_out, n_in), dtype=dtype, prior=ep.Normal(0, n_in**-0.5)),
            ep.Param(shape=(n_out,), dtype=dtype),
        )

    return Model(
        encoder=Encoder([layer(2, 3), layer(3, 1)], ep.Param(shape=(), dtype=dtype)),
        heads={
            "sd": ep.Param(shape=(), dtype=dtype, prior=ep.LogNormal(1.0, 0.5)),
            "mean": ep.Param(
                shape=(2,), dtype=dtype, prior=ep.Normal(jnp.array([1.0, 2.0]), 0.5)
            ),
        },
        alpha=ep.Param(shape=(), dtype=dtype, prior=ep.LogNormal(3.0, 0.1)),
        x_obs=ep.Fixed(jnp.linspace(0, 1, 4, dtype=dtype)),
        steps=jnp.arange(3),
    )


@pytest.fixture(scope="module", params=FLOAT_DTYPES, ids=lambda d: jnp.dtype(d).name)
def fitted(request):
    return ep.normal(make_model(request.param), key=jax.random.key(0))


def test_named_params_paths(fitted):
    named = named_params(fitted)
    assert list(named) == PATHS
    assert named["alpha"] is fitted.alpha
    assert named["heads['mean']"] is fitted.heads["mean"]
    assert named["encoder.layers[1].weight"] is fitted.encoder.layers[1].weight
    # Abstract Params are listed too.
    assert list(named_params(make_model())) == PATHS


def test_named_params_root_and_empty():
    param = ep.Param(1.0)
    assert list(named_params(param)) == [ROOT]
    assert named_params(eqx.nn.Linear(2, 3, key=jax.random.key(0))) == {}
    assert named_params([ep.Param(1.0), (ep.Param(2.0),)]).keys() == {"[0]", "[1][0]"}


def test_path_str():
    # Core uses it for every path it shows or accepts.
    assert path_str(()) == ROOT == "<model>"
    keys = (
        jax.tree_util.GetAttrKey("encoder"),
        jax.tree_util.GetAttrKey("layers"),
        jax.tree_util.SequenceKey(0),
        jax.tree_util.GetAttrKey("weight"),
    )
    assert path_str(keys) == "encoder.layers[0].weight"
    assert path_str((jax.tree_util.DictKey("mean"),)) == "['mean']"


def test_nested_params_are_named_by_their_path_in_the_prior():
    mu = ep.Param(0.5, prior=ep.Normal(0.0, 5.0))
    tau = ep.Param(2.0, prior=ep.HalfCauchy(1.0))
    model = {
        "theta": ep.Param(jnp.zeros(3), prior=ep.Normal(mu, tau)),
        "x": ep.Fixed(jnp.ones(2)),
    }
    named = named_params(model)
    # A Param comes before the Params of its prior.
    assert list(named) == [
        "['theta']",
        "['theta'].prior.mean",
        "['theta'].prior.sigma",
    ]
    assert named["['theta'].prior.mean"] is mu
    vals = values(model)
    assert list(vals) == list(named)
    np.testing.assert_allclose(vals["['theta'].prior.mean"], 0.5, rtol=1e-6)
    np.testing.assert_allclose(vals["['theta'].prior.sigma"], 2.0, rtol=1e-6)
    np.testing.assert_allclose(vals["['theta']"], [0.0, 0.0, 0.0], atol=1e-6)
    # Loading only the hyperparameters sets them; theta keeps its physical value
    # (its latent is recomputed under the new prior), as with `ep.set_value`.
    loaded = load_values(
        model,
        {"['theta'].prior.mean": 1.5, '["theta"].prior.sigma': 3.0},
        strict=False,
    )
    np.testing.assert_allclose(loaded["theta"].prior.mean.value, 1.5, rtol=1e-6)
    np.testing.assert_allclose(loaded["theta"].prior.sigma.value, 3.0, rtol=1e-6)
    np.testing.assert_allclose(values(loaded)["['theta']"], 0.0, atol=1e-6)
    np.testing.assert_allclose(loaded["theta"].latent, -0.5, rtol=1e-6)  # (0-1.5)/3


def _hierarchical():
    mu = ep.Param(prior=ep.Normal(0.0, 5.0))
    tau = ep.Param(prior=ep.HalfCauchy(1.0))
    return {"theta": ep.Param(shape=(3,), prior=ep.Normal(mu, tau))}


def test_load_values_round_trip_hierarchical():
    fitted = ep.normal(_hierarchical(), key=jax.random.key(0))
    other = ep.normal(_hierarchical(), key=jax.random.key(1))
    vals = values(fitted)
    loaded = load_values(other, vals)
    assert tree_allclose(values(loaded), vals, rtol=1e-5, atol=1e-6)
    assert tree_allclose(loaded, fitted, rtol=1e-4, atol=1e-5)


def test_values_physical(fitted):
    vals = values(fitted)
    assert list(vals) == PATHS
    for path, param in named_params(fitted).items():
        assert vals[path].dtype == param.dtype
        np.testing.assert_allclose(vals[path], param.value, rtol=1e-6)
    assert vals["alpha"] > 0 and vals["heads['sd']"] > 0
    mean = fitted.heads["mean"]
    expected = np.array([1.0, 2.0]) + 0.5 * np.asarray(mean.latent, np.float64)
    np.testing.assert_allclose(vals["heads['mean']"], expected, rtol=1e-6)


def test_values_filter_spec(fitted):
    fixed = values(fitted, ep.is_fixed)
    assert list(fixed) == ["x_obs"]
    np.testing.assert_array_equal(fixed["x_obs"], fitted.x_obs.value)
    both = values(fitted, ep.is_wrapper)
    assert list(both) == PATHS + ["x_obs"]


def test_values_abstract_is_error():
    with pytest.raises(
        ValueError, match=r"Param at `encoder.layers\[0\].weight` is ab"
    ):
        values(make_model())
    # Fixed only: the abstract Params are not asked for.
    assert list(values(make_model(), ep.is_fixed)) == ["x_obs"]


def test_load_values_round_trip(fitted, getkey):
    vals = values(fitted)
    other = ep.normal(fitted, key=getkey())
    loaded = load_values(other, vals)
    assert tree_allclose(values(loaded), vals, rtol=1e-5, atol=1e-6)
    assert tree_allclose(loaded, fitted, rtol=1e-4, atol=1e-5)
    # Into an abstract template: abstract Params are filled.
    from_shapes = load_values(ep.shapes(fitted), vals)
    assert tree_allclose(values(from_shapes), vals, rtol=1e-5, atol=1e-6)
    # Structure is unchanged (no recompilation when reloading).
    assert jax.tree.structure(loaded) == jax.tree.structure(fitted)


def test_load_values_fixed(fitted):
    new = jnp.full((4,), 7, fitted.x_obs.dtype)
    loaded = load_values(fitted, {"x_obs": new}, strict=False)
    np.testing.assert_array_equal(loaded.x_obs.value, new)
    assert tree_allclose(loaded.alpha, fitted.alpha, rtol=0, atol=0)
    # An abstract Fixed is filled.
    template = eqx.tree_at(lambda m: m.x_obs, fitted, ep.Fixed(shape=(4,)))
    assert template.x_obs.is_abstract
    filled = load_values(template, {"x_obs": jnp.ones(4)}, strict=False)
    np.testing.assert_array_equal(filled.x_obs.value, jnp.ones(4))


def test_load_values_unknown_path_lists_closest(fitted):
    vals = values(fitted)
    vals["encoder.layer[0].weight"] = vals.pop("encoder.layers[0].weight")
    with pytest.raises(ValueError) as info:
        load_values(fitted, vals)
    msg = str(info.value)
    assert "no `ep.Param` or `ep.Fixed` at `encoder.layer[0].weight`" in msg
    assert "Closest existing paths: `encoder.layers[0].weight`" in msg
    # Every unknown path is reported, not only the first.
    vals["alpah"] = vals.pop("alpha")
    with pytest.raises(ValueError, match=r"(?s)layer\[0\].*`alpah`.*`alpha`"):
        load_values(fitted, vals)


def test_load_values_missing_is_reported(fitted):
    vals = values(fitted)
    del vals["alpha"], vals["encoder.scale"]
    with pytest.raises(
        ValueError, match=r"no value given for 2 Param\(s\).*`encoder.scale`, `alpha`"
    ):
        load_values(fitted, vals)
    partial = load_values(
        fitted, {"alpha": jnp.asarray(20.0, fitted.alpha.dtype)}, strict=False
    )
    np.testing.assert_allclose(partial.alpha.value, 20.0, rtol=1e-6)
    assert tree_allclose(partial.encoder, fitted.encoder, rtol=0, atol=0)


def test_load_values_plain_leaf_and_submodule(fitted):
    with pytest.raises(ValueError, match=r"`steps` is a plain leaf of the model"):
        load_values(fitted, {"steps": jnp.zeros(3, jnp.int32)}, strict=False)
    with pytest.raises(ValueError, match=r"`encoder.layers\[0\]` names a submodule"):
        load_values(fitted, {"encoder.layers[0]": 1.0}, strict=False)


def test_load_values_normalises_quotes(fitted):
    sd = jnp.asarray(2.0, fitted.alpha.dtype)
    loaded = load_values(fitted, {'heads["sd"]': sd}, strict=False)
    np.testing.assert_allclose(loaded.heads["sd"].value, 2.0, rtol=1e-6)


def test_load_values_refuses_a_path_given_twice(fitted):
    sd = jnp.asarray(2.0, fitted.alpha.dtype)
    with pytest.raises(
        ValueError, match=r"the path `heads\['sd'\]` is given twice.*Give each path"
    ):
        load_values(fitted, {"heads['sd']": sd, 'heads["sd"]': sd}, strict=False)


def test_load_values_checks_shape_and_dtype(fitted):
    with pytest.raises(ValueError, match=r"Param at `alpha` has shape \(\), but the"):
        load_values(fitted, {"alpha": jnp.ones(2, fitted.alpha.dtype)}, strict=False)
    with pytest.raises(TypeError, match=r"Param at `alpha` has dtype .*int32"):
        load_values(fitted, {"alpha": jnp.ones((), jnp.int32)}, strict=False)
    with pytest.raises(ValueError, match=r"`alpha` is outside the support"):
        load_values(fitted, {"alpha": -1.0}, strict=False)


def test_values_and_load_under_jit(fitted):
    vals = values(fitted)
    jitted = jax.jit(values)(fitted)
    assert tree_allclose(jitted, vals, rtol=1e-6, atol=1e-7)
    loaded = jax.jit(load_values)(ep.zeros(fitted), vals)
    assert tree_allclose(values(loaded), vals, rtol=1e-5, atol=1e-6)


def test_values_grad(fitted):
    params, rest = ep.partition(fitted)

    def f(p):
        vals = values(ep.combine(p, rest), ep.is_wrapper)
        return vals["heads['mean']"].sum() + vals["x_obs"].sum()

    grads = jax.grad(f)(params)
    # d(mean + sigma z)/dz = sigma; Fixed data is not differentiated.
    assert sorted(grads) == sorted(PATHS)  # only the latents
    np.testing.assert_allclose(grads["heads['mean']"], [0.5, 0.5])
    np.testing.assert_array_equal(grads["alpha"], 0.0)

    def g(v):
        return values(load_values(fitted, {"alpha": v}, strict=False))["alpha"]

    # values(load_values(v)) is the identity in v.
    np.testing.assert_allclose(
        jax.grad(g)(jnp.asarray(20.0, fitted.alpha.dtype)), 1.0, rtol=1e-4
    )


def test_values_vmap(fitted):
    keys = jax.random.split(jax.random.key(1), 3)
    batched = jax.jit(jax.vmap(lambda k: values(ep.normal(fitted, key=k))))(keys)
    single = values(ep.normal(fitted, key=keys[1]))
    for path in PATHS:
        assert batched[path].shape == (3, *single[path].shape)
        np.testing.assert_allclose(batched[path][1], single[path], rtol=1e-6)


# Field names of the user's own that are also the wrappers' (`latent`, `stored`,
# `prior`) keep their full paths: only a Param's own latent is named by the Param.


class _Named(eqx.Module):
    latent: jax.Array
    stored: jax.Array
    prior: jax.Array
    w: ep.Param


class _Holder(eqx.Module):
    m: _Named
    p: ep.Param
    latent: ep.Param


def _holder():
    named = _Named(
        jnp.arange(2.0),
        10 + jnp.arange(3.0),
        20 + jnp.arange(4.0),
        ep.Param(jnp.zeros(5)),
    )
    prior = ep.Normal(0.0, ep.Param(1.0, prior=ep.HalfNormal(1.0)))
    return _Holder(named, ep.Param(1.0, prior=prior), ep.Param(jnp.zeros(6)))


def test_user_fields_named_like_the_wrappers_keep_their_paths():
    model = _holder()
    params, rest = ep.partition(model)
    assert {k: v.shape for k, v in params.items()} == {
        "m.latent": (2,),
        "m.stored": (3,),
        "m.prior": (4,),
        "m.w": (5,),
        "p": (),
        "p.prior.sigma": (),
        "latent": (6,),  # a Param in a field called `latent`: its own path
    }
    assert list(named_params(model)) == ["m.w", "p", "p.prior.sigma", "latent"]
    assert list(values(model)) == ["m.w", "p", "p.prior.sigma", "latent"]
    flat, unravel = ep.ravel(model)
    # In the order of `params`: each field's own values where its name says.
    np.testing.assert_array_equal(
        flat, jnp.concatenate([jnp.ravel(v) for v in params.values()])
    )
    np.testing.assert_array_equal(flat[:9], [0, 1, 10, 11, 12, 20, 21, 22, 23])
    assert tree_allclose(unravel(flat), model)
    assert tree_allclose(ep.combine(params, rest), model)


def test_optax_masks_by_path_reach_user_fields_named_like_the_wrappers():
    import optax

    model = _holder()
    params, rest = ep.partition(model)
    frozen = {"m.latent", "m.prior"}  # by name, as a user writes them
    assert frozen <= set(params)
    mask = {k: k in frozen for k in params}
    optimiser = optax.chain(optax.masked(optax.set_to_zero(), mask), optax.sgd(1.0))
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = optimiser.update(grads, optimiser.init(params), params)
    new = optax.apply_updates(params, updates)
    for k in params:
        moved = not np.array_equal(new[k], params[k])
        assert moved == (k not in frozen), k
    labels = {k: "slow" if k.startswith("m.") else "fast" for k in params}
    multi = optax.multi_transform(
        {"slow": optax.set_to_zero(), "fast": optax.sgd(1.0)}, labels
    )
    updates, _ = multi.update(grads, multi.init(params), params)
    assert np.array_equal(updates["m.latent"], np.zeros(2))
    assert not np.array_equal(updates["latent"], np.zeros(6))
    ep.combine(new, rest)  # still the model's shapes


def test_a_plain_array_in_a_wrapper_field_called_latent_is_refused():
    class Declared(eqx.Module):
        latent: ep.Param

    model = eqx.tree_at(lambda m: m.latent, Declared(ep.Param(1.0)), jnp.ones(()))
    with pytest.raises(
        TypeError, match=r"the field `latent` is declared `Param` but holds a plain"
    ):
        ep.partition(model)


def test_load_values_refuses_a_list_with_the_fix(unchecked_types):
    model = {"a": ep.Param(1.0)}
    with pytest.raises(
        TypeError,
        match=r"`ep.load_values\(model, values\)`: `values` must be a mapping from "
        r"path to value, as `ep.values\(model\)` returns it.*got list.*ep.ravel",
    ):
        load_values(model, [2.0])
