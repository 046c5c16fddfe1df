"""What every loader shares: the result types, the errors, and reading helpers.

A loader never raises for one bad file or record inside a source; it reports it
in ``LoadResult.skipped`` so a large ingest is not lost to a single corrupt file.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcrag.core.errors import LcragError
from lcrag.core.types import Document, content_hash


@dataclass(frozen=True)
class Skipped:
    """A file or record that was not loaded, and why (shown to the user)."""

    path: str
    reason: str


@dataclass(frozen=True)
class LoadResult:
    format: str
    documents: tuple[Document, ...]
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True)
class LoadOptions:
    """Field names for json/jsonl records; ids fall back to "id", then a line id."""

    text_field: str = "text"
    title_field: str = "title"
    id_field: str = "_id"


class UnknownFormatError(LcragError, ValueError):
    """The format name is not in the registry."""


class SourceFormatError(LcragError, ValueError):
    """A source (or one file of it) is unreadable in the chosen format; the message says where."""


class SourceNotFoundError(LcragError, FileNotFoundError):
    """The source path does not exist."""


@dataclass
class ResultBuilder:
    """Collects documents and skips for one load, applying the duplicate-id rules.

    ``add``: the same id with the same text is dropped silently (re-listed data),
    with different text it is skipped, since silently replacing would change what
    an id means. ``add_variant``: the HotpotQA rule, where a later different text
    under a known title gets ``"<title>#<hash8>"`` instead of being lost.
    """

    fmt: str
    _docs: dict[str, Document] = field(default_factory=dict)
    _skipped: list[Skipped] = field(default_factory=list)

    def skip(self, path: str, reason: str) -> None:
        self._skipped.append(Skipped(path, reason))

    def add(self, doc: Document, where: str) -> None:
        known = self._docs.get(doc.doc_id)
        if known is None:
            self._docs[doc.doc_id] = doc
        elif known.content_hash != doc.content_hash:
            self.skip(where, f"duplicate doc id {doc.doc_id!r} with different text")

    def add_variant(self, doc: Document) -> None:
        known = self._docs.get(doc.doc_id)
        if known is None:
            self._docs[doc.doc_id] = doc
            return
        if known.content_hash == doc.content_hash:
            return
        variant_id = f"{doc.doc_id}#{content_hash(doc.text, doc.title)[:8]}"
        if variant_id not in self._docs:
            self._docs[variant_id] = Document(
                doc_id=variant_id,
                text=doc.text,
                title=doc.title,
                source=doc.source,
                sections=doc.sections,
                metadata=doc.metadata,
                content_hash=doc.content_hash,
            )

    def build(self) -> LoadResult:
        return LoadResult(self.fmt, tuple(self._docs.values()), tuple(self._skipped))


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in .gz.

    Raises ``ValueError`` with a readable reason for a corrupt gzip file.
    """
    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceFormatError(f"corrupt gzip file: {exc or type(exc).__name__}") from exc
    return raw


def read_json(path: Path) -> Any:
    """Parse a whole .json / .json.gz file; ``ValueError`` with the reason otherwise."""
    data = read_bytes(path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SourceFormatError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise SourceFormatError(f"invalid JSON: {exc}") from exc


def relative_name(path: Path, root: Path) -> str:
    """Path relative to the source root with "/" separators (a single file: its name)."""
    if path == root:
        return path.name
    return path.relative_to(root).as_posix()
