"""The last line of defence: an error nobody planned for becomes a logged
traceback and a JSON 500 that reveals nothing.

Starlette's own catch-all answers 500 too, but then re-raises, so the server
drops the connection (a keep-alive client's next request fails) and logs the
error twice. This middleware sits inside it and ends the story itself.
"""

from __future__ import annotations

import logging
import uuid

from lcrag.app.service.access_log import shown_path
from lcrag.app.service.asgi import Receive, Scope, Send, send_json

log = logging.getLogger("lcrag.service")


class CatchAllMiddleware:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - that is the point
            incident = uuid.uuid4().hex[:8]
            log.error("unexpected error %s on %s %s", incident, scope.get("method"), shown_path(scope.get("path", "")),
                      exc_info=exc)
            if started:  # too late for a status; the client sees a cut response
                raise
            await send_json(send, 500, {"error": f"internal error {incident}; the server log has the details"})
