"""Run the application under uvicorn: in the foreground (``lcrag serve``) or on
a background thread (tests and benchmarks talk to a real server on 127.0.0.1
over real HTTP, so they see what clients see)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import uvicorn


def uvicorn_config(app, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    # One worker process: the live index, the reader client and the admission
    # limits are per process, so several workers would multiply the limits.
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, workers=1, access_log=log_level == "debug")


@contextmanager
def background_server(app, host: str = "127.0.0.1", port: int = 0, startup_timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` on a thread until the block ends; yields the base URL.
    Port 0 lets the OS pick a free one (read back from the bound socket)."""
    server = uvicorn.Server(uvicorn_config(app, host, port, log_level="warning"))
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
