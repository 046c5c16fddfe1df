"""The "files" format: a folder of ordinary documents (or one such file).

doc_id is the path relative to the folder, so the same file keeps its id across
runs and machines. Text is decoded strictly: a mis-decoded file would silently
index garbage, so it is reported instead.
"""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

from lcrag.core.types import Document, Section
from lcrag.pipeline.ingest.loaders.base import (
    LoadOptions,
    LoadResult,
    ResultBuilder,
    SourceFormatError,
    relative_name,
)
from lcrag.pipeline.ingest.loaders.jsonl import readable_lines, record_fields, record_metadata

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
SUPPORTED_SUFFIXES = (*TEXT_SUFFIXES, *HTML_SUFFIXES, ".pdf", ".json", ".jsonl")

_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")
_MD_HEADING = re.compile(r"^#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_MD_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_BINARY_PROBE = 8192


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def paragraph_sections(text: str) -> tuple[Section, ...]:
    """Paragraphs separated by one or more blank lines, as whitespace-trimmed ranges."""
    sections: list[Section] = []
    start = 0
    for gap in [*_BLANK_LINES.finditer(text), None]:
        end = gap.start() if gap else len(text)
        block = text[start:end]
        stripped = block.strip()
        if stripped:
            first = start + (len(block) - len(block.lstrip()))
            sections.append(Section(first, first + len(stripped)))
        if gap:
            start = gap.end()
    return tuple(sections)


def decode_text(data: bytes) -> str:
    """Strict UTF-8 (a BOM is allowed and dropped); ``ValueError`` names the problem."""
    if b"\x00" in data[:_BINARY_PROBE]:
        raise SourceFormatError("binary file")
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = bom + exc.start
        raise SourceFormatError(f"not valid UTF-8 (byte 0x{data[offset]:02x} at offset {offset})") from exc


def markdown_title(text: str) -> tuple[str, str]:
    """The first ``# `` heading outside code fences, and the text without it when
    it opens the document (then it is the title, not part of the body)."""
    lines = text.split("\n")
    in_fence = False
    seen_content = False
    for index, line in enumerate(lines):
        if _MD_FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            match = _MD_HEADING.match(line)
            if match:
                if seen_content:
                    return match.group(1).strip(), text
                return match.group(1).strip(), "\n".join(lines[index + 1 :])
        if line.strip():
            seen_content = True
    return "", text


_BLOCK_TAGS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer form h1 h2 h3 h4 h5 h6 "
    "header hr li main nav ol p section table tbody thead tfoot tr ul".split()
)
_HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template"})
_CELL_TAGS = frozenset({"td", "th"})


class _VisibleText(HTMLParser):
    """Collects visible paragraphs and the <title>; block tags end a paragraph."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.title_parts: list[str] = []
        self._buffer: list[str] = []
        self._hidden = 0
        self._in_head = False
        self._in_title = False
        self._pre = 0

    def _flush(self) -> None:
        raw = "".join(self._buffer)
        self._buffer = []
        text = raw.strip("\n").rstrip() if self._pre else " ".join(raw.split())
        if text.strip():
            self.paragraphs.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden += 1
        elif tag == "head":
            self._in_head = True
        elif tag == "body":
            self._in_head = False
        elif tag == "title":
            self._in_title = True
        elif tag == "pre":
            self._flush()
            self._pre += 1
        elif tag in _BLOCK_TAGS:
            self._flush()
        elif tag in _CELL_TAGS:
            self._buffer.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "head":
            self._in_head = False
        elif tag == "title":
            self._in_title = False
        elif tag == "pre":
            self._flush()
            self._pre = max(0, self._pre - 1)
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._hidden and not self._in_head:
            self._buffer.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def parse_html(html: str) -> tuple[str, str]:
    """(title, visible text) of an HTML page; paragraphs joined by blank lines."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.title_parts).split()), "\n\n".join(parser.paragraphs)


def html_to_text(html: str) -> str:
    return parse_html(html)[1]


def pdf_to_text(path: Path) -> tuple[str, int]:
    """(text, page count) via pypdf; ``ValueError`` when it cannot give text."""
    from pypdf import PdfReader  # imported here: only PDF sources pay for it

    try:
        reader = PdfReader(path)
        encrypted = reader.is_encrypted
    except Exception as exc:  # pypdf raises many unrelated types for broken files
        raise SourceFormatError(f"corrupt PDF: {type(exc).__name__}: {exc}") from exc
    if encrypted:
        try:
            unlocked = bool(reader.decrypt(""))  # owner-password-only PDFs open with ""
        except Exception as exc:
            raise SourceFormatError(f"encrypted PDF: {type(exc).__name__}: {exc}") from exc
        if not unlocked:
            raise SourceFormatError("encrypted PDF (needs a password)")
    try:
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:
        raise SourceFormatError(f"corrupt PDF: {type(exc).__name__}: {exc}") from exc
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise SourceFormatError("PDF has no extractable text (scanned image?)")
    return normalise_newlines(text), len(pages)


def _document(doc_id: str, text: str, title: str, rel: str, metadata: tuple = ()) -> Document:
    text = normalise_newlines(text).strip()
    return Document(
        doc_id=doc_id,
        text=text,
        title=title,
        source=f"files:{rel}",
        sections=paragraph_sections(text),
        metadata=(("file_type", Path(rel).suffix.lower().lstrip(".")), *metadata),
    )


def _add_record(builder: ResultBuilder, record: object, key: str, rel: str, options: LoadOptions) -> None:
    try:
        record_id, title, text = record_fields(record, options)
    except ValueError as exc:
        builder.skip(f"{rel}#{key}", str(exc))
        return
    doc_id = f"{rel}#{record_id if record_id is not None else key}"
    builder.add(_document(doc_id, text, title, rel, record_metadata(record, options)), f"{rel}#{key}")


def _load_json(builder: ResultBuilder, text: str, rel: str, stem: str, options: LoadOptions) -> None:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        builder.skip(rel, f"invalid JSON: {exc}")
        return
    if isinstance(payload, dict):
        try:
            _, title, body = record_fields(payload, options)
        except ValueError as exc:
            builder.skip(rel, str(exc))
            return
        builder.add(_document(rel, body, title or stem, rel, record_metadata(payload, options)), rel)
    elif isinstance(payload, list):
        for index, record in enumerate(payload):
            _add_record(builder, record, str(index), rel, options)
    else:
        builder.skip(rel, f"JSON top level is {type(payload).__name__}; expected an object or a list of objects")


def _load_jsonl_file(builder: ResultBuilder, data: bytes, rel: str, options: LoadOptions) -> None:
    for _, line_no, record in readable_lines(builder, data, rel):
        _add_record(builder, record, str(line_no), rel, options)


def _load_one(builder: ResultBuilder, path: Path, rel: str, options: LoadOptions) -> None:
    """Add the document(s) of one file, or record why it was skipped."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        builder.skip(rel, f"unsupported file type {suffix or '(no extension)'}")
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        builder.skip(rel, f"cannot read: {exc.strerror or exc}")
        return
    if not data.strip():
        builder.skip(rel, "empty file")
        return
    if suffix == ".pdf":
        try:
            text, n_pages = pdf_to_text(path)
        except ValueError as exc:
            builder.skip(rel, str(exc))
            return
        builder.add(_document(rel, text, path.stem, rel, (("n_pages", str(n_pages)),)), rel)
        return
    if suffix == ".jsonl":
        _load_jsonl_file(builder, data, rel, options)
        return
    try:
        text = normalise_newlines(decode_text(data))
    except ValueError as exc:
        builder.skip(rel, str(exc))
        return
    if not text.strip():
        builder.skip(rel, "empty file")
        return
    if suffix == ".json":
        _load_json(builder, text, rel, path.stem, options)
        return
    title = ""
    if suffix in HTML_SUFFIXES:
        title, text = parse_html(text)
    elif suffix in (".md", ".markdown"):
        title, text = markdown_title(text)
    if not text.strip():
        builder.skip(rel, "empty file" if not title else "no text besides the title")
        return
    builder.add(_document(rel, text, title or path.stem, rel), rel)


def list_files(root: Path) -> list[Path]:
    """Files under ``root`` sorted by relative path; hidden files and folders are left out."""
    if root.is_file():
        return [root]
    found: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(folder) / name for name in names if not name.startswith("."))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def load_files(path: Path, options: LoadOptions) -> LoadResult:
    builder = ResultBuilder("files")
    for file in list_files(path):
        _load_one(builder, file, relative_name(file, path), options)
    return builder.build()
