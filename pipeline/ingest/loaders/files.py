"""The "files" format: a folder of ordinary documents (or one such file).

doc_id is the path relative to the folder, so the same file keeps its id across
runs and machines. Text is decoded strictly: a mis-decoded file would silently
index garbage, so it is reported instead. Whatever goes wrong with one file
(a refused or unreadable file, a parser error of any kind) is that file's skip
reason; the rest of the folder still loads.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from lcrag.core.types import Document, Section
from lcrag.pipeline.ingest.loaders.base import (
    LoadOptions,
    LoadResult,
    ResultBuilder,
    SourceFormatError,
    failure_reason,
    relative_name,
)
from lcrag.pipeline.ingest.loaders.decoding import decode_text
from lcrag.pipeline.ingest.loaders.front_matter import split_front_matter
from lcrag.pipeline.ingest.loaders.html_text import parse_html
from lcrag.pipeline.ingest.loaders.jsonl import readable_lines, record_fields, record_metadata
from lcrag.pipeline.ingest.loaders.reading import parse_json, read_or_skip, read_regular
from lcrag.pipeline.ingest.loaders.walk import Listing, list_source

MARKDOWN_SUFFIXES = (".md", ".markdown")
TEXT_SUFFIXES = (".txt", *MARKDOWN_SUFFIXES)
HTML_SUFFIXES = (".html", ".htm")
SUPPORTED_SUFFIXES = (*TEXT_SUFFIXES, *HTML_SUFFIXES, ".pdf", ".json", ".jsonl")

_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")
_MD_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")


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


def heading_title(line: str) -> str | None:
    """The text of a level-1 ATX heading line ("# Title", "# Title #"), else None.
    Plain string work, linear in the line (a regex here backtracked quadratically
    on a long heading full of blanks)."""
    if len(line) < 2 or line[0] != "#" or line[1] not in " \t":
        return None
    body = line[1:].strip(" \t")
    closed = body.rstrip("#")
    if closed != body and (not closed or closed[-1] in " \t"):  # an optional closing run of '#'
        body = closed.rstrip(" \t")
    return body or None


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
            title = heading_title(line)
            if title is not None:
                if seen_content:
                    return title, text
                return title, "\n".join(lines[index + 1 :])
        if line.strip():
            seen_content = True
    return "", text


def html_to_text(html: str) -> str:
    """The visible text of an HTML page, in time linear in its length (``html_text``)."""
    return parse_html(html)[1]


def pdf_to_text(data: bytes) -> tuple[str, int]:
    """(text, page count) of a PDF's bytes via pypdf (the bytes already read under
    the size limit, not the path again); ``ValueError`` when it cannot give text."""
    from pypdf import PdfReader  # imported here: only PDF sources pay for it

    try:
        reader = PdfReader(io.BytesIO(data))
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
        payload = parse_json(text)
    except SourceFormatError as exc:
        builder.skip(rel, str(exc))
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


def _load_markdown(builder: ResultBuilder, text: str, rel: str, stem: str) -> None:
    """Front matter becomes metadata (its ``title`` the title); without one, a
    heading opening the text is the title."""
    front = split_front_matter(text)
    if front.found and not front.body.strip():
        builder.skip(rel, "empty after front matter (a Markdown file holding only YAML metadata)")
        return
    title = front.get("title")
    body = front.body
    if not title:
        title, body = markdown_title(body)
    if not body.strip():
        builder.skip(rel, "empty file" if not title else "no text besides the title")
        return
    metadata = tuple((k, v) for k, v in front.metadata if k != "file_type")
    builder.add(_document(rel, body, title or stem, rel, metadata), rel)


def _parse_one(builder: ResultBuilder, data: bytes, path: Path, rel: str, options: LoadOptions) -> None:
    """Add the document(s) of one file's bytes, or record why they were skipped."""
    suffix = path.suffix.lower()
    if not data.strip():
        builder.skip(rel, "empty file")
        return
    if suffix == ".pdf":
        try:
            text, n_pages = pdf_to_text(data)
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
    if suffix in MARKDOWN_SUFFIXES:
        _load_markdown(builder, text, rel, path.stem)
        return
    title = ""
    if suffix in HTML_SUFFIXES:
        title, text = parse_html(text)
    if not text.strip():
        builder.skip(rel, "empty file" if not title else "no text besides the title")
        return
    builder.add(_document(rel, text, title or path.stem, rel), rel)


def _load_one(builder: ResultBuilder, path: Path, rel: str, options: LoadOptions) -> None:
    """Read one file (regular files only, under the size limit) and add what it
    holds; any failure, whatever the parser raises, is this file's skip reason."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        builder.skip(rel, f"unsupported file type {suffix or '(no extension)'}")
        return
    data = read_or_skip(builder, path, rel, options.max_file_bytes, read=read_regular)
    if data is None:
        return
    own = ResultBuilder(builder.fmt)  # kept apart: a file failing half-way adds nothing
    try:
        _parse_one(own, data, path, rel, options)
    except Exception as exc:  # RecursionError, MemoryError, parser bugs: one file never ends the run
        builder.skip(rel, f"cannot parse: {failure_reason(exc)}")
        return
    builder.extend(own)


def list_files(root: Path, options: LoadOptions = LoadOptions()) -> Listing:
    """Files under ``root`` sorted by relative path, and every entry left out and why
    (hidden ones, unreadable folders, symlinks leading outside, loops)."""
    return list_source(root, options.follow_symlinks)


def load_files(path: Path, options: LoadOptions) -> LoadResult:
    builder = ResultBuilder("files")
    listing = list_files(path, options)
    for skipped in listing.skipped:
        builder.skip(skipped.path, skipped.reason)
    for file in listing.files:
        _load_one(builder, file, relative_name(file, path), options)
    return builder.build()
