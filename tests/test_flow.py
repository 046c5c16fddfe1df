"""The ingestion flow under Prefect's test harness (one per session): it builds
the same index as the CLI path and is incremental on a second run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


@pytest.mark.slow  # a Prefect server
def test_ingest_flow_builds_then_skips_unchanged(prefect_harness, topic_corpus, tmp_path):
    from lcrag.flows.ingest import ingest_flow

    config = tmp_path / "config.yaml"
    config.write_text("chunking:\n  target_tokens: 24\nunits:\n  max_tokens: 128\n")
    index = tmp_path / "index"
    state = ingest_flow(str(topic_corpus), str(index), config_file=str(config), return_state=True)
    assert state.is_completed(), state
    first = state.result()
    assert first["documents"] == 6 and first["embedded_units"] == first["units"] >= 1
    assert {path for path, _ in first["skipped"]} == {"broken.pdf", "blob.txt", "empty.md", "latin1.txt"}
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["chunks"] == first["chunks"]

    second = ingest_flow(str(topic_corpus), str(index), config_file=str(config))
    assert second["embedded_units"] == 0 and second["generation"] == first["generation"]


@pytest.mark.slow  # a Prefect server
def test_ingest_flow_with_generations_publishes_a_live_generation(prefect_harness, topic_corpus, tmp_path):
    from lcrag.flows.ingest import ingest_flow
    from lcrag.pipeline.index.folder import live_name

    config = tmp_path / "config.yaml"
    config.write_text("chunking:\n  target_tokens: 24\nunits:\n  max_tokens: 128\n")
    root = tmp_path / "generational"
    first = ingest_flow(str(topic_corpus), str(root), config_file=str(config), generations=True)
    assert first["live_generation"] == live_name(root)
    assert (root / "generations" / first["live_generation"] / "manifest.json").is_file()
    (topic_corpus / "owls.txt").write_text("Owls hunt at night and turn their heads almost all the way round.\n")
    second = ingest_flow(str(topic_corpus), str(root), config_file=str(config))  # generations implied
    assert second["live_generation"] == live_name(root) != first["live_generation"]
    assert second["documents"] == first["documents"] + 1


def test_flow_tasks_retry_the_resumable_steps():
    from lcrag.flows.ingest import embed_task, load_task, publish_task

    assert embed_task.retries == 2 and publish_task.retries == 2
    assert not load_task.retries  # a bad file is reported, never retried


@pytest.mark.slow  # a Prefect server
def test_evaluate_flow_records_every_pair_and_resumes(prefect_harness, tmp_path):
    """The flow's wiring (data set -> runner -> ledger) with the fake reader backend;
    the real reader is exercised by tests/test_reader_integration.py."""
    from lcrag.flows.evaluate import evaluate_flow
    from lcrag.pipeline.ledger import Ledger
    from tests.test_evaluation import write_hotpot

    config = tmp_path / "config.yaml"
    config.write_text("reader:\n  backend: fake\nchunking:\n  target_tokens: 16\n")
    ledger = tmp_path / "eval.duckdb"
    kwargs = dict(dataset="hotpotqa", path=str(write_hotpot(tmp_path)), strategies="rag,lc", limit=2, run_id="flow-run",
                  config_file=str(config), ledger=str(ledger), work=str(tmp_path / "work"))
    first = evaluate_flow(**kwargs)
    assert first == {"run_id": "flow-run", "questions": 2, "answered": 4, "looks": []}
    assert Ledger(ledger).count("flow-run") == 4
    assert evaluate_flow(**kwargs)["answered"] == 0
    # lcrag eval's sequential option reaches the flow: one look per round of one question
    rounds = evaluate_flow(**{**kwargs, "run_id": "flow-rounds", "until_decided": True, "round_size": 1})
    assert 1 <= len(rounds["looks"]) <= 2 and rounds["answered"] == 2 * len(rounds["looks"])
    assert all(isinstance(line, str) and line for line in rounds["looks"])

    from lcrag.flows.report import report_flow

    html, markdown = report_flow(str(tmp_path / "report"), run_ids=("flow-run",), ledger=str(ledger))

    assert "rag" in Path(html).read_text()
    assert re.search(r"^\| (\*\*)?lc(\*\*)? \|", Path(markdown).read_text(), re.M)  # a table row for lc
    assert_report_shows_rows(Path(html).read_text(), Path(markdown).read_text(), Ledger(ledger).rows("flow-run"), "flow-run")


def _mean_cell(values) -> str:
    """A quality cell's leading point estimate as the report prints it, or its dash."""
    scored = [v for v in values if v is not None]
    return f"{sum(scored) / len(scored):.3f}" if scored else "–"


def assert_report_shows_rows(html: str, markdown: str, rows, run_id: str) -> None:
    """The written report holds the ledger rows' numbers, computed here from the rows
    themselves: per strategy its count, mean EM/F1, tokens, latency and errors."""
    assert rows, "the ledger holds no rows to check the report against"
    by_strategy: dict[str, list] = {}
    for row in rows:
        by_strategy.setdefault(row.strategy, []).append(row)
    assert set(by_strategy) == {"rag", "lc"}
    readers = ", ".join(sorted({r.model for r in rows}))
    assert f"runs: {run_id} · reader: {readers} · {len(rows)} ledger rows" in markdown
    assert f"{len(rows)} answers from {len(by_strategy)} strategies on 1 dataset(s)." in markdown
    pooled = markdown.split("### All datasets pooled", 1)[1].split("## Results by dataset", 1)[0]
    table = {cells[0].strip("*"): cells for cells in
             ([c.strip() for c in line.strip().strip("|").split("|")] for line in pooled.splitlines() if line.startswith("| "))}
    assert set(table) == {"Strategy", *by_strategy}  # the header and one row per strategy, nothing else
    for strategy, group in by_strategy.items():
        n = len(group)
        prompt = f"{sum(r.prompt_tokens for r in group) / n:,.0f}"
        completion = f"{sum(r.completion_tokens for r in group) / n:,.1f}"
        latency = f"{sum(r.retrieval_ms + r.reading_ms for r in group) / n / 1000:.2f}"
        errors = str(sum(1 for r in group if r.error))
        cells = table[strategy]
        assert cells[1] == str(n) == "2"
        assert cells[2].startswith(_mean_cell(r.em for r in group)), (strategy, cells)
        assert cells[3].startswith(_mean_cell(r.f1 for r in group)), (strategy, cells)
        assert (cells[5], cells[6], cells[7], cells[10]) == (prompt, completion, latency, errors), (strategy, cells)
        # the HTML table carries the same row: name, count, then the same cost cells
        row_html = re.search(rf"<tr[^>]*><td>{strategy}</td><td>{n}</td>(.*?)</tr>", html)
        assert row_html, f"no HTML table row for {strategy}"
        assert f"<td>{prompt}</td><td>{completion}</td><td>{latency}</td>" in row_html.group(1)
        assert row_html.group(1).endswith(f"<td>{errors}</td>")
