"""One orchestration path: the Prefect flows run the same evaluation and report
functions as the command line, so a retrieval-only (beir) run reports through the
flow exactly as it does through ``lcrag eval`` + ``lcrag report``."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcrag.pipeline.evaluation.items import EvalDataError
from lcrag.pipeline.evaluation.job import EvalRequest
from tests.test_evaluation import write_beir


@pytest.mark.slow  # a Prefect server
def test_a_beir_only_run_is_evaluated_and_reported_through_the_flows(prefect_harness, tmp_path):
    from lcrag.flows.evaluate import evaluate_flow
    from lcrag.flows.report import report_flow
    from lcrag.pipeline.ledger import Ledger

    folder = write_beir(tmp_path / "tiny")
    ledger = tmp_path / "l.duckdb"
    outcome = evaluate_flow(dataset="beir", path=str(folder), strategies="bm25", k=10, run_id="beir-flow",
                            ledger=str(ledger), work=str(tmp_path / "w"))
    assert outcome == {"run_id": "beir-flow", "questions": 2, "answered": 2, "looks": []}
    assert len(Ledger(ledger).retrieval_rows("beir-flow")) == 2
    html, markdown = report_flow(str(tmp_path / "rep"), run_ids=("beir-flow",), ledger=str(ledger))
    text = Path(markdown).read_text()
    assert "## Retrieval (judged by relevance labels)" in text and "| beir/tiny | bm25/doc | 2 |" in text
    assert "bm25/doc" in Path(html).read_text()


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(dataset="trivia:x.json"), "NAME one of hotpotqa"),
        (dict(dataset="hotpotqa"), "NAME:PATH"),
        (dict(dataset="squad2:{here}", positions=(0,)), "--positions applies to --dataset hotpotqa only"),
        (dict(dataset="beir:{here}", k=5), "--k must be at least 10"),
        (dict(dataset="hotpotqa:{here}", limit=0), "--limit must be at least 1"),
        (dict(dataset="hotpotqa:{here}/missing.json"), "does not exist"),
    ],
)
def test_an_evaluation_request_names_what_is_wrong(fields, message, tmp_path):
    fields = {key: value.format(here=tmp_path) if isinstance(value, str) else value for key, value in fields.items()}
    with pytest.raises(EvalDataError, match=message):
        EvalRequest(**fields)


def test_a_report_of_nothing_is_a_domain_error(tmp_path):
    from lcrag.core.errors import LcragError
    from lcrag.pipeline.config import Config
    from lcrag.pipeline.report.job import write_comparison_report

    with pytest.raises(LcragError, match="no ledger at"):
        write_comparison_report(tmp_path / "none.duckdb", (), tmp_path / "out", Config())
