"""Prior hyperparameters as given: numbers, arrays, `ep.Fixed` or `ep.Param`
(hierarchical), of a real floating type and shapes that broadcast together;
anything else is refused naming the prior and the argument."""

import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep

from .conftest import (
    X64,
    raises_and_keeps,
)


def _type_phrases(cls, name):
    return (
        f"`{cls}({name}=...)` must be a number, an array, an `ep.Fixed` or an "
        "`ep.Param` (for a hierarchical prior)",
        "got complex.",
    )


def _bool_phrases(cls, name):
    return (
        f"`{cls}({name}=...)` must be a real number",
        "got a bool (True).",
        "Pass a float.",
    )


@pytest.mark.parametrize(
    "cls, names, ok",
    [
        (ep.Normal, ("mean", "sigma"), (0.0, 1.0)),
        (ep.LogNormal, ("mean", "sigma"), (1.0, 1.0)),
        (ep.Uniform, ("low", "high"), (0.0, 1.0)),
    ],
)
def test_prior_type_and_shape_messages_name_class_and_field(cls, names, ok):
    for i, name in enumerate(names):
        for bad, phrases in [(1j, _type_phrases), (True, _bool_phrases)]:
            args = list(ok)
            args[i] = bad
            raises_and_keeps(
                lambda: cls(*args), args, TypeError, *phrases(cls.__name__, name)
            )
    first, second = names
    raises_and_keeps(
        lambda: cls(np.full(2, ok[0]), np.full(3, ok[1] + 1.0)),
        None,
        ValueError,
        f"`{cls.__name__}` hyperparameters of shapes {first} (2,), {second} (3,) "
        "do not broadcast together.",
        "Give them the same shape, or make one a scalar.",
    )


@pytest.mark.parametrize(
    "build, arg",
    [
        (lambda: ep.Normal(None, 1.0), "mean"),
        (lambda: ep.Normal("a", 1.0), "mean"),
        (lambda: ep.Normal([], 1.0), "mean"),
        (lambda: ep.Normal(0.0, 1 + 1j), "sigma"),
        (lambda: ep.Normal(0.0, ep.Normal(0.0, 1.0)), "sigma"),
        (lambda: ep.Uniform(None, 1.0), "low"),
    ],
    ids=["None", "str", "empty-list", "complex", "a-prior", "Uniform-None"],
)
def test_hyperparameter_of_wrong_type(build, arg, unchecked_types):
    raises_and_keeps(
        build,
        None,
        TypeError,
        match=(
            r"\((mean|sigma|low|high)=\.\.\.\)` must be (a number, an array, an "
            r"`ep\.Fixed` or an `ep\.Param`|real)"
        ),
    )
    with pytest.raises(TypeError, match=rf"{arg}="):
        build()


def test_hyperparameter_of_wrong_type_under_typecheck():
    # With jaxtyping's hook on, the annotation check names the argument first.
    raises_and_keeps(
        lambda: ep.Normal(None),
        None,
        TypeError,
        match=r"`Normal\(mean=\.\.\.\)`|parameter 'mean'",
    )


def test_integer_hyperparameter_of_a_floating_kind():
    with pytest.raises(TypeError, match=r"`Normal\(sigma=\.\.\.\)` must be floating"):
        ep.Normal(0.0, ep.Fixed(jnp.array(2)))
    # Python and NumPy integers are numbers: they become floating hyperparameters.
    prior = ep.Normal(1, 2)
    assert jnp.issubdtype(prior.sigma.dtype, jnp.floating)
    assert float(prior.forward(jnp.ones(()))) == 3.0


@pytest.mark.skipif(X64, reason="a Python int above int32 is an int64 under x64")
def test_large_python_int_hyperparameter():
    prior = ep.Normal(2**40, 1.0)
    assert float(prior.mean.value) == 2.0**40


def test_bool_hyperparameter_is_refused():
    raises_and_keeps(
        lambda: ep.Normal(0.0, True),
        None,
        TypeError,
        match=r"`Normal\(sigma=\.\.\.\)`.*bool",
    )


def test_prior_hyperparameters_of_incompatible_shapes():
    # A mean per element (2,) and a sigma per element (3,) can never broadcast:
    # the prior should say so when built, naming both shapes.
    with pytest.raises(ValueError, match=r"Normal.*\(2,\).*\(3,\)"):
        ep.Normal(jnp.zeros(2), jnp.ones(3))
