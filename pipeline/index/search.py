"""Search a finished index: dense, BM25 or hybrid over chunks, at chunk, unit or
document level.

Each retriever ranks chunks; a unit's or document's score is its best chunk's
(LongRAG's max-P). Hybrid fuses the two lists at the requested level (a convex
combination of min-max scores by default, or reciprocal rank fusion), so a document
found by BM25 through one chunk and by the dense retriever through another gets
credit from both.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path

from lcrag.core.errors import LcragError
from lcrag.core.types import LEVELS, Chunk, Document, Hit, Level, Unit
from lcrag.pipeline.config import MODE_CHOICES, Config, RetrievalConfig
from lcrag.pipeline.index.catalog import Catalog
from lcrag.pipeline.index.folder import IndexPaths, IndexStateError, Manifest, live_root, open_vectors, require_finished
from lcrag.retrievers.base import ScoredChunk
from lcrag.retrievers.bm25 import BM25Index, BM25Retriever
from lcrag.retrievers.config import FUSION_CHOICES
from lcrag.retrievers.dense import DenseRetriever
from lcrag.retrievers.encoders.runtimes import resolve_runtime
from lcrag.retrievers.fusion import convex_combination_fusion, max_by_key, reciprocal_rank_fusion


class SearchError(LcragError, ValueError):
    """A search request is malformed; the message lists the valid choices."""


_LEVEL_FIELD = {"chunk": "chunk_id", "unit": "unit_id", "doc": "doc_id"}


def level_key(chunk: Chunk, level: Level) -> str:
    return getattr(chunk, _LEVEL_FIELD[level])


def aggregate(ranked: Sequence[ScoredChunk], chunks: dict[str, Chunk], level: Level) -> list[tuple[str, ScoredChunk]]:
    """Max-P: (level key, best chunk) best first."""
    present = [s for s in ranked if s.chunk_id in chunks]
    return max_by_key(present, key=lambda s: level_key(chunks[s.chunk_id], level), score=lambda s: s.score)


class IndexReader:
    """A finished index opened for reading and search. Opening reads the manifest and
    the catalog only; the encoder, the vector store and BM25 are opened by the first
    search, so a strategy that reads whole documents (lc, coa, the controls) never
    loads an encoder model. Close it (or use ``with``) to release Qdrant's folder.
    A root holding generations opens its live generation."""

    def __init__(self, root: Path, encoder_factory, retrieval: RetrievalConfig | None = None) -> None:
        self.root = live_root(Path(root))
        self.manifest: Manifest = require_finished(self.root)
        built = self.manifest.build_config()
        self.config: Config = replace(built, retrieval=retrieval) if retrieval else built
        self.catalog = Catalog(IndexPaths(self.root).catalog, read_only=True)
        self._encoder_factory = encoder_factory
        self._doc_positions: dict[str, int] | None = None
        self._opening = threading.Lock()  # threads that search at once open the parts once (one Qdrant shard per folder)
        self._retrievers: dict | None = None

    @cached_property
    def encoder(self):
        """The encoder that embeds queries: the runtime that embedded the index, or none
        (``IndexStateError``, at the first search: reading documents needs no encoder)."""
        encoder = self._encoder_factory(self.config.encoder)
        runtime = getattr(encoder, "runtime", None)  # a test double may name none
        built = resolve_runtime(self.config.encoder.runtime)
        if runtime is not None and runtime != built:
            note = getattr(encoder, "runtime_note", None)
            raise IndexStateError(
                f"index {self.root} was built with encoder runtime {built}, but the encoder here runs {runtime}"
                + (f" ({note})" if note else "")
                + f"; its queries must be embedded by {built} too: make {built} available here, "
                f"or ingest into a new --index with {runtime}"
            )
        return encoder

    @cached_property
    def vectors(self):
        return open_vectors(self.root, self.config.store)

    @property
    def retrievers(self) -> dict:
        """The dense and BM25 retrievers, opened by the first search (under a lock: a
        server's threads may all search first at once)."""
        with self._opening:
            if self._retrievers is None:
                encoder = self.encoder
                self._retrievers = {
                    "dense": DenseRetriever(self.vectors, encoder),
                    "bm25": BM25Retriever(BM25Index.load(IndexPaths(self.root).bm25(self.manifest))),
                }
            return self._retrievers

    # -- the Corpus protocol strategies read through ------------------------------------
    @property
    def corpus_tokens(self) -> int:
        return self.manifest.tokens

    def documents(self, doc_ids: Sequence[str]) -> dict[str, Document]:
        return self.catalog.documents(doc_ids)

    def units(self, unit_ids: Sequence[str]) -> dict[str, Unit]:
        return self.catalog.units(unit_ids)

    def doc_ids(self) -> list[str]:
        return list(self._positions())

    def doc_position(self, doc_id: str) -> int:
        return self._positions().get(doc_id, len(self._positions()))

    def _positions(self) -> dict[str, int]:
        if self._doc_positions is None:
            self._doc_positions = {d: i for i, d in enumerate(self.catalog.doc_order())}
        return self._doc_positions

    @property
    def index_id(self) -> str:
        return f"{self.root.name}@{self.manifest.generation}"

    @property
    def fingerprint(self) -> str:
        """The fingerprint of the settings this index (generation) was built with, as its
        manifest records it: what ledger rows answered from it carry as ``config_hash``
        (not the fingerprint of whatever config the asking command loaded)."""
        return self.manifest.fingerprint

    def __enter__(self) -> IndexReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if "vectors" in self.__dict__:  # opened by a search
            self.vectors.close()
        self.catalog.close()

    def search(
        self, query: str, k: int = 10, mode: str | None = None, level: Level = "chunk", fusion: str | None = None
    ) -> list[Hit]:
        """The k best hits at ``level``; ``mode`` and ``fusion`` default to the index's config."""
        mode = mode or self.config.retrieval.mode
        fusion = fusion or self.config.retrieval.fusion
        if mode not in MODE_CHOICES:
            raise SearchError(f"unknown mode {mode!r}; choose one of {', '.join(MODE_CHOICES)}")
        if fusion not in FUSION_CHOICES:
            raise SearchError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSION_CHOICES)}")
        if level not in LEVELS:
            raise SearchError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
        if k < 1:
            raise SearchError(f"k must be at least 1, got {k}")
        if not query.strip():
            raise SearchError("the query is empty")
        depth = max(self.config.retrieval.candidates, k)
        names = ("dense", "bm25") if mode == "hybrid" else (mode,)
        ranked = {name: self.retrievers[name].retrieve(query, depth) for name in names}
        chunks = self.catalog.chunks(s.chunk_id for run in ranked.values() for s in run)
        per_level = {name: aggregate(run, chunks, level) for name, run in ranked.items()}
        best = {name: dict(pairs) for name, pairs in per_level.items()}

        if mode == "hybrid":
            r = self.config.retrieval
            weights = [r.dense_weight, r.bm25_weight]
            if fusion == "convex":
                fused = convex_combination_fusion(
                    [[(key, s.score) for key, s in per_level[n]] for n in names], weights=weights)
            else:
                fused = reciprocal_rank_fusion([[key for key, _ in per_level[n]] for n in names], k=r.rrf_k, weights=weights)
            chosen = [(key, score, best["dense"].get(key) or best["bm25"][key]) for key, score in fused[:k]]
        else:
            chosen = [(key, s.score, s) for key, s in per_level[mode][:k]]

        docs = self.catalog.documents(chunks[s.chunk_id].doc_id for _, _, s in chosen)
        hits = []
        for key, score, scored in chosen:
            chunk = chunks[scored.chunk_id]
            sources = tuple((n, best[n][key].score) for n in names if key in best[n])
            hits.append(
                Hit(
                    level=level,
                    key=key,
                    score=float(score),
                    chunk_id=chunk.chunk_id,
                    unit_id=chunk.unit_id,
                    doc_id=chunk.doc_id,
                    start=chunk.start,
                    end=chunk.end,
                    text=docs[chunk.doc_id].text[chunk.start : chunk.end],
                    sources=sources,
                )
            )
        return hits
