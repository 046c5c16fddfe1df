"""BM25 over chunk spans, with rank-bm25's BM25Okapi as the definition.

rank-bm25 computes the IDF (including its epsilon floor for very common terms);
we precompute every (chunk, term) weight into a sparse matrix so a query costs
one column gather instead of a Python loop over every chunk. Scores equal
``BM25Okapi.get_scores`` (tests check it). The index is a folder artifact.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import sparse

from lcrag.retrievers.base import ScoredChunk
from lcrag.retrievers.config import BM25Config

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Analyzer:
    """Lower-case word tokens, optional English stop-word removal and Snowball stemming."""

    stem: bool = True
    stopwords: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "_stemmer", _english_stemmer() if self.stem else None)
        object.__setattr__(self, "_stop", _english_stopwords() if self.stopwords else frozenset())

    def tokens(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in self._stop]  # type: ignore[attr-defined]
        stemmer = self._stemmer  # type: ignore[attr-defined]
        return stemmer.stemWords(words) if stemmer is not None else words


def _english_stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _english_stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


class BM25Index:
    """Precomputed BM25Okapi weights: rows are chunks, columns are terms."""

    def __init__(self, chunk_ids: Sequence[str], vocabulary: dict[str, int], weights: sparse.csc_matrix, analyzer: Analyzer):
        if weights.shape != (len(chunk_ids), len(vocabulary)):
            raise ValueError(f"weights shape {weights.shape} does not match {len(chunk_ids)} chunks x {len(vocabulary)} terms")
        self.chunk_ids = list(chunk_ids)
        self.vocabulary = vocabulary
        self.weights = weights.tocsc()
        self.analyzer = analyzer

    @classmethod
    def build(cls, chunk_ids: Sequence[str], token_lists: Sequence[list[str]], config: BM25Config) -> "BM25Index":
        analyzer = Analyzer(stem=config.stem, stopwords=config.stopwords)
        vocabulary: dict[str, int] = {}
        if not chunk_ids:
            return cls([], {}, sparse.csc_matrix((0, 0), dtype=np.float32), analyzer)
        idf, avgdl = _okapi_idf(token_lists, config)
        rows, cols, tfs = [], [], []
        doc_len = np.zeros(len(token_lists), dtype=np.float64)
        for row, tokens in enumerate(token_lists):
            doc_len[row] = len(tokens)
            counts: dict[str, int] = {}
            for token in tokens:
                counts[token] = counts.get(token, 0) + 1
            for token, tf in counts.items():
                rows.append(row)
                cols.append(vocabulary.setdefault(token, len(vocabulary)))
                tfs.append(tf)
        rows_a, cols_a = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        tf_a = np.asarray(tfs, dtype=np.float64)
        idf_by_col = np.zeros(len(vocabulary))
        for term, col in vocabulary.items():
            idf_by_col[col] = idf[term]
        norm = config.k1 * (1 - config.b + config.b * doc_len[rows_a] / avgdl)
        data = idf_by_col[cols_a] * tf_a * (config.k1 + 1) / (tf_a + norm)
        weights = sparse.csc_matrix((data, (rows_a, cols_a)), shape=(len(chunk_ids), len(vocabulary)))
        return cls(chunk_ids, vocabulary, weights, analyzer)

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """BM25 score of every chunk; repeated query terms count again, as in rank-bm25."""
        counts: dict[int, int] = {}
        for token in query_tokens:
            col = self.vocabulary.get(token)
            if col is not None:
                counts[col] = counts.get(col, 0) + 1
        if not counts:
            return np.zeros(len(self.chunk_ids))
        cols = np.fromiter(counts.keys(), dtype=np.int64)
        mult = np.fromiter(counts.values(), dtype=np.float64)
        return np.asarray(self.weights[:, cols] @ mult).ravel()

    def search(self, query: str, k: int) -> list[ScoredChunk]:
        scores = self.scores(self.analyzer.tokens(query))
        if k <= 0 or not len(scores):
            return []
        top = np.argsort(-scores, kind="stable")[:k]  # ties: index order, so top-k is a prefix of top-(k+1)
        return [ScoredChunk(self.chunk_ids[i], float(scores[i])) for i in top if scores[i] > 0]

    # -- persistence -----------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        sparse.save_npz(folder / "weights.npz", self.weights.tocsc(), compressed=False)
        meta = {
            "chunk_ids": self.chunk_ids,
            "vocabulary": self.vocabulary,
            "stem": self.analyzer.stem,
            "stopwords": self.analyzer.stopwords,
        }
        (folder / "index.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "BM25Index":
        meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        weights = sparse.load_npz(folder / "weights.npz").tocsc()
        return cls(meta["chunk_ids"], meta["vocabulary"], weights, Analyzer(meta["stem"], meta["stopwords"]))


def _okapi_idf(token_lists: Sequence[list[str]], config: BM25Config) -> tuple[dict[str, float], float]:
    """IDF and average length exactly as rank_bm25.BM25Okapi computes them."""
    from rank_bm25 import BM25Okapi

    reference = BM25Okapi(list(token_lists) if any(token_lists) else [["\x00"]], k1=config.k1, b=config.b, epsilon=config.epsilon)
    return dict(reference.idf), float(reference.avgdl) or 1.0


class BM25Retriever:
    name = "bm25"

    def __init__(self, index: BM25Index) -> None:
        self.index = index

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        return self.index.search(query, k)
