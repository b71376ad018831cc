"""The errors of a harvest: taps that cannot be returned (in a while loop, an
opaque primitive, a transposed or dropped computation, some branches of a cond,
recorded twice) are named, with the way out."""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import eqxpurify as ep

from .conftest import (
    raises_and_keeps,
)


def test_cond_branches_recording_a_tap_differently_messages():

    def dtypes(x, i):
        return lax.switch(
            i,
            [
                lambda y: ep.intermediate(jnp.sum(y), name="t"),
                lambda y: ep.intermediate(
                    jnp.sum(y).astype(jnp.int32), name="t"
                ).astype(y.dtype),
            ],
            x,
        )

    f32, i32 = jnp.ones(2).dtype, jnp.sum(jnp.ones(2)).astype(jnp.int32).dtype
    msg = (
        "Cannot harvest `t`: the branches of a `lax.cond`/`lax.switch` record it "
        "with different shapes, dtypes or kinds",
        f"(tap of ((), dtype('{f32}')) in branch 0, tap of ((), dtype('{i32}')) in "
        "branch 1).",
        "Record values of one shape and dtype, the same way, in every branch.",
    )
    raises_and_keeps(
        lambda: ep.intermediates(dtypes)(jnp.ones(2), 0), None, ValueError, *msg
    )

    # One shape and dtype, but a slot in one branch and a tap in the other.
    slot = ep.Intermediate(name="t")

    def kinds(x, p):
        return lax.cond(p, lambda y: ep.intermediate(y, name="t"), slot, x)

    msg = (
        "record it with different shapes, dtypes or kinds",
        f"(slot of ((2,), dtype('{f32}')) in branch 0, tap of ((2,), dtype('{f32}')) "
        "in branch 1)",
    )
    raises_and_keeps(
        lambda: ep.intermediates(kinds)(jnp.ones(2), True), None, ValueError, *msg
    )

    def one_branch(x, p):
        return lax.cond(p, lambda y: ep.intermediate(y * 2, name="t"), lambda y: y, x)

    with pytest.raises(ValueError, match=r"recorded in only one branch of a `lax.co"):
        ep.intermediates(one_branch)(jnp.ones(2), True)


def test_tap_in_a_while_loop_message():

    def f(x, n):
        def body(c):
            return ep.intermediate(c[0] * 2, name="w"), c[1] + 1

        return lax.while_loop(lambda c: c[1] < n, body, (x, 0))[0]

    msg = (
        "Cannot harvest `w`: it is inside a `lax.while_loop`",
        "(or a `lax.fori_loop` with traced bounds)",
        "whose number of steps is not known when tracing, so its values cannot be "
        "stacked.",
        "Use `lax.scan` or `lax.fori_loop` with Python-int bounds",
        "move the tap out of the loop",
        "or leave it out of the harvest with `names=`.",
    )
    raises_and_keeps(
        lambda: ep.intermediates(f)(jnp.ones(2), jnp.int32(3)), None, ValueError, *msg
    )
    raises_and_keeps(
        lambda: ep.intermediates(f, names=["w"])(jnp.ones(2), jnp.int32(3)),
        None,
        ValueError,
        *msg,
    )
    out, values = ep.intermediates(f, names=[])(jnp.ones(2), jnp.int32(3))
    np.testing.assert_allclose(out, 8.0)  # left out of the harvest: it runs
    assert values == {}


def test_tap_in_an_opaque_primitive_message():
    from jax.custom_batching import custom_vmap

    @custom_vmap
    def h(x):
        return ep.intermediate(jnp.sin(x), name="v") * 2

    h.def_vmap(lambda axis_size, in_batched, x: (h(x), in_batched[0]))
    msg = (
        "Cannot harvest `v`: it is inside a `custom_vmap_call` primitive",
        "which `ep.intermediates` cannot look inside.",
        "Move the tap out of it, or leave it out of the harvest with `names=`.",
    )
    raises_and_keeps(lambda: ep.intermediates(h)(jnp.ones(2)), None, ValueError, *msg)


def test_tap_of_a_transposed_value_message():
    f = lambda x: ep.intermediate(x * 2, name="lin") * 3  # noqa: E731
    transposed = lambda ct: jax.linear_transpose(f, jnp.ones(2))(ct)  # noqa: E731
    msg = (
        "Cannot harvest `lin`: it taps a tangent",
        "(e.g. in the JVP rule of a `jax.custom_jvp`) or the input of a linear "
        "function",
        "and transposition (`jax.grad`, `jax.vjp`, `jax.linear_transpose`) never "
        "computes those.",
        "Tap a primal value, use forward mode (`jax.jvp`, `jax.jacfwd`)",
        "or leave it out of the harvest with `names=`.",
    )
    raises_and_keeps(
        lambda: ep.intermediates(transposed)(jnp.ones(2)), None, ValueError, *msg
    )


def test_taps_the_computation_drops_or_runs_later_messages():
    @jax.custom_jvp
    def tangent_tap(x):
        return jnp.sin(x)

    tangent_tap.defjvp(
        lambda p, t: (
            tangent_tap(p[0]),
            ep.intermediate(t[0], name="tan") * jnp.cos(p[0]),
        )
    )
    dropped = (
        "Cannot harvest `tan`: it was recorded while the function was traced",
        "but JAX left it out of the computation",
        "a tap of a tangent under reverse-mode autodiff (e.g. in the JVP rule of a "
        "`jax.custom_jvp` under `jax.grad`: tangents are never computed)",
        "a tap in the function of a `jax.custom_vjp` under `jax.grad` (its `fwd` "
        "runs instead)",
        "or a tap in code traced only for shapes (`jax.eval_shape`).",
        "Tap a value the computation keeps, use forward mode (`jax.jvp`)",
        "or leave it out of the harvest with `names=`.",
    )
    grad = jax.grad(lambda x: tangent_tap(x).sum())
    raises_and_keeps(
        lambda: ep.intermediates(grad)(jnp.ones(2)), None, ValueError, *dropped
    )
    raises_and_keeps(
        lambda: ep.intermediates(grad, names=["tan"])(jnp.ones(2)),
        None,
        ValueError,
        *dropped,
    )

    @jax.custom_vjp
    def bwd_tap(x):
        return jnp.sin(x)

    bwd_tap.defvjp(
        lambda x: (jnp.sin(x), x),
        lambda x, ct: (ep.intermediate(ct * jnp.cos(x), name="b"),),
    )
    later = (
        "Cannot harvest `b`: it is recorded inside the `bwd` of a `jax.custom_vjp`",
        "which JAX runs in the backward pass, not by the function itself",
        "so `ep.intermediates` cannot return it.",
        "Tap the value in the function",
        "harvest the derivative instead (`ep.intermediates(jax.grad(f))`)",
        "or leave it out of the harvest with `names=`.",
    )
    harvested = ep.intermediates(lambda y: bwd_tap(y).sum())
    # (raised in the backward pass: JAX appends a note on its traceback)
    raises_and_keeps(
        lambda: jax.grad(lambda x: harvested(x)[0])(jnp.ones(2)),
        None,
        ValueError,
        *later,
    )
    # harvesting the derivative itself returns the value
    _, values = ep.intermediates(jax.grad(lambda x: bwd_tap(x).sum()))(jnp.ones(2))
    np.testing.assert_allclose(values["b"], np.cos(np.ones(2)), rtol=1e-6)


def test_tap_missing_from_some_branches_messages():

    def only_in_branch_0(x, p):  # branch 0 is the false branch; branch 1 passes x
        return lax.cond(p, lambda y: y, lambda y: ep.intermediate(y * 2, name="t"), x)

    one = (
        "Cannot harvest `t`: it is recorded in only one branch of a `lax.cond`",
        "whose other branch computes nothing from its inputs.",
        "That is how a bounded `while_loop` runs its steps",
        "(`equinox.internal.while_loop`, as used by diffrax and optimistix)",
        "whose number of steps is not known when tracing, so its values cannot be "
        "stacked.",
        "Move the tap out of the loop (or record it in every branch of the cond)",
        "or leave it out of the harvest with `names=`.",
    )
    raises_and_keeps(
        lambda: ep.intermediates(only_in_branch_0)(jnp.ones(2), True),
        None,
        ValueError,
        *one,
    )

    def some(x, i):
        tap = lambda k: lambda y: ep.intermediate(y * k, name="t")  # noqa: E731
        return lax.switch(i, [tap(2), tap(3), lambda y: y * 4], x)

    some_msg = (
        "Cannot harvest `t`: it is recorded in some branches of a "
        "`lax.cond`/`lax.switch` but not in others",
        "(branches 0 and 2 differ).",
        "Record it in every branch, or move it out of the cond",
        "or leave it out of the harvest with `names=`.",
    )
    raises_and_keeps(
        lambda: ep.intermediates(some)(jnp.ones(2), 0), None, ValueError, *some_msg
    )


class _TwiceSlot(eqx.Module):
    s: ep.Intermediate

    def __call__(self, x, y):
        self.s(x)
        self.s(y)
        return x


def test_records_that_cannot_be_returned_messages():
    def twice(x):
        ep.intermediate(x, name="t")
        ep.intermediate(x * 2, name="t")
        return x

    msg = (
        "The tap `t` was recorded 2 times in one call.",
        "A name may be recorded once per call",
        "give each `ep.intermediate` its own `name`",
        "(for a function called several times, pass the name in as an argument).",
        "Inside `jax.vmap`, a `lax.cond` with a batched predicate runs every branch, "
        "recording taps in each.",
    )
    info = raises_and_keeps(
        lambda: ep.intermediates(twice)(jnp.ones(2)), None, ValueError, *msg
    )
    # Not in a `lax.map` in batches: no word on its remainder.
    assert str(info.value).endswith("recording taps in each.")

    def mixed(x):
        ep.intermediate(x, name="k")
        ep.Intermediate(name="k")(x)
        return x

    msg = (
        "The name `k` is used both by an `ep.intermediate` tap and by an "
        "`ep.Intermediate` slot",
        "rename the tap.",
    )
    raises_and_keeps(
        lambda: ep.intermediates(mixed)(jnp.ones(2)), None, ValueError, *msg
    )

    x, i = jnp.ones(2), jnp.arange(2)
    msg = (
        "The `ep.Intermediate` slot `u` was called 2 times with values of different "
        "shapes or dtypes",
        f"[((2,), dtype('{x.dtype}')), ((2,), dtype('{i.dtype}'))]",
        "so they cannot be stacked",
        "use a separate slot for each call.",
    )
    raises_and_keeps(
        lambda: ep.intermediates(_TwiceSlot(ep.Intermediate(name="u")))(x, i),
        None,
        ValueError,
        *msg,
    )
    # the same shape and dtype: stacked
    _, values = ep.intermediates(_TwiceSlot(ep.Intermediate(name="u")))(x, 2 * x)
    np.testing.assert_allclose(values["u"], np.stack([np.ones(2), 2 * np.ones(2)]))


def test_tap_in_a_while_loop():
    def f(x):
        def body(carry):
            i, v = carry
            return i + 1, ep.intermediate(v * 2, name="doubled")

        return jax.lax.while_loop(lambda c: c[0] < 3, body, (0, x))[1]

    with pytest.raises(
        ValueError,
        match=r"Cannot harvest `doubled`: it is inside a `lax\.while_loop`.*"
        r"Use `lax\.scan`",
    ):
        ep.intermediates(f)(jnp.array(1.0))
    out, values = ep.intermediates(f, names=[])(jnp.array(1.0))
    assert float(out) == 8.0 and values == {}


def tapped_twice(x: jax.Array) -> jax.Array:
    h = ep.intermediate(jnp.sin(x), name="h")
    return ep.intermediate(2 * h, name="h")


def tapped_in_while_loop(x: jax.Array) -> jax.Array:
    def body(c: jax.Array) -> jax.Array:
        return ep.intermediate(c + 1.0, name="w")

    return jax.lax.while_loop(lambda c: c < 3.0, body, x)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: ep.intermediates(tapped_twice)(jnp.ones(2)),
            ValueError,
            r"The tap `h` was recorded 2 times.*give each `ep.intermediate` its own",
        ),
        (
            lambda: ep.intermediates(tapped_twice, names=["g"])(jnp.ones(2)),
            ValueError,
            r"`names` contains `g`.*Recorded names: \['h'\]",
        ),
        (
            lambda: ep.intermediate(jnp.ones(2), name=""),
            TypeError,
            r"`name` must be a non-empty string",
        ),
        (
            lambda: ep.intermediates(tapped_in_while_loop)(jnp.array(0.0)),
            ValueError,
            r"Cannot harvest `w`.*`lax.while_loop`.*Use `lax.scan`",
        ),
    ],
    ids=["duplicate-name", "unknown-name", "empty-name", "tap-in-while-loop"],
)
def test_bad_intermediates(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ----------------------------------------------------------------------------
# Refused arguments and slot names: each message whole
# ----------------------------------------------------------------------------


def _whole(message):
    return "^" + re.escape(message) + "$"


NOT_ONE_ARRAY = (
    "{} takes a single array, but got a {}. To tap a pytree, tap each of its "
    "arrays with its own name."
)


@pytest.mark.parametrize(
    "value, what", [((jnp.ones(2),), "tuple"), ({"a": jnp.ones(2)}, "dict")]
)
def test_tap_of_a_pytree_message(value, what, unchecked_types):
    raises_and_keeps(
        lambda: ep.intermediate(value, name="p"),
        value,
        TypeError,
        match=_whole(NOT_ONE_ARRAY.format("`ep.intermediate`", what)),
    )
    raises_and_keeps(
        lambda: ep.Intermediate(name="s")(value),
        value,
        TypeError,
        match=_whole(NOT_ONE_ARRAY.format("An `ep.Intermediate` slot", what)),
    )


@pytest.mark.parametrize("name", ["", 3, None])
def test_tap_name_message(name, unchecked_types):
    raises_and_keeps(
        lambda: ep.intermediate(jnp.ones(2), name=name),
        None,
        TypeError,
        match=_whole(f"`name` must be a non-empty string, got {name!r}."),
    )


@pytest.mark.parametrize("name", ["", 3])
def test_slot_name_message(name, unchecked_types):
    raises_and_keeps(
        lambda: ep.Intermediate(name=name),
        None,
        TypeError,
        match=_whole(f"`name` must be a non-empty string or None, got {name!r}."),
    )


def test_intermediates_argument_messages(unchecked_types):
    def f(x):
        return x

    raises_and_keeps(
        lambda: ep.intermediates(3),
        None,
        TypeError,
        match=_whole("`fn` must be callable, got int."),
    )
    raises_and_keeps(
        lambda: ep.intermediates(f, names="ab"),
        None,
        TypeError,
        match=_whole(
            "`names` must be a sequence of names, not a single string; write "
            "`names=['ab']`."
        ),
    )
    raises_and_keeps(
        lambda: ep.intermediates(f, names=["a", 3]),
        None,
        TypeError,
        match=_whole("`names` must contain strings, got 3."),
    )
    raises_and_keeps(
        lambda: ep.intermediates(f, names=("a", "b", "a")),
        None,
        ValueError,
        match=_whole("`names` contains a name twice: ['a', 'b', 'a']."),
    )


def _two_taps(x):
    # Recorded `b` first, then `a`.
    return ep.intermediate(2 * x, name="b") + ep.intermediate(x, name="a")


@pytest.mark.parametrize("names", [["zz"], ["a", "zz", "yy"], ["yy", "zz"]])
def test_unknown_names_message(names):
    first = next(n for n in names if n not in ("a", "b"))
    raises_and_keeps(
        lambda: ep.intermediates(_two_taps, names=names)(jnp.ones(2)),
        None,
        ValueError,
        match=_whole(
            f"`names` contains `{first}`, which no tap or slot records in this "
            "call. Recorded names: ['a', 'b']."
        ),
    )


class _Slotted(eqx.Module):
    hidden: ep.Intermediate

    def __call__(self, x):
        return ep.intermediate(self.hidden(x), name="t")


def test_unknown_names_message_with_unnamed_slots():
    model = _Slotted(ep.Intermediate())
    hint = (
        " Some `ep.Intermediate` slots have no name: pass the model to "
        "`ep.intermediates` itself or as an argument so that they are named by "
        "their path."
    )
    raises_and_keeps(
        lambda: ep.intermediates(lambda x: model(x), names=["hidden"])(jnp.ones(2)),
        model,
        ValueError,
        match=_whole(
            "`names` contains `hidden`, which no tap or slot records in this call. "
            f"Recorded names: ['t'].{hint}"
        ),
    )
    # Named by its path, it is found.
    _, values = ep.intermediates(model, names=["hidden"])(jnp.ones(2))
    assert list(values) == ["hidden"]


@pytest.mark.parametrize(
    "call, root",
    [
        (lambda s, x: ep.intermediates(s)(x), "`fn`"),
        (lambda s, x: ep.intermediates(lambda s, x: s(x))(s, x), "argument 0"),
        (lambda s, x: ep.intermediates(lambda x, s: s(x))(x, s), "argument 1"),
        (lambda s, x: ep.intermediates(lambda x, *, s: s(x))(x, s=s), "argument `s`"),
    ],
    ids=["fn", "argument-0", "argument-1", "keyword"],
)
def test_slot_passed_directly_message(call, root):
    slot = ep.Intermediate()
    raises_and_keeps(
        lambda: call(slot, jnp.ones(2)),
        slot,
        ValueError,
        match=_whole(
            f"An `ep.Intermediate` slot is passed directly as {root}, so it has no "
            "path to be named by; give it a `name=`."
        ),
    )
    # With a name, it records.
    _, values = call(ep.Intermediate(name="s"), jnp.ones(2))
    assert list(values) == ["s"]


def test_slots_named_alike_in_two_arguments_message():
    one, two = _Slotted(ep.Intermediate()), _Slotted(ep.Intermediate())
    raises_and_keeps(
        lambda: ep.intermediates(lambda p, q, x: q.hidden(p.hidden(x)))(
            one, two, jnp.ones(2)
        ),
        (one, two),
        ValueError,
        match=_whole(
            "Two `ep.Intermediate` slots would both be named `hidden` (one in "
            "argument 0, one in argument 1); give one of them an explicit `name=`."
        ),
    )
    raises_and_keeps(
        lambda: ep.intermediates(lambda x, *, q: q.hidden(x))(one, q=two),
        (one, two),
        ValueError,
        match=_whole(
            "Two `ep.Intermediate` slots would both be named `hidden` (one in "
            "argument 0, one in argument `q`); give one of them an explicit "
            "`name=`."
        ),
    )


class _Four(eqx.Module):
    p: ep.Intermediate
    q: ep.Intermediate
    r: ep.Intermediate
    s: ep.Intermediate

    def __call__(self, x):
        return self.s(self.r(self.q(self.p(x))))


@pytest.mark.parametrize("as_argument", [False, True])
def test_path_name_taken_by_an_explicit_name_message(as_argument):
    # `q` and `s` are each a path and another slot's explicit name: the first
    # in sorted order is named.
    model = _Four(
        ep.Intermediate(name="s"),
        ep.Intermediate(),
        ep.Intermediate(name="q"),
        ep.Intermediate(),
    )
    root = "argument 0" if as_argument else "`fn`"
    call = (
        (lambda: ep.intermediates(lambda m, x: m(x))(model, jnp.ones(2)))
        if as_argument
        else (lambda: ep.intermediates(model)(jnp.ones(2)))
    )
    raises_and_keeps(
        call,
        model,
        ValueError,
        match=_whole(
            f"The `ep.Intermediate` slot at path `q` in {root} would be named "
            "`q`, which another slot already has as its explicit `name`; rename "
            "that slot."
        ),
    )
    # Without the clash, each slot records under its name.
    fine = _Four(
        ep.Intermediate(name="one"),
        ep.Intermediate(),
        ep.Intermediate(name="two"),
        ep.Intermediate(),
    )
    _, values = ep.intermediates(fine)(jnp.ones(2))
    assert list(values) == ["one", "q", "two", "s"]


def test_cond_branches_recording_a_name_as_tap_and_slot_message():
    def f(x):
        return lax.cond(
            x.sum() > 0,
            lambda y: ep.intermediate(y, name="b"),
            lambda y: ep.Intermediate(name="b")(y),
            x,
        )

    x = jnp.ones(2)
    aval = f"((2,), dtype('{x.dtype}'))"
    raises_and_keeps(
        lambda: ep.intermediates(f)(x),
        None,
        ValueError,
        match=_whole(
            "Cannot harvest `b`: the branches of a `lax.cond`/`lax.switch` record "
            "it with different shapes, dtypes or kinds "
            f"(slot of {aval} in branch 0, tap of {aval} in branch 1). Record "
            "values of one shape and dtype, the same way, in every branch."
        ),
    )
