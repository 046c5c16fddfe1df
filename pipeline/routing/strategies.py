"""Routers: ``self-route`` (Li et al. 2024) and ``auto``.

self-route answers from retrieved chunks with the option to say "unanswerable";
questions it declines, or answers with a confidence below its threshold (see
``self_route_threshold``), are read again with ``lc``, and both calls are charged.

auto follows the index's fitted router (``lcrag route fit``) where there is one:
the cheap read (rag) always happens, its confidence joins the pre-read features,
and the tree names the strategy; if that is not rag, that strategy reads the
question too (both charged). A one-leaf router (a constant policy, installed when
the tree did not earn its place) needs no cheap read: its strategy reads alone. Without a fitted router auto keeps the size rule,
and its ledger route says so ("rule:..."): read the whole scope when it fits the
budget (lc), read it whole in pieces when it fits ``auto_coa_windows`` budgets (coa),
else self-route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from lcrag.pipeline.routing.confidence import reply_confidence
from lcrag.pipeline.routing.features import pre_read_features, with_cheap_read
from lcrag.pipeline.routing.router import RouterError
from lcrag.pipeline.strategies.base import Outcome, Question, Toolkit, timed_context
from lcrag.pipeline.strategies.chain_of_agents import ChainOfAgentsStrategy
from lcrag.pipeline.strategies.long_context import LongContextStrategy, scope_tokens
from lcrag.pipeline.strategies.retrieval import LongRagStrategy, OrderPreservingStrategy, RagStrategy, ReorderStrategy
from lcrag.readers.base import Answer

# A route's reason (``Outcome.route_reason``), and in brackets in its text:
NO_CONFIDENCE_REASON = "no confidence"  # the reader gave no logprobs, so confidence could not decide
# the fitted threshold was calibrated on the other answer kind (choices / free text), so declines only
OTHER_KIND_REASON = "threshold of another answer kind"
NO_CONFIDENCE = f"[{NO_CONFIDENCE_REASON}]"
OTHER_KIND = f"[{OTHER_KIND_REASON}]"


def self_route_threshold(tools: Toolkit, question: Question) -> float | None:
    """The confidence below which self-route falls back on ``question``: configured,
    else the fitted router's calibrated one if it was calibrated on answers of this
    question's kind, else None (fall back on declines only)."""
    configured = tools.config.self_route_threshold
    if configured >= 0:
        return configured or None
    return tools.router.threshold_for(bool(question.options)) if tools.router is not None else None


def threshold_skipped(tools: Toolkit, question: Question) -> bool:
    """A fitted threshold exists but not for this question's answer kind."""
    return (tools.config.self_route_threshold < 0 and tools.router is not None
            and tools.router.self_route_threshold is not None and tools.router.threshold_for(bool(question.options)) is None)


def falls_back(question: Question, answer: Answer, threshold: float | None) -> bool:
    """Declined, or (with a threshold) answered less confidently than it. A reply
    without a confidence (no logprobs) falls back on declines only."""
    if answer.unanswerable:
        return True
    if threshold is None:
        return False
    confidence = reply_confidence(question, answer)
    return confidence is not None and confidence < threshold


class SelfRouteStrategy:
    name = "self-route"
    rank = 70  # place in "all" and the reports (registry order)

    def run_batch(self, questions: Sequence[Question], tools: Toolkit) -> list[Outcome]:
        rag, lc = RagStrategy(), LongContextStrategy()
        thresholds = [self_route_threshold(tools, q) for q in questions]
        contexts = [timed_context(rag, q, tools) for q in questions]
        first = tools.reader.read_many([q.prompt(c.passages, allow_unanswerable=True) for q, c in zip(questions, contexts)])
        fallback = [i for i, (q, a) in enumerate(zip(questions, first)) if falls_back(q, a, thresholds[i])]
        lc_contexts = {i: timed_context(lc, questions[i], tools) for i in fallback}
        second = dict(zip(fallback, tools.reader.read_many(
            [questions[i].prompt(lc_contexts[i].passages, tools.may_abstain) for i in fallback]
        )))
        outcomes = []
        for i, (question, context, answer) in enumerate(zip(questions, contexts, first)):
            if i not in second:
                # with a threshold but no confidence to compare (no logprobs), say so in the route
                blind = thresholds[i] is not None and reply_confidence(question, answer) is None
                reason = NO_CONFIDENCE_REASON if blind else OTHER_KIND_REASON if threshold_skipped(tools, question) else None
                outcomes.append(Outcome(question, self.name, rag.name + (f"[{reason}]" if reason else ""), answer, context,
                                        answer.prompt_tokens,
                                        answer.completion_tokens, answer.latency_ms, context.retrieval_ms, 1, False,
                                        route_steps=(self.name, rag.name), route_reason=reason))
                continue
            outcomes.append(chained(first=Outcome(question, self.name, rag.name, answer, context, answer.prompt_tokens,
                                                  answer.completion_tokens, answer.latency_ms, context.retrieval_ms,
                                                  route_steps=(self.name, rag.name)),
                                    then=single(question, second[i], lc_contexts[i], lc.name),
                                    route=f"{rag.name}->{lc.name}"))
        return outcomes


def single(question: Question, answer: Answer, context, step: str) -> Outcome:
    """A read by strategy ``step`` that another outcome goes on to (``chained``)."""
    return Outcome(question, "", "", answer, context, answer.prompt_tokens, answer.completion_tokens,
                   answer.latency_ms, context.retrieval_ms, route_steps=(step,))


def chained(first: Outcome, then: Outcome, route: str) -> Outcome:
    """The second read's answer, charged for both reads; its route passed through the
    first read's steps, then the second's."""
    return Outcome(
        first.question, first.strategy, route, then.answer, then.context,
        first.prompt_tokens + then.prompt_tokens,
        first.completion_tokens + then.completion_tokens,
        first.reading_ms + then.reading_ms,
        first.retrieval_ms + then.retrieval_ms,
        first.calls + then.calls, True,
        route_steps=first.steps + then.steps,
        route_reason=first.route_reason or then.route_reason,
    )


def scope_fits(question: Question, tools: Toolkit, limit: int) -> bool:
    """Cheap signal: does everything the question could be about fit ``limit``?"""
    return scope_tokens(question, tools) <= limit


def run_some(strategy: type, questions: Sequence[Question], picked: Sequence[int],
             tools: Toolkit) -> list[tuple[int, Outcome]]:
    """(index, outcome) of the ``picked`` questions answered by ``strategy``; a strategy
    given none is not run at all."""
    if not picked:
        return []
    return list(zip(picked, strategy().run_batch([questions[i] for i in picked], tools)))


class AutoStrategy:
    name = "auto"
    rank = 80  # place in "all" and the reports (registry order)

    def run_batch(self, questions: Sequence[Question], tools: Toolkit) -> list[Outcome]:
        if tools.router is not None:
            return self.follow_router(questions, tools)
        limit = tools.config.auto_lc_max_tokens or tools.budget
        whole = [i for i, q in enumerate(questions) if scope_fits(q, tools, limit)]
        windows = tools.config.auto_coa_windows
        pieces = [i for i, q in enumerate(questions)
                  if i not in set(whole) and windows and scope_fits(q, tools, windows * tools.budget)]
        routed = [i for i in range(len(questions)) if i not in set(whole) | set(pieces)]
        results: dict[int, Outcome] = {}
        for i, outcome in run_some(LongContextStrategy, questions, whole, tools):
            results[i] = relabel(outcome, self.name, "rule:lc")
        for i, outcome in run_some(ChainOfAgentsStrategy, questions, pieces, tools):
            results[i] = relabel(outcome, self.name, "rule:coa")
        for i, outcome in run_some(SelfRouteStrategy, questions, routed, tools):
            results[i] = relabel(outcome, self.name, f"rule:self-route:{outcome.route}")
        return [results[i] for i in range(len(questions))]

    def follow_router(self, questions: Sequence[Question], tools: Toolkit) -> list[Outcome]:
        router = tools.router
        unknown = [c for c in router.classes if c not in DESTINATIONS]
        if unknown:
            raise RouterError(f"the fitted router routes to {', '.join(unknown)}, which auto cannot run; "
                              f"refit it (`lcrag route fit`) on a run with {', '.join(DESTINATIONS)}")
        if router.constant is not None:  # always-X: nothing to decide, so no cheap read to decide by
            return [relabel(o, self.name, f"router:{o.route}")
                    for o in DESTINATIONS[router.constant]().run_batch(list(questions), tools)]
        features = [pre_read_features(q, tools) for q in questions]
        cheap = DESTINATIONS[router.classes[0]]().run_batch(list(questions), tools)
        confidences = [reply_confidence(q, o.answer) for q, o in zip(questions, cheap)]
        chosen = [router.choose(with_cheap_read(f, c, o.answer.unanswerable)) for f, c, o in zip(features, confidences, cheap)]
        reasons = [NO_CONFIDENCE_REASON if c is None else None for c in confidences]
        tags = ["router" + (f"[{r}]" if r else "") for r in reasons]
        results = {i: relabel(o, self.name, f"{tags[i]}:{o.route}", reasons[i])
                   for i, o in enumerate(cheap) if chosen[i] == router.classes[0]}
        for name in dict.fromkeys(c for c in chosen if c != router.classes[0]):
            picked = [i for i, c in enumerate(chosen) if c == name]
            for i, outcome in zip(picked, DESTINATIONS[name]().run_batch([questions[i] for i in picked], tools)):
                results[i] = relabel(chained(cheap[i], outcome, ""), self.name, f"{tags[i]}:{cheap[i].route}->{outcome.route}",
                                     reasons[i])
        return [results[i] for i in range(len(questions))]


# Where a fitted router may send a question (routing.table.CANDIDATES).
DESTINATIONS = {cls.name: cls for cls in (RagStrategy, LongRagStrategy, OrderPreservingStrategy, ReorderStrategy,
                                          LongContextStrategy, ChainOfAgentsStrategy)}


def relabel(outcome: Outcome, strategy: str, route: str, reason: str | None = None) -> Outcome:
    """``outcome`` as answered by ``strategy`` (auto) along ``route``: its steps follow
    ``strategy``'s; ``reason`` (else the outcome's own) is the route's reason."""
    return replace(outcome, strategy=strategy, route=route, route_steps=(strategy, *outcome.steps),
                   route_reason=reason or outcome.route_reason)
