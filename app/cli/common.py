"""What every command shares: where messages go, the one-line error exit, and the
progress bar. Domain errors (``LcragError``) become one line that says how to fix the
problem; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lcrag.core.errors import LcragError

console = Console(stderr=True, soft_wrap=True)  # errors stay one line at any width
out = Console(soft_wrap=True)

__all__ = ["LcragError", "LineProgress", "console", "fail", "out", "progress", "progress_line"]


def fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def progress() -> Progress | LineProgress:
    """A live bar on a terminal; elsewhere (a log file, CI, ``nohup``) a plain line now and
    then, because rich draws nothing there until the work is over."""
    if not console.is_terminal:
        return LineProgress(lambda line: console.print(line, markup=False, highlight=False))
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def progress_line(description: str, done: float, total: float | None, elapsed: float) -> str:
    """One line of progress: the count, the share done, the time taken and, once something
    is done, the time left at the pace so far."""
    spent = _clock(elapsed)
    if not total:
        return f"{description}: {done:,.0f} done, {spent}"
    share = min(done / total, 1.0)
    line = f"{description}: {done:,.0f}/{total:,.0f} ({share:.0%}), {spent}"
    if 0 < done < total:
        line += f", about {_clock(elapsed * (total - done) / done)} left"
    return line


def _clock(seconds: float) -> str:
    hours, rest = divmod(max(round(seconds), 0), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class _Task:
    description: str
    total: float | None
    started: float
    said: float  # when its last line was written
    done: float = 0.0
    said_done: float = 0.0  # the count its last line gave

    def reached(self, count: float) -> bool:
        return self.total is not None and count >= self.total


class LineProgress:
    """Progress for an output that is not a terminal: per task, a line when it starts, at most
    one every ``every`` seconds while it runs, and one when it completes (or when the work
    stops short), so a run in the background says how far it got."""

    def __init__(self, write: Callable[[str], object], every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if every <= 0:
            raise ValueError(f"every must be positive, got {every}")
        self._write, self._every, self._clock = write, every, clock
        self._tasks: list[_Task] = []

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for task in self._tasks:  # a task left short says where it stopped
            if not task.reached(task.said_done) and task.done != task.said_done:
                self._say(task)

    def add_task(self, description: str, total: float | None = None) -> TaskID:
        now = self._clock()
        self._tasks.append(_Task(description, total, now, now))
        self._write(progress_line(description, 0, total, 0.0))
        return TaskID(len(self._tasks) - 1)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        task = self._tasks[task_id]
        task.done += advance
        if task.reached(task.done):  # completion is said once, whatever the time
            if not task.reached(task.said_done):
                self._say(task)
        elif self._clock() - task.said >= self._every:
            self._say(task)

    def _say(self, task: _Task) -> None:
        now = self._clock()
        task.said, task.said_done = now, task.done
        self._write(progress_line(task.description, task.done, task.total, now - task.started))
