"""`set_value`, `eqx.tree_at` on wrappers, `freeze` and `unfreeze`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import eqxpurify as ep
from eqxpurify import freeze, set_value, unfreeze, values, wrap

from .conftest import FLOAT_DTYPES, raises_and_keeps, tree_allclose
from .models import net


class Decay(eqx.Module):
    amplitude: ep.Param
    rate: ep.Param
    t: ep.Fixed

    @ep.unwrapped
    def __call__(self):
        return self.amplitude * jnp.exp(-self.rate * self.t)


def make_decay(dtype=jnp.float32):
    return Decay(
        amplitude=ep.Param(
            jnp.array([1.0, 2.0], dtype), prior=ep.Normal(jnp.array([1.0, 2.0]), 0.5)
        ),
        rate=ep.Param(jnp.asarray(3.0, dtype), prior=ep.LogNormal(3.0, 0.1)),
        t=ep.Fixed(jnp.array([[0.0], [1.0]], dtype)),
    )


@pytest.fixture(scope="module", params=FLOAT_DTYPES, ids=lambda d: jnp.dtype(d).name)
def decay(request):
    return make_decay(request.param)


# ---------------------------------------------------------------------------
# set_value


def test_set_value_stores_prior_inverse(decay):
    dtype = decay.rate.dtype
    new = set_value(decay, lambda m: m.rate, 2.5)
    prior = decay.rate.prior
    expected = prior.inverse(jnp.asarray(2.5, dtype))
    np.testing.assert_array_equal(new.rate.latent, expected)
    np.testing.assert_allclose(new.rate.value, 2.5, rtol=1e-6)
    assert new.rate.dtype == dtype and new.rate.prior is prior
    # The same through a path string, and for a per-element prior.
    amp = jnp.array([0.5, 3.0], dtype)
    new = set_value(new, "amplitude", amp)
    np.testing.assert_allclose(new.amplitude.latent, [-1.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(new.amplitude.value, amp, rtol=1e-6)
    np.testing.assert_allclose(new.rate.value, 2.5, rtol=1e-6)  # untouched
    # Still runnable, same structure (no recompilation).
    assert jax.tree.structure(new) == jax.tree.structure(decay)
    np.testing.assert_allclose(new()[0], amp, rtol=1e-6)


def test_set_value_fixed_and_abstract(decay):
    t = jnp.array([[2.0], [3.0]], decay.t.dtype)
    new = set_value(decay, "t", t)
    np.testing.assert_array_equal(new.t.value, t)
    abstract = eqx.tree_at(lambda m: m.t, decay, ep.Fixed(shape=(2, 1), dtype=t.dtype))
    with pytest.raises(
        ValueError, match=r"^`ep\.unwrap`: the Fixed at `t` is abstract"
    ):
        abstract()
    filled = set_value(abstract, lambda m: m.t, t)
    assert tree_allclose(filled, new, rtol=0, atol=0)
    # An abstract Param is filled too.
    shapes = ep.shapes(decay)
    filled = set_value(shapes, "rate", 2.5)
    np.testing.assert_allclose(filled.rate.value, 2.5, rtol=1e-6)


def test_set_value_shape_error_names_path(decay):
    with pytest.raises(
        ValueError,
        match=r"`ep.set_value`: the Param at `amplitude` has shape \(2,\), but the "
        r"value has shape \(3,\)\. Pass a value of shape \(2,\)\.",
    ):
        set_value(decay, "amplitude", jnp.ones(3, decay.amplitude.dtype))
    # A Fixed keeps its shape: a scalar in place of a grid would broadcast.
    before = jax.tree.leaves(decay)
    for value in (1.0, jnp.ones(3, decay.t.dtype), jnp.ones((2, 2), decay.t.dtype)):
        with pytest.raises(
            ValueError,
            match=r"Fixed at `t` has shape \(2, 1\), but the value has shape .*"
            r"`reshape=True`",
        ):
            set_value(decay, "t", value)
    assert all(a is b for a, b in zip(jax.tree.leaves(decay), before))
    # It takes data of a new shape (new observations) when asked, same dtype.
    new = set_value(decay, lambda m: m.t, jnp.ones(3, decay.t.dtype), reshape=True)
    assert new.t.shape == (3,) and new.t.dtype == decay.t.dtype
    np.testing.assert_array_equal(new.t.value, np.ones(3))
    with pytest.raises(TypeError, match=r"Fixed at `t` has dtype .* int32"):
        set_value(decay, lambda m: m.t, jnp.ones(3, jnp.int32), reshape=True)


def test_set_value_dtype_error_names_path(decay):
    other = jnp.float16
    with pytest.raises(
        TypeError,
        match=r"Param at `rate` has dtype float(32|64), but the value has dtype "
        r"float16\. Cast it first",
    ):
        set_value(decay, "rate", jnp.asarray(2.0, other))
    with pytest.raises(TypeError, match=r"Param at `rate` has dtype .* int32"):
        set_value(decay, "rate", np.int32(2))
    counts = ep.Fixed(jnp.asarray(3, jnp.int32))
    with pytest.raises(TypeError, match=r"Fixed at `<model>` has dtype int32, but the"):
        set_value(counts, lambda f: f, 1.5)
    assert set_value(counts, lambda f: f, 4).value.dtype == jnp.int32
    # Caught by the annotation check when jaxtyping's import hook is on.
    not_array = r"must be an array or a Python scalar|parameter 'value'"
    with pytest.raises(TypeError, match=not_array):
        set_value(decay, "rate", "2.0")  # pyright: ignore[reportArgumentType]


def test_set_value_out_of_support(decay):
    with pytest.raises(ValueError, match=r"Param at `rate` is outside the support of"):
        set_value(decay, "rate", -1.0)
    jitted = jax.jit(lambda m, v: set_value(m, "rate", v).rate.latent)
    minus_one = jnp.asarray(-1.0, decay.rate.dtype)
    with pytest.raises(Exception, match=r"Param at `rate` is outside the support"):
        jitted(decay, minus_one).block_until_ready()


_WEAK_TRACED = (
    "lead: set_value/load_values with a traced weakly-typed scalar (a Python float "
    "passed to a jitted function) fail in the overflow check of `checked_array` "
    "(np.asarray on a tracer: TracerArrayConversionError)"
)


def test_set_value_traced_python_float(decay):
    jitted = jax.jit(lambda m, v: set_value(m, "rate", v))(decay, 2.5)
    eager = set_value(decay, "rate", 2.5)
    assert tree_allclose(jitted, eager, rtol=1e-6, atol=1e-7)
    checked = jax.jit(lambda m, v: set_value(m, "rate", v).rate.latent)
    with pytest.raises(Exception, match=r"Param at `rate` is outside the support"):
        checked(decay, -1.0).block_until_ready()


def test_set_value_bad_where(decay):
    with pytest.raises(ValueError, match=r"no `ep.Param` or `ep.Fixed` at `rat`\. "):
        set_value(decay, "rat", 1.0)
    with pytest.raises(ValueError, match=r"Closest existing paths: `rate`"):
        set_value(decay, "rat", 1.0)
    with pytest.raises(
        ValueError, match=r"must select exactly one .* selected a tuple"
    ):
        set_value(decay, lambda m: (m.rate, m.t), 1.0)
    with pytest.raises(ValueError, match=r"select a Param itself, not its `.value`"):
        set_value(decay, lambda m: m.rate.value, 1.0)


def test_set_value_jit_grad_vmap(decay):
    dtype = decay.rate.dtype
    two_and_a_half = jnp.asarray(2.5, dtype)
    jitted = jax.jit(lambda m, v: set_value(m, lambda m: m.rate, v))(
        decay, two_and_a_half
    )
    eager = set_value(decay, "rate", 2.5)
    assert tree_allclose(jitted, eager, rtol=1e-6, atol=1e-7)
    # d value / d value = 1 through the inverse and forward transforms.
    grad = jax.grad(lambda v: set_value(decay, "rate", v).rate.value)(
        jnp.asarray(2.5, dtype)
    )
    np.testing.assert_allclose(grad, 1.0, rtol=1e-4)
    vs = jnp.array([1.0, 2.0, 4.0], dtype)
    latents = jax.vmap(lambda v: set_value(decay, "rate", v).rate.latent)(vs)
    np.testing.assert_allclose(latents, decay.rate.prior.inverse(vs), rtol=1e-6)


# ---------------------------------------------------------------------------
# eqx.tree_at works on wrappers directly


def test_tree_at_replaces_param(decay):
    prior = ep.LogNormal(2.0, 0.2)
    two = jnp.asarray(2.0, decay.rate.dtype)
    new = eqx.tree_at(lambda m: m.rate, decay, ep.Param(two, prior=prior))
    np.testing.assert_allclose(new.rate.value, 2.0, rtol=1e-6)
    assert tree_allclose(new.rate.prior, prior, rtol=0, atol=0)
    np.testing.assert_allclose(
        new()[1], decay.amplitude.value * jnp.exp(-2.0), rtol=1e-6
    )
    # Still trainable: the new latent is in `params` and gets a gradient.
    params, rest = ep.partition(new)
    grads = eqx.filter_grad(lambda p: jnp.sum(ep.combine(p, rest)()))(params)
    assert grads["rate"].shape == () and grads["rate"] != 0
    # Replacing a latent or a Fixed directly works as well.
    z = jnp.zeros((), decay.rate.dtype)
    new = eqx.tree_at(lambda m: m.rate.latent, decay, z)
    np.testing.assert_allclose(new.rate.value, decay.rate.prior.forward(z))
    new = eqx.tree_at(lambda m: m.t, decay, ep.Fixed(jnp.zeros((2, 1), z.dtype)))
    np.testing.assert_allclose(new(), decay.amplitude.value[None, :].repeat(2, 0))


# ---------------------------------------------------------------------------
# freeze / unfreeze


class Encoder(eqx.Module):
    weight: ep.Param
    bias: ep.Param


class TwoPart(eqx.Module):
    encoder: Encoder
    head: ep.Param
    scale: ep.Param

    @ep.unwrapped
    def __call__(self, x):
        h = jnp.tanh(self.encoder.weight @ x + self.encoder.bias)
        return self.scale * (self.head @ h)


def make_two_part(key):
    model = TwoPart(
        encoder=Encoder(
            ep.Param(shape=(4, 2), prior=ep.Normal(0, 2**-0.5)), ep.Param(shape=(4,))
        ),
        head=ep.Param(shape=(4,), prior=ep.Normal(0, 0.5)),
        scale=ep.Param(prior=ep.LogNormal(1.0, 0.5)),
    )
    return ep.normal(model, key=key)


def test_freeze_semantics(getkey):
    model = make_two_part(getkey())
    frozen = freeze(model, lambda m: m.encoder)
    for name in ("weight", "bias"):
        before, after = getattr(model.encoder, name), getattr(frozen.encoder, name)
        assert isinstance(after, ep.Fixed)
        assert tree_allclose(
            after.prior, before.prior, rtol=0, atol=0
        )  # remembered for unfreeze
        np.testing.assert_array_equal(after.value, before.value)
    assert isinstance(frozen.head, ep.Param) and isinstance(frozen.scale, ep.Param)
    params, _ = ep.partition(frozen)
    assert list(params) == ["head", "scale"]  # the encoder no longer trains
    assert "prior" not in repr(frozen.encoder.weight)  # print(model) stays short
    # Paths, sequences of paths and several nodes at once.
    by_path = freeze(model, "encoder")
    assert tree_allclose(by_path, frozen, rtol=0, atol=0)
    both = freeze(model, ["encoder.weight", "scale"])
    assert isinstance(both.encoder.weight, ep.Fixed)
    assert isinstance(both.encoder.bias, ep.Param)
    assert isinstance(both.scale, ep.Fixed)
    assert tree_allclose(freeze(model, lambda m: (m.encoder.weight, m.scale)), both)
    # Freezing again is a no-op; abstract Params become abstract Fixed.
    assert tree_allclose(freeze(frozen, "encoder"), frozen, rtol=0, atol=0)
    abstract = freeze(ep.shapes(model), "scale")
    assert abstract.scale.is_abstract and abstract.scale.shape == ()
    assert isinstance(abstract.scale, ep.Fixed)


def test_freeze_errors(getkey):
    model = make_two_part(getkey())
    with pytest.raises(
        ValueError,
        match=r"`ep.freeze`: the model has no node at `encoder.wieght`\. Closest "
        r"existing paths: `encoder.weight`",
    ):
        freeze(model, "encoder.wieght")
    with pytest.raises(ValueError, match=r"Closest existing paths: `encoder`"):
        freeze(model, "encodr")
    model = eqx.tree_at(lambda m: m.head, model, jnp.ones(4))
    with pytest.raises(ValueError, match=r"selects no `ep.Param` or `ep.Fixed`"):
        freeze(model, lambda m: m.head)
    with pytest.raises(ValueError, match=r"selected something that is not part of"):
        freeze(model, lambda m: None)
    # No silent "freeze everything" or "freeze nothing".
    with pytest.raises(ValueError, match=r"`ep.freeze`: `where` is an empty path"):
        freeze(model, "")
    # jaxtyping's check (on in the suite) or the library's own; both name `where`.
    with pytest.raises(TypeError, match=r"parameter 'where'|`where` must be"):
        freeze(model, None)  # pyright: ignore[reportArgumentType]


def test_freeze_unfreeze_hierarchical():
    """Freezing a Param with a hierarchical prior freezes the Params of its prior
    too (nothing of it trains any more); unfreezing brings them all back."""
    mu = ep.Param(0.5, prior=ep.Normal(0.0, 5.0))
    tau = ep.Param(2.0, prior=ep.HalfNormal(3.0))
    model = {
        "theta": ep.Param(jnp.array([1.0, -1.0]), prior=ep.Normal(mu, tau)),
        "other": ep.Param(0.3),
    }
    frozen = freeze(model, "['theta']")
    assert isinstance(frozen["theta"], ep.Fixed)
    assert list(ep.partition(frozen)[0]) == ["['other']"]
    assert isinstance(frozen["theta"].prior.mean, ep.Fixed)
    assert isinstance(frozen["theta"].prior.sigma, ep.Fixed)
    np.testing.assert_allclose(frozen["theta"].value, [1.0, -1.0], rtol=1e-6)
    back = unfreeze(frozen, "['theta']")
    assert jax.tree.structure(back) == jax.tree.structure(model)
    assert list(ep.named_params(back)) == list(ep.named_params(model))
    assert tree_allclose(back, model, rtol=1e-6, atol=1e-6)
    assert tree_allclose(values(back), values(model), rtol=1e-6, atol=1e-6)


def test_unfreeze(getkey):
    model = make_two_part(getkey())
    frozen = freeze(model, "encoder")
    back = unfreeze(frozen, lambda m: m.encoder)
    assert jax.tree.structure(back) == jax.tree.structure(model)
    assert tree_allclose(
        back.encoder.weight.prior, model.encoder.weight.prior, rtol=0, atol=0
    )
    assert tree_allclose(back, model, rtol=1e-5, atol=1e-6)
    # Data never made by `freeze` needs an explicit prior.
    with_data = TwoPart(
        encoder=Encoder(ep.Fixed(jnp.ones((4, 2))), frozen.encoder.bias),
        head=model.head,
        scale=model.scale,
    )
    with pytest.raises(
        ValueError,
        match=r"the Fixed at `encoder.weight` was not made by `ep.freeze`, so it has "
        r"no prior to restore\. Pass `prior=`",
    ):
        unfreeze(with_data, "encoder")
    prior = ep.Normal(1.0, 2.0)
    back = unfreeze(with_data, "encoder", prior=prior)
    # `prior=` applies to every selected Fixed, overriding a remembered prior.
    assert back.encoder.weight.prior is prior
    assert back.encoder.bias.prior is prior
    np.testing.assert_allclose(back.encoder.weight.latent, 0.0)
    np.testing.assert_allclose(
        back.encoder.bias.value, model.encoder.bias.value, rtol=1e-6
    )
    np.testing.assert_allclose(
        back.encoder.bias.latent, prior.inverse(model.encoder.bias.value), rtol=1e-6
    )
    # Without `prior=`, the remembered one comes back.
    back = unfreeze(with_data, "encoder.bias")
    assert tree_allclose(
        back.encoder.bias.prior, model.encoder.bias.prior, rtol=0, atol=0
    )
    # Integer data cannot become a Param.
    counts = eqx.tree_at(lambda m: m.head, model, ep.Fixed(jnp.arange(4)))
    with pytest.raises(TypeError, match=r"Fixed at `head` has dtype int"):
        unfreeze(counts, "head", prior=prior)
    # A value outside the support of the given prior names the path.
    with pytest.raises(
        ValueError,
        match=r"`ep.unfreeze`: the value for the Param at `encoder.weight` is outside",
    ):
        unfreeze(with_data, "encoder", prior=ep.Uniform(2.0, 3.0))
    # Abstract round trip.
    abstract = unfreeze(freeze(ep.shapes(model), "scale"), "scale")
    assert abstract.scale.is_abstract
    assert tree_allclose(abstract.scale.prior, model.scale.prior, rtol=0, atol=0)


def test_train_freeze_train_unfreeze(getkey, standard_promotion):
    """Done-when 3: the README's recipe, step for step."""
    key_model, key_data = jax.random.split(getkey())
    model = make_two_part(key_model)
    xs = jax.random.normal(key_data, (16, 2))
    ys = jnp.sin(xs[:, 0]) - 0.5 * xs[:, 1]

    def loss(model):
        preds = jax.vmap(model)(xs)
        return jnp.mean(jnp.square(preds - ys))

    optim = optax.adamw(1e-2, weight_decay=1e-2)

    @eqx.filter_jit
    def step(params, rest, opt_state):
        grads = eqx.filter_grad(lambda p: loss(ep.combine(p, rest)))(params)
        updates, opt_state = optim.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state

    def train(model, n):
        params, rest = ep.partition(model)
        opt_state = optim.init(params)  # re-initialised for the current partition
        for _ in range(n):
            params, opt_state = step(params, rest, opt_state)
        return ep.combine(params, rest)

    model = train(model, 20)
    fitted = values(model)
    model = freeze(model, lambda m: m.encoder)
    frozen_values = values(model, ep.is_fixed)
    assert list(frozen_values) == ["encoder.weight", "encoder.bias"]
    for path, value in frozen_values.items():
        np.testing.assert_array_equal(value, fitted[path])  # frozen where it stood
    before = values(model)
    model = train(model, 20)
    after = values(model, ep.is_fixed)
    for path, value in frozen_values.items():
        np.testing.assert_array_equal(after[path], value)  # bit for bit
    for path, value in values(model).items():
        assert not np.allclose(value, before[path]), path  # the rest moved
    # Unfreezing makes the encoder trainable again.
    model = unfreeze(model, "encoder")
    assert list(values(model)) == ["encoder.weight", "encoder.bias", "head", "scale"]
    model = train(model, 5)
    moved = values(model)
    for path, value in frozen_values.items():
        assert not np.allclose(moved[path], value), path


def test_wrap_then_freeze_mlp(getkey):
    mlp = wrap(eqx.nn.MLP(3, 2, 4, 2, key=getkey()))
    frozen = freeze(mlp, "layers[0]")
    assert isinstance(frozen.layers[0].weight, ep.Fixed)
    assert isinstance(frozen.layers[1].weight, ep.Param)
    x = jnp.ones(3)
    np.testing.assert_array_equal(ep.unwrap(frozen)(x), ep.unwrap(mlp)(x))


def test_freeze_of_a_plain_module_names_wrap():
    """`ep.freeze` on a plain `eqx.nn` layer (never converted) selects no Param:
    the error says so and names `ep.wrap`, the way to give it Params or freeze it."""

    class Hybrid(eqx.Module):
        scale: ep.Param
        correction: eqx.nn.Linear

    model = Hybrid(ep.Param(1.0), eqx.nn.Linear(2, 1, key=jax.random.key(0)))
    before = jax.tree.leaves(model)
    with pytest.raises(
        ValueError,
        match=r"`ep.freeze`: `where` selects no `ep.Param` or `ep.Fixed` .*"
        r"`correction.weight`.*plain arrays.*ep.wrap.*fixed=",
    ):
        ep.freeze(model, "correction")
    with pytest.raises(ValueError, match=r"plain arrays.*ep.wrap"):
        ep.unfreeze(model, lambda m: m.correction, prior=ep.Normal())
    assert all(a is b for a, b in zip(jax.tree.leaves(model), before))


# `ep.freeze` and `ep.unfreeze` follow one rule: a value that could not be
# unfrozen (NaN, or inf where the dtype does not saturate) is refused at freeze.


@pytest.mark.parametrize("jit", [False, True])
def test_freeze_refuses_a_value_that_unfreeze_would_refuse(jit):
    model = {"a": ep.Param(jnp.ones(2)), "b": ep.Param(1.0)}
    bad = eqx.tree_at(lambda m: m["a"].latent, model, jnp.array([0.0, jnp.nan]))
    call = eqx.filter_jit(freeze) if jit else freeze
    with pytest.raises(
        Exception,  # under jit: JAX's runtime error holding the message
        match=r"`ep.freeze`: the Param at `\['a'\]` has a value that is not finite "
        r"\(NaN or inf\).*`ep.unfreeze` could not give the Param back.*"
        r"`ep.set_value\(model, where, value\)`",
    ):
        jax.block_until_ready(call(bad, lambda m: m["a"]))
    assert np.isnan(np.asarray(bad["a"].latent)[1])  # the model is unchanged
    good = freeze(model, lambda m: m["a"])
    assert tree_allclose(unfreeze(good, lambda m: m["a"]), model)
    # A value saturated in low precision (inf from a finite latent) is a value
    # of the prior there: it freezes and unfreezes.
    for dtype in (jnp.bfloat16, jnp.float16):
        z = jnp.array([300.0, 0.0], dtype)
        p = ep.Param.from_latent(z, prior=ep.LogNormal(1.0, 0.5))
        assert np.isinf(np.asarray(p.value, np.float32)[0])
        back = unfreeze(freeze({"p": p}, lambda m: m["p"]), lambda m: m["p"])
        np.testing.assert_array_equal(back["p"].value, p.value)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize(
    "prior, value",
    [
        (ep.LogNormal(1.0, 0.5), 0.0),  # underflows to 0
        (ep.LogNormal(1.0, 0.5), float("inf")),  # overflows
        (ep.LogNormal(1.0, 0.01), 0.0),
        (ep.Uniform(-3.0, 3.0), 3.0),  # a bound
        (ep.Uniform(0.0, 1.0), 0.0),
        (ep.HalfNormal(1.0), 0.0),
    ],
)
def test_set_value_at_a_saturated_value_gives_a_finite_latent(prior, value, dtype):
    model = {"p": ep.Param(jnp.asarray(1.0, dtype), prior=prior)}
    new = set_value(model, lambda m: m["p"], jnp.asarray(value, dtype))
    latent = np.asarray(new["p"].latent, np.float32)
    assert np.isfinite(latent).all()
    # Small enough that its log density and gradient are finite too.
    assert np.isfinite(float(ep.log_prior(new)))
    grad = jax.grad(lambda z: ep.log_prior({"p": ep.Param.from_latent(z, prior=prior)}))
    assert np.isfinite(np.asarray(grad(new["p"].latent), np.float32)).all()
    assert np.asarray(new["p"].value, np.float32) == pytest.approx(
        np.asarray(jnp.asarray(value, dtype), np.float32), abs=1e-30
    )
    # `ep.Param` from the same value, and `ep.load_values`, agree.
    direct = ep.Param(jnp.asarray(value, dtype), prior=prior)
    np.testing.assert_array_equal(direct.latent, new["p"].latent)
    loaded = ep.load_values(model, {"['p']": jnp.asarray(value, dtype)})
    np.testing.assert_array_equal(loaded["p"].latent, new["p"].latent)


def test_unfreeze_prior_overrides_the_remembered_one():
    frozen = ep.freeze(net(), "alpha")
    new = ep.Normal(0.0, 10.0)
    thawed = ep.unfreeze(frozen, "alpha", prior=new)
    assert bool(eqx.tree_equal(thawed.alpha.prior, new))
    assert float(thawed.alpha.value) == 2.5
    assert float(thawed.alpha.latent) == pytest.approx(0.25)
    # Without `prior=`, the remembered one comes back.
    assert bool(
        eqx.tree_equal(ep.unfreeze(frozen, "alpha").alpha.prior, ep.LogNormal(3.0, 0.1))
    )
    raises_and_keeps(
        lambda: ep.unfreeze(frozen, "alpha", prior=ep.Uniform(0.0, 1.0)),
        frozen,
        ValueError,
        match=(
            r"`ep\.unfreeze`: the value for the Param at `alpha` is outside the "
            r"support of "
            r"its prior `Uniform\(0, 1\)`.*Pass a value inside the prior's support"
        ),
    )
    raises_and_keeps(
        lambda: ep.unfreeze(frozen, "x"),
        frozen,
        ValueError,
        match=(
            r"`ep\.unfreeze`: the Fixed at `x` was not made by `ep\.freeze`, so it has "
            r"no "
            r"prior to restore\. Pass `prior=`"
        ),
    )


def test_unfreeze_prior_overrides_a_hierarchical_prior():
    model = {
        "theta": ep.Param(jnp.array([0.5, -0.5]), prior=ep.Normal(ep.Param(0.0), 1.0))
    }
    frozen = ep.freeze(model, "['theta']")
    plain = ep.unfreeze(frozen, "['theta']", prior=ep.Normal(0.0, 2.0))
    assert list(ep.named_params(plain)) == ["['theta']"]
    assert plain["theta"].value.tolist() == [0.5, -0.5]
    restored = ep.unfreeze(frozen, "['theta']")
    assert list(ep.named_params(restored)) == ["['theta']", "['theta'].prior.mean"]


# ---------------------------------------------------------------------------
# set_value: the caller in every message; hyperparameters, shared and frozen
# Params


def test_set_value_messages_name_the_caller():
    p = ep.Param(jnp.zeros(2))
    twice = {"a": p, "b": p}
    raises_and_keeps(
        lambda: set_value(twice, "['a']", jnp.ones(2)),
        twice,
        ValueError,
        "`ep.set_value`: the Param at `['b']` is the same object as the one at `['a']`",
    )
    model = {"x": ep.Param(jnp.zeros(2)), "t": ep.Fixed(jnp.zeros(2))}
    raises_and_keeps(
        lambda: set_value(model, lambda m: (m["x"], m["t"]), 1.0),
        model,
        ValueError,
        "`ep.set_value`: `where` must select exactly one `ep.Param` or `ep.Fixed`",
        "it selected a tuple. Set several values with `ep.load_values`.",
    )
    raises_and_keeps(
        lambda: set_value(model, "['y']", 1.0),
        model,
        ValueError,
        "`ep.set_value`: the model has no `ep.Param` or `ep.Fixed` at `['y']`.",
    )
    # `reshape=True` is for a Fixed: a Param keeps its shape.
    raises_and_keeps(
        lambda: set_value(model, "['x']", jnp.ones(3), reshape=True),
        model,
        ValueError,
        "`ep.set_value`: the Param at `['x']` has shape (2,), but the value has "
        "shape (3,). Pass a value of shape (2,).",
    )
    # Without `reshape`, a Fixed's message names the way to reshape it.
    raises_and_keeps(
        lambda: set_value(model, "['t']", jnp.ones(3)),
        model,
        ValueError,
        "`ep.set_value`: the Fixed at `['t']` has shape (2,), but the value has "
        "shape (3,).",
        "`reshape=True`",
    )
    assert set_value(model, "['t']", jnp.ones(3), reshape=True)["t"].shape == (3,)


def test_set_value_of_a_hyperparameter_keeps_the_holder(float_dtype):
    mu = ep.Param(jnp.asarray(0.5, float_dtype), prior=ep.Normal(0.0, 5.0))
    theta = ep.Param(jnp.array([1.0, 3.0], float_dtype), prior=ep.Normal(mu, 2.0))
    model = {"theta": theta}
    out = set_value(model, "['theta'].prior.mean", 1.5)
    # theta keeps [1, 3]: latent (theta - 1.5) / 2; mu's latent 1.5 / 5.
    assert out["theta"].value.tolist() == [1.0, 3.0]
    assert out["theta"].latent.tolist() == [-0.25, 0.75]
    np.testing.assert_allclose(out["theta"].prior.mean.latent, 0.3, rtol=1e-6)
    # The same through a callable reaching into the prior.
    again = set_value(model, lambda m: m["theta"].prior.mean, 1.5)
    assert tree_allclose(again, out, rtol=0, atol=0)


def test_set_value_of_shared_and_frozen_params(float_dtype):
    w = ep.Param(jnp.ones(2, float_dtype), name="w")
    model = {"u": w, "v": w}
    out = set_value(model, "['u']", jnp.array([2.0, 3.0], float_dtype))
    for key in ("u", "v"):  # one parameter: every use holds the new value
        assert out[key].value.tolist() == [2.0, 3.0] and out[key].name == "w"
    raises_and_keeps(
        lambda: set_value(model, "['v']", 1.0),
        model,
        ValueError,
        "no `ep.Param` or `ep.Fixed` at `['v']`",
    )
    # A frozen Param keeps the prior it remembers and its name.
    prior = ep.LogNormal(1.0, 0.5)
    frozen = freeze({"p": ep.Param(jnp.ones(2, float_dtype), prior=prior)}, "['p']")
    out = set_value(frozen, "['p']", jnp.array([4.0, 5.0], float_dtype))
    assert isinstance(out["p"], ep.Fixed) and out["p"].prior is frozen["p"].prior
    back = unfreeze(out, "['p']")
    np.testing.assert_allclose(back["p"].value, [4.0, 5.0], rtol=1e-5)
    assert tree_allclose(back["p"].prior, prior, rtol=0, atol=0)


# ---------------------------------------------------------------------------
# freeze and unfreeze: what each entry becomes


def test_selection_of_no_wrapper_names_what_it_selects():
    plain = {k: jnp.ones(1) for k in "abcd"}
    info = raises_and_keeps(
        lambda: freeze(plain, lambda m: m),
        plain,
        ValueError,
        "`ep.freeze`: `where` selects no `ep.Param` or `ep.Fixed` (it selects "
        "`['a']`, `['b']`, `['c']`). Select a Param, a Fixed or a submodule "
        "holding them. They are plain arrays",
        "`ep.wrap(model.net, fixed=lambda n: n)`",
    )
    assert "`['d']`" not in str(info.value)  # three shown at most
    # Not arrays (a function, a number): no word of `ep.wrap`.
    other = {"f": jnp.tanh, "n": 3.0, "p": ep.Param(1.0)}
    info = raises_and_keeps(
        lambda: unfreeze(other, ["['f']", "['n']"], prior=ep.Normal()),
        other,
        ValueError,
        "`ep.unfreeze`: `where` selects no `ep.Param` or `ep.Fixed` (it selects "
        "`['f']`, `['n']`). Select a Param, a Fixed or a submodule holding them.",
    )
    assert "plain arrays" not in str(info.value) and "ep.wrap" not in str(info.value)


def test_freeze_keeps_value_prior_dtype_and_name():
    prior = ep.LogNormal(1.0, 0.5)
    f16 = jnp.float16
    model = {
        "a": ep.Param(jnp.array([2.0, 4.0], f16), prior=prior, name="amp"),
        "b": ep.Param(shape=(3,), dtype=f16, prior=prior, name="abstract"),
        "c": ep.Param(jnp.asarray(1.5, f16)),
        "t": ep.Fixed(jnp.arange(2.0, dtype=f16)),
    }
    frozen = freeze(model, lambda m: (m["a"], m["b"], m["t"]))
    a, b = frozen["a"], frozen["b"]
    assert isinstance(a, ep.Fixed) and isinstance(b, ep.Fixed)
    # The Param's value bit for bit (float16 reads 4 back as 3.998).
    assert a.value.tolist() == model["a"].value.tolist() and a.dtype == f16
    np.testing.assert_allclose(a.value, [2.0, 4.0], rtol=1e-3)
    assert a.prior is prior and a.name == "amp"  # no Params in it: the same prior
    assert b.is_abstract and b.shape == (3,) and b.dtype == f16
    assert b.prior is prior and b.name == "abstract"
    assert frozen["c"] is model["c"]  # not selected
    assert frozen["t"] is model["t"]  # a Fixed stays as it is
    assert list(ep.named_params(frozen)) == ["['c']"]
    back = unfreeze(frozen, ["['a']", "['b']", "['c']"])
    assert back["c"] is model["c"]  # a Param in the selection stays as it is
    assert back["a"].name == "amp" and back["b"].name == "abstract"
    assert back["b"].is_abstract and back["b"].dtype == f16
    # float16 rounding of `prior.forward(prior.inverse(4))`: 3.998.
    np.testing.assert_allclose(back["a"].value, [2.0, 4.0], rtol=1e-3)
    assert tree_allclose(back["a"].prior, prior, rtol=0, atol=0)


def test_freeze_a_shared_param_freezes_every_use():
    w = ep.Param(jnp.array([1.0, 2.0]), name="w")
    frozen = freeze({"u": w, "v": w}, "['u']")
    for key in ("u", "v"):
        assert isinstance(frozen[key], ep.Fixed) and frozen[key].name == "w"
        assert frozen[key].value.tolist() == [1.0, 2.0]
    assert ep.named_params(frozen) == {}
    back = unfreeze(frozen, "['u']")
    assert list(ep.named_params(back)) == ["['u']"]
    assert back["v"].value.tolist() == [1.0, 2.0] and isinstance(back["v"], ep.Param)


def test_freeze_unfreeze_two_levels_of_hyperparameters():
    nu = ep.Param(1.0, prior=ep.Normal(0.0, 3.0), name="nu")
    mu = ep.Param(0.5, prior=ep.Normal(nu, 2.0))
    model = {
        "theta": ep.Param(jnp.array([1.0, 3.0]), prior=ep.Normal(mu, 2.0)),
        "x": ep.Fixed(jnp.zeros(2)),
    }
    frozen = freeze(model, "['theta']")
    inner = frozen["theta"].prior.mean
    assert isinstance(inner, ep.Fixed) and float(inner.value) == 0.5
    deepest = inner.prior.mean
    assert isinstance(deepest, ep.Fixed) and float(deepest.value) == 1.0
    assert deepest.name == "nu"
    assert tree_allclose(deepest.prior, ep.Normal(0.0, 3.0), rtol=0, atol=0)
    back = unfreeze(frozen, "['theta']")
    assert list(ep.named_params(back)) == [
        "['theta']", "['theta'].prior.mean", "['theta'].prior.mean.prior.mean"
    ]  # fmt: skip
    assert back["theta"].prior.mean.prior.mean.name == "nu"
    assert tree_allclose(back, model, rtol=1e-6, atol=1e-6)
    # The constant hyperparameters (Fixed without a prior) stay constant.
    assert not isinstance(back["theta"].prior.sigma, ep.Param)
    # Abstract: the whole hierarchy comes back abstract.
    abstract = unfreeze(freeze(ep.shapes(model), "['theta']"), "['theta']")
    assert abstract["theta"].is_abstract
    assert abstract["theta"].prior.mean.prior.mean.is_abstract
    assert list(ep.named_params(abstract)) == list(ep.named_params(back))


def test_unfreeze_restores_a_shared_hyperparameter_everywhere():
    mu = ep.Param(0.5, prior=ep.Normal(0.0, 5.0), name="mu")
    model = {
        "a": ep.Param(jnp.array([1.0, 3.0]), prior=ep.Normal(mu, 2.0)),
        "b": ep.Param(jnp.array([2.0]), prior=ep.Normal(mu, 1.0)),
    }
    # Freezing `a` freezes `mu` in `b`'s prior too (one parameter); unfreezing `a`
    # gives it back in both.
    frozen = freeze(model, "['a']")
    assert isinstance(frozen["b"].prior.mean, ep.Fixed)
    back = unfreeze(frozen, "['a']")
    assert list(ep.named_params(back)) == list(ep.named_params(model))
    assert isinstance(back["b"].prior.mean, ep.Param)
    for path, p in ep.named_params(model).items():
        np.testing.assert_allclose(ep.named_params(back)[path].value, p.value, 1e-6)


def test_unfreeze_errors_name_the_path():
    model = {"x": ep.Fixed(jnp.ones(2)), "n": ep.Fixed(jnp.arange(2, dtype=jnp.int32))}
    raises_and_keeps(
        lambda: unfreeze(model, "['x']", prior=ep.Normal(jnp.zeros(3), 1.0)),
        model,
        ValueError,
        "`ep.unfreeze`: the array at `['x']`: ",
        "(3,)",
    )
    raises_and_keeps(
        lambda: unfreeze(model, "['n']", prior=ep.Normal()),
        model,
        TypeError,
        "`ep.unfreeze`: the Fixed at `['n']` has dtype int32; only floating arrays "
        "can become Params. Leave it out of `where`.",
    )
    # Without `prior=`, an integer Fixed is refused for having no prior first.
    raises_and_keeps(
        lambda: unfreeze(model, "['n']"),
        model,
        ValueError,
        "`ep.unfreeze`: the Fixed at `['n']` was not made by `ep.freeze`, so it has "
        "no prior to restore. Pass `prior=` (e.g. `prior=ep.Normal(0, 1)`) to make "
        "it a Param, or leave it out of `where`.",
    )
    # Other floats unfreeze, in their own dtype.
    low = {"h": ep.Fixed(jnp.array([0.5, 1.5], jnp.bfloat16))}
    out = unfreeze(low, "['h']", prior=ep.Normal(0.5, 1.0))
    assert out["h"].dtype == jnp.bfloat16 and out["h"].latent.tolist() == [0.0, 1.0]


def test_freeze_unfreeze_under_jit_and_vmap(float_dtype):
    prior = ep.Normal(1.0, 2.0)  # value = 1 + 2 z

    @eqx.filter_jit
    def round_trip(z):
        model = {"p": ep.Param.from_latent(z, prior=prior), "q": ep.Param(z)}
        frozen = freeze(model, "['p']")
        back = unfreeze(frozen, "['p']")
        other = unfreeze(frozen, "['p']", prior=ep.Normal(0.0, 0.5))
        return frozen["p"].array, back["p"].latent, other["p"].latent

    zs = jnp.array([0.0, 0.5, -1.0], float_dtype)
    value, latent, other = jax.vmap(round_trip)(zs)
    assert value.tolist() == [1.0, 2.0, -1.0]
    assert latent.tolist() == [0.0, 0.5, -1.0]
    assert other.tolist() == [2.0, 4.0, -2.0]  # value / 0.5
    assert value.dtype == latent.dtype == jnp.dtype(float_dtype)


# --- whole messages and the paths less taken ---------------------------------------


class _Tanh(ep.AbstractPrior):
    """A custom prior whose values reach the bound 1 in float32 (tanh(10) rounds
    to 1.0), where its inverse is inf: a finite value with an overflowing latent."""

    def forward(self, z):
        return jnp.tanh(z)

    def inverse(self, x):
        return jnp.arctanh(x)

    def log_prob(self, x):
        return jnp.zeros_like(x)


_NOT_FINITE = (
    "`ep.freeze`: the Param at `['a']` has a value that is not finite (NaN or inf) "
    "or not in its prior's support, so `ep.unfreeze` could not give the Param back. "
    'Find where it became so (a diverged optimisation? `jax.config.update("jax_'
    'debug_nans", True)`), or give it a value first: '
    "`ep.set_value(model, where, value)`."
)


def test_freeze_refuses_a_finite_value_whose_latent_overflows():
    z = jnp.array([0.5, 10.0], jnp.float32)
    model = {"a": ep.Param.from_latent(z, prior=_Tanh())}
    assert model["a"].value.tolist()[1] == 1.0  # finite, on the bound
    info = raises_and_keeps(lambda: freeze(model, "['a']"), model, ValueError)
    assert str(info.value) == _NOT_FINITE
    # A NaN value: the same message, whole.
    nan = eqx.tree_at(lambda m: m["a"].latent, model, jnp.array([0.0, jnp.nan]))
    info = raises_and_keeps(lambda: freeze(nan, "['a']"), nan, ValueError)
    assert str(info.value) == _NOT_FINITE
    # Inside the bound: frozen and given back.
    inside = {"a": ep.Param.from_latent(z[:1], prior=_Tanh())}
    back = unfreeze(freeze(inside, "['a']"), "['a']")
    np.testing.assert_allclose(back["a"].latent, z[:1], rtol=1e-6)


def test_freeze_names_itself_for_an_integer_latent():
    model = {"a": ep.Param(1.0)}
    bad = eqx.tree_at(lambda m: m["a"].latent, model, jnp.asarray(1, jnp.int32))
    info = raises_and_keeps(lambda: freeze(bad, "['a']"), bad, TypeError)
    assert str(info.value).startswith(
        "`ep.freeze`: the Param at `['a']` has a latent of dtype int32, not a "
        "floating array"
    )


@pytest.mark.parametrize("call", [freeze, unfreeze])
def test_one_unnamed_param_in_two_places_names_the_caller(call):
    theta = ep.Param(1.0)
    model = {"a": theta, "b": theta}
    info = raises_and_keeps(lambda: call(model, "['a']"), model, ValueError)
    assert str(info.value).startswith(
        f"`ep.{call.__name__}`: the Param at `['b']` is the same object as the one "
        "at `['a']`."
    )


def test_where_selecting_no_wrapper_whole_messages():
    plain = {"a": jnp.ones(2), "b": 1}
    info = raises_and_keeps(lambda: freeze(plain, "['a']"), plain, ValueError)
    assert str(info.value) == (
        "`ep.freeze`: `where` selects no `ep.Param` or `ep.Fixed` (it selects "
        "`['a']`). Select a Param, a Fixed or a submodule holding them. They are "
        "plain arrays (an Equinox module not converted): convert them with "
        "`ep.wrap` first, e.g. `eqx.tree_at(lambda m: m.net, model, "
        "ep.wrap(model.net))` makes them Params, and `ep.wrap(model.net, "
        "fixed=lambda n: n)` makes them `ep.Fixed` (frozen) at once."
    )
    other = {"a": ep.Param(1.0), "b": 1}
    info = raises_and_keeps(lambda: unfreeze(other, "['b']"), other, ValueError)
    assert str(info.value) == (
        "`ep.unfreeze`: `where` selects no `ep.Param` or `ep.Fixed` (it selects "
        "`['b']`). Select a Param, a Fixed or a submodule holding them."
    )


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, *FLOAT_DTYPES])
def test_unfreeze_of_an_abstract_fixed_keeps_its_dtype(dtype):
    model = {"a": ep.Fixed(shape=(2,), dtype=dtype, prior=ep.Normal(0.0, 2.0))}
    out = unfreeze(model, "['a']")
    assert isinstance(out["a"], ep.Param) and out["a"].is_abstract
    assert out["a"].shape == (2,) and out["a"].dtype == jnp.dtype(dtype)
    filled = ep.zeros(out)
    assert filled["a"].latent.dtype == jnp.dtype(dtype)


def test_unfreeze_names_itself_for_a_value_outside_the_support():
    model = {"a": ep.Fixed(-1.0, prior=ep.LogNormal(1.0, 1.0))}
    info = raises_and_keeps(lambda: unfreeze(model, "['a']"), model, ValueError)
    assert str(info.value) == (
        "`ep.unfreeze`: the value for the Param at `['a']` is outside the support "
        "of its prior `LogNormal(mean=1, sd=1)` (`prior.inverse(value)` is not "
        "finite). Pass a value inside the prior's support."
    )


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, *FLOAT_DTYPES])
def test_unfreeze_gives_back_an_abstract_hyperparameter_in_its_dtype(dtype):
    inner = ep.Fixed(shape=(), dtype=dtype, prior=ep.Normal(0.0, 1.0))
    outer = ep.Fixed(shape=(2,), dtype=dtype, prior=ep.Normal(inner, 1.0))
    out = unfreeze({"a": outer}, "['a']")["a"]
    assert isinstance(out, ep.Param) and out.is_abstract and out.dtype == dtype
    mean = out.prior.mean
    assert isinstance(mean, ep.Param) and mean.is_abstract
    assert mean.shape == () and mean.dtype == jnp.dtype(dtype)


def test_unfreeze_names_itself_for_a_hyperparameter_outside_its_support():
    sd = ep.Param(1.0, prior=ep.LogNormal(1.0, 1.0))
    frozen = freeze({"a": ep.Param(jnp.zeros(2), prior=ep.Normal(0.0, sd))}, "['a']")
    bad = ep.Fixed(-1.0, prior=ep.LogNormal(1.0, 1.0))
    model = eqx.tree_at(lambda m: m["a"].prior.sigma, frozen, bad)
    info = raises_and_keeps(lambda: unfreeze(model, "['a']"), model, ValueError)
    assert str(info.value) == (
        "`ep.unfreeze`: the value for the Param at `['a'].prior.sigma` is outside "
        "the support of its prior `LogNormal(mean=1, sd=1)` (`prior.inverse(value)` "
        "is not finite). Pass a value inside the prior's support."
    )


def test_freeze_names_itself_for_a_latent_that_does_not_fit_its_prior():
    model = {"a": ep.Param(jnp.zeros(2), prior=ep.Normal(jnp.zeros(2), 1.0))}
    bad = eqx.tree_at(lambda m: m["a"].latent, model, jnp.zeros(3))
    info = raises_and_keeps(lambda: freeze(bad, "['a']"), bad, ValueError)
    assert str(info.value).startswith(
        "`ep.freeze`: the Param at `['a']`: The prior `Normal` cannot take a latent "
        "of shape (3,)"
    )
