"""Property-based tests of the query API from its own OpenAPI schema
(schemathesis): requests generated from /openapi.json, fitting the schema and
breaking it, sent with the key to the live uvicorn server; none may get a 5xx.

Bounded and deterministic: 30 examples per operation and mode, derandomized,
no example database. Each operation is one test case (schemathesis's lazy
``from_fixture`` loader does not run under this pytest, so operations are
taken from the loaded schema by name; a test checks the list is complete)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from lcrag.app.service.server import background_server
from lcrag.readers.fake import FakeReader
from tests.service_support import AUTH, build_index, make_app

OPERATIONS = [("POST", "/v1/query"), ("GET", "/v1/strategies"), ("GET", "/v1/runs"), ("GET", "/v1/health"),
              ("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("GET", "/v1/models/{model}")]
BOUNDED = settings(max_examples=30, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, encoder):
    from lcrag.pipeline.index.live import LiveIndex

    root = tmp_path_factory.mktemp("service-schema")
    with LiveIndex(build_index(root, encoder), lambda config: encoder) as live:
        app = make_app(live, FakeReader(), root / "ledger.duckdb")
        with background_server(app) as url:
            schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
            schema.config.update(base_url=url)
            yield schema


def test_every_operation_is_covered(api_schema):
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


# Requests that break the schema exist only for operations that take input.
CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    ("POST", "/v1/query", GenerationMode.NEGATIVE),
    ("GET", "/v1/runs", GenerationMode.NEGATIVE),
    ("POST", "/v1/chat/completions", GenerationMode.NEGATIVE),
]


@pytest.mark.parametrize("method, path, mode", CASES, ids=[f"{m} {p} {'fitting' if g.is_positive else 'breaking'}" for m, p, g in CASES])
def test_no_generated_request_gets_a_server_error(api_schema, method, path, mode):
    operation = api_schema[path][method]
    statuses: list[int] = []

    @BOUNDED
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        response = case.call_and_validate(headers=AUTH, checks=[not_a_server_error])
        statuses.append(response.status_code)

    check()
    assert statuses, "no request was generated"
    assert all(s < 500 for s in statuses)
    if not mode.is_positive:
        # breaking requests are refused by validation (400 on the OpenAI-compatible routes, as OpenAI answers)
        assert (400 if path == "/v1/chat/completions" else 422) in statuses
    elif path == "/v1/query":
        assert 200 in statuses  # fitting questions are answered
