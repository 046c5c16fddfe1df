"""The one domain error of the BM25 package."""

from __future__ import annotations

from lcrag.core.errors import LcragError


class BM25FormatError(LcragError, RuntimeError):
    """A BM25 folder is missing, incomplete or unreadable; the message names the fix."""


def rebuild_hint(folder: object) -> str:
    return f"the BM25 index in {folder} cannot be read; run the same `lcrag ingest` on this index again to rebuild it"
