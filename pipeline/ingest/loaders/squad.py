"""The "squad" format: a SQuAD 2.0 json file, one Document per article.

An article's paragraphs are joined into one long document with a Section per
paragraph at exact offsets, so a question's gold paragraph (and its
``answer_start``, relative to that paragraph) maps onto the document.
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

PARAGRAPH_JOINER = "\n\n"


def join_paragraphs(contexts: list[str]) -> tuple[str, tuple[Section, ...]]:
    """Contexts joined by a blank line, and each one's exact range in the result."""
    sections = []
    offset = 0
    for context in contexts:
        sections.append(Section(offset, offset + len(context)))
        offset += len(context) + len(PARAGRAPH_JOINER)
    return PARAGRAPH_JOINER.join(contexts), tuple(sections)


def _article_document(article: Any, source: str) -> Document:
    """One article as a Document; ``ValueError`` says what is malformed."""
    if not isinstance(article, dict):
        raise ValueError("article is not a JSON object")
    title = article.get("title")
    if not isinstance(title, str) or not title:
        raise ValueError("article has no 'title'")
    paragraphs = article.get("paragraphs")
    if not isinstance(paragraphs, list):
        raise ValueError(f"article {title!r} has no 'paragraphs' list")
    contexts = []
    n_questions = 0
    for index, paragraph in enumerate(paragraphs):
        context = paragraph.get("context") if isinstance(paragraph, dict) else None
        if not isinstance(context, str):
            raise ValueError(f"article {title!r}: paragraph {index} has no 'context'")
        contexts.append(context)
        qas = paragraph.get("qas")
        n_questions += len(qas) if isinstance(qas, list) else 0
    text, sections = join_paragraphs(contexts)
    if not text.strip():
        raise ValueError(f"article {title!r} has no text")
    return Document(
        doc_id=title,
        text=text,
        title=title.replace("_", " "),
        source=source,
        sections=sections,
        metadata=(("n_paragraphs", str(len(contexts))), ("n_questions", str(n_questions))),
    )


def squad_from_payload(payload: Any, path: Path) -> LoadResult:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise ValueError(f"not a SQuAD 2.0 file: no 'data' list at the top level of {path}; try --format auto")
    builder = ResultBuilder("squad")
    source = f"squad:{path.name}"
    for index, article in enumerate(data):
        where = f"{path.name}#article {index}"
        try:
            doc = _article_document(article, source)
        except ValueError as exc:
            builder.skip(where, str(exc))
            continue
        builder.add(doc, where)
    return builder.build()


def load_squad(path: Path, options: LoadOptions) -> LoadResult:
    if not path.is_file():
        raise ValueError(f"not a SQuAD 2.0 file: {path} is a folder; give the .json file")
    try:
        payload = read_json(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"not a SQuAD 2.0 file: {path}: {exc}; try --format auto") from exc
    return squad_from_payload(payload, path)
