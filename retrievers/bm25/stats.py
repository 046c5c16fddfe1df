"""Corpus statistics derived from live segments: N, average length, df and IDF.

They depend on every segment, so they live in the generation, not in a segment,
and are recomputed at each publish from the segments' own document frequencies
(no chunk is analysed again): per-segment df minus tombstoned rows, summed over
the union of the segments' terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from lcrag.retrievers.bm25.idf import okapi_idf
from lcrag.retrievers.bm25.live import LiveSegment
from lcrag.retrievers.bm25.strings import StringTable


@dataclass(frozen=True, eq=False)
class TermUnion:
    terms: list[str]  # sorted: every term with at least one live row
    df: np.ndarray  # int64, live documents per term
    maps: list[np.ndarray]  # per segment: local term id -> position in ``terms``, -1 when dead


@dataclass(frozen=True, eq=False)
class CorpusStats:
    n_docs: int
    avgdl: float
    terms: StringTable  # sorted
    df: np.ndarray  # int64
    idf: np.ndarray  # float64, rank_bm25's (with the epsilon floor)
    average_idf: float

    def idf_of(self, term: str) -> float | None:
        t = self.terms.find(term)
        return None if t < 0 else float(self.idf[t])


def union_terms(parts: Sequence[LiveSegment]) -> TermUnion:
    local_terms = [p.segment.terms.to_list() for p in parts]
    local_df = [p.alive_df() for p in parts]
    if len(parts) == 1:  # already sorted and unique
        present = local_df[0] > 0
        terms = [t for t, keep in zip(local_terms[0], present) if keep]
        mapping = np.full(len(present), -1, dtype=np.int64)
        mapping[present] = np.arange(len(terms), dtype=np.int64)
        return TermUnion(terms, np.asarray(local_df[0][present], dtype=np.int64), [mapping])
    every = np.array([t for terms in local_terms for t in terms], dtype=object)
    dfs = np.concatenate(local_df).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
    present = dfs > 0
    unique, inverse = np.unique(every[present], return_inverse=True)
    df = np.bincount(inverse, weights=dfs[present], minlength=len(unique)).astype(np.int64)
    position = np.full(len(every), -1, dtype=np.int64)
    position[present] = inverse
    bounds = np.cumsum([0] + [len(t) for t in local_terms])
    return TermUnion(list(unique), df, [position[a:b] for a, b in pairwise(bounds)])


def corpus_stats(parts: Sequence[LiveSegment], epsilon: float) -> CorpusStats:
    n_docs = sum(p.n_live for p in parts)
    total = sum(p.live_length() for p in parts)
    union = union_terms(parts)
    idf = okapi_idf(union.df, n_docs, epsilon)
    return CorpusStats(n_docs, total / n_docs if n_docs else 0.0, StringTable.from_strings(union.terms), union.df,
                       idf.idf, idf.average)
