"""The report leads with a verdict per data set and compares like with like: every
comparison uses the questions all compared strategies answered, a strategy run on one
data set only is never pooled against the others, with the closed-book control the
verdict rests on the questions the model could not answer unaided (free text only),
answerable and unanswerable questions are decided apart, and ``report --json`` gives
the fields a script needs."""

from __future__ import annotations

import dataclasses
import json

from typer.testing import CliRunner

from lcrag.app.cli.app import app
from lcrag.pipeline.ledger import Ledger
from lcrag.pipeline.report.model import ALL_QUESTIONS, CLOSED_BOOK_MISSES, build_report, subset_name
from lcrag.pipeline.report.render import findings, render_html, render_markdown
from tests.helpers import make_row

TOKENS = {"rag": 500, "lc": 4000, "attention-sort": 600, "closed-book": 30, "op-rag": 500}


def rows_for(dataset: str, strategy: str, hits: list[float], start: int = 0, **extra) -> list:
    return [
        make_row(question_id=f"{dataset}-{start + i}", strategy=strategy, route=strategy, dataset=dataset,
                 answer=f"{strategy} says {hit}", em=hit, f1=hit, recall=hit, prompt_tokens=TOKENS[strategy], **extra)
        for i, hit in enumerate(hits)
    ]


def two_datasets(n: int = 120) -> list:
    """On hotpot rag, lc and attention-sort (run there only) score alike on every question
    in different words, so the cheapest, rag, is shown non-inferior to both costlier ones;
    squad has rag and lc only, lc is right where rag is wrong, and one question rag never
    answered."""
    hot = [1.0, 0.0] * (n // 2)
    rows = rows_for("hotpot", "rag", hot) + rows_for("hotpot", "lc", hot) + rows_for("hotpot", "attention-sort", hot)
    rows += rows_for("squad", "rag", [0.0] * 30) + rows_for("squad", "lc", [1.0] * 31)
    return rows


def test_a_strategy_run_on_one_data_set_is_never_pooled_against_the_others():
    report = build_report(two_datasets(), title="t", config={}, data_hashes={}, generated_at="now")
    assert {s.strategy for s in report.overall} == {"rag", "lc"}
    assert report.overall_left_out == ("attention-sort",)
    lc = next(s for s in report.overall if s.strategy == "lc")
    assert lc.n == 150  # squad's question 30 was answered by lc only: left out of every mean there
    squad = next(t for t in report.tables if t.dataset == "squad")
    assert squad.dropped == 1 and {s.strategy: s.n for s in squad.rows} == {"rag": 30, "lc": 30}
    assert "attention-sort" in render_markdown(report)  # shown in its own data set


def test_each_data_set_gets_its_verdict_on_its_own_metric():
    report = build_report(two_datasets(), title="t", config={}, data_hashes={}, generated_at="now")
    by_name = {line.dataset: line for line in report.verdicts}
    hotpot, squad = by_name["hotpot"].verdict, by_name["squad"].verdict
    assert hotpot.status == "resolved" and hotpot.basis == "non-inferior" and hotpot.use == ("rag",)
    assert squad.status == "resolved" and squad.basis == "costlier-better" and squad.use == ("lc",)
    assert by_name["hotpot"].metric == "answer_recall" and by_name["hotpot"].secondary_metric == "f1"
    markdown = render_markdown(report)
    assert markdown.index("## Verdict") < markdown.index("## Summary")
    assert "hotpot (answer recall, F1 beside it; on all questions): use rag" in markdown
    assert "non-inferior to every costlier one" in markdown  # the rule is stated where the verdict is
    assert render_html(report).index('id="verdict"') < render_html(report).index('id="summary"')


def test_five_questions_are_never_called_resolved():
    """The demo's case: a handful of questions, the cheap strategies ahead by a question."""
    rows = rows_for("hotpot", "rag", [1, 0, 0, 1, 0]) + rows_for("hotpot", "op-rag", [1, 0, 0, 1, 0])
    rows += rows_for("hotpot", "lc", [1, 0, 1, 0, 0])
    (line,) = build_report(rows, title="t", config={}, data_hashes={}, generated_at="now").verdicts
    assert line.verdict.status == "unresolved" and line.verdict.use == ()
    assert line.verdict.questions_needed is not None and line.verdict.questions_needed > 5
    assert f"about {line.verdict.questions_needed:,} questions would tell" in line.sentence


def test_with_the_closed_book_control_the_verdict_rests_on_the_questions_it_missed():
    # closed-book knows the first 10 questions; on the other 30 only lc reads the answer
    rows = rows_for("hotpot", "closed-book", [1.0] * 10 + [0.0] * 30)
    rows += rows_for("hotpot", "rag", [1.0] * 10 + [0.0] * 30) + rows_for("hotpot", "lc", [1.0] * 40)
    report = build_report(rows, title="t", config={}, data_hashes={}, generated_at="now")
    (line,) = report.verdicts
    assert line.basis == CLOSED_BOOK_MISSES and line.verdict.n_questions == 30 and line.verdict.use == ("lc",)
    assert line.other[0][0] == ALL_QUESTIONS and line.other[0][1].n_questions == 40
    assert subset_name("hotpot") in report.datasets
    assert "closed-book" not in (line.verdict.means or {})  # a control, never a contender
    assert "strategies on 1 dataset(s)." in findings(report)[0]  # the misses are a view of it, not a second set
    # the margin comes from lc's lead over closed-book on all 40 questions: 30/40 lead, lower bound below it
    margin = line.verdict.margin
    assert margin.basis == "control" and 0 < margin.lead_low < 0.75 and margin.absolute == 0.05


def mc_rows(strategy: str, letters: str, golds: str) -> list:
    return [make_row(question_id=f"tpo-{i}", strategy=strategy, route=strategy, dataset="longdoc/tpo", answer=f"({c})",
                     choice=c, gold_answers=(g,), em=float(c == g), prompt_tokens=TOKENS[strategy])
            for i, (c, g) in enumerate(zip(letters, golds))]


def test_multiple_choice_with_a_guessing_closed_book_keeps_all_questions():
    golds = "ABCD" * 10
    rows = mc_rows("closed-book", "A" * 40, golds)  # always "A": its hits are guesses
    rows += mc_rows("rag", "ABCA" * 10, golds) + mc_rows("lc", "ABCD" * 10, golds)
    report = build_report(rows, title="t", config={}, data_hashes={}, generated_at="now")
    (line,) = report.verdicts
    assert line.basis == ALL_QUESTIONS and not line.other
    assert line.verdict.margin.basis == "letter-bias"  # lc's lead over chance with its own letter bias
    assert report.letters and report.letters[0][0] == "longdoc/tpo"
    assert "Multiple choice: letter bias" in render_markdown(report)


def test_answerable_and_unanswerable_questions_are_decided_apart():
    answerable = list(rows_for("squad2", "rag", [1.0] * 6, answerable=True))
    answerable += rows_for("squad2", "lc", [1.0] * 6, answerable=True)
    unanswerable = rows_for("squad2", "rag", [0.0] * 4, start=6, answerable=False, abstained=False)
    unanswerable += rows_for("squad2", "lc", [1.0] * 4, start=6, answerable=False, abstained=True)
    report = build_report(answerable + unanswerable, title="t", config={}, data_hashes={}, generated_at="now")
    lines = {line.dataset: line for line in report.verdicts}
    assert set(lines) == {"squad2 · answerable", "squad2 · unanswerable"}
    assert lines["squad2 · unanswerable"].metric == "abstention"
    assert lines["squad2 · unanswerable"].verdict.means == {"lc": 1.0, "rag": 0.0}


def test_lcrag_report_json_prints_the_verdicts(tmp_path):
    ledger = Ledger(tmp_path / "l.duckdb")
    ledger.record(two_datasets())
    for args in (["--out", str(tmp_path / "rep"), "--json"], ["--json"]):  # with files, and the verdicts alone
        result = CliRunner().invoke(app, ["report", "--ledger", str(ledger.path), *args])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        verdicts = {v["dataset"]: v for v in data["verdicts"]}
        hotpot, squad = verdicts["hotpot"], verdicts["squad"]
        assert hotpot["use"] == ["rag"] and hotpot["status"] == "resolved" and hotpot["resolved"] is True
        assert hotpot["reference"] == "lc" and hotpot["margin"]["absolute"] == 0.05
        assert hotpot["margin"]["basis"] == "absolute" and "no no-context control" in hotpot["margin"]["note"]
        assert "intersection-union" in hotpot["test"]["name"] and hotpot["questions_needed"] is None
        assert hotpot["identical"] == [] and hotpot["tied"] == [["attention-sort", "lc", "rag"]]
        (against,) = squad["verdicts"][0]["comparisons"]
        assert against["candidate"] == "rag" and against["outcome"] == "inferior" and against["difference"]["n"] == 30
    assert (tmp_path / "rep" / "report.md").exists()
    bad = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "rep"), "--ledger", str(ledger.path), "--margin", "2"])
    assert bad.exit_code == 2 and "--margin must be between 0 and 1" in bad.output
    nowhere = CliRunner().invoke(app, ["report", "--ledger", str(ledger.path)])
    assert nowhere.exit_code == 2 and "--out FOLDER" in nowhere.output


def test_verdicts_of_different_readers_are_never_pooled():
    rows = [dataclasses.replace(r, model="small") for r in rows_for("hotpot", "rag", [1.0, 0.0] * 5)
            + rows_for("hotpot", "lc", [1.0, 0.0] * 5)]
    rows += [dataclasses.replace(r, model="large") for r in rows_for("hotpot", "rag", [0.0] * 10)
             + rows_for("hotpot", "lc", [1.0] * 10)]
    report = build_report(rows, title="t", config={}, data_hashes={}, generated_at="now")
    lines = {line.dataset: line for line in report.verdicts}
    assert set(lines) == {"hotpot · large", "hotpot · small"}  # side by side, one per reader
    assert lines["hotpot · large"].verdict.means == {"lc": 1.0, "rag": 0.0}
    assert report.readers == ("large", "small") and "reader: large, small" in render_markdown(report)
