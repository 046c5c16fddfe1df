"""Chunk vectors in Qdrant, and the dense retriever over them.

Local mode (a folder inside the index) by default; a server URL in the config
points the same code at a Qdrant server or cluster. Point ids are derived from
chunk ids, so writing a unit twice (a resumed ingestion) overwrites, never
duplicates.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from lcrag.core.errors import LcragError
from lcrag.core.types import Chunk
from lcrag.retrievers.base import ScoredChunk
from lcrag.retrievers.config import StoreConfig

_POINT_NAMESPACE = uuid.UUID("6f1c9a52-8d1e-4a57-9a43-1f0d3b7c2e11")


class VectorStoreError(LcragError, RuntimeError):
    """The vector store cannot be opened or used; the message names the fix."""


def point_id(chunk_id: str) -> str:
    return str(uuid.uuid5(_POINT_NAMESPACE, chunk_id))


class QdrantChunkStore:
    """Chunk vectors with payload (chunk, unit, document, offsets, position)."""

    def __init__(self, config: StoreConfig, local_path: Path | None) -> None:
        from qdrant_client import QdrantClient

        self.collection = config.collection
        try:
            if config.qdrant_url:
                self.client = QdrantClient(url=config.qdrant_url, api_key=os.environ.get(config.qdrant_api_key_env) or None)
            else:
                if local_path is None:
                    raise VectorStoreError("Qdrant local mode needs a folder")
                local_path.mkdir(parents=True, exist_ok=True)
                self.client = QdrantClient(path=str(local_path))
        except RuntimeError as err:
            if "already accessed" in str(err):
                raise VectorStoreError(
                    f"the vectors in {local_path} are open in another lcrag process (Qdrant local mode allows one); "
                    "stop it, or point store.qdrant_url at a Qdrant server"
                ) from None
            raise

    def close(self) -> None:
        self.client.close()

    def ensure_collection(self, dim: int) -> None:
        from qdrant_client import models

        if self.client.collection_exists(self.collection):
            size = self.client.get_collection(self.collection).config.params.vectors.size  # type: ignore[union-attr]
            if size != dim:
                raise VectorStoreError(f"collection {self.collection} holds {size}-d vectors, the encoder makes {dim}-d")
            return
        self.client.create_collection(
            self.collection, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
        )

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        from qdrant_client import models

        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks for {len(vectors)} vectors")
        points = [
            models.PointStruct(
                id=point_id(c.chunk_id),
                vector=v.tolist(),
                payload={
                    "chunk_id": c.chunk_id,
                    "unit_id": c.unit_id,
                    "doc_id": c.doc_id,
                    "start": c.start,
                    "end": c.end,
                    "position": c.position,
                },
            )
            for c, v in zip(chunks, vectors)
        ]
        for i in range(0, len(points), 512):
            self.client.upsert(self.collection, points[i : i + 512], wait=True)

    def delete_units(self, unit_ids: Iterable[str]) -> None:
        from qdrant_client import models

        ids = list(unit_ids)
        if not ids or not self.client.collection_exists(self.collection):
            return
        for i in range(0, len(ids), 256):
            selector = models.Filter(must=[models.FieldCondition(key="unit_id", match=models.MatchAny(any=ids[i : i + 256]))])
            self.client.delete(self.collection, points_selector=models.FilterSelector(filter=selector), wait=True)

    def unit_ids(self) -> set[str]:
        """Every unit id that has at least one point (for reconciliation)."""
        if not self.client.collection_exists(self.collection):
            return set()
        seen: set[str] = set()
        offset = None
        while True:
            records, offset = self.client.scroll(self.collection, limit=2048, offset=offset, with_payload=["unit_id"])
            seen.update(r.payload["unit_id"] for r in records if r.payload)
            if offset is None:
                return seen

    def count(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return int(self.client.count(self.collection, exact=True).count)

    def search(self, vector: np.ndarray, k: int) -> list[ScoredChunk]:
        if not self.client.collection_exists(self.collection):
            return []
        response = self.client.query_points(self.collection, query=vector.tolist(), limit=k, with_payload=["chunk_id"])
        return [ScoredChunk(p.payload["chunk_id"], float(p.score)) for p in response.points if p.payload]


class DenseRetriever:
    name = "dense"

    def __init__(self, store: QdrantChunkStore, encoder) -> None:
        self.store = store
        self.encoder = encoder

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        return self.store.search(self.encoder.embed([query])[0], k)
