"""``lcrag eval``: every strategy over the same questions of a data set, scored
rows into the ledger under one run id; rerunning the same run id resumes."""

from __future__ import annotations

from pathlib import Path

import typer

from lcrag.app.cli.common import LcragError, console, fail, out, progress


def evaluate(
    dataset: str = typer.Option(
        ..., "--dataset", "-d",
        help="NAME:PATH. hotpotqa / hotpotqa-pooled (json or json.gz), squad2 (json), kv (kv-retrieval jsonl.gz), "
        "niah (a folder of .txt filler essays: one made-up fact per haystack), niah-agg (the same folder: two made-up "
        "facts at different depths of one haystack, and a question only both answer, e.g. which of two barges carries "
        "more; default lengths 8k,16k,32k tokens), qa-jsonl (question, answers[]; with --index), "
        "longdoc (JSON lines of long documents with questions: LongBench v1/v2, L-Eval, BAMBOO layouts recognised; "
        "multiple choice scored as accuracy), "
        "beir (a BEIR folder: retrieval only, nDCG@10 and Recall@k; no reader needed), "
        "synth:N (no file: the reader writes N questions about passages of --index and keeps those it then answers "
        "from the passage alone; saved as qa-jsonl to review and rerun).",
    ),
    strategies: str = typer.Option(
        "all", "--strategies", "-s",
        help="Comma-separated strategy names, or all; add closed-book (no context) to flag questions the model answers unaided, "
        "and oracle (the question's gold evidence only, where the data set marks it) for the report's diagnosis of where "
        "quality is lost. "
        "For beir: retrieval methods (bm25, dense, hybrid) or all.",
    ),
    k: int = typer.Option(100, "--k", help="beir only: documents retrieved per query (Recall@k)."),
    limit: int | None = typer.Option(None, "--limit", "-n", help="Questions to sample (a seeded prefix: a larger limit keeps these)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    run_id: str | None = typer.Option(None, "--run-id", help="Ledger run id; reuse it to resume an interrupted run."),
    positions: str = typer.Option("", "--positions", help="hotpotqa only: comma-separated slots to move the gold paragraphs to (position sweep)."),
    index: Path | None = typer.Option(None, "--index", "-i", help="qa-jsonl and synth: the index the questions are asked over."),
    config_file: Path | None = typer.Option(None, "--config", "-c", help="YAML config (encoder, units, chunking, reader, strategies)."),
    ledger_file: Path | None = typer.Option(None, "--ledger", help="DuckDB ledger (default: ledger.duckdb in the state folder, see `lcrag info`)."),
    fields: str | None = typer.Option(
        None, "--fields", help="longdoc only: map other field names, e.g. "
        "document=text,question=q,answers=a[,options=opts,id=qid,title=t,evidence=ev] (evidence: the gold passage the "
        "oracle control reads).",
    ),
    niah_lengths: str | None = typer.Option(
        None, "--niah-lengths",
        help="niah / niah-agg only: comma-separated haystack lengths, in words (500,1000) or thousands of reader tokens "
        "(8k,16k,32k), converted at 0.75 words a token: approximate (English prose runs about 1.3 tokens a word). "
        "Defaults: niah 500,1000,2000 words; niah-agg 8k,16k,32k. The reader's window (reader.max_model_len) must hold "
        "the longest haystack for long context to read it whole.",
    ),
    niah_questions: int | None = typer.Option(
        None, "--niah-questions", min=1,
        help="niah / niah-agg only: questions per (depth, length) cell, each over its own haystack. niah has 8 needles "
        "(default all 8); niah-agg makes as many as asked (default 8).",
    ),
    work: Path | None = typer.Option(None, "--work", help="Where evaluation indexes are kept (default: eval/ in the state folder)."),
    router: Path | None = typer.Option(
        None, "--router", help="A fitted router file (lcrag route fit --out) that auto and self-route use on every corpus of "
        "the run: score a router live on data it was not fitted on. Default: qa-jsonl and synth use the index's own router.",
    ),
    until_decided: bool = typer.Option(
        False, "--until-decided",
        help="Answer in rounds of --round-size questions (a seeded order; --limit caps the total) and after each round "
        "take the run's verdict, stopping once every data set is resolved (use X) or futile (no size up to the "
        "data set's questions would settle it), or the questions run out. Peeking after every round would let noise "
        "decide more often, so each look is tested at its own share of the verdict's error rate (alpha spending, "
        "alpha*t^3 with t the share of questions answered: Lan & DeMets; the shares add up to alpha, so by the union "
        "bound the chance of any wrong recommendation stays at most alpha). Stopping for futility never raises that "
        "error rate: it only ends a run without a recommendation. Looks sit at multiples of the round size, so "
        "rerunning the same --run-id with the same --round-size re-derives them and resumes.",
    ),
    round_size: int | None = typer.Option(
        None, "--round-size", min=1,
        help="With --until-decided: questions answered between two looks at the verdict (default 20).",
    ),
) -> None:
    """Answer a data set's questions with every strategy and record scored rows.

    Each corpus is ingested once into its own index; a second run with the same
    --run-id answers only what is missing. Needs the reader (`lcrag reader start`).
    With --until-decided it answers in rounds and stops as soon as the verdict is
    settled (sequential looks with alpha spending, see that option).
    """
    from lcrag.pipeline.config import load_config
    from lcrag.pipeline.evaluation.job import ROUND_SIZE, EvalRequest
    from lcrag.pipeline.evaluation.job import evaluate as run_job

    try:
        slots = tuple(int(p) for p in positions.split(",") if p.strip())
    except ValueError:
        fail(f"--positions must be comma-separated whole numbers, got {positions!r}")
    if round_size is not None and not until_decided:
        fail("--round-size applies with --until-decided only")
    try:
        request = EvalRequest(dataset, strategies, k, limit, seed, run_id, slots, index, ledger_file, work, fields, router,
                              until_decided, ROUND_SIZE if round_size is None else round_size,
                              niah_lengths=niah_lengths, niah_questions=niah_questions)
        config = load_config(config_file)
        with progress() as bar:
            def bar_for(description: str, total: int):
                task = bar.add_task(description, total=total)
                return lambda n: bar.advance(task, n)

            outcome = run_job(request, config, bar_for, console.print)
    except LcragError as err:
        fail(str(err))
    except KeyboardInterrupt:
        console.print("[bold red]interrupted:[/] the pairs answered so far are in the ledger; "
                      "run the same command (same --run-id) to answer the rest", highlight=False)
        raise typer.Exit(130) from None
    for row in outcome.summary:
        out.print("  ".join(f"{key}={value}" for key, value in row.items()), highlight=False)
    for name, count in outcome.not_asked:
        out.print(f"{name}: not asked {count} of {outcome.questions} questions (no gold evidence)", highlight=False)
    if outcome.rounds:
        last = outcome.rounds[-1]
        state = f"stopped ({last.stop})" if last.decided else "not settled"
        out.print(f"{state} after look {last.number} of {last.rounds}: {last.questions} of {last.planned} questions, "
                  f"alpha {last.spent:.2g} of {last.total_alpha:g} spent", highlight=False)
        for verdict in last.verdicts:
            out.print(f"  {verdict.name}: {verdict.sentence}", highlight=False)
    verb = "answered" if outcome.kind == "answers" else "judged"
    out.print(f"{verb} {outcome.done} pairs; run id {outcome.run_id}; ledger {outcome.ledger}", highlight=False)
