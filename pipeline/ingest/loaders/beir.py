"""The "beir" format: ``corpus.jsonl`` + ``queries.jsonl`` + ``qrels/<split>.tsv``.

Document ids are the data set's own ``_id`` values, unchanged, so qrels and
published scores line up with our runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lcrag.core.types import Document
from lcrag.pipeline.ingest.loaders.base import (
    LoadOptions,
    LoadResult,
    ResultBuilder,
    SourceFormatError,
    SourceNotFoundError,
)
from lcrag.pipeline.ingest.loaders.jsonl import iter_json_lines, readable_lines
from lcrag.pipeline.ingest.loaders.reading import read_bytes

CORPUS = "corpus.jsonl"
QUERIES = "queries.jsonl"


@dataclass(frozen=True)
class Query:
    qid: str
    text: str


def _id_of(record: dict) -> str | None:
    value = record.get("_id", record.get("id"))
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        return None
    return str(value)


def _metadata(record: dict) -> tuple[tuple[str, str], ...]:
    meta = record.get("metadata")
    if not isinstance(meta, dict):
        return ()
    return tuple((str(k), str(v)) for k, v in meta.items() if isinstance(v, (str, int, float, bool)))


def load_beir(path: Path, options: LoadOptions) -> LoadResult:
    """Documents of ``corpus.jsonl`` (``path`` is the BEIR folder or that file)."""
    corpus = path if path.is_file() else path / CORPUS
    if not corpus.is_file():
        raise SourceFormatError(f"not a BEIR folder: no {CORPUS} in {path}; try --format auto")
    try:
        data = read_bytes(corpus)
    except (OSError, ValueError) as exc:
        raise SourceFormatError(f"cannot read BEIR corpus {corpus}: {exc}") from exc
    builder = ResultBuilder("beir")
    source = f"beir:{corpus.name}"
    for where, line_no, record in readable_lines(builder, data, corpus.name):
        if not isinstance(record, dict):
            builder.skip(where, f"line {line_no}: not a JSON object")
            continue
        doc_id = _id_of(record)
        if doc_id is None:
            builder.skip(where, f"line {line_no}: no '_id' field")
            continue
        text = record.get("text") if isinstance(record.get("text"), str) else ""
        title = record.get("title") if isinstance(record.get("title"), str) else ""
        if not text.strip() and not title.strip():
            # A title-only record is kept: BEIR scores count every corpus entry.
            builder.skip(where, f"line {line_no}: no 'text' field")
            continue
        doc = Document(doc_id=doc_id, text=text, title=title, source=source, metadata=_metadata(record))
        builder.add(doc, where)
    return builder.build()


def load_beir_queries(folder_or_file: str | Path) -> tuple[Query, ...]:
    """Queries in file order. Evaluation data: a bad line raises instead of
    silently shrinking the query set."""
    path = Path(folder_or_file)
    file = path / QUERIES if path.is_dir() else path
    if not file.is_file():
        raise SourceNotFoundError(f"BEIR queries not found: {file}")
    queries = []
    for line_no, record, error in iter_json_lines(read_bytes(file)):
        if error:
            raise SourceFormatError(f"{file}:{line_no}: {error}")
        qid = _id_of(record) if isinstance(record, dict) else None
        text = record.get("text") if isinstance(record, dict) else None
        if qid is None or not isinstance(text, str):
            raise SourceFormatError(f"{file}:{line_no}: a query needs '_id' and 'text'")
        queries.append(Query(qid, text))
    return tuple(queries)


def _qrel_row(line: str) -> tuple[str, str, int] | None:
    columns = line.split("\t") if "\t" in line else line.split()
    if len(columns) == 4:  # TREC layout: qid iteration docid relevance
        columns = [columns[0], columns[2], columns[3]]
    if len(columns) != 3:
        return None
    try:
        return columns[0].strip(), columns[1].strip(), int(columns[2])
    except ValueError:
        return None


def load_beir_qrels(folder: str | Path, split: str = "test") -> dict[str, dict[str, int]]:
    """qid -> {doc id: relevance} from ``qrels/<split>.tsv`` (header line skipped)."""
    file = Path(folder) / "qrels" / f"{split}.tsv"
    if not file.is_file():
        raise SourceNotFoundError(f"BEIR qrels not found: {file}")
    qrels: dict[str, dict[str, int]] = {}
    lines = file.read_text(encoding="utf-8-sig").splitlines()
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = _qrel_row(line)
        if row is None:
            if line_no == 1:  # the "query-id corpus-id score" header
                continue
            raise SourceFormatError(f"{file}:{line_no}: expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}")
        qid, doc_id, relevance = row
        qrels.setdefault(qid, {})[doc_id] = relevance
    return qrels
