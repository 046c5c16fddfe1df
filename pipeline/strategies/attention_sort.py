"""``attention-sort`` (Peysakhovich & Lerer 2023): decode one step over the
retrieved passages, sort them by the attention they receive (most attended last,
next to the question), repeat, then generate with the sorted context.

The attention comes from an ``AttentionSource`` (the transformers path on the
reader's own weights); the answer comes from the same reader as every strategy.
"""

from __future__ import annotations

from dataclasses import replace

from lcrag.core.errors import LcragError
from lcrag.pipeline.strategies.base import Context, ContextStrategy, Question, Toolkit
from lcrag.pipeline.strategies.ordering import attention_order
from lcrag.pipeline.strategies.retrieval import context_of, retrieve_chunks


class AttentionSortError(LcragError, RuntimeError):
    pass


class AttentionSortStrategy(ContextStrategy):
    name = "attention-sort"
    rank = 60  # place in "all" and the reports (registry order)

    def build_context(self, question: Question, tools: Toolkit) -> Context:
        if tools.attention is None:
            raise AttentionSortError(
                "attention-sort needs attention weights: the reader's converted weights must be on this machine "
                "(scripts/setup_reader.sh) so the transformers path can load them"
            )
        passages, retrieved = retrieve_chunks(question, tools)
        passes = 0
        for _ in range(tools.config.attention_sort_rounds):
            if len(passages) < 2:
                break
            attention = tools.attention.passage_attention(question.prompt(tuple(passages)))
            passages = attention_order(passages, attention)
            passes += 1
        # each pass prefilled the whole prompt: the ledger charges it as prompt tokens and calls
        return replace(context_of(passages, retrieved, tools), passes=passes)



