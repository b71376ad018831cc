"""Shared test configuration.

- Strict dtype promotion, so a silent float32 -> float64 upcast is an error.
- `EQXPURIFY_TEST_X64=1` runs the whole suite with `jax_enable_x64`; CI runs it
  both ways. `FLOAT_DTYPES` lists the float dtypes available in this run.
"""

import importlib.util
import itertools
import os
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

X64 = os.environ.get("EQXPURIFY_TEST_X64", "0") == "1"
jax.config.update("jax_enable_x64", X64)
jax.config.update("jax_numpy_dtype_promotion", "strict")

FLOAT_DTYPES = [jnp.float32, jnp.float64] if X64 else [jnp.float32]
DEFAULT_FLOAT = jnp.float64 if X64 else jnp.float32


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8):
    return bool(eqx.tree_equal(x, y, typematch=True, rtol=rtol, atol=atol))


@pytest.fixture
def getkey():
    """`getkey()` returns a fresh PRNG key each call (deterministic per test)."""
    counter = itertools.count()

    def _getkey():
        return jax.random.key(next(counter))

    return _getkey


@pytest.fixture
def standard_promotion():
    """Standard dtype promotion for one test: optax's own updates (e.g. adamw's
    bias correction, float ** int32 step count) are not strict-promotion clean."""
    with jax.numpy_dtype_promotion("standard"):
        yield


@pytest.fixture(params=FLOAT_DTYPES, ids=lambda d: jnp.dtype(d).name)
def float_dtype(request):
    return request.param


@pytest.fixture
def unchecked_types():
    """One test without jaxtyping's argument checks, as users run: the library's
    own message for an argument of the wrong type, not the type checker's."""
    import jaxtyping

    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    """Import `examples/<name>.py` as a module (the examples are not a package)."""
    module_name = f"_eqxpurify_example_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
