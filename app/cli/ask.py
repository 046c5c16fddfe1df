"""``lcrag ask``: one question, one or all strategies, read by the real reader,
printed with citations, route, tokens and timings, and recorded in the ledger."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from lcrag.app.cli.common import LcragError, console, fail, out


def ask(
    question: str = typer.Argument(..., help="The question."),
    index: Path = typer.Option(..., "--index", "-i", help="A finished index folder."),
    strategy: str = typer.Option(
        "auto", "--strategy", "-s",
        help="rag | longrag | lc | reorder | op-rag | attention-sort | self-route | auto | coa, a comma-separated "
        "list, or all; the controls closed-book (no context) and oracle (only --evidence) by name.",
    ),
    evidence: list[str] = typer.Option(
        [], "--evidence", "-e",
        help="A passage of gold evidence (repeatable): the oracle control reads only the evidence given, so "
        "oracle against rag shows what retrieval loses on this question.",
    ),
    evidence_docs: list[str] = typer.Option(
        [], "--evidence-doc", help="A document id of the index to read whole as gold evidence (repeatable).",
    ),
    config_file: Path | None = typer.Option(None, "--config", "-c", help="YAML config: reader and strategies sections."),
    ledger_file: Path | None = typer.Option(
        None, "--ledger", help="DuckDB ledger file (default: ledger.duckdb in the state folder, see `lcrag info`)."
    ),
    run_id: str | None = typer.Option(None, "--run-id", help="Ledger run id (default: a new one)."),
    budget: int | None = typer.Option(
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
    from lcrag.pipeline.recording import RunLabels, answer_and_record, new_run_id
    from lcrag.pipeline.session import Session
    from lcrag.pipeline.strategies import Question, needs_evidence, resolve_names

    try:
        names = resolve_names(strategy)
        gold = given_evidence(evidence, evidence_docs)
        if not gold and any(needs_evidence(n) for n in names):
            raise LcragError("the oracle reads only the gold evidence you give: add --evidence PASSAGE or "
                             "--evidence-doc DOC_ID (repeatable), or drop oracle from --strategy")
        with Session.from_file(config_file, ledger_path=ledger_file) as session:
            context_tokens, model = session.budget(budget), session.reader.model  # refused before the index loads
            with session.open_index(index) as corpus:
                tools = session.toolkit(corpus, budget=context_tokens, router=session.router_for(index))
                labels = RunLabels.for_corpus(corpus, run_id or new_run_id(), model)  # the index's fingerprint
                with console.status(f"answering with {', '.join(names)} ..."):
                    results = answer_and_record([Question("cli", question, evidence=gold)], names, tools, session.ledger, labels)
            ledger_path = session.ledger.path
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
    out.print(f"ledger run {labels.run_id}: {len(outcomes)} row(s) in {ledger_path}", highlight=False)


def given_evidence(passages: list[str], doc_ids: list[str]) -> tuple:
    """``--evidence`` passages, then ``--evidence-doc`` documents, as the question's gold evidence."""
    from lcrag.pipeline.strategies import Evidence

    blank = [p for p in passages if not p.strip()] + [d for d in doc_ids if not d.strip()]
    if blank:
        raise LcragError("--evidence and --evidence-doc need text: an empty one names no evidence")
    return tuple(Evidence(text=p) for p in passages) + tuple(Evidence(doc_id=d.strip()) for d in doc_ids)


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
