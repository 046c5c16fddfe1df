"""``lcrag eval``: every strategy over the same questions of a data set, scored
rows into the ledger under one run id; rerunning the same run id resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lcrag.pipeline.cli.common import LcragError, console, fail, out, progress


def evaluate(
    dataset: str = typer.Option(
        ..., "--dataset", "-d",
        help="NAME:PATH. hotpotqa / hotpotqa-pooled (json or json.gz), squad2 (json), kv (kv-retrieval jsonl.gz), "
        "niah (a folder of .txt filler essays), qa-jsonl (question, answers[]; with --index), "
        "beir (a BEIR folder: retrieval only, nDCG@10 and Recall@k; no reader needed).",
    ),
    strategies: str = typer.Option(
        "all", "--strategies", "-s",
        help="Comma-separated strategy names, or all; add closed-book (no context) to flag questions the model answers unaided. "
        "For beir: retrieval methods (bm25, dense, hybrid) or all.",
    ),
    k: int = typer.Option(100, "--k", help="beir only: documents retrieved per query (Recall@k)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Questions to sample (a seeded prefix: a larger limit keeps these)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="Ledger run id; reuse it to resume an interrupted run."),
    positions: str = typer.Option("", "--positions", help="hotpotqa only: comma-separated slots to move the gold paragraphs to (position sweep)."),
    index: Optional[Path] = typer.Option(None, "--index", "-i", help="qa-jsonl only: the index the questions are asked over."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (encoder, units, chunking, reader, strategies)."),
    ledger_file: Optional[Path] = typer.Option(None, "--ledger", help="DuckDB ledger (default: ledger.duckdb in the state folder, see `lcrag info`)."),
    work: Optional[Path] = typer.Option(None, "--work", help="Where evaluation indexes are kept (default: eval/ in the state folder)."),
) -> None:
    """Answer a data set's questions with every strategy and record scored rows.

    Each corpus is ingested once into its own index; a second run with the same
    --run-id answers only what is missing. Needs the reader (`lcrag reader start`).
    """
    from lcrag.core.paths import default_ledger, state_home
    from lcrag.pipeline.answer import resolve_names
    from lcrag.pipeline.answer.recording import context_budget, new_run_id
    from lcrag.pipeline.config import load_config
    from lcrag.pipeline.evaluation import DATASETS, EvalRun, run_evaluation
    from lcrag.pipeline.ingest.encoder import make_encoder
    from lcrag.pipeline.ledger import Ledger
    from lcrag.readers import connect_reader, make_attention

    name, _, path = dataset.partition(":")
    if name == "beir" and path:
        return _evaluate_retrieval(Path(path), strategies, k, limit, seed, run_id, config_file, ledger_file, work)
    if name not in DATASETS or not path:
        fail(f"--dataset must be NAME:PATH with NAME one of {', '.join(DATASETS)}, beir; got {dataset!r}")
    if positions and name != "hotpotqa":
        fail("--positions applies to --dataset hotpotqa only (kv records its gold index itself)")
    try:
        names = tuple(resolve_names(strategies))
        config = load_config(config_file)
        slots = tuple(int(p) for p in positions.split(",") if p.strip())
        builder = DATASETS[name]
        evalset = builder(Path(path), limit, seed, slots) if slots else builder(Path(path), limit, seed)
        reader = connect_reader(config.reader, state_home())
        ledger = Ledger(ledger_file or default_ledger())
        run = EvalRun(run_id or new_run_id(), evalset.name, names, work or state_home() / "eval", index)
        done = ledger.done_keys(run.run_id)
        total = sum(1 for i in evalset.items for s in names if (i.question.qid, s) not in done)
        console.print(f"run {run.run_id}: {len(evalset.items)} questions x {len(names)} strategies, {total} to answer")
        with progress() as bar:
            task = bar.add_task("questions x strategies", total=total)
            answered = run_evaluation(
                evalset, run, config, make_encoder(config.encoder).warm_up(), reader,
                make_attention(config.reader, state_home()), ledger,
                context_budget(config.reader, config.strategies), lambda n: bar.advance(task, n),
            )
    except LcragError as err:
        fail(str(err))
    summary = ledger.query(
        "select strategy, count(*) n, round(avg(em), 3) em, round(avg(f1), 3) f1, round(avg(prompt_tokens)) prompt_tokens, "
        "round(avg(retrieval_ms + reading_ms) / 1000, 2) mean_latency_s from ledger where run_id = ? group by 1 order by f1 desc",
        [run.run_id],
    )
    for row in summary:
        out.print("  ".join(f"{k}={v}" for k, v in row.items()), highlight=False)
    out.print(f"answered {answered} pairs; run id {run.run_id}; ledger {ledger.path}", highlight=False)


def _evaluate_retrieval(path: Path, methods_text: str, k: int, limit: int | None, seed: int, run_id: str | None,
                        config_file: Path | None, ledger_file: Path | None, work: Path | None) -> None:
    """``--dataset beir:PATH``: judge each retrieval method's document ranking."""
    from lcrag.core.paths import default_ledger, state_home
    from lcrag.pipeline.answer.recording import new_run_id
    from lcrag.pipeline.config import load_config
    from lcrag.pipeline.evaluation.retrieval import beir, resolve_methods, run_retrieval
    from lcrag.pipeline.ingest.encoder import make_encoder
    from lcrag.pipeline.ledger import Ledger

    if k < 10:
        fail(f"--k must be at least 10 (nDCG@10 needs ten ranks), got {k}")
    try:
        methods = resolve_methods(methods_text)
        config = load_config(config_file)
        with console.status(f"loading {path} ..."):
            rset = beir(path, limit, seed)
        ledger = Ledger(ledger_file or default_ledger())
        run = run_id or new_run_id()
        console.print(f"run {run}: {len(rset.queries)} judged queries x {len(methods)} methods over {len(rset.documents)} documents")
        with progress() as bar:
            task = bar.add_task("queries x methods", total=len(rset.queries) * len(methods))
            judged = run_retrieval(rset, run, methods, work or state_home() / "eval", config,
                                   make_encoder(config.encoder).warm_up(), ledger, k=k, progress=lambda n: bar.advance(task, n))
    except LcragError as err:
        fail(str(err))
    summary = ledger.query(
        "select method, count(*) n, round(avg(ndcg_at_10), 3) ndcg_at_10, round(avg(recall_at_k), 3) recall_at_k, "
        "round(avg(mrr), 3) mrr, round(avg(retrieval_ms), 1) mean_ms from retrieval where run_id = ? group by 1 order by 3 desc",
        [run],
    )
    for row in summary:
        out.print("  ".join(f"{key}={value}" for key, value in row.items()), highlight=False)
    out.print(f"judged {judged} pairs; run id {run}; ledger {ledger.path}", highlight=False)
