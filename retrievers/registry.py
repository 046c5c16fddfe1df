"""The retrievers' plugin groups, loaded on first use (``lcrag.core.plugins``):

- ``lcrag.stores``: vector store backends by name (``store.backend``); each entry point
  names an opener ``(config: StoreConfig, folder: Path | None) -> ChunkVectorStore``.
- ``lcrag.encoders``: registered encoder models by name (``encoder.model``); each entry
  point names a locator ``() -> Path``, the model's folder (raising a domain error that
  names the set-up when it is missing).

lcrag's own are registered in its pyproject the way a plugin's are."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lcrag.core.plugins import load_group

STORES = "lcrag.stores"
ENCODERS = "lcrag.encoders"


def _callable(signature: str) -> Callable[[str, Any], str | None]:
    return lambda name, obj: None if callable(obj) else f"must name a callable {signature}"


def store_backends() -> dict[str, Callable[..., Any]]:
    """Backend name -> store opener, in the order the entry points list them."""
    return load_group(STORES, "store backend", _callable("(config, folder) -> ChunkVectorStore"))


def encoder_models() -> dict[str, Callable[[], Path]]:
    """Registered model name -> locator of its folder, in the order the entry points list them."""
    return load_group(ENCODERS, "encoder", _callable("() -> the model's folder"))
