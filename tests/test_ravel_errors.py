"""The errors of `unflatten` and `unravel`: they name the array, its shape and
dtype, and how to map over a batch; a failed call changes nothing."""

import re
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import eqxpurify as ep

from .conftest import DEFAULT_FLOAT, ERROR_OF, error_has, outside, raises_and_keeps
from .models import fitted, two_params

_F = jnp.dtype(DEFAULT_FLOAT).name  # Params made from Python floats


class _Mixed(eqx.Module):
    a: ep.Param
    fixed: ep.Fixed
    plain: jax.Array
    counts: jax.Array
    theta: ep.Param
    last: ep.Param


def _mixed_model():
    tau = ep.Param(0.7, prior=ep.HalfNormal(1.0))
    return _Mixed(
        a=ep.Param(jnp.array([0.5, -0.5])),
        fixed=ep.Fixed(jnp.ones(3)),
        plain=jnp.arange(4.0),
        counts=jnp.arange(2),
        theta=ep.Param(jnp.zeros(3), prior=ep.Normal(ep.Param(0.1), tau)),
        last=ep.Param(jnp.ones((2, 2))),
    )


# Path order: a Param before the Params of its prior; Fixed data and integer
# arrays are not trainable, a plain floating array is.
_MIXED_NAMES = [
    "a",
    "plain",
    "theta",
    "theta.prior.mean",
    "theta.prior.sigma",
    "last",
]


_MIXED_SHAPES = [(2,), (4,), (3,), (), (), (2, 2)]


def test_flatten_order_of_a_mixed_model():
    latents, _ = ep.flatten(_mixed_model())
    assert [z.shape for z in latents] == _MIXED_SHAPES
    assert list(ep.partition(_mixed_model())[0]) == _MIXED_NAMES


@pytest.mark.parametrize("k", range(len(_MIXED_NAMES)))
def test_unflatten_error_names_the_right_array(k):
    latents, unflatten = ep.flatten(_mixed_model())
    bad = list(latents)
    bad[k] = jnp.zeros((7,), latents[k].dtype)
    shape = re.escape(str(_MIXED_SHAPES[k]))
    with pytest.raises(
        ValueError,
        match=rf"^`unflatten`: array {k} \(for `{re.escape(_MIXED_NAMES[k])}`\) "
        rf"must have shape {shape} and dtype {_F}, got shape \(7,\) and "
        rf"dtype {_F}\. For a batch of lists",
    ):
        unflatten(bad)


def test_unflatten_dtype_error_names_the_right_array():
    latents, unflatten = ep.flatten(_mixed_model())
    bad = [*latents[:-1], latents[-1].astype(jnp.bfloat16)]
    with pytest.raises(
        ValueError,
        match=r"^`unflatten`: array 5 \(for `last`\) must have shape \(2, 2\) and "
        rf"dtype {_F}, got shape \(2, 2\) and dtype bfloat16\.",
    ):
        unflatten(bad)


def test_unflatten_count_message():
    latents, unflatten = ep.flatten(two_params())
    raises_and_keeps(
        lambda: unflatten(latents[:1]),
        latents,
        ValueError,
        "`unflatten` expects 2 arrays",
        "(one per trainable array of the model)",
        "got 1.",
    )


def test_unflatten_shape_message():
    latents, unflatten = ep.flatten(two_params())
    bad = [jnp.zeros(3, jnp.int32), latents[1]]
    raises_and_keeps(
        lambda: unflatten(bad),
        bad,
        ValueError,
        "`unflatten`: array 0 (for `['a']`)",
        f"must have shape (2,) and dtype {_F}",
        "got shape (3,) and dtype int32.",
        "For a batch of lists, map the whole computation over it",
        "`jax.vmap(lambda zs: f(unflatten(zs)))`.",
    )


def _unravel_shape_phrases(shape):
    """The key phrases of `unravel`'s message for a vector of shape `shape`."""
    phrases = [
        "`unravel` expects a 1-d vector of length 3",
        "(the number of trainable elements of the model)",
        f"got shape {shape}.",
    ]
    if len(shape) > 1:
        phrases += [
            "For a batch of vectors, map the whole computation over it",
            "`jax.vmap(lambda v: f(unravel(v)))(flats)`",
            "or name the draws with `ep.draws(flats, unravel)`.",
        ]
    return phrases


def test_unravel_length_message():
    flat, unravel = ep.ravel(two_params())
    vector = jnp.zeros(4)
    raises_and_keeps(
        lambda: unravel(vector), vector, ValueError, *_unravel_shape_phrases((4,))
    )


@pytest.mark.slow
def test_unflatten_and_unravel_messages_without_the_hook():
    latents, unflatten = ep.flatten(two_params())
    flat, unravel = ep.ravel(two_params())
    # the same calls in this process too, so that mutmut sees these functions run
    jax.block_until_ready((unflatten(latents), unravel(flat)))
    got = outside(
        ERROR_OF,
        """
        model = {"a": ep.Param(jnp.zeros(2)), "b": ep.Param(1.0)}
        latents, unflatten = ep.flatten(model)
        flat, unravel = ep.ravel(model)
        shapes = [(4,), (), (1, 3), (2, 3)]
        print(json.dumps({
            "unflatten": error_of(lambda: unflatten(jnp.zeros(3))),
            "unravel": error_of(lambda: unravel(jnp.arange(3))),
            "shapes": [error_of(lambda: unravel(jnp.zeros(s))) for s in shapes],
        }))
        """,
        devices=1,
    )
    error_has(
        got["unflatten"],
        "TypeError",
        "`unflatten` expects the list of arrays that `ep.flatten` returned",
        "(or an update of it)",
        "got ArrayImpl.",
    )
    error_has(
        got["unravel"],
        "TypeError",
        "`unravel` expects a floating vector",
        "got dtype int32.",
    )
    shapes = [(4,), (), (1, 3), (2, 3)]
    assert len(got["shapes"]) == len(shapes)
    for error, shape in zip(got["shapes"], shapes):
        error_has(error, "ValueError", *_unravel_shape_phrases(shape))
        if len(shape) <= 1:
            assert "For a batch of vectors" not in error[1]


def _unchecked(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method` without the jaxtyping check that this suite wraps it in."""
    while hasattr(method, "__wrapped__"):
        method = method.__wrapped__  # pyright: ignore[reportFunctionMemberAccess]
    return method


@pytest.mark.parametrize(
    "vector, error, match",
    [
        (jnp.zeros(8), ValueError, r"length 9 .*got shape \(8,\)"),
        (jnp.zeros(()), ValueError, r"1-d vector of length 9.*got shape \(\)"),
        (
            jnp.zeros((2, 9)),
            ValueError,
            r"got shape \(2, 9\).*`jax.vmap\(lambda v: f\(unravel\(v\)\)\)\(flats\)`.*"
            r"`ep.draws\(flats, unravel\)`",
        ),
        (jnp.zeros(9, jnp.int32), TypeError, r"`unravel` expects a floating vector"),
    ],
    ids=["short", "scalar", "batch", "integer"],
)
def test_unravel_bad_vector_keeps_the_model(vector, error, match):
    model = fitted()
    _, unravel = ep.ravel(model)
    # A wrong rank or dtype is caught first by jaxtyping's check of the
    # `Float[Array, " n"]` annotation (on in this suite), naming `flat`.
    annotated = vector.ndim == 1 and jnp.issubdtype(vector.dtype, jnp.floating)
    in_suite = (error, match) if annotated else (TypeError, r"parameter 'flat'")
    raises_and_keeps(lambda: unravel(vector), model, in_suite[0], match=in_suite[1])
    # The library's own message, as users without jaxtyping's hook see it.
    check = _unchecked(ep.Unravel.__call__)
    raises_and_keeps(lambda: check(unravel, vector), model, error, match=match)


def test_unravel_bad_vector_under_jit_names_the_length():
    _, unravel = ep.ravel(fitted())
    with pytest.raises(ValueError, match=r"length 9 .*got shape \(10,\)"):
        jax.jit(unravel)(jnp.zeros(10))
