"""`where` arguments: paths and callables that name no node, name it twice, or are
of the wrong type are refused, naming the path and the closest ones."""

import re

import equinox as eqx
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
