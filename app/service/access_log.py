"""The access log (``lcrag serve --log-level debug``) without secrets.

uvicorn logs each request's path with its query string (never its headers).
The API reads its key from headers only, but a client may still put one in
the URL, as a parameter (``?api_key=...``) or in the path
(``/v1/KEY/chat/completions``, or a key sent as a model name to
``/v1/models/{model}``), and that line would keep it. The API's own paths and
query parameters are few and known: those are logged as sent. Any other path
is logged as ``[redacted]``, and every other parameter, name and value, is
replaced too: a key sent anywhere in the URL stays out of the log.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode

ACCESS_LOGGER = "uvicorn.access"
LOGGED_PARAMETERS = frozenset({"limit", "offset"})  # GET /v1/runs; nothing else takes a query parameter
LOGGED_PATHS = frozenset({
    "/v1/query", "/v1/strategies", "/v1/runs", "/v1/health", "/v1/chat/completions", "/v1/models",
    "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/", "/favicon.ico",
})
MODEL_PATH = "/v1/models/"
REDACTED = "[redacted]"
_PATH_ARG = 2  # uvicorn's access record args: client, method, path with query, HTTP version, status


@lru_cache(maxsize=1)
def _model_ids() -> frozenset[str]:
    from lcrag.app.service.openai_errors import model_id
    from lcrag.pipeline.strategies import REGISTRY

    return frozenset(model_id(name) for name in REGISTRY)


def shown_path(path: str) -> str:
    """``path`` when it is one of the API's (a model's page only for a model
    the API can offer), else ``[redacted]``."""
    if path in LOGGED_PATHS or (path.startswith(MODEL_PATH) and path[len(MODEL_PATH):] in _model_ids()):
        return path
    return REDACTED


def redact_target(target: str, keep: frozenset[str] = LOGGED_PARAMETERS) -> str:
    """``target`` (a path with a query string) with a path the API does not
    define replaced by ``[redacted]``, and every parameter but the integer ones
    named in ``keep`` replaced by one ``[redacted]`` mark."""
    path, sep, query = target.partition("?")
    path = shown_path(path)
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(name, value) for name, value in pairs if name in keep and value.lstrip("-").isdigit()]
    shown = urlencode(kept)
    if len(kept) < len(pairs):
        shown = f"{shown}&{REDACTED}" if shown else REDACTED
    return f"{path}?{shown}"


class RedactQuery(logging.Filter):
    """Rewrites uvicorn access records in place; every handler sees the redacted path."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > _PATH_ARG and isinstance(args[_PATH_ARG], str):
            record.args = (*args[:_PATH_ARG], redact_target(args[_PATH_ARG]), *args[_PATH_ARG + 1:])
        return True


def redact_access_log(logger: logging.Logger | None = None) -> None:
    """Attach the filter to uvicorn's access logger (once). Called when a server is
    configured, not on import."""
    logger = logger or logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactQuery) for f in logger.filters):
        logger.addFilter(RedactQuery())
