r"""Checkpoints: `save` a model to a file and `load` it back into a template.

A checkpoint is Equinox's leaf serialisation (`eqx.tree_serialise_leaves`) framed
by a small header and a trailer, so that a file cut short, a file that is not a
checkpoint, and a template that does not match the saved model are each a clear
error naming the first mismatching path, never wrong values. The layout
(integers little-endian):

    offset 0       magic, 14 bytes: b"\x89eqxpurify\r\n\x1a\n"
    14             format version, uint32 (this module writes and reads 1)
    18             header length H, uint64
    26             header: H bytes of UTF-8 JSON, one record per array leaf in
                   flattening order: its path (`a.b[0]['k']`), the class of each
                   `eqx.Module` on the path (so a changed prior kind is caught),
                   the shape and dtype of the leaf and of the `ep.Param`/`ep.Fixed`
                   holding it, and the shape and dtype as stored
    26 + H         payload: `eqx.tree_serialise_leaves` of the stored arrays (each
                   leaf as NumPy data: ml_dtypes floats as same-width unsigned
                   integers, PRNG keys as `jax.random.key_data`)
    26 + H + P     trailer, 48 bytes: P as uint64, the SHA-256 of bytes [14, 26 + H
                   + P), and the end marker b"\x89eqxend\n"

Leaves that are not arrays (functions, strings) are not saved; they come from the
template, as with Equinox.
"""

import contextlib
import hashlib
import importlib.metadata
import json
import mmap
import os
import secrets
import stat
import struct
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.tree_util as jtu
import numpy as np
from jaxtyping import PyTree

from ._save_header import (
    SCALARS,
    X64_HINT,
    Leaf,
    array_leaves,
    check_saved_storage,
    concrete_fixed,
    describe,
    dtype_name,
    is_fixed_node,
    match,
    needs_x64,
    portable,
)

__all__ = ["load", "save"]

_T = TypeVar("_T")

MAGIC = b"\x89eqxpurify\r\n\x1a\n"
END = b"\x89eqxend\n"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<IQ")  # format version, header length
_TRAILER = struct.Struct("<Q32s8s")  # payload length, SHA-256, end marker
_START = len(MAGIC) + _PREFIX.size
_NUMPY_MAGIC = b"\x93NUMPY"
_CHUNK = 1 << 20


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


class _HashingWriter:
    """A binary file that hashes and counts the bytes written through it."""

    def __init__(self, file: Any):
        self.file = file
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, data: Any) -> int:
        self.hash.update(data)
        self.count += memoryview(data).nbytes
        return self.file.write(data)


def _open_temporary(target: str) -> tuple[int, str]:
    """A new file next to `target` (same directory, so `os.replace` is atomic).

    It gets the permissions of the file it replaces (a private `0600` checkpoint
    stays private), or the default ones for a new file.
    """
    directory, name = os.path.split(os.path.abspath(target))
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = None
    while True:
        temp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
            fd = os.open(temp, flags, 0o600 if mode is not None else 0o666)
        except FileExistsError:  # pragma: no cover - a 48-bit name collision
            continue
        if mode is not None:
            try:
                os.chmod(temp, mode)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
        return fd, temp


def _fsync_directory(directory: str) -> None:
    """Make a rename in `directory` durable (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


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
    target = os.path.realpath(os.fspath(path))  # through symbolic links
    fd, temp = _open_temporary(target)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC)
            out = _HashingWriter(f)
            out.write(_PREFIX.pack(FORMAT_VERSION, len(header)))
            out.write(header)
            framing = out.count
            try:
                eqx.tree_serialise_leaves(
                    out, [leaf.value for leaf in leaves], filter_spec=_write_leaf
                )
            except RuntimeError as e:
                raise _cause(e) from None
            payload = out.count - framing
            f.write(_TRAILER.pack(payload, out.hash.digest(), END))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(target)))


# --- load ---------------------------------------------------------------------------


def _truncated(name: str, detail: str) -> ValueError:
    return ValueError(
        f"Cannot load `{name}`: the file is truncated ({detail}): it was cut short, "
        "e.g. by a copy or download that did not finish. `ep.save` writes "
        "atomically, so save the model again or restore the file from a backup."
    )


def _corrupted(name: str, detail: str) -> ValueError:
    return ValueError(
        f"Cannot load `{name}`: the file is corrupted ({detail}). Save the model "
        "again or restore the file from a backup."
    )


def _whole_length(f: Any, payload_start: int, size: int) -> int | None:
    """The length of a whole checkpoint at the start of a file with bytes appended.

    None if there is none: the first end marker whose trailer gives the right
    length and checksum ends it.
    """
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        at = data.find(END, payload_start + _TRAILER.size - len(END))
        while at != -1:
            stop = at + len(END)
            payload_size, digest, _ = _TRAILER.unpack(data[stop - _TRAILER.size : stop])
            if payload_start + payload_size + _TRAILER.size == stop:
                with memoryview(data) as view:
                    check = hashlib.sha256(view[len(MAGIC) : stop - _TRAILER.size])
                if check.digest() == digest:
                    return stop if stop < size else None
            at = data.find(END, at + 1)
    return None


def _check_extra_bytes(f: Any, name: str, payload_start: int, size: int) -> None:
    """Raise if the file is a whole checkpoint with bytes appended to it."""
    whole = _whole_length(f, payload_start, size)
    if whole is not None:
        raise ValueError(
            f"Cannot load `{name}`: the file has {size - whole} extra bytes after "
            f"the end of the checkpoint (its first {whole} bytes are a whole "
            "checkpoint; something was appended to it). Remove them (keep the "
            f"first {whole} bytes), or save the model again."
        )


def _read_header(f: Any, name: str) -> tuple[list[dict[str, Any]], int, int]:
    """Check the framing of an open checkpoint; its records and payload extent."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(_START)
    if head[: len(MAGIC)] != MAGIC[: len(head)]:
        hint = (
            " It looks like a file written by `eqx.tree_serialise_leaves`: load it "
            "with `eqx.tree_deserialise_leaves(path, like)`."
            if head.startswith(_NUMPY_MAGIC)
            else ""
        )
        raise ValueError(
            f"Cannot load `{name}`: it is not a checkpoint written by `ep.save` (it "
            f"does not start with eqxpurify's magic bytes).{hint} Check the path."
        )
    if len(head) < _START:
        if not head:
            raise _truncated(name, "it is empty")
        part = "magic bytes" if len(head) < len(MAGIC) else "format version"
        raise _truncated(name, f"it ends after {len(head)} bytes, inside the {part}")
    version, header_size = _PREFIX.unpack(head[len(MAGIC) :])
    if version > FORMAT_VERSION:
        raise ValueError(
            f"Cannot load `{name}`: it was written in checkpoint format {version} "
            "by a newer eqxpurify; this one reads format "
            f"{FORMAT_VERSION}. Upgrade eqxpurify (`pip install -U eqxpurify`)."
        )
    if version < 1:
        raise _corrupted(name, f"format version {version}")
    payload_start = _START + header_size
    if size < payload_start:
        raise _truncated(
            name, f"it ends after {size} bytes, inside its {header_size}-byte header"
        )
    if size < payload_start + _TRAILER.size:
        raise _truncated(name, f"it ends after {size} bytes, inside the data")
    f.seek(size - _TRAILER.size)
    payload_size, digest, end = _TRAILER.unpack(f.read(_TRAILER.size))
    if end != END:
        _check_extra_bytes(f, name, payload_start, size)
        raise _truncated(name, f"it ends after {size} bytes, without the end marker")
    if payload_start + payload_size + _TRAILER.size != size:
        _check_extra_bytes(f, name, payload_start, size)
        raise _corrupted(
            name,
            f"{size} bytes, but its trailer says "
            f"{payload_start + payload_size + _TRAILER.size}",
        )
    f.seek(len(MAGIC))
    check = hashlib.sha256()
    left = payload_start + payload_size - len(MAGIC)
    while left:
        chunk = f.read(min(left, _CHUNK))
        if not chunk:  # pragma: no cover - the file shrank while being read
            raise _truncated(name, "it shrank while being read")
        check.update(chunk)
        left -= len(chunk)
    if check.digest() != digest:
        raise _corrupted(name, "its SHA-256 checksum does not match its contents")
    f.seek(_START)
    try:
        records = json.loads(f.read(header_size).decode("utf-8"))["leaves"]
    except (ValueError, KeyError, TypeError) as e:
        raise _corrupted(name, "its header is not valid") from e
    return records, payload_start, payload_size


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
    like_filled = jtu.tree_map(concrete_fixed, like, is_leaf=is_fixed_node)
    current, all_leaves, treedef = array_leaves(like_filled)
    with open(name, "rb") as f:
        records, payload_start, payload_size = _read_header(f, name)
        match(name, records, current)
        try:
            templates = [_template(record) for record in records]
            f.seek(payload_start)
            stored = eqx.tree_deserialise_leaves(f, templates)
        except Exception as e:
            if isinstance(_cause(e), OSError):  # a failing disk, not a bad file
                raise _cause(e) from None
            raise _corrupted(name, "its data does not match its header") from e
        if f.tell() != payload_start + payload_size:
            raise _corrupted(name, "its data does not match its header")
    new = _restore(name, current, records, stored, all_leaves)
    return jtu.tree_unflatten(treedef, new)
