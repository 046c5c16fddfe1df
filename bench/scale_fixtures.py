"""Synthetic corpus, queries and a stand-in encoder for ``bench/scale.py``.

Text: documents of 2 to 6 chunks drawn from a fixed vocabulary of synthetic words
(50,000 by default) with Zipf-distributed frequencies (exponent 1.1). Every sentence
has exactly ``SENTENCE_WORDS`` words and a chunk holds ``SENTENCES_PER_CHUNK``
sentences, so with ``chunking.target_tokens`` = ``CHUNK_TARGET_TOKENS`` each document
cuts into exactly the chunks it was generated with and a corpus has exactly the
requested number of chunks. Each document is generated from its own seed (corpus
seed, document number, version), so a document is the same in every run and a
"changed" document is the same document at version 1.

Vectors: ``ScaleEncoder`` satisfies the encoder Protocol of
``lcrag.retrievers.encoders.encoder`` without a model. Uniform random unit vectors in
384-d have no neighbourhoods (every point is about as far from a query as every
other), which is HNSW's worst case and unlike text embeddings, so the vectors are
*clustered*: a shared direction (real embeddings are anisotropic), one of
``clusters`` centroids, and a displacement inside a low-dimensional subspace of that
cluster (real embeddings have a low intrinsic dimension), then L2-normalised. A
text's cluster and displacement come from a hash of the text, so the same text
always gets the same vector. Late chunking pools token vectors: each token gets the
context's centroid plus its own displacement, scaled so that the mean over a chunk
of ``CHUNK_TOKENS`` tokens has the same spread as a directly embedded text.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from lcrag.core.types import Document
from lcrag.retrievers.encoders.late_chunking import TokenEmbeddings

SENTENCE_WORDS = 15
SENTENCES_PER_CHUNK = 4
CHUNK_TOKENS = SENTENCE_WORDS * SENTENCES_PER_CHUNK  # 60 whitespace tokens
CHUNK_TARGET_TOKENS = 64  # 4 sentences fit (60 tokens), a fifth does not (75)
CHUNKS_PER_DOC = (2, 6)  # inclusive range, drawn per document
QUERY_SKIP_RANKS = 100  # query words skip the most frequent words, as a stop list would

_CONSONANTS = "bcdfghjklmnprstvwz"
_VOWELS = "aeiou"
# ASCII white space as str.isspace (and the regex \s) sees it
_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True


def text_seed(text: str, salt: bytes = b"") -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=salt).digest(), "little")


# ----------------------------------------------------------------------------- text


@dataclass(frozen=True)
class Vocabulary:
    """``size`` distinct synthetic words, index = frequency rank (shorter words rank first)."""

    size: int = 50_000
    zipf: float = 1.1
    seed: int = 0

    @cached_property
    def words(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 1])
        syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
        found: dict[str, None] = {}
        n_syllables = 2
        while len(found) < self.size:
            # enough draws of n syllables to fill the vocabulary (or exhaust that length)
            draws = rng.integers(0, len(syllables), size=(self.size * 2, n_syllables))
            for row in draws:
                found.setdefault("".join(syllables[i] for i in row))
                if len(found) == self.size:
                    break
            n_syllables += 1
        return np.array(list(found), dtype=object)

    @cached_property
    def cdf(self) -> np.ndarray:
        weights = np.arange(1, self.size + 1, dtype=np.float64) ** -self.zipf
        cdf = np.cumsum(weights)
        return cdf / cdf[-1]

    def sample(self, rng: np.random.Generator, n: int, skip: int = 0) -> np.ndarray:
        """N words drawn by Zipf frequency (ranks below SKIP excluded)."""
        low = self.cdf[skip - 1] if skip else 0.0
        ranks = np.searchsorted(self.cdf, low + rng.random(n) * (1.0 - low), side="right")
        return self.words[np.minimum(ranks, self.size - 1)]


@lru_cache(maxsize=4)
def vocabulary(size: int = 50_000, zipf: float = 1.1, seed: int = 0) -> Vocabulary:
    """A vocabulary built once per process (its words take about a second)."""
    return Vocabulary(size, zipf, seed)


@dataclass(frozen=True)
class Corpus:
    """Documents holding exactly ``chunks`` chunks in total (see the module docstring),
    in directories of ``docs_per_dir`` documents (``units.group_by: directory``)."""

    chunks: int
    vocabulary: Vocabulary
    seed: int = 0
    docs_per_dir: int = 8

    @cached_property
    def chunk_counts(self) -> list[int]:
        counts, total, i = [], 0, 0
        low, high = CHUNKS_PER_DOC
        while total < self.chunks:
            n = min(int(np.random.default_rng([self.seed, 2, i]).integers(low, high + 1)), self.chunks - total)
            counts.append(n)
            total += n
            i += 1
        return counts

    @property
    def n_docs(self) -> int:
        return len(self.chunk_counts)

    def document(self, i: int, version: int = 0) -> Document:
        rng = np.random.default_rng([self.seed, 3, i, version])
        sentences = self.chunk_counts[i] * SENTENCES_PER_CHUNK
        words = self.vocabulary.sample(rng, sentences * SENTENCE_WORDS).reshape(sentences, SENTENCE_WORDS)
        text = " ".join(" ".join(row) + "." for row in words)
        title = " ".join(self.vocabulary.sample(rng, 2, skip=QUERY_SKIP_RANKS)).capitalize()
        return Document(doc_id=f"doc{i:07d}", text=text, title=title, source=f"d{i // self.docs_per_dir:06d}/doc{i:07d}.txt")

    def documents(self, changed: frozenset[int] = frozenset()) -> tuple[Document, ...]:
        """Every document; those numbered in CHANGED at version 1 (new text, same size)."""
        return tuple(self.document(i, 1 if i in changed else 0) for i in range(self.n_docs))

    def changed_share(self, fraction: float) -> frozenset[int]:
        """A seeded random FRACTION of the documents (at least one)."""
        n = max(1, round(self.n_docs * fraction))
        return frozenset(np.random.default_rng([self.seed, 4]).choice(self.n_docs, size=n, replace=False).tolist())


def make_queries(vocabulary: Vocabulary, n: int, seed: int = 0) -> list[str]:
    """N queries of 2 to 5 Zipf words (the most frequent ranks skipped); the encoder
    turns each into a clustered vector of its own."""
    rng = np.random.default_rng([seed, 5])
    return [" ".join(vocabulary.sample(rng, int(rng.integers(2, 6)), skip=QUERY_SKIP_RANKS)) for _ in range(n)]


# -------------------------------------------------------------------------- vectors


@dataclass(frozen=True)
class VectorSpace:
    """Where texts land: shared direction (weight ``shared``), a centroid, and a
    displacement of norm about ``spread`` inside the cluster's ``rank``-d subspace."""

    dim: int = 384
    clusters: int = 1000
    rank: int = 24
    shared: float = 0.4
    spread: float = 0.8
    seed: int = 0

    @cached_property
    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, 6])
        shared = rng.standard_normal(self.dim)
        shared /= np.linalg.norm(shared)
        centroids = rng.standard_normal((self.clusters, self.dim))
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        bases = rng.standard_normal((self.clusters, self.rank, self.dim))
        bases /= np.linalg.norm(bases, axis=2, keepdims=True)
        return (self.shared * shared + centroids).astype(np.float32), bases.astype(np.float32)

    def vector(self, text: str, salt: bytes) -> np.ndarray:
        """The (unnormalised) vector of one text."""
        centres, bases = self.tables
        rng = np.random.default_rng(text_seed(text, salt))
        k = int(rng.integers(self.clusters))
        local = rng.standard_normal(self.rank).astype(np.float32) * (self.spread / np.sqrt(self.rank))
        return centres[k] + local @ bases[k]

    def token_vectors(self, text: str, n_tokens: int) -> np.ndarray:
        """N_TOKENS vectors around one cluster: the mean of CHUNK_TOKENS of them
        is spread like ``vector``'s."""
        centres, bases = self.tables
        rng = np.random.default_rng(text_seed(text, b"context"))
        k = int(rng.integers(self.clusters))
        scale = self.spread * np.sqrt(CHUNK_TOKENS / self.rank)
        local = rng.standard_normal((n_tokens, self.rank), dtype=np.float32) * np.float32(scale)
        return centres[k] + local @ bases[k]


def normalized(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).astype(np.float32)


class ScaleEncoder:
    """The encoder Protocol without a model: whitespace tokens, clustered vectors
    seeded by a hash of each text (see the module docstring). Queries
    (``embed``) and texts encoded alone (``embed_documents``) share one distribution."""

    def __init__(self, space: VectorSpace | None = None, name: str = "bench-scale-fake", window: int = 512) -> None:
        self.space = space or VectorSpace()
        self.name = name
        self.dim = self.space.dim
        self.window = window
        self.seconds = 0.0  # spent in this stand-in's methods (a real model's share of the time)

    def warm_up(self) -> ScaleEncoder:
        self.space.tables  # noqa: B018 - builds the centroid tables once
        return self

    def token_offsets(self, texts: Sequence[str]) -> list[np.ndarray]:
        started = time.perf_counter()
        try:
            return [whitespace_offsets(t) for t in texts]
        finally:
            self.seconds += time.perf_counter() - started

    def token_embeddings(self, texts: Sequence[str]) -> list[TokenEmbeddings]:
        started = time.perf_counter()
        out = []
        for text in texts:
            offsets = whitespace_offsets(text)
            out.append(TokenEmbeddings(offsets, self.space.token_vectors(text, len(offsets))))
        self.seconds += time.perf_counter() - started
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectors(texts, b"query")

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectors(texts, b"document")

    def _vectors(self, texts: Sequence[str], salt: bytes) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        started = time.perf_counter()
        vectors = normalized(np.stack([self.space.vector(t, salt) for t in texts]))
        self.seconds += time.perf_counter() - started
        return vectors


def whitespace_offsets(text: str) -> np.ndarray:
    """[start, end) character offsets of every maximal run of non-space characters."""
    if not text.isascii():
        import re

        rows = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
        return np.array(rows, dtype=np.int64).reshape(-1, 2)
    word = ~_ASCII_SPACE[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
    edges = np.diff(np.concatenate(([False], word, [False])).astype(np.int8))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1).astype(np.int64)
