"""``lcrag report``: ledger rows -> a self-contained HTML report and a Markdown summary."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

import typer

from lcrag.pipeline.cli.common import LcragError, fail, out


def data_fingerprints(rows) -> dict[str, str]:
    """What the answers were computed over: per data set, a hash of its index ids
    and config hashes (identical inputs give identical fingerprints)."""
    grouped: dict[str, set[str]] = {}
    for row in rows:
        keys = f"{row.index_id}|{getattr(row, 'config_hash', '')}|{getattr(row, 'model', '')}"  # retrieval rows: index only
        grouped.setdefault(row.dataset or "(ad hoc)", set()).add(keys)
    return {name: hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16] for name, keys in sorted(grouped.items())}


def report(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder for report.html and report.md."),
    run_id: Optional[list[str]] = typer.Option(None, "--run-id", help="Run(s) to report (repeatable; default: every run in the ledger)."),
    ledger_file: Optional[Path] = typer.Option(None, "--ledger", help="DuckDB ledger (default: ledger.duckdb in the state folder, see `lcrag info`)."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="The config the runs used (shown in the report)."),
    title: str = typer.Option("lcrag: RAG vs long context", "--title", help="Report title."),
) -> None:
    """Write the comparison report (report.html, report.md) from ledger runs.

    Quality with 95% bootstrap intervals, tokens and latency per strategy and data set, the cost/quality frontier, accuracy by evidence position, the needle depth x length grid, the router's choices, paired differences against lc, abstention and retrieval tables."""
    from lcrag.core.paths import default_ledger
    from lcrag.pipeline.config import load_config
    from lcrag.pipeline.evaluation.stats import bootstrap_mean
    from lcrag.pipeline.ledger import Ledger
    from lcrag.pipeline.report import build_report, write_report

    try:
        ledger = Ledger(ledger_file or default_ledger())
        if not ledger.path.exists():
            fail(f"no ledger at {ledger.path}; answer some questions first (lcrag ask / lcrag eval)")
        rows = [r for rid in run_id for r in ledger.rows(rid)] if run_id else ledger.rows()
        judged = [r for rid in run_id for r in ledger.retrieval_rows(rid)] if run_id else ledger.retrieval_rows()
        if not rows and not judged:
            fail(f"no ledger rows{' for run ' + ', '.join(run_id) if run_id else ''} in {ledger.path}")
        config = load_config(config_file)
        built = build_report(rows, title=title, config=config.to_dict(), data_hashes=data_fingerprints([*rows, *judged]),
                             interval_fn=bootstrap_mean, retrieval_rows=judged)
        html_path, md_path = write_report(built, out_dir)
    except LcragError as err:
        fail(str(err))
    out.print(f"wrote {html_path} and {md_path} ({len(rows)} answer rows, {len(judged)} retrieval rows)", highlight=False)
