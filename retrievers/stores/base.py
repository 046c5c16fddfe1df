"""What ingestion and search need from a vector store, whatever engine holds the vectors.

Every backend stores one point per chunk under ``point_id(chunk_id)``, so writing a
unit twice (a resumed ingestion) overwrites and never duplicates, with the same payload,
and ranks by cosine similarity.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

import numpy as np

from lcrag.core.errors import LcragError
from lcrag.core.types import Chunk
from lcrag.retrievers.base import ScoredChunk

_POINT_NAMESPACE = uuid.UUID("6f1c9a52-8d1e-4a57-9a43-1f0d3b7c2e11")


class VectorStoreError(LcragError, RuntimeError):
    """The vector store cannot be opened or used; the message names the fix."""


def point_id(chunk_id: str) -> str:
    """A chunk's point id: derived from its id, so a rewrite replaces the point."""
    return str(uuid.uuid5(_POINT_NAMESPACE, chunk_id))


def chunk_payload(chunk: Chunk) -> dict:
    """What a point carries besides its vector: enough to find its unit and text again."""
    return {
        "chunk_id": chunk.chunk_id,
        "unit_id": chunk.unit_id,
        "doc_id": chunk.doc_id,
        "start": chunk.start,
        "end": chunk.end,
        "position": chunk.position,
    }


def check_batch(chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
    if len(chunks) != len(vectors):
        raise ValueError(f"{len(chunks)} chunks for {len(vectors)} vectors")


class ChunkVectorStore(Protocol):
    """Chunk vectors with their payload. ``upsert`` returns once its points are durable
    against a crash of this process: a resumed ingestion trusts what was acknowledged."""

    def ensure_collection(self, dim: int) -> None:
        """Create the vector space for ``dim``-d vectors, or check that it holds that size."""
        ...

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None: ...

    def delete_units(self, unit_ids: Iterable[str]) -> None:
        """Remove every point of these units (absent ones are ignored)."""
        ...

    def unit_ids(self) -> set[str]:
        """Every unit id that has at least one point (for reconciliation)."""
        ...

    def count(self) -> int:
        """The exact number of points."""
        ...

    def iter_vectors(self) -> Iterator[tuple[str, np.ndarray]]:
        """Every (chunk id, stored vector): for export, and for tests comparing two indexes."""
        ...

    def search(self, vector: np.ndarray, k: int, *, exact: bool = False) -> list[ScoredChunk]:
        """The ``k`` nearest chunks by cosine, best first; ``exact`` skips any approximate index."""
        ...

    def flush(self) -> None:
        """Persist everything written so far to the store's files."""
        ...

    def close(self) -> None:
        """Flush and release the store's files (another process may open them then)."""
        ...
