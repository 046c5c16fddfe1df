"""Strategies that read retrieved passages: rag, longrag, reorder, op-rag.

They differ only in what is retrieved (chunks or long units) and in the order the
passages are read; all fill the same token budget in score order first.
"""

from __future__ import annotations

from lcrag.core.types import Hit
from lcrag.pipeline.strategies.base import Context, ContextStrategy, Question, Toolkit
from lcrag.pipeline.strategies.ordering import document_order, fit_budget, reorder_ends
from lcrag.readers.base import Passage


def chunk_passage(hit: Hit, title: str) -> Passage:
    return Passage(hit.chunk_id, hit.doc_id, hit.start, hit.end, hit.text, title, hit.score)


def retrieve_chunks(question: Question, tools: Toolkit) -> tuple[list[Passage], tuple[str, ...]]:
    """Top chunks (best first) that fit the budget, and every retrieved chunk id."""
    hits = tools.corpus.search(question.text, k=tools.config.rag_k, mode=tools.config.retrieval_mode, level="chunk")
    docs = tools.corpus.documents([h.doc_id for h in hits])
    passages = [chunk_passage(h, docs[h.doc_id].title) for h in hits]
    kept, _ = fit_budget(passages, tools.passage_tokens, tools.budget_for(question))
    return kept, tuple(h.chunk_id for h in hits)


def context_of(passages: list[Passage], retrieved: tuple[str, ...], tools: Toolkit) -> Context:
    return Context(tuple(passages), sum(tools.passage_tokens(p) for p in passages), False, retrieved)


class RagStrategy(ContextStrategy):
    """Classic chunk RAG: top-k chunks, best first."""

    name = "rag"
    rank = 10  # place in "all" and the reports (registry order)

    def build_context(self, question: Question, tools: Toolkit) -> Context:
        passages, retrieved = retrieve_chunks(question, tools)
        return context_of(passages, retrieved, tools)


class ReorderStrategy(ContextStrategy):
    """Top-k chunks with the best at both ends and the worst in the middle."""

    name = "reorder"
    rank = 40  # place in "all" and the reports (registry order)

    def build_context(self, question: Question, tools: Toolkit) -> Context:
        passages, retrieved = retrieve_chunks(question, tools)
        return context_of(reorder_ends(passages), retrieved, tools)


class OrderPreservingStrategy(ContextStrategy):
    """OP-RAG: top-k chunks read in the order they stand in the corpus."""

    name = "op-rag"
    rank = 50  # place in "all" and the reports (registry order)

    def build_context(self, question: Question, tools: Toolkit) -> Context:
        passages, retrieved = retrieve_chunks(question, tools)
        ordered = document_order(passages, lambda p: (tools.corpus.doc_position(p.doc_id), p.start))
        return context_of(ordered, retrieved, tools)


class LongRagStrategy(ContextStrategy):
    """LongRAG: top-k long units (score = best chunk), each read whole, best first."""

    name = "longrag"
    rank = 20  # place in "all" and the reports (registry order)

    def build_context(self, question: Question, tools: Toolkit) -> Context:
        hits = tools.corpus.search(question.text, k=tools.config.longrag_k, mode=tools.config.retrieval_mode, level="unit")
        units = tools.corpus.units([h.unit_id for h in hits])
        docs = tools.corpus.documents([s.doc_id for h in hits for s in units[h.unit_id].spans])
        groups = []
        for hit in hits:
            spans = units[hit.unit_id].spans
            groups.append(
                [
                    Passage(f"{hit.unit_id}#{i}", s.doc_id, s.start, s.end, docs[s.doc_id].text[s.start : s.end], docs[s.doc_id].title, hit.score)
                    for i, s in enumerate(spans)
                ]
            )
        kept, _ = fit_budget(groups, lambda g: sum(tools.passage_tokens(p) for p in g), tools.budget_for(question))
        if not kept and groups:  # the best unit alone is over budget: read as much of it as fits, in order
            kept = [fit_budget(groups[0], tools.passage_tokens, tools.budget_for(question))[0]]
        passages = [p for group in kept for p in group]
        return context_of(passages, tuple(h.unit_id for h in hits), tools)

