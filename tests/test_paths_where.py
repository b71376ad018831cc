"""`where` arguments: paths and callables that name no node, name it twice, or are
of the wrong type are refused, naming the path and the closest ones."""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep

from .conftest import raises_and_keeps
from .models import net

EMPTY = (
    r"`ep\.{}`: `where` is an empty path\. Name a node .*or select the whole model "
    r"with `lambda m: m`"
)


@pytest.mark.parametrize(
    "where",
    [
        "",
        "   ",
        ".",
    ],
    ids=["empty", "blank", "dot"],
)
@pytest.mark.parametrize("fn", ["freeze", "unfreeze"])
def test_empty_path(fn, where):
    model = net() if fn == "freeze" else ep.freeze(net(), lambda m: m)
    raises_and_keeps(
        lambda: getattr(ep, fn)(model, where), model, ValueError, match=EMPTY.format(fn)
    )


def test_empty_path_elsewhere():
    model = net()
    raises_and_keeps(
        lambda: ep.set_value(model, "", 1.0),
        model,
        ValueError,
        match=EMPTY.format("set_value"),
    )
    raises_and_keeps(
        lambda: ep.load_values(model, {"": 1.0}, strict=False),
        model,
        ValueError,
        match=EMPTY.format("load_values"),
    )


WRONG_WHERE = [None, 3, 3.0, b"alpha", {"alpha"}, ["alpha", None]]


WRONG_IDS = ["None", "int", "float", "bytes", "set", "list-with-None"]


@pytest.mark.parametrize("where", WRONG_WHERE, ids=WRONG_IDS)
@pytest.mark.parametrize("fn", ["freeze", "unfreeze"])
def test_where_of_wrong_type(fn, where, unchecked_types):
    model = net()
    raises_and_keeps(
        lambda: getattr(ep, fn)(model, where),
        model,
        TypeError,
        match=(
            rf"`ep\.{fn}`: `where` must be a path string, a sequence of path strings, "
            rf"or a "
            r"callable like `lambda m: m\.encoder`"
        ),
    )


# Not `["alpha", None]`: beartype checks one random item of a list, so the hook
# catches it only some of the time (and then may raise an empty message).
@pytest.mark.parametrize("where", WRONG_WHERE[:-1], ids=WRONG_IDS[:-1])
def test_where_of_wrong_type_under_typecheck(where):
    model = net()
    raises_and_keeps(
        lambda: ep.freeze(model, where),
        model,
        TypeError,
        match=r"`where` must be a path string|parameter 'where'",
    )


@pytest.mark.parametrize(
    "where, closest",
    [
        ("alph", "`alpha`"),
        ("alpha.", "`alpha`"),
        ("enc.weight[0]", "`enc.weight`"),
        ("alpha.latent", "`alpha`"),
        ("alpha.prior", "`alpha`"),
        ("enc.", "`enc`, `enc.bias`, `enc.weight`"),
        ("table.a", "`table`"),
    ],
)
def test_unknown_path(where, closest):
    model = net()
    raises_and_keeps(
        lambda: ep.freeze(model, where),
        model,
        ValueError,
        match=(
            rf"`ep\.freeze`: the model has no node at `{re.escape(where)}`\. Closest "
            rf"existing paths: {re.escape(closest)}"
        ),
    )


def test_selections_that_hold_nothing():
    model = net()
    raises_and_keeps(
        lambda: ep.freeze(model, []),
        model,
        ValueError,
        match=r"`ep\.freeze`: `where` selects no `ep\.Param` or `ep\.Fixed`",
    )
    raises_and_keeps(
        lambda: ep.freeze(model, lambda m: m.alpha.value),
        model,
        ValueError,
        match=(
            r"`ep\.freeze`: the `where` callable failed on the model.*select a Param "
            r"itself, not its `\.value` or `\.latent`"
        ),
    )
    raises_and_keeps(
        lambda: ep.freeze(model, lambda m: None),
        model,
        ValueError,
        match=(
            r"`where` selected something that is not part of the model's pytree.*"
            r"`lambda m: m\.encoder`"
        ),
    )
    raises_and_keeps(
        lambda: ep.set_value(model, "enc", 1.0),
        model,
        ValueError,
        match=(
            r"`ep\.set_value`: `enc` names a submodule, not one `ep\.Param` or "
            r"`ep\.Fixed`\. Give the full path of a leaf, e\.g\. `enc\.weight`"
        ),
    )
    raises_and_keeps(
        lambda: ep.set_value(model, lambda m: (m.alpha,), 1.0),
        model,
        ValueError,
        match=(
            r"`ep\.set_value`: `where` must select exactly one.*Set several values "
            r"with "
            r"`ep\.load_values`"
        ),
    )


def test_quoting_variants_name_the_same_node():
    model = net()
    single = ep.freeze(model, "table['a']")
    assert bool(eqx.tree_equal(ep.freeze(model, 'table["a"]'), single))
    assert ep.is_fixed(single.table["a"]) and ep.is_param(single.table["b b"])
    assert ep.is_fixed(ep.freeze(model, 'table["b b"]').table["b b"])


# --------------------------------------------------------------------------------
# Selecting by path: every kind of key, sequences of paths, the whole model


class _Keys(eqx.Module):
    """Attributes, dict keys of several types, sequence indices, nested."""

    a: ep.Param
    aX: ep.Param  # `a` followed by a character that is no path separator
    seq: list
    by_int: dict
    by_str: dict


def _keys_model():
    return _Keys(
        a=ep.Param(1.0),
        aX=ep.Param(2.0),
        seq=[ep.Param(3.0), [ep.Param(4.0), ep.Fixed(jnp.arange(2.0))]],
        by_int={0: ep.Param(5.0), 7: {"in": ep.Param(6.0)}},
        by_str={"k": ep.Param(7.0), "k k": ep.Param(8.0)},
    )


KEY_PATHS = [
    "a",
    "aX",
    "seq[0]",
    "seq[1][0]",
    "seq[1][1]",
    "by_int[0]",
    "by_int[7]['in']",
    "by_str['k']",
    "by_str['k k']",
]


def _frozen_paths(model):
    """The paths of the Fixed nodes of `model` (checked with `ep.is_fixed`)."""
    named = jax.tree_util.tree_flatten_with_path(model, is_leaf=ep.is_wrapper)[0]
    return [jax.tree_util.keystr(k)[1:] for k, v in named if ep.is_fixed(v)]


def test_paths_of_every_kind_of_key():
    assert list(ep.named_params(_keys_model())) == [
        p for p in KEY_PATHS if p != "seq[1][1]"
    ]
    assert _frozen_paths(_keys_model()) == ["seq[1][1]"]


@pytest.mark.parametrize(
    "where, frozen",
    [
        ("a", ["a"]),  # not `aX`, which only starts with `a`
        ("aX", ["aX"]),
        (" a ", ["a"]),  # blanks around
        (".a", ["a"]),  # a leading dot
        ("seq", ["seq[0]", "seq[1][0]", "seq[1][1]"]),
        ("seq[1]", ["seq[1][0]", "seq[1][1]"]),
        ("seq[1][0]", ["seq[1][0]", "seq[1][1]"]),
        ("by_int[0]", ["by_int[0]", "seq[1][1]"]),
        ("by_int[7]", ["by_int[7]['in']", "seq[1][1]"]),
        ('by_int[7]["in"]', ["by_int[7]['in']", "seq[1][1]"]),
        ('by_str["k k"]', ["by_str['k k']", "seq[1][1]"]),
        ("by_str['k']", ["by_str['k']", "seq[1][1]"]),
        (["a", "by_str"], ["a", "by_str['k']", "by_str['k k']", "seq[1][1]"]),
        (("by_str['k']", "a", "a"), ["a", "by_str['k']", "seq[1][1]"]),
        ("<model>", KEY_PATHS),
    ],
)
def test_select_by_path(where, frozen):
    model = _keys_model()
    out = ep.freeze(model, where)
    # Frozen in path order, whatever the order of `where`.
    assert sorted(_frozen_paths(out)) == sorted(set(frozen) | {"seq[1][1]"})
    assert _frozen_paths(_keys_model()) == ["seq[1][1]"]  # (a fresh model)


@pytest.mark.parametrize(
    "where, frozen",
    [
        (lambda m: m.a, ["a"]),
        (lambda m: (m.by_str, m.a), ["a", "by_str['k']", "by_str['k k']"]),
        (lambda m: [m.seq[1], m.seq[1][0]], ["seq[1][0]"]),
        (lambda m: m, KEY_PATHS),
    ],
    ids=["one", "tuple", "overlapping", "whole"],
)
def test_select_by_callable(where, frozen):
    out = ep.freeze(_keys_model(), where)
    assert sorted(_frozen_paths(out)) == sorted(set(frozen) | {"seq[1][1]"})


def test_a_bare_param_is_selected_by_the_root_path():
    out = ep.freeze(ep.Param(1.5), "<model>")
    assert ep.is_fixed(out)
    assert float(out.value) == 1.5


def _no_node(caller, path, rest):
    return (
        "^" + re.escape(f"`{caller}`: the model has no node at `{path}`. {rest}") + "$"
    )


@pytest.mark.parametrize(
    "path, rest",
    [
        # Prefixes of paths are candidates too (`enc`), not only full paths.
        (
            "zzzzzzzz",
            "Existing paths: `alpha`, `enc`, `enc.bias`, `enc.weight`, `table`, ....",
        ),
        # A ratio of 0.57: the cutoff is 0.5, not difflib's default 0.6.
        ("ab", "Closest existing paths: `table`."),
        ("enc.", "Closest existing paths: `enc`, `enc.bias`, `enc.weight`."),
    ],
)
def test_unknown_path_message_whole(path, rest):
    model = net()
    raises_and_keeps(
        lambda: ep.freeze(model, path),
        model,
        ValueError,
        match=_no_node("ep.freeze", path, rest),
    )


def test_unknown_path_lists_at_most_three_closest():
    # Four paths at the same distance: the best three (ties: the later name).
    model = {f"w{i}": ep.Param(float(i)) for i in range(1, 5)}
    raises_and_keeps(
        lambda: ep.freeze(model, "['w']"),
        model,
        ValueError,
        match=_no_node(
            "ep.freeze",
            "['w']",
            "Closest existing paths: `['w4']`, `['w3']`, `['w2']`.",
        ),
    )


@pytest.mark.parametrize("n", [4, 5, 6, 7])
def test_unknown_path_lists_five_existing_paths(n):
    model = {k: ep.Param(1.0) for k in "abcdefg"[:n]}
    shown = ", ".join(f"`['{k}']`" for k in "abcde"[:n])
    more = ", ..." if n > 5 else ""
    raises_and_keeps(
        lambda: ep.freeze(model, "zzzzzzzz"),
        model,
        ValueError,
        match=_no_node("ep.freeze", "zzzzzzzz", f"Existing paths: {shown}{more}."),
    )


def test_unknown_path_lists_one_letter_prefixes():
    class E(eqx.Module):
        e: dict

    model = E({"w": ep.Param(1.0), "b": ep.Param(2.0)})
    # `e.` is no node, but its closest match `e` (a prefix at index 1) is.
    raises_and_keeps(
        lambda: ep.freeze(model, "e."),
        model,
        ValueError,
        match=_no_node("ep.freeze", "e.", "Closest existing paths: `e`."),
    )


def test_unknown_path_of_a_bare_param_does_not_deny_the_param():
    model = ep.Param(1.0)
    raises_and_keeps(
        lambda: ep.freeze(model, "x"),
        model,
        ValueError,
        match=r"no node at `x`\. Existing paths: `<model>`\.$",
    )


def test_empty_path_message_whole():
    from eqxpurify._paths import normalise_path

    message = (
        '`{}`: `where` is an empty path. Name a node (`"encoder.weight"`), or '
        "select the whole model with `lambda m: m`."
    )
    model = net()
    raises_and_keeps(
        lambda: ep.freeze(model, " . "),
        model,
        ValueError,
        match="^" + re.escape(message.format("ep.freeze")) + "$",
    )
    with pytest.raises(ValueError, match="^" + re.escape(message.format("ep")) + "$"):
        normalise_path("")
    assert normalise_path(' .table["b b"] ') == "table['b b']"
    assert normalise_path("table['a']") == "table['a']"


def test_where_of_wrong_type_message_whole(unchecked_types):
    model = net()
    fix = (
        "`ep.freeze`: `where` must be a path string, a sequence of path strings, or "
        "a callable like `lambda m: m.encoder`"
    )
    raises_and_keeps(
        lambda: ep.freeze(model, 3),
        model,
        TypeError,
        match="^" + re.escape(fix + "; got int.") + "$",
    )
    raises_and_keeps(
        lambda: ep.freeze(model, None),
        model,
        TypeError,
        match="^" + re.escape(fix + "; got NoneType.") + "$",
    )
    raises_and_keeps(
        lambda: ep.freeze(model, ["alpha", None]),
        model,
        TypeError,
        match="^" + re.escape(fix + ".") + "$",
    )
    raises_and_keeps(
        lambda: ep.set_value(model, 3, 1.0),
        model,
        TypeError,
        match="^"
        + re.escape(
            "`ep.set_value`: `where` must be a path string or a callable like "
            "`lambda m: m.alpha`."
        )
        + "$",
    )
    raises_and_keeps(
        lambda: ep.set_value(model, ["alpha"], 1.0),
        model,
        TypeError,
        match=r"^`ep\.set_value`: `where` must be a path string or a callable",
    )


# --------------------------------------------------------------------------------
# Callables that select nothing of the model, or the wrong thing


NOT_IN_PYTREE = (
    "`ep.freeze`: `where` selected something that is not part of the model's "
    "pytree (a static field, `None`, or an object from outside the model?). Select "
    "Params, Fixed arrays or submodules, e.g. `lambda m: m.encoder`."
)


@pytest.mark.parametrize(
    "where",
    [lambda m: None, lambda m: (), lambda m: (m.alpha, 3), lambda m: [3, m.alpha]],
    ids=["None", "empty", "with-an-int", "int-first"],
)
def test_callable_selecting_outside_the_model_message_whole(where):
    model = net()
    raises_and_keeps(
        lambda: ep.freeze(model, where),
        model,
        ValueError,
        match="^" + re.escape(NOT_IN_PYTREE) + "$",
    )


def _failed(caller, error, hint=""):
    return (
        f"`{caller}`: the `where` callable failed on the model ({error}). It must "
        "select nodes of the model like `eqx.tree_at`'s `where` does, e.g. "
        "`lambda m: m.encoder` or `lambda m: (m.a, m.b)`; select a Param itself, "
        f"not its `.value` or `.latent`.{hint}"
    )


def _error_of(f):
    try:
        f()
    except Exception as e:  # noqa: BLE001 (the message Python gives)
        return f"{type(e).__name__}: {e}"
    raise AssertionError("no error")


class _Theta(eqx.Module):
    theta: ep.Param


def test_failing_callable_message_whole():
    model = net()
    # An AttributeError on a node: no word on priors.
    marker = type("_Marker", (), {"__slots__": ("index", "prior")})()
    error = _error_of(lambda: marker.value)
    info = raises_and_keeps(
        lambda: ep.freeze(model, lambda m: m.alpha.value),
        model,
        ValueError,
        match="^" + re.escape(_failed("ep.freeze", error)) + "$",
    )
    assert isinstance(info.value.__cause__, AttributeError)
    # Another error: no word on priors either.
    error = _error_of(lambda: {}["nope"])
    raises_and_keeps(
        lambda: ep.freeze(model, lambda m: m.table["nope"]),
        model,
        ValueError,
        match="^" + re.escape(_failed("ep.freeze", error)) + "$",
    )
    # A constant hyperparameter reached through `.prior` (None: no Params in it).
    theta = _Theta(ep.Param(1.0, prior=ep.Normal(0.0, 5.0)))
    hint = (
        " A Param's `.prior` reaches only hyperparameters that are Params; a "
        "constant hyperparameter is part of its prior: replace the prior with "
        "`eqx.tree_at(lambda m: m.theta.prior, model, new_prior)`."
    )
    error = _error_of(lambda: None.sigma)
    for caller, call in (
        ("ep.set_value", lambda: ep.set_value(theta, lambda m: m.theta.prior.sigma, 1)),
        ("ep.freeze", lambda: ep.freeze(theta, lambda m: m.theta.prior.sigma)),
    ):
        raises_and_keeps(
            call,
            theta,
            ValueError,
            match="^" + re.escape(_failed(caller, error, hint)) + "$",
        )


def _hierarchical():
    mu = ep.Param(0.5, prior=ep.Normal(0.0, 5.0))
    return _Theta(ep.Param(1.0, prior=ep.Normal(mu, ep.Fixed(2.0))))


def test_select_one_reaches_a_param_in_a_prior():
    model = _hierarchical()
    out = ep.set_value(model, lambda m: m.theta.prior.mean, 1.5)
    assert float(out.theta.prior.mean.value) == 1.5
    assert float(out.theta.value) == pytest.approx(1.0)
    out = ep.set_value(model, "theta.prior.mean", 2.5)
    assert float(out.theta.prior.mean.value) == 2.5
    frozen = ep.freeze(model, lambda m: m.theta.prior.mean)
    assert ep.is_fixed(frozen.theta.prior.mean) and ep.is_param(frozen.theta)


def test_select_one_refuses_a_constant_hyperparameter_message_whole():
    model = _hierarchical()
    message = (
        "`ep.set_value`: `where` selected a constant hyperparameter of a prior (an "
        "`ep.Fixed` that is part of the prior, not of the model). Replace the prior "
        "instead, e.g. `eqx.tree_at(lambda m: m.theta.prior, model, new_prior)`, or "
        "make the hyperparameter an `ep.Param` to set it."
    )
    raises_and_keeps(
        lambda: ep.set_value(model, lambda m: m.theta.prior.sigma, 1.0),
        model,
        ValueError,
        match="^" + re.escape(message) + "$",
    )


@pytest.mark.parametrize(
    "where, what",
    [
        (lambda m: (m.alpha,), "tuple"),
        (lambda m: m.table, "dict"),
        (lambda m: m.enc, "Enc"),
    ],
)
def test_select_one_refuses_several_message_whole(where, what):
    model = net()
    message = (
        "`ep.set_value`: `where` must select exactly one `ep.Param` or `ep.Fixed` "
        f"(e.g. `lambda m: m.alpha`); it selected a {what}. Set several values with "
        "`ep.load_values`."
    )
    raises_and_keeps(
        lambda: ep.set_value(model, where, 1.0),
        model,
        ValueError,
        match="^" + re.escape(message) + "$",
    )


class _Plain(eqx.Module):
    alpha: ep.Param
    steps: jax.Array


PLAIN_LEAF = (
    "`{}`: `steps` is a plain leaf of the model, not an `ep.Param` or `ep.Fixed`. "
    "Convert the model first (`ep.wrap(model)`), or replace the leaf with "
    "`eqx.tree_at`."
)


def test_select_one_refuses_a_plain_leaf_message_whole():
    model = _Plain(ep.Param(1.0), jnp.arange(3))
    for where in ("steps", lambda m: m.steps):
        raises_and_keeps(
            lambda: ep.set_value(model, where, 1.0),
            model,
            ValueError,
            match="^" + re.escape(PLAIN_LEAF.format("ep.set_value")) + "$",
        )
    raises_and_keeps(
        lambda: ep.load_values(model, {"steps": 1.0}, strict=False),
        model,
        ValueError,
        match="^" + re.escape(PLAIN_LEAF.format("ep.load_values")) + "$",
    )


@pytest.mark.parametrize(
    "where",
    ["enc.bias", lambda m: m.enc.bias, " .enc.bias"],
    ids=["path", "callable", "dotted"],
)
def test_select_one_sets_the_node_it_names(where):
    model = net()
    out = ep.set_value(model, where, jnp.array([3.0, 4.0]))
    np.testing.assert_array_equal(out.enc.bias.value, [3.0, 4.0])
    # Every other node as it was.
    np.testing.assert_array_equal(out.enc.weight.value, model.enc.weight.value)
    assert float(out.alpha.value) == pytest.approx(2.5)
    assert float(out.table["a"].value) == 1.0 and float(out.table["b b"].value) == 2.0


def test_select_one_sets_a_fixed_by_path():
    model = net()
    out = ep.set_value(model, "x", jnp.array([5.0, 6.0, 7.0]))
    np.testing.assert_array_equal(out.x.value, [5.0, 6.0, 7.0])
    assert float(out.alpha.value) == pytest.approx(2.5)


# --------------------------------------------------------------------------------
# A path naming no Param or Fixed: a submodule, a constant hyperparameter, nothing


def test_submodule_message_whole():
    model = net()
    message = (
        "`ep.set_value`: `table` names a submodule, not one `ep.Param` or "
        "`ep.Fixed`. Give the full path of a leaf, e.g. `table['a']`."
    )
    raises_and_keeps(
        lambda: ep.set_value(model, "table", 1.0),
        model,
        ValueError,
        match="^" + re.escape(message) + "$",
    )


def test_no_wrapper_at_path_message_whole():
    model = net()
    message = (
        "`ep.load_values`: the model has no `ep.Param` or `ep.Fixed` at "
        "`enc.wieght`. Closest existing paths: `enc.weight`, `enc.bias`."
    )
    raises_and_keeps(
        lambda: ep.load_values(model, {"enc.wieght": 1.0}, strict=False),
        model,
        ValueError,
        match="^" + re.escape(message) + "$",
    )
    plain = {"a": jnp.ones(2)}
    message = (
        "`ep.load_values`: the model has no `ep.Param` or `ep.Fixed` at `['b']`. "
        "The model has no `ep.Param` or `ep.Fixed` at all."
    )
    raises_and_keeps(
        lambda: ep.load_values(plain, {"['b']": 1.0}, strict=False),
        plain,
        ValueError,
        match="^" + re.escape(message) + "$",
    )


def _constant(caller, path, prior, kind, entry, dotted):
    return (
        f"`{caller}`: `{path}` is a constant hyperparameter of the prior `{prior}` "
        f"of the {kind} at `{entry}`: it is part of the prior (validated with it), "
        "not an `ep.Param` or `ep.Fixed` of the model. Replace the prior instead, "
        f"e.g. `eqx.tree_at(lambda m: m{dotted}.prior, model, new_prior)` (the "
        "Param keeps its latent; `ep.set_value` it afterwards to keep its value), "
        "or make the hyperparameter an `ep.Param` to set it by path."
    )


@pytest.mark.parametrize(
    "model, path, expected",
    [
        (
            _Theta(ep.Param(1.0, prior=ep.Normal(0.0, 5.0))),
            "theta.prior.sigma",
            ("Normal(0, 5)", "Param", "theta", ".theta"),
        ),
        (
            # Through an attribute of the hyperparameter (its stored array).
            _Theta(ep.Param(1.0, prior=ep.Normal(0.0, 5.0))),
            "theta.prior.sigma.stored",
            ("Normal(0, 5)", "Param", "theta", ".theta"),
        ),
        (
            {"theta": ep.Param(1.0, prior=ep.Normal(0.0, 5.0))},
            "['theta'].prior.mean",
            ("Normal(0, 5)", "Param", "['theta']", "['theta']"),
        ),
        (
            ep.freeze(_Theta(ep.Param(1.0, prior=ep.Normal(0.0, 5.0))), "theta"),
            "theta.prior.sigma",
            ("Normal(0, 5)", "Fixed", "theta", ".theta"),
        ),
        (
            # The nearest prior: that of the Param in the prior.
            _hierarchical(),
            "theta.prior.mean.prior.sigma",
            ("Normal(0, 5)", "Param", "theta.prior.mean", ".theta.prior.mean"),
        ),
        (
            _hierarchical(),
            "theta.prior.sigma",
            ("Normal(Param(0.5, prior=Normal(0, 5)), 2)", "Param", "theta", ".theta"),
        ),
    ],
    ids=["attribute", "its-array", "dict-key", "frozen", "nearest", "outer"],
)
def test_constant_hyperparameter_message_whole(model, path, expected):
    message = _constant("ep.set_value", path, *expected)
    raises_and_keeps(
        lambda: ep.set_value(model, path, 1.0),
        model,
        ValueError,
        match="^" + re.escape(message) + "$",
    )
    load = _constant("ep.load_values", path, *expected)
    raises_and_keeps(
        lambda: ep.load_values(model, {path: 1.0}, strict=False),
        model,
        ValueError,
        match="^" + re.escape(load) + "$",
    )


class _Two(eqx.Module):
    ab: ep.Param
    cd: ep.Param


def test_constant_hyperparameter_of_the_right_param():
    # Two entries with paths of one length: the one the path is under.
    model = _Two(
        ep.Param(1.0, prior=ep.Normal(0.0, 5.0)),
        ep.Param(1.0, prior=ep.Normal(0.0, 3.0)),
    )
    message = _constant(
        "ep.set_value", "cd.prior.sigma", "Normal(0, 3)", "Param", "cd", ".cd"
    )
    raises_and_keeps(
        lambda: ep.set_value(model, "cd.prior.sigma", 1.0),
        model,
        ValueError,
        match="^" + re.escape(message) + "$",
    )


@pytest.mark.parametrize(
    "path",
    [
        "theta.prior.sgima",  # no such hyperparameter
        "theta.prior.log_prob",  # a method, not an array
        "theta.prior.sigma.T",  # no such attribute of the hyperparameter
        "theta.prior.0",  # not an attribute name
        "theta.priors.sigma",
    ],
)
def test_not_a_hyperparameter_is_an_unknown_path(path):
    model = _Theta(ep.Param(1.0, prior=ep.Normal(0.0, 5.0)))
    message = f"`ep.set_value`: the model has no `ep.Param` or `ep.Fixed` at `{path}`. "
    raises_and_keeps(
        lambda: ep.set_value(model, path, 1.0),
        model,
        ValueError,
        match="^"
        + re.escape(message)
        + r"(Closest existing|Existing) paths: `theta`\.$",
    )
