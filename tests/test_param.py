"""`ep.Param`: it keeps the dtype of its value, through a shape, a latent and the
split and back."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep
from eqxpurify._param import param_str, with_latent
from eqxpurify._pending import PendingShape
from eqxpurify._wrapper_base import with_fields

from .conftest import DEFAULT_FLOAT, X64, raises_and_keeps

FLOATS = ["bfloat16", "float16", "float32", "float64"]


def _priors():
    return {
        "default": None,
        "lognormal": ep.LogNormal(1.0, 0.5),
        "uniform": ep.Uniform(0.0, 2.0),
        "normal-array": ep.Normal(jnp.array([1.0, 2.0]), 1.0),
    }


@pytest.mark.slow
@pytest.mark.parametrize("prior", list(_priors()))
@pytest.mark.parametrize("source", ["jax", "numpy", "jax-scalar"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_param_keeps_the_dtype_of_its_value(dtype, source, prior):
    with jax.enable_x64(X64 or dtype == "float64"):
        prior_ = _priors()[prior]
        values = np.array([0.5, 1.25])
        if source == "jax":
            value = jnp.asarray(values, dtype)
        elif source == "numpy":
            value = values.astype(jnp.dtype(dtype))
        else:
            value = jnp.asarray(values, dtype)[1]
        p = ep.Param(value) if prior_ is None else ep.Param(value, prior=prior_)
        assert p.dtype == jnp.dtype(dtype)
        assert p.latent.dtype == jnp.dtype(dtype)
        assert p.value.dtype == jnp.dtype(dtype)
        if prior != "normal-array":  # (that prior's batch shape is (2,))
            assert p.shape == np.shape(value)
        tol = {"bfloat16": 2e-2, "float16": 2e-3}.get(dtype, 1e-6)
        np.testing.assert_allclose(
            np.asarray(p.value, np.float64), np.asarray(value, np.float64), rtol=tol
        )
        # Broadcast to a shape, and from a latent: the same dtype.
        q = ep.Param(value, shape=(3, 2)) if np.ndim(value) else ep.Param(value)
        assert q.dtype == jnp.dtype(dtype)
        r = ep.Param.from_latent(p.latent, prior=p.prior)
        assert r.dtype == jnp.dtype(dtype) and r.value.dtype == jnp.dtype(dtype)
        # Through the params-dict partition and back.
        params, rest = ep.partition({"p": p})
        assert params["['p']"].dtype == jnp.dtype(dtype)
        assert ep.combine(params, rest)["p"].dtype == jnp.dtype(dtype)


@pytest.mark.skipif(X64, reason="a Python int above int32 is an int64 under x64")
def test_large_python_int_value():
    p = ep.Param(2**31, prior=ep.Normal(0.0, 1e10))
    assert float(p.value) == 2.0**31


# --------------------------------------------------------------------------------
# Construction: abstract, from a value, from a latent; the shape and dtype rules.

SHORT = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}


def lecun(shape):
    return ep.Normal(0.0, 1.0 / shape[-1])


def _scaled(shape, scale):
    return ep.Normal(0.0, scale)


def test_abstract_by_shape(float_dtype):
    p = ep.Param(shape=(3, 2), dtype=float_dtype)
    assert p.is_abstract
    assert isinstance(p.latent, jax.ShapeDtypeStruct)
    assert p.latent.shape == (3, 2) and p.shape == (3, 2)
    assert p.dtype == jnp.dtype(float_dtype) and isinstance(p.dtype, np.dtype)
    assert isinstance(p.prior, ep.Normal) and p.name is None
    # An int shape is a 1-d shape; the default dtype is JAX's default float.
    q = ep.Param(shape=4)
    assert q.shape == (4,) and q.dtype == jnp.dtype(DEFAULT_FLOAT)


def test_abstract_shape_from_the_prior():
    assert ep.Param(prior=ep.LogNormal(3.0, 0.1)).shape == ()
    p = ep.Param(prior=ep.Normal(jnp.zeros(2), 1.0))
    assert p.shape == (2,) and p.latent.shape == (2,)
    # A shape the hyperparameters broadcast to is fine; one they do not is refused.
    assert ep.Param(shape=(3, 2), prior=ep.Normal(jnp.zeros(2), 1.0)).shape == (3, 2)
    raises_and_keeps(
        lambda: ep.Param(shape=(3,), prior=ep.Normal(jnp.zeros(2), 1.0)),
        None,
        ValueError,
        "hyperparameters have shape (2,)",
        "the Param's shape (3,)",
    )


def test_abstract_dirichlet_latent_is_smaller():
    p = ep.Param(shape=(3,), prior=ep.Dirichlet(jnp.ones(3)))
    assert p.latent.shape == (2,) and p.shape == (3,)


def test_abstract_with_an_integer_dtype_is_refused():
    raises_and_keeps(
        lambda: ep.Param(shape=(2,), dtype=jnp.int32),
        None,
        TypeError,
        "needs a floating dtype, got int32",
    )
    raises_and_keeps(
        lambda: ep.Param(1.0, dtype=jnp.int32),
        None,
        TypeError,
        "needs a floating dtype, got int32",
    )


def test_bad_shapes_are_refused():
    raises_and_keeps(
        lambda: ep.Param(shape=(1.5,)),
        None,
        TypeError,
        "`ep.Param`: `shape` must be a tuple of static Python ints, got (1.5,)",
    )
    raises_and_keeps(
        lambda: ep.Param(jnp.ones(2), shape=(2.0,)),
        None,
        TypeError,
        "`ep.Param`: `shape` must be a tuple",
    )
    raises_and_keeps(
        lambda: ep.Param(shape=(ep.INPUT, -1)),
        None,
        TypeError,
        "`ep.Param`: `shape` must hold non-negative Python ints and `ep.INPUT`",
    )


def test_from_a_value_stores_its_latent(float_dtype):
    # Normal(mu, s): z = (x - mu) / s.
    p = ep.Param(jnp.asarray([1.0, 4.0], float_dtype), prior=ep.Normal(2.0, 0.5))
    assert not p.is_abstract and isinstance(p.latent, jax.Array)
    np.testing.assert_allclose(np.asarray(p.latent), [-2.0, 4.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(p.value), [1.0, 4.0], rtol=1e-6)
    assert p.latent.dtype == p.value.dtype == p.dtype == jnp.dtype(float_dtype)
    assert p.shape == (2,)
    # Uniform(0, 2): z = Phi^-1(x / 2), Phi^-1(0.25) = -0.674489750196...
    u = ep.Param(jnp.asarray(0.5, float_dtype), prior=ep.Uniform(0.0, 2.0))
    np.testing.assert_allclose(float(u.latent), -0.6744897501960817, rtol=1e-5)
    # LogNormal(mean m, sd s): sigma^2 = log(1 + (s/m)^2), mu = log m - sigma^2/2.
    sigma = np.sqrt(np.log(1.25))
    mu = np.log(1.0) - sigma**2 / 2
    q = ep.Param(jnp.asarray(2.5, float_dtype), prior=ep.LogNormal(1.0, 0.5))
    np.testing.assert_allclose(float(q.latent), (np.log(2.5) - mu) / sigma, rtol=1e-5)


def test_dtype_rules(float_dtype):
    # Integers (jax, numpy, Python, bool) become JAX's default float.
    for value in (jnp.arange(3), np.arange(3), 2, True):
        p = ep.Param(value)
        assert p.dtype == jnp.dtype(DEFAULT_FLOAT), value
    assert ep.Param(jnp.arange(3)).value.tolist() == [0.0, 1.0, 2.0]
    assert float(ep.Param(True).value) == 1.0
    # A floating value keeps its dtype; `dtype=` converts it.
    assert ep.Param(np.float16(1.5)).dtype == jnp.float16
    p = ep.Param(jnp.ones(2, jnp.float16), dtype=float_dtype)
    assert p.dtype == p.latent.dtype == jnp.dtype(float_dtype)
    q = ep.Param(jnp.asarray([0.5, 1.5], float_dtype), dtype=jnp.float16)
    assert q.latent.dtype == jnp.float16 and q.value.tolist() == [0.5, 1.5]


def test_scalar_value_broadcasts_to_shape():
    p = ep.Param(1.5, shape=(2, 3), prior=ep.Normal(0.5, 2.0))
    assert p.shape == (2, 3) and p.latent.shape == (2, 3)
    np.testing.assert_allclose(np.asarray(p.latent), np.full((2, 3), 0.5))
    np.testing.assert_allclose(np.asarray(p.value), np.full((2, 3), 1.5))
    # A row broadcasts along a leading axis.
    q = ep.Param(jnp.array([1.0, 2.0]), shape=(3, 2))
    assert q.value.tolist() == [[1.0, 2.0]] * 3
    # A scalar under a prior of batch shape (2,) fills that batch shape.
    r = ep.Param(1.0, prior=ep.Normal(jnp.array([0.0, 2.0]), 1.0))
    assert r.shape == (2,) and r.latent.tolist() == [1.0, -1.0]
    # An array keeps its own shape.
    assert ep.Param(jnp.zeros((2, 1))).shape == (2, 1)


def test_value_that_does_not_broadcast_to_shape():
    raises_and_keeps(
        lambda: ep.Param(jnp.zeros(2), shape=(3,)),
        None,
        ValueError,
        "`ep.Param` got a value of shape (2,) that does not broadcast to `shape=(3,)`",
    )
    raises_and_keeps(
        lambda: ep.Param(1.0, shape=(3,), prior=ep.Normal(jnp.zeros(2), 1.0)),
        None,
        ValueError,
        "hyperparameters have shape (2,)",
    )
    raises_and_keeps(
        lambda: ep.Param(jnp.zeros(3), prior=ep.Normal(jnp.zeros(2), 1.0)),
        None,
        ValueError,
        "does not broadcast to the Param's shape (3,)",
    )


def test_from_latent(float_dtype):
    z = jnp.asarray([-1.0, 0.5], float_dtype)
    p = ep.Param.from_latent(z, prior=ep.Normal(1.0, 2.0), name="w")
    assert p.latent.tolist() == [-1.0, 0.5]
    assert p.value.tolist() == [-1.0, 2.0]  # 1 + 2 z
    assert p.name == "w" and p.dtype == jnp.dtype(float_dtype)
    assert ep.Param(latent=z).value.tolist() == [-1.0, 0.5]
    q = ep.Param.from_latent(z, dtype=jnp.float16)
    assert q.latent.dtype == jnp.float16
    # Centred: the latent is the unconstrained one, value exp(latent).
    c = ep.Param.from_latent(
        jnp.log(jnp.asarray(3.0, float_dtype)),
        prior=ep.LogNormal(1.0, 0.5),
        whiten=False,
    )
    assert isinstance(c.prior, ep.Centred)
    np.testing.assert_allclose(float(c.value), 3.0, rtol=1e-5)
    # Integer latents are floats of the default dtype.
    assert ep.Param.from_latent(jnp.arange(2)).dtype == jnp.dtype(DEFAULT_FLOAT)


def test_latent_shapes_under_dirichlet():
    prior = ep.Dirichlet(jnp.ones(3))
    p = ep.Param.from_latent(jnp.zeros(2), prior=prior)
    assert p.shape == (3,) and p.latent.shape == (2,)
    np.testing.assert_allclose(np.asarray(p.value), np.full(3, 1 / 3), rtol=1e-5)
    assert ep.Param(latent=jnp.zeros(2), shape=(3,), prior=prior).shape == (3,)
    # A scalar latent fills the latent shape of `shape`.
    assert ep.Param(latent=0.0, shape=(3,), prior=prior).latent.shape == (2,)
    raises_and_keeps(
        lambda: ep.Param(latent=jnp.zeros(3), shape=(3,), prior=prior),
        None,
        ValueError,
        "`ep.Param` got a latent of shape (3,) that does not broadcast to `shape=(2,)`",
    )
    # From a value: the value's shape, a smaller latent.
    v = ep.Param(jnp.array([0.2, 0.3, 0.5]), prior=prior)
    assert v.shape == (3,) and v.latent.shape == (2,)
    np.testing.assert_allclose(np.asarray(v.value), [0.2, 0.3, 0.5], rtol=1e-5)


def test_value_and_latent_together_are_refused():
    info = raises_and_keeps(lambda: ep.Param(1.0, latent=1.0), None, ValueError)
    assert str(info.value) == "Pass at most one of `value` and `latent` to `ep.Param`."


def test_complex_values_and_latents_are_refused():
    for call, what in [
        (lambda: ep.Param(jnp.ones(2, jnp.complex64)), "value"),
        (lambda: ep.Param.from_latent(np.array([1 + 1j])), "latent"),
    ]:
        info = raises_and_keeps(call, None, TypeError)
        assert str(info.value) == (
            f"`ep.Param` got a complex {what}; a Param is real. Use two Params "
            "(real and imaginary parts), or `ep.Fixed` for data."
        )


def test_non_arrays_are_refused(unchecked_types):
    raises_and_keeps(
        lambda: ep.Param("abc"),
        None,
        TypeError,
        "`ep.Param` needs an array or a number, got str.",
    )


def test_value_outside_the_support():
    info = raises_and_keeps(
        lambda: ep.Param(jnp.array([1.0, -1.0]), prior=ep.LogNormal(1.0, 0.5)),
        None,
        ValueError,
    )
    assert str(info.value) == (
        "`ep.Param` got a value outside the support of its prior LogNormal "
        "(`prior.inverse(value)` is not finite). Pass a value inside the prior's "
        "support (e.g. positive for LogNormal, strictly inside (low, high) for "
        "Uniform)."
    )
    raises_and_keeps(
        lambda: ep.Param(2.0, prior=ep.Uniform(0.0, 1.0)),
        None,
        ValueError,
        "outside the support of its prior Uniform",
    )


def test_value_whose_latent_overflows():
    info = raises_and_keeps(
        lambda: ep.Param(100.0, prior=ep.Normal(0.0, 0.001), dtype=jnp.float16),
        None,
        ValueError,
    )
    assert str(info.value) == (
        "`ep.Param` got a value whose latent overflows float16: "
        "`prior.inverse(value)` is not finite. Pass a value nearer the prior's "
        "median (inside its support), or a wider `dtype=`."
    )
    raises_and_keeps(
        lambda: ep.Param(1e30, prior=ep.Normal(0.0, 1e-30), dtype=jnp.float32),
        None,
        ValueError,
        "latent overflows float32",
    )


def test_value_that_overflows_its_dtype():
    raises_and_keeps(
        lambda: ep.Param(jnp.asarray(1e5, jnp.float32), dtype=jnp.float16),
        None,
        ValueError,
        "`ep.Param`: the value overflows float16",
    )


def test_latent_that_is_not_finite():
    for bad in (jnp.inf, jnp.nan):
        raises_and_keeps(
            lambda: ep.Param.from_latent(jnp.array([1.0, bad])),
            None,
            ValueError,
            "`ep.Param.from_latent` got a latent that is not finite",
        )
    # Finite in float32, inf in float16.
    info = raises_and_keeps(
        lambda: ep.Param.from_latent(jnp.array(1e5), dtype=jnp.float16),
        None,
        ValueError,
    )
    assert str(info.value) == (
        "`ep.Param.from_latent` got a latent that is not finite (NaN or inf) in its "
        "dtype. Pass finite latents; the physical value is `prior.forward(latent)`."
    )


def test_traced_value_checks_at_run_time():
    @jax.jit
    def make(x):
        return ep.Param(x, prior=ep.LogNormal(1.0, 0.5)).latent

    assert jnp.isfinite(make(jnp.asarray(2.5)))
    with pytest.raises(Exception, match="outside the support of its prior LogNormal"):
        jax.block_until_ready(make(jnp.asarray(-1.0)))


# --------------------------------------------------------------------------------
# The prior: default, numpyro, not a prior; `whiten=`.


def test_prior_that_is_not_a_prior():
    info = raises_and_keeps(lambda: ep.Param(1.0, prior=3.0), None, TypeError)
    assert str(info.value) == (
        "`prior` must be an `ep.AbstractPrior` such as `ep.Normal(0, 1)`, or a "
        "numpyro distribution, got float."
    )
    # A function is a prior only for a shape that waits for an input.
    raises_and_keeps(
        lambda: ep.Param(1.0, prior=lecun), None, TypeError, "got function"
    )
    raises_and_keeps(
        lambda: ep.Param(shape=(2,), prior=lecun), None, TypeError, "got function"
    )


def test_default_prior_is_standard_normal():
    p = ep.Param(jnp.array([0.5, -2.0]))
    assert isinstance(p.prior, ep.Normal)
    assert p.latent.tolist() == [0.5, -2.0]
    assert float(p.prior.mean.value) == 0.0 and float(p.prior.sigma.value) == 1.0


def test_numpyro_prior():
    import numpyro.distributions as dist

    p = ep.Param(3.0, prior=dist.Normal(1.0, 2.0))
    assert isinstance(p.prior, ep.AbstractPrior)
    np.testing.assert_allclose(float(p.latent), 1.0, rtol=1e-6)  # (3 - 1) / 2


def test_whiten(unchecked_types):
    prior = ep.LogNormal(1.0, 0.5)
    assert ep.Param(2.5, prior=prior).prior is prior
    assert ep.Param(2.5, prior=prior, whiten=True).prior is prior
    c = ep.Param(2.5, prior=prior, whiten=False)
    assert isinstance(c.prior, ep.Centred)
    np.testing.assert_allclose(float(c.latent), np.log(2.5), rtol=1e-6)
    np.testing.assert_allclose(float(c.value), 2.5, rtol=1e-6)
    # A prior without a whitening transform is centred unless `whiten=True`.
    assert isinstance(ep.Param(1.0, prior=ep.Flat()).prior, ep.Centred)
    assert isinstance(ep.Param(shape=(2,), prior=ep.Flat()).prior, ep.Centred)
    raises_and_keeps(
        lambda: ep.Param(1.0, prior=ep.Flat(), whiten=True),
        None,
        ValueError,
        "the prior `Flat` has no exact transform from a standard normal",
        "Pass `whiten=False`",
    )
    raises_and_keeps(
        lambda: ep.Param(1.0, whiten="yes"),
        None,
        TypeError,
        "`whiten` must be True, False or None, got 'yes'.",
    )
    assert isinstance(ep.Param(shape=(2,), whiten=False).prior, ep.Centred)


# --------------------------------------------------------------------------------
# `name=`, `sharding=` and shapes that wait for an input.


@pytest.mark.parametrize("bad", ["", 3, b"w"])
def test_bad_names_are_refused(bad, unchecked_types):
    raises_and_keeps(
        lambda: ep.Param(1.0, name=bad),
        None,
        TypeError,
        "`ep.Param(name=...)` must be a non-empty string (or None)",
        f"got {bad!r}",
    )


def test_names_are_kept():
    assert ep.Param(1.0, name="w").name == "w"
    assert ep.Param(shape=(2,), name="w").name == "w"
    assert ep.Param(shape=(ep.INPUT,), name="w").name == "w"
    assert ep.Param(1.0).name is None


def test_sharding_is_kept():
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices()[:1]), ("x",))
    sharding = NamedSharding(mesh, PartitionSpec())
    for p in (
        ep.Param(jnp.ones(2), sharding=sharding),
        ep.Param(latent=jnp.ones(2), sharding=sharding),
    ):
        assert isinstance(p.latent.sharding, NamedSharding)
        assert p.latent.sharding == sharding
    assert ep.Param(shape=(2,), sharding=sharding).latent.sharding == sharding
    assert ep.Param(shape=(ep.INPUT,), sharding=sharding).latent.sharding == sharding
    assert ep.Param(shape=(ep.INPUT,)).latent.sharding is None


def test_shape_that_waits_for_an_input(float_dtype, unchecked_types):
    p = ep.Param(shape=(3, ep.INPUT), dtype=float_dtype)
    assert p.is_abstract
    assert isinstance(p.latent, PendingShape)
    assert p.shape == (3, ep.INPUT)
    assert p.dtype == jnp.dtype(float_dtype)
    assert p.latent.prior_fn is None and isinstance(p.prior, ep.Normal)
    assert ep.Param(shape=ep.INPUT).shape == (ep.INPUT,)
    assert ep.Param(shape=[2, ep.INPUT]).shape == (2, ep.INPUT)
    assert ep.Param(shape=(ep.INPUT,)).dtype == jnp.dtype(DEFAULT_FLOAT)
    assert isinstance(ep.Param(shape=(ep.INPUT,), prior=ep.Flat()).prior, ep.Centred)
    raises_and_keeps(
        lambda: p.value,
        p,
        ValueError,
        "has a shape that waits for an input ((3, ep.INPUT))",
        "ep.infer_shapes(model, x)",
    )
    raises_and_keeps(
        lambda: ep.Param(shape=(ep.INPUT,), dtype=jnp.int32),
        None,
        TypeError,
        "needs a floating dtype",
    )


@pytest.mark.parametrize("kind", ["value", "latent"])
def test_shape_that_waits_for_an_input_with_a_value(kind):
    raises_and_keeps(
        lambda: ep.Param(shape=(ep.INPUT,), **{kind: jnp.ones(2)}),
        None,
        ValueError,
        "a `shape` with `ep.INPUT` is for a Param without a value yet",
        "`ep.infer_shapes(model, x)` resolves it",
    )


def test_prior_as_a_function_of_the_shape():
    p = ep.Param(shape=(4, ep.INPUT), prior=lecun)
    assert p.latent.prior_fn is lecun
    assert isinstance(p.prior, ep.Normal)  # a placeholder until the shape is known
    assert repr(p) == "Param(abstract, shape=(4, ep.INPUT), prior=lecun(shape))"
    partial = functools.partial(_scaled, scale=2.0)
    q = ep.Param(shape=(ep.INPUT,), prior=partial)
    assert q.latent.prior_fn is partial
    assert repr(q) == "Param(abstract, shape=(ep.INPUT,), prior=function(shape))"


def test_numpyro_prior_with_a_pending_shape_is_a_prior():
    import numpyro.distributions as dist

    p = ep.Param(shape=(ep.INPUT,), prior=dist.Normal(0.0, 2.0))
    assert p.latent.prior_fn is None
    assert isinstance(p.prior, ep.AbstractPrior)
    assert "prior=Normal(loc=0, scale=2)" in repr(p)


# --------------------------------------------------------------------------------
# Properties, `with_latent`, `is_param`.


def test_abstract_value_is_an_error():
    p = ep.Param(shape=(3,))
    raises_and_keeps(
        lambda: p.value,
        p,
        ValueError,
        "The Param is abstract (shape (3,), no value yet)",
        "ep.normal(model, key=key)",
    )


def test_shape_without_a_prior():
    p = with_fields(ep.Param(jnp.ones((2, 3))), prior=None)
    assert p.shape == (2, 3)


def test_value_keeps_the_latent_dtype():
    # float64 hyperparameters do not promote a float32 value.
    with jax.enable_x64(True):
        p = ep.Param(jnp.ones(2, jnp.float32), prior=ep.Normal(jnp.float64(1.0), 2.0))
        assert p.value.dtype == jnp.float32 and p.value.tolist() == [1.0, 1.0]


def test_with_latent():
    p = ep.Param(1.0, prior=ep.Normal(1.0, 2.0), name="w")
    q = with_latent(p, jnp.array(2.0))
    assert type(q) is ep.Param and q is not p
    assert q.prior is p.prior and q.name == "w"
    assert float(q.value) == 5.0 and float(p.value) == 1.0
    r = with_latent(p, jax.ShapeDtypeStruct((), jnp.float32))
    assert r.is_abstract and not p.is_abstract


def test_is_param():
    assert ep.is_param(ep.Param(1.0))
    assert ep.is_param(ep.Param(shape=(2,)))
    assert not ep.is_param(ep.Fixed(1.0))
    assert not ep.is_param(jnp.ones(2))
    assert not ep.is_param(ep.Param)
    tree = {"a": ep.Param(jnp.ones(2)), "b": jnp.zeros(3)}
    leaves = jax.tree.leaves(tree, is_leaf=ep.is_param)
    assert len(leaves) == 2 and ep.is_param(leaves[0])


# --------------------------------------------------------------------------------
# The text: `repr` and `param_str` of every kind of Param.


def test_repr_of_a_concrete_param():
    assert repr(ep.Param(2.5, prior=ep.LogNormal(3.0, 0.1))) == (
        "Param(2.5, prior=LogNormal(mean=3, sd=0.1))"
    )
    assert repr(ep.Param(jnp.array([1.0, 2.0]))) == "Param([1, 2], prior=Normal(0, 1))"
    assert repr(ep.Param(1.0, name="w")) == "Param(1, prior=Normal(0, 1), name='w')"
    assert param_str(ep.Param(1.0)) == "Param(1, prior=Normal(0, 1))"
    half = ep.Param(jnp.ones(2, jnp.float16))
    assert repr(half) == "Param([1, 1], dtype=f16, prior=Normal(0, 1))"


def test_repr_of_an_abstract_param():
    assert (
        repr(ep.Param(shape=(3,))) == "Param(abstract, shape=(3,), prior=Normal(0, 1))"
    )
    assert repr(ep.Param(shape=(3,), dtype=jnp.float16, name="w")) == (
        "Param(abstract, shape=(3,), dtype=f16, prior=Normal(0, 1), name='w')"
    )
    assert repr(ep.Param(shape=(2, ep.INPUT))) == (
        "Param(abstract, shape=(2, ep.INPUT), prior=Normal(0, 1))"
    )


def test_repr_of_a_hierarchical_param():
    p = ep.Param(1.0, prior=ep.Normal(ep.Param(0.5, name="mu"), 1.0))
    assert (
        repr(p)
        == "Param(1, prior=Normal(Param(0.5, prior=Normal(0, 1), name='mu'), 1))"
    )
    a = ep.Param(prior=ep.Normal(ep.Param(shape=()), 1.0))
    assert repr(a) == (
        "Param(abstract, shape=(), prior=Normal(Param(abstract, shape=(), "
        "prior=Normal(0, 1)), 1))"
    )


def test_repr_traced(float_dtype):
    f = SHORT[jnp.dtype(float_dtype).name]
    seen = []
    p = ep.Param(jnp.ones(2, float_dtype), name="w")
    jax.jit(lambda q: seen.append(repr(q)))(p)
    h = SHORT[jnp.dtype(DEFAULT_FLOAT).name]  # the hyperparameters' dtype
    assert seen == [f"Param({f}[2], prior=Normal({h}[], {h}[]), name='w')"]
    # Only the latent traced (a float16 one: the spec, with no dtype note).
    half = ep.Param(jnp.ones(2, jnp.float16))
    jax.jit(lambda z: seen.append(repr(with_latent(half, z))))(half.latent)
    assert seen[1].startswith("Param(f16[2], prior=Normal(") and "dtype" not in seen[1]


def test_repr_with_only_the_prior_traced():
    # A traced prior and a concrete latent: the value is traced, shown by its spec.
    p = ep.Param(jnp.ones(2, jnp.float16))
    seen = []
    jax.jit(lambda m: seen.append(repr(with_fields(p, prior=ep.Normal(m, 1.0)))))(
        jnp.float32(0.0)
    )
    assert seen[0].startswith("Param(f16[2], prior=Normal(")
    assert "dtype=" not in seen[0]


def test_repr_of_a_gradient_and_a_filtered_param():
    p = ep.Param(jnp.ones(2), prior=ep.Normal(1.0, 2.0))
    grad = eqx.filter_grad(lambda q: jnp.sum(q.value))(p)  # d(1 + 2z)/dz = 2
    text = repr(grad)
    assert text.startswith("Param(latent=[2, 2], prior=Normal(")
    half = ep.Param(jnp.ones(2, jnp.float16))
    assert repr(eqx.filter(half, eqx.is_inexact_array)).startswith(
        "Param(latent=[1, 1], dtype=f16, prior=Normal("
    )
    # Nothing kept: the latent as it is.
    assert repr(eqx.filter(p, lambda x: False)).startswith("Param(latent=None, prior=")
    assert repr(with_latent(p, 3.0)) == "Param(latent=3.0, prior=Normal(1, 2))"
    assert repr(with_fields(p, latent=None, prior=None)) == "Param(latent=None)"
    named = with_latent(ep.Param(1.0, name="w"), None)
    assert repr(named) == "Param(latent=None, prior=Normal(0, 1), name='w')"
    # An abstract Param whose prior lost its arrays.
    a = ep.Param(shape=(2,), dtype=jnp.float16)
    kept = eqx.filter(a, lambda x: isinstance(x, jax.ShapeDtypeStruct))
    assert repr(kept).startswith("Param(latent=abstract, dtype=f16, prior=Normal(")


def test_repr_of_a_prior_of_another_shape():
    p = ep.Param(jnp.ones(2, jnp.float16))
    bad = eqx.tree_at(lambda q: q.prior, p, ep.Normal(jnp.zeros((2, 1)), 1.0))
    text = repr(bad)
    assert text.startswith(
        "Param(<latent f16[2], prior of another shape>, dtype=f16, prior="
    )


def test_repr_of_a_prior_that_does_not_broadcast():
    # Its value is an error (jax's own, from broadcasting); its text is not.
    p = ep.Param(jnp.ones(2))
    bad = eqx.tree_at(lambda q: q.prior, p, ep.Normal(jnp.zeros(3), 1.0))
    assert "prior of another shape" in repr(bad)


def test_treescope_shows_the_value():
    treescope = pytest.importorskip("treescope")
    p = ep.Param(jnp.array([0.25, 4.0]), prior=ep.Normal(1.0, 2.0))
    text = treescope.render_to_text(p)
    assert "value=<jax.Array([0.25, 4.  ]" in text and "trains=True" in text
