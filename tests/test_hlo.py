"""Compiled programs: the README's training loop is the hand-written program, and
the gradient through `ep.ravel`'s unravel costs O(Params) operations.

Programs are compared as optimized HLO, canonicalised by `benchmarks/_hlo.py`
(names, metadata and source tables stripped; instructions compared as a dataflow
graph, so declaration order does not matter).
"""

import collections
import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import eqxpurify as ep
from benchmarks import _hlo, _mlp, _regression


@functools.cache
def _regression_reference() -> tuple[dict, tuple, str]:
    """The regression data, the hand-written step and its optimized HLO."""
    d = _regression.data()
    ref = _regression.hlo_reference(d)
    return d, ref, _hlo.optimized_hlo(*ref)


def _assert_same_program(ref: tuple | str, ours: tuple) -> None:
    ref_text = ref if isinstance(ref, str) else _hlo.optimized_hlo(*ref)
    c = _hlo.compare(ref_text, _hlo.optimized_hlo(*ours))
    assert c["only_in_a"] == {}, c
    assert c["only_in_b"] == {}, c
    assert c["same_up_to_order"], c


def _assert_same_results(ref: tuple, ours: tuple) -> None:
    (ref_step, ref_args), (step, args) = ref, ours
    ref_params, ref_opt, ref_loss = ref_step(*ref_args)
    params, opt_state, loss = step(*args)
    np.testing.assert_array_equal(np.asarray(loss), np.asarray(ref_loss))
    assert len(params) == len(jax.tree.leaves(ref_params))
    for new, ref_new in zip(
        jax.tree.leaves(params), jax.tree.leaves(ref_params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(ref_new))


def test_readme_loop_is_the_hand_written_step_regression(standard_promotion):
    """The 5-Param regression model (S2): one optax adam step of the README's loop
    (`ep.partition`, a `jax.jit` step with `rest` closed over) compiles to the
    program of the step written by hand over a dict of arrays."""
    d, ref, ref_text = _regression_reference()
    ours = _regression.hlo_readme(d)
    assert list(ours[1][0]) == ["a", "b", "c", "sigma", "x_mu"]
    _assert_same_program(ref_text, ours)
    _assert_same_results(ref, ours)


@pytest.mark.slow
def test_readme_loop_is_the_hand_written_step_mlp(standard_promotion):
    """An 8-64-64-1 MLP of Params under Normal priors: the same, for an adam step."""
    key, d = jax.random.key(1), _mlp.data()
    ref, ours = _mlp.step_reference(key, d), _mlp.step_readme(key, d)
    assert list(ours[1][0]) == [
        f"layers[{i}].{name}" for i in range(3) for name in ("bias", "weight")
    ]
    _assert_same_program(ref, ours)
    _assert_same_results(ref, ours)


def test_the_comparison_sees_a_different_step(standard_promotion):
    """The comparison is not vacuous: a hand-written step that leaves out the
    prior term is a different program."""
    d, (_, args), ref_text = _regression_reference()
    priors = _regression.PRIORS

    def loss_fn(p):
        values = {
            k: _regression.forward(priors[k][0], z, *priors[k][1:])
            for k, z in p.items()
        }
        return _regression.neg_log_lik(values, d["x"], d["y"])

    @jax.jit
    def other(params, opt_state):
        return _regression._optax_step(loss_fn, params, opt_state)

    c = _hlo.compare(ref_text, _hlo.optimized_hlo(other, args))
    assert not c["same_up_to_order"]
    assert c["only_in_a"] != {}


# --- the gradient through unravel ---------------------------------------------

SHAPE = (16,)
_SHAPE = re.compile(r"\[([\d,]*)\]")


def _elements(shape: str) -> int:
    """Elements of an HLO result shape such as `f32[16,4]` (a tuple's sum)."""
    return sum(
        math.prod(int(n) for n in dims.split(",") if n)
        for dims in _SHAPE.findall(shape)
    )


def _gradient_program(params: int) -> tuple[collections.Counter, collections.Counter]:
    """Op counts of the jitted value-and-grad of one loss over `ep.ravel`'s vector
    and over `ravel_pytree`'s vector of the same latents (the model side, the
    same `unflatten`, is shared: only the cutting of the vector differs)."""
    model = ep.zeros([ep.Param(shape=SHAPE) for _ in range(params)])
    flat, unravel = ep.ravel(model)
    latents, unflatten = ep.flatten(model)
    twin_flat, twin_unravel = ravel_pytree(latents)
    assert flat.shape == twin_flat.shape == (params * SHAPE[0],)

    def loss(m):
        return sum(jnp.sum(jnp.square(v - 1.0)) for v in ep.unwrap(m))

    def program(fn, vector):
        text = _hlo.optimized_hlo(jax.jit(jax.value_and_grad(fn)), (vector,))
        return _hlo.op_counts(text)

    ours = program(lambda v: loss(unravel(v)), flat)
    twin = program(lambda v: loss(unflatten(twin_unravel(v))), twin_flat)
    return ours, twin


@pytest.mark.slow
def test_gradient_through_unravel_is_linear_in_params():
    """No `pad` of the whole vector per Param (which made the gradient
    O(Params x size)): the op count and the elements computed match
    `ravel_pytree`'s twin, and grow linearly in the number of Params."""
    small, large = 16, 48
    ours_s, twin_s = _gradient_program(small)
    ours_l, twin_l = _gradient_program(large)
    elements = {}
    for n, ours, twin in [(small, ours_s, twin_s), (large, ours_l, twin_l)]:
        assert sum(k for (op, _), k in ours.items() if op == "pad") == 0
        assert sum(ours.values()) <= 1.2 * sum(twin.values()) + 10
        elements[n] = sum(k * _elements(s) for (_, s), k in ours.items())
        twin_elements = sum(k * _elements(s) for (_, s), k in twin.items())
        assert elements[n] <= 1.2 * twin_elements + 1000
    # linear growth: a few ops per Param (here ~18, most of them the loss's), and
    # elements computed in proportion to the number of Params
    per_param = (sum(ours_l.values()) - sum(ours_s.values())) / (large - small)
    assert per_param <= 24
    assert elements[large] <= 1.1 * (large / small) * elements[small]


def test_element_count_of_shapes():
    """The helper reads HLO shapes as their element counts."""
    assert _elements("f32[16,4]") == 64
    assert _elements("f32[]") == 1
    assert _elements("(f32[3], s32[2,2])") == 7


def _shared_steps(n_uses: int = 1000, n_names: int = 10):
    """The README step of a model of `n_uses` uses of `n_names` shared Params,
    and the same step written by hand over a dict of `n_names` arrays."""
    import optax

    prior = ep.Normal(0.0, 0.5)
    named = [ep.Param(0.1 * j, prior=prior, name=f"w{j}") for j in range(n_names)]
    model = {"uses": [named[i % n_names] for i in range(n_uses)]}
    x = jnp.linspace(-1.0, 1.0, n_uses)
    optimizer = optax.sgd(0.1)
    params, rest = ep.partition(model)

    def readme_loss(params):
        m = ep.unwrap(ep.combine(params, rest))
        return jnp.stack(m["uses"]) @ x

    def hand_loss(p):
        values = [0.0 + 0.5 * p[f"w{i % n_names}"] for i in range(n_uses)]
        return jnp.stack(values) @ x

    def stepper(loss):
        @jax.jit
        def step(params, opt_state):
            value, grads = jax.value_and_grad(loss)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, value

        return step

    hand = {f"w{j}": params[f"['uses'][{j}]"] for j in range(n_names)}
    ours = (stepper(readme_loss), (params, optimizer.init(params)))
    ref = (stepper(hand_loss), (hand, optimizer.init(hand)))
    return ref, ours


@pytest.mark.slow
def test_readme_loop_with_shared_params_is_the_hand_written_step():
    """1000 uses of 10 shared Params: the README step compiles to the step over
    10 arrays written by hand, and gives the same numbers."""
    ref, ours = _shared_steps()
    assert len(ours[1][0]) == 10
    _assert_same_program(ref, ours)
    _assert_same_results(ref, ours)
