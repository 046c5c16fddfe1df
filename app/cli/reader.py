"""``lcrag reader start|stop|status``: the local vLLM reader server.

A typer sub-app; ``lcrag.app.cli.app`` registers it as ``lcrag reader``. The server runs
detached, so ``start`` returns once it is ready and the server keeps running after the
command exits; ``stop`` ends it.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lcrag.app.cli.common import LcragError, console, fail, out

reader_app = typer.Typer(
    help="The local vLLM reader server (install it first with scripts/setup_reader.sh).",
    no_args_is_help=True,
    add_completion=False,
)

ConfigOption = typer.Option(None, "--config", "-c", help="YAML config (the reader: section is used).")


def _server(config_file: Path | None):
    from lcrag.pipeline.config import load_config
    from lcrag.readers.server import ReaderServer

    try:
        config = load_config(config_file)
    except LcragError as err:
        fail(str(err))
    return ReaderServer(config.reader)


@reader_app.command()
def start(
    config_file: Path | None = ConfigOption,
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the server answers (default) or return at once."),
) -> None:
    """Start the reader server in the background and wait until it serves the model."""

    server = _server(config_file)
    try:
        if wait:
            with console.status(f"starting the reader ({server.config.model})…") as spinner:
                def tick(elapsed: float) -> None:
                    spinner.update(f"starting the reader ({server.config.model})… {elapsed:.0f} s (log: {server.log_path})")

                status = server.start(wait=True, on_wait=tick)
        else:
            status = server.start(wait=False)
    except LcragError as err:
        first, _, rest = str(err).partition("\n")
        if rest:
            console.print(rest, highlight=False, markup=False)
        fail(first)
    out.print(f"{status.message} (pid {status.pid})", highlight=False)


@reader_app.command()
def stop(config_file: Path | None = ConfigOption) -> None:
    """Stop the reader server (SIGTERM, then SIGKILL after 30 s)."""
    server = _server(config_file)
    with console.status("stopping the reader…"):
        stopped = server.stop()
    out.print("reader stopped" if stopped else "reader was not running", highlight=False)


@reader_app.command()
def status(
    config_file: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Show whether the reader server is running and ready. Exit code 0 when ready, 1 otherwise."""
    current = _server(config_file).status()
    if as_json:
        out.print_json(json.dumps(current.to_dict()))
    else:
        state = "[green]ready[/]" if current.ready else ("[yellow]starting[/]" if current.running else "[dim]stopped[/]")
        out.print(f"reader: {state}  model {current.model}  {current.url}  pid {current.pid or '-'}")
        out.print(f"  {current.message}", highlight=False)
        out.print(f"  log: {current.log_path}", highlight=False)
    raise typer.Exit(0 if current.ready else 1)
