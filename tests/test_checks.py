"""The checks that refuse what is not a well-formed model.

A class or the `rest` half of `ep.partition` where a model is due; a field
declared `ep.Param`/`ep.Fixed` holding a plain array or a number; a Param whose
latent is no array. Each error names the function called, the path and the fix,
and leaves the model as it was.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import eqxpurify as ep

from .conftest import raises_and_keeps
from .models import Model, fitted, two_params


class _Declared(eqx.Module):
    w: ep.Param
    t: ep.Fixed
    either: ep.Param | ep.Fixed
    plain: jax.Array


class _Outer(eqx.Module):
    layers: list
    table: dict


def _declared(**changes):
    fields = dict(
        w=ep.Param(jnp.ones(2)),
        t=ep.Fixed(jnp.arange(3.0)),
        either=ep.Fixed(jnp.zeros(2)),
        plain=jnp.ones(2),
    )
    fields.update(changes)
    return _Declared(**fields)


def _plain_array_phrases(caller, path, kinds):
    """The caller, the path, the cause and the fixes."""
    return (
        f"`{caller}`: the field `{path}` is declared `{kinds}` but holds a plain "
        "floating array",
        "which would train as an ordinary Equinox array.",
        "Wrap it: `eqx.tree_at(where, model, ep.Fixed(array))` for data",
        "`ep.Param(value, prior=...)` for a parameter",
        "or set a value with `ep.set_value`.",
    )


@pytest.mark.parametrize(
    "field, kinds", [("t", "Fixed"), ("w", "Param"), ("either", "Param | Fixed")]
)
def test_plain_array_in_a_declared_field_message(field, kinds):
    model = _declared(**{field: jnp.arange(5.0)})
    raises_and_keeps(
        lambda: ep.partition(model),
        model,
        TypeError,
        *_plain_array_phrases("ep.partition", field, kinds),
    )
    raises_and_keeps(
        lambda: ep.ravel(model),
        model,
        TypeError,
        *_plain_array_phrases("ep.ravel", field, kinds),
    )


def test_plain_array_in_a_nested_declared_field_names_its_path():
    inner = _declared(t=jnp.arange(5.0))
    for model, path in [
        (_Outer([_declared(), inner], {}), "layers[1].t"),
        (_Outer([], {"b": _declared(), "c": inner}), "table['c'].t"),
        ({"m": [inner]}, "['m'][0].t"),
    ]:
        phrases = _plain_array_phrases("ep.partition", path, "Fixed")
        raises_and_keeps(lambda: ep.partition(model), model, TypeError, *phrases)


def test_plain_arrays_where_no_wrapper_is_declared_train():
    for model, names in [
        (_declared(), ["plain", "w"]),
        (jnp.ones(3), ["<model>"]),
        ({"a": jnp.ones(2), "b": [jnp.ones(1)]}, ["['a']", "['b'][0]"]),
        (_Outer([jnp.ones(2)], {"k": jnp.ones(1)}), ["layers[0]", "table['k']"]),
    ]:
        params, rest = ep.partition(model)
        assert sorted(params) == names
        assert eqx.tree_equal(ep.combine(params, rest), model)


# A number put in a field declared a wrapper: the cause and the two fixes.
_NUMBER_IN_FIELD_PHRASES = (
    "so it would silently drop out of training.",
    "Set a physical value with `ep.set_value(model, where, value)`",
    "or replace the node with a wrapper: "
    "`eqx.tree_at(where, model, ep.Param(value, prior=...))`",
    "(or `ep.Fixed(value)` for data).",
)

# The same in a field declared `ep.Fixed` only: data, so no word of training.
_NUMBER_IN_FIXED_FIELD = (
    "but holds a float, so it is no data of a fixed dtype: `eqx.filter_jit` takes "
    "it for a static constant (one compilation per value) and eqxpurify does not "
    "see it. Set a value with `ep.set_value(model, where, value)`, or replace the "
    "node: `eqx.tree_at(where, model, ep.Fixed(value))`."
)

_INIT_CALLS = {
    "ep.shapes": ep.shapes,
    "ep.zeros": ep.zeros,
    "ep.normal": lambda m: ep.normal(m, key=jax.random.key(0)),
    "ep.log_prior": ep.log_prior,
    "ep.log_prob": ep.log_prob,
}


@pytest.mark.parametrize("caller", list(_INIT_CALLS))
def test_init_errors_name_their_caller(caller):
    call = _INIT_CALLS[caller]
    number = eqx.tree_at(lambda m: m.t, _declared(), 5.0)
    info = raises_and_keeps(
        lambda: call(number),
        number,
        TypeError,
        f"`{caller}`: the field `t` is declared `Fixed` {_NUMBER_IN_FIXED_FIELD}",
    )
    assert "training" not in str(info.value)
    number = eqx.tree_at(lambda m: m.either, _declared(), 5.0)
    raises_and_keeps(
        lambda: call(number),
        number,
        TypeError,
        *_NUMBER_IN_FIELD_PHRASES,
        f"`{caller}`: the field `either` is declared `Param | Fixed` but holds a float",
    )
    latent = eqx.tree_at(lambda m: m.w.latent, _declared(), 3.0)
    raises_and_keeps(
        lambda: call(latent),
        latent,
        TypeError,
        f"`{caller}`: the Param at `w` has a latent of type float, not an array",
        "so it would silently drop out of training.",
        "Set Params with `ep.set_value(model, where, value)` (physical value)",
        "or replace the whole node: "
        "`eqx.tree_at(where, model, ep.Param(value, prior=...))`.",
    )


@pytest.mark.parametrize("caller", ["ep.log_prior", "ep.log_prob"])
def test_log_density_of_an_abstract_model_names_the_caller(caller):
    model = {"a": ep.Param(1.0), "b": [ep.Param(shape=(2,))]}
    raises_and_keeps(
        lambda: _INIT_CALLS[caller](model),
        model,
        ValueError,
        f"`{caller}`: the Param at `['b'][0]` is abstract (shape (2,), no value yet).",
        "Initialise it first: `model = ep.normal(model, key=key)`",
        "or `model = ep.zeros(model)`.",
    )


_REST_PHRASES = (
    "Got the `rest` half of `ep.partition`, not a model.",
    "Rebuild the model with `ep.combine(params, rest)` first",
    "(e.g. inside the loss: `ep.unwrap(ep.combine(params, rest))`).",
)


@pytest.mark.parametrize("call", [ep.partition, ep.ravel, ep.flatten])
def test_split_refuses_a_rest_or_a_class(call):
    _, rest = ep.partition(two_params())
    raises_and_keeps(lambda: call(rest), rest, TypeError, *_REST_PHRASES)
    raises_and_keeps(
        lambda: call(_Declared),
        _Declared,
        TypeError,
        "`model` must be a model instance",
        "but got the class `_Declared` itself.",
        "Construct it first, e.g. `_Declared(...)`.",
    )


def test_partition_names_itself_for_a_number_in_a_declared_field():
    number = eqx.tree_at(lambda m: m.t, _declared(), 5.0)
    raises_and_keeps(
        lambda: ep.partition(number),
        number,
        TypeError,
        f"`ep.partition`: the field `t` is declared `Fixed` {_NUMBER_IN_FIXED_FIELD}",
    )


@pytest.mark.parametrize(
    "call",
    [ep.unwrap, ep.ravel, ep.partition, ep.values, ep.summary],
    ids=["unwrap", "ravel", "partition", "values", "summary"],
)
def test_model_function_on_rest_half(call):
    # A common slip: passing a half of `ep.partition` where the model belongs,
    # instead of `ep.combine(params, rest)`. The `params` half is a plain dict of
    # arrays (a valid pytree); the `rest` half is refused, naming the fix.
    _, rest = ep.partition(fitted())
    raises_and_keeps(
        lambda: call(rest),
        rest,
        TypeError,
        match=r"the `rest` half of `ep\.partition`.*ep\.combine",
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda m: ep.normal(m, key=jax.random.key(0)),
        ep.ravel,
    ],
    ids=["normal", "ravel"],
)
def test_model_class_instead_of_instance(call):
    # `ep.normal(Model, key=key)` silently returns the class; it should say that
    # `model` must be an instance.
    with pytest.raises(TypeError, match=r"`model`.*class"):
        call(Model)


@pytest.mark.parametrize(
    "call", [ep.partition, ep.unwrap, ep.summary, ep.ravel, ep.flatten]
)
def test_wrapper_field_holding_a_number(call):
    model = eqx.tree_at(lambda m: m.alpha, fitted(), 5.0)
    raises_and_keeps(
        lambda: call(model),
        model,
        TypeError,
        match=(
            r"the field `alpha` is declared `Param` but holds a float.*"
            r"`ep.set_value\(model, where, value\)`"
        ),
    )


@pytest.mark.parametrize("call", [ep.partition, ep.unwrap, ep.summary])
def test_param_latent_that_is_not_an_array(call):
    model = eqx.tree_at(lambda m: m.alpha.latent, fitted(), 5.0)
    raises_and_keeps(
        lambda: call(model),
        model,
        TypeError,
        match=(
            r"the Param at `alpha` has a latent of type float, not an array.*"
            r"`ep.set_value\(model, where, value\)`"
        ),
    )


@pytest.mark.parametrize("call", [ep.values, ep.named_params])
def test_values_of_wrapper_field_holding_a_number(call):
    model = eqx.tree_at(lambda m: m.alpha, fitted(), 5.0)
    raises_and_keeps(
        lambda: call(model),
        model,
        TypeError,
        match=r"field `alpha` is declared `Param`",
    )
