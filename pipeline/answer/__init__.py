"""Strategies: how a question's context is chosen, ordered and read.

The registry maps names to strategies; config and CLI names pick entries, and
errors list the registry's keys.
"""

from __future__ import annotations

from dataclasses import replace

from lcrag.pipeline.answer.attention_sort import AttentionSortStrategy
from lcrag.pipeline.answer.base import (
    Context,
    ContextStrategy,
    Corpus,
    Evidence,
    Outcome,
    Question,
    Strategy,
    Toolkit,
    UnknownStrategyError,
)
from lcrag.pipeline.answer.chain_of_agents import ChainOfAgentsStrategy
from lcrag.pipeline.answer.long_context import ClosedBookStrategy, LongContextStrategy, OracleStrategy
from lcrag.pipeline.answer.retrieval import (
    LongRagStrategy,
    OrderPreservingStrategy,
    RagStrategy,
    ReorderStrategy,
)
from lcrag.pipeline.answer.routing import AutoStrategy, SelfRouteStrategy

REGISTRY: dict[str, type] = {
    cls.name: cls
    for cls in (
        RagStrategy,
        LongRagStrategy,
        LongContextStrategy,
        ReorderStrategy,
        OrderPreservingStrategy,
        AttentionSortStrategy,
        SelfRouteStrategy,
        AutoStrategy,
        ChainOfAgentsStrategy,
        ClosedBookStrategy,
        OracleStrategy,
    )
}
# Controls are passes asked for by name (``all,closed-book,oracle``), never compared:
# closed-book reads nothing, the oracle only the question's gold evidence.
CONTROL_NAMES: tuple[str, ...] = (ClosedBookStrategy.name, OracleStrategy.name)
# "all" means the strategies compared.
ALL: tuple[str, ...] = tuple(name for name in REGISTRY if name not in CONTROL_NAMES)


# Strategies whose context is a top-k retrieval, so ``NAME@kN`` can sweep k.
TOP_K_STRATEGIES = ("rag", "longrag", "reorder", "op-rag", "attention-sort", "self-route")


class TopKVariant:
    """``NAME@kN``: a retrieval strategy with top-k set to N, recorded under that
    name (the OP-RAG number-of-chunks sweep and its inverted-U curve)."""

    def __init__(self, base: Strategy, k: int) -> None:
        self.base, self.k = base, k
        self.name = f"{base.name}@k{k}"

    def run_batch(self, questions, tools: Toolkit) -> list[Outcome]:
        swept = replace(tools, config=replace(tools.config, rag_k=self.k, longrag_k=self.k))
        return [replace(o, strategy=self.name) for o in self.base.run_batch(questions, swept)]


def get_strategy(name: str) -> Strategy:
    base, marker, k = name.partition("@k")
    if marker:
        if base not in TOP_K_STRATEGIES or not k.isdigit() or int(k) < 1:
            raise UnknownStrategyError(
                f"bad top-k variant {name!r}: use NAME@kN with N >= 1 and NAME one of {', '.join(TOP_K_STRATEGIES)}"
            )
        return TopKVariant(REGISTRY[base](), int(k))
    if name not in REGISTRY:
        raise UnknownStrategyError(f"unknown strategy {name!r}; choose one of {', '.join(REGISTRY)} (or all, or NAME@kN)")
    return REGISTRY[name]()


def needs_evidence(name: str) -> bool:
    """The strategy reads only a question's gold evidence (the oracle)."""
    return bool(getattr(REGISTRY.get(name.partition("@k")[0]), "needs_evidence", False))


def asks(name: str, question: Question) -> bool:
    """Whether ``name`` is asked ``question``: every strategy is, except that one that
    reads only gold evidence is not asked a question without any (it would score 0 for a
    missing input, not for anything it read)."""
    return bool(question.evidence) or not needs_evidence(name)


def resolve_names(spec: str) -> list[str]:
    """'all', a comma-separated list, or both ('all,closed-book'), validated against
    the registry; each name once, in the order given."""
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        for name in (ALL if part == "all" else (part,) if part else ()):
            get_strategy(name)
            if name not in names:
                names.append(name)
    if not names:
        raise UnknownStrategyError(f"no strategy given; choose from {', '.join(REGISTRY)} (or all)")
    return names


__all__ = [
    "ALL", "CONTROL_NAMES",
    "REGISTRY", "asks", "get_strategy", "needs_evidence", "resolve_names", "Context", "ContextStrategy", "Corpus",
    "Evidence", "Outcome", "Question", "Strategy", "Toolkit", "UnknownStrategyError",
]
