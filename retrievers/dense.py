"""The dense retriever: the query's vector against the chunk vectors of a store.

The stores themselves live in ``lcrag.retrievers.stores`` (one module per engine);
their names are re-exported here for code written before they moved.
"""

from __future__ import annotations

from lcrag.retrievers.base import ScoredChunk
from lcrag.retrievers.stores.base import ChunkVectorStore, VectorStoreError, point_id
from lcrag.retrievers.stores.qdrant import QdrantChunkStore

__all__ = ["ChunkVectorStore", "DenseRetriever", "QdrantChunkStore", "VectorStoreError", "point_id"]


class DenseRetriever:
    name = "dense"

    def __init__(self, store: ChunkVectorStore, encoder) -> None:
        self.store = store
        self.encoder = encoder

    def retrieve(self, query: str, k: int) -> list[ScoredChunk]:
        return self.store.search(self.encoder.embed([query])[0], k)
