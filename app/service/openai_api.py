"""The OpenAI-compatible routes: ``POST /v1/chat/completions`` and
``GET /v1/models`` (``/v1/models/{model}``), so chat clients (Open WebUI,
LibreChat, Continue, the ``openai`` libraries) can ask lcrag.

Each offered strategy is a model, ``lcrag-STRATEGY``. A request is answered by
the query path (``QueryService.answer``: same admission slots, same strategy
run, one ledger row), its conversation made into one question
(``chat.compose_question``), and the answer returned with its sources twice:
numbered under the text, for people, and in the ``lcrag`` field, for programs.

Streaming (``stream: true``): the worker thread answers as for a whole
response, with the answering read relayed piece by piece (``streaming``); the
response waits for the first piece (or the end) before it starts, so a
question refused before anything is read still gets its HTTP status. Then:
the role, the pieces, the sources, the finish, the usage when asked
(``stream_options.include_usage``) with ``lcrag`` in the last chunk, and
``data: [DONE]``. The ledger row is written when the answer is complete. A
client that goes away stops the read (the reader's request is closed), its
question becomes an error row, and its slot is given back once the worker
thread has stopped.

No ``from __future__ import annotations``: FastAPI reads the route signatures.
"""

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from lcrag.app.service.chat import (
    Ask,
    ChatCompletion,
    ModelCard,
    ModelList,
    chat_limits,
    chat_request_model,
    chunk,
    completion,
    compose_question,
    lcrag_info,
    read_conversation,
    sources_text,
    strategy_of,
    usage_of,
)
from lcrag.app.service.limits import AdmissionController
from lcrag.app.service.openai_errors import CHAT_PATH, MODELS_PATH, OpenAIError, error_object, model_id
from lcrag.app.service.querying import QueryService, describe
from lcrag.app.service.schemas import RequestLimits
from lcrag.app.service.streaming import DELTA, DONE, ReadCancelled, Relay, run_relayed
from lcrag.pipeline.index.folder import IndexStateError
from lcrag.pipeline.ledger import LedgerError
from lcrag.readers.base import ReaderError

log = logging.getLogger("lcrag.service")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE_EVENT = "data: [DONE]\n\n"


def sse(payload: dict) -> str:
    return f"data: {json.dumps(payload)}\n\n"


def stream_error(err: BaseException) -> dict:
    """What a client is told when the answer fails after the stream has started."""
    if isinstance(err, ReaderError):
        return error_object(503, "the reader stopped answering; try again later")
    if isinstance(err, (LedgerError, IndexStateError)):
        return error_object(503, "the answer could not be recorded; try again later")
    incident = uuid.uuid4().hex[:8]
    log.error("unexpected error %s in a streamed answer", incident, exc_info=err)
    return error_object(500, f"internal error {incident}; the server log has the details")


class RelayedStream(StreamingResponse):
    """A streaming response that always cleans up after itself: however it ends
    (finished, client gone, server stopping), its events are closed and
    ``cleanup`` runs (stop the worker, give the slot back), shielded from
    cancellation."""

    def __init__(self, content: AsyncIterator[str], cleanup: Callable[[], Awaitable[None]]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self._events = content
        self._cleanup = cleanup

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._events.aclose()  # type: ignore[attr-defined]
                await self._cleanup()


async def first_event_or_disconnect(relay: Relay, request: Request) -> tuple[str, Any] | None:
    """The worker's first event, or None if the client went away first (the
    body has been read, so the next message a request receives is its end)."""
    event = asyncio.ensure_future(relay.next())
    gone = asyncio.ensure_future(request.receive())
    try:
        while True:
            done, _ = await asyncio.wait({event, gone}, return_when=asyncio.FIRST_COMPLETED)
            if event in done:
                return event.result()
            if gone.result().get("type") == "http.disconnect":
                return None
            gone = asyncio.ensure_future(request.receive())  # not an end (none expected): wait on
    finally:
        for task in (event, gone):
            if not task.done():
                task.cancel()


def add_openai_routes(app: FastAPI, answering: QueryService, admission: AdmissionController, limits: RequestLimits,
                      keyed: list, responses: dict) -> None:
    """Register the routes on ``app`` (``create_app`` calls it)."""
    limits = chat_limits(limits)
    service = answering.service
    ChatRequest = chat_request_model(limits)
    created = int(time.time())
    cards = {model_id(name): ModelCard(id=model_id(name), created=created, description=describe(name))
             for name in limits.strategies}

    @app.exception_handler(OpenAIError)
    async def _openai_error(request: Request, exc: OpenAIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.get(MODELS_PATH, response_model=ModelList, dependencies=keyed, responses=responses,
             summary="OpenAI-compatible: one model per strategy (lcrag-STRATEGY)")
    async def list_models() -> ModelList:
        return ModelList(data=list(cards.values()))

    @app.get(MODELS_PATH + "/{model}", response_model=ModelCard, dependencies=keyed, responses=responses,
             summary="OpenAI-compatible: one model")
    async def get_model(model: str) -> ModelCard:
        strategy_of(model, limits)  # 404 for an unknown id
        return cards[model]

    def answer(conversation, strategy: str, options, queued_ms: float, relay: Relay | None = None):
        """In a worker thread: the conversation as one question, answered and recorded."""
        composed = compose_question(
            conversation, answering.reader.count_tokens, service.max_question_tokens, service.max_question_chars,
            service.chat_history_turns, service.chat_history_share,
        )
        ask = Ask(composed.text, strategy, options.k if options else None, options.budget_tokens if options else None)
        return answering.answer(ask, queued_ms, relay), composed

    @app.post(
        CHAT_PATH, response_model=ChatCompletion, dependencies=keyed,
        responses={**responses, 200: {"content": {"text/event-stream": {}},
                                      "description": "The answer; with stream: true, server-sent chunks"}},
        summary="OpenAI-compatible chat: the last user message is the question; the answer cites its sources",
    )
    async def chat_completions(body: ChatRequest, request: Request) -> Any:  # type: ignore[valid-type]
        strategy = strategy_of(body.model, limits)
        conversation = read_conversation(body, limits)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        arrived = time.perf_counter()
        if not body.stream:
            async with admission.admit():
                queued_ms = (time.perf_counter() - arrived) * 1000
                answered, composed = await anyio.to_thread.run_sync(answer, conversation, strategy, body.lcrag, queued_ms)
            return completion(completion_id, int(time.time()), body.model, answered, composed)

        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        slot = AsyncExitStack()
        await slot.enter_async_context(admission.admit())  # 429 here, before anything is sent
        queued_ms = (time.perf_counter() - arrived) * 1000
        relay = Relay(asyncio.get_running_loop())
        work = partial(answer, conversation, strategy, body.lcrag, queued_ms, relay)
        worker = asyncio.ensure_future(anyio.to_thread.run_sync(run_relayed, work, relay))

        released = False

        async def cleanup() -> None:
            """Stop the worker (a no-op once it has ended) and give the slot back; once."""
            nonlocal released
            if released:
                return
            released = True
            relay.cancel()
            await asyncio.shield(worker)  # the thread stops at its next piece; its slot is held until then
            await slot.aclose()

        try:
            first = await first_event_or_disconnect(relay, request)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await cleanup()
            raise
        if first is None or first[0] not in (DELTA, DONE):  # gone, or refused before anything was read
            with anyio.CancelScope(shield=True):
                await cleanup()
            if first is None:
                return Response(status_code=499)  # nobody reads it
            raise first[1]
        created = int(time.time())
        stamp = partial(chunk, completion_id, created, body.model)

        async def events() -> AsyncIterator[str]:
            yield sse(stamp({"role": "assistant", "content": ""}))
            kind, value = first
            pieces: list[str] = []
            while kind == DELTA:
                pieces.append(value)
                yield sse(stamp({"content": value}))
                kind, value = await relay.next()
            with anyio.CancelScope(shield=True):  # the worker has ended: the slot is free before the tail is sent
                await cleanup()
            if kind != DONE:
                if not isinstance(value, ReadCancelled):
                    yield sse(stream_error(value))
                return
            answered, composed = value
            if not pieces and answered.answer:
                yield sse(stamp({"content": answered.answer}))  # read whole (see streaming): one piece
            elif pieces and "".join(pieces) != answered.answer:
                log.warning("a streamed answer differs from the recorded one (%s)", answered.ledger_row_id)
            sources = sources_text(answered.citations)
            if sources:
                yield sse(stamp({"content": sources}))
            info = lcrag_info(answered, composed, streamed=bool(pieces)).model_dump(mode="json")
            if include_usage:
                yield sse(stamp({}, "stop"))
                yield sse(stamp(None, None, usage=usage_of(answered).model_dump(mode="json"), lcrag=info))
            else:
                yield sse(stamp({}, "stop", lcrag=info))
            yield DONE_EVENT

        return RelayedStream(events(), cleanup)
