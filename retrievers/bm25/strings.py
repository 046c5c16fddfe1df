"""Strings stored as one UTF-8 blob plus offsets: no per-string parsing at open.

Term lists are sorted (by code point, which is also UTF-8 byte order), so a term
is found by binary search over the memory-mapped blob; chunk ids are read by row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from lcrag.retrievers.bm25.files import load_array, save_array

_ENCODING, _ERRORS = "utf-8", "surrogatepass"


@dataclass(frozen=True, eq=False)
class StringTable:
    blob: np.ndarray  # uint8, every string's bytes back to back
    offsets: np.ndarray  # int64, len(strings) + 1; string i is blob[offsets[i]:offsets[i + 1]]

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> StringTable:
        encoded = [s.encode(_ENCODING, _ERRORS) for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets)

    @classmethod
    def concat(cls, tables: Sequence[StringTable]) -> StringTable:
        if not tables:
            return cls.from_strings([])
        blob = np.concatenate([t.blob for t in tables])
        shifts = np.cumsum([0] + [len(t.blob) for t in tables[:-1]])
        offsets = np.concatenate([[0]] + [t.offsets[1:] + s for t, s in zip(tables, shifts)]).astype(np.int64)
        return cls(blob, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def raw(self, i: int) -> bytes:
        return self.blob[self.offsets[i] : self.offsets[i + 1]].tobytes()

    def __getitem__(self, i: int) -> str:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self.raw(i % len(self)).decode(_ENCODING, _ERRORS)

    def to_list(self) -> list[str]:
        data, bounds = self.blob.tobytes(), self.offsets.tolist()
        return [data[a:b].decode(_ENCODING, _ERRORS) for a, b in pairwise(bounds)]

    def find(self, s: str) -> int:
        """Position of S in a sorted table, or -1."""
        key = s.encode(_ENCODING, _ERRORS)
        lo, hi = 0, len(self)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.raw(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        return lo if lo < len(self) and self.raw(lo) == key else -1

    def take(self, rows: np.ndarray) -> StringTable:
        """The strings at ROWS, in that order (vectorised: no decoding)."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, lengths = self.offsets[rows], self.offsets[rows + 1] - self.offsets[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        index = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
        return StringTable(np.asarray(self.blob)[index], offsets)

    def save(self, folder: Path, name: str) -> None:
        save_array(folder, f"{name}.blob", self.blob)
        save_array(folder, f"{name}.offsets", self.offsets)

    @classmethod
    def load(cls, folder: Path, name: str) -> StringTable:
        return cls(load_array(folder, f"{name}.blob"), load_array(folder, f"{name}.offsets"))
