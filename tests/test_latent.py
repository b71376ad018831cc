"""A Param's latent and its value, both ways: refused where the latent overflows or
is not finite, and every round trip of the library's own output accepted,
also in the tails and in low precision."""

import math
import os
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import eqxpurify as ep

from .conftest import X64, close, raises_and_keeps
from .models import Holder


@pytest.mark.slow
def test_latent_checked_after_the_cast():
    # z = 1 / 1e-5 = 1e5 is finite in float32 but inf in float16.
    raises_and_keeps(
        lambda: ep.Param(1.0, prior=ep.Normal(0.0, 1e-5), dtype=jnp.float16),
        None,
        ValueError,
        match=(
            r"latent overflows float16: `prior\.inverse\(value\)` is not finite\..*or "
            r"a "
            r"wider `dtype=`"
        ),
    )
    raises_and_keeps(
        lambda: ep.Param(
            jnp.float32(1e38), prior=ep.Normal(0.0, 1e-3), dtype=jnp.bfloat16
        ),
        None,
        ValueError,
        match=r"overflows bfloat16.*wider `dtype=`",
    )
    raises_and_keeps(
        lambda: ep.Param.from_latent(1e5, dtype=jnp.float16),
        None,
        ValueError,
        match=r"`ep\.Param\.from_latent` got a latent that is not finite",
    )
    # At the edge of the range it is fine.
    assert float(ep.Param(6e4, dtype=jnp.float16).value) == 60000.0


PRIORS: dict[str, Callable[[], Any]] = {
    "Normal": lambda: ep.Normal(1.0, 2.0),
    "LogNormal": lambda: ep.LogNormal(3.0, 0.1),
    "Uniform": lambda: ep.Uniform(-3.0, 3.0),
    "HalfNormal": lambda: ep.HalfNormal(2.0),
    "HalfCauchy": lambda: ep.HalfCauchy(1.0),
    "Exponential": lambda: ep.Exponential(2.0),
}


DTYPES = ["float16", "bfloat16", "float32", "float64"]


# Far in both tails (|z| >~ 5.5 puts float32 Uniform values onto the bounds).
TAIL_Z = np.concatenate([np.linspace(-8.0, 8.0, 33), [-5.5, 5.5, -7.99, 7.99]])


def x64_for(dtype: str) -> Any:
    return jax.enable_x64(True) if dtype == "float64" else jax.enable_x64(X64)


def check_round_trips(prior: Any, dtype: Any, zs: np.ndarray) -> None:
    """Every round trip of the library's own outputs succeeds and keeps values."""
    model = Holder(ep.Param.from_latent(jnp.asarray(zs, dtype), prior=prior))
    value = model.p.value
    # values -> load_values, into the model and into an abstract template.
    back = ep.load_values(model, ep.values(model))
    close(back.p.value, value, dtype)
    close(ep.load_values(ep.shapes(model), ep.values(model)).p.value, value, dtype)
    # freeze -> unfreeze, and the frozen model's values back into it.
    frozen = ep.freeze(model, "p")
    close(frozen.p.value, value, dtype)
    frozen = ep.load_values(frozen, ep.values(frozen, ep.is_fixed))
    thawed = ep.unfreeze(frozen, "p")
    assert bool(eqx.tree_equal(thawed.p.prior, model.p.prior))
    close(thawed.p.value, value, dtype)
    # set_value with the current value, and a new Param from it.
    close(ep.set_value(model, "p", value).p.value, value, dtype)
    close(ep.Param(value, prior=prior).value, value, dtype)
    # The exact ones.
    assert bool(eqx.tree_equal(ep.combine(*ep.partition(model)), model))
    flat, unravel = ep.ravel(model)
    assert bool(eqx.tree_equal(unravel(flat), model))
    latents, unflatten = ep.flatten(model)
    assert bool(eqx.tree_equal(unflatten(latents), model))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(PRIORS))
def test_round_trips_in_the_tails(name, dtype):
    with x64_for(dtype):
        check_round_trips(PRIORS[name](), jnp.dtype(dtype), TAIL_Z)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_uniform_saturates_onto_its_bounds(dtype):
    # The case: values that rounded onto a bound come back finite (float64
    # keeps them inside the bounds for |z| <= 8).
    with x64_for(dtype):
        zs = np.array([-8.0, -6.0, 6.0, 8.0])
        model = Holder(
            ep.Param.from_latent(jnp.asarray(zs, dtype), prior=ep.Uniform(-3.0, 3.0))
        )
        assert model.p.value.tolist() == [-3.0, -3.0, 3.0, 3.0]
        back = ep.load_values(model, ep.values(model))
        assert bool(jnp.all(jnp.isfinite(back.p.latent)))
        assert back.p.value.tolist() == [-3.0, -3.0, 3.0, 3.0]
        assert ep.unfreeze(ep.freeze(model, "p"), "p").p.value.tolist() == [
            -3.0,
            -3.0,
            3.0,
            3.0,
        ]


@pytest.mark.slow
@settings(  # 25 in the default run; EQXPURIFY_HYPOTHESIS_EXAMPLES for a longer search
    max_examples=int(os.environ.get("EQXPURIFY_HYPOTHESIS_EXAMPLES", "25")),
    deadline=None,
)
@given(
    name=st.sampled_from(list(PRIORS)),
    dtype=st.sampled_from(DTYPES),
    z=st.floats(-8.0, 8.0, allow_nan=False),
)
def test_round_trip_property(name, dtype, z):
    with x64_for(dtype):
        check_round_trips(PRIORS[name](), jnp.dtype(dtype), np.array([z]))


def test_hierarchical_round_trips():
    model = {
        "theta": ep.Param(
            shape=(4,),
            prior=ep.Normal(ep.Param(0.0), ep.Param(1.0, prior=ep.HalfCauchy(1.0))),
        )
    }
    model = ep.normal(model, key=jax.random.key(3))
    model = eqx.tree_at(
        lambda m: m["theta"].latent, model, jnp.array([-8.0, -3.0, 3.0, 8.0])
    )
    back = ep.load_values(model, ep.values(model))
    for path, value in ep.values(model).items():
        close(ep.values(back)[path], value, jnp.float32)
    thawed = ep.unfreeze(ep.freeze(model, "['theta']"), "['theta']")
    assert list(ep.values(thawed)) == list(ep.values(model))


@pytest.mark.slow
@pytest.mark.parametrize(
    "prior, dtype",
    [
        (lambda: ep.Uniform(0.1, 0.2), "float16"),
        (lambda: ep.Uniform(0.1, 0.2), "bfloat16"),
        (lambda: ep.Uniform(-0.3, 0.7), "float16"),
        (lambda: ep.LogNormal(1.0, 10.0), "float16"),
        (lambda: ep.Normal(0.0, 1e4), "float16"),
    ],
    ids=[
        "Uniform(.1,.2)-f16",
        "Uniform(.1,.2)-bf16",
        "Uniform(-.3,.7)-f16",
        "LogNormal(1,10)-f16",
        "Normal(0,1e4)-f16",
    ],
)
def test_low_precision_values_that_leave_the_support(prior, dtype):
    check_round_trips(prior(), jnp.dtype(dtype), TAIL_Z)


def test_prior_swapped_by_tree_at_changes_the_shape():
    model = Holder(ep.Param(jnp.zeros(3)))
    model = eqx.tree_at(lambda m: m.p.prior, model, ep.Normal(jnp.zeros((2, 1)), 1.0))
    raises_and_keeps(
        lambda: ep.unwrap(model),
        model,
        ValueError,
        match=r"`p`.*shape \(2, 3\).*\(3,\)",
    )
    raises_and_keeps(lambda: ep.values(model), model, ValueError, match=r"`p`.*shape")


@pytest.mark.parametrize("swap", ["latent", "prior"])
def test_latent_that_does_not_broadcast_with_the_prior_names_the_path(swap):
    # JAX's own broadcasting error named neither the Param nor the cause.
    model = Holder(ep.Param(jnp.zeros(2), prior=ep.Normal(jnp.zeros(2), 1.0)))
    if swap == "latent":
        model = eqx.tree_at(lambda m: m.p.latent, model, jnp.zeros(3))
    else:
        model = eqx.tree_at(lambda m: m.p.prior, model, ep.Normal(jnp.zeros(3), 1.0))
    cause = (
        "the Param at `p`: The prior `Normal` cannot take a latent of shape (3,): "
        "its hyperparameters have shape (2,), which does not broadcast with it (was "
        "the latent or the prior replaced with `eqx.tree_at`?). Give the prior "
        "hyperparameters of a broadcastable shape, or build the Param anew: "
        "`ep.Param(value, prior=...)`."
    )
    if swap == "prior":
        cause = cause.replace("latent of shape (3,)", "latent of shape (2,)")
        cause = cause.replace("have shape (2,)", "have shape (3,)")
    for call, caller in [
        (ep.unwrap, "ep.unwrap"),
        (ep.values, "ep.values"),
        (lambda m: ep.freeze(m, "p"), "ep.freeze"),
        (eqx.filter_jit(ep.unwrap), "ep.unwrap"),
    ]:
        info = raises_and_keeps(lambda: call(model), model, ValueError)
        assert str(info.value) == f"`{caller}`: {cause}"


NAN = math.nan


def test_value_on_a_uniform_bound_is_accepted():
    # `forward` reaches the bounds in finite precision, so the library must accept
    # its own output: a value on a bound gets a finite latent that maps back to it.
    param = ep.Param(jnp.array([0.0, 0.5, 1.0]), prior=ep.Uniform(0.0, 1.0))
    assert bool(jnp.all(jnp.isfinite(param.latent)))
    np.testing.assert_array_equal(param.value, [0.0, 0.5, 1.0])


def test_nan_latent_is_rejected():
    # `ep.Param(nan)` is refused; a concrete NaN latent should be too, rather than
    # poisoning every loss computed from the model.
    with pytest.raises(ValueError, match=r"latent.*(NaN|finite)"):
        ep.Param.from_latent(jnp.array([0.0, NAN]))


def test_traced_value_outside_support_fails_at_run_time():
    # Eagerly `ep.Param(-1.0, prior=LogNormal)` is refused; under jit the same
    # value should not silently become a NaN latent (`ep.set_value` checks it with
    # `eqx.error_if`, and so should the constructor).
    build = eqx.filter_jit(lambda v: ep.Param(v, prior=ep.LogNormal(3.0, 0.1)).latent)
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"outside the support"):
        build(jnp.array(-1.0))
