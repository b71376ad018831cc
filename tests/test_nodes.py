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
from eqxpurify._nodes import Nodes, is_wrapper_type, map_params
from eqxpurify._param import with_latent
from eqxpurify._wrapper_base import with_prior

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


# --------------------------------------------------------------------------------
# `Nodes` itself: entries in path order, hierarchical priors, shared names, the
# rebuild, and the errors of the walk.


class Hier(eqx.Module):
    theta: ep.Param
    x: ep.Fixed
    w: jax.Array


def hier() -> Hier:
    """theta ~ Normal(mean, sigma), mean ~ Normal(inner, 1), sigma ~ LogNormal."""
    mean = ep.Param(0.5, prior=ep.Normal(ep.Param(2.0), 1.0))
    sigma = ep.Param(2.0, prior=ep.LogNormal(1.0, 0.5))
    return Hier(
        ep.Param(1.0, prior=ep.Normal(mean, sigma)),
        ep.Fixed(jnp.arange(2.0)),
        jnp.ones(3),
    )


HIER_PATHS = [
    "theta",
    "theta.prior.mean",
    "theta.prior.mean.prior.mean",
    "theta.prior.sigma",
    "x",
    "w",
]


def test_entries_of_a_hierarchical_model():
    model = hier()
    nodes = Nodes(model)
    assert nodes.paths == HIER_PATHS
    assert nodes.paths is nodes.paths  # computed once
    assert nodes.paths_so_far() == HIER_PATHS
    theta = model.theta
    expected = [
        theta,
        theta.prior.mean,
        theta.prior.mean.prior.mean,
        theta.prior.sigma,
        model.x,
        model.w,
    ]
    assert len(nodes.nodes) == 6
    assert all(a is b for a, b in zip(nodes.nodes, expected, strict=True))
    assert nodes.depth == [0, 1, 2, 1, 0, 0]
    assert nodes.params() == [0, 1, 2, 3]
    assert nodes.params() is nodes.params()
    assert nodes.wrapper_paths() == HIER_PATHS[:5]
    assert nodes.pending == [] and nodes.later == {}
    # Each entry's flattening: the top level, or the prior of its parent entry.
    assert [nodes.levels_of(k)[0].parent for k in range(6)] == [
        None,
        0,
        1,
        0,
        None,
        None,
    ]
    assert all(len(nodes.levels_of(k)) == 1 for k in range(6))


def test_priors_without_params_are_not_walked():
    # Constant hyperparameters (a Fixed without a prior) are no entries.
    model = {"a": ep.Param(1.0, prior=ep.Normal(0.0, 2.0)), "b": ep.Fixed(3.0)}
    nodes = Nodes(model)
    assert nodes.paths == ["['a']", "['b']"] and nodes.depth == [0, 0]
    assert nodes.levels_of(0)[0].children == {}
    # Two Params sharing one prior object (its Param named): both priors walked.
    prior = ep.Normal(ep.Param(0.0, name="mu"), 1.0)
    shared = {"a": ep.Param(1.0, prior=prior), "b": ep.Param(2.0, prior=prior)}
    nodes = Nodes(shared)
    assert nodes.paths == ["['a']", "['a'].prior.mean", "['b']"]
    assert [lv.parent for lv in nodes.levels_of(1)] == [0, 2]


def test_frozen_param_in_a_prior_is_an_entry():
    # A frozen Param (a Fixed that remembers its prior) stays an entry of the prior.
    model = ep.freeze(hier(), "theta.prior.sigma")
    nodes = Nodes(model)
    assert nodes.paths == HIER_PATHS
    kinds = [type(n).__name__ for n in nodes.nodes]
    assert kinds == ["Param", "Param", "Param", "Fixed", "Fixed", "ArrayImpl"]
    assert nodes.params() == [0, 1, 2]
    assert nodes.depth == [0, 1, 2, 1, 0, 0]


def test_top_level_plain_leaves_are_entries():
    model = {"n": 3, "s": "text", "p": ep.Param(1.0)}
    nodes = Nodes(model)
    assert nodes.nodes[0] == 3 and nodes.nodes[2] == "text"
    assert nodes.paths == ["['n']", "['p']", "['s']"]
    assert nodes.params() == [1] and nodes.wrapper_paths() == ["['p']"]


def test_pending_params():
    model = {
        "a": ep.Param(1.0),
        "b": ep.Param(shape=(2, ep.INPUT)),
        "c": ep.Param(shape=(2,)),
        "d": ep.Fixed(1.0),
    }
    assert Nodes(model).pending == [1]


def test_unflatten():
    model = hier()
    nodes = Nodes(model)
    assert bool(eqx.tree_equal(nodes.unflatten(nodes.nodes), model))
    # A nested entry replaced: rebuilt inside its parent's prior.
    new = list(nodes.nodes)
    new[2] = ep.Param(5.0)
    new[5] = jnp.zeros(3)
    out = nodes.unflatten(new)
    assert float(out.theta.prior.mean.prior.mean.value) == 5.0
    assert out.w.tolist() == [0.0, 0.0, 0.0]
    assert out.theta.prior.sigma is model.theta.prior.sigma
    assert float(model.theta.prior.mean.prior.mean.value) == 2.0  # unchanged
    # A Param whose prior was replaced keeps its new prior: entries under the old
    # prior are not put back into it.
    new = list(nodes.nodes)
    new[0] = ep.Param(3.0, prior=ep.Normal(1.0, 2.0))
    new[1] = ep.Param(7.0)
    out = nodes.unflatten(new)
    assert out.theta is new[0]
    assert float(out.theta.latent) == 1.0  # (3 - 1) / 2
    # A frozen entry with its prior kept gets its nested entries rebuilt.
    new = list(nodes.nodes)
    new[0] = with_prior(ep.Fixed(1.0), model.theta.prior)
    new[2] = ep.Param(6.0)
    out = nodes.unflatten(new)
    assert isinstance(out.theta, ep.Fixed)
    assert float(out.theta.prior.mean.prior.mean.value) == 6.0


def _shared_in_a_prior():
    mu = ep.Param(0.5, name="mu")
    return {"mu": mu, "theta": ep.Param(1.0, prior=ep.Normal(mu, 1.0))}


def test_shared_param_is_one_entry():
    model = _shared_in_a_prior()
    nodes = Nodes(model)
    assert nodes.paths == ["['mu']", "['theta']"]
    assert nodes.nodes[0] is model["mu"] and nodes.params() == [0, 1]
    assert list(nodes.later) == [0] and nodes.later[0][0] is model["mu"]
    levels = nodes.levels_of(0)
    assert [lv.parent for lv in levels] == [None, 1]
    # Replaced once, it is replaced at every use.
    new = [ep.Param(4.0, name="mu"), nodes.nodes[1]]
    out = nodes.unflatten(new)
    assert out["mu"] is new[0] and out["theta"].prior.mean is new[0]
    # Two fields holding one named Param.
    s = ep.Param(jnp.ones(2), name="s")
    twice = Nodes({"a": s, "b": s})
    assert twice.paths == ["['a']"] and twice.later == {0: [s]}
    assert len(twice.levels_of(0)) == 2
    out = twice.unflatten([ep.Param(jnp.zeros(2), name="s")])
    assert out["a"] is out["b"] and out["a"].value.tolist() == [0.0, 0.0]


def test_shared_names_that_differ():
    model = {"a": ep.Param(jnp.ones(2), name="s"), "b": ep.Param(jnp.ones(3), name="s")}
    raises_and_keeps(
        lambda: Nodes(model),
        model,
        ValueError,
        "The Param at `['b']` is named `s`, like the one at `['a']`, but they differ",
    )
    raises_and_keeps(
        lambda: Nodes(model, "ep.values"),
        model,
        ValueError,
        "`ep.values`: the Param at `['b']`",
    )
    # A later use inside a prior: its path through the prior.
    nested = {
        "a": ep.Param(1.0, name="s"),
        "t": ep.Param(1.0, prior=ep.Normal(ep.Param(jnp.ones(2), name="s"), 1.0)),
    }
    raises_and_keeps(
        lambda: Nodes(nested),
        nested,
        ValueError,
        "at `['t'].prior.mean` is named `s`, like the one at `['a']`",
    )


def test_shared_names_trained_apart():
    model = {"a": ep.Param(1.0, name="s"), "b": ep.Param(2.0, name="s")}
    raises_and_keeps(
        lambda: Nodes(model),
        model,
        ValueError,
        "uses of the shared Param `s` at `['a']` and `['b']` hold different latents",
    )
    # Equal copies are one parameter.
    same = {"a": ep.Param(1.0, name="s"), "b": ep.Param(1.0, name="s")}
    assert Nodes(same).paths == ["['a']"]


def test_one_unnamed_param_in_two_places():
    p = ep.Param(1.0)
    model = {"a": p, "b": p}
    raises_and_keeps(
        lambda: Nodes(model),
        model,
        ValueError,
        "The Param at `['b']` is the same object as the one at `['a']`",
        'name="..."',
    )
    raises_and_keeps(
        lambda: Nodes(model, "ep.ravel"),
        model,
        ValueError,
        "`ep.ravel`: the Param at `['b']`",
    )
    # The same array, or the same Fixed, in two places is fine.
    x = jnp.ones(2)
    assert len(Nodes({"a": x, "b": x}).nodes) == 2


def test_storage_errors_name_the_nested_path():
    model = eqx.tree_at(lambda m: m.theta.prior.mean.latent, hier(), 0.5)
    raises_and_keeps(
        lambda: Nodes(model),
        model,
        TypeError,
        "The Param at `theta.prior.mean` has a latent of type float, not an array",
    )
    inner = eqx.tree_at(lambda m: m.theta.prior.mean.prior.mean.latent, hier(), 0.5)
    raises_and_keeps(
        lambda: Nodes(inner, "ep.values"),
        inner,
        TypeError,
        "`ep.values`: the Param at `theta.prior.mean.prior.mean` has a latent of "
        "type float",
    )
    fixed = eqx.tree_at(lambda m: m.x.stored, hier(), 0.5)
    raises_and_keeps(
        lambda: Nodes(fixed, "ep.summary"),
        fixed,
        TypeError,
        "`ep.summary`: the Fixed at `x` stores a float, not an array",
    )


def test_number_in_a_wrapper_field():
    class Holder(eqx.Module):
        p: ep.Param

    model = Holder(3.0)  # pyright: ignore[reportArgumentType]
    raises_and_keeps(
        lambda: Nodes(model, "ep.values"),
        model,
        TypeError,
        "`ep.values`: the field `p` is declared `Param` but holds a float",
    )
    # A number in an undeclared place is an entry like any leaf.
    assert Nodes({"a": 3.0}).nodes == [3.0]


def test_marked():
    model = hier()
    nodes = Nodes(model)
    calls = []

    def marker(k, prior):
        calls.append(k)
        return ("m", k, prior)

    out = nodes.marked(marker)
    assert sorted(calls) == list(range(6))
    tag, k, prior = out.theta
    assert (tag, k) == ("m", 0)
    assert prior.mean[:2] == ("m", 1) and prior.sigma == ("m", 3, None)
    assert prior.mean[2].mean == ("m", 2, None)
    assert out.x == ("m", 4, None) and out.w == ("m", 5, None)
    # A shared Param: one marker, at each use.
    shared = Nodes(_shared_in_a_prior())
    calls.clear()
    out = shared.marked(marker)
    assert sorted(calls) == [0, 1]
    assert out["mu"] == ("m", 0, None) and out["theta"][2].mean == ("m", 0, None)


def test_map_params():
    model = hier()
    nodes = Nodes(model)
    calls = []

    def fn(j, p):
        calls.append((j, p))
        return with_latent(p, jnp.asarray(float(j), p.dtype))

    out = map_params(nodes, fn)
    # Nested Params first; each gets its prior already rebuilt.
    assert [j for j, _ in calls] == [2, 1, 3, 0]
    assert float(calls[1][1].prior.mean.latent) == 2.0
    theta = calls[3][1]
    assert (
        float(theta.prior.mean.latent) == 1.0 and float(theta.prior.sigma.latent) == 3.0
    )
    assert float(out.theta.latent) == 0.0
    assert float(out.theta.prior.mean.latent) == 1.0
    assert float(out.theta.prior.mean.prior.mean.latent) == 2.0
    assert float(out.theta.prior.sigma.latent) == 3.0
    assert out.x is model.x and out.w is model.w
    # The j counts Params only: a Fixed and an array before them are skipped.
    plain = {
        "a": jnp.ones(1),
        "b": ep.Fixed(1.0),
        "c": ep.Param(1.0),
        "d": ep.Param(2.0),
    }
    got = map_params(Nodes(plain), lambda j, p: j)
    assert got["c"] == 0 and got["d"] == 1 and got["b"] is plain["b"]


def test_map_params_of_a_shared_param():
    s = ep.Param(1.0, name="s")
    calls = []
    out = map_params(
        Nodes({"a": s, "b": s}), lambda j, p: calls.append(j) or ("new", j)
    )
    assert calls == [0]
    assert out == {"a": ("new", 0), "b": ("new", 0)}
    # A shared hyperparameter: its one replacement is in the prior too.
    model = _shared_in_a_prior()
    out = map_params(
        Nodes(model), lambda j, p: with_latent(p, jnp.asarray(float(j + 5)))
    )
    assert out["theta"].prior.mean is out["mu"]
    assert float(out["mu"].latent) == 5.0 and float(out["theta"].latent) == 6.0


def test_is_wrapper_type():
    assert is_wrapper_type(ep.Param) and is_wrapper_type(ep.Fixed)
    assert not is_wrapper_type(int) and not is_wrapper_type(type(jnp.ones(1)))
    assert not is_wrapper_type(eqx.Module)


def test_param_after_a_constant_in_a_prior_is_an_entry():
    # The prior's first hyperparameter is a constant, its second a Param: the walk
    # goes on past the constant.
    sigma = ep.Param(2.0, prior=ep.HalfNormal(1.0))
    model = {"a": ep.Param(1.0, prior=ep.Normal(0.0, sigma)), "b": ep.Param(3.0)}
    assert list(ep.named_params(model)) == ["['a']", "['a'].prior.sigma", "['b']"]
    assert ep.named_params(model)["['a'].prior.sigma"] is sigma
