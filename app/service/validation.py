"""Validation errors as clients see them: FastAPI's shape (each error names its
field), made safe to send and small.

Each error echoes the input it refused. Unbounded, that echo turns any request
into a response as large as itself (a long field, or a body that is not JSON at
all); verbatim, an undecodable body (bytes) or a non-finite number cannot be
written as JSON. So every echoed input is cut to a short excerpt, bytes are
decoded with replacement characters, and only the first errors are listed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

INPUT_EXCERPT_CHARS = 100
MAX_ERRORS = 20
ELLIPSIS = "…"


def excerpt(value: Any, limit: int = INPUT_EXCERPT_CHARS) -> Any:
    """``value`` when its JSON is at most ``limit`` characters, else the start of
    its text; always something ``json.dumps`` can write."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + ELLIPSIS
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):  # not JSON (an object, NaN): its repr
        return excerpt(repr(value), limit)
    return value if len(text) <= limit else text[:limit] + ELLIPSIS


def _plain(value: Any) -> Any:
    """A JSON-writable stand-in for a context value (constraints, messages, exceptions)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def client_error(error: dict) -> dict:
    shown = {
        "type": str(error.get("type", "")),
        "loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
        "msg": str(error.get("msg", "")),
    }
    if "input" in error:
        shown["input"] = excerpt(error["input"])
    if error.get("ctx"):
        shown["ctx"] = {str(k): _plain(v) for k, v in error["ctx"].items()}
    return shown


def client_errors(errors: Iterable[dict], max_errors: int = MAX_ERRORS) -> list[dict]:
    """The first ``max_errors`` errors, each with a short ``input`` excerpt."""
    shown: list[dict] = []
    for error in errors:
        if len(shown) == max_errors:
            break
        shown.append(client_error(error))
    return shown


def validation_body(errors: Iterable[dict]) -> bytes:
    """The 422 body, ASCII-escaped: inputs may hold lone surrogates UTF-8 cannot encode."""
    return json.dumps({"detail": client_errors(errors)}).encode()
