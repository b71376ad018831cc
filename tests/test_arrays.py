"""What the wrappers' constructors take: shapes, dtypes and values, and a prior's
batch shape that must broadcast to the Param's."""

import math
import re

import jax
import jax.numpy as jnp
import pytest

import eqxpurify as ep

from .conftest import raises_and_keeps
from .models import Holder

NAN = math.nan


@pytest.mark.parametrize(
    "build, hyper, shape",
    [
        (
            lambda: ep.Param(
                jnp.array([1.0, 2.0, 3.0]), prior=ep.Normal(jnp.zeros((2, 1)), 1.0)
            ),
            "(2, 1)",
            "(3,)",
        ),
        (
            lambda: ep.Param(
                jnp.array([1.0, 2.0, 3.0]), prior=ep.Normal(jnp.zeros((3, 1)), 1.0)
            ),
            "(3, 1)",
            "(3,)",
        ),
        (
            lambda: ep.Param(
                jnp.array([1.0, 2.0, 3.0]), prior=ep.Normal(jnp.zeros(2), 1.0)
            ),
            "(2,)",
            "(3,)",
        ),
        # (A scalar value fills the prior's batch shape; a shape-(1,) one does not.)
        (
            lambda: ep.Param(jnp.ones(1), prior=ep.Normal(jnp.zeros(3), 1.0)),
            "(3,)",
            "(1,)",
        ),
        (
            lambda: ep.Param(shape=(3,), prior=ep.Normal(jnp.zeros((2, 1)), 1.0)),
            "(2, 1)",
            "(3,)",
        ),
        (
            lambda: ep.Param.from_latent(
                jnp.zeros(3), prior=ep.Normal(jnp.zeros((2, 1)), 1.0)
            ),
            "(2, 1)",
            "(3,)",
        ),
        (
            lambda: ep.Param(
                jnp.full(3, 0.5), prior=ep.Uniform(jnp.zeros((2, 1)), 1.0)
            ),
            "(2, 1)",
            "(3,)",
        ),
        (
            lambda: ep.Param(
                jnp.zeros(3), prior=ep.Normal(ep.Param(jnp.zeros((2, 1))), 1.0)
            ),
            "(2, 1)",
            "(3,)",
        ),
    ],
    ids=[
        "(2,1)",
        "(3,1)",
        "(2,)",
        "(1,)-value",
        "abstract",
        "from_latent",
        "Uniform",
        "hierarchical",
    ],
)
def test_hyperparameters_do_not_change_the_shape(build, hyper, shape):
    raises_and_keeps(
        build,
        None,
        ValueError,
        match=(
            rf"The prior's hyperparameters have shape {re.escape(hyper)}, which does "
            rf"not "
            rf"broadcast to the Param's shape {re.escape(shape)}\. Give the Param a "
            r"matching `shape=`"
        ),
    )


def test_shape_checked_in_surgery():
    model = Holder(ep.Param(jnp.zeros(3)))
    bad = ep.Normal(jnp.zeros((2, 1)), 1.0)
    raises_and_keeps(
        lambda: ep.unfreeze(ep.freeze(model, "p"), "p", prior=bad),
        model,
        ValueError,
        match=(
            r"`ep\.unfreeze`: the array at `p`: The prior's hyperparameters have shape "
            r"\(2, 1\).*matching `shape=`"
        ),
    )
    raises_and_keeps(
        lambda: ep.wrap({"w": jnp.zeros(3)}, prior=bad),
        None,
        ValueError,
        match=(
            r"`ep\.wrap`: the array at `\['w'\]`: The prior's hyperparameters have "
            r"shape \(2, 1\)"
        ),
    )
    raises_and_keeps(
        lambda: ep.set_value(model, "p", jnp.ones((1, 3))),
        model,
        ValueError,
        match=(
            r"Param at `p` has shape \(3,\), but the value has shape \(1, 3\)\. Pass a "
            r"value of shape \(3,\)"
        ),
    )


@pytest.mark.parametrize(
    "make, error, match",
    [
        (
            lambda: ep.Param(shape=(3,), dtype=jnp.int32),
            TypeError,
            r"`ep.Param` needs a floating dtype, got int32.*`ep.Fixed\(...\)`",
        ),
        (
            lambda: ep.Param(jnp.arange(3), dtype=jnp.int8),
            TypeError,
            r"needs a floating dtype, got int8.*`ep.Fixed\(...\)` or a plain field",
        ),
        (
            lambda: ep.Param(jnp.ones(3), shape=(4,)),
            ValueError,
            r"value of shape \(3,\) that does not broadcast to `shape=\(4,\)`",
        ),
        (
            lambda: ep.Param(jnp.ones(3), prior=ep.Normal(jnp.zeros(4), 1.0)),
            ValueError,
            r"hyperparameters have shape \(4,\).*shape \(3,\).*matching `shape=`",
        ),
        (
            lambda: ep.Param(shape=(2, 3), prior=ep.Normal(jnp.zeros(2), 1.0)),
            ValueError,
            r"shape \(2,\).*shape \(2, 3\).*Give the Param a matching `shape=`",
        ),
        (
            lambda: ep.Param(-1.0, prior=ep.LogNormal(3.0, 0.1)),
            ValueError,
            r"outside the support.*LogNormal.*Pass a value inside.*positive",
        ),
        (
            lambda: ep.Param(jnp.array([0.5, 1.5]), prior=ep.Uniform(0.0, 1.0)),
            ValueError,
            r"outside the support.*Uniform.*strictly inside \(low, high\)",
        ),
        (
            lambda: ep.Param(jnp.array([1.0, NAN])),
            ValueError,
            r"not finite.*Pass a value inside the prior's support",
        ),
        (
            lambda: ep.Param(1.0, latent=0.0),
            ValueError,
            r"Pass at most one of `value` and `latent`",
        ),
        (
            lambda: ep.Fixed(),
            ValueError,
            r"`ep.Fixed` needs a `value`, or a `shape=` for an abstract Fixed",
        ),
        (
            lambda: ep.Fixed(jnp.ones(3), shape=(4,)),
            ValueError,
            r"`ep.Fixed` got a value of shape \(3,\) but `shape=\(4,\)`",
        ),
    ],
    ids=[
        "param-int-dtype",
        "param-int-value-and-dtype",
        "param-value-vs-shape",
        "param-value-vs-prior-shape",
        "param-shape-vs-prior-shape",
        "param-outside-lognormal",
        "param-outside-uniform",
        "param-nan-value",
        "param-value-and-latent",
        "fixed-no-value-no-shape",
        "fixed-value-vs-shape",
    ],
)
def test_bad_wrapper_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_negative_dimension_in_shape():
    with pytest.raises(ValueError, match=r"`ep\.Param`.*-1"):
        ep.Param(shape=(-1,))


def test_traced_shape_names_the_argument():
    # Shapes are static: a traced one must be refused naming `shape`.
    with pytest.raises(TypeError, match=r"`shape`|'shape'"):
        jax.jit(lambda n: ep.Param(shape=(n,)).latent)(3)
