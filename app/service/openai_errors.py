"""Errors of the OpenAI-compatible routes in the shape OpenAI's clients read:
``{"error": {"message", "type", "param", "code"}}``.

The rest of the API answers ``{"error": "..."}``, and most refusals are made by
parts that know nothing of routes (the key gate, the body limits, admission,
the catch-all, the connection cap). So the chat routes' own errors are raised
in this shape (``OpenAIError``), and everything else on those paths is
translated on its way out by ``OpenAIErrorShape``, the outermost middleware: a
``{"error": "..."}`` body keeps its message and status and gains a type and a
code; FastAPI's 422 list of field errors becomes a 400 naming the first field
(OpenAI's status for a bad request).
"""

from __future__ import annotations

import json
from typing import Any

from lcrag.app.service.asgi import ASGIApp, Receive, Scope, Send

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
MODEL_PREFIX = "lcrag-"  # model ids are the strategies' names with this prefix


def model_id(strategy: str) -> str:
    return MODEL_PREFIX + strategy

# status -> (type, code) of errors that do not say themselves
KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    408: ("invalid_request_error", "request_timeout"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "service_unavailable"),
}
# FastAPI validation error types with an OpenAI name
CODES = {"too_many_tokens": "context_length_exceeded"}


def is_openai_path(path: str) -> bool:
    return path in (CHAT_PATH, MODELS_PATH) or path.startswith(MODELS_PATH + "/")


def error_object(status: int, message: str, param: str | None = None, code: str | None = None,
                 type_: str | None = None) -> dict:
    kind, default_code = KINDS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": type_ or kind, "param": param, "code": code or default_code}}


def error_payload(path: str, status: int, message: str) -> dict:
    """A refusal made before routing, in the shape of the path's API."""
    return error_object(status, message) if is_openai_path(path) else {"error": message}


class OpenAIError(Exception):
    """A refusal of an OpenAI-compatible route, already in OpenAI's terms."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict:
        return error_object(self.status, self.message, self.param, self.code)


def _param(loc: Any) -> str | None:
    parts = [str(p) for p in (loc or ()) if p not in ("body", "query", "path")]
    return ".".join(parts) or None


def translated(status: int, body: bytes) -> tuple[int, bytes]:
    """An error response of this API as OpenAI's clients expect it."""
    try:
        payload = json.loads(body) if body else {}
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    error = payload.get("error")
    if isinstance(error, dict):  # already OpenAI's shape
        return status, body
    if isinstance(payload.get("detail"), list) and payload["detail"]:  # FastAPI's field errors
        first = payload["detail"][0] if isinstance(payload["detail"][0], dict) else {}
        param = _param(first.get("loc"))
        message = str(first.get("msg") or "invalid request")
        more = len(payload["detail"]) - 1
        if more:
            message += f" (and {more} more error{'s' if more > 1 else ''})"
        kind = str(first.get("type") or "")
        new_status = 400 if status == 422 else status
        shaped = error_object(new_status, f"{param}: {message}" if param else message, param, CODES.get(kind, kind or None))
        return new_status, json.dumps(shaped).encode()
    message = error if isinstance(error, str) else str(payload.get("detail") or f"HTTP {status}")
    return status, json.dumps(error_object(status, message)).encode()


class OpenAIErrorShape:
    """Rewrites error responses (status >= 400) on the OpenAI-compatible paths;
    every other response passes untouched (a stream is never buffered)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_openai_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        held: dict | None = None  # the start of an error response, until its body is complete
        parts: list[bytes] = []

        async def shaping_send(message: dict) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held = message
                return
            if held is not None and message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                status, body = translated(held["status"], b"".join(parts))
                headers = [(k, v) for k, v in held.get("headers", []) if k.lower() not in (b"content-length", b"content-type")]
                await send({**held, "status": status, "headers": [
                    *headers, (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                ]})
                await send({"type": "http.response.body", "body": body})
                held = None
                return
            await send(message)

        await self.app(scope, receive, shaping_send)
