"""Turn a user-given path into Documents: the loader registry and ``load_source``.

A loader never raises for one bad file or record inside a source; it reports it
in ``LoadResult.skipped`` so a large ingest is not lost to a single corrupt file.
Only a missing path, an unknown format name, or a source that is unreadable as a
whole in the chosen format raises.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipeline.types import Document, content_hash


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


class UnknownFormatError(ValueError):
    """The format name is not in the registry."""


class SourceNotFoundError(FileNotFoundError):
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
            raise ValueError(f"corrupt gzip file: {exc or type(exc).__name__}") from exc
    return raw


def read_json(path: Path) -> Any:
    """Parse a whole .json / .json.gz file; ``ValueError`` with the reason otherwise."""
    data = read_bytes(path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc


def relative_name(path: Path, root: Path) -> str:
    """Path relative to the source root with "/" separators (a single file: its name)."""
    if path == root:
        return path.name
    return path.relative_to(root).as_posix()


# The format modules import the names above, so they are imported after them.
from pipeline.loaders import beir, files, hotpotqa, jsonl, squad  # noqa: E402

LOADERS: dict[str, Callable[[Path, LoadOptions], LoadResult]] = {
    "files": files.load_files,
    "beir": beir.load_beir,
    "squad": squad.load_squad,
    "hotpotqa": hotpotqa.load_hotpotqa,
    "jsonl": jsonl.load_jsonl,
}
FORMATS: tuple[str, ...] = ("auto", *LOADERS)

# Loaders that can reuse the json that auto-detection already parsed.
_FROM_PAYLOAD: dict[str, Callable[[Any, Path], LoadResult]] = {
    "squad": squad.squad_from_payload,
    "hotpotqa": hotpotqa.hotpotqa_from_payload,
}


def _looks_like_squad(payload: Any) -> bool:
    data = payload.get("data") if isinstance(payload, dict) else None
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(item, dict) and "paragraphs" in item for item in data[:5])
    )


def _looks_like_hotpotqa(payload: Any) -> bool:
    if not isinstance(payload, list) or not payload:
        return False
    return all(
        isinstance(item, dict) and "context" in item and "supporting_facts" in item for item in payload[:5]
    )


def _detect(path: Path) -> tuple[str, Any]:
    """The format for ``path`` and, for a json file, its parsed content (so the
    loader does not read and parse a large file a second time)."""
    if not path.exists():
        raise SourceNotFoundError(f"source not found: {path}")
    if path.is_dir():
        return ("beir" if (path / "corpus.jsonl").is_file() else "files"), None
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz")):
        return "jsonl", None
    if name.endswith((".json", ".json.gz")):
        try:
            payload = read_json(path)
        except (OSError, ValueError):
            return "files", None
        if _looks_like_squad(payload):
            return "squad", payload
        if _looks_like_hotpotqa(payload):
            return "hotpotqa", payload
    return "files", None


def detect_format(path: Path) -> str:
    """Which registered format ``load_source(path, "auto")`` would use."""
    return _detect(Path(path).expanduser())[0]


def load_source(path: str | Path, fmt: str = "auto", options: LoadOptions = LoadOptions()) -> LoadResult:
    """Load every document of a source in the given (or detected) format."""
    if fmt not in FORMATS:
        raise UnknownFormatError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    source = Path(path).expanduser()
    if not source.exists():
        raise SourceNotFoundError(f"source not found: {source}")
    if fmt != "auto":
        return LOADERS[fmt](source, options)
    detected, payload = _detect(source)
    if payload is not None and detected in _FROM_PAYLOAD:
        return _FROM_PAYLOAD[detected](payload, source)
    return LOADERS[detected](source, options)


__all__ = [
    "FORMATS",
    "LOADERS",
    "LoadOptions",
    "LoadResult",
    "ResultBuilder",
    "Skipped",
    "SourceNotFoundError",
    "UnknownFormatError",
    "detect_format",
    "load_source",
]
