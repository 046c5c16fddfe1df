"""The query API over real HTTP: a uvicorn server on 127.0.0.1 serving a real
small index, the deterministic fake reader (one test uses the real vLLM
reader), a DuckDB ledger file, and httpx as the client."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from typer.testing import CliRunner

from lcrag.app.service.auth import API_KEY_ENV, resolve_api_key
from lcrag.app.service.server import background_server
from lcrag.pipeline.config import ConfigError, ServiceConfig, config_from_dict
from lcrag.pipeline.ledger import Ledger
from lcrag.pipeline.strategies import REGISTRY
from lcrag.readers.fake import FakeReader
from tests.conftest import CountingReader
from tests.service_support import (
    AUTH,
    KEY,
    BlockingReader,
    BrokenReader,
    DownReader,
    build_index,
    make_app,
)

VOLCANO = "Which volcano in Sicily is very active?"
PROTECTED = [
    ("POST", "/v1/query", {"question": VOLCANO}),
    ("GET", "/v1/strategies", None),
    ("GET", "/v1/runs", None),
    ("GET", "/v1/no-such-route", None),
]


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory):
    return tmp_path_factory.mktemp("ledger") / "ledger.duckdb"


@pytest.fixture(scope="module")
def api(live, ledger_path):
    with background_server(make_app(live, FakeReader(), ledger_path)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def ask(client, **body):
    return client.post("/v1/query", json=body, headers=AUTH)


# ---------------------------------------------------------------- the key


def test_health_needs_no_key_and_reports_generation_and_reader(api, live):
    response = api.get("/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["reader_reachable"] is True
    assert body["generation"] == live.current_name() and body["generation"].startswith("static-")
    assert body["model"] == "fake-reader"
    assert body["in_flight"] == 0 and body["queued"] == 0


@pytest.mark.parametrize("method, path, body", PROTECTED, ids=[p for _, p, _ in PROTECTED])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"X-API-Key": "wrong-key"},
        {"Authorization": f"Basic {KEY}"},  # the key, but not as a bearer token
        {"Authorization": f"Bearer {KEY}x"},
        {"Authorization": "Bearer"},
    ],
    ids=["none", "wrong-bearer", "wrong-x-api-key", "basic-scheme", "key-prefix", "empty-bearer"],
)
def test_protected_routes_refuse_missing_or_wrong_key(api, method, path, body, headers):
    response = api.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "missing or wrong API key"}
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_key_is_checked_before_the_body_is_read(api):
    response = api.post("/v1/query", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 401
    assert response.json() == {"error": "missing or wrong API key"}


@pytest.mark.parametrize("headers", [AUTH, {"X-API-Key": KEY}, {"authorization": f"bearer {KEY}"}], ids=["bearer", "x-api-key", "lowercase"])
def test_either_header_with_the_key_is_accepted(api, headers):
    assert api.get("/v1/strategies", headers=headers).status_code == 200


def test_schema_and_docs_are_open_and_declare_both_key_headers(api):
    schema = api.get("/openapi.json")
    assert schema.status_code == 200
    schemes = schema.json()["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    assert api.get("/docs").status_code == 200


def test_api_key_comes_from_environment_first_and_is_required():
    assert resolve_api_key(ServiceConfig(api_key="from-file"), {API_KEY_ENV: "from-env"}) == "from-env"
    assert resolve_api_key(ServiceConfig(api_key="from-file"), {}) == "from-file"
    with pytest.raises(ConfigError) as err:
        resolve_api_key(ServiceConfig(), {API_KEY_ENV: "  "})
    assert API_KEY_ENV in str(err.value) and "service.api_key" in str(err.value)


def test_serve_refuses_to_start_without_a_key(tmp_path):
    from lcrag.app.cli.app import app

    env = {k: v for k, v in os.environ.items() if k != API_KEY_ENV}
    result = CliRunner().invoke(app, ["serve", "--index", str(tmp_path)], env=env)
    assert result.exit_code == 2
    assert API_KEY_ENV in result.output and "service.api_key" in result.output


def test_config_dump_leaves_the_key_out():
    config = config_from_dict({"service": {"api_key": "hush"}})
    assert config.service.api_key == "hush"
    assert config.to_dict()["service"]["api_key"] == ""
    assert "hush" not in repr(config)


# --------------------------------------------------------------- answering


def test_query_answers_with_citations_into_the_corpus_and_one_ledger_row(api, live, ledger_path):
    response = ask(api, question=VOLCANO, strategy="rag", k=3)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] and body["strategy"] == "rag" and body["route"] == "rag"
    assert 1 <= len(body["citations"]) <= 3
    assert body["citations"][0]["doc_id"] == "volcanoes.txt"
    with live.acquire() as generation:
        docs = generation.corpus.documents([c["doc_id"] for c in body["citations"]])
    for citation in body["citations"]:
        assert docs[citation["doc_id"]].text[citation["start"] : citation["end"]] == citation["text"]
    assert body["tokens"]["context"] > 0 and body["tokens"]["prompt"] > body["tokens"]["context"]
    assert body["timings_ms"]["total"] >= body["timings_ms"]["retrieval"] >= 0
    assert body["generation"] == live.current_name()
    assert body["run_id"] == time.strftime("api-%Y%m%d", time.gmtime())

    rows = Ledger(ledger_path).query("SELECT * FROM ledger WHERE row_id = ?", [body["ledger_row_id"]])
    assert len(rows) == 1
    row = rows[0]
    assert (row["question"], row["strategy"], row["run_id"], row["answer"]) == (VOLCANO, "rag", body["run_id"], body["answer"])
    assert len(row["used_ids"]) == len(body["citations"])
    assert row["model"] == "fake-reader" and row["context_tokens"] == body["tokens"]["context"]


def test_default_strategy_is_auto(api):
    body = ask(api, question=VOLCANO).json()
    assert body["strategy"] == "auto"
    assert body["route"] in ("rule:lc", "rule:self-route:rag", "rule:self-route:rag->lc")


def test_k_applies_to_one_request_only(api):
    one = ask(api, question=VOLCANO, strategy="rag", k=1).json()
    assert len(one["citations"]) == 1
    four = ask(api, question=VOLCANO, strategy="rag", k=4).json()
    assert len(four["citations"]) == 4
    default = ask(api, question=VOLCANO, strategy="rag").json()  # rag_k 5: the k=1 request changed nothing shared
    assert len(default["citations"]) == 5


def test_budget_tokens_bounds_the_context(api):
    body = ask(api, question=VOLCANO, strategy="lc", budget_tokens=64).json()
    assert body["tokens"]["budget"] == 64
    assert 0 < body["tokens"]["context"] <= 64
    wide = ask(api, question=VOLCANO, strategy="lc").json()
    assert wide["tokens"]["context"] > 64


def test_passage_token_counts_are_shared_by_requests_on_one_generation(live, tmp_path):
    reader = CountingReader()
    with background_server(make_app(live, reader, tmp_path / "ledger.duckdb")) as url, httpx.Client(base_url=url, timeout=30) as client:
        first = ask(client, question=VOLCANO, strategy="lc")
        counted_first = len(reader.counted)
        second = ask(client, question=VOLCANO, strategy="lc")
    assert first.status_code == second.status_code == 200
    assert first.json()["tokens"] == second.json()["tokens"]
    # passage costs are counted on "[1] title" renderings: every document the first time, none after
    placed = [t for t in reader.counted[:counted_first] if t.startswith("[1] ")]
    assert len(placed) >= len(first.json()["citations"])
    assert not [t for t in reader.counted[counted_first:] if t.startswith("[1] ")]


def test_every_offered_strategy_answers(api):
    offered = [s["name"] for s in api.get("/v1/strategies", headers=AUTH).json()["strategies"]]
    for name in offered:
        evidence = [{"text": "Etna is very active."}] if name == "oracle" else []
        response = ask(api, question=VOLCANO, strategy=name, k=2, evidence=evidence)
        assert response.status_code == 200, (name, response.text)
        assert response.json()["strategy"] == name


def test_strategies_lists_registered_names_with_descriptions(api):
    body = api.get("/v1/strategies", headers=AUTH).json()
    assert body["default"] == "auto"
    names = [s["name"] for s in body["strategies"]]
    assert set(names) == set(REGISTRY) - {"attention-sort"}  # no attention source here
    assert all(s["description"] and len(s["description"].splitlines()) == 1 for s in body["strategies"])
    assert {s["name"]: s["uses_k"] for s in body["strategies"]}["rag"] is True
    assert {s["name"]: s["uses_k"] for s in body["strategies"]}["lc"] is False


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "question"),
        ({"question": ""}, "question"),
        ({"question": "   \n"}, "question"),
        ({"question": "x" * 2001}, "question"),
        ({"question": 42}, "question"),
        ({"question": VOLCANO, "k": 51}, "k"),
        ({"question": VOLCANO, "k": 0}, "k"),
        ({"question": VOLCANO, "k": "many"}, "k"),
        ({"question": VOLCANO, "budget_tokens": 63}, "budget_tokens"),
        ({"question": VOLCANO, "budget_tokens": 10**6}, "budget_tokens"),
        ({"question": VOLCANO, "strategy": "nope"}, "strategy"),
        ({"question": VOLCANO, "strategy": "all"}, "strategy"),
        ({"question": VOLCANO, "strategy": "rag,lc"}, "strategy"),
        ({"question": VOLCANO, "strategy": "rag@k3"}, "strategy"),
        ({"question": VOLCANO, "strategy": "attention-sort"}, "strategy"),  # no attention source here
        ({"question": VOLCANO, "temperature": 2}, "temperature"),
    ],
    ids=[
        "missing-question", "empty", "blank", "too-long", "not-a-string", "k-too-large", "k-zero", "k-not-int",
        "budget-too-small", "budget-too-large", "unknown-strategy", "all", "two-strategies", "variant",
        "attention-sort-unavailable", "unknown-field",
    ],
)
def test_bad_bodies_get_422_naming_the_field(api, body, field):
    response = api.post("/v1/query", json=body, headers=AUTH)
    assert response.status_code == 422
    locations = [error["loc"] for error in response.json()["detail"]]
    assert any(field in loc for loc in locations), locations


def test_lone_surrogate_question_is_422_not_500(api):
    response = api.post("/v1/query", content=b'{"question": "\\ud800 volcano"}', headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 422
    assert any("question" in e["loc"] for e in response.json()["detail"])


def test_non_json_body_is_422(api):
    response = api.post("/v1/query", content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 422


# -------------------------------------------------------------------- runs


def test_runs_pages_ledger_rows_newest_first(api, ledger_path):
    asked = [ask(api, question=f"{VOLCANO} ({i})", strategy="rag").json()["ledger_row_id"] for i in range(3)]
    page = api.get("/v1/runs", params={"limit": 2}, headers=AUTH).json()
    assert [r["row_id"] for r in page["rows"]] == asked[::-1][:2]
    assert page["limit"] == 2 and page["offset"] == 0
    assert page["total"] == Ledger(ledger_path).count()
    second = api.get("/v1/runs", params={"limit": 1, "offset": 1}, headers=AUTH).json()
    assert [r["row_id"] for r in second["rows"]] == [asked[1]]
    created = [r["created_at"] for r in api.get("/v1/runs", params={"limit": 50}, headers=AUTH).json()["rows"]]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize("params, field", [({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"offset": -1}, "offset"), ({"limit": "x"}, "limit")])
def test_runs_rejects_bad_paging(api, params, field):
    response = api.get("/v1/runs", params=params, headers=AUTH)
    assert response.status_code == 422
    assert any(field in e["loc"] for e in response.json()["detail"])


# ---------------------------------------------------------------- overload


def test_saturated_server_answers_429_with_retry_after_at_once(live, tmp_path):
    reader = BlockingReader()
    app = make_app(live, reader, tmp_path / "ledger.duckdb", max_in_flight=1, max_queued=0, retry_after_s=7)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client, ThreadPoolExecutor(1) as pool:
        try:
            first = pool.submit(ask, client, question=VOLCANO, strategy="rag")
            assert reader.entered.wait(30), "the first question never reached the reader"
            refused = ask(client, question=VOLCANO, strategy="rag")
            # refused while the first still holds the only slot (it cannot finish before the
            # release below), not queued until a timeout
            assert not first.done() and not reader.release.is_set()
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "7"
            assert set(refused.json()) == {"error"}
        finally:
            reader.release.set()
        assert first.result(timeout=30).status_code == 200
        assert ask(client, question=VOLCANO, strategy="rag").status_code == 200  # the slot was given back


def test_queued_question_waits_for_a_slot_and_the_next_is_refused(live, tmp_path):
    reader = BlockingReader()
    app = make_app(live, reader, tmp_path / "ledger.duckdb", max_in_flight=1, max_queued=1)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client, ThreadPoolExecutor(2) as pool:
        try:
            first = pool.submit(ask, client, question=VOLCANO, strategy="rag")
            assert reader.entered.wait(30)
            second = pool.submit(ask, client, question=VOLCANO, strategy="rag")
            deadline = time.monotonic() + 30  # a hang guard
            while client.get("/v1/health").json()["queued"] != 1:
                assert time.monotonic() < deadline, "the second question was never queued"
                time.sleep(0.02)
            assert client.get("/v1/health").json()["in_flight"] == 1
            assert ask(client, question=VOLCANO, strategy="rag").status_code == 429
        finally:
            reader.release.set()
        assert first.result(timeout=30).status_code == 200
        queued = second.result(timeout=30)
        assert queued.status_code == 200
        assert queued.json()["timings_ms"]["queued"] > 0


def test_unreachable_reader_gives_503_with_retry_after_and_degraded_health(live, tmp_path):
    app = make_app(live, DownReader(), tmp_path / "ledger.duckdb", retry_after_s=3)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        response = ask(client, question=VOLCANO, strategy="rag")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "3"
        assert "127.0.0.1" not in response.text  # the reader's address stays in the log
        health = client.get("/v1/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded" and health.json()["reader_reachable"] is False


def test_unexpected_error_is_a_json_500_without_details(live, tmp_path):
    app = make_app(live, BrokenReader(), tmp_path / "ledger.duckdb")
    with background_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        response = ask(client, question=VOLCANO, strategy="rag")
        assert response.status_code == 500
        assert set(response.json()) == {"error"}
        assert "secret" not in response.text and "Traceback" not in response.text
        assert client.get("/v1/health").json()["in_flight"] == 0  # the slot was given back


# -------------------------------------------------------------- real reader


@pytest.mark.slow
@pytest.mark.reader
def test_real_reader_answers_through_the_api(live, live_reader, tmp_path):
    from lcrag.pipeline.config import Config
    from lcrag.readers import connect_reader
    from tests.conftest import STATE

    config = Config(reader=live_reader)
    reader = connect_reader(live_reader, STATE)
    ledger_path = tmp_path / "ledger.duckdb"
    try:
        with background_server(make_app(live, reader, ledger_path, config=config)) as url, httpx.Client(base_url=url, timeout=300) as client:
            assert client.get("/v1/health").json()["reader_reachable"] is True
            response = ask(client, question=VOLCANO, strategy="rag", k=3)
    finally:
        reader.close()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"].strip()
    assert body["citations"] and body["citations"][0]["doc_id"] == "volcanoes.txt"
    assert body["tokens"]["prompt"] > 0 and body["tokens"]["completion"] > 0
    rows = Ledger(ledger_path).query("SELECT answer, model FROM ledger WHERE row_id = ?", [body["ledger_row_id"]])
    assert rows == [{"answer": body["answer"], "model": live_reader.model}]


# ------------------------------------------------------------- generations


def test_new_generation_is_served_without_restart_and_in_flight_questions_keep_theirs(tmp_path, encoder):
    from lcrag.pipeline.config import config_from_dict
    from lcrag.pipeline.index.live import LiveIndex
    from lcrag.pipeline.ingest.ingestion import ingest_generation
    from lcrag.pipeline.ingest.loaders import load_source
    from tests.conftest import TOPICS, write_corpus

    config = config_from_dict({"chunking": {"target_tokens": 16}, "units": {"max_tokens": 120}})
    root = tmp_path / "root"
    _, first = ingest_generation(load_source(write_corpus(tmp_path / "topics", TOPICS)), root, config, encoder, "topics")
    glaciers = write_corpus(tmp_path / "glaciers", {"glaciers.txt": "Glaciers are rivers of ice that carve fjords. "
                                                    "The Perito Moreno glacier in Patagonia is still advancing.\n"})
    reader = BlockingReader()
    question = "Which glacier in Patagonia is still advancing?"
    with LiveIndex(root, lambda c: encoder) as live:
        app = make_app(live, reader, tmp_path / "ledger.duckdb")
        with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client, ThreadPoolExecutor(1) as pool:
            try:
                assert client.get("/v1/health").json()["generation"] == first
                in_flight = pool.submit(ask, client, question=question, strategy="rag")
                assert reader.entered.wait(30)
                _, second = ingest_generation(load_source(glaciers), root, config, encoder, "glaciers")
                assert second != first
            finally:
                reader.release.set()
            old = in_flight.result(timeout=30).json()
            assert old["generation"] == first
            assert "glaciers.txt" not in {c["doc_id"] for c in old["citations"]}
            deadline = time.monotonic() + 30  # a hang guard
            while (new := ask(client, question=question, strategy="rag").json())["generation"] != second:
                assert time.monotonic() < deadline, "the server never switched to the new generation"
                time.sleep(0.1)
            assert new["citations"][0]["doc_id"] == "glaciers.txt"
            assert client.get("/v1/health").json()["generation"] == second


# ------------------------------------------------------------ group commit


class SlowLedger(Ledger):
    """A real ledger whose writes take long enough for others to pile up; counts them."""

    def __init__(self, path, fail: bool = False) -> None:
        super().__init__(path)
        self.writes: list[int] = []
        self.fail = fail

    def record(self, rows):
        time.sleep(0.2)
        self.writes.append(len(rows))
        if self.fail:
            from lcrag.pipeline.ledger import LedgerError

            raise LedgerError("locked")
        return super().record(rows)


def _rows(n):
    from lcrag.pipeline.ledger import LedgerRow

    return [
        LedgerRow(run_id="r", question_id=f"q{i}", question="q", strategy="rag", route="rag", answer="a", index_id="i",
                  config_hash="c", model="m", retrieved_ids=(), used_ids=(), context_tokens=0, prompt_tokens=1,
                  completion_tokens=1, retrieval_ms=1.0, reading_ms=1.0, context_cut=False)
        for i in range(n)
    ]


def test_concurrent_rows_are_committed_together_and_stored_before_record_returns(tmp_path):
    from lcrag.app.service.ledger_writer import GroupCommitLedger

    slow = SlowLedger(tmp_path / "ledger.duckdb")
    writer = GroupCommitLedger(slow)
    rows = _rows(8)

    def record_then_look(row):
        writer.record([row])
        return Ledger(slow.path).query("SELECT count(*) AS n FROM ledger WHERE row_id = ?", [row.row_id])[0]["n"]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(record_then_look, rows)) == [1] * 8  # each row was stored when its call returned
    assert {r.row_id for r in slow.rows()} == {r.row_id for r in rows}
    assert sum(slow.writes) == 8 and len(slow.writes) < 8  # batched: fewer writes than rows


def test_a_failed_group_write_reaches_every_waiter(tmp_path):
    from lcrag.app.service.ledger_writer import GroupCommitLedger
    from lcrag.pipeline.ledger import LedgerError

    writer = GroupCommitLedger(SlowLedger(tmp_path / "ledger.duckdb", fail=True))
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(writer.record, [row]) for row in _rows(4)]
    for future in futures:
        with pytest.raises(LedgerError):
            future.result()
    writer.ledger.fail = False
    assert writer.record(_rows(1)) == 1  # the writer role was given back after the failure


# ----------------------------------------------------------------- the command


@pytest.mark.slow  # a `lcrag serve` subprocess
def test_lcrag_serve_runs_the_api_until_stopped(tmp_path, encoder):
    import subprocess
    import sys

    import yaml

    from tests.conftest import ROOT, free_port

    index = build_index(tmp_path, encoder)  # its own folder: Qdrant local mode allows one process per folder
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"reader": {"backend": "fake"}, "service": {"max_k": 7}}))
    port = free_port()
    env = {**os.environ, API_KEY_ENV: KEY, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "lcrag.app.cli.app", "serve", "--index", str(index), "--port", str(port),
           "--config", str(config), "--ledger", str(tmp_path / "ledger.duckdb"), "--log-level", "warning"]
    server = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 120
            while True:
                assert server.poll() is None, server.communicate()[0]
                try:
                    if client.get("/v1/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "lcrag serve did not come up"
                time.sleep(0.25)
            assert client.post("/v1/query", json={"question": VOLCANO}).status_code == 401
            body = ask(client, question=VOLCANO, strategy="rag", k=2).json()
            assert body["citations"][0]["doc_id"] == "volcanoes.txt"
            assert ask(client, question=VOLCANO, k=8).status_code == 422  # the config's service.max_k
            chat = client.post("/v1/chat/completions", headers=AUTH,
                               json={"model": "lcrag-rag", "messages": [{"role": "user", "content": VOLCANO}]})
            assert chat.status_code == 200, chat.text  # the OpenAI-compatible endpoint, on the same server
            assert chat.json()["lcrag"]["citations"][0]["doc_id"] == "volcanoes.txt"
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert server.returncode == 0 and output.rstrip().endswith("stopped"), output  # SIGTERM: a clean stop
    assert Ledger(tmp_path / "ledger.duckdb").count() == 2


# ---------------------------------------------------------------- the oracle: gold evidence in the request


def test_oracle_reads_only_the_evidence_the_request_gives_and_is_recorded(api, ledger_path):
    passage = "Etna, on the east coast of Sicily, is one of the most active volcanoes in the world."
    response = ask(api, question=VOLCANO, strategy="oracle", evidence=[{"text": passage}])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["strategy"] == "oracle" and body["route"] == "oracle"
    assert [c["text"] for c in body["citations"]] == [passage]
    row = Ledger(ledger_path).query("SELECT * FROM ledger WHERE row_id = ?", [body["ledger_row_id"]])[0]
    assert row["strategy"] == "oracle" and row["context_tokens"] == body["tokens"]["context"] > 0


def test_oracle_evidence_may_name_a_document_of_the_index_to_read_whole(api, live):
    response = ask(api, question=VOLCANO, strategy="oracle", evidence=[{"doc_id": "volcanoes.txt"}])
    assert response.status_code == 200, response.text
    with live.acquire() as generation:
        whole = generation.corpus.documents(["volcanoes.txt"])["volcanoes.txt"].text
    assert [(c["doc_id"], c["text"]) for c in response.json()["citations"]] == [("volcanoes.txt", whole)]


@pytest.mark.parametrize(
    "body",
    [
        {"question": VOLCANO, "strategy": "oracle"},
        {"question": VOLCANO, "strategy": "oracle", "evidence": []},
        {"question": VOLCANO, "strategy": "oracle", "evidence": [{"text": "  "}]},
        {"question": VOLCANO, "strategy": "rag", "evidence": [{"text": "x", "page": 2}]},
        {"question": VOLCANO, "strategy": "oracle", "evidence": [{"text": "x"}] * 17},
    ],
    ids=["none", "empty-list", "blank-passage", "unknown-key", "too-many"],
)
def test_oracle_without_usable_evidence_is_422_naming_evidence(api, body):
    response = api.post("/v1/query", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert any("evidence" in error["loc"] for error in response.json()["detail"])


def test_other_strategies_ignore_evidence(api):
    with_evidence = ask(api, question=VOLCANO, strategy="lc", evidence=[{"text": "Vesuvius is near Naples."}]).json()
    without = ask(api, question=VOLCANO, strategy="lc").json()
    assert with_evidence["citations"] == without["citations"]
