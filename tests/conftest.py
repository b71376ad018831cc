"""Shared test configuration.

- Strict dtype promotion, so a silent float32 -> float64 upcast is an error.
- `EQXPURIFY_TEST_X64=1` runs the whole suite with `jax_enable_x64`; CI runs it
  both ways. `FLOAT_DTYPES` lists the float dtypes available in this run.
- `raises_and_keeps`: a call fails with the expected error and message, and the
  model it was given is left as it was.
- Helpers that several test files share (the models they share are in
  `tests/models.py`: this file imports no eqxpurify at module level, since
  jaxtyping's import hook must see the package imported first).
"""

import importlib.util
import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

X64 = os.environ.get("EQXPURIFY_TEST_X64", "0") == "1"
jax.config.update("jax_enable_x64", X64)
jax.config.update("jax_numpy_dtype_promotion", "strict")

FLOAT_DTYPES = [jnp.float32, jnp.float64] if X64 else [jnp.float32]
DEFAULT_FLOAT = jnp.float64 if X64 else jnp.float32


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8):
    return bool(eqx.tree_equal(x, y, typematch=True, rtol=rtol, atol=atol))


def fingerprint(model: Any) -> list[Any]:
    """Every leaf's path, type, shape, dtype and bytes, and the tree structure.

    NumPy arrays are copied (they are mutable); typed PRNG keys are read as their
    key data."""
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
    call: Callable[[], Any],
    model: Any,
    error_type: type[BaseException] | tuple[type[BaseException], ...],
    *phrases: str,
    match: str | None = None,
) -> pytest.ExceptionInfo:
    """`call()` raises `error_type`, and leaves `model` unchanged.

    Each of `phrases` (plain text: the path, the cause, the fix) must be in the
    error message; `match`, a regular expression, is searched in it where the
    wording varies (a dtype name, one of several spellings). `model` is what the
    call was given (a model, a tuple of several arguments, or `None` for nothing):
    its tree structure and every leaf, bit for bit, must be as before.
    """
    before = fingerprint(model)
    with pytest.raises(error_type, match=match) as info:
        call()
    message = str(info.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} is not in the message {message!r}"
    assert fingerprint(model) == before, "a failed call changed the model"
    return info


def close(a: Any, b: Any, dtype: Any) -> None:
    """Equal up to the rounding of `prior.inverse(prior.forward(z))` in `dtype`."""
    eps = float(jnp.finfo(dtype).eps)
    np.testing.assert_allclose(
        np.asarray(a, np.float64),
        np.asarray(b, np.float64),
        rtol=256 * eps,
        atol=256 * eps,
    )


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


ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


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


# --------------------------------------------------------------------------------
# Checks that need a fresh Python: several CPU devices, or no jaxtyping hook (the
# suite's hook rejects some bad inputs before the library's own check sees
# them; users without the hook get the library's message). The script imports
# eqxpurify from this checkout (so mutmut's mutants and its active-mutant
# variable reach it too) and prints one JSON object.

_OUTSIDE: dict[str, dict] = {}


def outside(*parts: str, devices: int = 4) -> dict:
    """Run the script `parts` in a fresh Python with `devices` CPU devices.

    Returns the JSON object it printed last.
    """
    script = "".join(textwrap.dedent(part) for part in parts)
    key = f"{devices}:{script}"
    if key not in _OUTSIDE:
        env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={devices}"
        )
        head = "import json, jax, jax.numpy as jnp, numpy as np, eqxpurify as ep\n"
        proc = subprocess.run(
            [sys.executable, "-c", head + script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        _OUTSIDE[key] = json.loads(proc.stdout.strip().splitlines()[-1])
    return _OUTSIDE[key]


# A script's `error_of(f)`: `[type name, message]` of what `f()` raises, or None.
ERROR_OF = """
def error_of(f):
    try:
        f()
    except Exception as e:
        return [type(e).__name__, str(e)]
    return None
"""


def error_has(got: Any, error_type: str, *phrases: str) -> None:
    """An `error_of` result from a script: `error_type`, with each of `phrases`."""
    assert got is not None and got[0] == error_type, got
    for phrase in phrases:
        assert phrase in got[1], f"{phrase!r} is not in the message {got[1]!r}"
