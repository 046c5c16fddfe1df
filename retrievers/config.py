"""The retrievers' own settings: the encoder, BM25's formula, the vector store, fusion."""

from __future__ import annotations

from dataclasses import dataclass

from lcrag.core.errors import ConfigError
from lcrag.core.errors import check as _check
from lcrag.retrievers.registry import encoder_models, store_backends

MODE_CHOICES = ("dense", "bm25", "hybrid")
FUSION_CHOICES = ("rrf", "convex")  # hybrid: reciprocal rank fusion, or a convex combination of min-max scores
RUNTIME_CHOICES = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8", "auto")  # encoder.runtime (retrievers/encoders/runtimes.py)


@dataclass(frozen=True)
class EncoderConfig:
    """The embedding model. ``model`` is a registered name (the lcrag.encoders entry point
    group: lcrag's own and plugins') or a local model folder. Which of the two it is, and
    whether it holds a model, is settled when the encoder loads (``resolve_model_path``):
    a config travels with an index to where its folder may be, and an encoder handed in
    ready-made (bench/scale.py's stand-in) only labels the index with its name."""

    model: str = "all-MiniLM-L6-v2"
    window: int = 512  # tokens per encoder pass, special tokens included
    window_overlap: int = 128  # tokens of left context each later window re-reads
    batch_tokens: int = 2048  # padded tokens per forward pass (small batches stay in CPU cache)
    threads: int = 0  # torch intra-op threads; 0 = every core
    query_prefix: str = ""  # text put before every query, for models trained with one ("search_query: ")
    document_prefix: str = ""  # text put before every chunk or context encoded ("search_document: ")
    runtime: str = "torch-fp32"  # what runs the forward pass (lcrag.retrievers.encoders.runtimes); bench results set the default

    def __post_init__(self) -> None:
        if not self.model:  # the registry is read only to say what to choose
            raise ConfigError(f"encoder.model must name a model (one of {', '.join(encoder_models())}) or a model folder")
        _check(self.runtime in RUNTIME_CHOICES,
               f"encoder.runtime must be one of {', '.join(RUNTIME_CHOICES)}, got {self.runtime!r}")
        for key in ("query_prefix", "document_prefix"):
            value = getattr(self, key)
            _check(isinstance(value, str), f"encoder.{key} must be a string (quote it in YAML), got {value!r}")
            _check(  # a prefix is re-read in every window, so it must stay short
                len(value) <= 200,
                f"encoder.{key} is {len(value)} characters; a prefix is a short task marker such as 'search_query: ' (at most 200)",
            )
        _check(self.window >= 16, f"encoder.window must be at least 16, got {self.window}")
        _check(
            0 <= self.window_overlap < self.window - 2,
            f"encoder.window_overlap must be in [0, window-2), got {self.window_overlap} for window {self.window}",
        )
        _check(self.batch_tokens >= self.window, f"encoder.batch_tokens ({self.batch_tokens}) must be >= window ({self.window})")
        _check(self.threads >= 0, f"encoder.threads must be >= 0, got {self.threads}")


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
    fusion: str = "convex"
    rrf_k: int = 60
    dense_weight: float = 1.0
    bm25_weight: float = 1.0
    candidates: int = 300  # chunks fetched per retriever before aggregation to units/docs

    def __post_init__(self) -> None:
        _check(self.mode in MODE_CHOICES, f"retrieval.mode must be one of {', '.join(MODE_CHOICES)}, got {self.mode!r}")
        _check(self.fusion in FUSION_CHOICES,
               f"retrieval.fusion must be one of {', '.join(FUSION_CHOICES)}, got {self.fusion!r}")
        _check(self.rrf_k >= 1, f"retrieval.rrf_k must be >= 1, got {self.rrf_k}")
        _check(self.dense_weight >= 0 and self.bm25_weight >= 0, "retrieval weights must be >= 0")
        _check(self.dense_weight + self.bm25_weight > 0, "retrieval.dense_weight and bm25_weight cannot both be 0")
        _check(self.candidates >= 1, f"retrieval.candidates must be >= 1, got {self.candidates}")


# Vector store backends: the lcrag.stores entry point group (lcrag's own and plugins'), one
# opener per name. An index's vectors are in its backend's own format, so an index keeps the
# backend it was built with; a manifest from before this setting existed names none and means qdrant-local.
DEFAULT_BACKEND = "qdrant-edge"


@dataclass(frozen=True)
class StoreConfig:
    """Where vectors live. ``qdrant-local`` (Qdrant's Python local mode) and ``qdrant-edge``
    (Qdrant's engine in process) keep them inside the index folder; ``qdrant-server`` on
    the server at ``qdrant_url``, which a URL alone implies."""

    # Qdrant's engine in process: at 20K chunks 4.3x faster to build and 4x faster to search
    # than local mode (README, "Scale"); an index keeps the backend it was built with.
    backend: str = DEFAULT_BACKEND
    qdrant_url: str = ""
    qdrant_api_key_env: str = "QDRANT_API_KEY"
    collection: str = "lcrag_chunks"
    hnsw_ef: int = 256  # HNSW beam per search (qdrant-edge, qdrant-server; at least k): recall@10 0.98 at 1M (128: 0.95)

    def __post_init__(self) -> None:
        _check(bool(self.collection), "store.collection must not be empty")
        _check(
            not self.qdrant_url or self.qdrant_url.startswith(("http://", "https://")),
            f"store.qdrant_url must start with http:// or https://, got {self.qdrant_url!r}",
        )
        backends = store_backends()
        _check(self.backend in backends, f"store.backend must be one of {', '.join(backends)}, got {self.backend!r}")
        if self.qdrant_url and self.backend == DEFAULT_BACKEND:  # a URL alone means the server
            object.__setattr__(self, "backend", "qdrant-server")
        _check(
            bool(self.qdrant_url) or self.backend != "qdrant-server",
            "store.backend qdrant-server needs store.qdrant_url (the server's http:// or https:// URL)",
        )
        _check(
            not self.qdrant_url or self.backend == "qdrant-server",
            f"store.qdrant_url is for store.backend qdrant-server; {self.backend} keeps its vectors in the index "
            "folder: remove qdrant_url, or set backend: qdrant-server",
        )
        _check(self.hnsw_ef >= 1, f"store.hnsw_ef must be >= 1, got {self.hnsw_ef}")
