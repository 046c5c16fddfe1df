"""What every command shares: where messages go, the one-line error exit, and the
progress bar. Domain errors (``LcragError``) become one line that says how to fix the
problem; anything else is a bug and keeps its traceback."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lcrag.core.errors import LcragError

console = Console(stderr=True, soft_wrap=True)  # errors stay one line at any width
out = Console(soft_wrap=True)

__all__ = ["LcragError", "console", "fail", "out", "progress"]


def fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
