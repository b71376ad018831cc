"""Checks of prior hyperparameters' values: eagerly when they are concrete, at run
time when traced (under `jax.jit`, `eqx.filter_jit` and `jax.vmap`), later when
abstract. Each refusal names the prior, the argument, the value and the fix."""

import math
import re
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqxpurify as ep

from .conftest import (
    raises_and_keeps,
)

NAN = math.nan


def _order(low, high):
    """The key phrases of Uniform's refusal of `low >= high`."""
    return (
        "`Uniform(low, high)` needs low < high",
        f"got low={low}, high={high}.",
        "Swap or widen the bounds.",
    )


def _width(low, high):
    """The key phrases of Uniform's refusal of a width that overflows."""
    return (
        "`Uniform(low, high)`: `high - low` overflows float32",
        f"got low={low}, high={high}.",
        "Narrow the bounds or use float64.",
    )


@pytest.mark.parametrize(
    "low, high, phrases",
    [
        (1.0, 1.0, _order("1.0", "1.0")),
        (2.0, 1.0, _order("2.0", "1.0")),
        ([0.0, 1.0], [1.0, 1.0], _order("[0.0, 1.0]", "[1.0, 1.0]")),
        (
            np.float32(-3e38),
            np.float32(3e38),
            _width("-3.0000000054977558e+38", "3.0000000054977558e+38"),
        ),
    ],
)
def test_uniform_bounds_are_checked_eagerly(low, high, phrases):
    lo, hi = jnp.asarray(low), jnp.asarray(high)
    if lo.dtype == jnp.float64:  # under x64: the same numbers, as float32
        lo, hi = lo.astype(jnp.float32), hi.astype(jnp.float32)
    raises_and_keeps(lambda: ep.Uniform(lo, hi), (lo, hi), ValueError, *phrases)


_F16 = "0.0999755859375"  # float16(0.1) as the float32 compute dtype holds it


@pytest.mark.parametrize(
    "low, high, error, phrases",
    [
        (
            np.nan,
            1.0,
            ValueError,
            ("`Uniform(low=...)` must be finite (not NaN or inf)", "got nan."),
        ),
        (
            0.0,
            np.inf,
            ValueError,
            ("`Uniform(high=...)` must be finite (not NaN or inf)", "got inf."),
        ),
        (
            True,
            2.0,
            TypeError,
            (
                "`Uniform(low=...)` must be a real number",
                "got a bool (True).",
                "Pass a float.",
            ),
        ),
        (
            0.0,
            np.array([True]),
            TypeError,
            (
                "`Uniform(high=...)` must be a real number",
                "got a bool (array([ True])).",
                "Pass a float.",
            ),
        ),
        (
            1j,
            1.0,
            TypeError,
            (
                "`Uniform(low=...)` must be a number, an array, an `ep.Fixed` or an "
                "`ep.Param` (for a hierarchical prior)",
                "got complex.",
            ),
        ),
        (
            0.0,
            2j,
            TypeError,
            (
                "`Uniform(high=...)` must be a number, an array, an `ep.Fixed` or an "
                "`ep.Param` (for a hierarchical prior)",
                "got complex.",
            ),
        ),
        (np.float16(0.1), np.float16(0.1), ValueError, _order(_F16, _F16)),
    ],
)
def test_uniform_hyperparameter_messages(low, high, error, phrases):
    raises_and_keeps(lambda: ep.Uniform(low, high), (low, high), error, *phrases)


def test_uniform_bounds_are_checked_when_traced():
    f = jax.jit(lambda lo, hi: ep.Uniform(lo, hi).forward(jnp.zeros((), lo.dtype)))
    assert float(f(jnp.float32(0.0), jnp.float32(2.0))) == 1.0
    traced = "a traced value"
    for lo, hi, phrases in [
        (1.0, 0.0, _order(traced, traced)),
        (1.0, 1.0, _order(traced, traced)),
        (-3e38, 3e38, _width(traced, traced)),
    ]:
        raises_and_keeps(
            lambda: jax.block_until_ready(f(jnp.float32(lo), jnp.float32(hi))),
            None,
            Exception,
            *phrases,
        )


def test_uniform_width_is_checked_in_the_wider_dtype_of_its_bounds():
    big = 3e38
    with jax.enable_x64(True):
        raises_and_keeps(
            lambda: ep.Uniform(np.float32(-big), np.float32(big)),
            None,
            ValueError,
            *_width("-3.0000000054977558e+38", "3.0000000054977558e+38"),
        )
        for low, high in [(np.float32(-big), np.float64(big)), (-big, np.float32(big))]:
            prior = ep.Uniform(low, high)
            assert float(prior.forward(jnp.float64(0.0))) == pytest.approx(
                0.0, abs=1e31
            )


def test_uniform_with_an_abstract_bound_is_checked_later():
    for low, high in [(ep.Param(shape=()), 1.0), (0.0, ep.Param(shape=()))]:
        prior = ep.Uniform(low, high)
        assert isinstance(prior.low, ep.Param | ep.Fixed)
    model = ep.zeros(
        {"x": ep.Param(shape=(), prior=ep.Uniform(ep.Param(shape=()), 5.0))}
    )
    np.testing.assert_allclose(ep.unwrap(model)["x"], 2.5)  # low = 0 from z = 0


def _extreme(mean, sigma):
    """The key phrases of LogNormal's refusal of an extreme `sigma / mean`."""
    return (
        "`LogNormal(mean, sigma)`: `sigma / mean` is too extreme for float32",
        "(the log-scale sd overflows or vanishes)",
        f"got mean={mean}, sigma={sigma}.",
        "Use a wider dtype or a less extreme ratio.",
    )


def test_lognormal_extreme_ratio_messages_eager_and_traced():
    for mean, sigma, shown in [
        (1.0, 1e-30, ("1.0", "1.0000000031710769e-30")),  # the sd vanishes
        (1e-30, 1e30, ("1.0000000031710769e-30", "1.0000000150474662e+30")),
    ]:
        raises_and_keeps(
            lambda: ep.LogNormal(np.float32(mean), np.float32(sigma)),
            None,
            ValueError,
            *_extreme(*shown),
        )
    make = jax.jit(lambda m, s: ep.LogNormal(m, s))
    prior = make(jnp.float32(3.0), jnp.float32(0.1))  # traced and valid
    assert float(prior.mean.value) == 3.0
    assert float(prior.sigma.value) == pytest.approx(0.1)
    np.testing.assert_allclose(
        float(prior.forward(jnp.float32(0.0))), 3.0 / np.sqrt(1 + (0.1 / 3) ** 2)
    )
    traced = "a traced value"
    forward = jax.jit(lambda m, s: ep.LogNormal(m, s).forward(jnp.zeros(())))
    for mean, sigma in [(1.0, 1e-30), (1e-30, 1e30)]:
        raises_and_keeps(
            lambda: jax.block_until_ready(
                forward(jnp.float32(mean), jnp.float32(sigma))
            ),
            None,
            Exception,
            *_extreme(traced, traced),
        )


def test_lognormal_with_an_abstract_hyperparameter_is_checked_later():
    positive = ep.HalfNormal(1.0)  # (a Normal prior is refused: it reaches below 0)
    for mean, sigma in [
        (ep.Param(shape=(), prior=positive), 1.0),
        (1.0, ep.Param(shape=(), prior=positive)),
    ]:
        prior = ep.LogNormal(mean, sigma)
        assert isinstance(prior.mean, ep.Param | ep.Fixed)


# Explicit float32 where the overflow is a float32 one (under x64 a Python float
# would make a float64 hyperparameter, for which the same numbers are fine).
F32 = np.float32


BAD_HYPERPARAMETERS = {
    "Normal(nan, 1)": (
        lambda: ep.Normal(jnp.nan, 1.0),
        r"`Normal\(mean=\.\.\.\)` must be finite \(not NaN or inf\); got nan",
    ),
    "Normal(0, inf)": (
        lambda: ep.Normal(0.0, jnp.inf),
        r"`Normal\(sigma=\.\.\.\)` must be finite and > 0; got inf\. Pass a positive "
        r"`sigma`",
    ),
    "Normal(0, -1)": (
        lambda: ep.Normal(0.0, -1.0),
        r"`Normal\(sigma=\.\.\.\)` must be finite and > 0; got -1\.0\. Pass a positive",
    ),
    "Normal(0, 0)": (
        lambda: ep.Normal(0.0, 0.0),
        r"`Normal\(sigma=\.\.\.\)` must be finite and > 0; got 0\.0\. Pass a positive",
    ),
    "Normal(0, [1, nan])": (
        lambda: ep.Normal(0.0, jnp.array([1.0, jnp.nan])),
        r"`Normal\(sigma=\.\.\.\)` must be finite and > 0; got \[1\.0, nan\]",
    ),
    "Uniform(0, inf)": (
        lambda: ep.Uniform(0.0, jnp.inf),
        r"`Uniform\(high=\.\.\.\)` must be finite \(not NaN or inf\); got inf",
    ),
    "Uniform(-inf, 0)": (
        lambda: ep.Uniform(-jnp.inf, 0.0),
        r"`Uniform\(low=\.\.\.\)` must be finite \(not NaN or inf\); got -inf",
    ),
    "Uniform(-3e38, 3e38) float32": (
        lambda: ep.Uniform(F32(-3e38), F32(3e38)),
        r"`Uniform\(low, high\)`: `high - low` overflows float32.*Narrow the bounds "
        r"or use float64",
    ),
    "Uniform(1, 0)": (
        lambda: ep.Uniform(1.0, 0.0),
        r"`Uniform\(low, high\)` needs low < high; got low=1\.0, high=0\.0\. Swap or "
        r"widen the bounds",
    ),
    "Uniform(1, 1)": (
        lambda: ep.Uniform(1.0, 1.0),
        r"needs low < high; got low=1\.0, high=1\.0\. Swap or widen",
    ),
    "Uniform([0, 2], 1)": (
        lambda: ep.Uniform(jnp.array([0.0, 2.0]), 1.0),
        r"needs low < high; got low=\[0\.0, 2\.0\], high=1\.0\. Swap or widen",
    ),
    "LogNormal(1, 1e20) float32": (
        lambda: ep.LogNormal(F32(1.0), F32(1e20)),
        r"`LogNormal\(mean, sigma\)`: `sigma / mean` is too extreme for float32.*"
        r"Use a wider dtype or a less extreme ratio",
    ),
    "LogNormal(1, 1e-30) float32": (
        lambda: ep.LogNormal(F32(1.0), F32(1e-30)),
        r"`sigma / mean` is too extreme for float32.*less extreme ratio",
    ),
    "LogNormal(-1, 1)": (
        lambda: ep.LogNormal(-1.0, 1.0),
        r"`LogNormal\(mean=\.\.\.\)` must be finite and > 0; got -1\.0\. Pass a "
        r"positive `mean`",
    ),
    "LogNormal(0, 1)": (
        lambda: ep.LogNormal(0.0, 1.0),
        r"`LogNormal\(mean=\.\.\.\)` must be finite and > 0; got 0\.0",
    ),
    "HalfNormal(0)": (
        lambda: ep.HalfNormal(0.0),
        r"`HalfNormal\(sigma=\.\.\.\)` must be finite and > 0; got 0\.0\. Pass a "
        r"positive `sigma`",
    ),
    "HalfCauchy(-1)": (
        lambda: ep.HalfCauchy(-1.0),
        r"`HalfCauchy\(scale=\.\.\.\)` must be finite and > 0; got -1\.0\. Pass a "
        r"positive `scale`",
    ),
    "Exponential(inf)": (
        lambda: ep.Exponential(jnp.inf),
        r"`Exponential\(rate=\.\.\.\)` must be finite and > 0; got inf",
    ),
    "Exponential(nan)": (
        lambda: ep.Exponential(jnp.nan),
        r"`Exponential\(rate=\.\.\.\)` must be finite and > 0; got nan",
    ),
    "hierarchical sigma at -1": (
        lambda: ep.Normal(0.0, ep.Param(-1.0)),
        r"`Normal\(sigma=\.\.\.\)` must be finite and > 0; got -1\.0\. Pass a "
        r"positive `sigma`\. A hierarchical scale needs a positive prior such as "
        r"`ep\.HalfNormal`",
    ),
}


@pytest.mark.parametrize("case", list(BAD_HYPERPARAMETERS))
def test_bad_hyperparameter_is_refused(case):
    build, match = BAD_HYPERPARAMETERS[case]
    raises_and_keeps(build, None, ValueError, match=match)


def _traced_normal(sigma: Any) -> jax.Array:
    return ep.Param(0.5, prior=ep.Normal(0.0, sigma)).value


@pytest.mark.parametrize(
    "jit", [jax.jit, eqx.filter_jit], ids=["jax.jit", "filter_jit"]
)
def test_traced_bad_hyperparameter_keeps_our_message(jit):
    # Equinox's runtime error wraps the message (under `jax.jit` in JAX's
    # callback error); our text, with its fix, must be in it.
    with pytest.raises(Exception) as info:
        jax.block_until_ready(jit(_traced_normal)(-1.0))
    text = str(info.value)
    assert "`Normal(sigma=...)` must be finite and > 0" in text
    assert "Pass a positive `sigma`" in text
    assert float(jit(_traced_normal)(2.0)) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "build, message",
    [
        (
            lambda s: ep.LogNormal(1.0, s),
            "`LogNormal(sigma=...)` must be finite and > 0",
        ),
        (lambda s: ep.Normal(s, 1.0), "`Normal(mean=...)` must be finite"),
        (lambda s: ep.HalfCauchy(s), "`HalfCauchy(scale=...)` must be finite and > 0"),
    ],
    ids=["LogNormal-sigma", "Normal-mean", "HalfCauchy-scale"],
)
def test_traced_nan_hyperparameter(build, message):
    fn = eqx.filter_jit(lambda s: build(s).forward(jnp.zeros(())))
    with pytest.raises(Exception) as info:
        jax.block_until_ready(fn(jnp.nan))
    assert message in str(info.value)


def test_vmapped_bad_hyperparameter():
    fn = jax.vmap(lambda s: ep.Normal(0.0, s).forward(jnp.ones(())))
    with pytest.raises(Exception) as info:
        jax.block_until_ready(fn(jnp.array([1.0, -1.0])))
    assert "`Normal(sigma=...)` must be finite and > 0" in str(info.value)
    assert fn(jnp.array([1.0, 2.0])).tolist() == [1.0, 2.0]


def test_traced_message_has_no_placeholder():
    with pytest.raises(Exception) as info:
        jax.block_until_ready(eqx.filter_jit(_traced_normal)(-1.0))
    assert "must be finite and > 0" in str(info.value)
    assert "{value}" not in str(info.value)


@pytest.mark.parametrize(
    "build, value, message",
    [
        (lambda s: ep.Uniform(s, 1.0), 2.0, "needs low < high"),
        (lambda s: ep.Uniform(-s, s), F32(3e38), "`high - low` overflows"),
        (
            lambda s: ep.LogNormal(F32(1.0), s),
            F32(1e20),
            "`sigma / mean` is too extreme",
        ),
    ],
    ids=["Uniform-low>high", "Uniform-overflow", "LogNormal-ratio"],
)
def test_traced_joint_hyperparameter_checks(build, value, message):
    fn = eqx.filter_jit(lambda s: build(s).forward(jnp.zeros((), jnp.float32)))
    with pytest.raises(Exception, match=re.escape(message)):
        jax.block_until_ready(fn(value))


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


def test_traced_bad_hyperparameter_fails_at_run_time():
    build = eqx.filter_jit(lambda s: ep.Normal(0.0, s).forward(jnp.ones(2)))
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"positive `sigma`"):
        build(jnp.array(-1.0))
