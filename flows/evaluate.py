"""Evaluation as a Prefect flow: ``lcrag eval`` as one retried task around the same
function (``lcrag.pipeline.evaluation.job.evaluate``), beir included.

Answering retries: the run is resumable by design (pairs already in the ledger under
this run id are skipped), so a retry after a reader hiccup only answers what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lcrag.pipeline.config import load_config
from lcrag.pipeline.evaluation.job import ROUND_SIZE, EvalOutcome, EvalRequest, evaluate


@task(name="evaluate and record", retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def evaluate_task(request: EvalRequest, config_file: str | None) -> EvalOutcome:
    logger = get_run_logger()
    outcome = evaluate(request, load_config(config_file), announce=logger.info)
    logger.info("%s %d pairs of run %s", "answered" if outcome.kind == "answers" else "judged", outcome.done, outcome.run_id)
    return outcome


@flow(name="lcrag-evaluate")
def evaluate_flow(
    dataset: str,
    path: str,
    strategies: str = "all",
    limit: int | None = None,
    seed: int = 0,
    run_id: str | None = None,
    positions: tuple[int, ...] = (),
    config_file: str | None = None,
    ledger: str | None = None,
    work: str | None = None,
    index: str | None = None,
    k: int = 100,
    fields: str | None = None,
    router: str | None = None,
    until_decided: bool = False,
    round_size: int = ROUND_SIZE,
    niah_lengths: str | None = None,
    niah_questions: int | None = None,
) -> dict[str, Any]:
    """Evaluate every strategy (or, for beir, every retrieval method) on DATASET at PATH,
    with the options of ``lcrag eval`` (``until_decided`` answers in rounds and stops
    once the verdict is settled); returns the run id, counts and the looks taken."""
    request = EvalRequest(
        f"{dataset}:{path}", strategies, k, limit, seed, run_id, tuple(positions),
        Path(index) if index else None, Path(ledger) if ledger else None, Path(work) if work else None,
        fields=fields, router=Path(router) if router else None, until_decided=until_decided, round_size=round_size,
        niah_lengths=niah_lengths, niah_questions=niah_questions,
    )
    outcome = evaluate_task(request, config_file)
    return {"run_id": outcome.run_id, "questions": outcome.questions, "answered": outcome.done,
            "looks": [look.line() for look in outcome.rounds]}
