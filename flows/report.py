"""The comparison report as a Prefect flow: ``lcrag report`` as one task around the same
function (``lcrag.pipeline.report.job.write_comparison_report``), retrieval rows included."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lcrag.core.paths import default_ledger
from lcrag.pipeline.config import load_config
from lcrag.pipeline.report.job import DEFAULT_TITLE, write_comparison_report


@task(name="write report", cache_policy=NO_CACHE)
def write_task(ledger: str, run_ids: tuple[str, ...], out_dir: str, title: str, config_file: str | None) -> tuple[str, str]:
    written = write_comparison_report(Path(ledger), run_ids, Path(out_dir), load_config(config_file), title)
    get_run_logger().info("wrote %s and %s (%d answer rows, %d retrieval rows)",
                          written.html, written.markdown, written.answer_rows, written.retrieval_rows)
    return str(written.html), str(written.markdown)


@flow(name="lcrag-report")
def report_flow(out_dir: str, run_ids: tuple[str, ...] = (), ledger: str | None = None,
                title: str = DEFAULT_TITLE, config_file: str | None = None) -> tuple[str, str]:
    """Write report.html and report.md for the given runs (default: every run)."""
    return write_task(str(ledger or default_ledger()), tuple(run_ids), out_dir, title, config_file)
