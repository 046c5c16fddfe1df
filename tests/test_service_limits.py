"""The query API's limits on what one client can make it do: bodies that are not
UTF-8, too large or too slow, questions that cost too many reader tokens,
loosely typed values, slow request heads, and keys in URLs kept out of logs.

Most run in process (Starlette's TestClient); what only a real connection shows
(half-sent requests, closed connections, the access log, exact bytes on the
wire) runs against uvicorn on 127.0.0.1 through a raw socket. Servers here have
short deadlines (1 s) and a small body limit (2 KiB) so each case takes
seconds."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from lcrag.app.service.access_log import redact_target
from lcrag.app.service.server import background_server
from lcrag.app.service.validation import INPUT_EXCERPT_CHARS, MAX_ERRORS, excerpt
from lcrag.pipeline.config import ConfigError, ServiceConfig
from lcrag.pipeline.ledger import Ledger
from lcrag.readers.fake import FakeReader
from tests.conftest import CountingReader
from tests.service_support import AUTH, KEY, BlockingReader, make_app

VOLCANO = "Which volcano in Sicily is very active?"
SMALL_BODY = 2048  # bytes, the body limit of the servers here
DEADLINE_S = 1.0  # their header and body deadlines
PATIENT_S = 600.0  # the deadlines of the patient server: no test here lasts that long
WAIT_S = 30.0  # how long a test waits for the server before calling it a failure (a hang guard)


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory):
    return tmp_path_factory.mktemp("limits-ledger") / "ledger.duckdb"


@pytest.fixture(scope="module")
def client(live, ledger_path):
    """The app with the default limits, in process."""
    with TestClient(make_app(live, FakeReader(), ledger_path)) as client:
        yield client


@pytest.fixture(scope="module")
def server(live, tmp_path_factory):
    """A real uvicorn server with a 2 KiB body limit and 1 s deadlines; yields (host, port)."""
    app = make_app(live, FakeReader(), tmp_path_factory.mktemp("limits-server") / "ledger.duckdb",
                   max_body_bytes=SMALL_BODY, body_timeout_s=DEADLINE_S)
    with background_server(app, header_timeout_s=DEADLINE_S) as url:
        parts = urlsplit(url)
        yield parts.hostname, parts.port


@pytest.fixture(scope="module")
def patient_server(live, tmp_path_factory):
    """As ``server`` with deadlines of PATIENT_S: a connection it closes within WAIT_S was
    answered on what had arrived, never by a deadline; yields (host, port)."""
    app = make_app(live, FakeReader(), tmp_path_factory.mktemp("limits-patient") / "ledger.duckdb",
                   max_body_bytes=SMALL_BODY, body_timeout_s=PATIENT_S)
    with background_server(app, header_timeout_s=PATIENT_S) as url:
        parts = urlsplit(url)
        yield parts.hostname, parts.port


@pytest.fixture
def server_logs():
    """Every record the server's loggers emit during a test (uvicorn's do not propagate to the root)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in ("lcrag.service", "uvicorn", "uvicorn.error", "uvicorn.access", "")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


# ------------------------------------------------------------ raw HTTP helpers


def connect(address) -> socket.socket:
    sock = socket.create_connection(address, timeout=WAIT_S)
    sock.settimeout(0.2)
    return sock


def head(method: str, path: str, *lines: str) -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *lines, "", ""]).encode()


def until_closed(sock: socket.socket, trickle: bytes | None = None, wait_s: float = WAIT_S) -> tuple[bytes, bool, int]:
    """Read until the server closes the connection (``wait_s`` at most: a hang guard),
    sending one byte of ``trickle`` every 0.2 s meanwhile; (bytes read, closed, bytes
    of the trickle sent)."""
    started = time.monotonic()
    data, pending, sent = b"", list(trickle or b""), 0
    while time.monotonic() - started < wait_s:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if pending:
                try:
                    sock.sendall(bytes([pending.pop(0)]))
                    sent += 1
                except OSError:
                    return data, True, sent
            continue
        except ConnectionResetError:
            return data, True, sent
        if not chunk:
            return data, True, sent
        data += chunk
    return data, False, sent


def assert_no_errors_logged(records: list[logging.LogRecord]) -> None:
    problems = [r for r in records if r.levelno >= logging.ERROR or r.exc_info]
    assert not problems, [r.getMessage() for r in problems]


def response_of(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of the first HTTP response in ``data``."""
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body[: int(headers.get("content-length", len(body)))]


def post_raw(address, body: bytes, *headers: str) -> tuple[int, dict[str, str], bytes]:
    with connect(address) as sock:
        sock.sendall(head("POST", "/v1/query", f"Content-Length: {len(body)}", "Connection: close", *headers) + body)
        data, closed, _ = until_closed(sock)
    assert closed and data.startswith(b"HTTP/1.1 "), data
    return response_of(data)


# --------------------------------------------------- 1. bodies that are not UTF-8

UNDECODABLE = {
    "ff-fe": b"\xff\xfe\xfd",
    "lone-continuation": b"\x80" * 64,
    "truncated-sequence": b"\xc3\x28 question",
    "latin-1-json": '{"question": "café volcano"}'.encode("latin-1"),
    "utf8-encoded-surrogate": b'{"question": "Etna \xed\xa0\x80"}',
    "nul-and-high-bytes": b"\x00\xff\x00\xfe{",
}
CONTENT_TYPES = [None, "text/plain", "application/json", "application/octet-stream", "text/plain; charset=utf-8"]


@pytest.mark.parametrize("content_type", CONTENT_TYPES, ids=lambda c: c or "no-content-type")
@pytest.mark.parametrize("body", list(UNDECODABLE.values()), ids=list(UNDECODABLE))
def test_undecodable_body_is_a_short_4xx_without_a_logged_traceback(server, server_logs, body, content_type):
    headers = [f"Authorization: Bearer {KEY}"] + ([f"Content-Type: {content_type}"] if content_type else [])
    status, _, answer = post_raw(server, body, *headers)
    assert status in (400, 422), answer
    error = json.loads(answer)
    assert set(error) in ({"error"}, {"detail"})
    assert len(answer) < 1000
    assert_no_errors_logged(server_logs)


def test_undecodable_input_is_echoed_as_text(client):
    response = client.post("/v1/query", content=b"\xff\xfe\xfd", headers={**AUTH, "content-type": "text/plain"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["input"] == "\ufffd\ufffd\ufffd"


# ------------------------------------------------------------ 2. body size


def test_large_body_is_refused_with_413_and_not_echoed(client):
    response = client.post("/v1/query", content=b'{"question": "' + b"x" * (10 * 2**20) + b'"}', headers=AUTH)
    assert response.status_code == 413
    assert len(response.content) < 200
    assert response.json() == {"error": "the request body is larger than 65536 bytes; send a shorter one"}
    assert response.headers["connection"] == "close"


def test_body_limit_comes_before_the_key(client):
    response = client.post("/v1/query", content=b"x" * 70_000)
    assert response.status_code == 413


def test_body_limit_is_configurable(live, tmp_path):
    app = make_app(live, FakeReader(), tmp_path / "ledger.duckdb", max_body_bytes=1024)
    with TestClient(app) as small:
        assert small.post("/v1/query", json={"question": VOLCANO, "strategy": "rag"}, headers=AUTH).status_code == 200
        refused = small.post("/v1/query", json={"question": VOLCANO + " x" * 600}, headers=AUTH)
    assert refused.status_code == 413
    assert "1024 bytes" in refused.json()["error"]


def test_chunked_body_over_the_limit_is_refused(client):
    def chunks():
        for _ in range(70):
            yield b"y" * 1000

    response = client.post("/v1/query", content=chunks(), headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 413


def test_declared_length_over_the_limit_is_refused_before_the_body_is_sent(patient_server, server_logs):
    with connect(patient_server) as sock:
        sock.sendall(head("POST", "/v1/query", f"Authorization: Bearer {KEY}", f"Content-Length: {10 * 2**20}"))
        data, closed, _ = until_closed(sock)
    assert closed  # answered at once: its body deadline is PATIENT_S away
    status, headers, body = response_of(data)
    assert status == 413 and headers["connection"] == "close"
    assert str(SMALL_BODY) in json.loads(body)["error"]
    assert_no_errors_logged(server_logs)


def test_chunked_body_is_counted_as_it_streams_and_refused_part_way(patient_server, server_logs):
    chunk = b"400\r\n" + b"y" * 1024 + b"\r\n"  # 1 KiB chunks, and never the last (zero) chunk
    with connect(patient_server) as sock:
        sock.sendall(head("POST", "/v1/query", f"Authorization: Bearer {KEY}", "Transfer-Encoding: chunked",
                          "Content-Type: application/json") + chunk * 3)
        data, closed, _ = until_closed(sock)
    assert closed  # refused on the bytes: its body deadline is PATIENT_S away
    assert response_of(data)[0] == 413, data
    assert_no_errors_logged(server_logs)


def test_validation_errors_echo_only_a_short_excerpt(client):
    long_question = "x" * 50_000  # inside the body limit, far over the question limit
    response = client.post("/v1/query", json={"question": long_question, "notes": "y" * 10_000}, headers=AUTH)
    assert response.status_code == 422
    assert len(response.content) < 1500
    inputs = [e["input"] for e in response.json()["detail"] if "input" in e]
    assert inputs and all(len(json.dumps(i)) <= INPUT_EXCERPT_CHARS + 10 for i in inputs)
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {("body", "question"), ("body", "notes")}


def test_many_errors_are_listed_up_to_a_bound(client):
    body = {"question": VOLCANO, **{f"extra{i}": i for i in range(500)}}
    response = client.post("/v1/query", json=body, headers=AUTH)
    assert response.status_code == 422
    assert len(response.json()["detail"]) == MAX_ERRORS


@pytest.mark.parametrize(
    "value, shown",
    [
        ("short", "short"),
        ("z" * 500, "z" * INPUT_EXCERPT_CHARS + "…"),
        (b"\xff" * 3, "\ufffd" * 3),
        (float("nan"), "nan"),
        ({"a": 1}, {"a": 1}),
        ({"a": "b" * 500}, '{"a": "' + "b" * (INPUT_EXCERPT_CHARS - 7) + "…"),
        (7, 7),
        (None, None),
    ],
    ids=["short-text", "long-text", "bytes", "nan", "small-object", "large-object", "int", "null"],
)
def test_excerpt(value, shown):
    assert excerpt(value) == shown
    json.dumps(excerpt(value), allow_nan=False)  # always writable as strict JSON


# ------------------------------------------------ 3. question length in tokens


def test_question_over_the_token_limit_is_422_before_reading(live, tmp_path):
    reader = CountingReader()
    ledger = tmp_path / "ledger.duckdb"
    app = make_app(live, reader, ledger, max_question_tokens=5)
    with TestClient(app) as small:
        refused = small.post("/v1/query", json={"question": "one two three four five six", "strategy": "rag"}, headers=AUTH)
        assert refused.status_code == 422
        error = refused.json()["detail"][0]
        assert error["loc"] == ["body", "question"] and error["type"] == "too_many_tokens"
        assert error["msg"] == "the question is 6 reader tokens long; shorten it to at most 5"
        assert "one two three four five six" in reader.counted  # counted by the reader's tokenizer
        assert reader.calls == [] and Ledger(ledger).count() == 0  # nothing was read or recorded
        answered = small.post("/v1/query", json={"question": "which volcano in Sicily erupts", "strategy": "rag"}, headers=AUTH)
        assert answered.status_code == 200, answered.text


def test_many_token_characters_are_refused_within_the_character_limit(client):
    question = " ".join(["\U0001d49c"] * 600)  # 1,199 characters (four UTF-8 bytes each), 600 tokens
    assert len(question) < ServiceConfig().max_question_chars
    response = client.post("/v1/query", json={"question": question}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["ctx"] == {"tokens": 600, "max_tokens": 512}


def test_token_limit_is_in_the_schema_description(client):
    schema = client.get("/openapi.json").json()
    question = schema["components"]["schemas"]["QueryRequest"]["properties"]["question"]
    assert "512 tokens" in question["description"]


# ----------------------------------------------------------- 4. slow clients


def test_half_sent_request_head_is_closed_with_408(server, server_logs):
    opened = time.monotonic()  # before the server's deadline starts: a slow machine only adds to `waited`
    with connect(server) as sock:
        sock.sendall(b"POST /v1/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        data, closed, _ = until_closed(sock)
    waited = time.monotonic() - opened
    assert closed, "the server kept a half-sent request open"
    assert waited >= DEADLINE_S * 0.8  # not before its deadline
    assert response_of(data)[0] == 408
    assert_no_errors_logged(server_logs)


def test_trickled_request_head_does_not_extend_the_deadline(server):
    with connect(server) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\n")
        data, closed, trickled = until_closed(sock, trickle=b"X-Slow: " + b"a" * 200)
    # closed at its deadline while the client was still sending (the whole trickle takes 40 s)
    assert closed and trickled < len(b"X-Slow: ") + 200
    assert response_of(data)[0] == 408


def test_connection_that_sends_nothing_is_closed(server):
    with connect(server) as sock:
        data, closed, _ = until_closed(sock)
    assert closed and data == b""  # by its head deadline, within until_closed's hang guard


@pytest.mark.parametrize("trickle", [None, b"y" * 200], ids=["stalled", "trickled"])
def test_half_sent_body_gets_408_and_a_closed_connection(server, server_logs, trickle):
    opened = time.monotonic()  # before the server's deadline starts: a slow machine only adds to `waited`
    with connect(server) as sock:
        sock.sendall(head("POST", "/v1/query", f"Authorization: Bearer {KEY}", "Content-Type: application/json",
                          "Content-Length: 500") + b'{"question": "')
        data, closed, trickled = until_closed(sock, trickle=trickle)
    waited = time.monotonic() - opened
    assert closed, "the server kept a half-sent body open"
    assert waited >= DEADLINE_S * 0.8  # not before its deadline
    assert trickle is None or trickled < len(trickle)  # closed mid-trickle: its bytes do not extend the deadline
    status, headers, body = response_of(data)
    assert status == 408 and headers["connection"] == "close"
    assert "did not arrive within 1 s" in json.loads(body)["error"]
    assert_no_errors_logged(server_logs)


def test_half_sent_body_without_a_key_gets_401_and_a_closed_connection(patient_server, server_logs):
    with connect(patient_server) as sock:
        sock.sendall(head("POST", "/v1/query", "Content-Type: application/json", "Content-Length: 500") + b'{"q')
        data, closed, _ = until_closed(sock, trickle=b"y" * 200)
    # at once: nothing of the body is waited for (its body deadline is PATIENT_S away)
    assert closed, "the server kept an unauthenticated half-sent body open"
    status, headers, _ = response_of(data)
    assert status == 401 and headers["connection"] == "close"
    assert_no_errors_logged(server_logs)


def test_keep_alive_connection_serves_requests_after_a_pause(server):
    with connect(server) as sock:
        for _ in range(2):
            sock.sendall(head("GET", "/v1/health"))
            deadline, data = time.monotonic() + WAIT_S, b""
            while b"\r\n\r\n" not in data or not data.endswith(b"}"):
                assert time.monotonic() < deadline, data
                try:
                    data += sock.recv(65536)
                except TimeoutError:
                    pass
            assert response_of(data)[0] == 200
            time.sleep(DEADLINE_S / 2)


def test_a_question_answered_slower_than_the_deadlines_is_not_cut(live, tmp_path):
    reader = BlockingReader()
    app = make_app(live, reader, tmp_path / "ledger.duckdb", body_timeout_s=DEADLINE_S)
    fired = threading.Event()
    release = threading.Timer(DEADLINE_S * 2.5, lambda: (fired.set(), reader.release.set()))
    with background_server(app, header_timeout_s=DEADLINE_S) as url, httpx.Client(base_url=url, timeout=WAIT_S * 3) as http:
        release.start()
        try:
            response = http.post("/v1/query", json={"question": VOLCANO, "strategy": "rag"}, headers=AUTH)
            # answered only once the timer released the reader: the question outlasted both deadlines
            answered_after_the_release = fired.is_set()
        finally:
            reader.release.set()
            release.cancel()
    assert response.status_code == 200, response.text
    assert answered_after_the_release


# ------------------------------------------------------------- 5. strict types


@pytest.mark.parametrize(
    "field, value",
    [("k", True), ("k", False), ("k", 2.0), ("k", "3"), ("budget_tokens", True), ("budget_tokens", 128.0),
     ("budget_tokens", "128"), ("question", True), ("strategy", 1)],
    ids=["k-true", "k-false", "k-float", "k-string", "budget-true", "budget-float", "budget-string",
         "question-bool", "strategy-int"],
)
def test_loosely_typed_values_are_422(client, field, value):
    body = {"question": VOLCANO, "strategy": "rag", field: value}
    response = client.post("/v1/query", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert ["body", field] in [e["loc"] for e in response.json()["detail"]]


def test_strictly_typed_values_are_answered(client):
    response = client.post("/v1/query", json={"question": VOLCANO, "strategy": "rag", "k": 2, "budget_tokens": 128}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert len(response.json()["citations"]) == 2


# ------------------------------------------------------ 6. no key in the logs


def test_keys_in_the_url_never_reach_the_access_log(live, tmp_path):
    app = make_app(live, FakeReader(), tmp_path / "ledger.duckdb")
    shown = io.StringIO()
    with background_server(app, log_level="debug") as url, httpx.Client(base_url=url, timeout=WAIT_S) as http:
        access = logging.getLogger("uvicorn.access")
        assert access.handlers, "no access log at debug level"
        previous = [h.setStream(shown) for h in access.handlers if isinstance(h, logging.StreamHandler)]
        try:
            assert http.get("/v1/runs", params={"limit": 1, "api_key": KEY}, headers=AUTH).status_code == 200
            assert http.get("/v1/strategies", params={"key": KEY}).status_code == 401
            assert http.get("/v1/strategies", params={"token": KEY, "X-API-Key": KEY}).status_code == 401
            assert http.get(f"/v1/health?{KEY}").status_code == 200
            assert http.post(f"/v1/query?access_token={KEY}", json={"question": VOLCANO}).status_code == 401
        finally:
            for handler, stream in zip(access.handlers, previous):
                handler.setStream(stream)
    lines = shown.getvalue().splitlines()
    assert len(lines) == 5, lines
    assert KEY not in shown.getvalue()
    assert "/v1/runs?limit=1&[redacted]" in lines[0]
    assert all("[redacted]" in line for line in lines)


@pytest.mark.parametrize(
    "target, shown",
    [
        ("/v1/runs", "/v1/runs"),
        ("/v1/runs?limit=5&offset=10", "/v1/runs?limit=5&offset=10"),
        (f"/v1/runs?api_key={KEY}&limit=5", "/v1/runs?limit=5&[redacted]"),
        (f"/v1/query?{KEY}", "/v1/query?[redacted]"),
        (f"/v1/runs?limit={KEY}", "/v1/runs?[redacted]"),
        (f"/v1/runs?TOKEN={KEY}&key={KEY}", "/v1/runs?[redacted]"),
        (f"/v1/chat/completions?api_key={KEY}", "/v1/chat/completions?[redacted]"),
        ("/v1/models/lcrag-op-rag", "/v1/models/lcrag-op-rag"),
        (f"/v1/models/{KEY}", "[redacted]"),
        (f"/v1/{KEY}/chat/completions", "[redacted]"),
        (f"/{KEY}?limit=2", "[redacted]?limit=2"),
    ],
    ids=["no-query", "api-parameters", "api-key", "bare-key", "key-as-a-value", "several", "chat-api-key",
         "model-page", "key-as-a-model", "key-in-the-path", "key-as-the-path"],
)
def test_redact_target(target, shown):
    assert redact_target(target) == shown


def test_limits_are_validated_by_the_config():
    for bad in ({"max_body_bytes": 100}, {"body_timeout_s": 0}, {"header_timeout_s": -1}, {"max_question_tokens": 0},
                {"max_connections": 0}, {"max_chat_body_bytes": 100}, {"chat_history_turns": -1},
                {"chat_history_share": 1.0}, {"chat_history_share": -0.1}):
        with pytest.raises(ConfigError) as err:
            ServiceConfig(**bad)
        assert f"service.{next(iter(bad))}" in str(err.value)
