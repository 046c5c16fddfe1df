"""Copying an index folder for a new generation without paying for what it does not hold.

Qdrant Edge pre-allocates its files (about 130 MiB, mostly holes) and BM25 segments never
change once written, so a plain ``copytree`` wrote every hole out as zeros and duplicated every
segment. Here holes stay holes and immutable files are hard-linked (deleting one link never
touches the other generation's).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

IMMUTABLE_FOLDERS = ("bm25-segments",)  # files under these are written once, then only deleted


def copy_sparse(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy data regions only (SEEK_DATA / SEEK_HOLE); the copy has the source's size,
    contents and modes. Falls back to a plain copy where the file system cannot tell."""
    with open(src, "rb") as reader, open(dst, "wb") as writer:
        size = os.fstat(reader.fileno()).st_size
        try:
            offset = os.lseek(reader.fileno(), 0, os.SEEK_DATA) if size else size
        except OSError as err:  # ENXIO: no data at all (one hole); else no SEEK_DATA support
            offset = size if err.errno == errno.ENXIO else None
        if offset is None:
            reader.seek(0)
            shutil.copyfileobj(reader, writer, 1 << 20)
        else:
            while offset < size:
                end = os.lseek(reader.fileno(), offset, os.SEEK_HOLE)
                _copy_range(reader, writer, offset, end)
                try:
                    offset = os.lseek(reader.fileno(), end, os.SEEK_DATA)
                except OSError:  # only a hole after ``end``
                    break
            writer.truncate(size)
    shutil.copystat(src, dst)


def _copy_range(reader, writer, start: int, end: int) -> None:
    reader.seek(start)
    writer.seek(start)
    left = end - start
    while left > 0:
        block = reader.read(min(left, 1 << 20))
        if not block:
            return
        writer.write(block)
        left -= len(block)


def copy_index_file(src: str, dst: str) -> None:
    """``copytree``'s copy function: hard-link immutable files, copy the rest sparsely."""
    if any(part in IMMUTABLE_FOLDERS for part in Path(src).parts):
        try:
            os.link(src, dst)
            return
        except OSError:  # another file system, or links not allowed: copy instead
            pass
    copy_sparse(src, dst)
