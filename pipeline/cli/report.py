"""``lcrag report``: ledger rows -> a self-contained HTML report and a Markdown summary."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lcrag.pipeline.cli.common import LcragError, fail, out
from lcrag.pipeline.report.job import DEFAULT_TITLE


def report(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for report.html and report.md."),
    run_id: Optional[list[str]] = typer.Option(None, "--run-id", help="Run(s) to report (repeatable; default: every run in the ledger)."),
    ledger_file: Optional[Path] = typer.Option(None, "--ledger", help="DuckDB ledger (default: ledger.duckdb in the state folder, see `lcrag info`)."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="The config the runs used (shown in the report)."),
    title: str = typer.Option(DEFAULT_TITLE, "--title", help="Report title."),
) -> None:
    """Write the comparison report (report.html, report.md) from ledger runs.

    Quality with 95% bootstrap intervals, tokens and latency per strategy and data set, the cost/quality frontier, accuracy by evidence position, the needle depth x length grid, the router's choices, paired differences against lc, abstention and retrieval tables."""
    from lcrag.core.paths import default_ledger
    from lcrag.pipeline.config import load_config
    from lcrag.pipeline.report.job import write_comparison_report

    try:
        written = write_comparison_report(ledger_file or default_ledger(), tuple(run_id or ()), out_dir,
                                          load_config(config_file), title)
    except LcragError as err:
        fail(str(err))
    out.print(f"wrote {written.html} and {written.markdown} ({written.answer_rows} answer rows, "
              f"{written.retrieval_rows} retrieval rows)", highlight=False)
