"""The index catalog: documents (text and offsets), units and chunks, in SQLite.

SQLite because it is transactional, ships with Python and lets any number of
readers open the file while one writer works (DuckDB, used for the ledger, does
not allow a reader beside a writer). A unit is ``pending`` from the moment an
ingestion plans it until its vectors are stored; then its chunks are written and
it becomes ``done`` in the same transaction, so a crash never leaves half a unit.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lcrag.core.types import Chunk, Document, Section, Span, Unit

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    source_name TEXT NOT NULL,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    sections TEXT NOT NULL,
    metadata TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS units (
    unit_id TEXT PRIMARY KEY,
    source_name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL,
    group_key TEXT NOT NULL,
    spans TEXT NOT NULL,
    member_hashes TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done'))
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id TEXT PRIMARY KEY,
    unit_id TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    position INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_unit ON chunks(unit_id);
CREATE INDEX IF NOT EXISTS units_by_status ON units(status, seq);
"""


@dataclass(frozen=True)
class UnitRecord:
    unit: Unit
    status: str
    source_name: str
    member_hashes: tuple[tuple[str, str], ...]  # (doc_id, content_hash) the unit was built from


class Catalog:
    """Typed access to the catalog file. One instance per process and file."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            self._db.commit()

    def close(self) -> None:
        self._db.close()

    # -- meta ----------------------------------------------------------------------
    def get_meta(self, key: str, default: str = "") -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- documents -----------------------------------------------------------------
    def document_hashes(self, source_name: str | None = None) -> dict[str, str]:
        if source_name is None:
            rows = self._db.execute("SELECT doc_id, content_hash FROM documents")
        else:
            rows = self._db.execute("SELECT doc_id, content_hash FROM documents WHERE source_name = ?", (source_name,))
        return dict(rows.fetchall())

    def document_sources(self, doc_ids: Iterable[str]) -> dict[str, str]:
        return dict(self._rows_in("SELECT doc_id, source_name FROM documents WHERE doc_id IN ({marks})", doc_ids))

    def put_documents(self, docs: Sequence[Document], source_name: str) -> None:
        start = self._db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM documents").fetchone()[0]
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        d.doc_id,
                        source_name,
                        d.source,
                        d.title,
                        d.text,
                        d.content_hash,
                        json.dumps([[s.start, s.end] for s in d.sections]),
                        json.dumps(list(d.metadata)),
                        start + i,
                    )
                    for i, d in enumerate(docs)
                ],
            )

    def delete_documents(self, doc_ids: Iterable[str]) -> None:
        with self._db:
            self._db.executemany("DELETE FROM documents WHERE doc_id = ?", [(d,) for d in doc_ids])

    def documents(self, doc_ids: Iterable[str]) -> dict[str, Document]:
        sql = "SELECT doc_id, text, title, source, sections, metadata, content_hash FROM documents WHERE doc_id IN ({marks})"
        return {row[0]: _document(row) for row in self._rows_in(sql, doc_ids)}

    def doc_order(self) -> list[str]:
        """Document ids in corpus order (the order they were ingested)."""
        return [row[0] for row in self._db.execute("SELECT doc_id FROM documents ORDER BY seq")]

    def count(self, table: str) -> int:
        if table not in ("documents", "units", "chunks"):
            raise ValueError(f"no table {table!r}")
        return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    # -- units ---------------------------------------------------------------------
    def unit_records(self, status: str | None = None) -> list[UnitRecord]:
        sql = "SELECT unit_id, spans, n_tokens, group_key, status, source_name, member_hashes FROM units"
        args: tuple = ()
        if status is not None:
            sql += " WHERE status = ?"
            args = (status,)
        return [_unit_record(row) for row in self._db.execute(sql + " ORDER BY seq", args)]

    def units(self, unit_ids: Iterable[str]) -> dict[str, Unit]:
        sql = "SELECT unit_id, spans, n_tokens, group_key, status, source_name, member_hashes FROM units WHERE unit_id IN ({marks})"
        return {row[0]: _unit_record(row).unit for row in self._rows_in(sql, unit_ids)}

    def add_pending_units(self, units: Sequence[Unit], source_name: str, doc_hashes: dict[str, str]) -> None:
        start = self._db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM units").fetchone()[0]
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO units VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                [
                    (
                        u.unit_id,
                        source_name,
                        start + i,
                        u.n_tokens,
                        u.group_key,
                        json.dumps([[s.doc_id, s.start, s.end] for s in u.spans]),
                        json.dumps([[d, doc_hashes[d]] for d in u.doc_ids]),
                    )
                    for i, u in enumerate(units)
                ],
            )

    def complete_units(self, chunks: Sequence[Chunk], unit_ids: Sequence[str]) -> None:
        """Record the chunks of finished units and mark them done, atomically."""
        with self._db:
            self._db.executemany("DELETE FROM chunks WHERE unit_id = ?", [(u,) for u in unit_ids])
            self._db.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(c.chunk_id, c.unit_id, c.doc_id, c.start, c.end, c.position, c.n_tokens) for c in chunks],
            )
            self._db.executemany("UPDATE units SET status = 'done' WHERE unit_id = ?", [(u,) for u in unit_ids])

    def delete_units(self, unit_ids: Iterable[str]) -> None:
        ids = [(u,) for u in unit_ids]
        with self._db:
            self._db.executemany("DELETE FROM chunks WHERE unit_id = ?", ids)
            self._db.executemany("DELETE FROM units WHERE unit_id = ?", ids)

    # -- chunks --------------------------------------------------------------------
    def iter_chunks(self) -> Iterator[Chunk]:
        """Every chunk of every done unit, in unit order then chunk order."""
        for row in self._db.execute(
            'SELECT c.chunk_id, c.unit_id, c.doc_id, c.start, c."end", c.position, c.n_tokens '
            "FROM chunks c JOIN units u USING (unit_id) ORDER BY u.seq, c.position"
        ):
            yield Chunk(*row)

    def done_unit_ids(self) -> list[str]:
        """Ids of the done units, in unit order (the order of ``iter_chunks``)."""
        return [row[0] for row in self._db.execute("SELECT unit_id FROM units WHERE status = 'done' ORDER BY seq")]

    def chunks_of_units(self, unit_ids: Sequence[str]) -> list[Chunk]:
        """The chunks of UNIT_IDS in unit order then chunk order, when UNIT_IDS come in
        unit order (each batch of the query is ordered; batches follow UNIT_IDS)."""
        sql = (
            'SELECT c.chunk_id, c.unit_id, c.doc_id, c.start, c."end", c.position, c.n_tokens '
            "FROM chunks c JOIN units u USING (unit_id) WHERE c.unit_id IN ({marks}) ORDER BY u.seq, c.position"
        )
        return [Chunk(*row) for row in self._rows_in(sql, unit_ids)]

    def chunks(self, chunk_ids: Iterable[str]) -> dict[str, Chunk]:
        sql = 'SELECT chunk_id, unit_id, doc_id, start, "end", position, n_tokens FROM chunks WHERE chunk_id IN ({marks})'
        return {row[0]: Chunk(*row) for row in self._rows_in(sql, chunk_ids)}

    def _rows_in(self, sql: str, ids: Iterable[str]) -> Iterator[tuple]:
        """Rows of ``sql`` (one ``{marks}`` placeholder) for distinct ids, 500 per query
        (SQLite limits the parameters of one statement)."""
        for batch in _batches(list(dict.fromkeys(ids)), 500):
            yield from self._db.execute(sql.format(marks=",".join("?" * len(batch))), batch)

    def total_chunk_tokens(self) -> int:
        return int(self._db.execute("SELECT COALESCE(SUM(n_tokens), 0) FROM chunks").fetchone()[0])


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _document(row: tuple) -> Document:
    doc_id, text, title, source, sections, metadata, chash = row
    return Document(
        doc_id=doc_id,
        text=text,
        title=title,
        source=source,
        sections=tuple(Section(s, e) for s, e in json.loads(sections)),
        metadata=tuple((k, v) for k, v in json.loads(metadata)),
        content_hash=chash,
    )


def _unit_record(row: tuple) -> UnitRecord:
    unit_id, spans, n_tokens, group_key, status, source_name, members = row
    unit = Unit(unit_id, tuple(Span(d, s, e) for d, s, e in json.loads(spans)), n_tokens, group_key)
    return UnitRecord(unit, status, source_name, tuple((d, h) for d, h in json.loads(members)))
