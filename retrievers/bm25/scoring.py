"""BM25Okapi applied at query time to the postings of live segments.

Weights are not precomputed: they depend on the corpus (IDF, average length),
which changes with every publish, while segments never change. For each query
term, each segment's postings give (row, tf) and the row's length, and

    idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))

is added to those rows, in the order rank_bm25 evaluates it. Rows are the live
rows of the segments in order (tombstoned rows are skipped).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lcrag.retrievers.bm25.live import LiveSegment
from lcrag.retrievers.bm25.state import Settings
from lcrag.retrievers.bm25.stats import CorpusStats


class SegmentScorer:
    def __init__(self, parts: Sequence[LiveSegment], stats: CorpusStats, settings: Settings) -> None:
        self.parts = tuple(parts)
        self.stats = stats
        self.settings = settings
        self._starts = np.cumsum([0] + [p.n_live for p in self.parts])
        self._norms: list[np.ndarray | None] = [None] * len(self.parts)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _norm(self, i: int) -> np.ndarray:
        """k1 * (1 - b + b * dl / avgdl) of every row of part I: fixed for this generation,
        so computed once (on first use) instead of for every posting of every query."""
        if self._norms[i] is None:
            k1, b = self.settings.k1, self.settings.b
            avgdl = self.stats.avgdl or 1.0  # only 0 when every row is empty, and then no row has a term
            self._norms[i] = k1 * (1 - b + b * np.asarray(self.parts[i].segment.doc_len, dtype=np.float64) / avgdl)
        return self._norms[i]

    def scores(self, counts: dict[str, int]) -> np.ndarray:
        """Every live row's score for a query given as term -> how often it occurs."""
        k1 = self.settings.k1
        local: list[np.ndarray | None] = [None] * len(self.parts)
        for term, mult in counts.items():
            idf = self.stats.idf_of(term)
            if idf is None:
                continue
            for i, part in enumerate(self.parts):
                found = part.segment.postings(term)
                if found is None:
                    continue
                rows, tf = np.asarray(found[0], dtype=np.intp), np.asarray(found[1], dtype=np.float64)
                weight = idf * (tf * (k1 + 1) / (tf + self._norm(i)[rows]))
                if local[i] is None:
                    local[i] = np.zeros(part.segment.n_rows)
                local[i][rows] += weight * mult if mult != 1 else weight  # rows are unique within a term
        out = np.zeros(len(self))
        for part, start, values in zip(self.parts, self._starts, local):
            if values is not None:
                out[start : start + part.n_live] = values[part.alive] if len(part.deleted) else values
        return out

    def chunk_ids_at(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        """Chunk ids of ROWS, in that order: one binary search for all of them and one
        gather per segment (a search returns hundreds of candidates; per-row lookups
        through the memory-mapped tables cost more than the scoring)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows outside 0..{len(self) - 1}")
        which = np.searchsorted(self._starts, rows, side="right") - 1
        out: list[str] = [""] * len(rows)
        for i in np.unique(which).tolist():
            picked = np.flatnonzero(which == i)
            part = self.parts[i]
            local = rows[picked] - int(self._starts[i])
            if len(part.deleted):
                local = part.live_rows[local]
            for position, chunk_id in zip(picked.tolist(), part.segment.chunk_ids.take(local).to_list()):
                out[position] = chunk_id
        return out

    def chunk_id(self, row: int) -> str:
        return self.chunk_ids_at([row])[0]

    def chunk_ids(self) -> list[str]:
        ids: list[str] = []
        for part in self.parts:
            every = part.segment.chunk_ids.to_list()
            ids.extend(every if not len(part.deleted) else [every[r] for r in part.live_rows.tolist()])
        return ids

    def terms(self) -> list[str]:
        return self.stats.terms.to_list()
