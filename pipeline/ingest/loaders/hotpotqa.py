"""The "hotpotqa" format: the official json (or json.gz) list of questions.

Every distinct context paragraph becomes one Document with a Section per
sentence, so ``supporting_facts`` [title, sentence index] map to offsets. A
paragraph shared by many questions is loaded once; a title whose text differs
between questions keeps both versions (the later as ``"<title>#<hash8>"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lcrag.core.types import Document, Section
from lcrag.pipeline.ingest.loaders.base import (
    LoadOptions,
    LoadResult,
    ResultBuilder,
)
from lcrag.pipeline.ingest.loaders.reading import read_json


def join_sentences(sentences: list[str]) -> tuple[str, tuple[Section, ...]]:
    """Sentences concatenated as HotpotQA does (they carry their own leading
    spaces), the result stripped, and one whitespace-trimmed Section per
    sentence; an empty sentence gets an empty Section so indices still match."""
    raw = "".join(sentences)
    text = raw.strip()
    lead = len(raw) - len(raw.lstrip())
    sections = []
    offset = 0
    for sentence in sentences:
        start = min(max(offset - lead, 0), len(text))
        end = min(max(offset + len(sentence) - lead, 0), len(text))
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        sections.append(Section(start, end))
        offset += len(sentence)
    return text, tuple(sections)


def _paragraph(entry: Any) -> tuple[str, list[str]]:
    """(title, sentences) of one ``context`` entry; ``ValueError`` if malformed."""
    if not isinstance(entry, (list, tuple)) or len(entry) != 2:
        raise ValueError("context entry is not a [title, sentences] pair")
    title, sentences = entry
    if not isinstance(title, str) or not title:
        raise ValueError("context entry has no title")
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise ValueError(f"paragraph {title!r}: sentences are not a list of strings")
    return title, sentences


def hotpotqa_from_payload(payload: Any, path: Path) -> LoadResult:
    if not isinstance(payload, list):
        raise ValueError(
            f"not a HotpotQA file: the top level of {path} is not a list of questions; try --format auto"
        )
    builder = ResultBuilder("hotpotqa")
    source = f"hotpotqa:{path.name}"
    for index, record in enumerate(payload):
        where = f"{path.name}#question {index}"
        context = record.get("context") if isinstance(record, dict) else None
        if not isinstance(context, list):
            builder.skip(where, "question has no 'context' list")
            continue
        for entry in context:
            try:
                title, sentences = _paragraph(entry)
            except ValueError as exc:
                builder.skip(where, str(exc))
                continue
            text, sections = join_sentences(sentences)
            if not text:
                builder.skip(where, f"paragraph {title!r} has no text")
                continue
            builder.add_variant(
                Document(
                    doc_id=title,
                    text=text,
                    title=title,
                    source=source,
                    sections=sections,
                    metadata=(("n_sentences", str(len(sentences))),),
                )
            )
    return builder.build()


def load_hotpotqa(path: Path, options: LoadOptions) -> LoadResult:
    if not path.is_file():
        raise ValueError(f"not a HotpotQA file: {path} is a folder; give the .json or .json.gz file")
    try:
        payload = read_json(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"not a HotpotQA file: {path}: {exc}; try --format auto") from exc
    return hotpotqa_from_payload(payload, path)
