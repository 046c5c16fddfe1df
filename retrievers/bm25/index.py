"""BM25 over chunk spans, with rank-bm25's BM25Okapi as the definition.

Scores equal ``BM25Okapi(token_lists, k1, b, epsilon).get_scores(query_tokens)``
(tests check it), but nothing of rank_bm25 runs here: term frequencies sit in
immutable segments, the IDF comes from their document frequencies (``idf``), and
the formula is applied at query time (``scoring``), so an index grows by adding a
segment instead of being rebuilt. Opening one memory-maps its arrays.

A folder of the first format (precomputed weights) still opens, read-only; the
next publish that changes the index rewrites it as segments (``legacy``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol
from uuid import uuid4

import numpy as np

from lcrag.retrievers.base import ScoredChunk
from lcrag.retrievers.bm25.analyzer import Analyzer
from lcrag.retrievers.bm25.errors import BM25FormatError
from lcrag.retrievers.bm25.legacy import LegacyScorer, is_legacy_folder
from lcrag.retrievers.bm25.live import LiveSegment
from lcrag.retrievers.bm25.scoring import SegmentScorer
from lcrag.retrievers.bm25.segment import build_segment
from lcrag.retrievers.bm25.state import (
    Generation,
    Settings,
    is_state_folder,
    read_generation,
    write_generation,
)
from lcrag.retrievers.bm25.stats import corpus_stats
from lcrag.retrievers.bm25.topk import top_k
from lcrag.retrievers.config import BM25Config


class Scorer(Protocol):
    """What BM25Index needs from a stored format: live segments, or the first format's weights."""

    def __len__(self) -> int: ...
    def scores(self, counts: dict[str, int]) -> np.ndarray: ...
    def chunk_id(self, row: int) -> str: ...
    def chunk_ids_at(self, rows: np.ndarray) -> list[str]: ...
    def chunk_ids(self) -> list[str]: ...
    def terms(self) -> list[str]: ...


class BM25Index:
    """Chunks (rows, in segment order) scored by BM25Okapi; see the module docstring."""

    def __init__(self, scorer: Scorer, analyzer: Analyzer, generation: Generation | None = None) -> None:
        self.scorer = scorer
        self.analyzer = analyzer
        self.generation = generation  # None for a first-format folder
        self._chunk_ids: list[str] | None = None

    @classmethod
    def from_generation(cls, generation: Generation) -> BM25Index:
        s = generation.settings
        return cls(SegmentScorer(generation.parts, generation.stats, s), Analyzer(s.stem, s.stopwords), generation)

    @classmethod
    def build(
        cls,
        chunk_ids: Sequence[str],
        token_lists: Sequence[Sequence[str]],
        config: BM25Config,
        unit_ids: Sequence[str] | None = None,
    ) -> BM25Index:
        """An in-memory index of one segment (each chunk its own unit unless UNIT_IDS are given)."""
        if len(chunk_ids) != len(token_lists):
            raise ValueError(f"{len(chunk_ids)} chunk ids for {len(token_lists)} token lists")
        segment = build_segment(chunk_ids, list(unit_ids) if unit_ids is not None else chunk_ids, token_lists)
        parts = (LiveSegment(f"s{uuid4().hex[:12]}", segment),)
        stats = corpus_stats(parts, config.epsilon)
        return cls.from_generation(Generation(Settings.from_config(config), parts, stats, shared=False))

    # -- scoring -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.scorer)

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every chunk, in row order; repeated query terms count again, as in rank-bm25."""
        return self.scorer.scores(dict(Counter(query_tokens)))

    def search(self, query: str, k: int) -> list[ScoredChunk]:
        if k <= 0 or not len(self):
            return []
        scores = self.scores(self.analyzer.tokens(query))
        rows = top_k(scores, k)
        return [ScoredChunk(chunk_id, score) for chunk_id, score in zip(self.scorer.chunk_ids_at(rows), scores[rows].tolist())]

    @property
    def chunk_ids(self) -> list[str]:
        """Chunk id of every row (built on first use: opening an index parses no id)."""
        if self._chunk_ids is None:
            self._chunk_ids = self.scorer.chunk_ids()
        return self._chunk_ids

    @property
    def terms(self) -> list[str]:
        """Every term of the index, sorted."""
        return self.scorer.terms()

    # -- persistence ---------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write a self-contained folder (segments inside it) that ``load`` opens."""
        if self.generation is None:
            raise BM25FormatError("a BM25 index of the first format is read-only; run `lcrag ingest` again to rebuild it")
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        write_generation(folder, replace(self.generation, shared=False))

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        """Open a BM25 folder (``IndexPaths.bm25(manifest)``, or one written by ``save``)."""
        folder = Path(folder)
        if is_state_folder(folder):
            return cls.from_generation(read_generation(folder))
        if is_legacy_folder(folder):
            legacy = LegacyScorer(folder)
            return cls(legacy, legacy.analyzer)
        raise BM25FormatError(f"no BM25 index in {folder}; run the same `lcrag ingest` on this index again to rebuild it")


class BM25Retriever:
    name = "bm25"

    def __init__(self, index: BM25Index) -> None:
        self.index = index

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        return self.index.search(query, k)
