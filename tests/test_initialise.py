import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep

from .conftest import DEFAULT_FLOAT, X64, tree_allclose


class Net(eqx.Module):
    layers: list
    scale: ep.Param
    data: ep.Fixed
    counts: jax.Array
    key: jax.Array
    tag: str = eqx.field(static=True)


def make_net(dtype=None):
    return Net(
        layers=[
            {"w": ep.Param(shape=(3, 2), dtype=dtype), "b": ep.Param(shape=(2,))},
            {"w": ep.Param(shape=(2, 1), prior=ep.Normal(0.0, 1 / math.sqrt(2)))},
        ],
        scale=ep.Param(prior=ep.LogNormal(1.0, 0.2)),
        data=ep.Fixed(jnp.arange(4.0)),
        counts=jnp.arange(5),
        key=jax.random.key(7),
        tag="net",
    )


def _without_shardings(tree):
    def strip(x):
        if isinstance(x, jax.ShapeDtypeStruct):
            return jax.ShapeDtypeStruct(x.shape, x.dtype)
        return x

    return jax.tree.map(strip, tree)


def test_shapes():
    model = ep.normal(make_net(), key=jax.random.key(0))
    abstract = ep.shapes(model)
    # A latent on no particular device (uncommitted) records no sharding; a
    # committed one keeps it (tests/test_sharding_ops.py checks a mesh sharding).
    assert not model.layers[0]["w"].latent.committed
    assert abstract.layers[0]["w"].latent == jax.ShapeDtypeStruct((3, 2), DEFAULT_FLOAT)
    device = jax.devices()[0]
    committed = eqx.tree_at(
        lambda m: m.layers[0]["w"].latent,
        model,
        jax.device_put(model.layers[0]["w"].latent, device),
    )
    struct = ep.shapes(committed).layers[0]["w"].latent
    assert struct.sharding == jax.sharding.SingleDeviceSharding(device)
    params = ep.named_params(abstract)
    assert len(params) == 4 and all(p.is_abstract for p in params.values())
    assert abstract.data.stored is model.data.stored
    assert abstract.scale.prior is model.scale.prior
    assert tree_allclose(ep.shapes(make_net()), _without_shardings(abstract))
    # An abstract model has no shardings to keep: `shapes` gives it back.
    assert tree_allclose(ep.shapes(make_net()), make_net())


def test_zeros(float_dtype):
    model = ep.zeros(make_net(float_dtype))
    assert model.layers[0]["w"].latent.dtype == float_dtype
    np.testing.assert_array_equal(model.layers[0]["w"].latent, np.zeros((3, 2)))
    np.testing.assert_allclose(model.layers[1]["w"].value, 0.0)
    np.testing.assert_array_equal(model.data.value, np.arange(4.0))


def test_normal_fills_every_latent_with_distinct_values(getkey):
    model = ep.normal(make_net(), key=getkey())
    params = jax.tree.leaves(ep.partition(model)[0])
    assert len(params) == 4
    values = np.concatenate([np.ravel(p) for p in params])
    assert len(np.unique(values)) == values.size  # no two leaves share draws


def test_normal_is_deterministic_per_key():
    a = ep.normal(make_net(), key=jax.random.key(1))
    b = ep.normal(make_net(), key=jax.random.key(1))
    c = ep.normal(make_net(), key=jax.random.key(2))
    assert tree_allclose(a, b, rtol=0, atol=0)
    assert not tree_allclose(a, c)


def test_normal_accepts_raw_uint32_keys():
    model = ep.normal(make_net(), key=jax.random.PRNGKey(0))
    assert not model.scale.is_abstract


def test_normal_never_touches_non_params(getkey):
    template = make_net()
    model = ep.normal(template, key=getkey())
    assert model.data.stored is template.data.stored
    assert model.counts is template.counts
    assert model.key is template.key
    assert model.tag == "net"
    assert model.scale.prior is template.scale.prior


def test_normal_draws_fold_in_of_the_param_index():
    """The j-th Param in path order gets `normal(fold_in(key, j))`, drawn in at
    least float32 and cast to its dtype."""
    key = jax.random.key(11)
    mu = ep.Param(shape=(2,), prior=ep.Normal(0.0, 3.0))
    template = {
        "a": ep.Param(shape=(3,), dtype=jnp.bfloat16),
        "b": ep.Param(shape=(2,), prior=ep.Normal(mu, 1.0)),  # b, then b.prior.mean
        "c": ep.Fixed(jnp.arange(3.0)),
        "d": ep.Param(shape=(2,)),
        "e": ep.Param(shape=()),
    }
    model = ep.normal(template, key=key)

    def draw(j, shape, dtype):
        ct = jnp.float32 if jnp.dtype(dtype).itemsize < 4 else dtype
        return jax.random.normal(jax.random.fold_in(key, j), shape, ct).astype(dtype)

    latents = {
        "a": model["a"].latent,
        "b": model["b"].latent,
        "b.prior.mean": model["b"].prior.mean.latent,
        "d": model["d"].latent,
        "e": model["e"].latent,
    }
    for j, (name, z) in enumerate(latents.items()):
        expected = draw(j, z.shape, z.dtype)
        assert z.dtype == expected.dtype, name
        np.testing.assert_array_equal(z, expected, err_msg=name)
    assert model["c"].stored is template["c"].stored
    jitted = eqx.filter_jit(lambda k: ep.normal(template, key=k))(key)
    assert tree_allclose(jitted, model, rtol=0, atol=0)


def test_normal_is_standard_normal(getkey):
    model = ep.normal({"z": ep.Param(shape=(20000,))}, key=getkey())
    z = model["z"].latent
    assert abs(float(jnp.mean(z))) < 0.03 and abs(float(jnp.std(z)) - 1) < 0.03


def test_normal_same_under_jit():
    key = jax.random.key(3)
    eager = ep.normal(make_net(), key=key)
    jitted = eqx.filter_jit(lambda k: ep.normal(make_net(), key=k))(key)
    assert tree_allclose(eager, jitted, rtol=0, atol=0)


@pytest.mark.slow
def test_normal_ensemble_member_equals_single_call():
    keys = jax.random.split(jax.random.key(4), 5)
    template = make_net()
    ensemble = eqx.filter_vmap(lambda k: ep.normal(template, key=k))(keys)
    assert ensemble.layers[0]["w"].latent.shape == (5, 3, 2)
    for i in (0, 3):
        member = jax.tree.map(
            lambda x: x[i] if eqx.is_array(x) and x.ndim and x.shape[0] == 5 else x,
            ensemble,
        )
        single = ep.normal(template, key=keys[i])
        np.testing.assert_array_equal(
            member.layers[0]["w"].latent, single.layers[0]["w"].latent
        )
        np.testing.assert_array_equal(member.scale.latent, single.scale.latent)


def test_normal_nested_vmap_invariance():
    """Building under nested filter_vmap agrees with building directly."""
    keys = jax.random.split(jax.random.key(5), 6).reshape(2, 3)
    template = {"w": ep.Param(shape=(4,))}
    nested = eqx.filter_vmap(eqx.filter_vmap(lambda k: ep.normal(template, key=k)))(
        keys
    )
    direct = ep.normal(template, key=keys[1, 2])
    np.testing.assert_array_equal(nested["w"].latent[1, 2], direct["w"].latent)


def test_normal_mixed_dtypes():
    model = {
        "a": ep.Param(shape=(3,), dtype=jnp.bfloat16),
        "b": ep.Param(shape=(2,), dtype=jnp.float16),
        "c": ep.Param(shape=(2,)),
    }
    out = ep.normal(model, key=jax.random.key(0))
    assert out["a"].latent.dtype == jnp.bfloat16
    assert out["b"].latent.dtype == jnp.float16
    assert out["c"].latent.dtype == DEFAULT_FLOAT


def test_normal_float64():
    with jax.enable_x64(True):
        out = ep.normal(
            {"a": ep.Param(shape=(3,), dtype=jnp.float64)}, key=jax.random.key(0)
        )
        assert out["a"].latent.dtype == jnp.float64


def test_normal_grad_flows_through_nothing(getkey):
    # `normal` only draws; it is not a function of the model's values.
    template = make_net()
    model = ep.normal(template, key=getkey())
    assert ep.shapes(model).layers[0]["b"].latent.shape == (2,)


@pytest.mark.slow
def test_log_prior(getkey):
    model = ep.normal(make_net(), key=getkey())
    latents = jnp.concatenate(
        [jnp.ravel(x) for x in jax.tree.leaves(ep.partition(model)[0])]
    )
    expected = jnp.sum(jax.scipy.stats.norm.logpdf(latents))
    np.testing.assert_allclose(ep.log_prior(model), expected, rtol=1e-6)
    params, rest = ep.partition(model)
    grad = eqx.filter_grad(lambda p: ep.log_prior(ep.combine(p, rest)))(params)
    assert sorted(grad) == sorted(params)
    np.testing.assert_allclose(grad["scale"], -model.scale.latent, rtol=1e-6)
    jitted = eqx.filter_jit(ep.log_prior)(model)
    np.testing.assert_allclose(jitted, expected, rtol=1e-6)
    keys = jax.random.split(getkey(), 3)
    ensemble = eqx.filter_vmap(lambda k: ep.normal(make_net(), key=k))(keys)
    batched = eqx.filter_vmap(ep.log_prior)(ensemble)
    assert batched.shape == (3,)


def test_log_prior_dtype():
    model = ep.zeros({"a": ep.Param(shape=(3,), dtype=jnp.bfloat16)})
    lp = ep.log_prior(model)
    assert lp.dtype == jnp.float32
    np.testing.assert_allclose(lp, 3 * -0.5 * math.log(2 * math.pi), rtol=1e-6)
    assert ep.log_prior({"no": jnp.arange(2)}) == 0.0
    assert ep.log_prior({"no": jnp.ones(2)}, allow_plain=True) == 0.0


def test_log_prior_abstract_error():
    with pytest.raises(ValueError, match=r"Param at `\['scale'\]` is abstract"):
        ep.log_prior({"scale": ep.Param(shape=())})


def test_log_densities_refuse_plain_trainable_arrays():
    """A hybrid model (a plain `eqx.nn` layer beside Params) trains and ravels its
    plain weights, but no prior counts them: `ep.log_prior`/`ep.log_prob` refuse,
    naming their paths and `ep.wrap`, unless `allow_plain=True` asks for the flat
    (improper) prior on purpose. Wrapped, the model has a proper prior."""

    class Hybrid(eqx.Module):
        scale: ep.Param
        correction: eqx.nn.Linear

    model = Hybrid(
        ep.Param(1.0, prior=ep.LogNormal(1.0, 0.5)),
        eqx.nn.Linear(2, 1, key=jax.random.key(0)),
    )
    assert ep.ravel(model)[0].shape == (4,)  # the plain weights are in the vector
    for density in (ep.log_prior, ep.log_prob):
        with pytest.raises(
            ValueError,
            match=r"2 trainable plain array\(s\) with no prior: `correction.weight`, "
            r"`correction.bias`.*ep.wrap.*allow_plain=True",
        ):
            density(model)
        with pytest.raises(ValueError, match="allow_plain"):
            jax.jit(density)(model)
        flat = density(model, allow_plain=True)
        only = density({"scale": model.scale})
        np.testing.assert_allclose(flat, only, rtol=1e-6)
    wrapped = eqx.tree_at(lambda m: m.correction, model, ep.wrap(model.correction))
    assert ep.ravel(wrapped)[0].shape == (4,)
    assert ep.log_prior(wrapped) < ep.log_prior(model, allow_plain=True)
    frozen = eqx.tree_at(
        lambda m: m.correction, model, ep.wrap(model.correction, fixed=lambda n: n)
    )
    np.testing.assert_allclose(ep.log_prior(frozen), ep.log_prior({"s": model.scale}))
    # Integer arrays and the params of a partition's `rest` side are not trainable.
    assert ep.log_prior({"n": jnp.arange(3)}) == 0.0
    params, _ = ep.partition(model)
    with pytest.raises(ValueError, match=r"`\['scale'\]`.*ep.combine\(params, rest\)"):
        ep.log_prior(params)


def test_normal_takes_one_key_and_refuses_anything_else(unchecked_types):
    model = {"w": ep.Param(shape=(3,))}
    for key, got in [
        (None, r"NoneType"),
        (0, r"int"),
        ("key", r"str"),
        (jax.random.split(jax.random.key(0), 2), r"\w+ of shape \(2,\) and dtype key"),
    ]:
        with pytest.raises(
            TypeError,
            match=rf"`ep.normal\(model, \*, key\)`: `key` must be one JAX PRNG key, "
            rf"e.g. `key=jax.random.key\(0\)`; got {got}.*eqx.filter_vmap",
        ):
            ep.normal(model, key=key)
    assert model["w"].is_abstract
    for key in (jax.random.key(1), jax.random.PRNGKey(1)):  # typed and raw keys
        assert jax.jit(lambda k: ep.normal(model, key=k))(key)["w"].shape == (3,)
    keys = jax.random.split(jax.random.key(2), 4)
    ensemble = eqx.filter_vmap(lambda k: ep.normal(model, key=k))(keys)
    assert ensemble["w"].shape == (4, 3)


def _density_model(dtype=jnp.float32):
    tau = ep.Param(jnp.asarray(0.8, dtype), prior=ep.HalfNormal(2.0))
    return {
        "x": ep.Param(jnp.asarray([0.5, -1.0], dtype), prior=ep.Normal(1.0, 2.0)),
        "y": ep.Param(jnp.asarray(2.5, dtype), prior=ep.LogNormal(3.0, 1.0)),
        "theta": ep.Param(jnp.asarray([0.1, 0.2], dtype), prior=ep.Normal(0.0, tau)),
    }


def _scipy_log_prob():
    import scipy.stats as st

    s2 = math.log1p((1.0 / 3.0) ** 2)
    return float(
        st.norm(1.0, 2.0).logpdf([0.5, -1.0]).sum()
        + st.lognorm(s=math.sqrt(s2), scale=3.0 * math.exp(-s2 / 2)).logpdf(2.5)
        + st.halfnorm(scale=2.0).logpdf(0.8)
        + st.norm(0.0, 0.8).logpdf([0.1, 0.2]).sum()
    )


def _scipy_log_prior(model):
    latents = np.concatenate(
        [np.ravel(np.asarray(z, np.float64)) for z in ep.flatten(model)[0]]
    )
    return float(-0.5 * np.sum(latents**2) - 0.5 * latents.size * math.log(2 * math.pi))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_log_prob_and_log_prior_values_and_dtypes(dtype):
    with jax.enable_x64(True):
        model = _density_model(jnp.dtype(dtype))
        want = {"float64": "float64"}.get(dtype, "float32")  # at least float32
        lp = ep.log_prob(model)
        assert lp.dtype == want and lp.shape == ()
        prior = ep.log_prior(model)
        assert prior.dtype == want and prior.shape == ()
        if dtype != "bfloat16":
            rtol = 1e-12 if dtype == "float64" else 1e-5
            np.testing.assert_allclose(lp, _scipy_log_prob(), rtol=rtol)
            np.testing.assert_allclose(prior, _scipy_log_prior(model), rtol=rtol)
        # Jitted: the same.
        np.testing.assert_allclose(jax.jit(ep.log_prob)(model), lp, rtol=1e-6)


@pytest.mark.parametrize("x64", [False, True])
def test_log_densities_of_an_empty_model_are_float32_zeros(x64):
    with jax.enable_x64(x64 or X64):
        for f in (ep.log_prior, ep.log_prob):
            for model in ({}, {"t": ep.Fixed(jnp.ones(2))}):
                value = f(model)
                assert value.dtype == jnp.float32 and value.shape == ()
                assert float(value) == 0.0


def test_normal_draws_in_float32_at_least_under_x64():
    with jax.enable_x64(True):
        model = {"a": ep.Param(shape=(3,), dtype=jnp.float32), "b": ep.Param(shape=())}
        key = jax.random.key(2)
        drawn = ep.normal(model, key=key)
        want_a = jax.random.normal(jax.random.fold_in(key, 0), (3,), jnp.float32)
        want_b = jax.random.normal(jax.random.fold_in(key, 1), (), jnp.float64)
        assert drawn["a"].latent.dtype == jnp.float32
        np.testing.assert_array_equal(drawn["a"].latent, want_a)
        assert drawn["b"].latent.dtype == jnp.float64
        np.testing.assert_array_equal(drawn["b"].latent, want_b)


def test_whole_model_operations_on_traced_latents():
    model = ep.normal(
        {"a": ep.Param(shape=(3,)), "t": ep.Fixed(jnp.ones(2))}, key=jax.random.key(0)
    )

    @jax.jit
    def redraw(m):
        again = ep.normal(m, key=jax.random.key(1))
        return again, ep.zeros(m), ep.shapes(m)["a"].latent.shape

    again, zeros, shape = redraw(model)
    want = jax.random.normal(jax.random.fold_in(jax.random.key(1), 0), (3,))
    np.testing.assert_array_equal(again["a"].latent, want.astype(DEFAULT_FLOAT))
    np.testing.assert_array_equal(zeros["a"].latent, np.zeros(3))
    assert shape == (3,)
