"""Turn a user-given path into Documents: the loader registry and ``load_source``.

A loader never raises for one bad file or record inside a source; it reports it
in ``LoadResult.skipped`` so a large ingest is not lost to a single corrupt file.
Only a missing path, an unknown format name, or a source that is unreadable as a
whole in the chosen format raises.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lcrag.pipeline.ingest.loaders import beir, files, hotpotqa, jsonl, squad
from lcrag.pipeline.ingest.loaders.base import (
    LoadOptions,
    LoadResult,
    ResultBuilder,
    Skipped,
    SourceFormatError,
    SourceNotFoundError,
    UnknownFormatError,
    relative_name,
)
from lcrag.pipeline.ingest.loaders.reading import read_bytes, read_json

__all__ = [
    "FORMATS", "LoadOptions", "LoadResult", "ResultBuilder", "Skipped", "SourceFormatError", "SourceNotFoundError",
    "UnknownFormatError", "detect_format", "load_source", "read_bytes", "read_json", "relative_name",
]

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
        except Exception:  # unreadable, refused or unparsable: the files loader says why
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
