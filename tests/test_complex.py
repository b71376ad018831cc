"""Complex numbers: refused for a Param (a Param is real), kept as data in a Fixed."""

import re

import equinox as eqx
import jax.numpy as jnp
import pytest

import eqxpurify as ep

from .conftest import (
    raises_and_keeps,
)


@pytest.mark.parametrize(
    "build",
    [
        lambda: ep.Param(jnp.array([1 + 2j])),
        lambda: ep.Param(1 + 2j),
        lambda: ep.Param(jnp.array([1 + 2j]), dtype=jnp.float32),
        lambda: ep.Param.from_latent(jnp.array([1 + 2j])),
    ],
    ids=["array", "python", "dtype=float32", "from_latent"],
)
def test_complex_value_refused_for_a_param(build):
    raises_and_keeps(
        build,
        None,
        TypeError,
        match=(
            r"`ep\.Param` got a complex (value|latent); a Param is real\. Use two "
            r"Params "
            r"\(real and imaginary parts\), or `ep\.Fixed` for data"
        ),
    )


def test_complex_dtype_refused_for_a_param():
    for build in (
        lambda: ep.Param(1.0, dtype=jnp.complex64),
        lambda: ep.Param(shape=(2,), dtype=jnp.complex64),
    ):
        raises_and_keeps(
            build,
            None,
            TypeError,
            match=r"`ep\.Param` needs a floating dtype, got complex64",
        )
    raises_and_keeps(
        lambda: ep.wrap({"c": jnp.array([1 + 1j])}),
        None,
        TypeError,
        match=(
            r"`ep\.wrap`: the array at `\['c'\]` has dtype complex(64|128); a Param "
            r"must be real floating\. Select it in `fixed=` to keep it as data"
        ),
    )
    raises_and_keeps(
        lambda: ep.Normal(jnp.array([1 + 1j])),
        None,
        TypeError,
        match=r"`Normal\(mean=\.\.\.\)` must be real, got complex(64|128)",
    )


class Signal(eqx.Module):
    p: ep.Param
    c: ep.Fixed


def signal() -> Signal:
    return Signal(
        ep.Param(jnp.zeros(2)), ep.Fixed(jnp.array([1 + 2j, 3 - 4j], jnp.complex64))
    )


def test_complex_kept_for_a_fixed():
    model = signal()
    assert model.c.value.tolist() == [1 + 2j, 3 - 4j]
    assert ep.set_value(
        model, "c", jnp.array([5 + 6j], jnp.complex64), reshape=True
    ).c.value.tolist() == [5 + 6j]
    assert complex(ep.set_value(model, "c", 5 + 6j, reshape=True).c.value) == 5 + 6j
    back = ep.load_values(model, ep.values(model, ep.is_wrapper))
    assert bool(eqx.tree_equal(back, model))
    params, rest = ep.partition(model)
    assert list(params) == ["p"]
    assert bool(eqx.tree_equal(ep.combine(params, rest), model))
    assert re.search(r"^c\s+Fixed\s+no\s+\(2,\)\s+complex64", ep.summary(model), re.M)
    assert ep.wrap({"c": jnp.array([1 + 1j])}, fixed="['c']")["c"].value.tolist() == [
        1 + 1j
    ]
    raises_and_keeps(
        lambda: ep.unfreeze(model, "c", prior=ep.Normal()),
        model,
        TypeError,
        "`ep.unfreeze`: the Fixed at `c` has dtype complex64",
        "only floating arrays can become Params",
        "Leave it out of `where`",
    )


def test_complex_value_into_a_param():
    model = signal()
    raises_and_keeps(
        lambda: ep.set_value(model, "p", 1 + 1j),
        model,
        TypeError,
        match=(
            r"`ep\.set_value`: the Param at `p` has dtype float(32|64), but the value "
            r"\(complex128\) does not fit it without loss"
        ),
    )


def test_complex_array_into_a_param_is_not_told_to_cast():
    model = signal()
    for call in (
        lambda: ep.set_value(model, "p", jnp.array([1 + 1j, 2], jnp.complex64)),
        lambda: ep.load_values(model, {"p": jnp.array([1 + 1j, 2], jnp.complex64)}),
    ):
        info = raises_and_keeps(
            call, model, TypeError, match=r"Param at `p`.*complex64.*a Param is real"
        )
        assert "astype" not in str(info.value)
