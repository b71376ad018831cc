"""What `ep.combine` is given back: entries that match `rest`'s names, shapes and
dtypes (cast back to each latent's dtype), and clear errors otherwise."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep

from .conftest import DEFAULT_FLOAT, ERROR_OF, error_has, outside, raises_and_keeps
from .models import fitted, two_params

_F = jnp.dtype(DEFAULT_FLOAT).name  # Params made from Python floats


def test_combine_makes_arrays_of_numbers():
    model = {
        "a": ep.Param(jnp.ones(())),
        "b": ep.Param(0.5),
        "h": ep.Param(jnp.ones((), jnp.float16)),
    }
    params, rest = ep.partition(model)
    out = ep.combine({"['a']": 2.0, "['b']": np.float64(1.5), "['h']": 0.25}, rest)
    for name, want, dtype in [("a", 2.0, _F), ("b", 1.5, _F), ("h", 0.25, "float16")]:
        latent = out[name].latent
        assert isinstance(latent, jax.Array) and latent.dtype == jnp.dtype(dtype)
        assert float(latent) == want


def _mismatch_phrases(parts):
    """The names that differ (`parts`, listed in full) and the fix."""
    return (
        f"`ep.combine(params, rest)`: `params` does not match `rest` ({parts}).",
        "Both must come from the same `ep.partition(model)` call",
        "(an optimizer update keeps the keys of `params`).",
    )


def test_combine_mismatch_messages():
    model = {k: ep.Param(float(i)) for i, k in enumerate("abcdefg")}
    params, rest = ep.partition(model)
    # Same number of entries, one key renamed.
    renamed = dict(params)
    renamed["['z']"] = renamed.pop("['c']")
    raises_and_keeps(
        lambda: ep.combine(renamed, rest),
        (renamed, rest),
        ValueError,
        *_mismatch_phrases("missing `['c']`; unknown `['z']`"),
    )
    # At most five names are listed.
    few = {k: v for k, v in params.items() if k == "['a']"}
    listed = ", ".join(f"`['{k}']`" for k in "bcdef")
    raises_and_keeps(
        lambda: ep.combine(few, rest),
        (few, rest),
        ValueError,
        *_mismatch_phrases(f"missing {listed}"),
    )
    many = dict(params, **{f"['x{i}']": jnp.zeros(()) for i in range(7)})
    listed = ", ".join(f"`['x{i}']`" for i in range(5))
    raises_and_keeps(
        lambda: ep.combine(many, rest),
        (many, rest),
        ValueError,
        *_mismatch_phrases(f"unknown {listed}"),
    )


@pytest.mark.slow
def test_combine_type_messages_without_the_hook():
    params, rest = ep.partition(two_params())
    ep.combine(params, rest)  # (in this process too, for mutmut)
    got = outside(
        ERROR_OF,
        """
        params, rest = ep.partition({"a": ep.Param(jnp.zeros(2)), "b": ep.Param(1.0)})
        print(json.dumps({
            "rest": error_of(lambda: ep.combine(params, {"not": "rest"})),
            "params": error_of(lambda: ep.combine([1.0], rest)),
        }))
        """,
        devices=1,
    )
    error_has(
        got["rest"],
        "TypeError",
        "`ep.combine(params, rest)`: `rest` must be the second result of "
        "`ep.partition(model)`",
        "got dict.",
    )
    error_has(
        got["params"],
        "TypeError",
        "`ep.combine(params, rest)`: `params` must be the dict returned by "
        "`ep.partition(model)`",
        "(or an update of it)",
        "got list.",
    )


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32", "float64"])
def test_combine_casts_updates_back_to_each_dtype(dtype):
    with jax.enable_x64(True):
        model = {
            "p": ep.Param(jnp.asarray([1.0, 2.0], dtype)),
            "q": ep.Param(jnp.asarray(0.5, "float32")),
        }
        params, rest = ep.partition(model)
        other = "float32" if dtype != "float32" else "float64"
        updated = {k: v.astype(other) + 1 for k, v in params.items()}
        back = ep.combine(updated, rest)
        assert back["p"].latent.dtype == jnp.dtype(dtype)
        assert back["q"].latent.dtype == jnp.float32
        np.testing.assert_array_equal(
            np.asarray(back["p"].latent, np.float64), [2.0, 3.0]
        )


def test_combine_keeps_shape_placeholders():
    # Abstract params (as a checkpoint library restores into) pass through as they
    # are, to be filled in later.
    params, rest = ep.partition({"a": ep.Param(jnp.ones(2)), "b": ep.Param(0.5)})
    abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in params.items()}
    out = ep.combine(abstract, rest)
    assert out["a"].latent is abstract["['a']"] and out["b"].latent is abstract["['b']"]


def test_combine_halves_of_different_models():
    params, _ = ep.partition(fitted())
    other = eqx.tree_at(lambda m: m.encoder.layers, fitted(), [])
    _, rest = ep.partition(other)
    with pytest.raises(ValueError, match=r"same `ep.partition\(model\)` call"):
        ep.combine(params, rest)
