"""The ledger's schema as an append-only list of named migrations (as simonw/llm's
``migrations.py``), and the runner that applies the pending ones, recording each name in
``_migrations(name, applied_at)``. Never edit a shipped migration; add one."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import duckdb

from lcrag.pipeline.ledger.rows import EXACT, FREE_TEXT, MULTIPLE_CHOICE


def m001_create_ledger(conn: duckdb.DuckDBPyConnection) -> None:
    """The first shipped table. ``seq`` orders rows recorded in the same instant."""
    conn.execute("CREATE SEQUENCE ledger_seq")
    conn.execute(
        """
        CREATE TABLE ledger (
            row_id VARCHAR PRIMARY KEY,
            seq BIGINT NOT NULL DEFAULT nextval('ledger_seq'),
            created_at DOUBLE NOT NULL,
            run_id VARCHAR NOT NULL,
            question_id VARCHAR NOT NULL,
            question VARCHAR NOT NULL,
            strategy VARCHAR NOT NULL,
            route VARCHAR NOT NULL,
            answer VARCHAR NOT NULL,
            index_id VARCHAR NOT NULL,
            config_hash VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            retrieved_ids VARCHAR[] NOT NULL,
            used_ids VARCHAR[] NOT NULL,
            context_tokens BIGINT NOT NULL,
            prompt_tokens BIGINT NOT NULL,
            completion_tokens BIGINT NOT NULL,
            retrieval_ms DOUBLE NOT NULL,
            reading_ms DOUBLE NOT NULL,
            context_cut BOOLEAN NOT NULL,
            calls INTEGER NOT NULL,
            fell_back BOOLEAN,
            dataset VARCHAR,
            gold_answers VARCHAR[],
            em DOUBLE,
            f1 DOUBLE
        )
        """
    )


def m002_evaluation_columns(conn: duckdb.DuckDBPyConnection) -> None:
    """Evidence recall, abstention and the error that ended a question."""
    conn.execute("ALTER TABLE ledger ADD COLUMN recall DOUBLE")
    conn.execute("ALTER TABLE ledger ADD COLUMN abstained BOOLEAN")
    conn.execute("ALTER TABLE ledger ADD COLUMN error VARCHAR")


def m003_summary_view(conn: duckdb.DuckDBPyConnection) -> None:
    """Per run x strategy means, the table every comparison starts from.
    Means skip NULLs (unscored rows); share_fell_back is over rows that set it."""
    conn.execute(
        """
        CREATE VIEW ledger_summary AS
        SELECT
            run_id,
            strategy,
            count(*) AS n,
            count(error) AS n_errors,
            avg(em) AS mean_em,
            avg(f1) AS mean_f1,
            avg(prompt_tokens) AS mean_prompt_tokens,
            avg(completion_tokens) AS mean_completion_tokens,
            avg(reading_ms) AS mean_reading_ms,
            avg(retrieval_ms) AS mean_retrieval_ms,
            avg(CAST(context_cut AS DOUBLE)) AS share_context_cut,
            avg(CAST(fell_back AS DOUBLE)) AS share_fell_back
        FROM ledger
        GROUP BY run_id, strategy
        """
    )


def m004_answerable_column(conn: duckdb.DuckDBPyConnection) -> None:
    """Whether the question has an answer, so abstention can be scored per row."""
    conn.execute("ALTER TABLE ledger ADD COLUMN answerable BOOLEAN")


def m005_retrieval_table(conn: duckdb.DuckDBPyConnection) -> None:
    """Retrieval-only evaluation (BEIR): one row per query x method, judged by qrels."""
    conn.execute(
        """
        CREATE TABLE retrieval (
            row_id VARCHAR PRIMARY KEY,
            created_at DOUBLE NOT NULL,
            run_id VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            query_id VARCHAR NOT NULL,
            method VARCHAR NOT NULL,
            index_id VARCHAR NOT NULL,
            k INTEGER NOT NULL,
            ndcg_at_10 DOUBLE NOT NULL,
            recall_at_k DOUBLE NOT NULL,
            mrr DOUBLE NOT NULL,
            retrieval_ms DOUBLE NOT NULL
        )
        """
    )


def m006_choice_and_cache_columns(conn: duckdb.DuckDBPyConnection) -> None:
    """Multiple choice (the parsed letter and its probability) and the prompt tokens
    the reader's prefix cache served."""
    conn.execute("ALTER TABLE ledger ADD COLUMN choice VARCHAR")
    conn.execute("ALTER TABLE ledger ADD COLUMN choice_prob DOUBLE")
    conn.execute("ALTER TABLE ledger ADD COLUMN cached_tokens INTEGER")


def m007_confidence_and_features(conn: duckdb.DuckDBPyConnection) -> None:
    """The reader's confidence per row, and per (run, question) the routing features
    known before the costly read (``FeatureRow``)."""
    conn.execute("ALTER TABLE ledger ADD COLUMN confidence DOUBLE")
    conn.execute(
        """
        CREATE TABLE features (
            run_id VARCHAR NOT NULL,
            question_id VARCHAR NOT NULL,
            dataset VARCHAR,
            index_id VARCHAR NOT NULL,
            features VARCHAR NOT NULL,
            row_id VARCHAR PRIMARY KEY,
            created_at DOUBLE NOT NULL
        )
        """
    )


def m008_scope_read(conn: duckdb.DuckDBPyConnection) -> None:
    """What share of its scope a whole-document read held (lc cuts the middle past the
    window; coa reads it all in pieces), so a verdict never credits a cut read as whole."""
    conn.execute("ALTER TABLE ledger ADD COLUMN scope_read DOUBLE")


def m009_structure_columns(conn: duckdb.DuckDBPyConnection) -> None:
    """What question ids and routes held as text, as columns: ``evidence_position``,
    ``needle_depths``, ``haystack_length``, ``answer_kind``, ``route_steps`` and
    ``route_reason`` (``LedgerRow``). New rows carry them from the data set and the
    strategy; the rows already stored are filled once here, by reading their ids,
    gold answers and routes in the legacy format (``legacy_structure``)."""
    conn.execute("ALTER TABLE ledger ADD COLUMN evidence_position INTEGER")
    conn.execute("ALTER TABLE ledger ADD COLUMN needle_depths INTEGER[]")
    conn.execute("ALTER TABLE ledger ADD COLUMN haystack_length INTEGER")
    conn.execute("ALTER TABLE ledger ADD COLUMN answer_kind VARCHAR")
    conn.execute("ALTER TABLE ledger ADD COLUMN route_steps VARCHAR[]")
    conn.execute("ALTER TABLE ledger ADD COLUMN route_reason VARCHAR")
    backfill_structure(conn)


MIGRATIONS: list[tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]] = [
    ("m001_create_ledger", m001_create_ledger),
    ("m002_evaluation_columns", m002_evaluation_columns),
    ("m003_summary_view", m003_summary_view),
    ("m004_answerable_column", m004_answerable_column),
    ("m005_retrieval_table", m005_retrieval_table),
    ("m006_choice_and_cache_columns", m006_choice_and_cache_columns),
    ("m007_confidence_and_features", m007_confidence_and_features),
    ("m008_scope_read", m008_scope_read),
    ("m009_structure_columns", m009_structure_columns),
]


def apply_migrations(
    conn: duckdb.DuckDBPyConnection,
    migrations: Sequence[tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]] = MIGRATIONS,
) -> list[str]:
    """Apply the pending ``migrations`` on an open read-write connection, each in
    its own transaction together with its ``_migrations`` row. Returns the names
    applied now."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at DOUBLE NOT NULL)")
    done = {name for (name,) in conn.execute("SELECT name FROM _migrations").fetchall()}
    applied: list[str] = []
    for name, fn in migrations:
        if name in done:
            continue
        conn.execute("BEGIN TRANSACTION")
        try:
            fn(conn)
            conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", [name, time.time()])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


# ------------------------------------------------- m009: the legacy text formats
#
# Until m009 the ledger kept a question's evidence placement and a route's path in
# text only, and the data set's answer kind nowhere: the report and the verdict
# recovered them from question ids, gold answers and routes. The functions below read
# that text exactly as the code before m009 wrote and read it, for one purpose: to
# fill the new columns of rows recorded before them (``backfill_structure``). Nothing
# else parses ids or routes; like the migrations, never change how they read.

# ids: "q17@pos3" (kv, hotpotqa-positions: the evidence slot); "niah3@d25@L2000" (needle
# depth % and haystack length); "niahagg1@d10@L8000@d60" (further facts' depths after the cell)
_LEGACY_POSITION = re.compile(r"@pos(\d+)(?=@|$)")
_LEGACY_CELL = re.compile(r"@d(\d+)@L(\d+)(?=@|$)")
_LEGACY_MORE_DEPTHS = re.compile(r"@d(\d+)(?=@|$)")
_LEGACY_EXACT_ID = re.compile(r"^(kv\d+@pos\d+|niah\d*@d\d+@L\d+)$")  # ids the kv and niah loaders wrote
_LEGACY_CHOICE = re.compile(r"^\(?[A-J]+\)?$")  # a gold answer of option letters: "C", "(B)", "BD"
# routes: "rag", "rag->lc", "rag[no confidence]", "rule:self-route:rag->lc", "router[no confidence]:rag->lc"
_LEGACY_REASON = re.compile(r"\[([^\]]*)\]")
_LEGACY_MECHANISMS = ("rule", "router")  # auto's prefix: how it chose (size rule or fitted router), not a strategy
_LEGACY_ERROR_ROUTE = "error"  # an error row's route: no path answered
_INT_MAX = 2**31 - 1  # INTEGER's range: a larger number in an id is left out rather than fail the migration


def _small(digits: str) -> int | None:
    value = int(digits)
    return value if value <= _INT_MAX else None


def legacy_placement(question_id: str) -> tuple[int | None, tuple[int, ...] | None, int | None]:
    """(evidence position, needle depths, haystack length) from a legacy question id;
    None where the id does not carry one. The first ``@dD@LN`` is the needle cell the
    report's heat map used; further ``@dD`` after it are the other facts' depths."""
    position = _LEGACY_POSITION.search(question_id)
    cell = _LEGACY_CELL.search(question_id)
    depths = length = None
    if cell:
        found = (_small(cell.group(1)), *(_small(m.group(1)) for m in _LEGACY_MORE_DEPTHS.finditer(question_id, cell.end())))
        if None not in found and _small(cell.group(2)) is not None:
            depths, length = found, _small(cell.group(2))
    return (_small(position.group(1)) if position else None), depths, length


def _legacy_is_choice(gold: str) -> bool:
    """Option letters in strictly increasing order ("BD"): "BAD" is a word, not three options."""
    letters = gold.strip().strip("()")
    return bool(_LEGACY_CHOICE.match(gold.strip())) and list(letters) == sorted(set(letters))


def legacy_answer_kind(question_id: str, gold_answers: Sequence[str] | None) -> str | None:
    """The answer kind the verdict inferred from a legacy row: an id the kv or niah
    loader wrote means exact; gold answers all option letters mean multiple choice,
    other gold answers free text; a row without gold (unanswerable, ad hoc) says nothing."""
    if _LEGACY_EXACT_ID.match(question_id):
        return EXACT
    if gold_answers:
        return MULTIPLE_CHOICE if all(_legacy_is_choice(g) for g in gold_answers) else FREE_TEXT
    return None


def legacy_route(strategy: str, route: str) -> tuple[tuple[str, ...], str | None]:
    """(route steps, route reason) from a legacy route and its row's strategy. Steps are
    the strategies passed through, the routing strategy first when the route does not
    name it (self-route's "rag->lc" -> self-route, rag, lc); auto's "rule:"/"router:"
    prefix is how it chose, not a step; a bracketed part is the reason. An error row
    passed through none."""
    if route == _LEGACY_ERROR_ROUTE:
        return (), None
    reasons = [r.strip() for r in _LEGACY_REASON.findall(route) if r.strip()]
    text = _LEGACY_REASON.sub("", route)
    steps = [part.strip() for hop in text.split(":") for part in hop.split("->") if part.strip()]
    if len(steps) > 1 and steps[0] in _LEGACY_MECHANISMS:
        steps = steps[1:]
    base = strategy.partition("@k")[0]  # a top-k variant (rag@k4) routes as its strategy
    if steps and steps[0] not in (strategy, base):
        steps.insert(0, base)
    return tuple(steps), "; ".join(reasons) or None


def legacy_structure(question_id: str, strategy: str, route: str, gold_answers: Sequence[str] | None) -> dict[str, Any]:
    """The m009 columns of a legacy row, by name."""
    position, depths, length = legacy_placement(question_id)
    steps, reason = legacy_route(strategy, route)
    return {"evidence_position": position, "needle_depths": depths, "haystack_length": length,
            "answer_kind": legacy_answer_kind(question_id, gold_answers), "route_steps": steps, "route_reason": reason}


_FILLED = ("evidence_position", "needle_depths", "haystack_length", "answer_kind", "route_steps", "route_reason")
_FILL_BATCH = 500


def backfill_structure(conn: duckdb.DuckDBPyConnection, where: str = "TRUE") -> int:
    """Fill the m009 columns of the ledger rows matching ``where`` (SQL over the ledger's
    columns) from their legacy ids, gold answers and routes; returns how many rows. Run by
    m009 on every stored row, and on rows merged from segments written before m009."""
    found = conn.execute(f"SELECT row_id, question_id, strategy, route, gold_answers FROM ledger WHERE {where}").fetchall()
    if not found:
        return 0
    conn.execute("CREATE TEMP TABLE m009_fill (row_id VARCHAR, evidence_position INTEGER, needle_depths INTEGER[], "
                 "haystack_length INTEGER, answer_kind VARCHAR, route_steps VARCHAR[], route_reason VARCHAR)")
    try:
        one = "(" + ", ".join("?" for _ in range(len(_FILLED) + 1)) + ")"
        for start in range(0, len(found), _FILL_BATCH):
            batch = found[start : start + _FILL_BATCH]
            params: list[Any] = []
            for row_id, question_id, strategy, route, golds in batch:
                filled = legacy_structure(question_id, strategy, route, golds)
                params.append(row_id)
                params.extend(list(v) if isinstance(v, tuple) else v for v in (filled[name] for name in _FILLED))
            conn.execute("INSERT INTO m009_fill VALUES " + ", ".join(one for _ in batch), params)
        assignments = ", ".join(f"{name} = f.{name}" for name in _FILLED)
        conn.execute(f"UPDATE ledger SET {assignments} FROM m009_fill f WHERE ledger.row_id = f.row_id")
    finally:
        conn.execute("DROP TABLE m009_fill")
    return len(found)
