import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import eqxpurify as ep

from .conftest import (
    DEFAULT_FLOAT,
    ERROR_OF,
    error_has,
    outside,
    tree_allclose,
)


class Model(eqx.Module):
    w: ep.Param
    b: ep.Param
    h: ep.Param
    x: ep.Fixed
    n: jax.Array
    act: str = eqx.field(static=True)

    @ep.unwrapped
    def __call__(self):
        y = jnp.tanh(self.x @ self.w.astype(self.x.dtype) + self.b)
        return jnp.sum(y**2) + jnp.sum(self.h.astype(self.x.dtype))


def make(key):
    model = Model(
        w=ep.Param(shape=(3, 2), dtype=jnp.bfloat16),
        b=ep.Param(shape=(2,), prior=ep.Normal(jnp.array([0.0, 1.0]), 0.5)),
        h=ep.Param(shape=(4,), dtype=jnp.float16, prior=ep.LogNormal(1.0, 0.3)),
        x=ep.Fixed(jnp.ones((5, 3))),
        n=jnp.arange(3),
        act="tanh",
    )
    return ep.normal(model, key=key)


def test_ravel_order_and_dtype(getkey):
    model = make(getkey())
    flat, _ = ep.ravel(model)
    assert flat.shape == (6 + 2 + 4,)
    assert flat.dtype == DEFAULT_FLOAT
    params = ep.partition(model)[0]
    assert list(params) == ["w", "b", "h"]  # path order
    expected = jnp.concatenate(
        [jnp.ravel(x).astype(DEFAULT_FLOAT) for x in params.values()]
    )
    np.testing.assert_array_equal(flat, expected)


def test_unravel_ravel_round_trip_restores_dtypes(getkey):
    model = make(getkey())
    flat, unravel = ep.ravel(model)
    back = unravel(flat)
    assert tree_allclose(back, model, rtol=0, atol=0)
    assert back.w.latent.dtype == jnp.bfloat16
    assert back.h.latent.dtype == jnp.float16
    assert back.x.stored is model.x.stored
    assert back.b.prior.mean.stored is model.b.prior.mean.stored
    assert back.n is model.n
    assert back.act == "tanh"


@pytest.mark.slow
def test_unravel_under_jit_grad_vmap_hessian(getkey):
    model = make(getkey())
    flat, unravel = ep.ravel(model)

    def loss(v):
        return unravel(v)()

    eager = loss(flat)
    np.testing.assert_allclose(jax.jit(loss)(flat), eager, rtol=1e-5)
    g = jax.grad(loss)(flat)
    assert g.shape == flat.shape and jnp.all(jnp.isfinite(g))
    # Compare with the gradient through partition/combine.
    params, rest = ep.partition(model)
    pg = eqx.filter_grad(lambda p: ep.combine(p, rest)())(params)
    np.testing.assert_allclose(g[6:8], pg["b"], rtol=1e-5)
    batch = jnp.stack([flat, flat * 0.5, flat * 0.0])
    np.testing.assert_allclose(jax.vmap(loss)(batch)[0], eager, rtol=1e-5)
    h = jax.hessian(loss)(flat)
    assert h.shape == (12, 12)
    # `w` is bfloat16: its cross-derivatives are rounded to bfloat16 precision.
    np.testing.assert_allclose(h, h.T, rtol=1e-2, atol=1e-3)


@pytest.mark.slow
def test_hessian_of_quadratic_is_exact():
    with jax.enable_x64(True):
        model = ep.normal(
            {
                "a": ep.Param(shape=(2,), dtype=jnp.float64),
                "b": ep.Param(shape=(), dtype=jnp.float64),
            },
            key=jax.random.key(0),
        )
        flat, unravel = ep.ravel(model)
        assert flat.dtype == jnp.float64

        def f(v):
            m = ep.unwrap(unravel(v))
            return 1.5 * jnp.sum(m["a"] ** 2) + 2.0 * m["a"][0] * m["b"]

        h = jax.hessian(f)(flat)
        np.testing.assert_allclose(
            h, [[3.0, 0.0, 2.0], [0.0, 3.0, 0.0], [2.0, 0.0, 0.0]]
        )


def test_ravel_under_vmap(getkey):
    keys = jax.random.split(getkey(), 3)
    template = make(getkey())
    ensemble = eqx.filter_vmap(lambda k: ep.normal(template, key=k))(keys)
    flats = eqx.filter_vmap(lambda m: ep.ravel(m)[0])(ensemble)
    assert flats.shape == (3, 12)
    single = eqx.filter_vmap(lambda k: ep.ravel(ep.normal(template, key=k))[0])(keys)
    np.testing.assert_array_equal(flats, single)


def test_ravel_with_scipy_optimize():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    with jax.enable_x64(True):
        model = ep.zeros(
            {"mu": ep.Param(shape=(3,), dtype=jnp.float64, prior=ep.Normal(1.0, 2.0))}
        )
        flat, unravel = ep.ravel(model)
        target = jnp.array([0.5, -1.0, 4.0])

        def objective(v):
            return jnp.sum((ep.unwrap(unravel(v))["mu"] - target) ** 2)

        value_and_grad = jax.jit(jax.value_and_grad(objective))
        result = scipy_optimize.minimize(
            lambda v: tuple(np.asarray(a) for a in value_and_grad(jnp.asarray(v))),
            np.asarray(flat),
            jac=True,
            method="BFGS",
        )
        np.testing.assert_allclose(
            ep.unwrap(unravel(jnp.asarray(result.x)))["mu"], target, atol=1e-5
        )


def test_plain_floating_arrays_are_raveled():
    """A plain floating array outside the wrappers trains (Equinox's meaning)."""
    model = {"p": ep.Param(jnp.array([3.0])), "x": jnp.array([1.0, 2.0])}
    flat, unravel = ep.ravel(model)
    np.testing.assert_array_equal(flat, jnp.array([3.0, 1.0, 2.0], DEFAULT_FLOAT))
    assert tree_allclose(unravel(flat), model, rtol=0, atol=0)
    back = unravel(flat.at[1:].set(jnp.array([5.0, 6.0], DEFAULT_FLOAT)))
    np.testing.assert_array_equal(back["x"], [5.0, 6.0])


def test_empty_model():
    model = {"n": jnp.arange(2), "t": ep.Fixed(jnp.ones(2)), "k": jax.random.key(0)}
    flat, unravel = ep.ravel(model)
    assert flat.shape == (0,)
    back = unravel(flat)
    assert back["n"] is model["n"] and back["t"].stored is model["t"].stored
    assert back["k"] is model["k"]


_BAD_VECTORS = [
    (jnp.zeros(11), r"1-d vector of length 12 .* got shape \(11,\)"),
    (jnp.zeros(13), r"length 12"),
    (jnp.zeros((2, 12)), r"got shape \(2, 12\)\. For a batch of vectors, map"),
    (jnp.zeros(()), r"got shape \(\)"),
    (jnp.zeros(12, jnp.int32), r"floating vector"),
]


def _unchecked(method):
    """`method` without the jaxtyping check that the suite wraps it in."""
    while hasattr(method, "__wrapped__"):
        method = method.__wrapped__
    return method


@pytest.mark.parametrize("bad, match", _BAD_VECTORS)
def test_unravel_bad_vector(getkey, bad, match):
    _, unravel = ep.ravel(make(getkey()))
    # Wrong length: the library's error. Wrong rank or dtype: jaxtyping's
    # check of the `Float[Array, " n"]` annotation (on in this suite) comes first.
    jaxtyping_first = bad.ndim != 1 or not jnp.issubdtype(bad.dtype, jnp.floating)
    with pytest.raises(
        (ValueError, TypeError), match=r"parameter 'flat'" if jaxtyping_first else match
    ):
        unravel(bad)
    # The library's own check, as users without jaxtyping's hook see it.
    with pytest.raises((ValueError, TypeError), match=match):
        _unchecked(ep.Unravel.__call__)(unravel, bad)


def test_unravel_bad_vector_under_jit(getkey):
    _, unravel = ep.ravel(make(getkey()))
    with pytest.raises(ValueError, match="length 12"):
        jax.jit(unravel)(jnp.zeros(10))


def test_ravel_abstract_error():
    with pytest.raises(
        ValueError, match=r"`ep.ravel`: the Param at `\['b'\]` is abstract.*ep.normal"
    ):
        ep.ravel({"a": ep.Param(1.0), "b": ep.Param(shape=(2,))})


# --- ep.flatten: one array per Param ------------------------------------------


def test_flatten_round_trip_and_order(getkey):
    model = make(getkey())
    latents, unflatten = ep.flatten(model)
    assert isinstance(latents, list)
    assert [z.shape for z in latents] == [(3, 2), (2,), (4,)]
    assert [z.dtype for z in latents] == [jnp.bfloat16, DEFAULT_FLOAT, jnp.float16]
    assert latents[0] is model.w.latent
    assert tree_allclose(unflatten(latents), model, rtol=0, atol=0)
    assert tree_allclose(unflatten(tuple(latents)), model, rtol=0, atol=0)


def test_flatten_under_jit_grad_vmap(getkey):
    model = make(getkey())
    latents, unflatten = ep.flatten(model)
    flat, unravel = ep.ravel(model)

    def loss(zs):
        return unflatten(zs)()

    np.testing.assert_allclose(jax.jit(loss)(latents), loss(latents), rtol=1e-5)
    grads = jax.grad(loss)(latents)
    flat_grad = jax.grad(lambda v: unravel(v)())(flat)
    np.testing.assert_allclose(grads[1], flat_grad[6:8], rtol=1e-5)
    batch = [jnp.stack([z, z]) for z in latents]
    np.testing.assert_allclose(jax.vmap(loss)(batch), [loss(latents)] * 2, rtol=1e-5)


def test_flatten_training_leaves_fixed_untouched(getkey, standard_promotion):
    model = make(getkey())
    latents, unflatten = ep.flatten(model)
    optim = optax.adamw(1e-2, weight_decay=0.1)
    opt_state = optim.init(latents)

    @jax.jit
    def step(latents, opt_state):
        grads = jax.grad(lambda zs: unflatten(zs)())(latents)
        updates, opt_state = optim.update(grads, opt_state, latents)
        return optax.apply_updates(latents, updates), opt_state

    for _ in range(5):
        latents, opt_state = step(latents, opt_state)
    trained = unflatten(latents)
    assert trained.x.stored is model.x.stored
    assert trained.b.prior.mean.stored is model.b.prior.mean.stored
    assert trained.n is model.n
    assert not np.array_equal(np.asarray(trained.b.latent), np.asarray(model.b.latent))


def test_flatten_step_is_the_hand_written_program():
    """A jitted gradient over `ep.flatten`'s list compiles to the same optimized
    HLO as the same computation written by hand over a list of arrays."""
    t = jnp.linspace(0.0, 1.0, 16)
    model = ep.zeros(
        {
            "amp": ep.Param(prior=ep.Normal(1.0, 0.5)),
            "rate": ep.Param(prior=ep.LogNormal(2.0, 0.5)),
            "t": ep.Fixed(t),
        }
    )
    latents, unflatten = ep.flatten(model)
    m, s = 2.0, 0.5
    s_log = np.sqrt(np.log1p((s / m) ** 2))
    mu_log = np.log(m) - 0.5 * s_log**2

    def ours(zs):
        mm = ep.unwrap(unflatten(zs))
        return jnp.sum((mm["amp"] * jnp.exp(-mm["rate"] * mm["t"])) ** 2)

    def by_hand(zs):
        amp = 1.0 + 0.5 * zs[0]
        rate = jnp.exp(mu_log + s_log * zs[1])
        return jnp.sum((amp * jnp.exp(-rate * t)) ** 2)

    def hlo(f):
        text = jax.jit(jax.grad(f)).lower(latents).compile().as_text()
        ops = [
            line.split("=", 1)[1].split("(")[0].strip().split(" ")[-1]
            for line in text.splitlines()
            if " = " in line and not line.lstrip().startswith(("HloModule", "//"))
        ]
        return sorted(ops)

    np.testing.assert_allclose(
        jax.grad(ours)(latents), jax.grad(by_hand)(latents), rtol=1e-5
    )
    assert hlo(ours) == hlo(by_hand)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (
            lambda zs: zs[:2],
            ValueError,
            r"expects 3 arrays \(one per trainable array of the model\), got 2",
        ),
        (
            lambda zs: [zs[0], jnp.zeros(3), zs[2]],
            ValueError,
            r"array 1 \(for `b`\) must have shape \(2,\) .* got shape \(3,\)",
        ),
        (
            lambda zs: [zs[0].astype(jnp.float32), zs[1], zs[2]],
            ValueError,
            r"array 0 \(for `w`\) .* dtype bfloat16, got .* dtype float32",
        ),
        # jaxtyping (on in the suite) or our own check; both name `latents`.
        (lambda zs: jnp.zeros(12), TypeError, r"latents"),
    ],
)
def test_unflatten_bad_input(getkey, bad, error, match):
    latents, unflatten = ep.flatten(make(getkey()))
    with pytest.raises(error, match=match):
        unflatten(bad(latents))


def test_flatten_abstract_error():
    with pytest.raises(
        ValueError, match=r"`ep.flatten`: the Param at `\['a'\]` is abstract.*ep.zeros"
    ):
        ep.flatten({"a": ep.Param(shape=(2,))})


@pytest.mark.parametrize("flat", [[0.0, 1.0, 2.0], (0.0, 1.0, 2.0)])
def test_unravel_refuses_a_python_sequence_with_the_fix(flat, unchecked_types):
    _, unravel = ep.ravel({"a": ep.Param(jnp.zeros(3))})
    with pytest.raises(
        TypeError,
        match=r"`unravel\(flat\)`: `flat` must be a 1-d array .*got (list|tuple)\. "
        r"Convert it first: `unravel\(jnp.asarray\(flat\)\)`",
    ):
        unravel(flat)
    assert ep.values(unravel(jnp.asarray(flat)))["['a']"].shape == (3,)


def test_ravel_of_numpy_leaves():
    # Plain numpy floating arrays train too (they have no `.sharding`).
    model = {"p": ep.Param(jnp.array([1.0, 2.0])), "n": np.array([3.0, 4.0], "f4")}
    flat, unravel = ep.ravel(model)
    np.testing.assert_array_equal(flat, [3.0, 4.0, 1.0, 2.0])  # path order
    assert unravel.shardings == (None, None)
    back = unravel(flat + 1)
    np.testing.assert_array_equal(back["n"], [4.0, 5.0])
    assert back["n"].dtype == np.float32


def _draws_model():
    tau = ep.Param(1.5, prior=ep.HalfNormal(2.0))
    return {
        "mu": ep.Param(0.5, prior=ep.Normal(1.0, 2.0)),
        "theta": ep.Param(jnp.array([0.1, -0.2]), prior=ep.Normal(0.0, tau)),
        "x": ep.Fixed(jnp.arange(3.0)),
    }


@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
def test_draws_are_the_values_of_each_vector(batch):
    model = _draws_model()
    flat, unravel = ep.ravel(model)
    n = flat.shape[0]
    samples = jax.random.normal(jax.random.key(0), (*batch, n), flat.dtype)
    got = ep.draws(samples, unravel)
    assert sorted(got) == ["['mu']", "['theta']", "['theta'].prior.sigma"]
    vectors = np.asarray(samples).reshape(-1, n)
    for path, shape in [
        ("['mu']", ()),
        ("['theta']", (2,)),
        ("['theta'].prior.sigma", ()),
    ]:
        assert got[path].shape == (*batch, *shape)
        want = np.stack(
            [np.asarray(ep.values(unravel(jnp.asarray(v)))[path]) for v in vectors]
        ).reshape((*batch, *shape))
        np.testing.assert_allclose(got[path], want, rtol=1e-6)
    with_fixed = ep.draws(samples, unravel, filter_spec=ep.is_wrapper)
    assert sorted(with_fixed) == sorted([*got, "['x']"])
    assert with_fixed["['x']"].shape == (*batch, 3)
    np.testing.assert_array_equal(
        np.asarray(with_fixed["['x']"]).reshape(-1, 3)[-1], [0.0, 1.0, 2.0]
    )


def test_draws_needs_a_last_axis_of_latents():
    _, unravel = ep.ravel(_draws_model())
    msg = "`ep.draws`: `samples` must have a last axis of latents."
    got = outside(
        ERROR_OF,
        """
        model = {"mu": ep.Param(0.5)}
        flat, unravel = ep.ravel(model)
        scalar = error_of(lambda: ep.draws(jnp.zeros(()), unravel))
        print(json.dumps({"scalar": scalar}))
        """,
        devices=1,
    )
    ep.draws(jnp.zeros((1, 4)), unravel)  # (in this process too, for mutmut)
    error_has(got["scalar"], "ValueError", msg)
