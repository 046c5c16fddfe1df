"""Reading BM25 folders of the first format (``index.json`` + ``weights.npz``).

Indexes written before segments keep working for search: the precomputed weight
matrix is read as it is. They are never written again: the next publish that
changes the index analyses its chunks once into a segment and drops this folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lcrag.retrievers.bm25.analyzer import Analyzer
from lcrag.retrievers.bm25.errors import BM25FormatError, rebuild_hint

INDEX_JSON = "index.json"
WEIGHTS = "weights.npz"


def is_legacy_folder(folder: Path) -> bool:
    return (folder / INDEX_JSON).is_file() and (folder / WEIGHTS).is_file()


class LegacyScorer:
    """Rows are chunks, columns are terms, values are BM25Okapi weights."""

    def __init__(self, folder: Path) -> None:
        from scipy import sparse

        try:
            meta = json.loads((folder / INDEX_JSON).read_text(encoding="utf-8"))
            self.weights = sparse.load_npz(folder / WEIGHTS).tocsc()
        except (OSError, ValueError) as error:
            raise BM25FormatError(f"{rebuild_hint(folder)} ({error})") from error
        self._chunk_ids: list[str] = meta["chunk_ids"]
        self.vocabulary: dict[str, int] = meta["vocabulary"]
        self.analyzer = Analyzer(meta["stem"], meta["stopwords"])

    def __len__(self) -> int:
        return len(self._chunk_ids)

    def scores(self, counts: dict[str, int]) -> np.ndarray:
        cols = [(self.vocabulary[t], m) for t, m in counts.items() if t in self.vocabulary]
        if not cols:
            return np.zeros(len(self))
        index, mult = zip(*cols)
        return np.asarray(self.weights[:, list(index)] @ np.asarray(mult, dtype=np.float64)).ravel()

    def chunk_id(self, row: int) -> str:
        return self._chunk_ids[row]

    def chunk_ids_at(self, rows) -> list[str]:
        return [self._chunk_ids[int(row)] for row in rows]

    def chunk_ids(self) -> list[str]:
        return list(self._chunk_ids)

    def terms(self) -> list[str]:
        return sorted(self.vocabulary)
