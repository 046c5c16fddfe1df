"""The comparison report as a Prefect flow: the same work as ``lcrag report``."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lcrag.core.paths import default_ledger
from lcrag.pipeline.cli.report import data_fingerprints
from lcrag.pipeline.config import load_config
from lcrag.pipeline.evaluation.stats import bootstrap_mean
from lcrag.pipeline.ledger import Ledger
from lcrag.pipeline.report import build_report, write_report


@task(name="read ledger rows", cache_policy=NO_CACHE)
def rows_task(ledger: str, run_ids: tuple[str, ...]):
    book = Ledger(ledger)
    rows = [r for rid in run_ids for r in book.rows(rid)] if run_ids else book.rows()
    if not rows:
        raise ValueError(f"no ledger rows for {run_ids or 'any run'} in {ledger}")
    return rows


@task(name="write report", cache_policy=NO_CACHE)
def write_task(rows, out_dir: str, title: str, config_file: str | None) -> tuple[str, str]:
    report = build_report(rows, title=title, config=load_config(config_file).to_dict(),
                          data_hashes=data_fingerprints(rows), interval_fn=bootstrap_mean)
    html, markdown = write_report(report, Path(out_dir))
    get_run_logger().info("wrote %s and %s", html, markdown)
    return str(html), str(markdown)


@flow(name="lcrag-report")
def report_flow(out_dir: str, run_ids: tuple[str, ...] = (), ledger: str | None = None,
                title: str = "lcrag: RAG vs long context", config_file: str | None = None) -> tuple[str, str]:
    """Write report.html and report.md for the given runs (default: every run)."""
    return write_task(rows_task(str(ledger or default_ledger()), tuple(run_ids)), out_dir, title, config_file)
