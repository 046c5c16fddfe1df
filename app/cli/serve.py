"""``lcrag serve``: the HTTP query API over an index, answered by the reader and
recorded in the ledger, until Ctrl-C."""

from __future__ import annotations

import ipaddress
import os
import signal
from dataclasses import replace
from pathlib import Path

import typer

from lcrag.app.cli.common import LcragError, console, fail

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def serve(
    index: Path = typer.Option(
        ..., "--index", "-i",
        help="A finished index folder, or a generations root (`lcrag ingest --generations`): "
        "newly published generations are picked up without a restart.",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Anything but loopback exposes the API (plain HTTP)."),
    port: int = typer.Option(8430, "--port", help="TCP port to listen on."),
    config_file: Path | None = typer.Option(None, "--config", "-c", help="YAML config: reader, strategies and service sections."),
    ledger_file: Path | None = typer.Option(
        None, "--ledger", help="DuckDB ledger file (default: ledger.duckdb in the state folder, see `lcrag info`)."
    ),
    log_level: str = typer.Option(
        "info", "--log-level",
        help="critical | error | warning | info | debug (debug logs every request; query parameters the API does not define are redacted).",
    ),
) -> None:
    """Serve the query API: POST /v1/query, GET /v1/strategies, /v1/runs and /v1/health, and the
    OpenAI-compatible POST /v1/chat/completions and GET /v1/models (one model per strategy: lcrag-auto, lcrag-rag, ...).

    Every route but /v1/health needs the API key: `export LCRAG_API_KEY=...` (or service.api_key in --config).

    Clients send it as `Authorization: Bearer KEY` or `X-API-Key: KEY`. Every answered question is one ledger row.

    Limits (question length in characters and reader tokens, top-k, budget, questions in flight and queued,
    connections open at once, request body size, and the time a request's headers and body may take to arrive)
    are the config's service section.

    OpenAPI schema at /openapi.json, interactive docs at /docs.
    """
    from lcrag.app.service import create_app
    from lcrag.app.service.auth import resolve_api_key
    from lcrag.app.service.server import uvicorn_config
    from lcrag.pipeline.index.live import LiveIndex
    from lcrag.pipeline.session import Session

    if not 1 <= port <= 65535:
        fail(f"--port must be a TCP port (1-65535), got {port}")
    if log_level not in LOG_LEVELS:
        fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    try:
        session = Session.from_file(config_file, ledger_path=ledger_file, wait_for_reader=False)
        config = session.config
        service = replace(config.service, api_key=resolve_api_key(config.service, os.environ))
        ledger = session.ledger
        ledger.migrate()  # a wrong or locked ledger file is reported now, not on the first question
        reader = session.reader
        if not reader.healthy():
            console.print(
                f"[yellow]warning:[/] no reader answers at {config.reader.url} yet; questions get 503 until it does "
                "(`lcrag reader start`)", highlight=False,
            )
        attention = session.optional_attention()
        with console.status(f"opening {index} and loading the encoder ..."):
            live = LiveIndex(index, session.encoder_for)
            with live.acquire() as generation:  # load the encoder before the first question
                generation.corpus.search("warm up", k=1)
    except LcragError as err:
        fail(str(err))
    if not _is_loopback(host):
        console.print(f"[yellow]warning:[/] listening on {host}: the API is reachable from other machines over plain HTTP; "
                      "put TLS in front of it", highlight=False)

    import uvicorn

    app = create_app(live, reader, ledger, config, service, attention)
    console.print(f"serving {index} (generation {live.current_name()}) on http://{host}:{port}  docs: /docs", highlight=False)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to
    # the handler it found: make SIGTERM, like Ctrl-C, end here so everything is closed.
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        uvicorn.Server(uvicorn_config(app, host, port, log_level=log_level, header_timeout_s=service.header_timeout_s,
                                      max_connections=service.max_connections,
                                      retry_after_s=service.retry_after_s)).run()
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        live.close()
        session.close()
    console.print("stopped", highlight=False)


class _Stopped(Exception):
    """SIGTERM, after uvicorn's graceful shutdown."""


def _raise_stopped(signum, frame) -> None:
    raise _Stopped()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
