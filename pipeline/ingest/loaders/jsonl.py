"""The "jsonl" format: one JSON object per line, plain or gzipped.

A line with a ``ctxs`` list is a question with its passages (NQ-open oracle /
lost-in-the-middle layout): the passages are the documents, deduplicated like
HotpotQA paragraphs. Any other line is itself a document.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lcrag.core.types import Document
from lcrag.pipeline.ingest.loaders.base import (
    LoadOptions,
    LoadResult,
    ResultBuilder,
    SourceFormatError,
    failure_reason,
    relative_name,
)
from lcrag.pipeline.ingest.loaders.decoding import as_utf8
from lcrag.pipeline.ingest.loaders.reading import read_or_skip
from lcrag.pipeline.ingest.loaders.walk import list_source

_MAX_META_CHARS = 200


def iter_json_lines(data: bytes) -> Iterator[tuple[int, Any, str]]:
    """(1-based line number, parsed object, error) per non-blank line; error is ""
    when the line parsed, so one bad line never costs the rest of the file --
    whatever the parser raises for it (bad syntax, nesting too deep, memory).
    A UTF-16/32 file with a byte-order mark is read as its mark says."""
    try:
        data = as_utf8(data)
    except SourceFormatError as exc:
        yield 1, None, str(exc)
        return
    for line_no, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield line_no, None, f"not valid UTF-8 on line {line_no} (byte 0x{raw[exc.start]:02x} at column {exc.start})"
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield line_no, None, f"invalid JSON on line {line_no}: {exc.msg} (column {exc.colno})"
            continue
        except Exception as exc:  # RecursionError, MemoryError, ValueError (huge integers)
            yield line_no, None, f"invalid JSON on line {line_no}: {failure_reason(exc)}"
            continue
        yield line_no, record, ""


def readable_lines(builder: ResultBuilder, data: bytes, name: str) -> Iterator[tuple[str, int, Any]]:
    """(where, line number, parsed object) per line that parsed; a line that did not is
    reported to ``builder`` as skipped (``where`` is ``name:line``)."""
    for line_no, record, error in iter_json_lines(data):
        where = f"{name}:{line_no}"
        if error:
            builder.skip(where, error)
        else:
            yield where, line_no, record


def _scalar_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value) or None


def record_fields(record: Any, options: LoadOptions) -> tuple[str | None, str, str]:
    """(id or None, title, text) of a JSON record; ``ValueError`` names what is missing."""
    if not isinstance(record, dict):
        raise ValueError(f"not a JSON object ({type(record).__name__})")
    text = record.get(options.text_field)
    if not isinstance(text, str):
        raise ValueError(f"no {options.text_field!r} field")
    if not text.strip():
        raise ValueError(f"empty {options.text_field!r} field")
    title = record.get(options.title_field)
    record_id = _scalar_id(record.get(options.id_field))
    if record_id is None:
        record_id = _scalar_id(record.get("id"))
    return record_id, title if isinstance(title, str) else "", text


def record_metadata(record: Any, options: LoadOptions) -> tuple[tuple[str, str], ...]:
    """Short scalar fields of a record other than id/title/text, kept for filtering."""
    if not isinstance(record, dict):
        return ()
    used = {options.text_field, options.title_field, options.id_field, "id"}
    pairs = []
    for key, value in record.items():
        if key in used or not isinstance(value, (str, int, float, bool)):
            continue
        value = str(value)
        if len(value) <= _MAX_META_CHARS:
            pairs.append((str(key), value))
    return tuple(pairs)


def _add_ctxs(builder: ResultBuilder, ctxs: list, where: str, source: str) -> None:
    for index, ctx in enumerate(ctxs):
        text = ctx.get("text") if isinstance(ctx, dict) else None
        if not isinstance(text, str) or not text.strip():
            builder.skip(where, f"ctx {index}: no 'text' field")
            continue
        title = ctx.get("title") if isinstance(ctx.get("title"), str) else ""
        doc_id = _scalar_id(ctx.get("id")) or title or f"{where}#ctx{index}"
        builder.add_variant(Document(doc_id=doc_id, text=text, title=title, source=source))


def _add_lines(builder: ResultBuilder, data: bytes, rel: str, options: LoadOptions) -> None:
    source = f"jsonl:{rel}"
    for where, line_no, record in readable_lines(builder, data, rel):
        if isinstance(record, dict) and isinstance(record.get("ctxs"), list):
            _add_ctxs(builder, record["ctxs"], where, source)
            continue
        try:
            record_id, title, text = record_fields(record, options)
        except ValueError as exc:
            builder.skip(where, f"line {line_no}: {exc}")
            continue
        doc = Document(
            doc_id=record_id or where,
            text=text,
            title=title,
            source=source,
            metadata=record_metadata(record, options),
        )
        builder.add(doc, where)


def _is_jsonl(name: str) -> bool:
    return name.lower().endswith((".jsonl", ".jsonl.gz"))


def load_jsonl(path: Path, options: LoadOptions) -> LoadResult:
    """Every .jsonl / .jsonl.gz file under ``path`` (recursively; hidden entries and
    symlinks leading outside are reported), each read under the size limit."""
    listing = list_source(path, options.follow_symlinks, _is_jsonl)
    if not listing.files:
        raise SourceFormatError(f"no .jsonl or .jsonl.gz files in {path}; try --format auto")
    builder = ResultBuilder("jsonl")
    for skipped in listing.skipped:
        builder.skip(skipped.path, skipped.reason)
    for file in listing.files:
        rel = relative_name(file, path)
        data = read_or_skip(builder, file, rel, options.max_file_bytes)
        if data is None:
            continue
        _add_lines(builder, data, rel, options)
    return builder.build()
