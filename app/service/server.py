"""Run the application under uvicorn: in the foreground (``lcrag serve``) or on
a background thread (tests and benchmarks talk to a real server on 127.0.0.1
over real HTTP, so they see what clients see)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from lcrag.app.service.access_log import redact_access_log
from lcrag.app.service.connections import HeaderDeadlineProtocol
from lcrag.pipeline.config import ServiceConfig

DEFAULT_HEADER_TIMEOUT_S = ServiceConfig.header_timeout_s
DEFAULT_MAX_CONNECTIONS = ServiceConfig.max_connections
DEFAULT_RETRY_AFTER_S = ServiceConfig.retry_after_s


def uvicorn_config(app, host: str, port: int, log_level: str = "info",
                   header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
                   max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
                   retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> uvicorn.Config:
    # One worker process: the live index, the reader client and the admission
    # limits are per process, so several workers would multiply the limits.
    # The h11 protocol with a deadline for request heads (uvicorn has none) and a
    # JSON 503 with Retry-After at the connection cap (limit_concurrency); the
    # access log (debug only) never shows paths or query parameters the API does not define.
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, workers=1, access_log=log_level == "debug",
        limit_concurrency=max_connections,
        http=functools.partial(HeaderDeadlineProtocol, header_timeout_s=header_timeout_s,  # type: ignore[arg-type]
                               retry_after_s=retry_after_s),
    )
    redact_access_log()
    return config


@contextmanager
def background_server(app, host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 30.0,
                      log_level: str = "warning", header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
                      max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
                      retry_after_s: int = DEFAULT_RETRY_AFTER_S) -> Iterator[str]:
    """Serve ``app`` on a thread until the block ends; yields the base URL.
    Port 0 lets the OS pick a free one (read back from the bound socket)."""
    server = uvicorn.Server(uvicorn_config(app, host, port, log_level=log_level, header_timeout_s=header_timeout_s,
                                           max_connections=max_connections, retry_after_s=retry_after_s))
    thread = threading.Thread(target=server.run, name="lcrag-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the API server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
