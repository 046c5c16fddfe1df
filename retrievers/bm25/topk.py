"""The k best rows of a score array without sorting all of them.

A full argsort of every chunk's score was most of a query's time on a large
index; a partial selection finds the k-th best score, and only the rows at or
above it are sorted. Ties keep row order, so top-k is a prefix of top-(k+1).
"""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the (at most) K highest positive SCORES, best first, ties by row."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.flatnonzero(scores > 0)  # zero (and negative) scores are not matches
    if len(rows) > k:
        values = scores[rows]
        kth = np.partition(values, len(values) - k)[len(values) - k]  # the k-th best score, by partial selection
        above = rows[values > kth]
        tied = rows[values == kth][: k - len(above)]  # the first rows (in row order) among the ties
        rows = np.sort(np.concatenate([above, tied]))
    return rows[np.argsort(-scores[rows], kind="stable")]
