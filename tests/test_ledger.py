"""The run ledger: row validation, round trips, migrations of old files, plain
SQL access, Parquet export and several processes recording at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from lcrag.pipeline.ledger import (
    MIGRATIONS,
    FeatureRow,
    Ledger,
    LedgerError,
    apply_migrations,
)
from tests.helpers import make_row

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"run_id": ""}, "run_id"),
        ({"run_id": "   "}, "run_id"),
        ({"question_id": ""}, "question_id"),
        ({"strategy": ""}, "strategy"),
        ({"context_tokens": -1}, "context_tokens"),
        ({"prompt_tokens": -5}, "prompt_tokens"),
        ({"completion_tokens": -1}, "completion_tokens"),
        ({"prompt_tokens": 1.5}, "prompt_tokens"),
        ({"calls": -1}, "calls"),
        ({"retrieval_ms": -0.1}, "retrieval_ms"),
        ({"reading_ms": float("nan")}, "reading_ms"),
        ({"reading_ms": float("inf")}, "reading_ms"),
        ({"em": 1.5}, "em"),
        ({"f1": -0.2}, "f1"),
        ({"recall": 2.0}, "recall"),
        ({"retrieved_ids": "d1"}, "retrieved_ids"),
        ({"used_ids": (1, 2)}, "used_ids"),
        ({"gold_answers": "Paris"}, "gold_answers"),
    ],
)
def test_row_validation_rejects(overrides, message):
    with pytest.raises(ValueError, match=message) as info:
        make_row(**overrides)
    # The bad value is named in the message.
    assert repr(next(iter(overrides.values())))[:4] in str(info.value)


def test_row_fills_id_and_time_and_makes_tuples():
    before = time.time()
    row = make_row(retrieved_ids=["a", "b"], used_ids=[], gold_answers=["x"], em=0.0, f1=1.0, recall=0.5)
    assert len(row.row_id) == 32 and row.created_at >= before
    assert row.retrieved_ids == ("a", "b") and row.used_ids == () and row.gold_answers == ("x",)
    assert make_row().row_id != make_row().row_id
    kept = make_row(row_id="fixed", created_at=12.5)
    assert (kept.row_id, kept.created_at) == ("fixed", 12.5)


# ------------------------------------------------------------ round trip


def test_record_and_read_round_trip(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    full = make_row(
        question_id="q1",
        strategy="self-route",
        route="lc",
        calls=2,
        fell_back=True,
        dataset="hotpotqa",
        gold_answers=("Paris", "paris, France"),
        em=1.0,
        f1=0.75,
        recall=0.5,
        abstained=False,
        context_cut=True,
        created_at=100.0,
    )
    bare = make_row(question_id="q2", retrieved_ids=(), used_ids=(), created_at=101.0)
    assert ledger.record([full, bare]) == 2
    back = ledger.rows()
    assert back == [bare, full]  # newest first, every field equal
    assert back[1].gold_answers == ("Paris", "paris, France") and isinstance(back[1].retrieved_ids, tuple)
    assert back[0].gold_answers is None and back[0].fell_back is None and back[0].em is None
    assert back[1].context_cut is True and back[1].fell_back is True and back[1].abstained is False
    # Recording the same rows again (a retried call) adds nothing.
    assert ledger.record([full]) == 0
    assert ledger.count() == 2
    assert ledger.record([]) == 0


def test_record_rejects_duplicates_and_non_rows(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    row = make_row()
    with pytest.raises(ValueError, match="duplicate row_id"):
        ledger.record([row, row])
    with pytest.raises(ValueError, match="LedgerRow"):
        ledger.record([{"run_id": "x"}])


def test_done_keys_count_and_paging(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    rows = [
        make_row(run_id="r1", question_id="q1", strategy="rag", created_at=10.0),
        make_row(run_id="r1", question_id="q1", strategy="lc", created_at=11.0),
        make_row(run_id="r1", question_id="q2", strategy="rag", error="timeout", created_at=12.0),
        make_row(run_id="r1", question_id="q3", strategy="rag", created_at=13.0),
        make_row(run_id="r2", question_id="q1", strategy="rag", created_at=14.0),
    ]
    ledger.record(rows[:3])
    ledger.record(rows[3:])
    assert ledger.done_keys("r1") == {("q1", "rag"), ("q1", "lc"), ("q3", "rag")}
    assert ledger.done_keys("r2") == {("q1", "rag")}
    assert ledger.done_keys("nope") == set()
    assert (ledger.count(), ledger.count("r1"), ledger.count("r2"), ledger.count("nope")) == (5, 4, 1, 0)

    newest_first = [r.created_at for r in ledger.rows()]
    assert newest_first == [14.0, 13.0, 12.0, 11.0, 10.0]
    assert [r.created_at for r in ledger.rows(limit=2)] == [14.0, 13.0]
    assert [r.created_at for r in ledger.rows(limit=2, offset=2)] == [12.0, 11.0]
    assert [r.created_at for r in ledger.rows(offset=4)] == [10.0]
    assert [r.created_at for r in ledger.rows(run_id="r1", limit=1, offset=1)] == [12.0]
    # Same timestamp: the later recorded row still comes first.
    a, b = make_row(run_id="r3", created_at=50.0), make_row(run_id="r3", created_at=50.0)
    ledger.record([a])
    ledger.record([b])
    assert [r.row_id for r in ledger.rows(run_id="r3")] == [b.row_id, a.row_id]
    with pytest.raises(ValueError, match="limit"):
        ledger.rows(limit=-1)


# ------------------------------------------------------------ migrations


def applied_names(path: Path) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return [n for (n,) in conn.execute("SELECT name FROM _migrations ORDER BY applied_at, name").fetchall()]


def test_fresh_file_gets_all_migrations(tmp_path):
    path = tmp_path / "sub" / "ledger.duckdb"
    ledger = Ledger(path)
    assert ledger.migrate() == [name for name, _ in MIGRATIONS]
    assert applied_names(path) == [name for name, _ in MIGRATIONS]
    assert ledger.migrate() == []
    assert Ledger(path).migrate() == []
    assert ledger.applied_migrations() == [name for name, _ in MIGRATIONS]


def test_migration_names_are_unique_and_ordered():
    names = [name for name, _ in MIGRATIONS]
    assert len(names) == len(set(names))
    assert names == sorted(names)
    assert all(callable(fn) for _, fn in MIGRATIONS)


def test_old_file_is_upgraded_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as conn:
        assert apply_migrations(conn, MIGRATIONS[:1]) == ["m001_create_ledger"]
        conn.execute(
            """INSERT INTO ledger (row_id, created_at, run_id, question_id, question, strategy, route, answer,
               index_id, config_hash, model, retrieved_ids, used_ids, context_tokens, prompt_tokens,
               completion_tokens, retrieval_ms, reading_ms, context_cut, calls, fell_back, dataset,
               gold_answers, em, f1)
               VALUES ('old1', 5.0, 'r0', 'q9', 'Old?', 'rag', 'rag', 'yes', 'idx@1', 'h', 'm',
                       ['a', 'b'], ['a'], 10, 20, 3, 1.0, 2.0, false, 1, NULL, 'sq', ['yes'], 1.0, 1.0)"""
        )
        columns = {r[0] for r in conn.execute("DESCRIBE ledger").fetchall()}
        assert "recall" not in columns and "error" not in columns

    ledger = Ledger(path)
    assert ledger.migrate() == ["m002_evaluation_columns", "m003_summary_view", "m004_answerable_column",
                                "m005_retrieval_table", "m006_choice_and_cache_columns",
                                "m007_confidence_and_features", "m008_scope_read", "m009_structure_columns"]
    assert ledger.migrate() == []
    assert applied_names(path) == [name for name, _ in MIGRATIONS]
    (old,) = ledger.rows()
    assert (old.row_id, old.question_id, old.retrieved_ids, old.gold_answers, old.em) == (
        "old1", "q9", ("a", "b"), ("yes",), 1.0,
    )
    assert old.recall is None and old.abstained is None and old.error is None and old.answerable is None
    assert ledger.done_keys("r0") == {("q9", "rag")}
    ledger.record([make_row(run_id="r0", question_id="q10", recall=1.0)])
    assert ledger.count("r0") == 2


def test_reading_an_unmigrated_file_migrates_it_first(tmp_path):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as conn:
        apply_migrations(conn, MIGRATIONS[:1])
    assert Ledger(path).count() == 0
    assert applied_names(path) == [name for name, _ in MIGRATIONS]


def test_not_a_duckdb_file_raises_ledger_error(tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_text("this is not a database\n" * 50)
    with pytest.raises(LedgerError, match="not a DuckDB database") as info:
        Ledger(path).count()
    assert str(path) in str(info.value)


def hold(path, read_only: bool) -> subprocess.Popen:
    """Another process with a DuckDB session open on ``path`` (as a user's ``duckdb`` CLI)."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time\n"
         "c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro')\n"
         "print('held', flush=True)\n"
         "time.sleep(60)\n",
         str(path), "ro" if read_only else "rw"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_held_file_never_stops_recording_and_reads_need_only_a_read_only_holder(tmp_path):
    path = tmp_path / "ledger.duckdb"
    Ledger(path).migrate()
    holder = hold(path, read_only=False)
    try:
        assert Ledger(path, lock_timeout=0.5).record([make_row()]) == 1  # into a segment, without waiting
        assert holder.poll() is None  # recorded while the file is still held (the holder keeps it 60 s)
        assert len(Ledger(path).segments("ledger")) == 1
        # a read-write holder keeps readers out: reads wait lock_timeout, then say so
        with pytest.raises(LedgerError, match="locked") as info:
            Ledger(path, lock_timeout=0.5).count()
        assert str(path) in str(info.value) and "duckdb -readonly" in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    ledger = Ledger(path)
    assert ledger.count() == 1  # read from the segment
    assert ledger.record([make_row(question_id="q2")]) == 1  # the next write merges the segment
    assert ledger.segments("ledger") == [] and ledger.count() == 2
    with duckdb.connect(str(path), read_only=True) as conn:  # plain SQL sees every row once merged
        assert conn.execute("select count(*) from ledger").fetchone()[0] == 2


def test_recording_while_a_read_only_session_is_open_loses_nothing(tmp_path):
    path = tmp_path / "ledger.duckdb"
    ledger = Ledger(path)
    ledger.record([make_row(question_id="q0", strategy="rag", error="reader down")])
    holder = hold(path, read_only=True)

    def writer() -> Ledger:  # waits 0.05 s for the held file, then writes a segment
        return Ledger(path, write_wait=0.05)

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: writer().record([make_row(question_id=f"q{i}", row_id=f"r{i}")]), range(1, 9)))
        writer().record([make_row(question_id="q0", strategy="rag")])  # the retried success
        writer().record_features([FeatureRow("run1", "q1", "d", "idx", '{"a": 1.0}')])
        reader = Ledger(path)  # reads work beside the read-only session and see the segments
        assert reader.count("run1") == 9 and len(reader.segments("ledger")) == 9
        assert ("q0", "rag") in reader.done_keys("run1")
        assert [r.error for r in reader.rows("run1") if r.question_id == "q0"] == [None]  # the error row is superseded
        assert reader.query("select count(*) n from ledger_summary")[0]["n"] >= 1
        assert [f.question_id for f in reader.feature_rows("run1")] == ["q1"]
        assert reader.compact() == 0  # the file is held: nothing merged, nothing lost
    finally:
        holder.kill()
        holder.wait()
    assert Ledger(path).compact() == 10
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = conn.execute("select question_id, error from ledger order by question_id").fetchall()
        features = conn.execute("select count(*) from features").fetchone()[0]
    assert rows == [(f"q{i}", None) for i in range(9)] and features == 1
    assert Ledger(path).segments("ledger") == [] and Ledger(path).compact() == 0


# ------------------------------------------------------------- plain SQL


def test_plain_sql_and_summary_view(tmp_path):
    path = tmp_path / "ledger.duckdb"
    ledger = Ledger(path)
    ledger.record(
        [
            make_row(strategy="rag", em=1.0, f1=1.0, prompt_tokens=100, completion_tokens=10,
                     reading_ms=10.0, retrieval_ms=2.0, context_cut=False),
            make_row(strategy="rag", em=0.0, f1=0.5, prompt_tokens=200, completion_tokens=20,
                     reading_ms=30.0, retrieval_ms=4.0, context_cut=True),
            make_row(strategy="rag", em=None, f1=None, prompt_tokens=300, completion_tokens=30,
                     reading_ms=50.0, retrieval_ms=6.0, context_cut=False, error="boom"),
            make_row(strategy="self-route", em=1.0, f1=0.8, prompt_tokens=1000, completion_tokens=5,
                     reading_ms=100.0, retrieval_ms=1.0, context_cut=True, fell_back=True),
            make_row(strategy="self-route", em=0.0, f1=0.2, prompt_tokens=3000, completion_tokens=15,
                     reading_ms=300.0, retrieval_ms=3.0, context_cut=True, fell_back=False),
            make_row(run_id="run2", strategy="lc", em=0.5, f1=0.5),
        ]
    )
    with duckdb.connect(str(path), read_only=True) as conn:
        counts = dict(conn.execute("select strategy, count(*) from ledger group by 1").fetchall())
        assert counts == {"rag": 3, "self-route": 2, "lc": 1}
        summary = {
            (r[0], r[1]): r[2:]
            for r in conn.execute(
                """select run_id, strategy, n, n_errors, mean_em, mean_f1, mean_prompt_tokens,
                          mean_completion_tokens, mean_reading_ms, mean_retrieval_ms,
                          share_context_cut, share_fell_back
                   from ledger_summary"""
            ).fetchall()
        }
    assert set(summary) == {("run1", "rag"), ("run1", "self-route"), ("run2", "lc")}
    # rag: em (1+0)/2 (the errored row is unscored), f1 (1+.5)/2, tokens (100+200+300)/3 ...
    assert summary[("run1", "rag")] == pytest.approx((3, 1, 0.5, 0.75, 200.0, 20.0, 30.0, 4.0, 1 / 3, None))
    assert summary[("run1", "self-route")] == pytest.approx((2, 0, 0.5, 0.5, 2000.0, 10.0, 200.0, 2.0, 1.0, 0.5))
    assert summary[("run2", "lc")] == pytest.approx((1, 0, 0.5, 0.5, 150.0, 12.0, 250.0, 3.5, 0.0, None))

    # The same through Ledger.query, with parameters, as dicts.
    got = ledger.query("select strategy, n from ledger_summary where run_id = ? order by strategy", ["run1"])
    assert got == [{"strategy": "rag", "n": 3}, {"strategy": "self-route", "n": 2}]
    with pytest.raises(duckdb.Error):
        ledger.query("delete from ledger")
    assert ledger.count() == 6


def test_export_parquet(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    ledger.record([make_row(run_id="a", gold_answers=("x",)) for _ in range(4)])
    ledger.record([make_row(run_id="b") for _ in range(3)])
    everything = tmp_path / "out" / "all.parquet"
    only_b = tmp_path / "out" / "b.parquet"
    assert ledger.export_parquet(everything) == 7
    assert ledger.export_parquet(only_b, run_id="b") == 3
    with duckdb.connect() as conn:
        assert conn.execute("select count(*) from read_parquet(?)", [str(everything)]).fetchone()[0] == 7
        assert conn.execute("select count(*) from read_parquet(?)", [str(only_b)]).fetchone()[0] == 3
        gold = conn.execute(
            "select gold_answers from read_parquet(?) where run_id = 'a' limit 1", [str(everything)]
        ).fetchone()[0]
        assert gold == ["x"]
        assert {r[0] for r in conn.execute("select row_id from read_parquet(?)", [str(everything)]).fetchall()} == {
            r.row_id for r in ledger.rows()
        }


# ------------------------------------------------------------ concurrency

WRITER = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, sys.argv[1])
    from lcrag.pipeline.ledger import Ledger, LedgerRow
    path, name, start_at = sys.argv[2], sys.argv[3], float(sys.argv[4])
    ledger = Ledger(path)
    ids = []
    while time.time() < start_at:
        time.sleep(0.001)
    for call in range(20):
        batch = [
            LedgerRow(run_id=name, question_id=f"q{call}-{i}", question="?", strategy="rag", route="rag",
                      answer="a", index_id="i@1", config_hash="h", model="m", retrieved_ids=("d1",),
                      used_ids=("d1",), context_tokens=1, prompt_tokens=1, completion_tokens=1,
                      retrieval_ms=0.0, reading_ms=0.0, context_cut=False)
            for i in range(5)
        ]
        assert ledger.record(batch) == 5
        ids.extend(r.row_id for r in batch)
    print(json.dumps(ids))
    """
)

READER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, sys.argv[1])
    from lcrag.pipeline.ledger import Ledger
    path, start_at = sys.argv[2], float(sys.argv[3])
    ledger = Ledger(path)
    while time.time() < start_at:
        time.sleep(0.001)
    seen = []
    while True:
        n = ledger.count()
        seen.append(n)
        if n >= 200 or time.time() > start_at + 60:
            break
        time.sleep(0.01)
    print(len(seen), seen[-1], all(a <= b for a, b in zip(seen, seen[1:])))
    """
)


@pytest.mark.slow  # three Python subprocesses
def test_two_writer_processes_and_a_reader_lose_nothing(tmp_path):
    path = tmp_path / "shared.duckdb"
    Ledger(path).migrate()
    start_at = time.time() + 1.5  # all three begin together, after their imports
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(ROOT), str(path), name, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("w1", "w2")
    ]
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(ROOT), str(path), str(start_at)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    written: list[str] = []
    for proc in writers:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        written.extend(json.loads(out))
    out, err = reader.communicate(timeout=90)
    assert reader.returncode == 0, err
    polls, last, monotone = out.split()
    assert int(polls) >= 1 and int(last) == 200 and monotone == "True"

    ledger = Ledger(path)
    assert ledger.count() == 200
    assert ledger.count("w1") == ledger.count("w2") == 100
    stored = [r["row_id"] for r in ledger.query("select row_id from ledger")]
    assert len(written) == 200 and sorted(stored) == sorted(written)


def test_threads_of_one_process_record_concurrently_without_loss(tmp_path):
    """DuckDB attaches a file once per process; threads must take turns, not fail."""
    from concurrent.futures import ThreadPoolExecutor

    ledger = Ledger(tmp_path / "threads.duckdb")

    def write(worker: int) -> None:
        for batch in range(5):
            ledger.record([make_row(run_id="t", question_id=f"w{worker}-b{batch}-{i}") for i in range(3)])
            ledger.count("t")

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(write, range(6)))
    assert ledger.count("t") == 6 * 5 * 3


def retrieval_row(**overrides):
    from lcrag.pipeline.ledger import RetrievalRow

    values = dict(run_id="b1", dataset="beir", query_id="q1", method="bm25/doc", index_id="idx", k=10,
                  ndcg_at_10=0.5, recall_at_k=1.0, mrr=0.5, retrieval_ms=3.0)
    values.update(overrides)
    return RetrievalRow(**values)


def test_retrieval_rows_round_trip_and_resume_keys(tmp_path):
    ledger = Ledger(tmp_path / "l.duckdb")
    rows = [retrieval_row(query_id="q1"), retrieval_row(query_id="q2", method="dense/doc", ndcg_at_10=0.25)]
    assert ledger.record_retrieval(rows) == 2
    assert ledger.record_retrieval(rows) == 0  # same row ids: a retried call adds nothing
    assert ledger.retrieval_rows("b1") == sorted(rows, key=lambda r: (r.created_at, r.query_id, r.method))
    assert ledger.retrieval_done("b1") == {("q1", "bm25/doc"), ("q2", "dense/doc")}
    assert ledger.retrieval_rows("other") == [] and ledger.count() == 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"query_id": ""}, "query_id must be a non-empty string"),
        ({"k": 0}, "k must be a positive int"),
        ({"ndcg_at_10": 1.5}, "ndcg_at_10 must be within"),
        ({"recall_at_k": -0.1}, "recall_at_k must be within"),
        ({"retrieval_ms": float("inf")}, "retrieval_ms must be a finite"),
    ],
)
def test_retrieval_row_validates(overrides, message):
    with pytest.raises(ValueError, match=message):
        retrieval_row(**overrides)


def test_a_later_success_replaces_the_error_rows_of_its_pair(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    ledger.record([
        make_row(question_id="q1", strategy="rag", error="HTTP 500", prompt_tokens=0),
        make_row(question_id="q1", strategy="lc", error="HTTP 500", prompt_tokens=0),
        make_row(question_id="q2", strategy="rag"),
        make_row(run_id="other", question_id="q1", strategy="rag", error="HTTP 500"),
    ])
    assert ledger.done_keys("run1") == {("q2", "rag")}
    retried = make_row(question_id="q1", strategy="rag", em=1.0)
    assert ledger.record([retried, make_row(question_id="q2", strategy="rag")]) == 2
    rows = ledger.rows("run1")
    # the rag error of q1 is gone; lc's error, the other run's error and both q2 successes stay
    assert sorted((r.question_id, r.strategy, r.error) for r in rows) == [
        ("q1", "lc", "HTTP 500"), ("q1", "rag", None), ("q2", "rag", None), ("q2", "rag", None),
    ]
    assert ledger.done_keys("run1") == {("q1", "rag"), ("q2", "rag")}
    assert [r.error for r in ledger.rows("other")] == ["HTTP 500"]
    summary = ledger.query("select strategy, n, n_errors from ledger_summary where run_id = 'run1' order by 1")
    assert summary == [{"strategy": "lc", "n": 1, "n_errors": 1}, {"strategy": "rag", "n": 3, "n_errors": 0}]
    # recording the same success again is still harmless
    assert ledger.record([retried]) == 0 and ledger.count("run1") == 4
