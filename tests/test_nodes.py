"""The model walk: every function that reads a model refuses the `rest` half of a
split, a latent or Fixed storage that is no array and a wrapper field holding
a number, naming the path; the `params` half is a plain dict of arrays."""

import re
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import eqxpurify as ep

from .conftest import (
    fingerprint,
    raises_and_keeps,
)


class Decay(eqx.Module):
    alpha: ep.Param
    x_obs: ep.Fixed
    w: jax.Array  # a plain trainable array


def decay() -> Decay:
    return Decay(
        ep.Param(2.5, prior=ep.LogNormal(3.0, 0.1)),
        ep.Fixed(jnp.arange(3.0)),
        jnp.ones(2),
    )


CALLS: dict[str, Callable[[Any], Any]] = {
    "summary": lambda t: ep.summary(t),
    "values": lambda t: ep.values(t),
    "named_params": lambda t: ep.named_params(t),
    "normal": lambda t: ep.normal(t, key=jax.random.key(0)),
    "zeros": lambda t: ep.zeros(t),
    "shapes": lambda t: ep.shapes(t),
    "ravel": lambda t: ep.ravel(t),
    "flatten": lambda t: ep.flatten(t),
    "log_prior": lambda t: ep.log_prior(t),
    "log_prob": lambda t: ep.log_prob(t),
    "set_value": lambda t: ep.set_value(t, "alpha", 1.0),
    "freeze": lambda t: ep.freeze(t, "alpha"),
    "unfreeze": lambda t: ep.unfreeze(t, "alpha"),
    "unwrap": lambda t: ep.unwrap(t),
    "partition": lambda t: ep.partition(t),
    "load_values": lambda t: ep.load_values(t, {"alpha": 1.0}),
    "wrap": lambda t: ep.wrap(t),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_rest_half_is_refused(name):
    _, rest = ep.partition(decay())
    raises_and_keeps(
        lambda: CALLS[name](rest),
        rest,
        TypeError,
        match=(
            r"Got the `rest` half of `ep\.partition`, not a model\. Rebuild the model "
            r"with `ep\.combine\(params, rest\)`"
        ),
    )


def test_halves_swapped_in_combine():
    params, rest = ep.partition(decay())
    raises_and_keeps(
        lambda: ep.combine(rest, params),
        (params, rest),
        TypeError,
        match=(
            r"`ep\.combine\(params, rest\)`: `rest` must be the second result of "
            r"`ep\.partition\(model\)`|parameter 'params'"
        ),
    )


def test_params_half_is_a_plain_dict_of_arrays():
    # `params` is a plain dict of arrays: every function treats it as the pytree it
    # is (no Params, no Fixed; its floating arrays train, as Equinox means).
    model = decay()
    params, _ = ep.partition(model)
    before = fingerprint(params)
    table = ep.summary(params)
    assert re.search(r"^\['alpha'\]\s+array\s+yes\s+\(\)\s+float\d\d", table, re.M)
    assert re.search(r"^\['w'\]\s+array\s+yes\s+\(2,\)", table, re.M)
    assert table.endswith(
        "0 Params (0 elements), 0 Fixed (0 elements), 2 arrays (3 elements)"
    )
    assert ep.values(params) == {} and ep.named_params(params) == {}
    for name in ("normal", "zeros", "shapes", "unwrap"):
        assert bool(eqx.tree_equal(CALLS[name](params), params)), name
    flat, unravel = ep.ravel(params)
    assert flat.tolist() == [float(params["alpha"]), 1.0, 1.0]
    assert bool(eqx.tree_equal(unravel(flat), params))
    # No Params: no prior terms, and plain floating arrays only on request.
    assert float(ep.log_prior(params, allow_plain=True)) == 0.0
    assert list(ep.partition(params)[0]) == ["['alpha']", "['w']"]
    wrapped = ep.wrap(params)
    assert all(ep.is_param(v) for v in wrapped.values())
    assert fingerprint(params) == before


def test_params_half_in_surgery():
    params, _ = ep.partition(decay())
    raises_and_keeps(
        lambda: ep.set_value(params, "alpha", 1.0),
        params,
        ValueError,
        match=(
            r"`ep\.set_value`: the model has no `ep\.Param` or `ep\.Fixed` at "
            r"`alpha`\. "
            r"The model has no `ep\.Param` or `ep\.Fixed` at all"
        ),
    )
    raises_and_keeps(
        lambda: ep.set_value(params, "['alpha']", 1.0),
        params,
        ValueError,
        match=(
            r"`\['alpha'\]` is a plain leaf of the model, not an "
            r"`ep\.Param`.*eqx\.tree_at"
        ),
    )
    raises_and_keeps(
        lambda: ep.freeze(params, "['alpha']"),
        params,
        ValueError,
        match=(
            r"`ep\.freeze`: `where` selects no `ep\.Param` or `ep\.Fixed` \(it selects "
            r"`\['alpha'\]`\)"
        ),
    )
    raises_and_keeps(
        lambda: ep.load_values(params, {"['w']": jnp.zeros(2)}),
        params,
        ValueError,
        match=r"`ep\.load_values`: `\['w'\]` is a plain leaf",
    )


LATENT_FLOAT = (
    r"Param at `alpha` has a latent of type float, not an array.*"
    r"`ep\.set_value\(model, where, value\)`"
)


@pytest.mark.parametrize(
    "name",
    [
        "summary",
        "ravel",
        "flatten",
        "unwrap",
        "partition",
        "values",
        "normal",
        "zeros",
        "shapes",
        "log_prior",
        "log_prob",
        "set_value",
        "freeze",
        "load_values",
    ],
)
def test_latent_set_to_a_python_float(name):
    model = eqx.tree_at(lambda m: m.alpha.latent, decay(), 0.5)
    call = CALLS[name]
    if name == "load_values":
        call = lambda t: ep.load_values(t, {"alpha": 1.0}, strict=False)  # noqa: E731
    raises_and_keeps(lambda: call(model), model, TypeError, match=LATENT_FLOAT)


@pytest.mark.parametrize(
    "latent",
    [
        1,
        [1.0],
        None,
    ],
    ids=["int", "list", "None"],
)
def test_other_non_array_latents_in_partition(latent):
    model = eqx.tree_at(
        lambda m: m.alpha.latent, decay(), latent, is_leaf=lambda x: x is None
    )
    raises_and_keeps(
        lambda: ep.partition(model),
        model,
        TypeError,
        match=(
            r"Param at `alpha` has a latent of type (int|list|NoneType), not an "
            r"array"
        ),
    )


FIELD_FLOAT = (
    r"the field `alpha` is declared `Param` but holds a float, so it would silently "
    r"drop out of training\. Set a physical value with `ep\.set_value"
)


@pytest.mark.parametrize(
    "name",
    [
        "summary",
        "ravel",
        "unwrap",
        "partition",
        "values",
        "normal",
        "log_prior",
    ],
)
def test_param_field_set_to_a_python_float(name):
    model = eqx.tree_at(lambda m: m.alpha, decay(), 5.0)
    raises_and_keeps(lambda: CALLS[name](model), model, TypeError, match=FIELD_FLOAT)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: ep.summary(t),
        lambda t: ep.values(t, ep.is_fixed),
        lambda t: ep.unwrap(t),
        lambda t: ep.partition(t),
        lambda t: ep.set_value(t, "x_obs", jnp.zeros(3)),
    ],
    ids=["summary", "values", "unwrap", "partition", "set_value"],
)
def test_fixed_storage_set_to_a_python_float(call):
    model = eqx.tree_at(lambda m: m.x_obs.stored, decay(), 5.0)
    raises_and_keeps(
        lambda: call(model), model, TypeError, match=r"`x_obs`.*ep\.(set_value|Fixed)"
    )


# (`ep.summary` shows such a Fixed as left out, as it shows a gradient's.)
@pytest.mark.parametrize("name", ["partition", "values", "unwrap"])
def test_fixed_storage_set_to_none(name):
    model = eqx.tree_at(
        lambda m: m.x_obs.stored, decay(), None, is_leaf=lambda x: x is None
    )
    call = CALLS[name] if name != "values" else lambda t: ep.values(t, ep.is_fixed)
    raises_and_keeps(
        lambda: call(model),
        model,
        TypeError,
        match=r"Fixed at `x_obs` stores a NoneType, not an array.*ep\.Fixed\(array\)",
    )
