"""Vector stores by backend name (``store.backend``), each behind ``ChunkVectorStore``: the
``lcrag.stores`` entry point group (``retrievers.registry``), lcrag's own openers
(``stores.openers``) registered in its pyproject as a plugin's would be.

An opener imports its engine only when called, so choosing one backend never loads another.
"""

from __future__ import annotations

from pathlib import Path

from lcrag.retrievers.config import StoreConfig
from lcrag.retrievers.registry import store_backends
from lcrag.retrievers.stores.base import ChunkVectorStore, VectorStoreError, point_id

__all__ = ["ChunkVectorStore", "VectorStoreError", "open_store", "point_id"]


def open_store(config: StoreConfig, folder: Path | None) -> ChunkVectorStore:
    """The store of ``config.backend``; ``folder`` holds its files (a server backend ignores it)."""
    openers = store_backends()
    try:
        opener = openers[config.backend]
    except KeyError:
        raise VectorStoreError(f"unknown store.backend {config.backend!r}; choose one of {', '.join(openers)}") from None
    return opener(config, folder)
