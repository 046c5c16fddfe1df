"""lcrag's own vector store backends, registered in the ``lcrag.stores`` entry point group
(pyproject) as a plugin's would be. An opener takes ``(config, folder)`` and returns a
``ChunkVectorStore``; it imports its engine only when called, so choosing one backend
never loads another."""

from __future__ import annotations

from pathlib import Path

from lcrag.retrievers.config import StoreConfig
from lcrag.retrievers.stores.base import ChunkVectorStore, VectorStoreError


def qdrant_client_store(config: StoreConfig, folder: Path | None) -> ChunkVectorStore:
    """qdrant-local (Qdrant's Python local mode, in ``folder``) and qdrant-server (the same
    client, pointed at ``store.qdrant_url``)."""
    from lcrag.retrievers.stores.qdrant import QdrantChunkStore

    return QdrantChunkStore(config, folder)


def qdrant_edge_store(config: StoreConfig, folder: Path | None) -> ChunkVectorStore:
    """qdrant-edge: Qdrant's engine in process, its files in ``folder``."""
    from lcrag.retrievers.stores.edge import EdgeChunkStore

    if folder is None:
        raise VectorStoreError("Qdrant Edge keeps its vectors in a folder; none was given")
    return EdgeChunkStore(config, folder)
