"""LLM readers, one backend per module; ``reader.backend`` in the config picks one of
the ``lcrag.readers`` entry point group (``readers.registry``: lcrag's own and plugins').
``make_attention`` (attention-sort's source) lives in ``readers.attention``."""

from __future__ import annotations

from lcrag.readers.registry import connect_reader, make_reader

__all__ = ["connect_reader", "make_reader"]
