"""A checkpoint's header: the record of each array leaf of a model.

A model is described leaf by leaf, in `jax.tree_util` flattening order, counting
only the leaves that hold data (JAX and NumPy arrays, PRNG keys, Python
numbers). Each record holds the leaf's path (`a.b[0]['k']`), the class of every
`eqx.Module` on that path (so a `Normal` prior saved and a `LogNormal` in the
template differ, although their fields have the same names), the leaf's shape
and dtype, and the shape and dtype of the `ep.Param`/`ep.Fixed` holding it, as
users see them whatever the wrapper's storage. `_save_match` checks a template's
records against the saved ones.
"""

from typing import Any

import equinox as eqx
import jax
import jax.tree_util as jtu
import numpy as np
from jax.core import Tracer

from ._fixed import Fixed, check_storage
from ._wrapper_base import AbstractWrapper, deleted_error

__all__ = [
    "SCALARS",
    "Leaf",
    "array_leaves",
    "check_saved_storage",
    "describe",
    "dtype_name",
    "path_text",
    "portable",
]


SCALARS = {bool: "bool", int: "int", float: "float", complex: "complex"}


def _step(key: Any) -> str:
    """One step of a key path, written the way it is read (`.a`, `[0]`, `['k']`).

    The file format depends on this text, so it is ours rather than `jtu.keystr`.
    """
    if isinstance(key, jtu.GetAttrKey):
        return "." + key.name
    if isinstance(key, jtu.SequenceKey):
        return f"[{key.idx}]"
    if isinstance(key, jtu.DictKey):
        return f"[{key.key!r}]"
    if isinstance(key, jtu.FlattenedIndexKey):
        return f"[{key.key}]"
    return f"[{key!r}]"


def path_text(steps: list[str]) -> str:
    """The path of a leaf from its steps (`a.b[0]['k']`; `<model>` for the root)."""
    text = "".join(steps)
    return (text[1:] if text.startswith(".") else text) or "<model>"


_DTYPE_NAMES: dict[Any, str] = {}


def dtype_name(dtype: Any) -> str:
    """`str(dtype)`, cached (it is slow, and a model has few distinct dtypes)."""
    try:
        return _DTYPE_NAMES[dtype]
    except KeyError:
        name = _DTYPE_NAMES[dtype] = str(dtype)
        return name
    except TypeError:  # pragma: no cover - an unhashable dtype
        return str(dtype)


def _leaf_type(x: Any) -> str | None:
    """The kind of leaf `x` is for saving, or None for a leaf that is not data."""
    if isinstance(x, Tracer):
        return "traced"
    if isinstance(x, jax.Array | jax.ShapeDtypeStruct):
        is_key = jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
        return "key" if is_key else "array"
    if isinstance(x, np.ndarray | np.generic):
        return "numpy"
    return SCALARS.get(type(x))


class Leaf:
    """An array leaf of a model: where it is, what holds it, and its description."""

    def __init__(
        self,
        index: int,
        steps: list[str],
        nodes: list[str],
        value: Any,
        wrapper: dict[str, Any] | None,
    ):
        self.index = index  # position among all leaves of the model
        self.steps = steps
        self.nodes = nodes  # per step: the eqx.Module class stepped into, or ""
        self.value = value
        self.type = _leaf_type(value)
        self.wrapper = wrapper  # the Param/Fixed holding it directly, if any
        self.holder: Any = None  # that Param/Fixed itself

    @property
    def path(self) -> str:
        return path_text(self.steps)


def _wrapper_record(node: Any) -> dict[str, Any] | None:
    """The class, shape and dtype of an `ep.Param`/`ep.Fixed`, as users see them.

    Whatever the wrapper's storage; recorded for the leaves it holds directly.
    """
    if not isinstance(node, AbstractWrapper):
        return None
    try:
        shape, dtype = list(node.shape), dtype_name(node.dtype)
    except Exception:  # a wrapper that cannot say: compare its leaves only
        return None
    return {"class": type(node).__name__, "shape": shape, "dtype": dtype}


def _child(node: Any, key: Any) -> Any:
    """The child of pytree node `node` at `key`."""
    try:
        if isinstance(key, jtu.GetAttrKey):
            return getattr(node, key.name)
        if isinstance(key, jtu.SequenceKey):
            return node[key.idx]
        if isinstance(key, jtu.DictKey):
            return node[key.key]
    except Exception:  # a custom node: look the key up below
        pass
    children, _ = jtu.tree_flatten_with_path(node, is_leaf=lambda x: x is not node)
    for keypath, child in children:
        if keypath == (key,):
            return child
    raise AssertionError(f"eqxpurify internal error: no child at {key!r}")


def array_leaves(tree: Any) -> tuple[list[Leaf], list[Any], Any]:
    """The array leaves of `tree` with their paths, all its leaves, its treedef.

    The containers on each path are found by walking down from the root, sharing
    the walk with the previous leaf's path (so it costs about one step a leaf).
    """
    with_paths, treedef = jtu.tree_flatten_with_path(tree)
    found: list[Leaf] = []
    keys: list[Any] = []  # the key path of the last leaf walked to
    chain: list[Any] = [tree]  # chain[k]: the node at keys[:k]
    steps: list[str] = []
    names: list[str] = []  # names[k]: the Module class of chain[k], or ""
    wrappers: dict[int, dict[str, Any] | None] = {}
    for index, (keypath, leaf) in enumerate(with_paths):
        if _leaf_type(leaf) is None:
            continue
        k, n = 0, min(len(keypath), len(keys))
        while k < n and keypath[k] == keys[k]:
            k += 1
        del keys[k:], chain[k + 1 :], steps[k:], names[k:]
        for key in keypath[k:]:
            node = chain[-1]
            names.append(type(node).__name__ if isinstance(node, eqx.Module) else "")
            keys.append(key)
            steps.append(_step(key))
            chain.append(_child(node, key))
        wrapper, parent = None, None
        if len(chain) > 1:
            parent = chain[-2]
            if id(parent) not in wrappers:
                wrappers[id(parent)] = _wrapper_record(parent)
            wrapper = wrappers[id(parent)]
        found.append(Leaf(index, list(steps), list(names), leaf, wrapper))
        if wrapper is not None:
            found[-1].holder = parent
    all_leaves = [leaf for _, leaf in with_paths]
    return found, all_leaves, treedef


def check_saved_storage(leaves: list[Leaf]) -> None:
    """Refuse to save data that is lost: a Fixed whose storage was converted.

    E.g. by a blanket `jax.tree.map(lambda x: x.astype(jnp.float32), model)`, or
    an array deleted by donation (saved, it would load as wrong values).
    """
    for leaf in leaves:
        if isinstance(leaf.holder, Fixed) and leaf.steps[-1] == ".stored":
            try:
                check_storage(leaf.holder, path_text(leaf.steps[:-1]))
            except ValueError as e:
                raise ValueError(f"Cannot save the model: {e}") from None
        x = leaf.value
        if isinstance(x, jax.Array) and not isinstance(x, Tracer) and x.is_deleted():
            raise ValueError(
                f"Cannot save the model: {deleted_error(leaf.path, 'array')}"
            )


def portable(dtype: np.dtype) -> np.dtype:
    """The dtype `np.save` stores data of `dtype` as.

    That is `dtype` itself, or for the ml_dtypes types (bfloat16, float8, int4,
    ...) the unsigned integer of the same width.
    """
    if dtype.kind in "biufc":
        return dtype
    return np.dtype(f"u{dtype.itemsize}")


def describe(leaf: Leaf, saving: bool) -> dict[str, Any]:
    """The header record of `leaf` (raising on a leaf that cannot be saved)."""
    x, kind = leaf.value, leaf.type
    if kind == "traced":
        raise ValueError(
            f"{'Cannot save the model' if saving else 'Cannot load into `like`'}: "
            f"the array at `{leaf.path}` is a JAX tracer (this was called inside "
            "`jax.jit`, `grad` or `vmap`). Call `ep.save`/`ep.load` outside "
            "transformed functions."
        )
    if saving and isinstance(x, jax.ShapeDtypeStruct):
        raise ValueError(
            f"Cannot save the model: the array at `{leaf.path}` is abstract (a "
            "`jax.ShapeDtypeStruct`: a Param or Fixed with a shape but no value "
            "yet). Initialise it first, e.g. `ep.normal(model, key=key)`."
        )
    record: dict[str, Any] = {"path": leaf.path, "steps": leaf.steps}
    record["nodes"] = leaf.nodes
    record["type"] = kind
    if isinstance(x, jax.ShapeDtypeStruct):
        record["abstract"] = True
    if leaf.wrapper is not None:
        record["wrapper"] = leaf.wrapper
    if kind in ("array", "key", "numpy"):
        record["shape"] = [int(d) for d in np.shape(x)]
        record["dtype"] = dtype_name(x.dtype)
    else:
        record["shape"], record["dtype"] = [], kind
    if not saving:
        return record
    if kind == "key":
        data = jax.eval_shape(jax.random.key_data, x)
        record["impl"] = str(jax.random.key_impl(x))  # pyright: ignore
        shape, dtype = tuple(data.shape), np.dtype(data.dtype)
    else:
        stored = x if kind == "array" else np.asarray(x)
        shape, dtype = tuple(np.shape(stored)), np.dtype(stored.dtype)
        plain = dtype.kind in "biufc" or (
            dtype.kind == "V"
            and dtype.fields is None
            and dtype.itemsize in (1, 2, 4, 8)
        )
        if not plain:
            raise ValueError(
                f"Cannot save the model: the leaf at `{leaf.path}` ({x!r:.60}) is "
                f"not numeric data (dtype {stored.dtype}). Store it as a static "
                "field (`eqx.field(static=True)`) or as an array."
            )
        dtype = portable(dtype)
    record["stored_shape"], record["stored_dtype"] = list(shape), dtype.str
    return record
