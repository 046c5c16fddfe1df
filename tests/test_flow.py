"""The ingestion flow under Prefect's test harness (one per session): it builds
the same index as the CLI path and is incremental on a second run."""

from __future__ import annotations

import json


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


def test_ingest_flow_with_generations_publishes_a_live_generation(prefect_harness, topic_corpus, tmp_path):
    from lcrag.flows.ingest import ingest_flow
    from lcrag.pipeline.index.generations import live_name

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
    assert first == {"run_id": "flow-run", "questions": 2, "answered": 4}
    assert Ledger(ledger).count("flow-run") == 4
    assert evaluate_flow(**kwargs)["answered"] == 0

    from lcrag.flows.report import report_flow

    html, markdown = report_flow(str(tmp_path / "report"), run_ids=("flow-run",), ledger=str(ledger))
    import re

    assert "rag" in open(html).read()
    assert re.search(r"^\| (\*\*)?lc(\*\*)? \|", open(markdown).read(), re.M)  # a table row for lc
