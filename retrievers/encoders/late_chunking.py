"""Late chunking (Günther et al. 2024) as pure functions over token embeddings.

The encoder runs over a whole context (a document or a unit) once; a chunk's
vector is the mean of the token embeddings inside the chunk's character span,
so each chunk vector carries its surroundings. A context longer than the
encoder's window is read as overlapping windows ("long late chunking"): every
window after the first re-reads ``overlap`` tokens of left context, and those
re-read positions are dropped before the windows are concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TokenEmbeddings:
    """Per-token vectors of one context with each token's character offsets."""

    offsets: np.ndarray  # (n, 2) int64, [start, end) in the context text
    vectors: np.ndarray  # (n, dim) float32

    def __post_init__(self) -> None:
        if len(self.offsets) != len(self.vectors):
            raise ValueError(f"{len(self.offsets)} offsets for {len(self.vectors)} token vectors")


def token_bounds(offsets: np.ndarray, start: int, end: int) -> tuple[int, int]:
    """Indices ``[i, j)`` of the tokens that begin inside ``[start, end)``."""
    starts = offsets[:, 0] if len(offsets) else np.zeros(0, dtype=np.int64)
    return int(np.searchsorted(starts, start, "left")), int(np.searchsorted(starts, end, "left"))


def window_starts(n_tokens: int, content: int, overlap: int) -> list[int]:
    """Start index of every window of ``content`` tokens needed to cover ``n_tokens``,
    each later window stepping ``content - overlap`` tokens."""
    if content <= overlap:
        raise ValueError(f"window content ({content}) must exceed the overlap ({overlap})")
    if n_tokens <= content:
        return [0]
    step = content - overlap
    starts = list(range(0, n_tokens - overlap, step))
    # the last window must reach the end; range() guarantees start + content >= n for the last start
    while starts[-1] + content < n_tokens:
        starts.append(starts[-1] + step)
    return starts


def stitch_windows(window_vectors: list[np.ndarray], starts: list[int], n_tokens: int, overlap: int) -> np.ndarray:
    """Concatenate window outputs, dropping each later window's first ``overlap``
    (re-read) positions, into one vector per token of the context."""
    if not window_vectors:
        raise ValueError("no windows to stitch")
    parts = [window_vectors[0]]
    covered = len(window_vectors[0])
    for vectors, start in zip(window_vectors[1:], starts[1:]):
        skip = covered - start  # equals overlap for evenly stepped windows
        if skip < 0:
            raise ValueError(f"window at token {start} leaves a gap after token {covered}")
        parts.append(vectors[skip:])
        covered = start + len(vectors)
    out = np.concatenate(parts, axis=0)
    if len(out) != n_tokens:
        raise ValueError(f"stitched {len(out)} token vectors for a context of {n_tokens} tokens")
    return out


def pool_spans(embeddings: TokenEmbeddings, ranges: list[tuple[int, int]], normalize: bool = True) -> np.ndarray:
    """Mean of the token vectors whose tokens begin inside each character range.
    A range holding no token (text the tokenizer drops) gets the context mean."""
    vectors = embeddings.vectors.astype(np.float32, copy=False)
    dim = vectors.shape[1]
    cumsum = np.vstack([np.zeros((1, dim), dtype=np.float64), np.cumsum(vectors, axis=0, dtype=np.float64)])
    out = np.empty((len(ranges), dim), dtype=np.float32)
    fallback = vectors.mean(axis=0) if len(vectors) else np.zeros(dim, dtype=np.float32)
    for row, (start, end) in enumerate(ranges):
        i, j = token_bounds(embeddings.offsets, start, end)
        out[row] = (cumsum[j] - cumsum[i]) / (j - i) if j > i else fallback
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.where(norms == 0, 1.0, norms)
    return out
