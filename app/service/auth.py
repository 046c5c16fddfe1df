"""The API key: where it comes from and the gate that checks it.

The gate is ASGI middleware, so a request without the right key is refused
before routing or body parsing: every protected path (unknown ones included)
answers the same short 401 and nothing about the request is evaluated. Keys
are read from headers only, never from the query string, which ends up in
access logs (``lcrag.app.service.access_log`` redacts it anyway).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from lcrag.app.service.asgi import ASGIApp, Receive, Scope, Send, send_json
from lcrag.pipeline.config import ConfigError, ServiceConfig

API_KEY_ENV = "LCRAG_API_KEY"
KEY_HEADER = b"x-api-key"
UNAUTHORIZED = {"error": "missing or wrong API key"}


def resolve_api_key(service: ServiceConfig, environ: Mapping[str, str]) -> str:
    """The key to require: LCRAG_API_KEY when set, else ``service.api_key``.
    Without either the server would be open to anyone, so that is an error."""
    key = environ.get(API_KEY_ENV, "").strip() or service.api_key.strip()
    if not key:
        raise ConfigError(
            f"lcrag serve needs an API key: export {API_KEY_ENV}=SECRET, or set service.api_key in the --config YAML"
        )
    return key


def presented_keys(headers: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """Keys a request offers: ``Authorization: Bearer KEY`` and ``X-API-Key: KEY``."""
    found = []
    for name, value in headers:
        name = name.lower()
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                found.append(token.strip())
        elif name == KEY_HEADER and value.strip():
            found.append(value.strip())
    return found


def key_matches(headers: Iterable[tuple[bytes, bytes]], expected: bytes) -> bool:
    """Constant-time comparison of every offered key (no early exit on the first)."""
    matched = False
    for key in presented_keys(headers):
        matched |= hmac.compare_digest(key, expected)
    return matched


class ApiKeyMiddleware:
    """Refuse every HTTP request outside ``open_paths`` that lacks the key."""

    def __init__(self, app: ASGIApp, api_key: str, open_paths: Iterable[str]) -> None:
        if not api_key:
            raise ValueError("ApiKeyMiddleware needs a non-empty key")
        self.app = app
        self._expected = api_key.encode("utf-8")
        self._open = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._open or key_matches(scope["headers"], self._expected):
            await self.app(scope, receive, send)
            return
        await send_json(send, 401, UNAUTHORIZED, [(b"www-authenticate", b'Bearer realm="lcrag"')])
