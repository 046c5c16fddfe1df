"""``lcrag report``: ledger rows -> a self-contained HTML report and a Markdown summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from lcrag.pipeline.cli.common import LcragError, fail, out
from lcrag.pipeline.evaluation.verdict import NON_INFERIORITY_MARGIN
from lcrag.pipeline.report.job import DEFAULT_TITLE


def report(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for report.html and report.md."),
    run_id: Optional[list[str]] = typer.Option(None, "--run-id", help="Run(s) to report (repeatable; default: every run in the ledger)."),
    ledger_file: Optional[Path] = typer.Option(None, "--ledger", help="DuckDB ledger (default: ledger.duckdb in the state folder, see `lcrag info`)."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="The config the runs used (shown in the report)."),
    title: str = typer.Option(DEFAULT_TITLE, "--title", help="Report title."),
    margin: float = typer.Option(
        NON_INFERIORITY_MARGIN, "--margin",
        help="Non-inferiority margin of the verdict (absolute, on a 0-1 metric): a cheaper strategy is as good as the best "
        "when its paired 95% interval stays above -margin.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Also print the verdict per data set (and the files written) as JSON."),
) -> None:
    """Write the comparison report (report.html, report.md) from ledger runs.

    Quality with 95% bootstrap intervals, tokens and latency per strategy and data set, the cost/quality frontier, accuracy by evidence position, the needle depth x length grid, the router's choices, paired differences against lc, abstention and retrieval tables."""
    from lcrag.core.paths import default_ledger
    from lcrag.pipeline.config import load_config
    from lcrag.pipeline.report.job import write_comparison_report

    try:
        if not 0 < margin < 1:
            fail(f"--margin must be between 0 and 1 (a share of a 0-1 metric), got {margin}")
        written = write_comparison_report(ledger_file or default_ledger(), tuple(run_id or ()), out_dir,
                                          load_config(config_file), title, margin)
    except LcragError as err:
        fail(str(err))
    if as_json:
        out.print_json(json.dumps({"html": str(written.html), "markdown": str(written.markdown),
                                   "answer_rows": written.answer_rows, "retrieval_rows": written.retrieval_rows,
                                   "verdicts": list(written.verdicts)}, default=str))
        return
    out.print(f"wrote {written.html} and {written.markdown} ({written.answer_rows} answer rows, "
              f"{written.retrieval_rows} retrieval rows)", highlight=False)
