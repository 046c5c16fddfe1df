"""Vector stores by backend name (``store.backend``), each behind ``ChunkVectorStore``.

An opener imports its engine only when called, so choosing one backend never loads another.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lcrag.retrievers.config import StoreConfig
from lcrag.retrievers.stores.base import ChunkVectorStore, VectorStoreError, point_id

__all__ = ["BACKENDS", "ChunkVectorStore", "VectorStoreError", "open_store", "point_id"]


def _qdrant_client(config: StoreConfig, folder: Path | None) -> ChunkVectorStore:
    from lcrag.retrievers.stores.qdrant import QdrantChunkStore

    return QdrantChunkStore(config, folder)


def _qdrant_edge(config: StoreConfig, folder: Path | None) -> ChunkVectorStore:
    from lcrag.retrievers.stores.edge import EdgeChunkStore

    if folder is None:
        raise VectorStoreError("Qdrant Edge keeps its vectors in a folder; none was given")
    return EdgeChunkStore(config, folder)


# the names are store.backend's choices (retrievers.config.BACKEND_CHOICES), in the same order
BACKENDS: dict[str, Callable[[StoreConfig, Path | None], ChunkVectorStore]] = {
    "qdrant-local": _qdrant_client,
    "qdrant-server": _qdrant_client,  # the same client, pointed at store.qdrant_url
    "qdrant-edge": _qdrant_edge,
}


def open_store(config: StoreConfig, folder: Path | None) -> ChunkVectorStore:
    """The store of ``config.backend``; ``folder`` holds its files (a server backend ignores it)."""
    try:
        opener = BACKENDS[config.backend]
    except KeyError:
        raise VectorStoreError(f"unknown store.backend {config.backend!r}; choose one of {', '.join(BACKENDS)}") from None
    return opener(config, folder)
