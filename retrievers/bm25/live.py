"""A segment as one generation sees it: its rows minus the tombstoned ones.

Removing chunks never rewrites a segment; the generation lists the dead rows
(tombstones), and scoring, corpus statistics and merges skip them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from lcrag.retrievers.bm25.segment import Segment


@dataclass(frozen=True, eq=False)
class LiveSegment:
    name: str
    segment: Segment
    deleted: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))  # sorted local rows

    @cached_property
    def alive(self) -> np.ndarray:
        mask = np.ones(self.segment.n_rows, dtype=bool)
        mask[np.asarray(self.deleted, dtype=np.int64)] = False
        return mask

    @cached_property
    def live_rows(self) -> np.ndarray:
        return np.flatnonzero(self.alive)

    @property
    def n_live(self) -> int:
        return self.segment.n_rows - len(self.deleted)

    def live_length(self) -> int:
        """Tokens in the live rows (for the corpus's average length)."""
        doc_len = np.asarray(self.segment.doc_len, dtype=np.int64)
        return int(doc_len.sum() if not len(self.deleted) else doc_len[self.alive].sum())

    def alive_df(self) -> np.ndarray:
        """Live rows per term of the segment (its document frequencies minus tombstones)."""
        if not len(self.deleted):
            return np.diff(self.segment.term_ptr)
        alive_postings = np.zeros(len(self.segment.rows) + 1, dtype=np.int64)
        np.cumsum(self.alive[self.segment.rows], out=alive_postings[1:])
        return alive_postings[self.segment.term_ptr[1:]] - alive_postings[self.segment.term_ptr[:-1]]

    def live_unit_mask(self) -> np.ndarray:
        """Which units of the segment still have a live row."""
        row_unit = np.asarray(self.segment.row_unit, dtype=np.int64)
        return np.bincount(row_unit[self.alive], minlength=len(self.segment.units)) > 0

    def tombstone(self, rows: np.ndarray) -> LiveSegment:
        """This segment with ROWS dead as well."""
        deleted = np.union1d(np.asarray(self.deleted, dtype=np.int32), np.asarray(rows, dtype=np.int32))
        return LiveSegment(self.name, self.segment, deleted.astype(np.int32))
