"""Answer questions with strategies and record every outcome in the ledger.

This is the path of one question from the CLI (or API, or evaluation) to its
ledger rows: strategies run in turn over the same questions, each batch read
together, and each (question, strategy) becomes one ``LedgerRow``.

Provenance: a row's ``config_hash`` is the fingerprint of the index generation
that answered (its manifest's), never the asking command's config; build the
labels with ``RunLabels.for_corpus`` so ask, the API and evaluation agree.

Reader failures: by default a ``ReaderError`` propagates (ask, the API). Given a
``ReaderFailures``, a failing question instead becomes an error row (its
``error`` set, zero tokens) and the others are still answered; ``Ledger.done_keys``
leaves such pairs out, so a resumed run retries exactly them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from lcrag.pipeline.config import ReaderConfig, StrategyConfig
from lcrag.pipeline.ledger import Ledger, LedgerRow
from lcrag.pipeline.routing.confidence import first_token_probability
from lcrag.pipeline.scoring.choices import parse_choice, score_choice
from lcrag.pipeline.scoring.metrics import (
    answer_recall,
    best_over_golds,
    exact_match,
    token_f1,
)
from lcrag.pipeline.strategies import Outcome, Question, Toolkit, get_strategy
from lcrag.readers.base import ReaderError
from lcrag.readers.prompts import is_unanswerable


def context_budget(reader: ReaderConfig, strategies: StrategyConfig) -> int:
    """Context tokens a strategy may use: configured, or what the reader's window
    leaves after the answer and the prompt's own words."""
    if strategies.budget_tokens:
        return strategies.budget_tokens
    return max(reader.max_model_len - reader.max_tokens - strategies.prompt_overhead_tokens, 64)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


class Provenance(Protocol):
    """What an opened index says about itself (``IndexReader`` is one)."""

    @property
    def index_id(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...


@dataclass(frozen=True)
class RunLabels:
    """What every ledger row of a run carries besides the outcome itself.
    ``config_hash`` is the fingerprint of the index that answered: use ``for_corpus``."""

    run_id: str
    index_id: str
    config_hash: str
    model: str
    dataset: str | None = None

    @classmethod
    def for_corpus(
        cls, corpus: Provenance, run_id: str, model: str, dataset: str | None = None, index_id: str | None = None
    ) -> RunLabels:
        """Labels for rows answered from ``corpus`` (an opened index generation): its
        id (unless ``index_id`` names it otherwise) and the fingerprint its manifest
        records, whatever config the asking command loaded."""
        return cls(run_id, index_id or corpus.index_id, corpus.fingerprint, model, dataset)

    def row_fields(self, question: Question) -> dict:
        """The fields every row of this run shares, for ``question``: with what its data
        set says of it (answer kind, evidence placement) as columns, never parsed from its id."""
        return {
            "run_id": self.run_id, "question_id": question.qid, "question": question.text, "index_id": self.index_id,
            "config_hash": self.config_hash, "model": self.model, "dataset": self.dataset,
            "answer_kind": question.answer_kind, "evidence_position": question.evidence_position,
            "needle_depths": question.needle_depths or None, "haystack_length": question.haystack_length,
        }


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
    if outcome.question.options:
        scores |= choice_scores(outcome, golds)
    elif golds and answerable is not False:
        text = outcome.answer.text
        scores |= {
            "gold_answers": tuple(golds),
            "em": best_over_golds(exact_match, text, golds),
            "f1": best_over_golds(token_f1, text, golds),
            "recall": best_over_golds(answer_recall, text, golds),
        }
    return LedgerRow(
        **labels.row_fields(outcome.question),
        strategy=outcome.strategy,
        route=outcome.route,
        route_steps=outcome.steps,
        route_reason=outcome.route_reason,
        answer=outcome.answer.text,
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
        cached_tokens=outcome.answer.cached_prompt_tokens,
        scope_read=outcome.context.scope_read,
        # multiple choice: the chosen letter's probability (parsed once, in choice_scores)
        confidence=scores["choice_prob"] if scores.get("choice_prob") is not None else outcome.answer.confidence,
        **scores,
    )


def choice_scores(outcome: Outcome, golds: Sequence[str] | None) -> dict:
    """A multiple-choice answer: the letter(s) parsed from the reply (None when the
    reply names no option: recorded as unparseable, never as a wrong letter), its
    probability as the first answer token where the reader gave logprobs, and
    accuracy (an unparseable reply is not a right one, so it scores 0)."""
    question = outcome.question
    chosen = parse_choice(outcome.answer.text, question.options, multi=question.multi_answer)
    scores: dict = {"choice": chosen, "choice_prob": first_token_probability(outcome.answer, chosen)}
    if golds:
        correct = golds[0]
        hit = score_choice(chosen, correct) or 0.0
        scores |= {"gold_answers": (correct,), "em": hit, "f1": hit, "recall": hit}
    return scores


ERROR_ROUTE = "error"  # the route of an error row: no path produced an answer
_ERROR_CHARS = 300


def short_error(err: BaseException) -> str:
    """The first line of the error's message, at most a few hundred characters."""
    lines = str(err).strip().splitlines()
    return (lines[0] if lines else type(err).__name__)[:_ERROR_CHARS]


def error_row(
    question: Question,
    strategy: str,
    labels: RunLabels,
    message: str,
    golds: Sequence[str] | None = None,
    answerable: bool | None = None,
) -> LedgerRow:
    """A (question, strategy) pair the reader failed on: ``error`` set, no answer,
    zero tokens and time, unscored (quality means skip it; it counts in ``n``)."""
    return LedgerRow(
        **labels.row_fields(question),
        strategy=strategy,
        route=ERROR_ROUTE,
        route_steps=(),  # no path answered
        answer="",
        retrieved_ids=(),
        used_ids=(),
        context_tokens=0,
        prompt_tokens=0,
        completion_tokens=0,
        retrieval_ms=0.0,
        reading_ms=0.0,
        context_cut=False,
        calls=0,
        gold_answers=tuple(golds) if golds else None,
        answerable=answerable,
        error=message or "reader error",
    )


class ReaderFailures:
    """How a run treats reader failures (``ReaderError``, which is also how the HTTP
    reader reports refused or failed requests): each failed question is recorded as
    an error row and the run goes on, until ``limit`` questions in a row have failed
    with no success between them. Then the reader looks down: the run stops
    (``tripped``) with ``error()``, after recording the failures it saw. One object
    per run, shared by its threads."""

    def __init__(self, limit: int = 8) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        self.limit = limit
        self.failed = 0  # questions failed in this run so far
        self.last = ""
        self._streak = 0
        self._tripped = False
        self._lock = threading.Lock()

    @property
    def tripped(self) -> bool:
        return self._tripped

    def succeeded(self) -> None:
        with self._lock:
            self._streak = 0

    def failure(self, message: str) -> None:
        with self._lock:
            self.failed += 1
            self._streak += 1
            self.last = message
            if self._streak >= self.limit:
                self._tripped = True

    def error(self, run_id: str) -> ReaderError:
        return ReaderError(
            f"the reader failed on {self.limit} questions in a row (last: {self.last}); stopped run {run_id} "
            f"after recording {self.failed} failed pair(s) as errors. Once the reader answers "
            f"(`lcrag reader status`), rerun with the same run id to retry exactly those"
        )


def answer_isolating(
    strategy, questions: Sequence[Question], tools: Toolkit, failures: ReaderFailures
) -> list[Outcome | str | None]:
    """Run ``strategy`` over ``questions`` as one batch; if the reader fails, split
    the batch in halves and retry each (so the server still batches) until the
    failing questions stand alone. Returns, per question, its outcome, its error
    message, or None when the run stopped (``failures.tripped``) before trying it.
    Errors other than ``ReaderError`` (bugs) propagate."""
    settled: list[Outcome | str | None] = [None] * len(questions)

    def attempt(start: int, end: int) -> None:
        if failures.tripped:
            return
        try:
            outcomes = strategy.run_batch(list(questions[start:end]), tools)
        except ReaderError as err:
            if end - start == 1:
                settled[start] = short_error(err)
                failures.failure(settled[start])
                return
            middle = (start + end) // 2
            attempt(start, middle)
            attempt(middle, end)
            return
        failures.succeeded()
        settled[start:end] = outcomes

    if questions:
        attempt(0, len(questions))
    return settled


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
    failures: ReaderFailures | None = None,
) -> dict[str, list[Outcome]]:
    """Run each strategy over all questions; record its rows as soon as it finishes.
    ``on_recorded`` sees the rows (with their ids) once they are stored.

    Without ``failures`` a reader error propagates and nothing of that strategy is
    recorded. With it, a question the reader fails on becomes an error row (see
    ``error_row``) and only the answered ones are in the returned outcomes; once
    ``failures`` trips, the rows seen so far are recorded and its ``ReaderError``
    is raised."""
    golds, answerable = golds or {}, answerable or {}
    results: dict[str, list[Outcome]] = {}
    for name in strategy_names:
        if failures is None:
            outcomes = get_strategy(name).run_batch(list(questions), tools)
            rows = [ledger_row(o, labels, golds.get(o.question.qid), answerable.get(o.question.qid)) for o in outcomes]
        else:
            settled = answer_isolating(get_strategy(name), questions, tools, failures)
            outcomes, rows = [], []
            for question, result in zip(questions, settled):
                if isinstance(result, str):
                    rows.append(error_row(question, name, labels, result, golds.get(question.qid), answerable.get(question.qid)))
                elif result is not None:
                    outcomes.append(result)
                    rows.append(ledger_row(result, labels, golds.get(question.qid), answerable.get(question.qid)))
        if ledger is not None:
            ledger.record(rows)
        if on_recorded is not None:
            on_recorded(name, rows)
        results[name] = outcomes
        if on_strategy_done is not None:
            on_strategy_done(name, outcomes)
        if failures is not None and failures.tripped:
            raise failures.error(labels.run_id)
    return results
