"""The OpenAI-compatible endpoint of ``lcrag serve``: ``POST /v1/chat/completions``
and ``GET /v1/models``, over a uvicorn server on 127.0.0.1 serving the small topic
index with the fake reader, spoken to with httpx and (one test) the ``openai``
client. Covers the request and response shapes, errors in OpenAI's shape,
usage with cached tokens, citations in the text and in the ``lcrag`` field, the
conversation kept as context, streaming (chunk format, ``[DONE]``, a client
that goes away), one ledger row per request, the limits, and keys kept out of
the access log. The pieces under it (the streaming tap, the vLLM reader's
stream parsing, the reply shaping) are tested without a server at the end; one
test (marked ``reader``) streams from the real vLLM reader."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest

from lcrag.app.service.chat import (
    HISTORY_OPENING,
    QUESTION_OPENING,
    Conversation,
    compose_question,
    sources_text,
    without_sources,
)
from lcrag.app.service.querying import CANCELLED, QuestionTooLong
from lcrag.app.service.schemas import Citation
from lcrag.app.service.server import background_server
from lcrag.app.service.streaming import ReadCancelled, Relay, StreamingTap, last_read_known, may_give_the_answer
from lcrag.pipeline.ledger import Ledger
from lcrag.readers.base import TAKE_NOTES, Answer, Passage, Prompt, ReaderError
from lcrag.readers.fake import FakeReader
from tests.service_support import AUTH, KEY, BlockingReader, DownReader, make_app

VOLCANO = "Which volcano in Sicily is very active?"
CHAT = "/v1/chat/completions"
WAIT_S = 30.0  # how long a test waits for the server before calling it a failure (a hang guard)


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory):
    return tmp_path_factory.mktemp("openai-ledger") / "ledger.duckdb"


@pytest.fixture(scope="module")
def server(live, ledger_path):
    """(base URL, client) of a server with the default limits and the fake reader."""
    with background_server(make_app(live, FakeReader(), ledger_path)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield url, client


@pytest.fixture(scope="module")
def api(server):
    return server[1]


def chat(client, model="lcrag-rag", messages=None, headers=AUTH, **body):
    messages = messages if messages is not None else [{"role": "user", "content": VOLCANO}]
    return client.post(CHAT, json={"model": model, "messages": messages, **body}, headers=headers)


def stream_events(client, model="lcrag-rag", messages=None, **body) -> tuple[int, list[str]]:
    """Status and the ``data:`` payloads of a streamed chat request."""
    messages = messages if messages is not None else [{"role": "user", "content": VOLCANO}]
    with client.stream("POST", CHAT, json={"model": model, "messages": messages, "stream": True, **body},
                       headers=AUTH) as response:
        assert response.headers["content-type"].startswith("text/event-stream"), response.read()
        payloads = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
        return response.status_code, payloads


def content_of(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def assert_openai_error(response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    if param is not None:
        assert body["error"]["param"] == param, body
    return body["error"]


class CachingReader(FakeReader):
    """The fake reader with a prefix cache: half of every prompt (rounded down) is cached."""

    def read(self, prompt):
        answer = super().read(prompt)
        return Answer(answer.text, answer.prompt_tokens, answer.completion_tokens, answer.latency_ms, answer.model,
                      answer.unanswerable, answer.token_logprobs, cached_prompt_tokens=answer.prompt_tokens // 2)


class SlowStreamReader(FakeReader):
    """Streams one word every ``piece_delay_s``; says whether a stream ran to its end
    or was closed part way (what a vLLM server sees as an aborted request)."""

    def __init__(self, piece_delay_s: float = 0.3) -> None:
        super().__init__(answer_words=40, piece_delay_s=piece_delay_s)
        self.started = threading.Event()
        self.finished = threading.Event()
        self.abandoned = threading.Event()
        self.pieces_sent = 0

    def _pieces(self, prompt):
        self.started.set()
        inner, done = super()._pieces(prompt), False
        try:
            while True:
                try:
                    piece = next(inner)
                except StopIteration as end:
                    done = True
                    return end.value
                self.pieces_sent += 1
                yield piece
        finally:
            inner.close()
            (self.finished if done else self.abandoned).set()


# ------------------------------------------------------------------ models


def test_models_are_the_offered_strategies(api):
    strategies = [s["name"] for s in api.get("/v1/strategies", headers=AUTH).json()["strategies"]]
    body = api.get("/v1/models", headers=AUTH).json()
    assert body["object"] == "list"
    # every strategy of /v1/query but the oracle: it reads a request's gold evidence, and a chat carries none
    assert "oracle" in strategies
    assert [m["id"] for m in body["data"]] == [f"lcrag-{s}" for s in strategies if s != "oracle"]
    assert {"lcrag-auto", "lcrag-rag", "lcrag-lc", "lcrag-coa"} <= {m["id"] for m in body["data"]}
    for model in body["data"]:
        assert model["object"] == "model" and model["owned_by"] == "lcrag" and isinstance(model["created"], int)
        assert model["description"]
    one = api.get("/v1/models/lcrag-rag", headers=AUTH)
    assert one.status_code == 200 and one.json()["id"] == "lcrag-rag"
    assert_openai_error(api.get("/v1/models/lcrag-attention-sort", headers=AUTH), 404, "model_not_found", "model")


# ---------------------------------------------------------------- answering


def test_chat_completion_with_the_official_request_shape(api, live, ledger_path):
    request = {
        "model": "lcrag-rag",
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": [{"type": "text", "text": VOLCANO}]}],
        "temperature": 0.7, "top_p": 1, "max_tokens": 256, "stream": False, "n": 1, "user": "u-1",
        "presence_penalty": 0, "frequency_penalty": 0, "seed": 7, "stop": None,
    }
    response = api.post(CHAT, json=request, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["model"] == "lcrag-rag" and isinstance(body["created"], int)
    assert body["system_fingerprint"] == live.current_name()
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    info = body["lcrag"]
    assert info["strategy"] == "rag" and info["route"] == "rag" and info["generation"] == live.current_name()
    assert info["history"] == {"kept": 0, "earlier": 0}  # the system message is not a turn
    rows = Ledger(ledger_path).query("SELECT question, answer, strategy FROM ledger WHERE row_id = ?", [info["ledger_row_id"]])
    assert rows == [{"question": VOLCANO, "answer": choice["message"]["content"].split("\n\nSources:\n")[0],
                     "strategy": "rag"}]


def test_citations_travel_in_the_text_and_in_the_lcrag_field(api, live):
    body = chat(api, lcrag={"k": 3}).json()
    citations = body["lcrag"]["citations"]
    assert 1 <= len(citations) <= 3 and citations[0]["doc_id"] == "volcanoes.txt"
    with live.acquire() as generation:
        docs = generation.corpus.documents([c["doc_id"] for c in citations])
    for citation in citations:
        assert docs[citation["doc_id"]].text[citation["start"]:citation["end"]] == citation["text"]
    answer, sources = body["choices"][0]["message"]["content"].split("\n\nSources:\n")
    assert answer == "Mount Etna in"
    lines = sources.splitlines()
    assert len(lines) == len(citations)
    for number, (line, citation) in enumerate(zip(lines, citations), 1):
        assert line.startswith(f"[{number}] {citation['doc_id']}")
        assert " — " + citation["text"][:40] in line


def test_usage_counts_every_call_and_the_cached_tokens(live, tmp_path):
    with background_server(make_app(live, CachingReader(), tmp_path / "ledger.duckdb")) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        body = chat(client).json()
        status, payloads = stream_events(client, stream_options={"include_usage": True})
    usage, tokens = body["usage"], body["lcrag"]["tokens"]
    assert usage["prompt_tokens"] == tokens["prompt"] > 0 and usage["completion_tokens"] == tokens["completion"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": tokens["prompt"] // 2} and tokens["cached"] == tokens["prompt"] // 2
    assert status == 200
    last = json.loads(payloads[-2])
    assert last["usage"] == usage  # the same question, the same counts


def test_without_a_cache_report_cached_tokens_is_zero(api):
    usage = chat(api).json()["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}


def test_every_model_answers_and_streams_the_same_answer(api):
    for model in [m["id"] for m in api.get("/v1/models", headers=AUTH).json()["data"]]:
        whole = chat(api, model=model)
        assert whole.status_code == 200, (model, whole.text)
        status, payloads = stream_events(api, model=model)
        assert status == 200 and payloads[-1] == "[DONE]", model
        chunks = [json.loads(p) for p in payloads[:-1]]
        assert content_of(chunks) == whole.json()["choices"][0]["message"]["content"], model
        info = chunks[-1]["lcrag"]
        # every strategy's answering read streams, except self-route's first read (it may decline, so it is
        # read whole): here it answers (the fake reader finds the question's words in the chunks)
        by_first_self_route_read = (model == "lcrag-self-route" or "self-route" in info["route"]) and "->" not in info["route"]
        assert info["streamed"] is (not by_first_self_route_read), (model, info["route"])


# ------------------------------------------------------------- conversation


def conversation_messages(n_turns: int, question: str = "And which country is it in?") -> list[dict]:
    """A system message, ``n_turns`` earlier messages (user and assistant, the
    assistant's with a sources list as this API writes it), then the question."""
    messages = [{"role": "system", "content": "Be brief."}]
    for i in range(n_turns):
        if i % 2 == 0:
            messages.append({"role": "user", "content": f"earlier question {i}: {VOLCANO}"})
        else:
            messages.append({"role": "assistant", "content": f"earlier answer {i}\n\nSources:\n[1] volcanoes.txt — Etna"})
    messages.append({"role": "user", "content": question})
    return messages


def test_earlier_turns_are_kept_above_the_question_and_counted(api, ledger_path):
    body = chat(api, messages=conversation_messages(4)).json()
    assert body["lcrag"]["history"] == {"kept": 4, "earlier": 4}
    [row] = Ledger(ledger_path).query("SELECT question FROM ledger WHERE row_id = ?", [body["lcrag"]["ledger_row_id"]])
    asked = row["question"]
    assert asked.startswith(HISTORY_OPENING) and asked.endswith(f"{QUESTION_OPENING}\nAnd which country is it in?")
    lines = asked.splitlines()
    assert lines[1:5] == [f"User: earlier question 0: {VOLCANO}", "Assistant: earlier answer 1",
                          f"User: earlier question 2: {VOLCANO}", "Assistant: earlier answer 3"]
    assert "Sources" not in asked and "Be brief" not in asked  # our sources list cut, the system message left out


def test_only_the_newest_turns_that_fit_are_kept(live, tmp_path):
    app = make_app(live, FakeReader(), tmp_path / "ledger.duckdb", max_question_tokens=60, chat_history_share=0.5)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        body = chat(client, messages=conversation_messages(6)).json()
        history = body["lcrag"]["history"]
        [row] = Ledger(tmp_path / "ledger.duckdb").query("SELECT question FROM ledger WHERE row_id = ?",
                                                         [body["lcrag"]["ledger_row_id"]])
    assert history["earlier"] == 6 and 1 <= history["kept"] < 6
    kept = row["question"].splitlines()[1 : 1 + history["kept"]]
    newest = [f"User: earlier question {i}: {VOLCANO}" if i % 2 == 0 else f"Assistant: earlier answer {i}"
              for i in range(6)][-history["kept"]:]
    assert kept == newest  # the oldest were dropped first
    assert FakeReader().count_tokens(row["question"]) <= 60


def test_turn_limit_zero_keeps_no_history(live, tmp_path):
    app = make_app(live, FakeReader(), tmp_path / "ledger.duckdb", chat_history_turns=0)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        body = chat(client, messages=conversation_messages(4)).json()
    assert body["lcrag"]["history"] == {"kept": 0, "earlier": 4}


def test_compose_question_shares_the_limits_with_the_question():
    reader = FakeReader()
    earlier = tuple(("user" if i % 2 == 0 else "assistant", f"turn number {i} " + "word " * 5) for i in range(10))
    conversation = Conversation("What now?", earlier, 10)
    composed = compose_question(conversation, reader.count_tokens, 100, 2000, 6, 0.5)
    assert composed.earlier == 10 and 0 < composed.kept <= 6
    assert reader.count_tokens(composed.text) <= 100
    # the kept turns take at most half of the token limit: the rest is the question's
    history_tokens = reader.count_tokens(composed.text) - reader.count_tokens(f"{HISTORY_OPENING}\n\n{QUESTION_OPENING}\nWhat now?")
    assert history_tokens <= 50
    assert compose_question(conversation, reader.count_tokens, 100, 2000, 6, 0.0).kept == 0
    # a long turn is never tokenized: it ends the walk at once
    counted = []
    long = Conversation("Q?", (("user", "x " * 5000),), 1)
    assert compose_question(long, lambda t: counted.append(t) or len(t.split()), 100, 2000, 6, 0.5).kept == 0
    assert all(len(t) < 100 for t in counted)
    with pytest.raises(QuestionTooLong):
        compose_question(Conversation("one two three", (), 0), reader.count_tokens, 2, 2000, 6, 0.5)


def test_sources_text_and_its_removal():
    citations = [Citation(doc_id="a.txt", title="a", start=0, end=5, text="alpha " * 40),
                 Citation(doc_id="guide/b.html", title="Bee", start=3, end=9, text="beta")]
    text = sources_text(citations)
    lines = text.split("\n")
    assert lines[:3] == ["", "", "Sources:"]
    assert lines[3].startswith("[1] a.txt — alpha") and lines[3].endswith("…") and len(lines[3]) < 120
    assert lines[4] == "[2] guide/b.html (Bee) — beta"
    assert sources_text([]) == ""
    assert without_sources("Etna" + text) == "Etna"
    many = sources_text([Citation(doc_id=f"{i}.txt", title="", start=0, end=1, text="x") for i in range(30)])
    assert len(many.split("\n")) == 3 + 20 + 1 and "10 more" in many


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize("path, method", [(CHAT, "POST"), ("/v1/models", "GET"), ("/v1/models/lcrag-rag", "GET")])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}],
                         ids=["none", "wrong", "basic"])
def test_auth_failures_are_401_in_openai_shape(api, path, method, headers):
    response = api.request(method, path, json={"model": "lcrag-rag", "messages": []}, headers=headers)
    error = assert_openai_error(response, 401, "invalid_api_key")
    assert error["type"] == "authentication_error"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_x_api_key_header_is_accepted_too(api):
    assert chat(api, headers={"X-API-Key": KEY}).status_code == 200


def test_unknown_model_is_404(api):
    for model in ("gpt-4o", "lcrag-nope", "rag", "lcrag-oracle"):
        error = assert_openai_error(chat(api, model=model), 404, "model_not_found", "model")
        assert "GET /v1/models" in error["message"]


@pytest.mark.parametrize(
    "body, param, code",
    [
        ({"messages": []}, "messages", None),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages", "last_message_not_user"),
        ({"messages": [{"role": "user", "content": "  \n"}]}, "messages.0.content", "empty_question"),
        ({"messages": [{"role": "user", "content": "x" * 2001}]}, "messages.0.content", "question_too_long"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]},
         "messages.0.content.0", "unsupported_content"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role", None),
        ({"messages": [{"role": "user", "content": VOLCANO}], "n": 2}, "n", "unsupported_value"),
        ({"messages": [{"role": "user", "content": VOLCANO}], "stream": "yes"}, "stream", None),
        ({"messages": [{"role": "user", "content": VOLCANO}], "lcrag": {"k": 51}}, "lcrag.k", None),
        ({"messages": [{"role": "user", "content": VOLCANO}], "lcrag": {"top": 1}}, "lcrag.top", None),
        ({}, "model", None),
    ],
    ids=["no-messages", "last-not-user", "blank", "too-long", "image", "bad-role", "n-2", "stream-string",
         "k-too-large", "unknown-lcrag-option", "missing-model"],
)
def test_bad_requests_are_400_naming_the_field(api, body, param, code):
    body = {"model": "lcrag-rag", **body} if "model" not in body and body else body
    error = assert_openai_error(api.post(CHAT, json=body, headers=AUTH), 400, code, param)
    assert error["type"] == "invalid_request_error"


def test_a_body_that_is_not_json_is_400(api):
    response = api.post(CHAT, content=b"{not json", headers={**AUTH, "content-type": "application/json"})
    assert_openai_error(response, 400)


def test_a_question_over_the_token_limit_is_400_context_length_exceeded(api):
    question = " ".join(["\U0001d49c"] * 600)  # under the character limit, 600 tokens
    assert_openai_error(chat(api, messages=[{"role": "user", "content": question}]), 400, "context_length_exceeded", "messages")
    status = api.post(CHAT, json={"model": "lcrag-rag", "stream": True, "messages": [{"role": "user", "content": question}]},
                      headers=AUTH)
    assert_openai_error(status, 400, "context_length_exceeded")  # a stream refused before it starts: a status too


def test_a_reader_that_is_down_is_503_with_retry_after(live, tmp_path):
    app = make_app(live, DownReader(), tmp_path / "ledger.duckdb", retry_after_s=3)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        whole = chat(client)
        streamed = client.post(CHAT, json={"model": "lcrag-rag", "stream": True,
                                           "messages": [{"role": "user", "content": VOLCANO}]}, headers=AUTH)
    for response in (whole, streamed):
        assert_openai_error(response, 503, "service_unavailable")
        assert response.headers["retry-after"] == "3" and "127.0.0.1" not in response.text


def test_the_chat_body_limit_fits_a_long_conversation(api):
    long_history = conversation_messages(0)[:1] + [
        {"role": "user" if i % 2 == 0 else "assistant", "content": "blah " * 400} for i in range(60)
    ] + [{"role": "user", "content": VOLCANO}]
    response = chat(api, messages=long_history)
    assert len(json.dumps(long_history)) > 65536  # over /v1/query's body limit
    assert response.status_code == 200, response.text
    assert response.json()["lcrag"]["history"]["kept"] == 0  # each earlier message alone is over the share


def test_a_chat_body_over_its_limit_is_413(live, tmp_path):
    from fastapi.testclient import TestClient

    with TestClient(make_app(live, FakeReader(), tmp_path / "ledger.duckdb", max_chat_body_bytes=100_000)) as client:
        response = chat(client, messages=[{"role": "user", "content": "x " * 60_000}])
    assert_openai_error(response, 413, "request_too_large")
    assert "100000 bytes" in response.json()["error"]["message"]


# ---------------------------------------------------------------- streaming


def test_stream_chunks_follow_the_openai_format(api):
    status, payloads = stream_events(api, stream_options={"include_usage": True})
    assert status == 200
    assert payloads[-1] == "[DONE]" and payloads.count("[DONE]") == 1
    chunks = [json.loads(p) for p in payloads[:-1]]
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and next(iter(ids)).startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "lcrag-rag" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content_chunks = [c for c in chunks[1:] if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) >= 3  # "Mount", " Etna", " in", then the sources
    assert all(c["choices"][0]["finish_reason"] is None for c in content_chunks)
    finish, last = chunks[-2], chunks[-1]
    assert finish["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert last["choices"] == [] and set(last["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}
    text = content_of(chunks)
    assert text.startswith("Mount Etna in\n\nSources:\n[1] volcanoes.txt")
    info = last["lcrag"]
    assert info["streamed"] is True and info["citations"][0]["doc_id"] == "volcanoes.txt"
    assert text.count("\n[") == len(info["citations"])  # one numbered line each


def test_without_include_usage_the_finish_chunk_is_last_and_carries_the_citations(api):
    _, payloads = stream_events(api)
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["lcrag"]["citations"]
    assert all(c["choices"] for c in chunks)  # no chunk without a choice unless usage was asked for


def test_one_ledger_row_per_request_streamed_or_not(live, tmp_path):
    ledger = tmp_path / "ledger.duckdb"
    with background_server(make_app(live, FakeReader(), ledger)) as url, httpx.Client(base_url=url, timeout=30) as client:
        whole = chat(client).json()
        assert Ledger(ledger).count() == 1
        _, payloads = stream_events(client, model="lcrag-lc")
        assert Ledger(ledger).count() == 2
        chat(client, model="nope")  # refused: no row
        assert Ledger(ledger).count() == 2
    streamed = json.loads(payloads[-2])["lcrag"]
    rows = {r["row_id"]: r for r in Ledger(ledger).query("SELECT row_id, strategy, answer, error FROM ledger")}
    assert rows[whole["lcrag"]["ledger_row_id"]]["strategy"] == "rag"
    row = rows[streamed["ledger_row_id"]]
    assert row["strategy"] == "lc" and row["error"] is None
    assert content_of([json.loads(p) for p in payloads[:-1]]).startswith(row["answer"])


@pytest.mark.parametrize("hang_up", ["after-the-first-word", "before-the-first-word"])
def test_a_client_that_goes_away_cancels_the_read_and_frees_the_slot(live, tmp_path, hang_up):
    early = hang_up == "before-the-first-word"
    reader = SlowStreamReader(piece_delay_s=1.5 if early else 0.3)
    ledger = tmp_path / "ledger.duckdb"
    app = make_app(live, reader, ledger, max_in_flight=1, max_queued=0)
    body = {"model": "lcrag-lc", "stream": True, "messages": [{"role": "user", "content": VOLCANO}]}
    with background_server(app) as url, httpx.Client(base_url=url, timeout=WAIT_S) as client:
        if early:  # the response has not started (it waits for the first word): the client gives up
            with pytest.raises(httpx.ReadTimeout):
                client.post(CHAT, json=body, headers=AUTH, timeout=httpx.Timeout(WAIT_S, read=0.5))
        else:
            with client.stream("POST", CHAT, json=body, headers=AUTH) as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                received = [line for line in (next(lines) for _ in range(4)) if line.startswith("data: ")]
                assert len(received) == 2  # the role, then the first word: then the client hangs up
        # the client got away before the answer was complete: closing did not wait for the rest of it
        assert not reader.finished.is_set(), "closing the stream waited for the whole answer"
        assert reader.abandoned.wait(WAIT_S), "the read went on after the client went away"
        assert not reader.finished.is_set()
        deadline = time.monotonic() + WAIT_S
        while client.get("/v1/health").json()["in_flight"] != 0:
            assert time.monotonic() < deadline, "the slot was never given back"
            time.sleep(0.05)
        assert reader.pieces_sent < 10  # far fewer than the answer's words
        # the only slot is free again: the next question is answered, not refused
        reader.piece_delay_s = 0.0
        assert chat(client, model="lcrag-rag").status_code == 200
    rows = Ledger(ledger).query("SELECT strategy, error, answer FROM ledger ORDER BY created_at")
    assert rows[0] == {"strategy": "lc", "error": CANCELLED, "answer": ""}  # the cancelled question is a row too
    assert rows[1]["error"] is None


# -------------------------------------------------------------------- limits


def test_at_the_in_flight_limit_chat_requests_get_429_with_retry_after_at_once(live, tmp_path):
    reader = BlockingReader()
    app = make_app(live, reader, tmp_path / "ledger.duckdb", max_in_flight=1, max_queued=0, retry_after_s=7)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client, ThreadPoolExecutor(1) as pool:
        try:
            first = pool.submit(stream_events, client, model="lcrag-lc")
            assert reader.entered.wait(30), "the first question never reached the reader"
            for request in (lambda: chat(client), lambda: client.post(CHAT, headers=AUTH, json={
                    "model": "lcrag-rag", "stream": True, "messages": [{"role": "user", "content": VOLCANO}]}),
                            lambda: client.post("/v1/query", json={"question": VOLCANO}, headers=AUTH)):
                refused = request()
                # refused while the first still holds the only slot (it cannot finish before the
                # release below), not queued until a timeout
                assert not first.done() and not reader.release.is_set()
                assert refused.status_code == 429 and refused.headers["retry-after"] == "7"
            assert_openai_error(chat(client), 429, "rate_limit_exceeded")
        finally:
            reader.release.set()
        status, payloads = first.result(timeout=30)
        assert status == 200 and payloads[-1] == "[DONE]"
        assert chat(client).status_code == 200  # the slot was given back


def test_at_the_connection_cap_requests_get_503_with_retry_after_not_a_hang(live, tmp_path):
    app = make_app(live, FakeReader(), tmp_path / "ledger.duckdb")
    # a head deadline far past the test: the idle connections hold the cap until they are closed below
    with background_server(app, max_connections=2, retry_after_s=5, header_timeout_s=600) as url:
        address = (urlsplit(url).hostname, urlsplit(url).port)
        idle = [socket.create_connection(address, timeout=WAIT_S) for _ in range(2)]
        try:
            time.sleep(0.2)  # the server has taken both
            with httpx.Client(base_url=url, timeout=WAIT_S) as client:
                for path, openai_shape in (("/v1/models", True), ("/v1/strategies", False)):
                    refused = client.get(path, headers=AUTH)
                    # answered while both idle connections still hold the cap: refused, not held until one goes
                    assert all(still_open(sock) for sock in idle)
                    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
                    assert refused.headers["connection"] == "close"
                    if openai_shape:
                        assert_openai_error(refused, 503, "service_unavailable")
                    else:
                        assert set(refused.json()) == {"error"} and isinstance(refused.json()["error"], str)
        finally:
            for sock in idle:
                sock.close()
        deadline = time.monotonic() + WAIT_S
        with httpx.Client(base_url=url, timeout=WAIT_S) as client:
            while (response := client.get("/v1/models", headers=AUTH)).status_code == 503:
                assert time.monotonic() < deadline, "connections were never given back"
                time.sleep(0.05)
            assert response.status_code == 200


def still_open(sock: socket.socket) -> bool:
    """The server has neither closed ``sock`` nor sent anything on it."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # b"": closed; bytes: the server answered it (a 408, say)
        return False
    except BlockingIOError:  # nothing to read yet: still open and idle
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(WAIT_S)


def test_serve_passes_the_connection_cap_to_uvicorn():
    from lcrag.app.service.server import uvicorn_config

    config = uvicorn_config(lambda scope, receive, send: None, "127.0.0.1", 0, max_connections=9, retry_after_s=4)
    assert config.limit_concurrency == 9
    assert config.http.keywords["retry_after_s"] == 4


def test_keys_never_reach_the_access_log(live, tmp_path):
    shown = io.StringIO()
    records: list[logging.LogRecord] = []
    catcher = logging.Handler(logging.DEBUG)
    catcher.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(n) for n in ("lcrag.service", "uvicorn", "uvicorn.error", "uvicorn.access")]
    app = make_app(live, FakeReader(), tmp_path / "ledger.duckdb")
    with background_server(app, log_level="debug") as url, httpx.Client(base_url=url, timeout=WAIT_S) as http:
        access = logging.getLogger("uvicorn.access")
        previous = [h.setStream(shown) for h in access.handlers if isinstance(h, logging.StreamHandler)]
        for logger in loggers:
            logger.addHandler(catcher)
        try:
            assert http.get("/v1/models", headers=AUTH).status_code == 200
            assert http.get(f"/v1/models/{KEY}", headers=AUTH).status_code == 404
            assert http.post(f"/v1/{KEY}/chat/completions", json={}, headers=AUTH).status_code == 404
            assert http.post(f"/{KEY}", json={}).status_code == 401
            assert chat(http, headers={}).status_code == 401
            response = http.post(f"{CHAT}?api_key={KEY}", headers=AUTH,
                                 json={"model": "lcrag-rag", "messages": [{"role": "user", "content": VOLCANO}]})
            assert response.status_code == 200
            assert http.get(f"/v1/models/lcrag-rag?key={KEY}", headers={"X-API-Key": KEY}).status_code == 200
        finally:
            for logger in loggers:
                logger.removeHandler(catcher)
            for handler, stream in zip(access.handlers, previous):
                handler.setStream(stream)
    lines = shown.getvalue().splitlines()
    assert len(lines) == 7, lines
    assert KEY not in shown.getvalue()
    assert not [r.getMessage() for r in records if KEY in r.getMessage()]
    assert '"GET /v1/models HTTP/1.1" 200' in lines[0]
    assert '"GET [redacted] HTTP/1.1" 404' in lines[1] and '"POST [redacted] HTTP/1.1" 404' in lines[2]
    assert '"POST /v1/chat/completions?[redacted] HTTP/1.1" 200' in lines[5]
    assert '"GET /v1/models/lcrag-rag?[redacted] HTTP/1.1" 200' in lines[6]


# ---------------------------------------------------------- the openai client


def test_the_openai_client_talks_to_lcrag(server, ledger_path):
    openai = pytest.importorskip("openai")
    url, _ = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=30)
    assert "lcrag-auto" in [m.id for m in client.models.list()]
    answer = client.chat.completions.create(
        model="lcrag-rag", messages=[{"role": "user", "content": VOLCANO}], temperature=0.2, extra_body={"lcrag": {"k": 2}})
    assert answer.choices[0].message.content.startswith("Mount Etna in\n\nSources:\n[1] volcanoes.txt")
    info = answer.model_extra["lcrag"]
    assert len(info["citations"]) == 2 and answer.usage.prompt_tokens_details.cached_tokens == 0
    assert Ledger(ledger_path).query("SELECT count(*) AS n FROM ledger WHERE row_id = ?", [info["ledger_row_id"]])[0]["n"] == 1
    pieces, usage, last_extra = [], None, None
    for part in client.chat.completions.create(model="lcrag-lc", messages=[{"role": "user", "content": VOLCANO}],
                                               stream=True, stream_options={"include_usage": True}):
        if part.choices and part.choices[0].delta.content:
            pieces.append(part.choices[0].delta.content)
        usage = part.usage or usage
        last_extra = part.model_extra or last_extra
    assert len(pieces) >= 3 and "".join(pieces).split("\n\nSources:\n")[0]
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert last_extra["lcrag"]["strategy"] == "lc"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="lcrag-nope", messages=[{"role": "user", "content": VOLCANO}])
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="lcrag-rag", messages=[{"role": "assistant", "content": "hello"}])
    assert bad.value.param == "messages"


# ------------------------------------------------- the pieces, without a server


class _Loop:
    """Stands in for the event loop a Relay hands events to."""

    def __init__(self) -> None:
        self.calls: list = []

    def call_soon_threadsafe(self, fn, *args):
        self.calls.append(args)


def test_tap_streams_only_the_read_that_gives_the_answer():
    reader = FakeReader()
    relay = Relay(_Loop())  # type: ignore[arg-type]
    tap = StreamingTap(reader, relay)
    passage = Passage("c1", "etna.txt", 0, 70, "Mount Etna in Sicily is one of the most active volcanoes in the world.")
    declining = Prompt(VOLCANO, (passage,), allow_unanswerable=True)
    notes = Prompt(VOLCANO, (passage,), task=TAKE_NOTES, notes="")
    assert not may_give_the_answer(declining) and not may_give_the_answer(notes)
    tap.read(declining)
    tap.read_many([notes])
    assert relay.streamed == []  # neither may be the answer
    answer = tap.read_many([Prompt(VOLCANO, (passage,))])[0]
    assert "".join(relay.streamed) == answer.text == "Mount Etna in" and len(relay.streamed) == 3
    tap.read(Prompt(VOLCANO, (passage,)))
    assert len(relay.streamed) == 3  # one streamed read per request at most
    assert tap.count_tokens("two words") == 2 and tap.model == reader.model


def test_tap_stops_a_cancelled_read_and_closes_the_stream():
    reader = SlowStreamReader(piece_delay_s=0.0)
    relay = Relay(_Loop())  # type: ignore[arg-type]
    tap = StreamingTap(reader, relay)
    original = relay.delta

    def cancel_after_first(text):
        original(text)
        relay.cancel()

    relay.delta = cancel_after_first  # type: ignore[method-assign]
    with pytest.raises(ReadCancelled):
        tap.read(Prompt(VOLCANO, (Passage("c1", "d", 0, 30, "Sicily volcano Etna erupts " * 3),)))
    assert reader.abandoned.is_set() and not reader.finished.is_set() and len(relay.streamed) == 1


def test_last_read_known_except_for_a_deciding_router():
    class Router:
        def __init__(self, constant):
            self.constant = constant

    assert last_read_known("auto", None) and last_read_known("rag", Router(None))
    assert last_read_known("auto", Router("lc"))
    assert not last_read_known("auto", Router(None))
    tap = StreamingTap(FakeReader(), Relay(_Loop()), final_reads=False)  # type: ignore[arg-type]
    tap.read(Prompt(VOLCANO, (Passage("c1", "d", 0, 10, "Etna Sicily volcano"),)))
    assert tap._relay.streamed == []


def test_fake_reader_streams_its_reply_word_by_word():
    reader = FakeReader(answer_words=5)
    prompt = Prompt(VOLCANO, (Passage("c1", "d", 0, 60, "Mount Etna in Sicily is very active indeed"),))
    with reader.stream(prompt) as pieces:
        got = list(pieces)
    assert pieces.answer == reader.read(prompt)
    assert "".join(got) == pieces.answer.text and len(got) == 5


# -------------------------------------------------- the vLLM reader's stream


def _sse(*events: dict | str) -> bytes:
    return b"".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n".encode() for e in events)


def _vllm_reader(handler, answer_first_line=True):
    from lcrag.readers.config import ReaderConfig
    from lcrag.readers.vllm import VLLMReader

    config = ReaderConfig(backend="vllm", model="m", base_url="http://reader.test/v1", answer_first_line=answer_first_line)
    reader = VLLMReader(config)
    reader._client = httpx.Client(transport=httpx.MockTransport(handler))
    return reader


def _delta(text, logprob=-0.1):
    return {"choices": [{"index": 0, "delta": {"content": text},
                         "logprobs": {"content": [{"token": text, "logprob": logprob, "top_logprobs": []}]}}]}


def test_vllm_stream_relays_the_first_line_and_reads_the_usage():
    sent = {}

    def handler(request):
        sent.update(json.loads(request.content))
        body = _sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
                    _delta("\n "), _delta("Mount"), _delta(" Etna "), _delta(" \nwhich is"), _delta(" in Sicily"),
                    {"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 6,
                                              "prompt_tokens_details": {"cached_tokens": 32}}}, "[DONE]")
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    reader = _vllm_reader(handler)
    with reader.stream(Prompt(VOLCANO)) as pieces:
        got = list(pieces)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True} and sent["model"] == "m"
    assert got == ["Mount", " Etna"] and pieces.answer.text == "Mount Etna"
    answer = pieces.answer
    assert (answer.prompt_tokens, answer.completion_tokens, answer.cached_prompt_tokens) == (40, 6, 32)
    assert answer.token_logprobs == (-0.1, -0.1)  # the first line's tokens


def test_vllm_stream_closed_early_closes_the_response_and_frees_the_slot():
    closed = threading.Event()

    class Body(httpx.SyncByteStream):
        def __iter__(self):
            yield _sse(_delta("one"))
            yield _sse(_delta(" two"))
            yield _sse(_delta(" three"))

        def close(self):
            closed.set()

    reader = _vllm_reader(lambda request: httpx.Response(200, stream=Body()))
    with reader.stream(Prompt(VOLCANO)) as pieces:
        assert next(pieces) == "one"
    assert closed.is_set()
    assert pieces.answer is None
    assert reader._in_flight.acquire(blocking=False)  # every slot is back
    reader._in_flight.release()


@pytest.mark.parametrize("status, body, needle", [
    (500, b'{"error": "boom"}', "HTTP 500"),
    (200, _sse(_delta("x"), {"error": {"message": "engine died"}}), "engine died"),
    (200, _sse(_delta("x"), "[DONE]"), "without usage"),
])
def test_vllm_stream_failures_are_reader_errors(status, body, needle):
    reader = _vllm_reader(lambda request: httpx.Response(status, content=body))
    with pytest.raises(ReaderError) as err, reader.stream(Prompt(VOLCANO)) as pieces:
        list(pieces)
    assert needle in str(err.value)


@pytest.mark.parametrize("text", ["  Etna  ", "\n\nEtna\nmore", "Etna is\u2028here", "a  b \t\n c", "", "   ", "x\r\ny"])
@pytest.mark.parametrize("first_line_only", [True, False])
def test_reply_shaper_gives_what_read_gives(text, first_line_only):
    from lcrag.readers.vllm import ReplyShaper, first_line

    expected = first_line(text.strip()) if first_line_only else text.strip()
    for size in (1, 2, 3, len(text) or 1):
        shaper = ReplyShaper(first_line_only)
        passed = "".join(shaper.feed(text[i:i + size]) for i in range(0, len(text), size))
        assert passed == shaper.text == expected, (size, passed)


# ------------------------------------------------------------- real reader


@pytest.mark.slow
@pytest.mark.reader
def test_real_reader_streams_through_the_chat_endpoint(live, live_reader, tmp_path):
    from lcrag.pipeline.config import Config
    from lcrag.readers import connect_reader
    from tests.conftest import STATE

    reader = connect_reader(live_reader, STATE)
    ledger = tmp_path / "ledger.duckdb"
    try:
        app = make_app(live, reader, ledger, config=Config(reader=live_reader))
        with background_server(app) as url, httpx.Client(base_url=url, timeout=300) as client:
            status, payloads = stream_events(client, stream_options={"include_usage": True})
            whole = chat(client).json()
    finally:
        reader.close()
    assert status == 200 and payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    info, usage = chunks[-1]["lcrag"], chunks[-1]["usage"]
    assert info["streamed"] is True and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    rows = Ledger(ledger).query("SELECT answer FROM ledger WHERE row_id = ?", [info["ledger_row_id"]])
    assert rows and content_of(chunks).startswith(rows[0]["answer"]) and rows[0]["answer"].strip()
    assert whole["choices"][0]["message"]["content"].strip()
