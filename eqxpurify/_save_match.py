"""A saved header checked against a template: the first difference, explained.

`match` compares the records of a checkpoint (`_save_header`) with those of the
template `like`, leaf by leaf, and raises at the first difference: another
class on the path (a prior of another kind), other fields, a Param or Fixed of
another shape or dtype, another type of leaf, more or fewer arrays. Each error
names the path and the fix, with a hint where 64-bit mode is the cause.
"""

from typing import Any

import jax
import numpy as np

from ._save_header import Leaf, describe, path_text

__all__ = ["X64_HINT", "match", "needs_x64"]


_TYPE_NAMES = {
    "array": "a JAX array",
    "key": "a JAX PRNG key array",
    "numpy": "a NumPy array",
    "bool": "a Python bool",
    "int": "a Python int",
    "float": "a Python float",
    "complex": "a Python complex",
}


X64_HINT = (
    " The file holds 64-bit data: turn on `jax_enable_x64` "
    '(`jax.config.update("jax_enable_x64", True)`, or `with jax.enable_x64(True):`) '
    "before building `like` and loading."
)


def _shape_str(shape: list[int]) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def _mismatch(name: str, where: str, saved: str, current: str, fix: str) -> ValueError:
    return ValueError(
        f"Cannot load `{name}` into `like`: they differ at `{where}`: the saved "
        f"model has {saved}, `like` has {current}. {fix}"
    )


def needs_x64(dtype: str) -> bool:
    """Whether arrays of `dtype` (a name) need `jax_enable_x64` and it is off."""
    if jax.config.read("jax_enable_x64"):
        return False
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return False
    return dt.itemsize == (16 if dt.kind == "c" else 8) and dt.kind in "iufc"


X32_HINT = (
    " The file holds 32-bit data, and this session has `jax_enable_x64` on, so "
    "`like` was built in 64 bits: build it with 64-bit mode off "
    "(`with jax.enable_x64(False): like = ...`); the loaded arrays keep their "
    "saved dtypes."
)


def _narrow_hint(saved: str, current: str) -> str:
    """`X32_HINT` where a 32-bit file meets a template built with x64 on."""
    if not jax.config.read("jax_enable_x64"):
        return ""
    try:
        s, c = np.dtype(saved), np.dtype(current)
    except TypeError:
        return ""
    if s.kind == c.kind and s.kind in "iufc" and c.itemsize == 2 * s.itemsize:
        return X32_HINT
    return ""


def _wrapper_fix(
    steps: list[str], saved: dict[str, Any], current: dict[str, Any]
) -> str:
    """What to do about a Param/Fixed of another shape or dtype than the saved one."""
    hint = X64_HINT if needs_x64(saved["dtype"]) else ""
    narrow = _narrow_hint(saved["dtype"], current["dtype"])
    if narrow:
        return "Build `like` with the saved dtypes." + narrow
    if ".prior" in steps[:-1]:  # a prior's hyperparameter: its constructor decides
        return (
            "Give the prior that hyperparameter's shape and dtype (e.g. "
            "`ep.Normal(jnp.zeros(3, jnp.float32), 1.0)`)." + hint
        )
    return "Give the template the saved shape and dtype (`shape=`, `dtype=`)." + hint


def _compare(name: str, saved: dict[str, Any], current: dict[str, Any], i: int) -> None:
    """Raise a clear error at the first difference of two leaf records."""
    s_steps, c_steps = saved["steps"], current["steps"]
    for k in range(min(len(s_steps), len(c_steps))):
        s_node, c_node = saved["nodes"][k], current["nodes"][k]
        if s_node != c_node:
            raise _mismatch(
                name,
                path_text(s_steps[:k]),
                f"`{s_node}`" if s_node else "a plain container",
                f"`{c_node}`" if c_node else "a plain container",
                "Build `like` with the same classes as the saved model: the same "
                "priors (a prior's kind is part of the model), modules and "
                "containers, and the same Params frozen with `ep.freeze`.",
            )
        if s_steps[k] != c_steps[k]:
            break
    if s_steps != c_steps:
        raise ValueError(
            f"Cannot load `{name}` into `like`: array leaf {i} of the saved model is "
            f"`{saved['path']}`, but in `like` it is `{current['path']}`. Build "
            "`like` with the same fields, in the same order, as the saved model."
        )
    where = saved["path"]
    s_wrap, c_wrap = saved.get("wrapper"), current.get("wrapper")
    if s_wrap and c_wrap and s_wrap != c_wrap:
        where = path_text(s_steps[:-1])
        kind = f"ep.{s_wrap['class']}"
        raise _mismatch(
            name,
            where,
            f"an `{kind}` of shape {_shape_str(s_wrap['shape'])} and dtype "
            f"{s_wrap['dtype']}",
            f"one of shape {_shape_str(c_wrap['shape'])} and dtype {c_wrap['dtype']}",
            _wrapper_fix(s_steps, s_wrap, c_wrap),
        )
    # NumPy and JAX arrays load into each other (a host copy made with
    # `jax.device_get` loads into the model on devices, and back): the template
    # says which one comes back.
    arrays = {"numpy", "array"}
    if saved["type"] != current["type"] and not (
        saved["type"] in arrays and current["type"] in arrays
    ):
        raise _mismatch(
            name,
            where,
            _TYPE_NAMES.get(saved["type"], str(saved["type"])),
            _TYPE_NAMES.get(current["type"], str(current["type"])),
            "Build `like` with leaves of the same types as the saved model.",
        )
    if saved["shape"] != current["shape"] or saved["dtype"] != current["dtype"]:
        raise _mismatch(
            name,
            where,
            f"an array of shape {_shape_str(saved['shape'])} and dtype "
            f"{saved['dtype']}",
            f"one of shape {_shape_str(current['shape'])} and dtype {current['dtype']}",
            "Build `like` with the saved sizes and dtypes."
            + (X64_HINT if needs_x64(saved["dtype"]) else "")
            + _narrow_hint(saved["dtype"], current["dtype"]),
        )


def match(name: str, saved: list[dict[str, Any]], current: list[Leaf]) -> None:
    """Raise a clear error at the first difference of `current` from `saved`."""
    records = [describe(leaf, saving=False) for leaf in current]
    for i, (s, c) in enumerate(zip(saved, records)):
        _compare(name, s, c, i)
    if len(saved) > len(records):
        raise ValueError(
            f"Cannot load `{name}` into `like`: the file holds {len(saved)} arrays "
            f"but `like` has {len(records)}; the saved `{saved[len(records)]['path']}`"
            " (and any after it) has no place in `like`. Build `like` with all the "
            "fields of the saved model: `ep.load` never drops saved data."
        )
    if len(saved) < len(records):
        raise ValueError(
            f"Cannot load `{name}` into `like`: the file holds {len(saved)} arrays "
            f"but `like` has {len(records)}; `like` has "
            f"`{records[len(saved)]['path']}` (and any after it), which the file "
            "does not hold. Build `like` with the same fields as the saved model."
        )
