"""BM25Okapi's IDF from document frequencies, as rank_bm25 computes it.

rank_bm25 stays the definition, but building its object only to read ``idf``
costs a Python dict entry per term and a full pass over every chunk; segments
already hold the document frequencies, so the same formula runs on arrays:

    idf(t) = log(N - df + 0.5) - log(df + 0.5)
    average = mean of idf(t) over every term of the corpus (before flooring)
    idf(t) = epsilon * average   where idf(t) < 0   (terms in more than half the documents)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class OkapiIdf:
    idf: np.ndarray  # float64, one per term
    average: float  # rank_bm25's average_idf (0 for an empty vocabulary, where rank_bm25 divides by zero)


def okapi_idf(df: np.ndarray, n_docs: int, epsilon: float) -> OkapiIdf:
    """IDF of terms with document frequencies DF in a corpus of N_DOCS documents."""
    df = np.asarray(df, dtype=np.float64)
    raw = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
    average = float(raw.sum() / len(raw)) if len(raw) else 0.0
    return OkapiIdf(np.where(raw < 0, epsilon * average, raw), average)
