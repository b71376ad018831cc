from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import eqxpurify as ep

from .conftest import raises_and_keeps, tree_allclose


class Decay(eqx.Module):
    """A small physics-style model: y = amplitude * exp(-rate * t) + offset."""

    amplitude: ep.Param
    rate: ep.Param
    offset: ep.Param
    t: ep.Fixed
    mask: jax.Array  # integer data, never trained
    name: str = eqx.field(static=True)

    @ep.unwrapped
    def __call__(self):
        y = self.amplitude * jnp.exp(-self.rate[:, None] * self.t) + self.offset
        return jnp.where(self.mask > 0, y, 0.0)


def make_decay(key):
    model = Decay(
        amplitude=ep.Param(2.0, prior=ep.LogNormal(2.0, 0.5)),
        # An array-valued prior hyperparameter: one prior mean per rate.
        rate=ep.Param(prior=ep.LogNormal(jnp.array([0.5, 1.0, 2.0]), 0.3)),
        offset=ep.Param(prior=ep.Normal(0.0, 0.1)),
        t=ep.Fixed(jnp.linspace(0.0, 3.0, 20)),
        mask=jnp.ones(20, jnp.int32),
        name="decay",
    )
    return ep.normal(model, key=key)


def _ids(tree):
    return {id(x) for x in jax.tree.leaves(tree)}


def test_partition_holds_exactly_the_latents(getkey):
    model = make_decay(getkey())
    params, rest = ep.partition(model)
    assert type(params) is dict
    assert list(params) == ["amplitude", "rate", "offset"]  # path order
    assert all(isinstance(x, jax.Array) for x in params.values())
    assert params["amplitude"] is model.amplitude.latent
    assert params["rate"] is model.rate.latent
    assert params["offset"] is model.offset.latent
    assert isinstance(rest, ep.Rest)
    # `rest` holds only the arrays that never train, by identity.
    rest_leaves = jax.tree.leaves(rest)
    assert not any(eqx.is_inexact_array(x) for x in rest_leaves)
    assert _ids(rest) == _ids(
        (
            model.amplitude.prior,
            model.rate.prior,
            model.offset.prior,
            model.t,
            model.mask,
        )
    )
    assert id(model.t.stored) in _ids(rest)
    assert id(model.rate.prior.mean.stored) in _ids(rest)
    assert id(model.mask) in _ids(rest)
    assert not _ids(params) & _ids(rest)
    assert ep.combine(params, rest).name == "decay"


def test_is_trainable_is_eqx_is_inexact_array(getkey):
    model = make_decay(getkey())
    leaves = [
        *jax.tree.leaves(model),
        jnp.zeros(2, jnp.bfloat16),
        jnp.zeros(2, jnp.complex64),
        np.zeros(2, np.float32),
        np.float32(1.0),
        jax.random.key(0),
        1.0,
        "x",
        None,
    ]
    for leaf in leaves:
        assert ep.is_trainable(leaf) == eqx.is_inexact_array(leaf), leaf
    trainable = [x for x in jax.tree.leaves(model) if ep.is_trainable(x)]
    assert _ids(trainable) == _ids(ep.partition(model)[0])


def test_partition_names_params_by_their_own_path(getkey):
    """Plain floating arrays (an MLP beside the physics) and Params nested in a
    prior train too, each named by its path."""
    mu = ep.Param(0.5, prior=ep.Normal(0.0, 5.0))
    model = {
        "theta": ep.Param(shape=(2,), prior=ep.Normal(mu, 1.0)),
        "mlp": eqx.nn.Linear(2, 1, key=getkey()),
        "t": ep.Fixed(jnp.arange(3.0)),
        "n": jnp.arange(3),
    }
    model = ep.normal(model, key=getkey())
    params, rest = ep.partition(model)
    assert list(params) == [
        "['mlp'].weight",
        "['mlp'].bias",
        "['theta']",
        "['theta'].prior.mean",
    ]
    assert params["['mlp'].weight"] is model["mlp"].weight
    assert params["['theta'].prior.mean"] is model["theta"].prior.mean.latent
    assert tree_allclose(ep.combine(params, rest), model, rtol=0, atol=0)


def test_combine_partition_round_trip(getkey):
    model = make_decay(getkey())
    rebuilt = ep.combine(*ep.partition(model))
    assert tree_allclose(rebuilt, model, rtol=0, atol=0)
    assert jax.tree.structure(rebuilt) == jax.tree.structure(model)


def test_combine_casts_updated_arrays_back_to_their_dtype(getkey):
    model = make_decay(getkey())
    params, rest = ep.partition(model)
    with jax.numpy_dtype_promotion("standard"):
        updated = {k: v.astype(jnp.float16) for k, v in params.items()}
    rebuilt = ep.combine(updated, rest)
    assert rebuilt.rate.latent.dtype == model.rate.latent.dtype
    np.testing.assert_array_equal(
        rebuilt.rate.latent, updated["rate"].astype(model.rate.latent.dtype)
    )


def test_partition_abstract_model():
    model = Decay(
        ep.Param(shape=()),
        ep.Param(shape=(3,)),
        ep.Param(shape=()),
        ep.Fixed(jnp.zeros(5)),
        jnp.ones(5, jnp.int32),
        "x",
    )
    with pytest.raises(
        ValueError,
        match=r"`ep\.partition`: the Param at `amplitude` is abstract.*ep\.normal",
    ):
        ep.partition(model)
    model = eqx.tree_at(lambda m: m.amplitude, model, ep.Param(1.0))
    with pytest.raises(ValueError, match=r"the Param at `rate` is abstract"):
        ep.partition(model)


def test_combine_mismatched_structures(getkey):
    model = make_decay(getkey())
    params, rest = ep.partition(model)
    with pytest.raises(TypeError, match="rest"):
        ep.combine(params, {"a": 1})  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="params"):
        ep.combine(list(params.values()), rest)  # pyright: ignore[reportArgumentType]
    missing = {k: v for k, v in params.items() if k != "offset"}
    with pytest.raises(ValueError, match=r"missing `offset`.*same `ep\.partition"):
        ep.combine(missing, rest)
    extra = {**params, "scale": jnp.zeros(())}
    with pytest.raises(ValueError, match=r"unknown `scale`.*same `ep\.partition"):
        ep.combine(extra, rest)
    _, other_rest = ep.partition({"a": ep.Param(1.0)})
    with pytest.raises(ValueError, match=r"missing `\['a'\]`; unknown `amplitude`"):
        ep.combine(params, other_rest)


@pytest.mark.slow
def test_partition_under_jit_grad_vmap(getkey):
    model = make_decay(getkey())
    params, rest = ep.partition(model)

    def loss(p):
        return jnp.sum(ep.combine(p, rest)() ** 2)

    grads = eqx.filter_grad(loss)(params)
    # JAX rebuilds dicts with sorted keys; no Fixed, no mask.
    assert sorted(grads) == ["amplitude", "offset", "rate"]
    assert grads["rate"].shape == (3,)
    assert all(jnp.all(g != 0) for g in grads.values())
    assert tree_allclose(jax.grad(loss)(params), grads, rtol=0, atol=0)
    jitted = eqx.filter_jit(eqx.filter_grad(loss))(params)
    assert tree_allclose(jitted, grads, rtol=1e-5)
    jitted = jax.jit(jax.grad(loss))(params)
    assert tree_allclose(jitted, grads, rtol=1e-5)

    # vmap over an ensemble of latents: partition of a batched model.
    keys = jax.random.split(getkey(), 4)
    ensemble = eqx.filter_vmap(lambda k: ep.normal(model, key=k))(keys)
    batched_params, batched_rest = ep.partition(ensemble)
    assert {k: v.shape for k, v in batched_params.items()} == {
        "amplitude": (4,),
        "rate": (4, 3),
        "offset": (4,),
    }
    outs = eqx.filter_vmap(lambda p: ep.combine(p, rest)())(batched_params)
    assert outs.shape == (4, 3, 20)
    np.testing.assert_allclose(
        outs[2], ep.combine(jax.tree.map(lambda x: x[2], batched_params), rest)()
    )
    assert not any(eqx.is_inexact_array(x) for x in jax.tree.leaves(batched_rest))
    # The data is unchanged, broadcast along the ensemble axis by `filter_vmap`.
    for batched, single in zip(jax.tree.leaves(batched_rest), jax.tree.leaves(rest)):
        assert batched.dtype == single.dtype
        np.testing.assert_array_equal(
            batched, jnp.broadcast_to(single, (4, *single.shape))
        )


@pytest.mark.slow
def test_adamw_training_leaves_fixed_and_hyperparameters_untouched(
    getkey, standard_promotion
):
    """Issue 2, item 2: 50 adamw steps move every latent and nothing else."""
    model = make_decay(getkey())
    target = make_decay(getkey())()
    params, rest = ep.partition(model)
    before_rest = jax.tree.map(np.array, jax.tree.leaves(rest))

    optim = optax.adamw(1e-2, weight_decay=0.1)
    opt_state = optim.init(params)

    @eqx.filter_jit
    def step(params, opt_state):
        def loss(p):
            return jnp.mean((ep.combine(p, rest)() - target) ** 2)

        grads = eqx.filter_grad(loss)(params)
        updates, opt_state = optim.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state

    for _ in range(50):
        params, opt_state = step(params, opt_state)

    trained = ep.combine(params, rest)
    _, trained_rest = ep.partition(trained)
    after_rest = jax.tree.leaves(trained_rest)
    assert len(after_rest) == len(before_rest) > 0
    for a, b in zip(after_rest, before_rest):
        np.testing.assert_array_equal(np.asarray(a), b)  # bit for bit
        assert np.asarray(a).dtype == b.dtype
    # Explicitly: the Fixed grid and the array-valued prior means.
    assert trained.t.stored.tobytes() == model.t.stored.tobytes()
    np.testing.assert_array_equal(trained.t.value, model.t.value)
    mean, old_mean = trained.rate.prior.mean, model.rate.prior.mean
    assert mean.stored.tobytes() == old_mean.stored.tobytes()
    np.testing.assert_array_equal(mean.value, old_mean.value)
    old_params = ep.partition(model)[0]
    assert sorted(old_params) == sorted(params)
    for name, old in old_params.items():
        new = params[name]
        assert np.all(np.asarray(old) != np.asarray(new))  # every element moved


# --- `rest` as a value: pickled, and as a jitted step's argument --------------------


class _Scaled(eqx.Module):
    """A model whose non-array leaves (an activation, a static option) matter."""

    w: ep.Param
    t: ep.Fixed
    activation: Callable
    power: int = eqx.field(static=True)

    @ep.unwrapped
    def __call__(self):
        return jnp.sum(self.activation(self.w * self.t) ** self.power)


def _scaled(activation, power):
    return _Scaled(
        ep.Param(0.5), ep.Fixed(jnp.linspace(-1.0, 1.0, 5)), activation, power
    )


def test_rest_argument_retraces_for_non_array_leaves():
    """Two models that differ only in a non-array leaf (an activation function, a
    static option) give `rest`s of different layouts, so a jitted step taking
    `rest` as an argument runs each model's own function, never a stale trace."""
    traces = []

    @jax.jit
    def loss(params, rest):
        traces.append(None)
        return ep.combine(params, rest)()

    for a, b in [((jnp.tanh, 1), (jax.nn.relu, 1)), ((jnp.tanh, 1), (jnp.tanh, 2))]:
        params_a, rest_a = ep.partition(_scaled(*a))
        params_b, rest_b = ep.partition(_scaled(*b))
        assert rest_a.layout != rest_b.layout
        assert jax.tree.structure(rest_a) != jax.tree.structure(rest_b)
        np.testing.assert_allclose(loss(params_a, rest_a), _scaled(*a)(), rtol=1e-6)
        np.testing.assert_allclose(loss(params_b, rest_b), _scaled(*b)(), rtol=1e-6)
        assert not np.allclose(loss(params_a, rest_a), loss(params_b, rest_b))
    assert len(traces) == 3  # tanh/1, relu/1, tanh/2: each traced once
    params_c, rest_c = ep.partition(_scaled(jnp.tanh, 1))  # equal: no new trace
    loss(params_c, rest_c)
    assert len(traces) == 3


def test_pickled_rest_works():
    """`pickle` of `rest` (and `params`) gives a `rest` that combines back into the
    model, equal to the original's layout (so a jitted step does not retrace)."""
    import math
    import pickle

    model = {
        "h": ep.Param(
            1.5, prior=ep.LogNormal(ep.Param(1.0, prior=ep.HalfNormal(1.0)), 0.5)
        ),
        "t": ep.Fixed(jnp.arange(3.0)),
        "w": jnp.ones(2),
        "n": None,
        "f": math.sqrt,
    }
    params, rest = ep.partition(model)
    params2, rest2 = pickle.loads(pickle.dumps((params, rest)))
    assert rest2.layout == rest.layout and hash(rest2.layout) == hash(rest.layout)
    assert jax.tree.structure(rest2) == jax.tree.structure(rest)
    assert tree_allclose(ep.combine(params2, rest2), model)
    step = jax.jit(lambda p, r: ep.log_prior(ep.combine(p, r), allow_plain=True))
    assert step(params, rest) == step(params2, rest2)
    assert step._cache_size() == 1


@pytest.mark.slow
def test_partition_from_threads_over_many_structures(monkeypatch):
    """`ep.partition` from several threads at once over more model structures than
    its caches hold (64) neither fails nor mixes up structures."""
    import concurrent.futures
    import time

    import eqxpurify._structure as structure

    def yielding_next(iterator, *default):
        item = next(iterator, *default)
        time.sleep(1e-4)  # other threads run once a cache has picked what to drop
        return item

    monkeypatch.setattr(structure, "next", yielding_next, raising=False)
    models = [{f"p{n}": ep.Param(float(n))} for n in range(100)]

    def run(i):
        name = f"['p{i % len(models)}']"
        params, rest = ep.partition(models[i % len(models)])
        return list(params) == [name] and rest.layout.names == (name,)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert all(pool.map(run, range(1000)))
    assert len(structure._STRUCTURES) <= 64 and len(structure._CHECKED) <= 64


# `ep.combine` refuses what does not fit `rest`: the path and the expected shape,
# eagerly and under `jax.jit` (shapes are static: checked at trace time).


def _combine_model():
    return {"a": ep.Param(jnp.zeros(3)), "b": ep.Param(1.0)}


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("bad", [jnp.zeros(4), jnp.zeros((2, 3)), jnp.zeros(())])
def test_combine_refuses_a_wrong_shape(jit, bad):
    model = _combine_model()
    params, rest = ep.partition(model)
    before = dict(params)
    wrong = {**params, "['a']": bad}
    combine = jax.jit(ep.combine) if jit else ep.combine
    shape = str(bad.shape).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(
        ValueError,
        match=rf"`ep.combine`: the entry `\['a'\]` has shape {shape}, but the "
        r"model's trainable array there has shape \(3,\).*same `ep.partition\(model\)`",
    ):
        combine(wrong, rest)
    assert tree_allclose(params, before)  # nothing was changed
    assert tree_allclose(ep.combine(params, rest), model)


@pytest.mark.parametrize("bad", [None, jnp.arange(3), np.arange(3), True, "x"])
def test_combine_refuses_none_and_non_floating_entries(bad):
    params, rest = ep.partition(_combine_model())
    with pytest.raises(
        ValueError,
        match=r"`ep.combine`: the entry `\['a'\]` (is None|is a \w+|has dtype \w+), "
        r"but the model's trainable array there has shape \(3,\) and dtype",
    ):
        ep.combine({**params, "['a']": bad}, rest)
    # A floating update of another width is cast back, as before.
    narrow = {k: v.astype(jnp.bfloat16) for k, v in params.items()}
    assert ep.combine(narrow, rest)["a"].latent.dtype == params["['a']"].dtype


def test_combine_refuses_params_that_do_not_fit_rest(getkey):
    model = _combine_model()
    params, rest = ep.partition(model)
    other = {"a": ep.Param(jnp.zeros(5)), "b": ep.Param(jnp.zeros(2))}
    other_params, _ = ep.partition(other)
    with pytest.raises(ValueError, match=r"arrays of another model need that model"):
        jax.jit(ep.combine)(other_params, rest)
    with pytest.raises(ValueError, match=r"missing `\['b'\]`; unknown `c`"):
        ep.combine({"['a']": params["['a']"], "c": jnp.zeros(())}, rest)
    # A stacked model's halves mapped together: `rest` is batched too, and fits.
    keys = jax.random.split(getkey(), 3)
    stacked = eqx.filter_vmap(lambda k: ep.normal(model, key=k))(keys)
    s_params, s_rest = ep.partition(stacked)
    values = eqx.filter_vmap(lambda p, r: ep.values(ep.combine(p, r)))(s_params, s_rest)
    assert values["['a']"].shape == (3, 3)


class _CountsPrior(ep.AbstractPrior):
    """A custom prior with a non-wrapper field: an integer array, or a sub-prior."""

    shift: ep.Fixed
    extra: object

    def __init__(self, extra):
        self.shift, self.extra = ep.Fixed(1.0), extra

    @ep.unwrapped
    def forward(self, z):
        return z + self.shift

    @ep.unwrapped
    def inverse(self, x):
        return x - self.shift

    @ep.unwrapped
    def log_prob(self, x):
        return -0.5 * (x - self.shift) ** 2


def test_split_keeps_exactly_the_constant_pieces_whole():
    # `split_model` moves constant Fixed data and constant priors as one piece;
    # anything holding a trainable, abstract or frozen-from-a-Param part is walked.
    from eqxpurify._filters import _constant_test

    frozen = ep.freeze(
        {"x": ep.Param(1.0, prior=ep.Normal(2.0, 3.0))}, lambda m: m["x"]
    )
    cases = [
        (ep.Fixed(jnp.ones(2)), True),
        (ep.Fixed(jnp.arange(3)), True),
        (ep.Fixed(shape=(2,)), False),  # abstract: nothing stored yet
        (frozen["x"], False),  # frozen from a Param: it has a prior
        (ep.Param(1.0), False),
        (ep.Normal(0.0, 2.0), True),
        (ep.Normal(ep.Param(0.5), 1.0), False),  # hierarchical
        (_CountsPrior(jnp.arange(3)), True),  # integer arrays do not train
        (_CountsPrior(ep.Normal(0.0, 1.0)), True),  # a constant sub-prior
        (_CountsPrior(ep.Normal(ep.Param(0.0), 1.0)), False),
        (jnp.ones(2), False),
        ({"a": ep.Fixed(1.0)}, False),  # containers are walked into
        (None, False),
    ]
    for node, whole in cases:
        # a fresh predicate, and one that has seen every case before (memo by id)
        assert _constant_test()[0](node) is whole, node
    constant = _constant_test()[0]
    for _ in range(2):
        assert [constant(node) for node, _ in cases] == [w for _, w in cases]


@pytest.mark.parametrize(
    "model, path, shape",
    [
        ({"b": [ep.Param(shape=(2, 3))]}, "['b'][0]", "(2, 3)"),
        ({"a": {"b": {"c": ep.Param(shape=(4,))}}}, "['a']['b']['c']", "(4,)"),
        ({"w": ep.Param(shape=(5,))}, "['w']", "(5,)"),
    ],
)
def test_partition_of_an_abstract_param_names_its_path(model, path, shape):
    raises_and_keeps(
        lambda: ep.partition(model),
        model,
        ValueError,
        f"`ep.partition`: the Param at `{path}` is abstract",
        f"(shape {shape}, no value yet).",
        "Initialise it first: `model = ep.normal(model, key=key)`",
        "or `model = ep.zeros(model)`.",
    )


def test_numpy_floating_leaves_train():
    model = {"a": ep.Param(1.0), "g": np.linspace(0.0, 1.0, 3, dtype=np.float32)}
    params, rest = ep.partition(model)
    assert list(params) == ["['a']", "['g']"]
    np.testing.assert_array_equal(ep.combine(params, rest)["g"], model["g"])
    latents, unflatten = ep.flatten(model)
    assert len(latents) == 2
    flat, unravel = ep.ravel(model)
    assert flat.shape == (4,)
    np.testing.assert_array_equal(unravel(flat)["g"], model["g"])
