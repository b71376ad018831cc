"""Property-based tests: round trips on randomly generated models.

Hypothesis builds models nobody wrote by hand: nested modules (with static
fields), lists, tuples and dicts; Params of random shapes (0-d and size-0
included), float dtypes and priors (every built-in prior, array-valued and
hierarchical hyperparameters, abstract or concrete); Fixed arrays of any dtype
(abstract or concrete); plain integer, bool and float arrays, numpy arrays,
Python scalars and typed PRNG keys.

Each property runs `EQXPURIFY_HYPOTHESIS_EXAMPLES` examples (default 200, what CI
runs); set it lower for a quick local run.
"""

import io
import math
import os
import random
from typing import Any

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import eqxpurify as ep

from .conftest import X64

# 25 examples per property in the default run (it has a time budget); set
# EQXPURIFY_HYPOTHESIS_EXAMPLES=200 (or more) for a longer search.
EXAMPLES = int(os.environ.get("EQXPURIFY_HYPOTHESIS_EXAMPLES", "25"))

property_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

FLOATS = [jnp.float32, jnp.bfloat16, jnp.float16] + ([jnp.float64] if X64 else [])
HYPER_FLOATS = [jnp.float64] if X64 else [jnp.float32]
DATA_DTYPES = FLOATS + [jnp.int32, jnp.int8, jnp.uint8, jnp.uint32, jnp.bool_]
INTS = [jnp.int32, jnp.int8, jnp.uint32] + ([jnp.int64] if X64 else [])


# --- Module classes the strategies nest (module level, generic fields) -------


class Pair(eqx.Module):
    left: Any
    right: Any


class Tagged(eqx.Module):
    child: Any
    tag: str = eqx.field(static=True)
    sizes: tuple[int, ...] = eqx.field(static=True)


class Single(eqx.Module):
    only: Any


# --- Strategies ------------------------------------------------------------


def is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


# Keys are built once: creating one eagerly costs a dispatch.
KEYS = [
    jax.random.key(0),
    jax.random.key(12345),
    jax.random.split(jax.random.key(1), 3),
    jax.random.key(2, impl="rbg"),
    jax.random.split(jax.random.key(3, impl="unsafe_rbg"), (2, 1)),
]

# Few distinct shapes and dtypes: each new (shape, dtype, prior) combination costs
# JAX compilations, so a small menu keeps 200 examples fast while still covering
# 0-d, size-0, 1-d and 2-d arrays.
SHAPES = [(), (1,), (3,), (2, 3), (3, 1), (0,), (0, 2)]
shapes_st = st.sampled_from(SHAPES)
seeds = st.integers(0, 2**32 - 1)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def hyper_shapes(shape: tuple[int, ...]) -> st.SearchStrategy[tuple[int, ...]]:
    """A shape that broadcasts to `shape`: scalar, the full shape, or a suffix."""
    return st.sampled_from(sorted({(), shape, shape[1:]}))


PRIOR_KINDS = [
    "default",
    "normal",
    "lognormal",
    "uniform",
    "halfnormal",
    "halfcauchy",
    "exponential",
    "hierarchical",
]


@st.composite
def priors(draw, shape: tuple[int, ...]) -> ep.AbstractPrior | None:
    kind = draw(st.sampled_from(PRIOR_KINDS))
    if kind == "default":
        return None
    hshape = draw(hyper_shapes(shape))
    dtype = draw(st.sampled_from(HYPER_FLOATS))
    rng = _rng(draw(seeds))

    def hyper(low: float, high: float) -> Any:
        if hshape == () and draw(st.booleans()):
            return float(rng.uniform(low, high))  # a Python scalar
        return jnp.asarray(rng.uniform(low, high, hshape), dtype)

    if kind == "normal":
        return ep.Normal(hyper(-3, 3), hyper(0.1, 3))
    if kind == "lognormal":
        return ep.LogNormal(hyper(0.5, 5), hyper(0.1, 2))
    if kind == "halfnormal":
        return ep.HalfNormal(hyper(0.1, 3))
    if kind == "halfcauchy":
        return ep.HalfCauchy(hyper(0.1, 3))
    if kind == "exponential":
        return ep.Exponential(hyper(0.2, 5))
    if kind == "hierarchical":
        # Hyperparameters that are Params themselves (non-centred).
        mean = ep.Param(hyper(-3, 3), prior=ep.Normal(0.0, 3.0))
        sigma = ep.Param(hyper(0.1, 3), prior=ep.HalfNormal(2.0))
        return ep.Normal(mean, sigma)
    low = rng.uniform(-3, 0, hshape)
    high = low + rng.uniform(0.5, 4, hshape)
    return ep.Uniform(jnp.asarray(low, dtype), jnp.asarray(high, dtype))


@st.composite
def params(draw, abstract: bool) -> ep.Param:
    shape = draw(shapes_st)
    dtype = draw(st.sampled_from(FLOATS))
    prior = draw(priors(shape))
    modes = ["latent", "value"] + (["abstract"] if abstract else [])
    mode = draw(st.sampled_from(modes))
    if mode == "abstract":
        return ep.Param(shape=shape, dtype=dtype, prior=prior)
    z = _rng(draw(seeds)).uniform(-2, 2, shape).astype(np.float32)
    if mode == "latent":
        return ep.Param.from_latent(jnp.asarray(z, dtype), prior=prior)
    # From a physical value inside the prior's support.
    value = (prior or ep.Normal()).forward(jnp.asarray(z))
    return ep.Param(value, prior=prior, shape=shape, dtype=dtype)


def _array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> Any:
    dtype = jnp.dtype(dtype)
    if dtype == jnp.bool_:
        return jnp.asarray(rng.integers(0, 2, shape).astype(bool))
    if jnp.issubdtype(dtype, jnp.integer):
        info = jnp.iinfo(dtype)
        lo, hi = max(int(info.min), -1000), min(int(info.max), 1000)
        return jnp.asarray(rng.integers(lo, hi, shape), dtype)
    return jnp.asarray(rng.standard_normal(shape), dtype)


@st.composite
def fixeds(draw, abstract: bool) -> ep.Fixed:
    shape = draw(shapes_st)
    dtype = draw(st.sampled_from(DATA_DTYPES))
    if abstract and draw(st.integers(0, 4)) == 0:
        return ep.Fixed(shape=shape, dtype=dtype)
    return ep.Fixed(_array(_rng(draw(seeds)), shape, dtype))


@st.composite
def plain_arrays(draw) -> Any:
    shape = draw(shapes_st)
    rng = _rng(draw(seeds))
    kind = draw(st.sampled_from(["int", "float", "bool", "numpy"]))
    if kind == "int":
        return _array(rng, shape, draw(st.sampled_from(INTS)))
    if kind == "float":  # a plain float array trains, as in Equinox
        return _array(rng, shape, draw(st.sampled_from(FLOATS)))
    if kind == "bool":
        return _array(rng, shape, jnp.bool_)
    return rng.integers(-5, 5, shape)


python_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-10, 10, allow_nan=False, width=32),
)


def leaves(abstract: bool, keys: bool) -> st.SearchStrategy[Any]:
    options = [
        params(abstract),
        params(abstract),
        params(abstract),
        fixeds(abstract),
        plain_arrays(),
        python_scalars,
    ]
    if keys:
        options.append(st.sampled_from(KEYS))
    return st.one_of(*options)


def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    names = st.sampled_from(["a", "b", "weight", "bias", "layer_0"])
    return st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(names, children, max_size=3),
        st.builds(Pair, children, children),
        st.builds(Single, children),
        st.builds(
            Tagged,
            children,
            tag=st.sampled_from(["enc", "dec"]),
            sizes=st.lists(st.integers(0, 3), max_size=2).map(tuple),
        ),
    )


@st.composite
def keeping_random_state(draw, strategy: st.SearchStrategy[Any]) -> Any:
    """Draw from `strategy`, leaving Python's global `random` state as it was.

    Under `--jaxtyping-packages=eqxpurify,beartype.beartype`, beartype checks
    container arguments of eqxpurify's functions by sampling an item with the
    global `random` module, which Hypothesis forbids inside strategies.
    """
    state = random.getstate()
    try:
        return draw(strategy)
    finally:
        random.setstate(state)


def models(*, abstract: bool = True, keys: bool = True) -> st.SearchStrategy[Any]:
    """Random models. Always a module at the root, as users write them."""
    tree = st.recursive(leaves(abstract, keys), extend, max_leaves=12)
    root = st.builds(Single, st.lists(tree, min_size=1, max_size=4)) | st.builds(
        Pair, tree, st.lists(tree, max_size=3)
    )
    return keeping_random_state(root)


# --- Helpers ----------------------------------------------------------------


def assert_identical(a: Any, b: Any) -> None:
    """Same structure (static fields included), leaf types, shapes, dtypes, bits."""
    leaves_a, tree_a = jax.tree.flatten_with_path(a)
    leaves_b, tree_b = jax.tree.flatten_with_path(b)
    assert tree_a == tree_b
    for (path, x), (_, y) in zip(leaves_a, leaves_b, strict=True):
        where = jax.tree_util.keystr(path)
        assert type(x) is type(y), where
        if is_key(x):
            assert jax.random.key_impl(x) == jax.random.key_impl(y), where
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        if isinstance(x, jax.Array | np.ndarray | np.generic):
            assert (x.shape, x.dtype) == (y.shape, y.dtype), where
            assert getattr(x, "weak_type", False) == getattr(y, "weak_type", False)
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), where
        else:
            assert x == y, where


def wrapper_nodes(model: Any) -> list[tuple[str, Any]]:
    nodes = jax.tree.flatten_with_path(model, is_leaf=ep.is_wrapper)[0]
    return [(jax.tree_util.keystr(p), n) for p, n in nodes]


def all_params(model: Any) -> list[ep.Param]:
    """Every Param, those in hierarchical priors included, in path order."""
    return list(ep.named_params(model).values())


def trainable_leaves(model: Any) -> list[Any]:
    """The leaves that train: Equinox's `is_inexact_array`, in leaf order."""
    return [x for x in jax.tree.leaves(model) if eqx.is_inexact_array(x)]


def is_concrete(model: Any) -> bool:
    return not any(
        n.is_abstract for _, n in wrapper_nodes(model) if ep.is_wrapper(n)
    ) and not any(p.is_abstract for p in all_params(model))


# --- Properties -------------------------------------------------------------


@pytest.mark.slow
@property_settings
@given(models(abstract=False))
def test_combine_partition_round_trip(model):
    params_, rest = ep.partition(model)
    assert_identical(ep.combine(params_, rest), model)
    # `params` holds exactly the trainable arrays (every latent, nested ones too,
    # and plain floating arrays), in path order; `rest` holds none of them.
    trainable = trainable_leaves(model)
    kept = list(params_.values())
    assert len(kept) == len(trainable)
    assert all(x is y for x, y in zip(kept, trainable, strict=True))
    latents = [p.latent for p in all_params(model)]
    assert {id(x) for x in latents} <= {id(x) for x in kept}
    assert not any(eqx.is_inexact_array(x) for x in jax.tree.leaves(rest))
    assert not any(x is y for x in jax.tree.leaves(rest) for y in trainable)
    # Each Param is named by its own path.
    names = set(params_)
    assert set(ep.named_params(model)) <= names


@pytest.mark.slow
@property_settings
@given(models())
def test_partition_of_abstract_model_names_the_path(model):
    abstract = [path for path, p in ep.named_params(model).items() if p.is_abstract]
    if not abstract:
        ep.partition(model)
        return
    try:
        ep.partition(model)
    except ValueError as e:
        assert f"Param at `{abstract[0]}` is abstract" in str(e)
    else:
        raise AssertionError("partition accepted an abstract model")


@pytest.mark.slow
@property_settings
@given(models(abstract=False))
def test_unravel_ravel_round_trip_keeps_dtypes(model):
    flat, unravel = ep.ravel(model)
    trainable = trainable_leaves(model)
    assert flat.ndim == 1
    assert flat.size == sum(math.prod(x.shape) for x in trainable)
    widest = max([jnp.dtype(jnp.float32)] + [x.dtype for x in trainable], key=len_bits)
    assert flat.dtype == widest
    back = unravel(flat)
    assert_identical(back, model)  # every latent dtype restored, bit for bit
    again, _ = ep.ravel(back)
    assert again.tobytes() == flat.tobytes()


def len_bits(dtype: Any) -> int:
    return jnp.dtype(dtype).itemsize


@pytest.mark.slow
@property_settings
@given(models(), st.integers(0, 2**31 - 1))
def test_normal_and_zeros_touch_only_param_latents(model, seed):
    before, tree = jax.tree.flatten_with_path(model, is_leaf=ep.is_param)
    for out in (ep.normal(model, key=jax.random.key(seed)), ep.zeros(model)):
        after, tree_out = jax.tree.flatten_with_path(out, is_leaf=ep.is_param)
        assert tree_out == tree  # static fields and structure unchanged
        for (path, old), (_, new) in zip(before, after, strict=True):
            where = jax.tree_util.keystr(path)
            if not ep.is_param(old):
                # Fixed arrays, integer arrays, keys, plain arrays, scalars: the
                # very same objects.
                assert new is old, where
                continue
            if any(
                ep.is_param(h) for h in jax.tree.leaves(old.prior, is_leaf=ep.is_param)
            ):
                # A hierarchical prior: its Params get latents too, nothing else.
                assert jax.tree.structure(new.prior) == jax.tree.structure(old.prior)
                for h_old, h_new in zip(
                    jax.tree.leaves(old.prior), jax.tree.leaves(new.prior), strict=True
                ):
                    assert (h_new is h_old) != eqx.is_inexact_array(h_old), where
            else:
                assert new.prior is old.prior, where
            assert isinstance(new.latent, jax.Array), where
            assert (new.latent.shape, new.latent.dtype) == (old.shape, old.dtype)
            assert bool(jnp.all(jnp.isfinite(new.latent))), where
    assert_identical(ep.zeros(model), ep.zeros(ep.normal(model, key=jax.random.key(0))))


def prior_scale(prior: ep.AbstractPrior) -> float:
    """The size of the numbers a prior's `forward` adds and multiplies: the sum
    of its hyperparameters' magnitudes (1 for the default prior)."""
    hypers = [
        h for h in jax.tree.leaves(prior, is_leaf=ep.is_wrapper) if ep.is_wrapper(h)
    ]
    return 1.0 + sum(
        float(np.max(np.abs(np.asarray(h.value, np.float64)), initial=0))
        for h in hypers
    )


def value_tolerance(param: ep.Param) -> dict[str, float]:
    """How far two correct evaluations of `param.value` may differ (eager versus
    jitted: different fusions, different rounding).

    The prior is evaluated in `ct` (at least float32): a few dozen ulps of `ct`,
    relative to the value, and absolute on the prior's scale (where `mean +
    sigma * z` or `low + width * Phi(z)` cancels to near zero, the rounding error
    is that of the terms, not of the result); then one rounding to the Param's
    own dtype, which may fall either side for bf16/f16 (down to a subnormal).
    """
    dtype = jnp.dtype(param.dtype)
    ct = dtype if dtype.itemsize >= 4 else jnp.dtype(jnp.float32)
    compute_eps = float(jnp.finfo(ct).eps)
    own = jnp.finfo(dtype)
    rtol = 64 * compute_eps + (float(own.eps) if dtype.itemsize < 4 else 0.0)
    atol = 64 * compute_eps * prior_scale(param.prior)
    if dtype.itemsize < 4:
        atol += float(own.smallest_subnormal)
    return {"rtol": rtol, "atol": atol}


@pytest.mark.slow
@property_settings
@given(models(abstract=False))
def test_unwrap_of_concrete_model_has_no_wrappers(model):
    assert is_concrete(model)
    out = ep.unwrap(model)
    nodes, tree = jax.tree.flatten(model, is_leaf=ep.is_wrapper)
    out_nodes, out_tree = jax.tree.flatten(out, is_leaf=ep.is_wrapper)
    assert out_tree == tree
    assert not any(ep.is_wrapper(n) for n in out_nodes)
    for node, value in zip(nodes, out_nodes, strict=True):
        if isinstance(node, ep.Param):
            assert (value.shape, value.dtype) == (node.shape, node.dtype)
            expected = np.asarray(node.value, np.float64)
            np.testing.assert_allclose(
                np.asarray(value, np.float64), expected, **value_tolerance(node)
            )
        elif isinstance(node, ep.Fixed):
            assert (value.shape, value.dtype) == (node.shape, node.dtype)
            assert np.asarray(value).tobytes() == np.asarray(node.value).tobytes()
        else:
            assert value is node


def key_aware_serialise(f: Any, x: Any) -> None:
    """`eqx.tree_serialise_leaves` filter spec that also saves typed PRNG keys."""
    if is_key(x):
        x = jax.random.key_data(x)
    eqx.default_serialise_filter_spec(f, x)


def key_aware_deserialise(f: Any, like: Any) -> Any:
    if is_key(like):
        data = eqx.default_deserialise_filter_spec(f, jax.random.key_data(like))
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(like))
    return eqx.default_deserialise_filter_spec(f, like)


def scrambled(model: Any) -> Any:
    """A like-structured template whose every array and scalar is different."""

    def scramble(x: Any) -> Any:
        if is_key(x):
            data = jnp.zeros_like(jax.random.key_data(x))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        if isinstance(x, jax.Array):
            return jnp.zeros_like(x)
        if isinstance(x, np.ndarray):
            return np.zeros_like(x)
        if isinstance(x, bool | int | float):
            return type(x)(not x) if isinstance(x, bool) else type(x)(x + 1)
        return x

    # The latents of `ep.zeros` are a different template than the model's own.
    return jax.tree.map(scramble, ep.zeros(model))


@pytest.mark.slow
@property_settings
@given(models(abstract=False, keys=False))
def test_serialise_round_trip_is_exact(model):
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, model)
    # Into a concrete template, and into an abstract one (every JAX array a
    # `jax.ShapeDtypeStruct`, as `eqx.filter_eval_shape(make_model, ...)` gives).
    abstract = jax.tree.map(
        lambda x: (
            jax.ShapeDtypeStruct(x.shape, x.dtype) if isinstance(x, jax.Array) else x
        ),
        scrambled(model),
    )
    for template in (scrambled(model), abstract):
        buffer.seek(0)
        assert_identical(eqx.tree_deserialise_leaves(buffer, template), model)


@pytest.mark.slow
@property_settings
@given(models(abstract=False))
def test_serialise_round_trip_with_typed_keys(model):
    # Equinox's default filter spec cannot save typed keys (numpy refuses them);
    # this spec stores their key data instead (see the README's "Saving and loading").
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, model, filter_spec=key_aware_serialise)
    buffer.seek(0)
    out = eqx.tree_deserialise_leaves(
        buffer, scrambled(model), filter_spec=key_aware_deserialise
    )
    assert_identical(out, model)


@property_settings
@given(st.integers(0, 2**31 - 1), st.sampled_from(FLOATS), shapes_st, st.data())
def test_prior_inverse_forward_round_trip(seed, dtype, shape, data):
    prior = data.draw(keeping_random_state(priors(shape))) or ep.Normal()
    z = jnp.asarray(_rng(seed).uniform(-2, 2, shape), dtype)
    x = prior.forward(z)
    assert (x.shape, x.dtype) == (z.shape, z.dtype)
    back = prior.inverse(x)
    assert (back.shape, back.dtype) == (z.shape, z.dtype)
    # Low-precision latents lose bits through the physical value; wider ones don't.
    tol = {1: 0.1, 2: 0.1, 4: 1e-3, 8: 1e-9}[jnp.dtype(dtype).itemsize]
    np.testing.assert_allclose(
        np.asarray(back, np.float64), np.asarray(z, np.float64), rtol=tol, atol=tol
    )
