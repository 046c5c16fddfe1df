"""One API question: the same path as ``lcrag ask`` (strategy, reader, ledger
row), on the live index generation, with the request's own top-k and budget.

Per-request settings go into a per-request ``Toolkit`` and ``StrategyConfig``
copy; nothing shared is changed, so concurrent questions cannot see each
other's settings.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import replace

from lcrag.app.service.schemas import (
    Citation,
    QueryResponse,
    RequestLimits,
    Timings,
    Tokens,
)
from lcrag.app.service.streaming import ReadCancelled, Relay, StreamingTap, last_read_known
from lcrag.core.errors import LcragError
from lcrag.pipeline.config import Config, ServiceConfig
from lcrag.pipeline.recording import RunLabels, answer_and_record, context_budget, error_row
from lcrag.pipeline.strategies import ALL, REGISTRY, TOP_K_STRATEGIES, Evidence, Question, Toolkit, needs_evidence

CANCELLED = "cancelled: the client went away before the streamed answer was finished"

DEFAULT_STRATEGY = "auto"

# One line each, as in the README's strategy table.
DESCRIPTIONS = {
    "rag": "top-k chunks (hybrid retrieval), best first",
    "longrag": "top-k long units (unit score = best chunk), each read whole",
    "lc": "the whole document(s) or corpus in original order; past the budget the middle is cut",
    "reorder": "top-k chunks with the best at both ends and the worst in the middle",
    "op-rag": "top-k chunks in corpus order",
    "attention-sort": "top-k chunks sorted by the attention the reader pays them, most attended last",
    "self-route": "rag allowed to answer 'unanswerable'; only those fall back to lc",
    "auto": "lc when everything the question could be about fits the budget, else self-route",
    "coa": "chain of agents: lc's scope read whole, window by window, notes handed on, answered from the notes",
    "closed-book": "no context: a control that shows what the model answers unaided",
    "oracle": "a control: only the gold evidence the request gives (evidence), the ceiling retrieval is measured against",
}


def describe(name: str) -> str:
    doc = (REGISTRY[name].__doc__ or "").strip()
    return DESCRIPTIONS.get(name) or (doc.splitlines()[0] if doc else name)


def uses_k(name: str) -> bool:
    return name in TOP_K_STRATEGIES or name == "auto"  # auto's self-route reads rag's top-k


def available_strategies(has_attention: bool) -> tuple[str, ...]:
    """Registered strategies this server can run: attention-sort only with an
    attention source (the reader's weights on this machine). The controls too: the
    oracle reads the gold evidence a request gives (refused without it)."""
    names = [*ALL, *(n for n in REGISTRY if n not in ALL)]
    return tuple(n for n in names if has_attention or n != "attention-sort")


def window_budget(config: Config) -> int:
    """The largest context the reader's window leaves room for."""
    return context_budget(config.reader, replace(config.strategies, budget_tokens=0))


def request_limits(config: Config, service: ServiceConfig, has_attention: bool) -> RequestLimits:
    strategies = available_strategies(has_attention)
    return RequestLimits(
        strategies=strategies,
        default_strategy=DEFAULT_STRATEGY,
        max_question_chars=service.max_question_chars,
        max_question_tokens=service.max_question_tokens,
        max_k=service.max_k,
        max_budget_tokens=max(64, min(service.max_budget_tokens, window_budget(config))),
        evidence_strategies=tuple(n for n in strategies if needs_evidence(n)),
    )


def request_evidence(request) -> tuple[Evidence, ...]:
    """The request's gold evidence (none where the request kind has no such field)."""
    return tuple(Evidence(doc_id=e.doc_id.strip(), text=e.text) for e in getattr(request, "evidence", None) or ())


class QuestionTooLong(LcragError):
    """A question within the character limit but over the token limit: what it
    costs the reader is its tokens, and some characters are several tokens each."""

    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(f"the question is {tokens} reader tokens long; shorten it to at most {limit}")
        self.tokens = tokens
        self.limit = limit


class QueryService:
    """Answers validated requests on the live index and records each in the ledger
    (anything with ``Ledger.record``: the app passes a ``GroupCommitLedger``).
    Blocking: call it from a worker thread."""

    def __init__(self, live, reader, ledger, config: Config, service: ServiceConfig, attention=None,
                 router_file=None) -> None:
        self.live = live
        self.router_file = router_file  # answer.router.RouterFile of the index, or None
        self.reader = reader
        self.ledger = ledger
        self.config = config
        self.service = service
        self.attention = attention
        self._default_budget = context_budget(config.reader, config.strategies)
        self._window = window_budget(config)
        # Toolkit.memo by generation, shared by requests: with a remote reader each token
        # count is an HTTP call, and `lc` counts every document. Only the newest generation's
        # memo is kept; a question still on an older one keeps its own reference.
        self._memos: dict[str, dict] = {}
        self._memos_lock = threading.Lock()

    def passage_memo(self, generation: str) -> dict:
        """The shared ``Toolkit.memo`` of ``generation`` (keys are passage ids and offsets,
        stable only within one generation, hence one memo each)."""
        with self._memos_lock:
            if generation not in self._memos:
                self._memos = {generation: {}}
            return self._memos[generation]

    def run_id(self) -> str:
        return self.service.run_id or time.strftime("api-%Y%m%d", time.gmtime())

    def question_tokens(self, question: str) -> int:
        """The question's length in reader tokens; ``QuestionTooLong`` past
        ``service.max_question_tokens``, before anything is retrieved or read."""
        tokens = self.reader.count_tokens(question)
        if tokens > self.service.max_question_tokens:
            raise QuestionTooLong(tokens, self.service.max_question_tokens)
        return tokens

    def budget(self, question_tokens: int, requested: int | None) -> int:
        """The request's budget (or the configured one), never more than the reader's
        window leaves beside this question: a long question must not push the
        prompt past the window (the reader would refuse it)."""
        wanted = requested or self._default_budget
        return max(0, min(wanted, self._window - question_tokens))

    def answer(self, request, queued_ms: float = 0.0, relay: Relay | None = None) -> QueryResponse:
        """Answer ``request`` (anything with ``question``, ``strategy``, ``k`` and
        ``budget_tokens``) and record it. With a ``relay`` the answering read is
        streamed to it (``streaming.StreamingTap``); a client that goes away
        stops the read, and the question is recorded as an error row
        (``CANCELLED``) before ``ReadCancelled`` is raised."""
        started = time.perf_counter()
        name = request.strategy
        budget = self.budget(self.question_tokens(request.question), request.budget_tokens)
        strategies = replace(self.config.strategies, budget_tokens=budget)
        if request.k is not None:
            strategies = replace(strategies, rag_k=request.k, longrag_k=request.k)
        question = Question(f"api-{uuid.uuid4().hex[:12]}", request.question, evidence=request_evidence(request))
        recorded = {}
        with self.live.acquire() as generation:
            router = self.router_file.get() if self.router_file is not None else None
            reader = self.reader if relay is None else StreamingTap(self.reader, relay, last_read_known(name, router))
            tools = Toolkit(generation.corpus, reader, strategies, budget, self.attention,
                            memo=self.passage_memo(f"{generation.name}/{generation.corpus.index_id}"),
                            router=router)
            # the generation that answers, not the served config: a reload may swap in an index built otherwise
            labels = RunLabels.for_corpus(generation.corpus, self.run_id(), self.reader.model)
            try:
                results = answer_and_record(
                    [question], [name], tools, self.ledger, labels, on_recorded=lambda n, rows: recorded.update({n: rows[0]})
                )
            except ReadCancelled:
                self.ledger.record([error_row(question, name, labels, CANCELLED)])
                raise
        outcome, row = results[name][0], recorded[name]
        total_ms = (time.perf_counter() - started) * 1000 + queued_ms
        return QueryResponse(
            answer=outcome.answer.text,
            strategy=name,
            route=outcome.route,
            fell_back=outcome.fell_back,
            citations=[
                Citation(doc_id=p.doc_id, title=p.title, start=p.start, end=p.end, text=p.text)
                for p in outcome.context.passages
            ],
            tokens=Tokens(
                context=outcome.context.tokens, prompt=outcome.prompt_tokens,
                completion=outcome.completion_tokens, budget=budget, cached=outcome.answer.cached_prompt_tokens,
            ),
            timings_ms=Timings(
                retrieval=round(outcome.retrieval_ms, 1), reading=round(outcome.reading_ms, 1),
                queued=round(queued_ms, 1), total=round(total_ms, 1),
            ),
            generation=generation.name,
            ledger_row_id=row.row_id,
            run_id=labels.run_id,
        )
