"""What a harvest re-issues keeps its parameters (name scopes, source lines,
checkpoint policies, scan unrolling), and taps under `jax.custom_jvp` and loops."""

import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import eqxpurify as ep


def test_harvest_keeps_name_scopes_and_source_lines():
    # The harvester re-issues every equation where it was: its name scope and
    # its source line reach the compiled program's debug information.

    def f(x):
        with jax.named_scope("physics"):
            y = jnp.sin(x) * 2.0
        return ep.intermediate(y, name="y") + 1.0

    sin_line = inspect.getsourcelines(f)[1] + 2
    text = jax.jit(ep.intermediates(f)).lower(jnp.ones(3)).as_text(debug_info=True)
    assert re.search(r'loc\("[^"]*/physics/sin"', text), text
    assert re.search(rf'test_intermediates_harvest.py":{sin_line}:', text), text


@pytest.mark.parametrize("prevent_cse", [True, False])
def test_harvest_keeps_checkpoint_policy_and_cse(prevent_cse):
    policy = jax.checkpoint_policies.nothing_saveable

    def f(x):
        ckpt = jax.checkpoint(
            lambda y: ep.intermediate(jnp.sin(y), name="s") * 2,
            prevent_cse=prevent_cse,
            policy=policy,
        )
        return ckpt(x).sum()

    jaxpr = jax.make_jaxpr(ep.intermediates(f))(jnp.ones(3))
    (eqn,) = [e for e in jaxpr.eqns if "prevent_cse" in e.params]
    assert eqn.params["prevent_cse"] is prevent_cse
    assert eqn.params["policy"] is policy


def test_taps_inside_custom_jvp_under_jvp():
    @jax.custom_jvp
    def g(x):
        ep.intermediate(jnp.argmax(x), name="i")  # an integer: a float0 tangent
        ep.intermediate(x * 2, name="d")
        return jnp.sin(x)

    g.defjvp(lambda p, t: (g(p[0]), jnp.cos(p[0]) * t[0]))
    harvested = ep.intermediates(lambda x: g(x).sum())
    x = jnp.arange(3.0)
    (out, taps), (dout, dtaps) = jax.jvp(harvested, (x,), (jnp.ones(3),))
    np.testing.assert_allclose(out, np.sin(np.arange(3.0)).sum(), rtol=1e-6)
    np.testing.assert_allclose(dout, np.cos(np.arange(3.0)).sum(), rtol=1e-6)
    assert int(taps["i"]) == 2 and taps["i"].dtype == jnp.argmax(x).dtype
    np.testing.assert_allclose(taps["d"], 2 * np.arange(3.0))
    # tapped values carry no derivative: zeros of their own type
    assert dtaps["d"].shape == (3,) and not np.any(np.asarray(dtaps["d"]))
    assert dtaps["i"].dtype == jax.dtypes.float0 and dtaps["i"].shape == ()


def test_taps_of_a_custom_jvp_function_are_bound_once_under_jvp():
    # The harvest of a function re-binds its taps once (for a harvest of a function
    # that calls it), not once more in the derivative rule.
    @jax.custom_jvp
    def g(x):
        ep.intermediate(x * 2, name="d")
        return jnp.sin(x)

    g.defjvp(lambda p, t: (g(p[0]), jnp.cos(p[0]) * t[0]))
    inner = ep.intermediates(lambda x: ep.intermediate(g(x), name="after").sum())
    x = jnp.arange(3.0)
    jaxpr = jax.make_jaxpr(lambda x: jax.jvp(inner, (x,), (jnp.ones(3),)))(x)
    text = str(jaxpr)
    assert text.count("intermediate[") == 2, jaxpr  # `d` and, after the rule, `after`
    assert "name=d" in text and "name=after" in text


def test_harvest_keeps_scan_unroll():

    def f(x):
        step = lambda c, xi: (ep.intermediate(c + xi, name="c"), None)  # noqa: E731
        return lax.scan(step, 0.0, x, unroll=2)[0]

    jaxpr = jax.make_jaxpr(ep.intermediates(f))(jnp.ones(4))
    assert [e.params["unroll"] for e in jaxpr.eqns if "unroll" in e.params] == [2]


def test_harvest_runs_a_while_loop_holding_a_custom_vjp():
    # Nothing to watch inside a while_loop (its custom VJPs cannot be reached):
    # the loop is run as it is, and the taps around it are harvested.

    @jax.custom_vjp
    def g(x):
        return jnp.sin(x)

    g.defvjp(lambda x: (jnp.sin(x), x), lambda x, ct: (ct * jnp.cos(x),))

    def f(x, n):
        out = lax.while_loop(lambda c: c[1] < n, lambda c: (g(c[0]), c[1] + 1), (x, 0))
        return ep.intermediate(out[0], name="after")

    out, values = ep.intermediates(f)(jnp.ones(2), jnp.int32(3))
    np.testing.assert_allclose(values["after"], np.sin(np.sin(np.sin(1.0))), rtol=1e-6)
    np.testing.assert_allclose(out, values["after"])
