"""Chunk vectors through ``qdrant_client``: local mode (a folder inside the index,
searched by a brute-force scan in Python) or a Qdrant server at ``store.qdrant_url``.
One class serves both, since the client speaks the same API to either."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from lcrag.core.types import Chunk
from lcrag.retrievers.base import ScoredChunk
from lcrag.retrievers.config import StoreConfig
from lcrag.retrievers.stores.base import VectorStoreError, check_batch, chunk_payload, point_id

UPSERT_BATCH = 512
DELETE_BATCH = 256


class QdrantChunkStore:
    """Chunk vectors with payload (chunk, unit, document, offsets, position)."""

    def __init__(self, config: StoreConfig, local_path: Path | None) -> None:
        from qdrant_client import QdrantClient

        self.collection = config.collection
        self.server = bool(config.qdrant_url)
        self.hnsw_ef = config.hnsw_ef
        try:
            if self.server:
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

    def flush(self) -> None:
        """Nothing to do: local mode writes each upsert through, a server acknowledges after its WAL."""

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

        check_batch(chunks, vectors)
        points = [
            models.PointStruct(id=point_id(c.chunk_id), vector=v.tolist(), payload=chunk_payload(c))
            for c, v in zip(chunks, vectors)
        ]
        for i in range(0, len(points), UPSERT_BATCH):
            self.client.upsert(self.collection, points[i : i + UPSERT_BATCH], wait=True)

    def delete_units(self, unit_ids: Iterable[str]) -> None:
        from qdrant_client import models

        ids = list(unit_ids)
        if not ids or not self.client.collection_exists(self.collection):
            return
        for i in range(0, len(ids), DELETE_BATCH):
            selector = models.Filter(must=[models.FieldCondition(key="unit_id", match=models.MatchAny(any=ids[i : i + DELETE_BATCH]))])
            self.client.delete(self.collection, points_selector=models.FilterSelector(filter=selector), wait=True)

    def unit_ids(self) -> set[str]:
        if not self.client.collection_exists(self.collection):
            return set()
        seen: set[str] = set()
        offset = None
        while True:
            records, offset = self.client.scroll(self.collection, limit=2048, offset=offset, with_payload=["unit_id"])
            seen.update(r.payload["unit_id"] for r in records if r.payload)
            if offset is None:
                return seen

    def iter_vectors(self) -> Iterator[tuple[str, np.ndarray]]:
        if not self.client.collection_exists(self.collection):
            return
        offset = None
        while True:
            records, offset = self.client.scroll(
                self.collection, limit=1000, offset=offset, with_payload=["chunk_id"], with_vectors=True
            )
            for r in records:
                if r.payload:
                    yield r.payload["chunk_id"], np.asarray(r.vector, dtype=np.float32)
            if offset is None:
                return

    def count(self) -> int:
        if not self.client.collection_exists(self.collection):
            return 0
        return int(self.client.count(self.collection, exact=True).count)

    def search(self, vector: np.ndarray, k: int, *, exact: bool = False) -> list[ScoredChunk]:
        """Local mode always scans every point (``exact`` changes nothing there)."""
        from qdrant_client import models

        if not self.client.collection_exists(self.collection):
            return []
        params = models.SearchParams(hnsw_ef=self.hnsw_ef, exact=exact) if self.server else None
        response = self.client.query_points(
            self.collection, query=vector.tolist(), limit=k, with_payload=["chunk_id"], search_params=params
        )
        return [ScoredChunk(p.payload["chunk_id"], float(p.score)) for p in response.points if p.payload]
