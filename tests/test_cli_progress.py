"""Progress where no terminal draws a bar (a log file, CI, ``nohup``): plain lines that say
how far a run got, at a bounded rate."""

from __future__ import annotations

import pytest

from lcrag.app.cli.common import LineProgress, progress_line


@pytest.mark.parametrize(("done", "total", "elapsed", "expected"), [
    (0, 150, 0.0, "answers: 0/150 (0%), 0:00"),
    (30, 150, 60.0, "answers: 30/150 (20%), 1:00, about 4:00 left"),
    (75, 150, 3600.0, "answers: 75/150 (50%), 1:00:00, about 1:00:00 left"),
    (150, 150, 125.4, "answers: 150/150 (100%), 2:05"),
    (160, 150, 10.0, "answers: 160/150 (100%), 0:10"),  # over the total: never past 100%
    (1234, None, 59.6, "answers: 1,234 done, 1:00"),  # no total: a count only
    (5, 0, 1.0, "answers: 5 done, 0:01"),
])
def test_progress_line(done, total, elapsed, expected):
    assert progress_line("answers", done, total, elapsed) == expected


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_come_at_most_every_interval_and_once_at_completion():
    lines, clock = [], Clock()
    with LineProgress(lines.append, every=30, clock=clock) as bar:
        task = bar.add_task("pairs", total=4)
        clock.now += 10
        bar.advance(task)  # 10 s after the start line: quiet
        clock.now += 25
        bar.advance(task)  # 35 s: a line
        clock.now += 5
        bar.advance(task)  # 5 s after that line: quiet
        clock.now += 5
        bar.advance(task)  # complete: a line whatever the time
    assert lines == ["pairs: 0/4 (0%), 0:00",
                     "pairs: 2/4 (50%), 0:35, about 0:35 left",
                     "pairs: 4/4 (100%), 0:45"]


def test_work_stopped_short_says_where_it_stopped():
    lines, clock = [], Clock()
    with pytest.raises(KeyboardInterrupt), LineProgress(lines.append, every=30, clock=clock) as bar:
        task = bar.add_task("pairs", total=10)
        clock.now += 3
        bar.advance(task, 3)
        raise KeyboardInterrupt
    assert lines[-1] == "pairs: 3/10 (30%), 0:03, about 0:07 left"


def test_each_task_keeps_its_own_count_and_a_finished_task_says_so_once():
    lines, clock = [], Clock()
    with LineProgress(lines.append, every=30, clock=clock) as bar:
        first = bar.add_task("documents", total=1)
        second = bar.add_task("tokens", total=100)
        bar.advance(first)
        bar.advance(first)  # past its total: no second completion line
        clock.now += 40
        bar.advance(second, 10)
    assert lines == ["documents: 0/1 (0%), 0:00", "tokens: 0/100 (0%), 0:00", "documents: 1/1 (100%), 0:00",
                     "tokens: 10/100 (10%), 0:40, about 6:00 left"]  # nothing new at the end: no repeat


def test_a_task_without_a_total_reports_by_time_only():
    lines, clock = [], Clock()
    with LineProgress(lines.append, every=30, clock=clock) as bar:
        task = bar.add_task("chunks")
        for _ in range(5):
            clock.now += 10
            bar.advance(task, 100)
    assert lines == ["chunks: 0 done, 0:00", "chunks: 300 done, 0:30", "chunks: 500 done, 0:50"]


def test_the_interval_must_be_positive():
    with pytest.raises(ValueError, match="every must be positive"):
        LineProgress(print, every=0)
