"""Atomic, durable file writes: a reader (or a crash) sees the old content or the new,
never a torn file, and a finished write survives a power cut.

Every write goes to a temporary file in the target's own folder (so the final rename
stays on one filesystem and is atomic), named uniquely per writer (process id plus a
random suffix, so two processes or threads never share one). The file is fsync'd, moved
over the target with ``os.replace``, and then the folder is fsync'd so the rename itself
is on disk. If the writer raises, the temporary file is removed and the target is left
as it was.

    write_text_atomic(path, text)           a whole text file
    write_bytes_atomic(path, data)          a whole binary file
    write_json_atomic(path, obj, indent=2)  ``json.dumps(obj, **kw)`` plus a newline
    with atomic_path(path) as tmp:          a writer that streams to a path of its own
        produce(tmp)
    replace_dir_atomic(staging, folder)     publish a finished folder with one rename
    rename_durable(src, dst)                ``os.replace`` plus fsync of the folder(s)

This is the one module of lcrag that calls ``os.replace`` (tests/test_atomic_files.py
checks it). Like all of ``core`` it imports nothing else of lcrag (standard library only).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"
_NAME_ROOM = 200  # of the 255 bytes a file name may have, what the target's name may use in the temp name


def temp_path_for(path: str | Path) -> Path:
    """A temporary path beside ``path``, unique to this writer: hidden, named after the
    target, the process id and a random suffix, ending in ``.tmp`` (so a glob for the
    target's own extension never matches an unfinished write)."""
    path = Path(path)
    return path.with_name(f".{path.name[:_NAME_ROOM]}.{os.getpid()}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


def fsync_path(path: str | Path) -> None:
    """fsync a file or a folder by path. Filesystems that cannot sync a folder (EINVAL,
    ENOTSUP) are tolerated: the rename stays atomic there, only not yet durable."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if Path(path).is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def fsync_dir(folder: str | Path) -> None:
    """fsync a folder, making the names created, renamed or removed in it durable."""
    fsync_path(folder)


def rename_durable(src: str | Path, dst: str | Path) -> None:
    """``os.replace(src, dst)``, then fsync the folder of ``dst`` (and that of ``src``
    when it differs), so the rename survives a crash. Same filesystem only."""
    src, dst = Path(src), Path(dst)
    os.replace(src, dst)
    fsync_dir(dst.parent)
    if src.parent.resolve() != dst.parent.resolve():
        fsync_dir(src.parent)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the body to create and fill (with
    ``open``, ``np.save``, a database's COPY, ...); on a normal exit the file is fsync'd
    and moved over ``path`` and the folder fsync'd. On an exception the temporary file is
    removed and ``path`` left untouched. The body must close the file before it ends."""
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Replace the contents of ``path`` with ``data`` atomically and durably; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Replace the contents of ``path`` with ``text`` atomically and durably (written as
    ``Path.write_text`` writes it); returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any, *, newline: bool = True, **json_kwargs: Any) -> Path:
    """Replace ``path`` with ``json.dumps(obj, **json_kwargs)`` (plus a final newline
    unless ``newline=False``), UTF-8, atomically and durably; returns ``path``."""
    return write_text_atomic(path, json.dumps(obj, **json_kwargs) + ("\n" if newline else ""))


def replace_dir_atomic(tmp_dir: str | Path, target_dir: str | Path) -> Path:
    """Publish a finished folder: fsync ``tmp_dir`` (its own entries), rename it to
    ``target_dir`` in one step and fsync the parent. The caller syncs the files inside as
    it needs and removes an old ``target_dir`` first (``os.replace`` replaces only an
    empty folder; a non-empty one raises ``OSError``). ``tmp_dir`` must be on the same
    filesystem, in practice beside ``target_dir``. Returns ``target_dir``."""
    fsync_dir(tmp_dir)
    rename_durable(tmp_dir, target_dir)
    return Path(target_dir)
