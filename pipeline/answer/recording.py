"""Answer questions with strategies and record every outcome in the ledger.

This is the path of one question from the CLI (or API, or evaluation) to its
ledger rows: strategies run in turn over the same questions, each batch read
together, and each (question, strategy) becomes one ``LedgerRow``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from lcrag.pipeline.answer import Outcome, Question, Toolkit, get_strategy
from lcrag.pipeline.answer.scoring import (
    answer_recall,
    best_over_golds,
    exact_match,
    token_f1,
)
from lcrag.pipeline.config import ReaderConfig, StrategyConfig
from lcrag.pipeline.ledger import Ledger, LedgerRow
from lcrag.readers.prompts import is_unanswerable


def context_budget(reader: ReaderConfig, strategies: StrategyConfig) -> int:
    """Context tokens a strategy may use: configured, or what the reader's window
    leaves after the answer and the prompt's own words."""
    if strategies.budget_tokens:
        return strategies.budget_tokens
    return max(reader.max_model_len - reader.max_tokens - strategies.prompt_overhead_tokens, 64)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


@dataclass(frozen=True)
class RunLabels:
    """What every ledger row of a run carries besides the outcome itself."""

    run_id: str
    index_id: str
    config_hash: str
    model: str
    dataset: str | None = None


def ledger_row(
    outcome: Outcome, labels: RunLabels, golds: Sequence[str] | None = None, answerable: bool | None = None
) -> LedgerRow:
    """The outcome as a ledger row; with gold answers, scored (EM, F1, answer recall).

    Where questions may be unanswerable (``answerable`` given) the row records
    whether the reader abstained; an unanswerable question scores 1 on every
    metric when the reader abstained and 0 otherwise, SQuAD 2.0's convention."""
    scores: dict = {}
    if answerable is not None:
        abstained = is_unanswerable(outcome.answer.text)
        scores = {"answerable": answerable, "abstained": abstained}
        if not answerable:
            hit = 1.0 if abstained else 0.0
            scores.update(gold_answers=(), em=hit, f1=hit, recall=hit)
    if golds and answerable is not False:
        text = outcome.answer.text
        scores |= {
            "gold_answers": tuple(golds),
            "em": best_over_golds(exact_match, text, golds),
            "f1": best_over_golds(token_f1, text, golds),
            "recall": best_over_golds(answer_recall, text, golds),
        }
    return LedgerRow(
        run_id=labels.run_id,
        question_id=outcome.question.qid,
        question=outcome.question.text,
        strategy=outcome.strategy,
        route=outcome.route,
        answer=outcome.answer.text,
        index_id=labels.index_id,
        config_hash=labels.config_hash,
        model=labels.model,
        retrieved_ids=tuple(outcome.context.retrieved_ids),
        used_ids=tuple(p.passage_id for p in outcome.context.passages),
        context_tokens=outcome.context.tokens,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        retrieval_ms=outcome.retrieval_ms,
        reading_ms=outcome.reading_ms,
        context_cut=outcome.context.cut,
        calls=outcome.calls,
        fell_back=outcome.fell_back,
        dataset=labels.dataset,
        **scores,
    )


def answer_and_record(
    questions: Sequence[Question],
    strategy_names: Sequence[str],
    tools: Toolkit,
    ledger: Ledger | None,
    labels: RunLabels,
    on_strategy_done: Callable[[str, list[Outcome]], None] | None = None,
    golds: Mapping[str, Sequence[str]] | None = None,
    on_recorded: Callable[[str, list[LedgerRow]], None] | None = None,
    answerable: Mapping[str, bool] | None = None,
) -> dict[str, list[Outcome]]:
    """Run each strategy over all questions; record its rows as soon as it finishes.
    ``on_recorded`` sees the rows (with their ids) once they are stored."""
    golds, answerable = golds or {}, answerable or {}
    results: dict[str, list[Outcome]] = {}
    for name in strategy_names:
        outcomes = get_strategy(name).run_batch(list(questions), tools)
        rows = [ledger_row(o, labels, golds.get(o.question.qid), answerable.get(o.question.qid)) for o in outcomes]
        if ledger is not None:
            ledger.record(rows)
        if on_recorded is not None:
            on_recorded(name, rows)
        results[name] = outcomes
        if on_strategy_done is not None:
            on_strategy_done(name, outcomes)
    return results
