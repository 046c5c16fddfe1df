"""The retrievers' own settings: BM25's formula, the vector store, fusion."""

from __future__ import annotations

from dataclasses import dataclass

from lcrag.core.errors import check as _check

MODE_CHOICES = ("dense", "bm25", "hybrid")


@dataclass(frozen=True)
class BM25Config:
    """BM25Okapi over the chunk spans (rank-bm25's formula and parameters)."""

    k1: float = 1.5
    b: float = 0.75
    epsilon: float = 0.25
    stem: bool = True  # Snowball (English)
    stopwords: bool = True  # drop English stop words
    include_title: bool = True  # index the document title with every chunk

    def __post_init__(self) -> None:
        _check(self.k1 >= 0, f"bm25.k1 must be >= 0, got {self.k1}")
        _check(0 <= self.b <= 1, f"bm25.b must be in [0, 1], got {self.b}")
        _check(self.epsilon >= 0, f"bm25.epsilon must be >= 0, got {self.epsilon}")


@dataclass(frozen=True)
class RetrievalConfig:
    """Search defaults: fusion and how many chunks each retriever contributes."""

    mode: str = "hybrid"
    rrf_k: int = 60
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    candidates: int = 300  # chunks fetched per retriever before aggregation to units/docs

    def __post_init__(self) -> None:
        _check(self.mode in MODE_CHOICES, f"retrieval.mode must be one of {', '.join(MODE_CHOICES)}, got {self.mode!r}")
        _check(self.rrf_k >= 1, f"retrieval.rrf_k must be >= 1, got {self.rrf_k}")
        _check(self.dense_weight >= 0 and self.bm25_weight >= 0, "retrieval weights must be >= 0")
        _check(self.candidates >= 1, f"retrieval.candidates must be >= 1, got {self.candidates}")


@dataclass(frozen=True)
class StoreConfig:
    """Where vectors live. No URL means Qdrant local mode inside the index folder."""

    qdrant_url: str = ""
    qdrant_api_key_env: str = "QDRANT_API_KEY"
    collection: str = "lcrag_chunks"

    def __post_init__(self) -> None:
        _check(bool(self.collection), "store.collection must not be empty")
        _check(
            not self.qdrant_url or self.qdrant_url.startswith(("http://", "https://")),
            f"store.qdrant_url must start with http:// or https://, got {self.qdrant_url!r}",
        )
