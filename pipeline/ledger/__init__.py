"""The run ledger: one DuckDB row per question x strategy, for comparing RAG,
long-context and self-route answers with plain SQL.

DuckDB because the ledger is read by analysts (group-bys, Parquet export), not
by the pipeline's hot path. Its catch is locking: while any connection holds the
file (a user's ``duckdb`` session, even read-only; a notebook; another writer) no
other process may write it. So this module never keeps the file open between calls,
and recording never waits on a reader:

* every ``record`` opens the file, merges any waiting segments, writes its rows in
  one transaction and closes; if the file stays held past ``write_wait`` (half a
  second), the rows go to a new Parquet *segment* beside it instead
  (``ledger.duckdb.segments/<table>/``), written atomically, and the next write
  that gets the file merges them (``compact`` does so on demand);
* every read (``rows``, ``count``, ``done_keys``, ``query``, ``export_parquet``)
  attaches the file read-only and sees it together with its segments: each row
  once, superseded error rows left out; an open that hits a read-write holder is
  retried with jittered backoff for up to ``lock_timeout`` seconds (60), then
  raises ``LedgerError``.

So any number of worker processes, the API and a user's read-only ``duckdb``
session share one file without a server and without losing a row. Plain SQL on the
file itself sees merged rows; rows written while it was held appear there after
the next write (or ``Ledger(path).compact()``).

Within one process DuckDB shares a single instance per file, so a connection
this process already holds with the other ``read_only`` setting also blocks an
open; that too is retried, then reported.

Failed pairs: a row with ``error`` set records a (question, strategy) pair the
reader failed on. ``done_keys`` leaves it out, so a resumed run retries it, and
recording that pair's success later *deletes* the error row (in the same
transaction, see ``record``). So the table holds each pair's current state, and
every reader of it (``ledger_summary``, reports, plain SQL, Parquet) counts only
errors nobody has resolved yet, with no special query. The price: a resolved
failure leaves no trace here (the reader's own log keeps it).

The schema evolves like simonw/llm's ``migrations.py``: ``MIGRATIONS`` is an
append-only list of small named functions, applied names are stored in
``_migrations(name, applied_at)``. Never edit a shipped migration; add one.
A ``Ledger`` applies pending migrations once, before its first operation.

The package has one job per module: ``rows`` (the frozen row dataclasses),
``migrations`` (the ordered schema changes and their runner) and ``store`` (the
``Ledger`` class: connect, insert, query). The names below are its public face.
"""

from lcrag.pipeline.ledger.migrations import MIGRATIONS, apply_migrations
from lcrag.pipeline.ledger.rows import (
    ANSWER_KINDS,
    COLUMNS,
    FEATURE_COLUMNS,
    RETRIEVAL_COLUMNS,
    FeatureRow,
    LedgerRow,
    RetrievalRow,
)
from lcrag.pipeline.ledger.store import PASSTHROUGH, SEGMENTS, TABLES, Ledger, LedgerBusy, LedgerError

__all__ = [
    "ANSWER_KINDS",
    "COLUMNS",
    "FEATURE_COLUMNS",
    "MIGRATIONS",
    "PASSTHROUGH",
    "RETRIEVAL_COLUMNS",
    "SEGMENTS",
    "TABLES",
    "FeatureRow",
    "Ledger",
    "LedgerBusy",
    "LedgerError",
    "LedgerRow",
    "RetrievalRow",
    "apply_migrations",
]
