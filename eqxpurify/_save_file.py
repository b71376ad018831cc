r"""A checkpoint file: its layout, written atomically, its framing read back.

The framing around the model's data, and every check of it on loading: a file
cut short, a file that is not a checkpoint, a corrupted one and one with bytes
appended are each a clear error. The layout (integers little-endian):

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
"""

import contextlib
import hashlib
import json
import mmap
import os
import secrets
import stat
import struct
from collections.abc import Callable
from typing import Any

__all__ = ["END", "MAGIC", "corrupted", "read_header", "write"]

MAGIC = b"\x89eqxpurify\r\n\x1a\n"
END = b"\x89eqxend\n"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<IQ")  # format version, header length
_TRAILER = struct.Struct("<Q32s8s")  # payload length, SHA-256, end marker
_START = len(MAGIC) + _PREFIX.size
_NUMPY_MAGIC = b"\x93NUMPY"
_CHUNK = 1 << 20


# --- write ------------------------------------------------------------------------


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


def write(
    path: str | os.PathLike, header: bytes, payload: Callable[[Any], None]
) -> None:
    """Write a checkpoint to `path` atomically: `header`, then what `payload` writes.

    `payload` is given the file to write the data to. The file is written to a
    temporary file in the same directory, flushed to disk and renamed onto
    `path` (through symbolic links), so `path` holds either the old file or the
    whole new one.
    """
    target = os.path.realpath(os.fspath(path))  # through symbolic links
    fd, temp = _open_temporary(target)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC)
            out = _HashingWriter(f)
            out.write(_PREFIX.pack(FORMAT_VERSION, len(header)))
            out.write(header)
            framing = out.count
            payload(out)
            size = out.count - framing
            f.write(_TRAILER.pack(size, out.hash.digest(), END))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(target)))


# --- read -------------------------------------------------------------------------


def _truncated(name: str, detail: str) -> ValueError:
    return ValueError(
        f"Cannot load `{name}`: the file is truncated ({detail}): it was cut short, "
        "e.g. by a copy or download that did not finish. `ep.save` writes "
        "atomically, so save the model again or restore the file from a backup."
    )


def corrupted(name: str, detail: str) -> ValueError:
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


def read_header(f: Any, name: str) -> tuple[list[dict[str, Any]], int, int]:
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
        raise corrupted(name, f"format version {version}")
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
        raise corrupted(
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
        raise corrupted(name, "its SHA-256 checksum does not match its contents")
    f.seek(_START)
    try:
        records = json.loads(f.read(header_size).decode("utf-8"))["leaves"]
    except (ValueError, KeyError, TypeError) as e:
        raise corrupted(name, "its header is not valid") from e
    return records, payload_start, payload_size
