"""The public API is annotated, and the suite runs with jaxtyping checking it.

`pyproject.toml` passes `--jaxtyping-packages=eqxpurify,beartype.beartype` to
pytest, so every annotated eqxpurify function checks its arguments at run time
(shapes and dtypes included) throughout the test suite.
"""

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import jaxtyping
import pytest

import eqxpurify as ep


def model() -> Any:
    return {"w": ep.Param(shape=(2, 3)), "b": ep.Param(shape=(3,))}


def test_runtime_checking_is_on_for_eqxpurify():
    # Without the jaxtyping import hook, JAX itself would raise a plain TypeError
    # deep inside `jax.random`; with it, the call is rejected at the boundary.
    with pytest.raises(jaxtyping.TypeCheckError, match="parameter 'key'"):
        ep.normal(model(), key=1.5)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize(
    "key",
    [
        jax.random.split(jax.random.key(0), 2),  # a batch of keys, not one key
        jnp.zeros((3,), jnp.uint32),  # raw key data of the wrong length
        jnp.zeros((2, 2), jnp.uint32),  # a batch of raw keys
        jnp.zeros((2,), jnp.float32),  # right shape, wrong dtype
    ],
    ids=["typed-batch", "uint32[3]", "uint32[2,2]", "float32[2]"],
)
def test_wrongly_shaped_key_is_caught(key):
    template = model()
    with pytest.raises(jaxtyping.TypeCheckError, match="parameter 'key'"):
        ep.normal(template, key=key)
    assert all(p.is_abstract for p in jax.tree.leaves(template, is_leaf=ep.is_param))


def test_wrong_dtype_to_a_prior_is_caught():
    # `forward` is annotated `Float[Array, "..."]`: an integer latent is rejected.
    with pytest.raises(jaxtyping.TypeCheckError, match="parameter 'z'"):
        ep.Normal(0.0, 1.0).forward(jnp.arange(3))


def test_wrong_type_to_a_constructor_is_caught():
    with pytest.raises(TypeError, match="prior"):
        ep.Param(prior="normal")  # pyright: ignore[reportArgumentType]


def test_correct_arguments_pass_the_checks():
    out = ep.normal(model(), key=jax.random.key(0))
    out = ep.normal(out, key=jax.random.PRNGKey(0))  # raw uint32[2] keys too
    flat, unravel = ep.ravel(out)
    assert flat.shape == (9,)
    assert unravel(flat)["w"].shape == (2, 3)


# --- Every public function and class is annotated ---------------------------


def public_callables() -> Iterator[tuple[str, Callable[..., Any]]]:
    """Every public function, and every public method/constructor of a class."""
    for name in ep.__all__:
        obj = getattr(ep, name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr not in ("__init__", "__call__"):
                    continue
                if isinstance(member, classmethod | staticmethod):
                    member = member.__func__
                elif isinstance(member, property):
                    member = member.fget
                if inspect.isfunction(member):
                    yield f"{name}.{attr}", member
        elif inspect.isfunction(obj) or callable(obj):
            yield name, obj


def test_public_api_is_listed():
    names = dict(public_callables())
    for name in ["normal", "partition", "ravel", "Param.__init__", "Unravel.__call__"]:
        assert name in names


def test_every_public_callable_is_fully_annotated():
    missing = []
    for name, fn in public_callables():
        signature = inspect.signature(fn)
        for arg, parameter in signature.parameters.items():
            if arg in ("self", "cls"):
                continue
            if parameter.annotation is inspect.Parameter.empty:
                missing.append(f"{name}({arg})")
        if (
            fn.__name__ != "__init__"
            and signature.return_annotation is inspect.Signature.empty
        ):
            missing.append(f"{name} -> return")
    assert not missing, f"Unannotated: {', '.join(missing)}"
