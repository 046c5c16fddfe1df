"""The access log (``lcrag serve --log-level debug``) without secrets.

uvicorn logs each request's path with its query string. The API reads its key
from headers only, but a client may still put one in the URL
(``?api_key=...``), and that line would keep it. The API's own query
parameters are few, known and integers, so those are logged as sent and every
other parameter, name and value, is replaced: a key sent under any name, or as
any value, stays out of the log.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode

ACCESS_LOGGER = "uvicorn.access"
LOGGED_PARAMETERS = frozenset({"limit", "offset"})  # GET /v1/runs; nothing else takes a query parameter
REDACTED = "[redacted]"
_PATH_ARG = 2  # uvicorn's access record args: client, method, path with query, HTTP version, status


def redact_target(target: str, keep: frozenset[str] = LOGGED_PARAMETERS) -> str:
    """``target`` (a path with a query string) with every parameter but the
    integer ones named in ``keep`` replaced by one ``[redacted]`` mark."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
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
