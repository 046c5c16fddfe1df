"""The FastAPI application: routes, the key gate, admission control and the
mapping of failures to short JSON errors.

Blocking work (retrieval, reading, the ledger) runs in worker threads; the
event loop only admits, waits and answers. Failures clients can act on have
their own status (400, 401, 408, 413, 422, 429, 503, each with a one-line
``{"error": ...}`` body or FastAPI's field-naming validation body, whose echoed
inputs are cut short); anything else is logged with its traceback and answered
with a 500 that names an incident id and nothing else
(``lcrag.app.service.errors``).

Middleware, outermost first: the OpenAI error shape (``openai_errors``: the
OpenAI-compatible routes' errors as OpenAI's clients read them), the body
limits (``body``: size and arrival time, checked before the key so a refused
body is never read whole), the key gate (``auth``), the catch-all (``errors``).

The OpenAI-compatible routes (``/v1/chat/completions``, ``/v1/models``) are
added by ``openai_api`` over the same answering path, admission and limits.

No ``from __future__ import annotations`` here: FastAPI reads the route
signatures, and the query body's model is built inside ``create_app``.
"""

import logging
import time
from typing import Any

import anyio
from fastapi import FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from lcrag.app.service.access_log import shown_path
from lcrag.app.service.auth import ApiKeyMiddleware
from lcrag.app.service.body import BodyLimitMiddleware
from lcrag.app.service.chat import OpenAIErrorBody
from lcrag.app.service.errors import CatchAllMiddleware
from lcrag.app.service.health import ReaderProbe
from lcrag.app.service.ledger_writer import GroupCommitLedger
from lcrag.app.service.limits import AdmissionController, Saturated
from lcrag.app.service.openai_api import add_openai_routes
from lcrag.app.service.openai_errors import CHAT_PATH, OpenAIErrorShape, error_object, is_openai_path
from lcrag.app.service.querying import (
    QueryService,
    QuestionTooLong,
    describe,
    request_limits,
    uses_k,
)
from lcrag.app.service.schemas import (
    ErrorBody,
    HealthResponse,
    QueryResponse,
    RunsResponse,
    StrategiesResponse,
    StrategyInfo,
    ledger_entry,
    query_request_model,
)
from lcrag.app.service.validation import validation_body
from lcrag.pipeline.config import Config, ServiceConfig
from lcrag.pipeline.index.folder import IndexStateError
from lcrag.pipeline.ledger import Ledger, LedgerError
from lcrag.pipeline.routing.router import RouterFile, router_path
from lcrag.readers.base import ReaderError

log = logging.getLogger("lcrag.service")

HEALTH_PATH = "/v1/health"
MAX_RUNS_PAGE = 200
MAX_OFFSET = 1_000_000_000


def _error(status: int, message: str, retry_after_s: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _responses(*codes: int, model: type = ErrorBody) -> dict[int | str, dict[str, Any]]:
    meaning = {
        400: "a request that cannot be answered (the field is named in param)",
        401: "missing or wrong API key",
        404: "no such model",
        408: "the request body did not arrive in time; the connection is closed",
        413: "the request body is larger than the server accepts; the connection is closed",
        429: "too many questions in flight and queued; retry after Retry-After seconds",
        503: "the reader, ledger or index is unavailable, or every connection is taken; retry after Retry-After seconds",
    }
    return {code: {"model": model, "description": meaning[code]} for code in codes}


def create_app(live, reader, ledger: Ledger, config: Config, service: ServiceConfig, attention=None) -> FastAPI:
    """The query API over ``live`` (a ``lcrag.pipeline.index.live.LiveIndex``), answered
    by ``reader`` and recorded in ``ledger``. ``service.api_key`` must be set (the
    caller resolves it, see ``lcrag.app.service.auth.resolve_api_key``);
    ``attention`` enables attention-sort."""
    if not service.api_key:
        raise ValueError("create_app needs service.api_key (resolve it with pipeline.service.auth.resolve_api_key)")
    limits = request_limits(config, service, attention is not None)
    QueryRequest = query_request_model(limits)
    answering = QueryService(live, reader, GroupCommitLedger(ledger), config, service, attention,
                             RouterFile(router_path(live.root)) if hasattr(live, "root") else None)
    admission = AdmissionController(service.max_in_flight, service.max_queued, service.retry_after_s)
    probe = ReaderProbe(reader, service.health_cache_s)
    strategies = StrategiesResponse(
        default=limits.default_strategy,
        strategies=[StrategyInfo(name=n, description=describe(n), uses_k=uses_k(n)) for n in limits.strategies],
    )

    app = FastAPI(
        title="lcrag query API",
        version="1",
        description="Ask questions of an lcrag index: /v1/query, or OpenAI's chat API (/v1/chat/completions, "
        "/v1/models: one model per strategy). Every route but /v1/health needs the API key "
        "(`Authorization: Bearer KEY` or `X-API-Key: KEY`).",
    )
    open_paths = {HEALTH_PATH, app.openapi_url, app.docs_url, app.redoc_url, f"{app.docs_url}/oauth2-redirect"}
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(ApiKeyMiddleware, api_key=service.api_key, open_paths={p for p in open_paths if p})
    app.add_middleware(BodyLimitMiddleware, max_bytes=service.max_body_bytes, timeout_s=service.body_timeout_s,
                       path_max_bytes={CHAT_PATH: service.max_chat_body_bytes})
    app.add_middleware(OpenAIErrorShape)
    # Declared so the schema and /docs show both ways to send the key; the middleware checks it.
    keyed = [Security(HTTPBearer(auto_error=False)), Security(APIKeyHeader(name="X-API-Key", auto_error=False))]

    @app.exception_handler(Saturated)
    async def _saturated(request: Request, exc: Saturated) -> JSONResponse:
        return _error(429, str(exc), exc.retry_after_s)

    def unavailable(what: str, message: str):
        """A 503 with Retry-After for a dependency that is down or busy, logged."""

        async def handler(request: Request, exc: Exception) -> JSONResponse:
            log.warning("%s error on %s: %s", what, shown_path(request.url.path), exc)
            return _error(503, message, service.retry_after_s)

        return handler

    app.add_exception_handler(ReaderError, unavailable("reader", "the reader is not answering; try again later"))
    app.add_exception_handler(LedgerError, unavailable("ledger", "the ledger is busy; try again later"))
    app.add_exception_handler(IndexStateError, unavailable("index", "the index is not available; try again later"))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's body (each error names its field), with short, JSON-safe excerpts of the input.
        return Response(validation_body(exc.errors()), status_code=422, media_type="application/json")

    @app.exception_handler(QuestionTooLong)
    async def _too_long(request: Request, exc: QuestionTooLong) -> Response:
        if is_openai_path(request.url.path):  # the last user message is the question
            return JSONResponse(error_object(400, str(exc), "messages", "context_length_exceeded"), status_code=400)
        error = {"type": "too_many_tokens", "loc": ("body", "question"), "msg": str(exc),
                 "ctx": {"tokens": exc.tokens, "max_tokens": exc.limit}}
        return Response(validation_body([error]), status_code=422, media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.post(
        "/v1/query", response_model=QueryResponse, dependencies=keyed, responses=_responses(401, 408, 413, 429, 503),
        summary="Answer a question with citations; the answer is recorded in the ledger",
    )
    async def query(body: QueryRequest) -> QueryResponse:  # type: ignore[valid-type]
        arrived = time.perf_counter()
        async with admission.admit():
            queued_ms = (time.perf_counter() - arrived) * 1000
            return await anyio.to_thread.run_sync(answering.answer, body, queued_ms)

    @app.get("/v1/strategies", response_model=StrategiesResponse, dependencies=keyed, responses=_responses(401))
    async def list_strategies() -> StrategiesResponse:
        return strategies

    @app.get(
        "/v1/runs", response_model=RunsResponse, dependencies=keyed, responses=_responses(401, 503),
        summary="Recent ledger rows, newest first",
    )
    def runs(
        limit: int = Query(20, ge=1, le=MAX_RUNS_PAGE, description="Rows per page."),
        offset: int = Query(0, ge=0, le=MAX_OFFSET, description="Rows to skip."),
    ) -> RunsResponse:
        rows = ledger.rows(limit=limit, offset=offset)
        return RunsResponse(rows=[ledger_entry(r) for r in rows], limit=limit, offset=offset, total=ledger.count())

    add_openai_routes(app, answering, admission, limits, keyed,
                      _responses(400, 401, 404, 408, 413, 429, 503, model=OpenAIErrorBody))

    @app.get(HEALTH_PATH, response_model=HealthResponse, summary="Liveness, the live generation and the reader (no key)")
    def health() -> HealthResponse:
        reachable = probe.reachable()
        return HealthResponse(
            status="ok" if reachable else "degraded",
            generation=live.current_name(),
            reader_reachable=reachable,
            model=reader.model,
            in_flight=admission.in_flight,
            queued=admission.queued,
        )

    return app
