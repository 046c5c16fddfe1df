"""What the service's ASGI middlewares share: the callable types and a short
JSON answer sent without the application (the middlewares answer before, or
instead of, routing)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CLOSE = (b"connection", b"close")


async def send_json(send: Send, status: int, payload: dict, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """One complete JSON response (ASCII-escaped, so any text can be sent)."""
    body = json.dumps(payload).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    })
    await send({"type": "http.response.body", "body": body})
