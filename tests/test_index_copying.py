"""Copying a generation: holes stay holes, immutable BM25 segments are linked, bytes are equal."""

from __future__ import annotations

import os

import pytest

from lcrag.pipeline.index.copying import copy_index_file, copy_sparse

MIB = 1 << 20


def _write_layout(path, size: int, pieces: list[tuple[int, bytes]]) -> None:
    with open(path, "wb") as handle:
        handle.truncate(size)
        for offset, data in pieces:
            handle.seek(offset)
            handle.write(data)


@pytest.mark.parametrize(
    "size, pieces",
    [
        (0, []),  # empty
        (64 * MIB, []),  # one hole
        (64 * MIB, [(0, b"head")]),  # data, then a hole to the end
        (64 * MIB, [(64 * MIB - 5, b"tail!")]),  # a hole, then data at the end
        (64 * MIB, [(3 * MIB, b"x" * 100), (40 * MIB, b"y" * 5000)]),  # islands
        (3 * MIB + 7, [(0, os.urandom(3 * MIB + 7))]),  # dense, odd size
    ],
)
def test_a_sparse_copy_has_the_same_bytes_and_keeps_holes(tmp_path, size, pieces):
    src, dst = tmp_path / "src", tmp_path / "dst"
    _write_layout(src, size, pieces)
    os.chmod(src, 0o640)
    copy_sparse(src, dst)
    assert dst.read_bytes() == src.read_bytes()
    assert os.stat(dst).st_size == size and (os.stat(dst).st_mode & 0o777) == 0o640
    data_bytes = sum(len(d) for _, d in pieces)
    # allocated space follows the data (file systems allocate in blocks), not the size
    assert os.stat(dst).st_blocks * 512 <= max(data_bytes, 0) + len(pieces) * 2 * MIB + 64 * 1024


def test_immutable_segment_files_are_linked_and_others_copied(tmp_path):
    segment = tmp_path / "src" / "bm25-segments" / "s1"
    segment.mkdir(parents=True)
    (segment / "rows.npy").write_bytes(b"rows")
    (tmp_path / "src" / "catalog.sqlite").write_bytes(b"catalog")
    for name in ("bm25-segments/s1/rows.npy", "catalog.sqlite"):
        target = tmp_path / "dst" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_index_file(str(tmp_path / "src" / name), str(target))
    linked = os.stat(tmp_path / "dst" / "bm25-segments/s1/rows.npy")
    assert linked.st_ino == os.stat(segment / "rows.npy").st_ino
    copied = tmp_path / "dst" / "catalog.sqlite"
    assert copied.read_bytes() == b"catalog" and os.stat(copied).st_ino != os.stat(tmp_path / "src" / "catalog.sqlite").st_ino
    (tmp_path / "dst" / "bm25-segments/s1/rows.npy").unlink()  # a generation dropping a segment
    assert (segment / "rows.npy").read_bytes() == b"rows"  # leaves the other generation's
