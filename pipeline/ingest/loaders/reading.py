"""Reading a source's files safely: regular files only, never more than a limit.

A folder given to ``lcrag ingest`` may be untrusted. A FIFO named ``.txt`` would
block the run forever and a symlink to ``/dev/zero`` would fill memory, so a path
is stat'ed before it is opened (only regular files are), opened without
blocking, checked again on the open descriptor (it may have been swapped in
between), and read to at most ``limit + 1`` bytes: an over-long file is noticed
without being read whole. Gzipped files are bounded after decompression too.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import zlib
from pathlib import Path
from typing import Any

from lcrag.pipeline.ingest.loaders.base import MIB, ResultBuilder, SourceFormatError, failure_reason, os_reason
from lcrag.pipeline.ingest.loaders.decoding import decode_text

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(mode: int) -> str:
    """What a stat mode is, in words ("a FIFO"); "a regular file" for one."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def describe_size(n_bytes: int) -> str:
    return f"{n_bytes / MIB:.1f} MiB" if n_bytes >= MIB else f"{n_bytes} bytes"


def too_large(limit: int, size: int | None = None, what: str = "file") -> SourceFormatError:
    """The skip reason of a file over the limit (its size when known)."""
    known = f"{describe_size(size)}, " if size is not None else ""
    return SourceFormatError(
        f"{what} too large: {known}over the limit of {describe_size(limit)} (raise ingest.max_file_mib to read it)"
    )


def check_size(n_bytes: int, limit: int | None) -> None:
    """``SourceFormatError`` when ``n_bytes`` is over ``limit`` (``None``: no limit)."""
    if limit is not None and n_bytes > limit:
        raise too_large(limit, n_bytes)


def _require_regular(info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise SourceFormatError(f"not a regular file ({file_kind(info.st_mode)}): only regular files are read")


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file (symlinks followed) of at most ``limit`` bytes.
    ``SourceFormatError`` for anything else; ``OSError`` when it cannot be read."""
    info = os.stat(path)
    _require_regular(info)
    check_size(info.st_size, limit)
    fd = os.open(path, _OPEN_FLAGS)
    with os.fdopen(fd, "rb") as handle:
        _require_regular(os.fstat(handle.fileno()))
        data = handle.read() if limit is None else handle.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise too_large(limit)  # it grew after the stat
    return data


def gunzip(data: bytes, limit: int | None = None) -> bytes:
    """Decompressed gzip data (all members), at most ``limit`` bytes of it."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            out = handle.read() if limit is None else handle.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceFormatError(f"corrupt gzip file: {exc or type(exc).__name__}") from exc
    if limit is not None and len(out) > limit:
        raise too_large(limit, what="decompressed file")
    return out


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The file's bytes, gunzipped when the name ends in .gz; at most ``limit``
    bytes before and after decompression (``None``: no limit, for data sets the
    user names). ``SourceFormatError`` names a corrupt gzip or a refused file."""
    raw = read_regular(path, limit)
    return gunzip(raw, limit) if path.name.lower().endswith(".gz") else raw


def read_or_skip(builder: ResultBuilder, path: Path, rel: str, limit: int | None, read=read_bytes) -> bytes | None:
    """The file's bytes through ``read``; or None, with the reason it cannot be read
    (not a regular file, over the limit, an OS error) recorded as its skip."""
    try:
        return read(path, limit)
    except SourceFormatError as exc:
        builder.skip(rel, str(exc))
    except OSError as exc:
        builder.skip(rel, f"cannot read: {os_reason(exc)}")
    return None


def parse_json(data: bytes | str) -> Any:
    """Parse a whole JSON text; ``SourceFormatError`` for anything the parser
    raises (bad syntax, nesting too deep for the recursion limit, memory)."""
    text = decode_text(data) if isinstance(data, bytes) else data
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceFormatError(f"invalid JSON: {exc}") from exc
    except Exception as exc:  # RecursionError, MemoryError: one bad file must not end the run
        raise SourceFormatError(f"invalid JSON: {failure_reason(exc)}") from exc


def read_json(path: Path, limit: int | None = None) -> Any:
    """Parse a whole .json / .json.gz file; ``SourceFormatError`` with the reason otherwise."""
    return parse_json(read_bytes(path, limit))
