"""`rest`, the second half of `ep.partition`: its layout's equality (what a jitted
step caches on) and its text."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import eqxpurify as ep


class _Act(eqx.Module):
    w: ep.Param
    act: str = eqx.field(static=True)

    @ep.unwrapped
    def __call__(self):
        return jnp.tanh(self.w) if self.act == "tanh" else jnp.square(self.w)


def test_layout_equality_is_what_a_jitted_step_caches_on():
    traces = []

    @jax.jit
    def value(params, rest):
        traces.append(None)
        return ep.combine(params, rest)()

    w = jnp.array([0.5, 2.0])
    a = ep.partition(_Act(ep.Param(w), "tanh"))
    a2 = ep.partition(_Act(ep.Param(w + 1), "tanh"))
    b = ep.partition(_Act(ep.Param(w), "square"))
    assert a[1].layout == a[1].layout
    assert a[1].layout == a2[1].layout and a[1].layout is not a2[1].layout
    assert a[1].layout != b[1].layout  # same hash, other static values
    assert hash(a[1].layout) == hash(b[1].layout)
    assert a[1].layout != "a layout"
    np.testing.assert_allclose(value(*a), np.tanh(w), rtol=1e-6)
    np.testing.assert_allclose(value(*a2), np.tanh(w + 1), rtol=1e-6)
    assert len(traces) == 1  # an equal layout: the cached program
    np.testing.assert_allclose(value(*b), np.square(w), rtol=1e-6)
    assert len(traces) == 2
    c = ep.partition(_Act(ep.Param(jnp.ones(3)), "tanh"))  # another shape
    assert hash(a[1].layout) != hash(c[1].layout)  # the hash reads the structure


def test_rest_repr_counts_its_arrays():
    model = {"a": ep.Param(jnp.ones(2)), "t": ep.Fixed(jnp.ones(3)), "i": jnp.arange(2)}
    params, rest = ep.partition(model)
    # other arrays: `t`'s data, `i`, and the default prior's mean and scale
    assert repr(rest) == "Rest(<1 trainable, 4 other arrays>)"
