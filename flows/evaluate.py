"""Evaluation as a Prefect flow: the same work as ``lcrag eval``, as thin tasks.

Answering retries: the run is resumable by design (pairs already in the ledger
under this run id are skipped), so a retry after a reader hiccup only answers
what is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lcrag.core.paths import default_ledger, state_home
from lcrag.pipeline.answer import resolve_names
from lcrag.pipeline.answer.recording import context_budget, new_run_id
from lcrag.pipeline.config import load_config
from lcrag.pipeline.evaluation import DATASETS, EvalRun, EvalSet, run_evaluation
from lcrag.pipeline.ingest.encoder import make_encoder
from lcrag.pipeline.ledger import Ledger
from lcrag.readers import make_attention, make_reader


@task(name="build evaluation set", cache_policy=NO_CACHE)
def build_task(dataset: str, path: str, limit: int | None, seed: int, positions: tuple[int, ...]) -> EvalSet:
    builder = DATASETS[dataset]
    evalset = builder(Path(path), limit, seed, positions) if positions else builder(Path(path), limit, seed)
    get_run_logger().info("%s: %d questions over %d corpora", evalset.name, len(evalset.items), len(evalset.corpora))
    return evalset


@task(name="answer and record", retries=2, retry_delay_seconds=10, cache_policy=NO_CACHE)
def answer_task(evalset: EvalSet, run: EvalRun, config_file: str | None, ledger_path: str) -> int:
    config = load_config(config_file)
    reader = make_reader(config.reader, state_home())
    try:
        answered = run_evaluation(
            evalset, run, config, make_encoder(config.encoder).warm_up(), reader,
            make_attention(config.reader, state_home()), Ledger(ledger_path),
            context_budget(config.reader, config.strategies),
        )
    finally:
        reader.close()
    get_run_logger().info("answered %d (question, strategy) pairs", answered)
    return answered


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
) -> dict[str, Any]:
    """Evaluate every strategy on DATASET at PATH; returns the run id and counts."""
    run = EvalRun(
        run_id or new_run_id(), dataset, tuple(resolve_names(strategies)),
        Path(work) if work else state_home() / "eval", Path(index) if index else None,
    )
    evalset = build_task(dataset, path, limit, seed, tuple(positions))
    answered = answer_task(evalset, run, config_file, str(ledger or default_ledger()))
    return {"run_id": run.run_id, "questions": len(evalset.items), "answered": answered}
