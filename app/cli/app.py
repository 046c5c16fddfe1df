"""The ``lcrag`` command line: the root command, which attaches one module per command
group (``index``: ingest, search, info; ``ask``; ``eval``; ``report``; ``serve``;
``reader``; ``route``; ``schedule``; ``data``). Commands stay thin: they parse, call the pipeline,
and print; domain errors become one line that says how to fix the problem."""

from __future__ import annotations

import os
import signal
import sys
from importlib.metadata import PackageNotFoundError, version

import typer

from lcrag.app.cli.ask import ask
from lcrag.app.cli.common import console, out
from lcrag.app.cli.data import data_app
from lcrag.app.cli.evaluate import evaluate
from lcrag.app.cli.index import info, ingest, search
from lcrag.app.cli.reader import reader_app
from lcrag.app.cli.report import report
from lcrag.app.cli.route import route_app
from lcrag.app.cli.schedule import schedule_app
from lcrag.app.cli.serve import serve
from lcrag.core.paths import HOME_ENV, state_home

app = typer.Typer(
    help="lcrag: long-context RAG over your own corpus with a local LLM.\n\n"
    "Ingest a corpus into long retrieval units with late-chunking embeddings; ask questions with "
    "RAG, long-context and routing strategies read by a local vLLM server; record every answer's "
    "cost and quality in a DuckDB ledger; compare strategies in reports; serve it all over HTTP "
    "with scheduled re-ingestion.\n\nStart with `make demo` (README), or: lcrag ingest DOCS --index IDX; "
    "lcrag reader start; lcrag ask \"question\" --index IDX.",
    no_args_is_help=True,
    add_completion=False,
)


def lcrag_version() -> str:
    try:
        return version("lcrag")
    except PackageNotFoundError:  # run from a tree that is not installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        out.print(f"lcrag {lcrag_version()}\nstate: {state_home()} (set {HOME_ENV} to move it)", highlight=False)
        raise typer.Exit()


@app.callback()
def root(
    _version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and where state lives, then exit."
    ),
) -> None:
    """lcrag: long-context RAG over your own corpus with a local LLM."""


app.command()(ingest)
app.command()(search)
app.command()(info)
app.command("ask")(ask)
app.command("eval")(evaluate)
app.command("report")(report)
app.command("serve")(serve)
app.add_typer(data_app, name="data")
app.add_typer(reader_app, name="reader")
app.add_typer(route_app, name="route")
app.add_typer(schedule_app, name="schedule")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models come from installed wheels, never a hub
    # A kill (a CI timeout, systemd, `kill PID` on a run in the background, where the shell
    # ignores Ctrl-C) stops a command the way Ctrl-C does: what is recorded stays, the same
    # command resumes; without this Python would die on the spot.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted; run the same command again to resume")
        sys.exit(130)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
