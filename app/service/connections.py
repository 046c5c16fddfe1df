"""A deadline for each request's line and headers, which uvicorn lacks.

uvicorn closes a keep-alive connection that stays idle, but one that has sent
part of a request line or of its headers waits for the rest for ever, and those
connections are held before the API key or any middleware can see a request.
This is uvicorn's h11 protocol with one timer more: armed when a connection
opens and after each response, it closes the connection if no complete request
head has arrived by then. A client caught part way through is told so (408);
one that sent nothing is closed silently, as uvicorn closes idle ones.
(The body has its own deadline: ``lcrag.app.service.body``.)

It also answers at uvicorn's connection cap (``limit_concurrency``, the config's
``service.max_connections``). uvicorn's own answer there is a plain-text 503
without Retry-After, which tells a chat client neither what happened nor when
to come back; this protocol takes the check over: a request arriving while more
than the cap's connections are open (or requests are being answered), this one
counted, gets a JSON 503 in its API's error shape with ``Retry-After``, and its
connection is closed, at once and before the application sees it.
"""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from lcrag.app.service.asgi import CLOSE, Receive, Scope, Send, send_json
from lcrag.app.service.openai_errors import error_payload

AT_CAPACITY = "the server has as many connections open as it serves at once; retry after Retry-After seconds"

_TIMEOUT_BODY = json.dumps({"error": "the request headers did not arrive in time; send them at once"}).encode()
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY
)


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's ``H11Protocol``, closing connections whose request head takes
    longer than ``header_timeout_s``. Pass it to ``uvicorn.Config(http=...)``
    bound with ``functools.partial``."""

    def __init__(self, *args, header_timeout_s: float, retry_after_s: int = 2, **kwargs) -> None:
        if header_timeout_s <= 0:
            raise ValueError(f"header_timeout_s must be > 0, got {header_timeout_s}")
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None
        # The connection cap: uvicorn's check is switched off and made here instead.
        self.max_connections = self.limit_concurrency
        self.limit_concurrency = None
        self.retry_after_s = retry_after_s
        if self.max_connections is not None:
            self.app = self._capped(self.app)

    def _capped(self, app):
        async def capped(scope: Scope, receive: Receive, send: Send) -> None:
            cap = self.max_connections
            assert cap is not None  # _capped is only installed with a cap
            # both sets already count this connection and this request's task
            if scope["type"] == "http" and (len(self.connections) > cap or len(self.tasks) > cap):
                self.logger.warning("at the connection cap (%d): refused with 503", cap)
                await send_json(send, 503, error_payload(scope["path"], 503, AT_CAPACITY),
                                [(b"retry-after", str(self.retry_after_s).encode()), CLOSE])
                return
            await app(scope, receive, send)

        return capped

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_overdue)

    def _disarm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        # IDLE: no request head complete since the connection opened or the last response.
        if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
            return
        partial, _ = self.conn.trailing_data
        if partial:
            self.transport.write(REQUEST_TIMEOUT)
        try:
            self.conn.send(h11.ConnectionClosed())
        except h11.LocalProtocolError:
            pass
        self.transport.close()
