"""What `ep.partition` learns once per model structure: its checks still find a
bad leaf in a model of a structure already seen, and its caches stay bounded."""

import equinox as eqx
import jax.numpy as jnp
import pytest

import eqxpurify as ep

from .conftest import (
    raises_and_keeps,
)

# A Param whose latent is not an array: the cause and the two fixes.
_LATENT_PHRASES = (
    "so it would silently drop out of training.",
    "Set Params with `ep.set_value(model, where, value)` (physical value)",
    "or replace the whole node: "
    "`eqx.tree_at(where, model, ep.Param(value, prior=...))`.",
)


def test_a_number_in_a_latent_of_a_known_structure_is_found():
    # The same structure as a checked model (a number is a leaf like an array), so
    # the per-structure check is skipped: the split must still find it.
    model = {"w": ep.Param(jnp.ones(2)), "t": ep.Fixed(1.0)}
    bad = eqx.tree_at(lambda m: m["w"].latent, model, 5.0)
    for call, split in [("ep.partition", ep.partition), ("ep.ravel", ep.ravel)]:
        split(model)
        raises_and_keeps(
            lambda: split(bad),
            bad,
            TypeError,
            f"`{call}`: the Param at `['w']` has a latent of type float, not an array",
            *_LATENT_PHRASES,
        )


def _none_latent_model():
    class Fresh(eqx.Module):  # a structure no other test has partitioned
        w: ep.Param
        t: ep.Fixed

    model = Fresh(ep.Param(jnp.ones(2)), ep.Fixed(jnp.ones(3)))
    return eqx.tree_at(lambda m: m.w.latent, model, None, is_leaf=lambda x: x is None)


@pytest.mark.parametrize("call", ["ep.partition", "ep.ravel", "ep.flatten"])
def test_split_finds_a_latent_set_to_none_the_first_time(call):
    model = _none_latent_model()
    split = {"ep.partition": ep.partition, "ep.ravel": ep.ravel}.get(call, ep.flatten)
    for _ in range(2):  # the first time and again (the check is cached per structure)
        raises_and_keeps(
            lambda: split(model),
            model,
            TypeError,
            f"`{call}`: the Param at `w` has a latent of type NoneType, not an array",
            *_LATENT_PHRASES,
        )


@pytest.mark.slow
def test_split_checks_many_structures():
    # More structures than the check's cache holds: older ones are evicted.
    for n in range(80):
        params, rest = ep.partition({f"k{i}": ep.Param(float(i)) for i in range(n)})
        assert len(params) == n
    with pytest.raises(TypeError, match=r"`w` has a latent of type NoneType"):
        ep.partition(_none_latent_model())
