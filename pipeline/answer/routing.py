"""Routers: ``self-route`` (Li et al. 2024) and ``auto``.

self-route answers from retrieved chunks with the option to say "unanswerable";
only those questions are read again with ``lc``, and both calls are charged.
auto reads the whole scope when it is small enough (small collections are best
read whole) and otherwise self-routes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from lcrag.pipeline.answer.base import Outcome, Question, Toolkit, timed_context
from lcrag.pipeline.answer.long_context import LongContextStrategy, whole_document
from lcrag.pipeline.answer.retrieval import RagStrategy


class SelfRouteStrategy:
    name = "self-route"

    def run_batch(self, questions: Sequence[Question], tools: Toolkit) -> list[Outcome]:
        rag, lc = RagStrategy(), LongContextStrategy()
        contexts = [timed_context(rag, q, tools) for q in questions]
        first = tools.reader.read_many([q.prompt(c.passages, allow_unanswerable=True) for q, c in zip(questions, contexts)])
        fallback = [i for i, a in enumerate(first) if a.unanswerable]
        lc_contexts = {i: timed_context(lc, questions[i], tools) for i in fallback}
        second = dict(zip(fallback, tools.reader.read_many(
            [questions[i].prompt(lc_contexts[i].passages, tools.may_abstain) for i in fallback]
        )))
        outcomes = []
        for i, (question, context, answer) in enumerate(zip(questions, contexts, first)):
            if i not in second:
                outcomes.append(Outcome(question, self.name, "rag", answer, context, answer.prompt_tokens,
                                        answer.completion_tokens, answer.latency_ms, context.retrieval_ms, 1, False))
                continue
            final, final_context = second[i], lc_contexts[i]
            outcomes.append(
                Outcome(
                    question, self.name, "rag->lc", final, final_context,
                    answer.prompt_tokens + final.prompt_tokens,
                    answer.completion_tokens + final.completion_tokens,
                    answer.latency_ms + final.latency_ms,
                    context.retrieval_ms + final_context.retrieval_ms,
                    2, True,
                )
            )
        return outcomes


def scope_fits(question: Question, tools: Toolkit, limit: int) -> bool:
    """Cheap signal: does everything the question could be about fit ``limit``?"""
    if question.doc_scope:
        docs = tools.corpus.documents(list(question.doc_scope))
        return sum(tools.passage_tokens(whole_document(d)) for d in docs.values()) <= limit
    return tools.corpus.corpus_tokens <= limit


class AutoStrategy:
    name = "auto"

    def run_batch(self, questions: Sequence[Question], tools: Toolkit) -> list[Outcome]:
        limit = tools.config.auto_lc_max_tokens or tools.budget
        whole = [i for i, q in enumerate(questions) if scope_fits(q, tools, limit)]
        routed = [i for i in range(len(questions)) if i not in set(whole)]
        results: dict[int, Outcome] = {}
        for i, outcome in zip(whole, LongContextStrategy().run_batch([questions[i] for i in whole], tools)):
            results[i] = relabel(outcome, self.name, "lc")
        for i, outcome in zip(routed, SelfRouteStrategy().run_batch([questions[i] for i in routed], tools)):
            results[i] = relabel(outcome, self.name, f"self-route:{outcome.route}")
        return [results[i] for i in range(len(questions))]


def relabel(outcome: Outcome, strategy: str, route: str) -> Outcome:
    return replace(outcome, strategy=strategy, route=route)

