"""``lcrag report``: ledger rows -> a self-contained HTML report and a Markdown summary."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lcrag.app.cli.common import LcragError, fail, out
from lcrag.pipeline.report.job import DEFAULT_TITLE
from lcrag.pipeline.statistics.verdict import ALPHA, MARGIN_FRACTION, NON_INFERIORITY_MARGIN


def report(
    out_dir: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for report.html and report.md (optional with --json: then only the verdicts are printed)."),
    run_id: list[str] | None = typer.Option(None, "--run-id", help="Run(s) to report (repeatable; default: every run in the ledger)."),
    ledger_file: Path | None = typer.Option(None, "--ledger", help="DuckDB ledger (default: ledger.duckdb in the state folder, see `lcrag info`)."),
    config_file: Path | None = typer.Option(None, "--config", "-c", help="The config the runs used (shown in the report)."),
    title: str = typer.Option(DEFAULT_TITLE, "--title", help="Report title."),
    reference: str = typer.Option(
        "lc", "--reference", help="The strategy named before looking at the data: the margin is a share of its lead over the "
        "no-context control."),
    margin: float = typer.Option(
        NON_INFERIORITY_MARGIN, "--margin",
        help="Absolute non-inferiority margin on a 0-1 metric: used as is without a no-context control, and the cap on the "
        "margin derived from one."),
    margin_fraction: float = typer.Option(
        MARGIN_FRACTION, "--margin-fraction",
        help="With closed-book in the run (or chance for multiple choice): the margin is this share of the reference's "
        "shown lead over it."),
    alpha: float = typer.Option(
        ALPHA, "--alpha", help="One-sided error rate of a recommendation (a cheaper strategy truly worse by the margin "
        "is recommended at most this often)."),
    cost: str = typer.Option(
        "tokens", "--cost", help="What 'costlier' means: tokens (prompt tokens; default, the same on any machine), "
        "prefill (tokens not served from the prefix cache) or seconds (reading time here)."),
    questions_per_document: float | None = typer.Option(
        None, "--questions-per-document", help="Workload for the Cost section: project each strategy's prefill per "
        "question to Q questions per document (at least 1; default: the Q each data set observed)."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict per data set (and any files written) as JSON, alone on stdout."),
) -> None:
    """Write the comparison report (report.html, report.md) from ledger runs.

    Leads with a verdict per data set: "use X" only when X is shown non-inferior to every costlier strategy (README
    "How the verdict decides"), else unresolved with the questions that would tell. Then quality with 95% bootstrap
    intervals, tokens and latency per strategy and data set, the cost/quality frontier, accuracy by evidence position,
    the needle grid, letter bias on multiple choice, the router's choices, paired differences against lc, abstention
    and retrieval tables."""
    from lcrag.core.paths import default_ledger
    from lcrag.pipeline.config import load_config
    from lcrag.pipeline.report.job import write_comparison_report
    from lcrag.pipeline.statistics.verdict import VerdictSettings

    if out_dir is None and not as_json:
        fail("say where the report goes: --out FOLDER (or --json to print only the verdicts)")
    for name, value in (("--margin", margin), ("--margin-fraction", margin_fraction)):
        if not 0 < value < 1:
            fail(f"{name} must be between 0 and 1 (a share of a 0-1 metric), got {value}")
    if not 0 < alpha < 0.5:
        fail(f"--alpha must be between 0 and 0.5, got {alpha}")
    if questions_per_document is not None and not 1 <= questions_per_document < float("inf"):
        fail(f"--questions-per-document must be at least 1, got {questions_per_document}")
    try:
        settings = VerdictSettings(reference=reference, margin=margin, margin_fraction=margin_fraction, alpha=alpha,
                                   cost=cost)
        written = write_comparison_report(ledger_file or default_ledger(), tuple(run_id or ()), out_dir,
                                          load_config(config_file), title, settings, questions_per_document)
    except LcragError as err:
        fail(str(err))
    if as_json:
        print(json.dumps({"html": str(written.html) if written.html else None,
                          "markdown": str(written.markdown) if written.markdown else None,
                          "answer_rows": written.answer_rows, "retrieval_rows": written.retrieval_rows,
                          "verdicts": list(written.verdicts)}, default=str, indent=2))
        return
    out.print(f"wrote {written.html} and {written.markdown} ({written.answer_rows} answer rows, "
              f"{written.retrieval_rows} retrieval rows)", highlight=False)
