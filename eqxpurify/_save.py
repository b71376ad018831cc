"""Checkpoints: `save` a model to a file and `load` it back into a template.

A checkpoint is Equinox's leaf serialisation (`eqx.tree_serialise_leaves`) framed
by a header and a trailer (`_save_file` holds the file's layout), so that a
file cut short, a file that is not a checkpoint, and a template that does not
match the saved model are each a clear error naming the first mismatching path,
never wrong values. The header holds one record per array leaf (`_save_header`);
the payload is each leaf as NumPy data (ml_dtypes floats as same-width unsigned
integers, PRNG keys as `jax.random.key_data`).

Leaves that are not arrays (functions, strings) are not saved; they come from the
template, as with Equinox.
"""

import importlib.metadata
import json
import os
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree

from ._save_file import corrupted, read_header, write
from ._save_header import (
    SCALARS,
    Leaf,
    array_leaves,
    check_saved_storage,
    describe,
    dtype_name,
    portable,
)
from ._save_match import X64_HINT, match, needs_x64

__all__ = ["load", "save"]

_T = TypeVar("_T")


# --- the payload: each leaf as a NumPy array -----------------------------------------


def _stored(x: Any) -> np.ndarray:
    """The NumPy array written for leaf `x`."""
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(x))
    arr = np.asarray(x)
    return arr.view(portable(arr.dtype))


def _write_leaf(f: Any, x: Any) -> None:
    """An `eqx.tree_serialise_leaves` filter spec: every leaf is saved with NumPy."""
    np.save(f, _stored(x), allow_pickle=False)


def _cause(e: BaseException) -> BaseException:
    """The error Equinox's `TreePathError` wraps (e.g. an `OSError`: disk full)."""
    while type(e).__name__ == "TreePathError" and e.__cause__ is not None:
        e = e.__cause__
    return e


# --- save ---------------------------------------------------------------------------


def save(path: str | os.PathLike, model: PyTree) -> None:
    """Save a model to a file, atomically, with a header that `load` checks.

    Every array leaf is saved bit for bit: Param latents, Fixed data, prior
    hyperparameters, plain arrays (an `eqx.nn.MLP`'s weights), integer arrays, PRNG
    key arrays, NumPy arrays and Python numbers, at any dtype (float64, bfloat16,
    float8, ...). Leaves that are not data (functions, strings) are not saved:
    [`eqxpurify.load`][] takes them from its template.

    The file is written to a temporary file in the same directory, flushed to
    disk and renamed onto `path`, so `path` always holds either the old file or
    the whole new one, even if the writer is killed. `path` is used as given (no
    suffix is added). A file that is replaced keeps its permissions, and a
    symbolic link is followed: the file it points to is replaced, the link kept.

    Arguments:
        path: the file to write (replaced if it exists).
        model: the model (any pytree). Its Params must be initialised.

    Raises:
        ValueError: the model holds an abstract Param or Fixed, a traced array
            (called under `jax.jit`), a leaf that is not numeric data, a Fixed
            whose storage was converted (its data is lost), or an array that was
            deleted (donated to a jitted function); each naming its path.

    Examples:
        >>> import os, shutil, tempfile
        >>> import equinox as eqx, jax.numpy as jnp, eqxpurify as ep
        >>> model = {"scale": ep.Param(2.0, prior=ep.LogNormal(1.0, 1.0)),
        ...          "x": ep.Fixed(jnp.arange(3.0, dtype=jnp.float32))}
        >>> directory = tempfile.mkdtemp()
        >>> path = os.path.join(directory, "model.ckpt")
        >>> ep.save(path, model)
        >>> like = {"scale": ep.Param(prior=ep.LogNormal(1.0, 1.0)),
        ...         "x": ep.Fixed(shape=(3,), dtype=jnp.float32)}
        >>> loaded = ep.load(path, like)
        >>> loaded["x"].value
        Array([0., 1., 2.], dtype=float32)
        >>> bool(eqx.tree_equal(loaded, model))
        True
        >>> shutil.rmtree(directory)
    """
    leaves, _, _ = array_leaves(model)
    records = [describe(leaf, saving=True) for leaf in leaves]
    check_saved_storage(leaves)
    writer_version = importlib.metadata.version("eqxpurify")
    header = json.dumps(
        {"writer": f"eqxpurify {writer_version}", "leaves": records},
        separators=(",", ":"),
    ).encode("utf-8")

    def payload(out: Any) -> None:
        try:
            eqx.tree_serialise_leaves(
                out, [leaf.value for leaf in leaves], filter_spec=_write_leaf
            )
        except RuntimeError as e:
            raise _cause(e) from None

    write(path, header, payload)


# --- load ---------------------------------------------------------------------------


def _template(record: dict[str, Any]) -> np.ndarray:
    """A zero-cost NumPy stand-in of the stored array, for Equinox's loader."""
    dtype = np.dtype(record["stored_dtype"])
    if dtype.kind not in "biufc":
        raise ValueError(f"stored dtype {dtype}")
    return np.broadcast_to(np.zeros((), dtype), tuple(record["stored_shape"]))


def _restore(
    name: str,
    current: list[Leaf],
    records: list[dict[str, Any]],
    stored: list[np.ndarray],
    all_leaves: list[Any],
) -> list[Any]:
    """All leaves of the loaded model: the template's, array leaves replaced.

    Each array leaf becomes its stored array, moved to the device in one batch
    per kind of placement, with the template leaf's sharding where it has one.
    """
    new = list(all_leaves)
    moves: list[tuple[int, dict[str, Any], np.ndarray, Any]] = []
    for leaf, record, arr in zip(current, records, stored):
        kind, like = record["type"], leaf.value
        if kind in SCALARS.values():
            new[leaf.index] = type(like)(arr.item())
        elif isinstance(like, np.ndarray | np.generic) or (
            kind == "numpy" and isinstance(like, jax.ShapeDtypeStruct)
        ):  # NumPy where the template has NumPy (or is abstract and NumPy was saved)
            arr = arr.view(np.dtype(like.dtype))
            new[leaf.index] = arr[()] if isinstance(like, np.generic) else arr
        else:
            if kind != "key":
                arr = arr.view(np.dtype(like.dtype))
            moves.append((leaf.index, record, arr, getattr(like, "sharding", None)))
    # Key data is placed unsharded and gets its key array's sharding once wrapped.
    shardings = [None if r["type"] == "key" else sh for _, r, _, sh in moves]
    placed: list[Any] = [None] * len(moves)
    for with_sharding in (True, False):  # one batched transfer each
        batch = [
            k for k, sh in enumerate(shardings) if (sh is not None) == with_sharding
        ]
        if batch:
            targets = [shardings[k] for k in batch] if with_sharding else None
            outs = jax.device_put([moves[k][2] for k in batch], targets)
            for k, out in zip(batch, outs):
                placed[k] = out
    for (index, record, _, sharding), out in zip(moves, placed):
        if record["type"] == "key":
            out = jax.random.wrap_key_data(out, impl=record["impl"])
            if sharding is not None:
                out = jax.device_put(out, sharding)
        if dtype_name(out.dtype) != record["dtype"]:
            raise ValueError(
                f"Cannot load `{name}`: the array at `{record['path']}` was saved as "
                f"{record['dtype']} but loads as {out.dtype}."
                + (X64_HINT if needs_x64(record["dtype"]) else "")
            )
        new[index] = out
    return new


def load(path: str | os.PathLike, like: _T) -> _T:
    """Load a model saved by [`eqxpurify.save`][] into a template of the same structure.

    The file's header is checked against `like` before any array is read: a file
    that is truncated, corrupted or not a checkpoint, and a template that differs
    from the saved model (another prior kind, a Param where a Fixed was saved,
    another shape or dtype, more or fewer arrays) each raise a `ValueError`
    naming the first mismatching path and what to do. A saved model loads back
    bit for bit.

    Arguments:
        path: a file written by `save`.
        like: a model of the same structure, e.g. built by the same code as the
            saved model. Its arrays may be abstract: `ep.Param(shape=...)`,
            `ep.Fixed(shape=...)`, `ep.shapes(model)` and
            `eqx.filter_eval_shape(Model, ...)` all serve, so a template costs no
            computation. Leaves that are not arrays (functions) are taken from it.

    Returns:
        `like` with every array replaced by the saved one (on the device and with
        the sharding of the template's array where it has one).

    Raises:
        ValueError: the file is truncated, corrupted or not a checkpoint, or does
            not match `like`.

    Examples:
        >>> import os, shutil, tempfile
        >>> import jax.numpy as jnp, eqxpurify as ep
        >>> directory = tempfile.mkdtemp()
        >>> path = os.path.join(directory, "theta.ckpt")
        >>> ep.save(path, {"theta": ep.Param(1.5, prior=ep.Normal(0.0, 2.0))})
        >>> like = {"theta": ep.Param(prior=ep.Normal())}  # hyperparameters load too
        >>> round(float(ep.load(path, like)["theta"].value), 4)
        1.5
        >>> ep.load(path, {"theta": ep.Param(prior=ep.LogNormal(1.0, 1.0))})
        Traceback (most recent call last):
        ...
        ValueError: Cannot load `...` into `like`: they differ at `['theta'].prior`:
        the saved model has `Normal`, `like` has `LogNormal`. ...
        >>> shutil.rmtree(directory)
    """
    name = os.fspath(path)
    current, all_leaves, treedef = array_leaves(like)
    with open(name, "rb") as f:
        records, payload_start, payload_size = read_header(f, name)
        match(name, records, current)
        try:
            templates = [_template(record) for record in records]
            f.seek(payload_start)
            stored = eqx.tree_deserialise_leaves(f, templates)
        except Exception as e:
            if isinstance(_cause(e), OSError):  # a failing disk, not a bad file
                raise _cause(e) from None
            raise corrupted(name, "its data does not match its header") from e
        if f.tell() != payload_start + payload_size:
            raise corrupted(name, "its data does not match its header")
    new = _restore(name, current, records, stored, all_leaves)
    return jtu.tree_unflatten(treedef, new)
