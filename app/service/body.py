"""Bounds on a request body: its size and the time it takes to arrive.

A body larger than any question needs, or trickled in to hold a connection,
costs the server memory and a connection slot while the client pays nothing.
This middleware sits outside everything else: a Content-Length over the limit
is answered 413 before a byte of the body is read, and the bytes and the time
of a body the application reads are counted as they pass (a chunked body has
no length to check up front), so an oversized or slow body is refused with 413
or 408 part way through, never held whole.

A response sent before the body was read to its end (a 401 to a request
without the key, or one of these refusals) asks for the connection to be
closed: the unread rest would otherwise keep it open for as long as the client
goes on trickling it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import anyio

from lcrag.app.service.asgi import CLOSE, ASGIApp, Receive, Scope, Send, send_json

DISCONNECT = {"type": "http.disconnect"}


def declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length a request declares, or None (absent or not a number:
    the HTTP parser refuses a malformed one before the application sees it)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def has_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether a request comes with a body: a positive Content-Length or a transfer coding."""
    headers = list(headers)
    if any(name.lower() == b"transfer-encoding" for name, _ in headers):
        return True
    return (declared_length(headers) or 0) > 0


def too_large(max_bytes: int) -> dict:
    return {"error": f"the request body is larger than {max_bytes} bytes; send a shorter one"}


def too_slow(timeout_s: float) -> dict:
    return {"error": f"the request body did not arrive within {timeout_s:g} s; send it at once"}


@dataclass
class _BodyState:
    """One request's body so far (mutable: the receive and send wrappers share it)."""

    complete: bool
    received: int = 0
    refused: bool = False  # this middleware answered; the application's answer is dropped
    started: bool = False  # a response has started


class BodyLimitMiddleware:
    """At most ``max_bytes`` of body per request, all of it within ``timeout_s``
    of the request's headers."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float,
                 clock: Callable[[], float] = time.monotonic, path_max_bytes: Mapping[str, int] | None = None) -> None:
        if max_bytes < 1 or any(n < 1 for n in (path_max_bytes or {}).values()):
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes} ({path_max_bytes})")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.app = app
        self.max_bytes = max_bytes
        self.path_max_bytes = dict(path_max_bytes or {})  # paths with a limit of their own
        self.timeout_s = timeout_s
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_max_bytes.get(scope["path"], self.max_bytes)
        declared = declared_length(scope["headers"])
        if declared is not None and declared > max_bytes:
            await send_json(send, 413, too_large(max_bytes), [CLOSE])
            return
        state = _BodyState(complete=not has_body(scope["headers"]))
        deadline = self._clock() + self.timeout_s

        async def refuse(status: int, payload: dict) -> dict:
            state.refused = True
            if not state.started:
                state.started = True
                await send_json(send, status, payload, [CLOSE])
            return DISCONNECT  # what the application sees: the client is gone

        async def limited_receive() -> dict:
            if state.refused:
                return DISCONNECT
            if state.complete:
                return await receive()  # after the body: waiting for a disconnect, unbounded
            message = None
            with anyio.move_on_after(max(0.0, deadline - self._clock())):
                message = await receive()
            if message is None:
                return await refuse(408, too_slow(self.timeout_s))
            if message["type"] == "http.request":
                state.received += len(message.get("body", b""))
                if state.received > max_bytes:
                    return await refuse(413, too_large(max_bytes))
                state.complete = not message.get("more_body", False)
            return message

        async def guarded_send(message: dict) -> None:
            if state.refused:
                return
            if message["type"] == "http.response.start":
                state.started = True
                if not state.complete:
                    message = {**message, "headers": [*message.get("headers", []), CLOSE]}
            await send(message)

        await self.app(scope, limited_receive, guarded_send)
