"""A catalogue of bad inputs: each raises an error naming the path or argument and
the fix, and none changes the model it was given.

Every `match=` below checks both halves of a good message: *where* (the path in
the model, or the argument) and *what to do*.
"""

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep
from eqxpurify import freeze, load_values, set_value, unfreeze

NAN = math.nan


class Encoder(eqx.Module):
    layers: list[dict[str, ep.Param]]


class Model(eqx.Module):
    alpha: ep.Param
    encoder: Encoder
    x_obs: ep.Fixed
    counts: jax.Array  # integer data
    grid: np.ndarray  # a mutable NumPy array: must survive every failed call
    key: jax.Array  # a typed PRNG key
    name: str = eqx.field(static=True)

    @ep.unwrapped
    def __call__(self) -> jax.Array:
        h = self.x_obs[:3] @ self.encoder.layers[0]["weight"]
        return self.alpha * jnp.sum(h + self.encoder.layers[1]["bias"])


def template() -> Model:
    """The model as declared: Params abstract, data given."""
    return Model(
        alpha=ep.Param(prior=ep.LogNormal(3.0, 0.1)),
        encoder=Encoder(
            [
                {"weight": ep.Param(shape=(3, 2))},
                {"bias": ep.Param(shape=(2,), prior=ep.Normal(0.0, 0.5))},
            ]
        ),
        x_obs=ep.Fixed(jnp.linspace(0.0, 1.0, 4)),
        counts=jnp.arange(3),
        # Integer data: a floating NumPy array would be trainable (see
        # `test_numpy_floating_leaves_train`).
        grid=np.arange(5),
        key=jax.random.key(0),
        name="model",
    )


def fitted() -> Model:
    return ep.normal(template(), key=jax.random.key(1))


def fingerprint(model: Any) -> list[Any]:
    """Every leaf's path, type, shape, dtype and bytes, and the tree structure."""
    leaves, treedef = jax.tree.flatten_with_path(model)
    out: list[Any] = [treedef]
    for path, leaf in leaves:
        if isinstance(leaf, jax.Array) and jnp.issubdtype(
            leaf.dtype, jax.dtypes.prng_key
        ):
            leaf = jax.random.key_data(leaf)
        if isinstance(leaf, jax.Array | np.ndarray):
            out.append((path, type(leaf), leaf.shape, leaf.dtype, leaf.tobytes()))
        else:
            out.append((path, leaf))
    return out


def raises_and_keeps(
    model: Any,
    call: Callable[[Any], Any],
    error: type[BaseException] | tuple[type[BaseException], ...],
    match: str,
) -> None:
    before = fingerprint(model)
    with pytest.raises(error, match=match):
        call(model)
    assert fingerprint(model) == before, "a failed call changed the model"


# --- Priors: bad hyperparameters --------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: ep.Normal(0.0, -1.0),
            r"`Normal\(sigma=...\)` must be finite and > 0; got -1\.0.*positive",
        ),
        (
            lambda: ep.Normal(0.0, 0.0),
            r"`Normal\(sigma=...\)` must be finite and > 0; got 0\.0.*positive",
        ),
        (
            lambda: ep.Normal(0.0, jnp.array([1.0, NAN])),
            r"`Normal\(sigma=...\)` must be finite and > 0; got \[1\.0, nan\].*"
            r"positive `sigma`",
        ),
        (
            lambda: ep.LogNormal(0.0, 0.1),
            r"`LogNormal\(mean=...\)` must be finite and > 0.*positive `mean`",
        ),
        (
            lambda: ep.LogNormal(3.0, -0.1),
            r"`LogNormal\(sigma=...\)` must be finite and > 0.*positive `sigma`",
        ),
        (
            lambda: ep.Uniform(1.0, 1.0),
            r"`Uniform\(low, high\)` needs low < high.*Swap",
        ),
        (
            lambda: ep.Uniform(0.0, NAN),
            r"`Uniform\(high=...\)` must be finite \(not NaN or inf\); got nan",
        ),
        (
            lambda: ep.Uniform(jnp.array([0.0, 2.0]), jnp.array([1.0, 1.0])),
            r"low=\[0.0, 2.0\], high=\[1.0, 1.0\].*Swap or widen",
        ),
    ],
    ids=[
        "normal-sigma<0",
        "normal-sigma=0",
        "normal-sigma-nan",
        "lognormal-mean=0",
        "lognormal-sigma<0",
        "uniform-low=high",
        "uniform-high-nan",
        "uniform-array-low>high",
    ],
)
def test_bad_prior_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_prior_hyperparameters_of_incompatible_shapes():
    # A mean per element (2,) and a sigma per element (3,) can never broadcast:
    # the prior should say so when built, naming both shapes.
    with pytest.raises(ValueError, match=r"Normal.*\(2,\).*\(3,\)"):
        ep.Normal(jnp.zeros(2), jnp.ones(3))


def test_traced_bad_hyperparameter_fails_at_run_time():
    build = eqx.filter_jit(lambda s: ep.Normal(0.0, s).forward(jnp.ones(2)))
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"positive `sigma`"):
        build(jnp.array(-1.0))


# --- Params and Fixed: wrong shapes, dtypes, values ---------------------------


@pytest.mark.parametrize(
    "make, error, match",
    [
        (
            lambda: ep.Param(shape=(3,), dtype=jnp.int32),
            TypeError,
            r"`ep.Param` needs a floating dtype, got int32.*`ep.Fixed\(...\)`",
        ),
        (
            lambda: ep.Param(jnp.arange(3), dtype=jnp.int8),
            TypeError,
            r"needs a floating dtype, got int8.*`ep.Fixed\(...\)` or a plain field",
        ),
        (
            lambda: ep.Param(jnp.ones(3), shape=(4,)),
            ValueError,
            r"value of shape \(3,\) that does not broadcast to `shape=\(4,\)`",
        ),
        (
            lambda: ep.Param(jnp.ones(3), prior=ep.Normal(jnp.zeros(4), 1.0)),
            ValueError,
            r"hyperparameters have shape \(4,\).*shape \(3,\).*matching `shape=`",
        ),
        (
            lambda: ep.Param(shape=(2, 3), prior=ep.Normal(jnp.zeros(2), 1.0)),
            ValueError,
            r"shape \(2,\).*shape \(2, 3\).*Give the Param a matching `shape=`",
        ),
        (
            lambda: ep.Param(-1.0, prior=ep.LogNormal(3.0, 0.1)),
            ValueError,
            r"outside the support.*LogNormal.*Pass a value inside.*positive",
        ),
        (
            lambda: ep.Param(jnp.array([0.5, 1.5]), prior=ep.Uniform(0.0, 1.0)),
            ValueError,
            r"outside the support.*Uniform.*strictly inside \(low, high\)",
        ),
        (
            lambda: ep.Param(jnp.array([1.0, NAN])),
            ValueError,
            r"not finite.*Pass a value inside the prior's support",
        ),
        (
            lambda: ep.Param(1.0, latent=0.0),
            ValueError,
            r"Pass at most one of `value` and `latent`",
        ),
        (
            lambda: ep.Fixed(),
            ValueError,
            r"`ep.Fixed` needs a `value`, or a `shape=` for an abstract Fixed",
        ),
        (
            lambda: ep.Fixed(jnp.ones(3), shape=(4,)),
            ValueError,
            r"`ep.Fixed` got a value of shape \(3,\) but `shape=\(4,\)`",
        ),
    ],
    ids=[
        "param-int-dtype",
        "param-int-value-and-dtype",
        "param-value-vs-shape",
        "param-value-vs-prior-shape",
        "param-shape-vs-prior-shape",
        "param-outside-lognormal",
        "param-outside-uniform",
        "param-nan-value",
        "param-value-and-latent",
        "fixed-no-value-no-shape",
        "fixed-value-vs-shape",
    ],
)
def test_bad_wrapper_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_value_on_a_uniform_bound_is_accepted():
    # `forward` reaches the bounds in finite precision, so the library must accept
    # its own output: a value on a bound gets a finite latent that maps back to it.
    param = ep.Param(jnp.array([0.0, 0.5, 1.0]), prior=ep.Uniform(0.0, 1.0))
    assert bool(jnp.all(jnp.isfinite(param.latent)))
    np.testing.assert_array_equal(param.value, [0.0, 0.5, 1.0])


def test_nan_latent_is_rejected():
    # `ep.Param(nan)` is refused; a concrete NaN latent should be too, rather than
    # poisoning every loss computed from the model.
    with pytest.raises(ValueError, match=r"latent.*(NaN|finite)"):
        ep.Param.from_latent(jnp.array([0.0, NAN]))


def test_negative_dimension_in_shape():
    with pytest.raises(ValueError, match=r"`ep\.Param`.*-1"):
        ep.Param(shape=(-1,))


def test_traced_shape_names_the_argument():
    # Shapes are static: a traced one must be refused naming `shape`.
    with pytest.raises(TypeError, match=r"`shape`|'shape'"):
        jax.jit(lambda n: ep.Param(shape=(n,)).latent)(3)


def test_traced_value_outside_support_fails_at_run_time():
    # Eagerly `ep.Param(-1.0, prior=LogNormal)` is refused; under jit the same
    # value should not silently become a NaN latent (`ep.set_value` checks it with
    # `eqx.error_if`, and so should the constructor).
    build = eqx.filter_jit(lambda v: ep.Param(v, prior=ep.LogNormal(3.0, 0.1)).latent)
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"outside the support"):
        build(jnp.array(-1.0))


# --- Abstract values used before initialisation -----------------------------


@pytest.mark.parametrize(
    "call, match",
    [
        (
            ep.unwrap,
            r"Param at `alpha` is abstract.*`model = ep.normal\(model, key=key\)`",
        ),
        (
            lambda m: m(),
            r"Param at `alpha` is abstract.*`model = ep.normal\(model, key=key\)`",
        ),
        (
            ep.ravel,
            r"`ep.ravel`.*Param at `alpha` is abstract.*ep.normal\(model, key=key\)`",
        ),
        (
            ep.log_prior,
            r"`ep.log_prior`.*Param at `alpha` is abstract.*ep.zeros\(model\)`",
        ),
        (
            ep.partition,
            r"`ep.partition`.*Param at `alpha` is abstract.*ep.zeros\(model\)`",
        ),
        (
            lambda m: m.alpha.value,
            r"is abstract.*Initialise it .*ep\.normal\(model, key=key\)",
        ),
    ],
    ids=["unwrap", "call", "ravel", "log_prior", "partition", "value"],
)
def test_abstract_param_used(call, match):
    raises_and_keeps(template(), call, ValueError, match)


def test_abstract_param_deep_in_the_model_is_named_by_path():
    model = eqx.tree_at(
        lambda m: m.encoder.layers[1]["bias"], fitted(), ep.Param(shape=(2,))
    )
    raises_and_keeps(
        model,
        ep.ravel,
        ValueError,
        r"""`encoder.layers\[1\]\[['"]bias['"]\]` is abstract.*ep.zeros""",
    )


def test_abstract_fixed_used():
    model = eqx.tree_at(lambda m: m.x_obs, fitted(), ep.Fixed(shape=(4,)))
    raises_and_keeps(
        model,
        lambda m: m(),
        ValueError,
        r"Fixed at `x_obs` is abstract.*`ep.set_value\(model, where, array\)`",
    )


# --- Vectors of the wrong length, rank or dtype -----------------------------


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
def test_unravel_bad_vector(vector, error, match):
    model = fitted()
    _, unravel = ep.ravel(model)
    # A wrong rank or dtype is caught first by jaxtyping's check of the
    # `Float[Array, " n"]` annotation (on in this suite), naming `flat`.
    annotated = vector.ndim == 1 and jnp.issubdtype(vector.dtype, jnp.floating)
    in_suite = (error, match) if annotated else (TypeError, r"parameter 'flat'")
    raises_and_keeps(model, lambda _: unravel(vector), *in_suite)
    # The library's own message, as users without jaxtyping's hook see it.
    check = _unchecked(ep.Unravel.__call__)
    raises_and_keeps(model, lambda _: check(unravel, vector), error, match)


def test_unravel_bad_vector_under_jit():
    _, unravel = ep.ravel(fitted())
    with pytest.raises(ValueError, match=r"length 9 .*got shape \(10,\)"):
        jax.jit(unravel)(jnp.zeros(10))


# --- Partition halves and models mixed up -----------------------------------


def test_combine_halves_of_different_models():
    params, _ = ep.partition(fitted())
    other = eqx.tree_at(lambda m: m.encoder.layers, fitted(), [])
    _, rest = ep.partition(other)
    with pytest.raises(ValueError, match=r"same `ep.partition\(model\)` call"):
        ep.combine(params, rest)


@pytest.mark.parametrize(
    "call",
    [ep.unwrap, ep.ravel, ep.partition, ep.values, ep.summary],
    ids=["unwrap", "ravel", "partition", "values", "summary"],
)
def test_model_function_on_rest_half(call):
    # A common slip: passing a half of `ep.partition` where the model belongs,
    # instead of `ep.combine(params, rest)`. The `params` half is a plain dict of
    # arrays (a valid pytree); the `rest` half is refused, naming the fix.
    _, rest = ep.partition(fitted())
    raises_and_keeps(
        rest, call, TypeError, r"the `rest` half of `ep\.partition`.*ep\.combine"
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda m: ep.normal(m, key=jax.random.key(0)),
        ep.ravel,
    ],
    ids=["normal", "ravel"],
)
def test_model_class_instead_of_instance(call):
    # `ep.normal(Model, key=key)` silently returns the class; it should say that
    # `model` must be an instance.
    with pytest.raises(TypeError, match=r"`model`.*class"):
        call(Model)


# --- Surgery by path --------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda m: set_value(m, "encoder.layers[0]['weight']", jnp.zeros((2, 3))),
            ValueError,
            r"Param at `encoder.layers\[0\]\[.weight.\]` has shape \(3, 2\).*"
            r"Pass a value of shape \(3, 2\)",
        ),
        (
            lambda m: set_value(
                m, "encoder.layers[0]['weight']", jnp.zeros((3, 2), jnp.float16)
            ),
            TypeError,
            r"has dtype float(32|64), but the value has dtype float16.*Cast it first",
        ),
        (
            lambda m: set_value(m, "alhpa", 2.0),
            ValueError,
            r"no `ep.Param` or `ep.Fixed` at `alhpa`.*Closest existing paths: `alpha`",
        ),
        (
            lambda m: set_value(m, "counts", jnp.zeros(3, jnp.int32)),
            ValueError,
            r"`counts` is a plain leaf.*`eqx.tree_at`",
        ),
        (
            lambda m: set_value(m, lambda t: t.alpha, -1.0),
            ValueError,
            r"Param at `alpha` is outside the support.*Pass a value inside",
        ),
        (
            lambda m: set_value(m, lambda t: t.alpha.value, 2.0),
            ValueError,
            r"`where`.*select a Param itself, not its `.value`",
        ),
        (
            lambda m: load_values(m, {"alpha": 2.0, "x_ob": jnp.zeros(4)}),
            ValueError,
            r"`ep.load_values`.*at `x_ob`.*Closest existing paths: `x_obs`",
        ),
        (
            lambda m: load_values(m, {"alpha": 2.0}),
            ValueError,
            r"no value given for 2 Param\(s\).*`encoder.layers\[0\].*`strict=False`",
        ),
        (
            lambda m: freeze(m, "encoder.layer"),
            ValueError,
            r"`ep.freeze`.*`encoder.layer`.*Closest existing paths: `encoder.layers",
        ),
        (
            lambda m: unfreeze(m, "x_obs"),
            ValueError,
            r"Fixed at `x_obs` was not made by `ep.freeze`.*Pass `prior=`",
        ),
    ],
    ids=[
        "set_value-shape",
        "set_value-dtype",
        "set_value-unknown-path",
        "set_value-plain-leaf",
        "set_value-outside-support",
        "set_value-selects-value",
        "load_values-unknown-path",
        "load_values-missing",
        "freeze-unknown-path",
        "unfreeze-never-frozen",
    ],
)
def test_bad_surgery(call, error, match):
    raises_and_keeps(fitted(), call, error, match)


def test_set_value_traced_outside_support_fails_at_run_time():
    model = fitted()
    before = fingerprint(model)
    step = eqx.filter_jit(lambda m, v: set_value(m, "alpha", v))
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"`alpha` is outside"):
        step(model, jnp.asarray(-1.0, model.alpha.dtype))  # a typed array
    assert fingerprint(model) == before


def test_set_value_traced_weak_scalar_outside_support_fails_at_run_time():
    model = fitted()
    step = eqx.filter_jit(lambda m, v: set_value(m, "alpha", v))
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"`alpha` is outside"):
        step(model, jnp.array(-1.0))


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


# --- Wrappers used as arrays; wrapper fields holding something else --------

_AS_ARRAY = (
    r"is not defined on `ep\.{kind}`.*read its array with `\.value`.*@ep\.unwrapped"
)


@pytest.mark.parametrize(
    "call, kind",
    [
        (lambda m: m.alpha + 1.0, "Param"),
        (lambda m: 2.0 * m.alpha, "Param"),
        (lambda m: m.alpha * m.x_obs, "Param"),
        (lambda m: m.x_obs[0], "Fixed"),
        (lambda m: jnp.sin(m.alpha), "Param"),
        (lambda m: jnp.sum(m.x_obs), "Fixed"),
        (lambda m: np.asarray(m.x_obs), "Fixed"),
        (lambda m: float(m.alpha), "Param"),
    ],
    ids=["add", "rmul", "mul-wrappers", "index", "jnp", "jnp-fixed", "numpy", "float"],
)
def test_wrapper_used_as_an_array(call, kind):
    raises_and_keeps(fitted(), call, TypeError, _AS_ARRAY.format(kind=kind))


@pytest.mark.parametrize(
    "call", [ep.partition, ep.unwrap, ep.summary, ep.ravel, ep.flatten]
)
def test_wrapper_field_holding_a_number(call):
    model = eqx.tree_at(lambda m: m.alpha, fitted(), 5.0)
    raises_and_keeps(
        model,
        call,
        TypeError,
        r"the field `alpha` is declared `Param` but holds a float.*"
        r"`ep.set_value\(model, where, value\)`",
    )


@pytest.mark.parametrize("call", [ep.partition, ep.unwrap, ep.summary])
def test_param_latent_that_is_not_an_array(call):
    model = eqx.tree_at(lambda m: m.alpha.latent, fitted(), 5.0)
    raises_and_keeps(
        model,
        call,
        TypeError,
        r"the Param at `alpha` has a latent of type float, not an array.*"
        r"`ep.set_value\(model, where, value\)`",
    )


@pytest.mark.parametrize("call", [ep.values, ep.named_params])
def test_values_of_wrapper_field_holding_a_number(call):
    model = eqx.tree_at(lambda m: m.alpha, fitted(), 5.0)
    raises_and_keeps(model, call, TypeError, r"field `alpha` is declared `Param`")


def test_fixed_storage_converted_to_float():
    # What optimistix with `y0=model` or a blanket `astype` does to a model.
    def to_float(x: Any) -> Any:
        if eqx.is_array(x) and not jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jnp.asarray(x, jnp.float32)
        return x

    model = jax.tree.map(to_float, fitted())
    for call in (ep.unwrap, lambda m: m.x_obs.value):
        raises_and_keeps(
            model,
            call,
            ValueError,
            r"Fixed.*stores float(32|64) data as uint(32|64), but its storage now "
            r"has dtype float32.*`params, rest = ep.partition\(model\)`",
        )


def test_custom_prior_with_a_plain_floating_field():
    class Scaled(ep.AbstractPrior):
        scale: jax.Array

        def forward(self, z):
            return self.scale * z

        def inverse(self, x):
            return x / self.scale

        def log_prob(self, x):
            return -0.5 * (x / self.scale) ** 2

    with pytest.raises(
        TypeError, match=r"`Scaled.scale` is a plain floating array.*`ep.Fixed\(...\)`"
    ):
        Scaled(jnp.ones(2))


def test_wrappers_are_closed_to_subclassing():
    from eqxpurify._wrapper_base import AbstractWrapper

    with pytest.raises(TypeError, match=r"`ep.AbstractWrapper` is closed"):

        class Mine(AbstractWrapper):  # pyright: ignore[reportUnusedClass]
            pass


# --- Intermediates ----------------------------------------------------------


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


def test_wrapper_in_a_lax_call_fails_loudly():
    # `lax.*` functions reject any object that is not an array before our code can
    # run, with JAX's own error (docs/typing.md shows the fix); it never computes.
    with pytest.raises((TypeError, ValueError), match=r"__jax_array__|valid JAX type"):
        jax.lax.sin(fitted().alpha)
