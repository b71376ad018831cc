"""Priors written by users on `ep.AbstractPrior`: with function fields, an all-Fixed
network, the docstring's example; a plain floating field is refused."""

import math
import re
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep

from .conftest import close, raises_and_keeps
from .models import Holder


class FnPrior(ep.AbstractPrior):
    """A custom prior holding Python functions (and a constant)."""

    fn: Callable[[Any], Any]
    inv: Callable[[Any], Any]
    scale: ep.Fixed

    def __init__(self, fn: Callable, inv: Callable, scale: float):
        self.fn, self.inv, self.scale = fn, inv, ep.Fixed(scale)

    @ep.unwrapped
    def forward(self, z):
        return self.fn(z) * self.scale

    @ep.unwrapped
    def inverse(self, x):
        return self.inv(x / self.scale)

    @ep.unwrapped
    def log_prob(self, x):
        return -jnp.abs(x)


class NetPrior(ep.AbstractPrior):
    """A custom prior holding an all-Fixed MLP: a shift computed by the network."""

    net: eqx.nn.MLP

    def __init__(self, key):
        mlp = eqx.nn.MLP("scalar", "scalar", 4, 1, key=key)
        self.net = ep.wrap(mlp, fixed=lambda m: m)

    @ep.unwrapped
    def forward(self, z):
        return z + self.net(jnp.zeros((), z.dtype))

    @ep.unwrapped
    def inverse(self, x):
        return x - self.net(jnp.zeros((), x.dtype))

    @ep.unwrapped
    def log_prob(self, x):
        u = x - self.net(jnp.zeros((), x.dtype))
        return -0.5 * u**2 - 0.5 * math.log(2 * math.pi)


class Scaled(eqx.Module):
    p: ep.Param

    @ep.unwrapped
    def __call__(self):
        return 2 * self.p


def check_custom_prior(prior: Any, shape: tuple[int, ...]) -> None:
    value = jnp.linspace(0.5, 1.5, math.prod(shape)).reshape(shape)
    model = Scaled(ep.Param(value, prior=prior))
    close(model.p.value, value, jnp.float32)
    close(ep.unwrap(model).p, value, jnp.float32)
    close(model(), 2 * value, jnp.float32)
    close(eqx.filter_jit(lambda m: m())(model), 2 * value, jnp.float32)
    grads = eqx.filter_grad(lambda m: jnp.sum(m()))(model)
    assert grads.p.latent.shape == shape
    table = ep.summary(model)
    assert re.search(rf"^p\s+Param\s+yes\s+{re.escape(str(shape))}", table, re.M)
    close(ep.set_value(model, "p", 2 * value).p.value, 2 * value, jnp.float32)
    close(ep.load_values(model, ep.values(model)).p.value, value, jnp.float32)
    close(ep.unfreeze(ep.freeze(model, "p"), "p").p.value, value, jnp.float32)
    assert bool(eqx.tree_equal(ep.combine(*ep.partition(model)), model))
    assert ep.normal(model, key=jax.random.key(0)).p.shape == shape
    close(ep.wrap({"w": value}, prior=prior)["w"].value, value, jnp.float32)
    close(ep.wrap({"w": value}, prior=lambda x: prior)["w"].value, value, jnp.float32)
    assert jnp.isfinite(ep.log_prob(model))


@pytest.mark.parametrize("shape", [(), (3,)])
def test_custom_prior_with_function_fields(shape):
    check_custom_prior(FnPrior(jnp.sinh, jnp.arcsinh, 2.0), shape)


@pytest.mark.slow
@pytest.mark.parametrize(
    "shape",
    [
        (4, 4),  # what `batch_shape` infers from the network's arrays
        (),
        (3,),
    ],
)
def test_custom_prior_with_an_all_fixed_mlp(shape):
    check_custom_prior(NetPrior(jax.random.key(0)), shape)


def test_summary_of_an_mlp_prior_is_one_line_per_row():
    model = Scaled(ep.Param(jnp.ones((4, 4)), prior=NetPrior(jax.random.key(0))))
    assert len(ep.summary(model).splitlines()) == 4  # header, rule, p, totals


class DocExponential(ep.AbstractPrior):
    """The example of `ep.AbstractPrior`'s docstring."""

    rate: ep.Fixed | ep.Param

    def __init__(self, rate):
        self.rate = rate if ep.is_param(rate) else ep.Fixed(rate)

    @ep.unwrapped
    def forward(self, z):
        return -jax.scipy.special.log_ndtr(-z) / self.rate

    @ep.unwrapped
    def inverse(self, x):
        return -jax.scipy.special.ndtri(jnp.exp(-self.rate * x))

    @ep.unwrapped
    def log_prob(self, x):
        return jnp.log(self.rate) - self.rate * x


@pytest.mark.parametrize(
    "rate",
    [
        lambda: 2.0,
        lambda: 2,
        lambda: np.float64(2.0),  # the default float: float32 unless x64
        lambda: jnp.array(2.0),
        lambda: ep.Param(2.0, prior=ep.LogNormal(2.0, 0.5)),
    ],
    ids=["python-float", "python-int", "numpy", "jax", "hierarchical"],
)
def test_docstring_custom_prior(rate):
    model = Holder(ep.Param(jnp.array([0.1, 0.5, 3.0]), prior=DocExponential(rate())))
    close(model.p.value, [0.1, 0.5, 3.0], jnp.float32)
    close(ep.load_values(model, ep.values(model)).p.value, [0.1, 0.5, 3.0], jnp.float32)
    close(ep.unfreeze(ep.freeze(model, "p"), "p").p.value, [0.1, 0.5, 3.0], jnp.float32)
    assert "DocExponential" in ep.summary(model)
    assert jnp.isfinite(ep.log_prob(model))
    raises_and_keeps(
        lambda: ep.Param(-1.0, prior=DocExponential(rate())),
        None,
        ValueError,
        match=r"outside the support of its prior DocExponential",
    )


def test_docstring_custom_prior_keeps_the_latent_dtype_under_x64():
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        model = Holder(ep.Param(0.5, prior=DocExponential(2.0), dtype=jnp.float32))
        assert model.p.value.dtype == jnp.float32
        ep.load_values(model, ep.values(model))


def test_readme_style_prior_with_a_plain_array():
    class Readme(ep.AbstractPrior):
        rate: jax.Array

        def forward(self, z):
            return -jnp.log(jax.scipy.special.ndtr(-z)) / self.rate

        def inverse(self, x):
            return -jax.scipy.special.ndtri(jnp.exp(-self.rate * x))

        def log_prob(self, x):
            return jnp.log(self.rate) - self.rate * x

    raises_and_keeps(
        lambda: Readme(rate=jnp.array(2.0)),
        None,
        TypeError,
        match=(
            r"`Readme\.rate` is a plain floating array, which every optimiser would "
            r"train\. Store a constant hyperparameter as `ep\.Fixed\(\.\.\.\)`"
        ),
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
