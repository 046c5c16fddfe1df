"""Reader backends by name (``reader.backend``): the ``lcrag.readers`` entry point group.
Each entry point names a factory ``(config: ReaderConfig, home: Path) -> reader``;
lcrag's own (``vllm``, ``fake``) are registered in its pyproject the way a plugin's are.
Loaded on first use (``lcrag.core.plugins``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lcrag.core.plugins import load_group

GROUP = "lcrag.readers"


def _factory(name: str, obj: Any) -> str | None:
    return None if callable(obj) else "must name a callable (config, home) -> reader"


def reader_backends() -> dict[str, Callable[..., Any]]:
    """Backend name -> reader factory, in the order the entry points list them."""
    return load_group(GROUP, "reader backend", _factory)
