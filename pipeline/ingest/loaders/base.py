"""What every loader shares: the result types, the options and the errors.

A loader never raises for one bad file or record inside a source; it reports it
in ``LoadResult.skipped`` so a large ingest is not lost to a single corrupt file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lcrag.core.errors import ConfigError, LcragError
from lcrag.core.types import Document, content_hash

MIB = 2**20
DEFAULT_MAX_FILE_BYTES = 64 * MIB


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
    """Field names for json/jsonl records (ids fall back to "id", then a line id),
    and the limits that keep an untrusted folder from hanging or flooding a run:
    the largest file read (``files`` and ``jsonl`` formats), and whether symlinks
    leading outside the source folder are followed."""

    text_field: str = "text"
    title_field: str = "title"
    id_field: str = "_id"
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    follow_symlinks: bool = False

    def __post_init__(self) -> None:
        if self.max_file_bytes < 1:
            raise ConfigError(
                f"the file size limit must be at least 1 byte, got {self.max_file_bytes}; raise ingest.max_file_mib"
            )


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

    def extend(self, other: ResultBuilder) -> None:
        """Take over another builder's documents and skips (one file's, loaded apart
        so that a file failing half-way leaves nothing behind)."""
        for doc in other._docs.values():
            self.add(doc, doc.doc_id)
        self._skipped.extend(other._skipped)

    def build(self) -> LoadResult:
        return LoadResult(self.fmt, tuple(self._docs.values()), tuple(self._skipped))


def failure_reason(exc: BaseException) -> str:
    """What a parser's exception says, short and without a traceback, for a skip reason."""
    if isinstance(exc, RecursionError):
        return "nested too deeply to parse (RecursionError)"
    if isinstance(exc, MemoryError):
        return "too large to parse in memory (MemoryError)"
    if isinstance(exc, LcragError):
        return str(exc)
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def os_reason(exc: OSError) -> str:
    """An OSError as a short lower-case reason ("permission denied")."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def relative_name(path: Path, root: Path) -> str:
    """Path relative to the source root with "/" separators (a single file: its name)."""
    if path == root:
        return path.name
    return path.relative_to(root).as_posix()
