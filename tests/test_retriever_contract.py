"""The retriever contract: dense (Qdrant) and BM25 pass the same behaviour tests.
A backend's test class inherits ``RetrieverContract`` (``lcrag.testing``) and provides
one fixture, ``backend``: an object that indexes chunks, deletes some, and reopens the
index from disk, handing back a ``ChunkRetriever`` each time (the pattern of
tests/test_reader_contract.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcrag.core.types import Chunk
from lcrag.retrievers.bm25 import Analyzer, BM25Index, BM25Retriever
from lcrag.retrievers.config import BM25Config, StoreConfig
from lcrag.retrievers.dense import DenseRetriever, QdrantChunkStore
from lcrag.testing import RetrieverContract
from lcrag.testing.contracts import CHUNKS

# ----------------------------------------------------------------- backends


class BM25Backend:
    """A BM25 folder as ingestion makes it: built over every chunk and saved; a
    deletion rebuilds it over the chunks left (as ``publish`` does)."""

    def __init__(self, folder: Path, config: BM25Config | None = None) -> None:
        self.folder = folder
        self.config = config or BM25Config()
        self.chunks: dict[str, str] = {}

    def index(self, chunks: dict[str, str]) -> BM25Retriever:
        self.chunks = dict(chunks)
        analyzer = Analyzer(stem=self.config.stem, stopwords=self.config.stopwords)
        index = BM25Index.build(list(self.chunks), [analyzer.tokens(t) for t in self.chunks.values()], self.config)
        index.save(self.folder)
        return BM25Retriever(index)

    def delete(self, chunk_ids: set[str]) -> BM25Retriever:
        return self.index({cid: text for cid, text in self.chunks.items() if cid not in chunk_ids})

    def reopen(self) -> BM25Retriever:
        return BM25Retriever(BM25Index.load(self.folder))

    def close(self) -> None:
        pass


class DenseBackend:
    """Qdrant local mode with the real offline encoder; each chunk is its own unit,
    so deleting a chunk is deleting its unit (as ingestion does)."""

    def __init__(self, folder: Path, encoder) -> None:
        self.folder = folder
        self.encoder = encoder
        self.store = QdrantChunkStore(StoreConfig(), folder)

    def index(self, chunks: dict[str, str]) -> DenseRetriever:
        if chunks:  # ingestion makes the collection with its first vectors
            self.store.ensure_collection(self.encoder.dim)
            rows = [Chunk(cid, unit_id=cid, doc_id=cid, start=0, end=len(text), position=0) for cid, text in chunks.items()]
            self.store.upsert(rows, self.encoder.embed(list(chunks.values())))
        return DenseRetriever(self.store, self.encoder)

    def delete(self, chunk_ids: set[str]) -> DenseRetriever:
        self.store.delete_units(chunk_ids)
        return DenseRetriever(self.store, self.encoder)

    def reopen(self) -> DenseRetriever:
        self.store.close()
        self.store = QdrantChunkStore(StoreConfig(), self.folder)
        return DenseRetriever(self.store, self.encoder)

    def close(self) -> None:
        self.store.close()


class TestBM25Retriever(RetrieverContract):
    matches_terms = True

    @pytest.fixture
    def backend(self, tmp_path):
        backend = BM25Backend(tmp_path / "bm25")
        yield backend
        backend.close()

    def test_stop_words_alone_find_nothing(self, backend):
        assert backend.index(CHUNKS).retrieve("the and of", 3) == []


class TestDenseRetriever(RetrieverContract):
    matches_terms = False

    @pytest.fixture
    def backend(self, tmp_path, encoder):
        backend = DenseBackend(tmp_path / "qdrant", encoder)
        yield backend
        backend.close()

    @pytest.mark.xfail(strict=True, raises=ValueError,
                       reason="Qdrant refuses limit=0 (ValueError) where BM25 returns []; DenseRetriever passes k through")
    def test_k_zero_returns_nothing(self, backend):
        super().test_k_zero_returns_nothing(backend)
