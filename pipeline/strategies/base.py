"""What every strategy shares: the question, the context it builds, the outcome
it reports, and the batch flow (build every context, then read them together so
the server batches them).

A strategy is named, configured by ``StrategyConfig`` and registered in
``lcrag.pipeline.strategies.REGISTRY``; every one reads through the same reader and
reports the same ``Outcome``, which becomes one ledger row.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from lcrag.core.errors import LcragError
from lcrag.core.types import Document, Hit, Unit
from lcrag.pipeline.config import StrategyConfig
from lcrag.pipeline.strategies.ordering import longest_prefix, longest_suffix
from lcrag.readers.base import Answer, Passage, Prompt, Reader
from lcrag.readers.prompts import render_passage


@dataclass(frozen=True)
class Evidence:
    """One piece of a question's gold evidence, where a data set marks it: a passage
    (``text``, with the document it comes from and its offsets there when known), or a
    document to read whole (``doc_id`` alone). The ``oracle`` control reads only these."""

    doc_id: str = ""  # the document it comes from ("" when the data set does not say)
    text: str = ""  # the passage; "" = read the whole document ``doc_id``
    start: int | None = None  # offsets of ``text`` in the document, when known
    end: int | None = None
    title: str = ""

    def __post_init__(self) -> None:
        if not self.text.strip() and not self.doc_id:
            raise ValueError("evidence needs a passage text or a document id")

    @property
    def whole_document(self) -> bool:
        return not self.text.strip()


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    doc_scope: tuple[str, ...] = ()  # documents the question is about, when known (evaluation)
    options: tuple[str, ...] = ()  # multiple choice: option texts (asked as A., B., ...)
    multi_answer: bool = False  # multiple choice where several options may be right
    evidence: tuple[Evidence, ...] = ()  # gold evidence, when the data set marks it (the oracle control reads it)
    # What the evaluation data set knows about the question, recorded in its ledger rows as
    # data (the report and verdict read these columns, never the id):
    answer_kind: str | None = None  # the answers' kind (ledger ANSWER_KINDS: multiple_choice, exact, free_text)
    evidence_position: int | None = None  # position sweeps: the slot its evidence was put in (kv: the gold pair's line)
    needle_depths: tuple[int, ...] = ()  # needle tests: depth (%) of each hidden fact, in the order the question names them
    haystack_length: int | None = None  # needle tests: the haystack's length in words of filler

    def prompt(self, passages: tuple[Passage, ...], allow_unanswerable: bool = False) -> Prompt:
        """What the reader is asked about this question over ``passages``."""
        return Prompt(self.text, tuple(passages), allow_unanswerable, options=self.options, multi_answer=self.multi_answer)


@dataclass(frozen=True)
class Context:
    """Passages in reading order with their token cost, and what retrieval saw."""

    passages: tuple[Passage, ...]
    tokens: int
    cut: bool = False
    retrieved_ids: tuple[str, ...] = ()
    retrieval_ms: float = 0.0
    # Prefills of this same prompt (in another order) made to build it: attention-sort's
    # attention passes. Each costs the read's prompt tokens again and is charged as such.
    passes: int = 0
    scope_read: float | None = None  # whole-document reads: share of the scope's characters given to the reader


@dataclass(frozen=True)
class Outcome:
    """One question answered by one strategy: the ledger row's content."""

    question: Question
    strategy: str
    route: str  # the path that produced the answer, as text to show: rag, longrag, lc, rag->lc ...
    answer: Answer
    context: Context
    prompt_tokens: int
    completion_tokens: int
    reading_ms: float
    retrieval_ms: float
    calls: int = 1
    fell_back: bool | None = None
    # the same path as data: the strategies it passed through (self-route, rag, lc); () = the
    # route is one step, itself (a plain strategy's route is its name)
    route_steps: tuple[str, ...] = ()
    route_reason: str | None = None  # why the route went as it did, where it says ("no confidence")

    @property
    def steps(self) -> tuple[str, ...]:
        """The strategies the route passed through (``route_steps``, else the route as one step)."""
        return self.route_steps or ((self.route,) if self.route else ())


class Corpus(Protocol):
    """What strategies need from an index (``lcrag.pipeline.index.search.IndexReader`` is one)."""

    corpus_tokens: int

    def search(self, query: str, k: int = 10, mode: str | None = None, level: str = "chunk") -> list[Hit]: ...

    def documents(self, doc_ids: Sequence[str]) -> dict[str, Document]: ...

    def units(self, unit_ids: Sequence[str]) -> dict[str, Unit]: ...

    def doc_ids(self) -> list[str]: ...

    def doc_position(self, doc_id: str) -> int: ...


class RoutePolicy(Protocol):
    """A fitted router (``lcrag.pipeline.routing.router.FittedRouter`` is one)."""

    classes: tuple[str, ...]
    self_route_threshold: float | None

    def choose(self, features: Mapping[str, float]) -> str: ...


class AttentionSource(Protocol):
    """Attention the reader's next token pays to each passage of a prompt."""

    def passage_attention(self, prompt: Prompt) -> list[float]: ...


QUESTION_ALLOWANCE = 48
"""Of ``strategies.prompt_overhead_tokens`` (96), the tokens meant for the question's own
words; the rest covers instructions and the chat template."""


@dataclass
class Toolkit:
    corpus: Corpus
    reader: Reader
    config: StrategyConfig
    budget: int  # context tokens allowed (reader's tokenizer)
    attention: AttentionSource | None = None
    may_abstain: bool = False  # every prompt allows "unanswerable" (questions may have no answer)
    router: RoutePolicy | None = None  # the index's fitted router: auto follows it, self-route takes its threshold
    # Token arithmetic on passages, keyed by passage id and offsets: valid for one index
    # generation and one reader tokenizer, so the API shares it across requests on a generation.
    memo: dict[tuple, int] = field(default_factory=dict)

    def budget_for(self, question: Question) -> int:
        """The context budget left for this question: ``budget`` assumes its words take at
        most ``QUESTION_ALLOWANCE`` tokens of the prompt overhead; a long question or long
        options (L-Eval Coursera's run to hundreds of tokens) take the rest from the context,
        or the prompt would overflow the reader's window."""
        key = ("question", question.qid, question.text, question.options)
        if key not in self.memo:
            own = self.reader.count_tokens("\n".join((question.text, *question.options))) + 3 * len(question.options)
            self.memo[key] = max(1, self.budget - max(0, own - QUESTION_ALLOWANCE))
        return self.memo[key]

    def passage_tokens(self, passage: Passage) -> int:
        key = ("tokens", passage.passage_id, passage.start, passage.end)
        if key not in self.memo:
            self.memo[key] = self.reader.count_tokens(render_passage(1, passage)) + 2
        return self.memo[key]

    def fitting_length(self, passage: Passage, room: int, from_end: bool) -> int:
        """Characters of the passage's head (or tail) that fit ``room`` tokens: a binary
        search of tokenizer calls (HTTP calls with a remote reader), hence remembered."""
        key = ("tail" if from_end else "head", passage.passage_id, passage.start, passage.end, room)
        if key not in self.memo:
            longest = longest_suffix if from_end else longest_prefix
            self.memo[key] = longest(passage.text, room, self.reader.count_tokens)
        return self.memo[key]


class Strategy(Protocol):
    name: str

    def run_batch(self, questions: Sequence[Question], tools: Toolkit) -> list[Outcome]: ...


class ContextStrategy:
    """A strategy that builds one context per question and reads it once."""

    name = "base"
    allow_unanswerable = False

    def build_context(self, question: Question, tools: Toolkit) -> Context:
        raise NotImplementedError

    def route(self, question: Question) -> str:
        return self.name

    def run_batch(self, questions: Sequence[Question], tools: Toolkit) -> list[Outcome]:
        contexts = [timed_context(self, q, tools) for q in questions]
        answers = tools.reader.read_many(
            [q.prompt(c.passages, self.allow_unanswerable or tools.may_abstain) for q, c in zip(questions, contexts)]
        )
        return [single_call_outcome(self.name, self.route(q), q, c, a) for q, c, a in zip(questions, contexts, answers)]


def timed_context(strategy: ContextStrategy, question: Question, tools: Toolkit) -> Context:
    started = time.perf_counter()
    context = strategy.build_context(question, tools)
    if context.retrieval_ms:
        return context
    return replace(context, retrieval_ms=(time.perf_counter() - started) * 1000)


def single_call_outcome(strategy: str, route: str, question: Question, context: Context, answer: Answer) -> Outcome:
    return Outcome(
        question=question,
        strategy=strategy,
        route=route,
        answer=answer,
        context=context,
        prompt_tokens=answer.prompt_tokens * (1 + context.passes),
        completion_tokens=answer.completion_tokens,
        reading_ms=answer.latency_ms,
        retrieval_ms=context.retrieval_ms,
        calls=1 + context.passes,
        route_steps=(route,),
    )


class UnknownStrategyError(LcragError, ValueError):
    """The message lists the registered strategy names."""
