"""The report leads with a verdict per data set and compares like with like: every
comparison uses the questions all compared strategies answered, a strategy run on one
data set only is never pooled against the others, and with the closed-book control
the verdict rests on the questions the model could not answer unaided."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from lcrag.pipeline.cli.app import app
from lcrag.pipeline.ledger import Ledger
from lcrag.pipeline.report.model import CLOSED_BOOK_MISSES, build_report, subset_name
from lcrag.pipeline.report.render import findings, render_html, render_markdown
from tests.helpers import make_row

TOKENS = {"rag": 500, "lc": 4000, "attention-sort": 600, "closed-book": 30}


def rows_for(dataset: str, strategy: str, hits: list[float], start: int = 0) -> list:
    return [
        make_row(question_id=f"{dataset}-{start + i}", strategy=strategy, route=strategy, dataset=dataset,
                 em=hit, f1=hit, recall=hit, prompt_tokens=TOKENS[strategy])
        for i, hit in enumerate(hits)
    ]


def two_datasets() -> list:
    """On hotpot rag, lc and attention-sort (run there only) give the same answers, so the
    cheapest, rag, is the verdict; squad has rag and lc only, lc is right where rag is wrong,
    and one question rag never answered."""
    hot = [1.0, 0.0] * 20
    rows = rows_for("hotpot", "rag", hot) + rows_for("hotpot", "lc", hot) + rows_for("hotpot", "attention-sort", hot)
    rows += rows_for("squad", "rag", [0.0] * 30) + rows_for("squad", "lc", [1.0] * 31)
    return rows


def test_a_strategy_run_on_one_data_set_is_never_pooled_against_the_others():
    report = build_report(two_datasets(), title="t", config={}, data_hashes={}, generated_at="now")
    assert {s.strategy for s in report.overall} == {"rag", "lc"}
    assert report.overall_left_out == ("attention-sort",)
    lc = next(s for s in report.overall if s.strategy == "lc")
    assert lc.n == 70  # squad's question 30 was answered by lc only: left out of every mean there
    squad = next(t for t in report.tables if t.dataset == "squad")
    assert squad.dropped == 1 and {s.strategy: s.n for s in squad.rows} == {"rag": 30, "lc": 30}
    assert "attention-sort" in render_markdown(report)  # shown in its own data set


def test_each_data_set_gets_its_verdict_on_its_own_metric():
    report = build_report(two_datasets(), title="t", config={}, data_hashes={}, generated_at="now")
    by_name = {line.dataset: line for line in report.verdicts}
    assert by_name["hotpot"].verdict.status == "best_is_cheapest" and by_name["hotpot"].verdict.chosen == "rag"
    assert by_name["squad"].verdict.status == "use_best" and by_name["squad"].verdict.chosen == "lc"
    assert by_name["hotpot"].metric == "answer_recall" and by_name["hotpot"].secondary_metric == "f1"
    markdown = render_markdown(report)
    assert markdown.index("## Verdict") < markdown.index("## Summary")
    assert "hotpot (answer recall, F1 beside it; on all questions): use rag" in markdown
    assert render_html(report).index('id="verdict"') < render_html(report).index('id="summary"')


def test_with_the_closed_book_control_the_verdict_rests_on_the_questions_it_missed():
    # closed-book knows the first 10 questions; on the other 30 only lc reads the answer
    rows = rows_for("hotpot", "closed-book", [1.0] * 10 + [0.0] * 30)
    rows += rows_for("hotpot", "rag", [1.0] * 10 + [0.0] * 30) + rows_for("hotpot", "lc", [1.0] * 40)
    report = build_report(rows, title="t", config={}, data_hashes={}, generated_at="now")
    (line,) = report.verdicts
    assert line.basis == CLOSED_BOOK_MISSES and line.verdict.n_questions == 30 and line.verdict.chosen == "lc"
    assert line.other[0][0] == "all questions" and line.other[0][1].n_questions == 40
    assert subset_name("hotpot") in report.datasets
    assert "closed-book" not in (line.verdict.means or {})  # a control, never a candidate
    assert "strategies on 1 dataset(s)." in findings(report)[0]  # the misses are a view of it, not a second set


def test_lcrag_report_json_prints_the_verdicts(tmp_path):
    ledger = Ledger(tmp_path / "l.duckdb")
    ledger.record(two_datasets())
    result = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "rep"), "--ledger", str(ledger.path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    verdicts = {v["dataset"]: v for v in data["verdicts"]}
    assert verdicts["hotpot"]["verdicts"][0]["use"] == "rag" and verdicts["hotpot"]["margin"] == 0.05
    (against,) = verdicts["squad"]["verdicts"][0]["comparisons"]
    assert against["strategy"] == "rag" and against["outcome"] == "inferior" and against["difference"]["n"] == 30
    bad = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "rep"), "--ledger", str(ledger.path), "--margin", "2"])
    assert bad.exit_code == 2 and "--margin must be between 0 and 1" in bad.output
