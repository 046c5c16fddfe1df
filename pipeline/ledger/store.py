"""The ``Ledger`` class: opens the DuckDB file for each call (never holding it), inserts
rows (into the file, or into a Parquet segment beside it while the file is held) and
reads the file together with its segments. See the package docstring for the rules."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple
from pathlib import Path
from typing import Any

import duckdb

from lcrag.core.errors import LcragError
from lcrag.core.files import atomic_path
from lcrag.pipeline.ledger.migrations import MIGRATIONS, apply_migrations, backfill_structure
from lcrag.pipeline.ledger.rows import COLUMNS, FEATURE_COLUMNS, RETRIEVAL_COLUMNS, FeatureRow, LedgerRow, RetrievalRow


class LedgerError(LcragError, RuntimeError):
    """The ledger file cannot be used: not a DuckDB file, or locked too long."""


_INSERT_BATCH = 500


def _is_lock_error(exc: duckdb.Error) -> bool:
    text = str(exc)
    # Another process holds the file, or another thread of this process has it
    # open with the other read_only setting; both clear when that holder closes.
    return "Could not set lock" in text or "Conflicting lock" in text or "different configuration" in text


# DuckDB lets one process attach a file once: threads of this process take turns
# through one lock per file (processes take turns through the retry in _connect).
_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(key, threading.Lock())


class LedgerBusy(LedgerError):
    """Another connection held the file past the wait allowed (writes then go to a segment)."""


SEGMENTS = ".segments"  # beside the file: ledger.duckdb.segments/<table>/<time>-<id>.parquet
TABLES = ("ledger", "retrieval", "features")  # tables whose rows may wait in segments
PASSTHROUGH = ("_migrations",)  # read straight from the file


def _is_current(conn: duckdb.DuckDBPyConnection) -> bool:
    """True when every migration is recorded in the file: the common case, checked without
    running the migration machinery."""
    try:
        done = {name for (name,) in conn.execute("SELECT name FROM _migrations").fetchall()}
    except duckdb.CatalogException:
        return False
    return all(name in done for name, _ in MIGRATIONS)


def _quoted(paths: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


class Ledger:
    """A DuckDB ledger file that any number of processes may record into, while anyone
    reads it. Holds only the path: each call opens, works and closes (see module doc).

    Recording never waits on a reader: when the file is held (a ``duckdb`` session, a
    notebook, another writer) for longer than ``write_wait`` seconds, the rows are
    written to a Parquet segment beside it instead, and the next write that gets the
    file merges every segment in the same transaction as its own rows. Every read
    here sees the file and the segments together (duplicates and superseded error
    rows removed), so nothing recorded is ever missing from a read."""

    def __init__(self, path: str | Path, lock_timeout: float = 60.0, write_wait: float = 0.5) -> None:
        if not lock_timeout > 0:
            raise ValueError(f"lock_timeout must be positive seconds, got {lock_timeout!r}")
        if not write_wait >= 0:
            raise ValueError(f"write_wait must be >= 0 seconds, got {write_wait!r}")
        self.path = Path(path)
        self.lock_timeout = float(lock_timeout)
        self.write_wait = float(write_wait)
        self._migrated = False

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    @property
    def segments_dir(self) -> Path:
        return self.path.with_name(self.path.name + SEGMENTS)

    def segments(self, table: str) -> list[Path]:
        """The table's rows still waiting in segments, oldest first."""
        return sorted((self.segments_dir / table).glob("*.parquet"))

    # -- connections

    def _retrying(self, open_fn: Callable[[], Any], timeout: float) -> Any:
        """``open_fn()``, retried with jittered backoff while another holder has the file."""
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            try:
                return open_fn()
            except duckdb.Error as exc:
                text = str(exc)
                if "not a valid DuckDB database file" in text:
                    raise LedgerError(
                        f"{self.path} is not a DuckDB database (empty or another format); "
                        "point the ledger at a new path or move that file away"
                    ) from exc
                if not _is_lock_error(exc):
                    raise LedgerError(f"cannot open ledger {self.path}: {text}") from exc
                if time.monotonic() >= deadline:
                    raise LedgerBusy(
                        f"ledger {self.path} stayed locked for {timeout:g}s by another connection "
                        "(another process, or one this process holds with a different read_only setting); "
                        "close any read-write DuckDB session on it (open it with `duckdb -readonly`) or raise "
                        f"lock_timeout. DuckDB said: {text}"
                    ) from exc
                # Full jitter so two writers that collided do not collide again.
                cap = min(0.25, 0.004 * 2**attempt)
                time.sleep(random.uniform(0.2 * cap, cap))
                attempt += 1

    @contextmanager
    def _connection(self, read_only: bool, timeout: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file itself, yield, close; one thread of this process at a time per file."""
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.path):
            conn = self._retrying(lambda: duckdb.connect(str(self.path), read_only=read_only),
                                  self.lock_timeout if timeout is None else timeout)
            try:
                yield conn
            finally:
                conn.close()

    @contextmanager
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory connection with the file attached read-only and one view per table
        over the file and its segments: what every read here queries."""
        with _file_lock(self.path):
            def attach() -> duckdb.DuckDBPyConnection:
                conn = duckdb.connect(":memory:")
                try:
                    conn.execute(f"ATTACH '{str(self.path).replace(chr(39), chr(39) * 2)}' AS stored (READ_ONLY)")
                except BaseException:
                    conn.close()
                    raise
                return conn

            conn = self._retrying(attach, self.lock_timeout)
            try:
                for table in PASSTHROUGH:
                    conn.execute(f"CREATE VIEW {table} AS SELECT * FROM stored.{table}")
                for table in TABLES:
                    conn.execute(f"CREATE VIEW {table} AS {self._union_sql(table)}")
                for (sql,) in conn.execute(
                    "SELECT sql FROM duckdb_views() WHERE database_name = 'stored' AND NOT internal").fetchall():
                    conn.execute(sql)  # views of the file (ledger_summary) over the views above
                yield conn
            finally:
                conn.close()

    def _union_sql(self, table: str) -> str:
        """The table as stored plus its segments; each row once; for the ledger, an error
        row whose pair has a success anywhere left out (as ``record`` would delete it)."""
        segments = self.segments(table)
        if not segments:
            return f"SELECT * FROM stored.{table}"
        union = (f"SELECT * FROM stored.{table} UNION ALL BY NAME "
                 f"SELECT * FROM read_parquet({_quoted(segments)}, union_by_name = true)")
        once = f"SELECT * FROM ({union}) QUALIFY row_number() OVER (PARTITION BY row_id ORDER BY created_at) = 1"
        if table != "ledger":
            return once
        return (f"WITH rows AS ({once}) SELECT * FROM rows r WHERE r.error IS NULL OR NOT EXISTS ("
                "SELECT 1 FROM rows s WHERE s.error IS NULL AND s.run_id = r.run_id "
                "AND s.question_id = r.question_id AND s.strategy = r.strategy)")

    def _read(self, fn: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        self._ensure_migrated()
        for attempt in range(3):
            try:
                with self._reading() as conn:
                    return fn(conn)
            except duckdb.IOException as exc:
                # a segment merged and removed between listing and reading: its rows are in the file now
                if SEGMENTS not in str(exc) or attempt == 2:
                    raise LedgerError(f"cannot read ledger {self.path}: {exc}") from exc

    def _ensure_migrated(self) -> None:
        """Before a read: the schema must be current. Checked read-only (so a reader's
        session does not block it); migrated only when something is pending."""
        if self._migrated:
            return
        if self.path.exists():
            with self._connection(read_only=True) as conn:
                if _is_current(conn):
                    self._migrated = True
                    return
        self.migrate()

    # -- schema

    def migrate(self) -> list[str]:
        """Apply pending migrations (creating the file if needed); returns the names
        applied by this call. Safe to run from several processes at once."""
        with self._connection(read_only=False) as conn:
            applied = apply_migrations(conn)
        self._migrated = True
        return applied

    def compact(self) -> int:
        """Merge waiting segments into the file if it can be had at once; returns how many
        segment files were merged (0 when there were none or the file is held)."""
        if not any(self.segments(t) for t in TABLES):
            return 0
        try:
            with self._connection(read_only=False, timeout=self.write_wait) as conn:
                apply_migrations(conn)
                self._migrated = True
                conn.execute("BEGIN TRANSACTION")
                try:
                    merged = self._merge_segments(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except LedgerBusy:
            return 0
        for path in merged:
            path.unlink(missing_ok=True)
        return len(merged)

    def _merge_segments(self, conn: duckdb.DuckDBPyConnection) -> list[Path]:
        """Insert every waiting segment's rows (inside the caller's transaction); returns
        the files merged, to delete once the transaction commits."""
        merged: list[Path] = []
        for table in TABLES:
            files = self.segments(table)
            if not files:
                continue
            source = f"read_parquet({_quoted(files)}, union_by_name = true)"
            if table == "ledger":
                conn.execute(f"CREATE TEMP TABLE incoming AS SELECT * EXCLUDE (seq) FROM {source}")
                conn.execute(
                    "DELETE FROM ledger WHERE error IS NOT NULL AND (run_id, question_id, strategy) IN "
                    "(SELECT run_id, question_id, strategy FROM incoming WHERE error IS NULL)")
                conn.execute(
                    "INSERT OR IGNORE INTO ledger BY NAME SELECT * FROM incoming i WHERE i.error IS NULL OR NOT EXISTS ("
                    "SELECT 1 FROM ledger l WHERE l.error IS NULL AND l.run_id = i.run_id "
                    "AND l.question_id = i.question_id AND l.strategy = i.strategy)")
                # rows of a segment written before m009 lack its columns: filled as m009 filled the file's
                backfill_structure(conn, "route_steps IS NULL AND row_id IN (SELECT row_id FROM incoming)")
                conn.execute("DROP TABLE incoming")
            else:
                conn.execute(f"INSERT OR IGNORE INTO {table} BY NAME SELECT * FROM {source}")
            merged.extend(files)
        return merged

    def applied_migrations(self) -> list[str]:
        """Names recorded in ``_migrations``, in the order they were applied."""
        return [
            name
            for (name,) in self._read(
                lambda c: c.execute("SELECT name FROM _migrations ORDER BY applied_at, name").fetchall()
            )
        ]

    # -- writing

    def record(self, rows: Sequence[LedgerRow]) -> int:
        """Insert ``rows`` in one transaction; returns how many were new. A row whose
        row_id is already stored is skipped, so retrying a call is harmless.

        Supersession: a row without ``error`` deletes the error rows already stored for
        its (run_id, question_id, strategy), in the same transaction: the retried
        success replaces the failure (see the module doc). Rows of this same call are
        not touched, and a success never deletes another success."""
        rows = list(rows)
        for row in rows:
            if not isinstance(row, LedgerRow):
                raise ValueError(f"record() takes LedgerRow values, got {row!r}")
        resolved = sorted({(r.run_id, r.question_id, r.strategy) for r in rows if r.error is None})
        return self._insert("ledger", COLUMNS, rows, before=lambda conn: _delete_errors(conn, resolved))

    def record_retrieval(self, rows: Sequence[RetrievalRow]) -> int:
        """Insert retrieval rows in one transaction (same rules as ``record``)."""
        rows = list(rows)
        for row in rows:
            if not isinstance(row, RetrievalRow):
                raise ValueError(f"record_retrieval() takes RetrievalRow values, got {row!r}")
        return self._insert("retrieval", RETRIEVAL_COLUMNS, rows)

    def retrieval_rows(self, run_id: str | None = None) -> list[RetrievalRow]:
        """Stored retrieval rows, oldest first, for all runs or one."""
        where, params = (" WHERE run_id = ?", [run_id]) if run_id is not None else ("", [])
        sql = f"SELECT {', '.join(RETRIEVAL_COLUMNS)} FROM retrieval{where} ORDER BY created_at, query_id, method"
        found = self._read(lambda c: c.execute(sql, params).fetchall())
        return [RetrievalRow(**dict(zip(RETRIEVAL_COLUMNS, values))) for values in found]

    def record_features(self, rows: Sequence[FeatureRow]) -> int:
        """Store routing features; a (run, question) already stored is kept as it was."""
        rows = list({row.row_id: row for row in rows}.values())
        for row in rows:
            if not isinstance(row, FeatureRow):
                raise ValueError(f"record_features() takes FeatureRow values, got {row!r}")
        return self._insert("features", FEATURE_COLUMNS, rows)

    def feature_rows(self, run_id: str) -> list[FeatureRow]:
        """The routing features stored for one run, by question id."""
        sql = f"SELECT {', '.join(FEATURE_COLUMNS)} FROM features WHERE run_id = ? ORDER BY question_id"
        found = self._read(lambda c: c.execute(sql, [run_id]).fetchall())
        return [FeatureRow(**dict(zip(FEATURE_COLUMNS, values))) for values in found]

    def retrieval_done(self, run_id: str) -> set[tuple[str, str]]:
        """(query_id, method) pairs this run already judged, for resuming."""
        found = self._read(
            lambda c: c.execute("SELECT DISTINCT query_id, method FROM retrieval WHERE run_id = ?", [run_id]).fetchall()
        )
        return {(q, m) for q, m in found}

    def _insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Any],
        before: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    ) -> int:
        """Insert in one transaction (``before`` runs first inside it), merging waiting
        segments in the same transaction. When the file stays held past ``write_wait``
        the rows go to a new segment instead, and the count is of the rows given."""
        ids = [row.row_id for row in rows]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"duplicate row_id within one record() call: {dupes}")
        if not rows:
            return 0
        try:
            with self._connection(read_only=False, timeout=self.write_wait) as conn:
                inserted, merged = self._insert_into(conn, table, columns, rows, before)
        except LedgerBusy:
            self._write_segment(table, columns, rows)
            return len(rows)
        for path in merged:
            path.unlink(missing_ok=True)
        return inserted

    def _insert_into(self, conn, table, columns, rows, before) -> tuple[int, list[Path]]:
        if not self._migrated:
            if not _is_current(conn):
                apply_migrations(conn)
            self._migrated = True
        conn.execute("BEGIN TRANSACTION")
        try:
            merged = self._merge_segments(conn)
            if before is not None:
                before(conn)
            inserted = _insert_batches(conn, table, columns, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return inserted, merged

    def _write_segment(self, table: str, columns: Sequence[str], rows: Sequence[Any]) -> Path:
        """The rows as one Parquet file with the table's current schema (built in memory
        by the same migrations), written atomically under ``segments_dir``."""
        folder = self.segments_dir / table
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        with duckdb.connect(":memory:") as conn, atomic_path(final) as partial:
            apply_migrations(conn)
            _insert_batches(conn, table, columns, rows)
            conn.execute(f"COPY {table} TO '{str(partial).replace(chr(39), chr(39) * 2)}' (FORMAT parquet)")
        return final

    # -- reading

    def rows(self, run_id: str | None = None, limit: int | None = None, offset: int = 0) -> list[LedgerRow]:
        """Stored rows, newest first, optionally for one run and one page."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative int, got {offset!r}")
        sql, params = _select_rows(run_id, "created_at DESC, seq DESC")
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        if offset:
            sql += " OFFSET ?"
            params.append(offset)
        found = self._read(lambda c: c.execute(sql, params).fetchall())
        return [_row_from_db(values) for values in found]

    def count(self, run_id: str | None = None) -> int:
        """Number of stored rows, for all runs or one."""
        if run_id is None:
            return int(self._read(lambda c: c.execute("SELECT count(*) FROM ledger").fetchone()[0]))
        return int(
            self._read(lambda c: c.execute("SELECT count(*) FROM ledger WHERE run_id = ?", [run_id]).fetchone()[0])
        )

    def done_keys(self, run_id: str) -> set[tuple[str, str]]:
        """(question_id, strategy) pairs this run already answered without error,
        so a resumed run skips them and retries the failed ones."""
        found = self._read(
            lambda c: c.execute(
                "SELECT DISTINCT question_id, strategy FROM ledger WHERE run_id = ? AND error IS NULL", [run_id]
            ).fetchall()
        )
        return {(q, s) for q, s in found}

    def asked_questions(self, run_id: str) -> dict[str, str]:
        """question_id -> the question text this run's rows recorded (a resumed run checks
        its questions against them)."""
        found = self._read(
            lambda c: c.execute(
                "SELECT question_id, any_value(question) FROM ledger WHERE run_id = ? GROUP BY question_id", [run_id]
            ).fetchall()
        )
        return dict(found)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run read-only SQL (the file is opened read-only) and return rows as dicts."""

        def run(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
            cursor = conn.execute(sql, list(params))
            names = [d[0] for d in cursor.description or []]
            return [dict(zip(names, values)) for values in cursor.fetchall()]

        return self._read(run)

    def export_parquet(self, out_path: str | Path, run_id: str | None = None) -> int:
        """Write the ledger (or one run) to a Parquet file; returns the row count."""
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        target = str(out).replace("'", "''")
        select, params = _select_rows(run_id, "created_at, seq")

        def run(conn: duckdb.DuckDBPyConnection) -> int:
            result = conn.execute(f"COPY ({select}) TO '{target}' (FORMAT parquet)", params).fetchone()
            return int(result[0]) if result else 0

        return self._read(run)


def _insert_batches(conn: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str], rows: Sequence[Any]) -> int:
    """INSERT OR IGNORE the rows in batches; returns how many were new."""
    cols = ", ".join(columns)
    one = "(" + ", ".join("?" for _ in columns) + ")"
    inserted = 0
    for start in range(0, len(rows), _INSERT_BATCH):
        batch = rows[start : start + _INSERT_BATCH]
        params: list[Any] = []
        for row in batch:
            params.extend(list(v) if isinstance(v, tuple) else v for v in astuple(row))
        sql = f"INSERT OR IGNORE INTO {table} ({cols}) VALUES " + ", ".join(one for _ in batch)
        result = conn.execute(sql, params).fetchone()
        inserted += int(result[0]) if result else 0
    return inserted


def _delete_errors(conn: duckdb.DuckDBPyConnection, keys: Sequence[tuple[str, str, str]]) -> None:
    """Delete stored error rows of these (run_id, question_id, strategy) pairs."""
    for start in range(0, len(keys), _INSERT_BATCH):
        batch = keys[start : start + _INSERT_BATCH]
        values = ", ".join("(?, ?, ?)" for _ in batch)
        conn.execute(
            f"DELETE FROM ledger WHERE error IS NOT NULL AND (run_id, question_id, strategy) IN (VALUES {values})",
            [part for key in batch for part in key],
        )


def _select_rows(run_id: str | None, order: str) -> tuple[str, list[Any]]:
    """SELECT of every column, for all runs or one, in ``order``; and its parameters."""
    where, params = (" WHERE run_id = ?", [run_id]) if run_id is not None else ("", [])
    return f"SELECT {', '.join(COLUMNS)} FROM ledger{where} ORDER BY {order}", params


def _row_from_db(values: Sequence[Any]) -> LedgerRow:
    data = dict(zip(COLUMNS, values))
    for name in ("retrieved_ids", "used_ids", "gold_answers", "needle_depths", "route_steps"):
        if data[name] is not None:
            data[name] = tuple(data[name])
    return LedgerRow(**data)
