"""``lcrag ask``: one question, one or all strategies, read by the real reader,
printed with citations, route, tokens and timings, and recorded in the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from lcrag.app.cli.common import LcragError, console, fail, out


def ask(
    question: str = typer.Argument(..., help="The question."),
    index: Path = typer.Option(..., "--index", "-i", help="A finished index folder."),
    strategy: str = typer.Option(
        "auto", "--strategy", "-s",
        help="rag | longrag | lc | reorder | op-rag | attention-sort | self-route | auto, a comma-separated list, or all.",
    ),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config: reader and strategies sections."),
    ledger_file: Optional[Path] = typer.Option(None, "--ledger", help="DuckDB ledger file (default: ledger.duckdb in the state folder, see `lcrag info`)."),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="Ledger run id (default: a new one)."),
    budget: Optional[int] = typer.Option(
        None, "--budget", min=64,
        help="Context tokens a strategy may fill (default: strategies.budget_tokens, else what the reader's window "
        "leaves after the answer and the prompt). A cold read costs about 1 s per 80-100 tokens on 2 CPU cores (README).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the outcomes as JSON."),
) -> None:
    """Answer QUESTION from the index with one or more strategies, side by side.

    Every strategy uses the same reader (the vLLM server: `lcrag reader start`)
    and writes one ledger row: query it with `duckdb LEDGER "select ..."` (`lcrag info` prints where the ledger is).
    """
    from dataclasses import replace

    from lcrag.core.errors import ConfigError
    from lcrag.core.paths import default_ledger, state_home
    from lcrag.pipeline.strategies import (
        Question,
        Toolkit,
        resolve_names,
    )
    from lcrag.pipeline.recording import (
        RunLabels,
        answer_and_record,
        context_budget,
        new_run_id,
    )
    from lcrag.pipeline.routing.router import load_router, router_path
    from lcrag.pipeline.config import load_config
    from lcrag.pipeline.index.search import IndexReader
    from lcrag.retrievers.encoders.encoder import make_encoder
    from lcrag.pipeline.ledger import Ledger
    from lcrag.readers import connect_reader, make_attention

    try:
        names = resolve_names(strategy)
        config = load_config(config_file)
        window_budget = context_budget(config.reader, replace(config.strategies, budget_tokens=0))
        if budget is not None and budget > window_budget:
            raise ConfigError(
                f"--budget {budget} is over what the reader's window leaves ({window_budget} tokens of "
                f"reader.max_model_len {config.reader.max_model_len}); lower it or raise reader.max_model_len"
            )
        reader = connect_reader(config.reader, state_home())
        ledger = Ledger(ledger_file or default_ledger())
        with IndexReader(index, make_encoder) as corpus:
            tools = Toolkit(
                corpus, reader, config.strategies, budget or context_budget(config.reader, config.strategies),
                make_attention(config.reader, state_home()), router=load_router(router_path(index)),
            )
            labels = RunLabels.for_corpus(corpus, run_id or new_run_id(), reader.model)  # the index's fingerprint
            with console.status(f"answering with {', '.join(names)} ..."):
                results = answer_and_record([Question("cli", question)], names, tools, ledger, labels)
    except LcragError as err:
        fail(str(err))

    outcomes = [(name, found[0]) for name, found in results.items()]
    if as_json:
        out.print_json(json.dumps([outcome_dict(name, o) for name, o in outcomes]))
        return
    for name, o in outcomes:
        table = Table(title=f"{name}  →  {o.answer.text!r}", show_header=False, title_justify="left")
        table.add_row("route", o.route + (" (fell back)" if o.fell_back else ""))
        table.add_row("tokens", f"context {o.context.tokens}, prompt {o.prompt_tokens}, completion {o.completion_tokens}, calls {o.calls}")
        table.add_row("time", f"retrieval {o.retrieval_ms:.0f} ms, reading {o.reading_ms:.0f} ms")
        table.add_row("context", f"{len(o.context.passages)} passages" + (", cut in the middle to fit" if o.context.cut else ""))
        for number, p in enumerate(o.context.passages[:8], 1):
            snippet = " ".join(p.text.split())[:100]
            table.add_row(f"[{number}]", f"{p.doc_id} {p.start}-{p.end}: {snippet}")
        out.print(table)
    out.print(f"ledger run {labels.run_id}: {len(outcomes)} row(s) in {ledger.path}", highlight=False)


def outcome_dict(name: str, outcome) -> dict:
    return {
        "strategy": name,
        "answer": outcome.answer.text,
        "route": outcome.route,
        "fell_back": outcome.fell_back,
        "calls": outcome.calls,
        "context_tokens": outcome.context.tokens,
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "retrieval_ms": round(outcome.retrieval_ms, 1),
        "reading_ms": round(outcome.reading_ms, 1),
        "context_cut": outcome.context.cut,
        "citations": [
            {"doc_id": p.doc_id, "title": p.title, "start": p.start, "end": p.end, "text": p.text}
            for p in outcome.context.passages
        ],
    }
