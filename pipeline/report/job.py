"""One report, start to finish: ledger rows of the chosen runs (answers and retrieval
judgements) -> report.html and report.md. ``lcrag report``, the Prefect flow and any
library caller share it, so a retrieval-only run reports the same way everywhere."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lcrag.core.errors import LcragError
from lcrag.pipeline.config import Config
from lcrag.pipeline.ledger import Ledger
from lcrag.pipeline.report.model import build_report
from lcrag.pipeline.report.render import verdict_json, write_report
from lcrag.pipeline.statistics.intervals import bootstrap_mean
from lcrag.pipeline.statistics.verdict import VerdictSettings

DEFAULT_TITLE = "lcrag: RAG vs long context"


class NothingToReportError(LcragError):
    """The ledger is missing or holds no rows for the requested runs."""


@dataclass(frozen=True)
class WrittenReport:
    html: Path | None  # None when only the verdicts were asked for (no --out)
    markdown: Path | None
    answer_rows: int
    retrieval_rows: int
    verdicts: tuple[dict, ...] = ()  # one per data set, as ``lcrag report --json`` prints them


def data_fingerprints(rows) -> dict[str, str]:
    """What the answers were computed over: per data set, a hash of its index ids
    and config hashes (identical inputs give identical fingerprints)."""
    grouped: dict[str, set[str]] = {}
    for row in rows:
        keys = f"{row.index_id}|{getattr(row, 'config_hash', '')}|{getattr(row, 'model', '')}"  # retrieval rows: index only
        grouped.setdefault(row.dataset or "(ad hoc)", set()).add(keys)
    return {name: hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16] for name, keys in sorted(grouped.items())}


def write_comparison_report(ledger_path: Path, run_ids: Sequence[str], out_dir: Path | None, config: Config,
                            title: str = DEFAULT_TITLE, settings: VerdictSettings = VerdictSettings(),
                            questions_per_document: float | None = None) -> WrittenReport:
    """Report the given runs (every run when none is named) into ``out_dir``; with no
    ``out_dir`` nothing is written and only the verdicts come back. The cost section
    projects prefill to ``questions_per_document`` (default: as observed)."""
    ledger = Ledger(ledger_path)
    if not ledger.path.exists():
        raise NothingToReportError(f"no ledger at {ledger.path}; answer some questions first (lcrag ask / lcrag eval)")
    rows = [r for rid in run_ids for r in ledger.rows(rid)] if run_ids else ledger.rows()
    judged = [r for rid in run_ids for r in ledger.retrieval_rows(rid)] if run_ids else ledger.retrieval_rows()
    if not rows and not judged:
        raise NothingToReportError(f"no ledger rows{' for run ' + ', '.join(run_ids) if run_ids else ''} in {ledger.path}")
    features = [f for rid in sorted({r.run_id for r in rows}) for f in ledger.feature_rows(rid)]
    built = build_report(rows, title=title, config=config.to_dict(), data_hashes=data_fingerprints([*rows, *judged]),
                         interval_fn=bootstrap_mean, retrieval_rows=judged, features=features, settings=settings,
                         questions_per_document=questions_per_document)
    html_path = md_path = None
    if out_dir is not None:
        html_path, md_path = (Path(p) for p in write_report(built, Path(out_dir)))
    return WrittenReport(html_path, md_path, len(rows), len(judged), tuple(verdict_json(built)))
