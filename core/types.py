"""The vocabulary every stage speaks: documents, units, chunks and hits.

All are frozen dataclasses so a value can be passed between stages (and Prefect
tasks) without anyone mutating it behind another stage's back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

Level = Literal["chunk", "unit", "doc"]
LEVELS: tuple[Level, ...] = ("chunk", "unit", "doc")


def content_hash(text: str, title: str = "") -> str:
    """A stable fingerprint of what a document says (title included)."""
    digest = hashlib.sha256()
    digest.update(title.encode("utf-8"))
    digest.update(b"\x00")
    digest.update(text.encode("utf-8"))
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class Section:
    """A character range inside a document that a loader knows to be a unit of
    meaning (a SQuAD paragraph, a blank-line paragraph). Cuts prefer its edges."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"section offsets must satisfy 0 <= start <= end, got {self.start}..{self.end}")


@dataclass(frozen=True)
class Document:
    """One source document. ``doc_id`` is stable across runs (a data set's own id,
    or the file's path relative to the source root)."""

    doc_id: str
    text: str
    title: str = ""
    source: str = ""
    sections: tuple[Section, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    content_hash: str = ""

    def __post_init__(self) -> None:
        if not self.doc_id:
            raise ValueError("a document needs a non-empty doc_id")
        if not self.content_hash:
            object.__setattr__(self, "content_hash", content_hash(self.text, self.title))
        for section in self.sections:
            if section.end > len(self.text):
                raise ValueError(
                    f"section {section.start}..{section.end} lies past the end of document "
                    f"{self.doc_id!r} ({len(self.text)} characters)"
                )

    def meta(self, key: str, default: str = "") -> str:
        return dict(self.metadata).get(key, default)


@dataclass(frozen=True)
class Span:
    """A character range of one document, as placed in a unit or a chunk."""

    doc_id: str
    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"span offsets must satisfy 0 <= start <= end, got {self.start}..{self.end}")

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Unit:
    """A LongRAG retrieval unit: related document spans, in order, under a token limit."""

    unit_id: str
    spans: tuple[Span, ...]
    n_tokens: int
    group_key: str = ""

    def __post_init__(self) -> None:
        if not self.spans:
            raise ValueError(f"unit {self.unit_id!r} has no spans")

    @property
    def doc_ids(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for span in self.spans:
            seen.setdefault(span.doc_id, None)
        return tuple(seen)


@dataclass(frozen=True)
class Chunk:
    """A sentence-aligned piece of one document inside one unit; the thing that
    gets a vector and a BM25 row."""

    chunk_id: str
    unit_id: str
    doc_id: str
    start: int
    end: int
    position: int  # order of the chunk inside its unit
    n_tokens: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"chunk offsets must satisfy 0 <= start <= end, got {self.start}..{self.end}")


@dataclass(frozen=True)
class Hit:
    """A ranked search result at one level. ``chunk_id`` names the best chunk that
    earned the score (max-P), so every hit can be cited down to offsets."""

    level: Level
    key: str  # chunk id, unit id or doc id depending on level
    score: float
    chunk_id: str
    unit_id: str
    doc_id: str
    start: int
    end: int
    text: str = ""
    sources: tuple[tuple[str, float], ...] = field(default=())  # per-retriever scores, for display


def unit_id_for(spans: tuple[Span, ...], doc_hashes: dict[str, str]) -> str:
    """Content-derived unit id: the same spans of the same document versions give
    the same id, so an unchanged unit is recognised on every run."""
    digest = hashlib.sha256()
    for span in spans:
        digest.update(f"{span.doc_id}\x00{doc_hashes[span.doc_id]}\x00{span.start}\x00{span.end}\x01".encode())
    return "u-" + digest.hexdigest()[:24]


def chunk_id_for(unit_id: str, position: int) -> str:
    return f"{unit_id}-c{position:04d}"
