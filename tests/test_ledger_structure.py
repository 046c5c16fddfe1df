"""Structure as data, not strings: the evidence placement (``@pos3``, ``@d25@L2000``),
the answer kind and the route path that question ids, gold answers and routes used to
carry as text are ledger columns (migration m009). Here: m009's backfill of legacy rows,
table by table; a ledger built by the migrations before m009 migrated and reported as
the code before m009 reported it; new rows carrying the columns from their question and
outcome; and no regex over ids or routes left in the packages that read them."""

from __future__ import annotations

import ast
import re
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from lcrag.pipeline.ledger import ANSWER_KINDS, COLUMNS, MIGRATIONS, Ledger, LedgerRow, apply_migrations
from lcrag.pipeline.ledger.migrations import legacy_answer_kind, legacy_placement, legacy_route
from tests.helpers import make_row

ROOT = Path(__file__).resolve().parents[1]
M009 = "m009_structure_columns"
BEFORE_M009 = [m for m in MIGRATIONS if m[0] < M009]
STRUCTURE = ("evidence_position", "needle_depths", "haystack_length", "answer_kind", "route_steps", "route_reason")
NONE = dict.fromkeys(STRUCTURE)  # a row that records none of the structure


# ------------------------------------------------------------ the legacy formats


@pytest.mark.parametrize("question_id, position, depths, length", [
    ("q17@pos3", 3, None, None),
    ("q17@pos0", 0, None, None),
    ("hotpot-12@pos12", 12, None, None),
    ("kv130@pos24", 24, None, None),
    ("n4@d25@L2000", None, (25,), 2000),
    ("n4@d0@L128000", None, (0,), 128000),
    ("n4@d100@L500@pos2", 2, (100,), 500),
    ("niah3@d25@L2000", None, (25,), 2000),
    ("niahagg1@d10@L8000@d60", None, (10, 60), 8000),  # the other facts' depths follow the cell
    ("niahagg0@d50@L800@d0@d90", None, (50, 0, 90), 800),
    ("q17", None, None, None),
    ("q17@posx", None, None, None),
    ("q17@pos3x", None, None, None),
    ("n4@d25", None, None, None),
    ("n4@L2000@d25", None, None, None),
    ("pos3", None, None, None),
    ("ld-0373c51cbe529d6d:q12", None, None, None),
    ("5a7149595542994082a3e76f", None, None, None),
    ("q@pos99999999999", None, None, None),  # past INTEGER: left out rather than fail the migration
])
def test_legacy_ids_give_position_depths_and_length(question_id, position, depths, length):
    assert legacy_placement(question_id) == (position, depths, length)


@pytest.mark.parametrize("question_id, golds, kind", [
    ("kv3@pos7", ("2a8d-uuid",), "exact"),
    ("niah@d25@L2000", ("bluefinch",), "exact"),  # one-needle ids of earlier runs
    ("niah3@d25@L2000", None, "exact"),
    ("niahagg1@d10@L8000@d60", ("Arabrin",), "free_text"),  # never inferred: niah-agg is judged by its name
    ("a", ("B",), "multiple_choice"),
    ("a", ("(D)",), "multiple_choice"),
    ("a", ("BD",), "multiple_choice"),  # several right letters (L-Eval Coursera)
    ("a", ("BAD",), "free_text"),  # capitals out of order: a word, not options
    ("a", ("B", "Paris"), "free_text"),
    ("a", ("Paris",), "free_text"),
    ("a", (), None),  # no gold (an unanswerable question): says nothing
    ("a", None, None),  # an ad hoc question
])
def test_legacy_ids_and_golds_give_the_answer_kind(question_id, golds, kind):
    assert legacy_answer_kind(question_id, golds) == kind


@pytest.mark.parametrize("strategy, route, steps, reason", [
    ("rag", "rag", ("rag",), None),
    ("lc", "lc", ("lc",), None),
    ("coa", "coa", ("coa",), None),
    ("closed-book", "closed-book", ("closed-book",), None),
    ("rag@k4", "rag", ("rag",), None),  # a top-k variant routes as its strategy
    ("self-route", "rag", ("self-route", "rag"), None),
    ("self-route", "rag->lc", ("self-route", "rag", "lc"), None),
    ("self-route", "rag[no confidence]", ("self-route", "rag"), "no confidence"),
    ("self-route", "rag[threshold of another answer kind]", ("self-route", "rag"), "threshold of another answer kind"),
    ("self-route@k8", "rag->lc", ("self-route", "rag", "lc"), None),
    ("auto", "rule:lc", ("auto", "lc"), None),
    ("auto", "rule:coa", ("auto", "coa"), None),
    ("auto", "rule:self-route:rag", ("auto", "self-route", "rag"), None),
    ("auto", "rule:self-route:rag->lc", ("auto", "self-route", "rag", "lc"), None),
    ("auto", "rule:self-route:rag[no confidence]", ("auto", "self-route", "rag"), "no confidence"),
    ("auto", "router:lc", ("auto", "lc"), None),
    ("auto", "router:rag->longrag", ("auto", "rag", "longrag"), None),
    ("auto", "router[no confidence]:rag", ("auto", "rag"), "no confidence"),
    ("auto", "router[no confidence]:rag->lc", ("auto", "rag", "lc"), "no confidence"),
    ("rag", "error", (), None),  # an error row: no path answered
    ("auto", "error", (), None),
])
def test_legacy_routes_give_steps_and_reason(strategy, route, steps, reason):
    assert legacy_route(strategy, route) == (steps, reason)


# ------------------------------------------------------- the backfill, in a file


def old_ledger(path: Path, rows: list[LedgerRow]) -> None:
    """A ledger file as the code before m009 left it: its migrations only, and ``rows``
    inserted with the columns it had."""
    old_columns = [c for c in COLUMNS if c not in STRUCTURE]
    with duckdb.connect(str(path)) as conn:
        assert apply_migrations(conn, BEFORE_M009) == [name for name, _ in BEFORE_M009]
        assert not {c for (c, *_) in conn.execute("DESCRIBE ledger").fetchall()} & set(STRUCTURE)
        for row in rows:
            values = [getattr(row, c) for c in old_columns]
            conn.execute(f"INSERT INTO ledger ({', '.join(old_columns)}) VALUES ({', '.join('?' for _ in old_columns)})",
                         [list(v) if isinstance(v, tuple) else v for v in values])


def legacy(question_id="q1", strategy="rag", route=None, golds=("Paris",), **extra) -> LedgerRow:
    """A row as the code before m009 recorded it: none of the structure columns."""
    return make_row(question_id=question_id, strategy=strategy, route=route or strategy, gold_answers=golds,
                    **NONE | extra)


@pytest.mark.parametrize("row, filled", [
    (legacy("q17@pos3"), dict(evidence_position=3, answer_kind="free_text", route_steps=("rag",))),
    (legacy("kv3@pos7", "lc", golds=("e8f1",)), dict(evidence_position=7, answer_kind="exact", route_steps=("lc",))),
    (legacy("niah2@d25@L2000", "self-route", "rag->lc", golds=("Pepper",)),
     dict(needle_depths=(25,), haystack_length=2000, answer_kind="exact", route_steps=("self-route", "rag", "lc"))),
    (legacy("niahagg1@d10@L8000@d60", "auto", "router[no confidence]:rag->lc", golds=("Arabrin",)),
     dict(needle_depths=(10, 60), haystack_length=8000, answer_kind="free_text", route_steps=("auto", "rag", "lc"),
          route_reason="no confidence")),
    (legacy("ld-1:q3", "closed-book", golds=("C",)), dict(answer_kind="multiple_choice", route_steps=("closed-book",))),
    (legacy("ld-1:q4", "auto", "rule:self-route:rag", golds=("BD",)),
     dict(answer_kind="multiple_choice", route_steps=("auto", "self-route", "rag"))),
    # no structure at all: an ad hoc question, an unanswerable one, an error row
    (legacy("cli", golds=None), dict(route_steps=("rag",))),
    (legacy("5ad56bcd5b96ef001a10ae62", golds=(), answerable=False), dict(route_steps=("rag",))),
    (legacy("q9", "lc", "error", golds=None, error="timeout"), dict(route_steps=())),
])
def test_m009_fills_legacy_rows_from_their_ids_golds_and_routes(tmp_path, row, filled):
    path = tmp_path / "old.duckdb"
    old_ledger(path, [row])
    assert Ledger(path).migrate() == [M009]
    (stored,) = Ledger(path).rows()
    assert {name: getattr(stored, name) for name in STRUCTURE} == NONE | filled
    assert stored == replace(row, **filled)  # nothing else changed
    with duckdb.connect(str(path), read_only=True) as conn:  # plain SQL sees the columns, lists as lists
        found = conn.execute(f"SELECT {', '.join(STRUCTURE)} FROM ledger").fetchone()
    expected = NONE | filled
    assert found == tuple(list(expected[n]) if isinstance(expected[n], tuple) else expected[n] for n in STRUCTURE)


def test_m009_column_types(tmp_path):
    path = tmp_path / "new.duckdb"
    Ledger(path).migrate()
    with duckdb.connect(str(path), read_only=True) as conn:
        types = {c: t for (c, t, *_) in conn.execute("DESCRIBE ledger").fetchall()}
    assert {c: types[c] for c in STRUCTURE} == {
        "evidence_position": "INTEGER", "needle_depths": "INTEGER[]", "haystack_length": "INTEGER",
        "answer_kind": "VARCHAR", "route_steps": "VARCHAR[]", "route_reason": "VARCHAR"}
    assert [name for name, _ in MIGRATIONS][-1] == M009 and MIGRATIONS[len(BEFORE_M009)][0] == M009


def test_a_segment_written_before_m009_is_filled_when_merged(tmp_path):
    """Rows that waited in a Parquet segment of the old schema (the file was held) get
    the columns when the next write merges them, as m009 gave the file's rows."""
    path = tmp_path / "ledger.duckdb"
    row = legacy("niah1@d50@L1000", "self-route", "rag->lc", golds=("Juniper",))
    old_ledger(path, [])
    folder = tmp_path / "ledger.duckdb.segments" / "ledger"
    folder.mkdir(parents=True)
    old_ledger(tmp_path / "scratch.duckdb", [row])
    with duckdb.connect(str(tmp_path / "scratch.duckdb")) as conn:
        conn.execute(f"COPY ledger TO '{folder / '00000000000000000001-old.parquet'}' (FORMAT parquet)")
    ledger = Ledger(path)
    ledger.migrate()
    assert ledger.compact() == 1
    (stored,) = ledger.rows()
    assert (stored.needle_depths, stored.haystack_length, stored.answer_kind, stored.route_steps) == (
        (50,), 1000, "exact", ("self-route", "rag", "lc"))


# ------------------------------------------- an old ledger reports as it did before

# The code before m009 read the structure from text, as below (report.model's parsers,
# verdict.dataset_kind's inference and report.cost's last hop of a route): the reference
# the migrated ledger's report is held to.
_OLD_POSITION = re.compile(r"@pos(\d+)(?=@|$)")
_OLD_NIAH = re.compile(r"@d(\d+)@L(\d+)(?=@|$)")
_OLD_EXACT_ID = re.compile(r"^(kv\d+@pos\d+|niah\d*@d\d+@L\d+)$")
_OLD_CHOICE = re.compile(r"^\(?[A-J]+\)?$")


def old_position(row) -> int | None:
    found = _OLD_POSITION.search(row.question_id)
    return int(found.group(1)) if found else None


def old_cell(row) -> tuple[int, int] | None:
    found = _OLD_NIAH.search(row.question_id)
    return (int(found.group(1)), int(found.group(2))) if found else None


def old_kind(rows) -> str:
    def choice(gold):
        letters = gold.strip().strip("()")
        return bool(_OLD_CHOICE.match(gold.strip())) and list(letters) == sorted(set(letters))

    if rows and all(_OLD_EXACT_ID.match(r.question_id) for r in rows):
        return "exact"
    golds = [g for r in rows for g in (r.gold_answers or ())]
    return "multiple_choice" if golds and all(choice(g) for g in golds) else "free_text"


def old_reads_document(route: str) -> bool:
    last = re.sub(r"\[[^\]]*\]", "", route or "").split("->")[-1].split(":")[-1].strip()
    return last.split("@")[0] in {"lc", "coa", "longrag"}


def legacy_run() -> list[LedgerRow]:
    """A run of every kind the report reads structure from, under data set names the
    verdict does not know (so their kinds come from the rows): a position sweep, a needle
    grid, aggregation needles, multiple choice with the closed-book control, free text
    answered by the routers (every route form) and error rows."""
    rows: list[LedgerRow] = []

    def add(dataset, qid, strategy, route=None, golds=("Paris",), hit=True, index="doc", **extra):
        score = 1.0 if hit else 0.0
        rows.append(legacy(qid, strategy, route, golds, dataset=dataset, em=score, f1=score, recall=score,
                           index_id=f"{dataset}:{index}", prompt_tokens=900 if "lc" in (route or strategy) else 300,
                           created_at=1000.0 + len(rows), **extra))

    for q in range(6):
        for slot in (0, 4, 9):
            for strategy in ("rag", "lc"):
                add("sweep", f"h{q}@pos{slot}", strategy, hit=(q + slot + (strategy == "lc")) % 3 != 0, index=f"h{q}@pos{slot}")
    for n in range(4):
        for depth in (0, 50, 100):
            for length in (500, 2000):
                for strategy in ("rag", "lc", "self-route"):
                    route = "rag->lc" if strategy == "self-route" and depth == 50 else None
                    add("haystack", f"niah{n}@d{depth}@L{length}", strategy, route, golds=("bluefinch",),
                        hit=(n + depth // 50 + (strategy != "rag")) % 4 != 0, index=f"niah{n}@d{depth}@L{length}")
    for n in range(3):
        for depths in ((10, 60), (50, 0)):
            for strategy in ("rag", "lc"):
                qid = f"niahagg{n}@d{depths[0]}@L8000@d{depths[1]}"
                add("aggregate", qid, strategy, golds=("Arabrin", "the Arabrin"), hit=(n + depths[0]) % 3 != 1, index=qid)
    for i in range(12):
        gold = "ABCD"[i % 4] if i % 5 else "BD"
        for strategy in ("rag", "lc", "closed-book", "self-route"):
            route = {0: "rag", 1: "rag->lc", 2: "rag[no confidence]"}[i % 3] if strategy == "self-route" else None
            add("quiz", f"ld-{i // 4}:q{i}", strategy, route, golds=(gold,), hit=(i + len(strategy)) % 3 != 0,
                index=f"ld-{i // 4}", choice=gold if (i + len(strategy)) % 3 else "A")
    routes = ["rule:lc", "rule:coa", "rule:self-route:rag", "rule:self-route:rag->lc", "rule:self-route:rag[no confidence]",
              "router:lc", "router:rag->longrag", "router[no confidence]:rag", "router[no confidence]:rag->lc"]
    for i in range(18):
        for strategy in ("rag", "lc", "auto"):
            add("notes", f"n-{i}", strategy, routes[i % len(routes)] if strategy == "auto" else None, golds=(f"answer {i}",),
                hit=(i * 7 + len(strategy)) % 4 != 0, index=f"d{i // 3}")
    add("notes", "n-18", "lc", "error", golds=("answer 18",), hit=False, error="timeout", index="d6")
    add("quiz", "ld-9:q99", "rag", "error", golds=("C",), hit=False, error="refused", index="ld-9")
    return [replace(r, em=None, f1=None, recall=None) if r.error else r for r in rows]


def test_a_ledger_of_the_old_schema_is_migrated_and_reports_as_before(tmp_path):
    from lcrag.pipeline.report.cost import reads_document
    from lcrag.pipeline.report.model import build_report
    from lcrag.pipeline.report.render import render_markdown, verdict_json
    from lcrag.pipeline.statistics.verdict import dataset_kind

    rows = legacy_run()
    path = tmp_path / "old.duckdb"
    old_ledger(path, rows)
    ledger = Ledger(path)
    migrated = ledger.rows()  # a read migrates the file first
    assert ledger.applied_migrations()[-1] == M009 and len(migrated) == len(rows)

    by_id = {r.row_id: r for r in migrated}
    for row in rows:  # each row's structure is what the code before m009 read from its text
        new = by_id[row.row_id]
        assert replace(new, **NONE) == row
        assert new.evidence_position == old_position(row)
        assert (None if new.needle_depths is None else (new.needle_depths[0], new.haystack_length)) == old_cell(row)
        assert reads_document(new.route_steps) is old_reads_document(row.route)
    for name in {r.dataset for r in rows}:
        group = [r for r in rows if r.dataset == name]
        assert dataset_kind(name, [by_id[r.row_id] for r in group]) == old_kind(group), name
    assert {name: dataset_kind(name, [r for r in migrated if r.dataset == name]) for name in ("sweep", "haystack", "quiz")} \
        == {"sweep": "free_text", "haystack": "exact", "quiz": "multiple_choice"}

    settings = dict(title="t", config={}, data_hashes={}, generated_at="2026-01-01T00:00:00+00:00")
    report = build_report(migrated, **settings)
    # the figures the code before m009 drew from ids, given its parsers as extractors
    before = build_report(migrated, position_of=old_position, niah_cell_of=old_cell, **settings)
    assert report.positions == before.positions and len(report.positions) == 2 * 3
    assert report.heatmap == before.heatmap and {(c.depth, c.length) for c in report.heatmap} == {
        (0, 500), (0, 2000), (50, 500), (50, 2000), (100, 500), (100, 2000), (10, 8000), (50, 8000)}
    assert render_markdown(report) == render_markdown(before)
    assert verdict_json(report) == verdict_json(before)
    cost = {s.dataset: s for s in report.cost}
    assert cost["notes"].strategy("auto").document_share == pytest.approx(
        sum(old_reads_document(r.route) for r in rows if r.dataset == "notes" and r.strategy == "auto" and not r.error)
        / sum(1 for r in rows if r.dataset == "notes" and r.strategy == "auto" and not r.error))


# ---------------------------------------------------------- new rows carry it


def test_new_rows_carry_the_structure_of_their_question_and_outcome():
    from lcrag.pipeline.recording import RunLabels, error_row, ledger_row
    from lcrag.pipeline.strategies import Context, Outcome, Question
    from lcrag.readers.base import Answer

    labels = RunLabels("r", "niah:cell", "h", "m", "haystack")
    question = Question("anything-at-all", "What is the password?", answer_kind="exact", needle_depths=(10, 60),
                        haystack_length=8000)
    outcome = Outcome(question, "auto", "router[no confidence]:rag->lc", Answer("bluefinch", 10, 2, 1.0, "m"),
                      Context((), 0), 10, 2, 1.0, 0.0, 2, True, route_steps=("auto", "rag", "lc"),
                      route_reason="no confidence")
    row = ledger_row(outcome, labels, golds=("bluefinch",))
    assert (row.evidence_position, row.needle_depths, row.haystack_length, row.answer_kind, row.route_steps,
            row.route_reason) == (None, (10, 60), 8000, "exact", ("auto", "rag", "lc"), "no confidence")
    plain = ledger_row(Outcome(Question("q@pos3", "?", evidence_position=0), "rag", "rag", Answer("x", 1, 1, 1.0, "m"),
                               Context((), 0), 1, 1, 1.0, 0.0), labels)
    # a plain strategy's route is its one step; the id is never read: its "@pos3" is not the slot
    assert (plain.route_steps, plain.route_reason, plain.evidence_position, plain.answer_kind) == (("rag",), None, 0, None)
    failed = error_row(question, "lc", labels, "timeout")
    assert (failed.route_steps, failed.needle_depths, failed.answer_kind) == ((), (10, 60), "exact")


def test_new_rows_round_trip_through_the_file(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    row = make_row(question_id="x", needle_depths=(30, 80), haystack_length=750, answer_kind="exact",
                   route_steps=("self-route", "rag", "lc"), route_reason=None, evidence_position=None)
    ledger.record([row])
    assert ledger.rows() == [row]


@pytest.mark.parametrize("field, value", [
    ("evidence_position", -1), ("evidence_position", True), ("evidence_position", "3"),
    ("haystack_length", -5), ("needle_depths", (10, -1)), ("needle_depths", "10"), ("needle_depths", (1.5,)),
    ("answer_kind", "essay"), ("route_steps", "rag->lc"), ("route_steps", ("rag", 1)), ("route_reason", 3),
])
def test_structure_columns_are_validated(field, value):
    with pytest.raises(ValueError, match=field):
        make_row(**{field: value})


def test_the_answer_kinds_are_the_verdicts():
    from lcrag.pipeline.statistics.verdict import KINDS

    assert set(ANSWER_KINDS) == set(KINDS)


@pytest.mark.parametrize("loader, kinds", [
    ("kv", {"exact"}), ("niah", {"exact"}), ("niah-agg", {"exact"}),
])
def test_needle_and_kv_loaders_say_their_answers_are_exact(tmp_path, shared_data, loader, kinds):
    from lcrag.pipeline.evaluation import DATASETS

    if loader == "kv":
        evalset = DATASETS["kv"](shared_data / "lost_in_the_middle" / "kv-retrieval-75_keys.jsonl.gz", limit=3)
        assert all(i.question.evidence_position is not None and not i.question.needle_depths for i in evalset.items)
    else:
        (tmp_path / "essays").mkdir()
        (tmp_path / "essays" / "a.txt").write_text(" ".join(f"Word{i} is here." for i in range(3000)))
        evalset = DATASETS[loader](tmp_path / "essays", limit=4, lengths=(300, 900))
        assert all(i.question.needle_depths and i.question.haystack_length in (300, 900) for i in evalset.items)
    assert {i.question.answer_kind for i in evalset.items} == kinds


def test_question_files_say_multiple_choice_or_free_text(tmp_path):
    import json

    from lcrag.pipeline.evaluation import DATASETS

    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "question": "Capital of France?", "answers": ["Paris"]},
        {"id": "b", "question": "Which one?", "options": ["red", "blue"], "answer": "B"},
    ]) + "\n")
    kinds = {i.question.qid: i.question.answer_kind for i in DATASETS["qa-jsonl"](path).items}
    assert kinds == {"a": "free_text", "b": "multiple_choice"}


# ------------------------------------------- no regex over ids or routes is left

PACKAGES = ("pipeline/evaluation", "pipeline/statistics", "pipeline/report")
# fragments of the legacy id and route formats: a regex naming one reads structure from text
FORBIDDEN = ("@d", "@L", "@pos", "->")
REGEX_CALLS = {"compile", "search", "match", "fullmatch", "findall", "finditer", "sub", "subn", "split"}


def regex_patterns(source: str) -> list[tuple[int, str]]:
    """(line, pattern) of every call of a ``re`` function (``re.search(...)``, or one
    imported from ``re``) whose pattern is a string: a literal, an f-string's literal
    parts, or a module-level name bound to one."""
    tree = ast.parse(source)
    constants: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    from_re = {alias.asname or alias.name for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module == "re" for alias in node.names
               if alias.name in REGEX_CALLS}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        is_re = (isinstance(func, ast.Attribute) and func.attr in REGEX_CALLS and isinstance(func.value, ast.Name)
                 and func.value.id == "re") or (isinstance(func, ast.Name) and func.id in from_re)
        if not is_re:
            continue
        pattern = node.args[0]
        if isinstance(pattern, ast.Constant) and isinstance(pattern.value, str):
            found.append((node.lineno, pattern.value))
        elif isinstance(pattern, ast.JoinedStr):
            found.append((node.lineno, "".join(v.value for v in pattern.values if isinstance(v, ast.Constant))))
        elif isinstance(pattern, ast.Name) and pattern.id in constants:
            found.append((node.lineno, constants[pattern.id]))
    return found


def forbidden(pattern: str) -> list[str]:
    return [fragment for fragment in FORBIDDEN if fragment in pattern]


def test_the_regex_finder_sees_every_form():
    source = (
        "import re\nfrom re import search as find\n"
        "_ID = r'@pos(\\d+)'\n"
        "re.compile(r'@d(\\d+)@L(\\d+)')\n"     # 4
        "re.search(_ID, qid)\n"                 # 5: a module-level pattern
        "find(f'{x}->{y}', route)\n"            # 6: imported from re, an f-string
        "re.sub(r'\\[[^\\]]*\\]', '', route)\n"  # 7: found, not forbidden
        "text.split('->')\n"                    # 8: not a regex
        "other.search('@pos')\n"                # 9: not re's
    )
    found = regex_patterns(source)
    assert [line for line, _ in found] == [4, 5, 6, 7]
    assert [forbidden(p) for _, p in found] == [["@d", "@L"], ["@pos"], ["->"], []]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_regex_reads_ids_or_routes(package):
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {pattern!r} names {', '.join(forbidden(pattern))}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, pattern in regex_patterns(path.read_text(encoding="utf-8")) if forbidden(pattern)
    ]
    assert not offenders, "read the ledger's structure columns instead of parsing ids or routes:\n" + "\n".join(offenders)
