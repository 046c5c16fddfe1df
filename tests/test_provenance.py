"""Provenance: a ledger row's ``config_hash`` is the fingerprint of the index
generation that answered, whatever config the asking command loaded (ask, the
answering library call, the query API and evaluation all agree)."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from lcrag.pipeline.config import config_from_dict
from lcrag.pipeline.evaluation import DATASETS, EvalRun, run_evaluation
from lcrag.pipeline.index.folder import read_manifest
from lcrag.pipeline.index.search import IndexReader
from lcrag.pipeline.ledger import Ledger
from lcrag.pipeline.recording import RunLabels, answer_and_record
from lcrag.pipeline.session import Session
from lcrag.pipeline.strategies import Question, Toolkit
from lcrag.readers.fake import FakeReader
from tests.service_support import AUTH, FAKE, build_index, make_app

# The command's config: default index settings (FAKE too), unlike the index below.
COMMAND = config_from_dict({"reader": {"backend": "fake"}})


@pytest.fixture(scope="module")
def index(tmp_path_factory, encoder):
    """Built with non-default chunking and units: its fingerprint is not the default's."""
    return build_index(tmp_path_factory.mktemp("provenance"), encoder)


@pytest.fixture(scope="module")
def index_fingerprint(index):
    fingerprint = read_manifest(index).fingerprint
    assert fingerprint != COMMAND.index_fingerprint() == FAKE.index_fingerprint()
    return fingerprint


def test_index_reader_exposes_its_manifest_fingerprint(index, index_fingerprint, encoder):
    with IndexReader(index, lambda _: encoder) as corpus:
        assert corpus.fingerprint == index_fingerprint
        labels = RunLabels.for_corpus(corpus, "r", "m", "ds")
        assert (labels.index_id, labels.config_hash, labels.dataset) == (corpus.index_id, index_fingerprint, "ds")
        assert RunLabels.for_corpus(corpus, "r", "m", index_id="named").index_id == "named"


def test_answer_and_record_with_another_config_records_the_index_fingerprint(index, index_fingerprint, encoder, tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    with IndexReader(index, lambda _: encoder) as corpus:
        tools = Toolkit(corpus, FakeReader(), COMMAND.strategies, 400)
        labels = RunLabels.for_corpus(corpus, "lib", "fake-reader")
        answer_and_record([Question("q", "Why do cats purr?")], ["rag", "lc"], tools, ledger, labels)
    rows = ledger.rows("lib")
    assert len(rows) == 2 and {r.config_hash for r in rows} == {index_fingerprint}


def test_cli_ask_with_another_config_records_the_index_fingerprint(index, index_fingerprint, tmp_path):
    from lcrag.app.cli.app import app

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"reader": {"backend": "fake"}}))
    ledger = tmp_path / "ledger.duckdb"
    result = CliRunner().invoke(app, ["ask", "Why do cats purr?", "--index", str(index), "--strategy", "rag,lc",
                                      "--config", str(config), "--ledger", str(ledger), "--run-id", "cli", "--json"])
    assert result.exit_code == 0, result.output
    rows = Ledger(ledger).rows("cli")
    assert len(rows) == 2 and {r.config_hash for r in rows} == {index_fingerprint}


def test_cli_ask_budget_caps_the_context_and_refuses_more_than_the_window(index, tmp_path):
    from lcrag.app.cli.app import app

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"reader": {"backend": "fake", "max_model_len": 2048}}))
    ledger = tmp_path / "ledger.duckdb"
    base = ["ask", "Why do cats purr?", "--index", str(index), "--strategy", "lc", "--config", str(config),
            "--ledger", str(ledger), "--json"]
    wide = CliRunner().invoke(app, [*base, "--run-id", "wide"])
    narrow = CliRunner().invoke(app, [*base, "--run-id", "narrow", "--budget", "64"])
    assert wide.exit_code == 0 and narrow.exit_code == 0, wide.output + narrow.output
    (wide_row,), (narrow_row,) = Ledger(ledger).rows("wide"), Ledger(ledger).rows("narrow")
    assert narrow_row.context_tokens <= 64 < wide_row.context_tokens
    refused = CliRunner().invoke(app, [*base, "--budget", "4096"])
    assert refused.exit_code == 2 and "over what the reader's window leaves" in refused.output


def test_api_with_another_config_records_the_generation_fingerprint(index, index_fingerprint, encoder, tmp_path):
    from lcrag.app.service.server import background_server
    from lcrag.pipeline.index.live import LiveIndex

    ledger = tmp_path / "ledger.duckdb"
    with (
        LiveIndex(index, lambda config: encoder) as live,
        background_server(make_app(live, FakeReader(), ledger, COMMAND)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        response = client.post("/v1/query", json={"question": "Why do cats purr?", "strategy": "rag"}, headers=AUTH)
    assert response.status_code == 200, response.text
    (row,) = Ledger(ledger).query("SELECT config_hash FROM ledger WHERE row_id = ?", [response.json()["ledger_row_id"]])
    assert row["config_hash"] == index_fingerprint


def test_eval_over_an_existing_index_records_its_fingerprint(index, index_fingerprint, encoder, tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": q, "answers": ["x"]}) + "\n"
                            for i, q in enumerate(["Why do cats purr?", "Which volcano in Sicily is active?"])))
    evalset = DATASETS["qa-jsonl"](path)
    ledger = Ledger(tmp_path / "ledger.duckdb")
    run = EvalRun("ev", "qa-jsonl", ("rag",), tmp_path / "work", existing_index=index)
    assert run_evaluation(evalset, run, Session(COMMAND, encoder=encoder, reader=FakeReader(), attention=None, ledger=ledger), budget=400) == 2
    rows = ledger.rows("ev")
    assert len(rows) == 2 and {r.config_hash for r in rows} == {index_fingerprint}


def test_eval_indexes_it_builds_carry_their_own_fingerprint(encoder, tmp_path):
    from tests.test_evaluation import write_hotpot

    config = config_from_dict({"chunking": {"target_tokens": 16}})
    evalset = DATASETS["hotpotqa"](write_hotpot(tmp_path), limit=1)
    ledger = Ledger(tmp_path / "ledger.duckdb")
    session = Session(config, encoder=encoder, reader=FakeReader(), attention=None, ledger=ledger)
    run_evaluation(evalset, EvalRun("built", "hotpotqa", ("rag",), tmp_path / "work"), session, budget=400)
    manifests = [read_manifest(folder).fingerprint for folder in (tmp_path / "work" / "indexes").iterdir()]
    (row,) = ledger.rows("built")
    assert row.config_hash in manifests and row.index_id.startswith("hotpotqa:")


# ---------------------------------------------------------------- the oracle in `lcrag ask`


def _ask(index, tmp_path, *extra):
    from lcrag.app.cli.app import app

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"reader": {"backend": "fake"}}))
    return CliRunner().invoke(app, ["ask", "Why do cats purr?", "--index", str(index), "--config", str(config),
                                    "--ledger", str(tmp_path / "ledger.duckdb"), "--run-id", "cli", "--json", *extra])


def test_cli_ask_oracle_reads_only_the_evidence_given_and_records_it(index, tmp_path):
    passage = "Cats purr when content and also to soothe themselves."
    result = _ask(index, tmp_path, "--strategy", "rag,oracle", "--evidence", passage, "--evidence-doc", "volcanoes.txt")
    assert result.exit_code == 0, result.output
    outcomes = {o["strategy"]: o for o in json.loads(result.output)}
    cited = [(c["doc_id"], c["text"][:20]) for c in outcomes["oracle"]["citations"]]
    assert cited[0] == ("", passage[:20]) and [d for d, _ in cited[1:]] == ["volcanoes.txt"]
    assert outcomes["rag"]["citations"] != outcomes["oracle"]["citations"]
    rows = {r.strategy: r for r in Ledger(tmp_path / "ledger.duckdb").rows("cli")}
    assert set(rows) == {"rag", "oracle"} and rows["oracle"].error is None
    assert rows["oracle"].context_tokens == outcomes["oracle"]["context_tokens"] > 0


@pytest.mark.parametrize("extra, message", [
    (("--strategy", "oracle"), "add --evidence PASSAGE or --evidence-doc DOC_ID"),
    (("--strategy", "rag,oracle"), "add --evidence PASSAGE or --evidence-doc DOC_ID"),
    (("--strategy", "oracle", "--evidence", "  "), "an empty one names no evidence"),
    (("--strategy", "oracle", "--evidence-doc", "missing.md"), "names document 'missing.md', which is not in the index"),
])
def test_cli_ask_oracle_without_usable_evidence_is_one_clear_line_and_records_nothing(index, tmp_path, extra, message):
    result = _ask(index, tmp_path, *extra)
    assert result.exit_code != 0 and message in " ".join(result.output.split())
    assert not (tmp_path / "ledger.duckdb").exists() or Ledger(tmp_path / "ledger.duckdb").rows("cli") == []
