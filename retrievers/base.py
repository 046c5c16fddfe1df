"""The retriever role: a ranked list of chunk ids with scores for a query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ScoredChunk:
    chunk_id: str
    score: float


class ChunkRetriever(Protocol):
    """Ranks chunks for one query, best first."""

    name: str

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]: ...
