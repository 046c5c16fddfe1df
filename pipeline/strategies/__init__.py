"""Strategies: how a question's context is chosen, ordered and read.

The registry maps names to strategies; config and CLI names pick entries, and
errors list the registry's keys.
"""

from __future__ import annotations

from pipeline.strategies.attention_sort import AttentionSortStrategy
from pipeline.strategies.base import (
    Context,
    ContextStrategy,
    Corpus,
    Outcome,
    Question,
    Strategy,
    Toolkit,
    UnknownStrategyError,
)
from pipeline.strategies.long_context import ClosedBookStrategy, LongContextStrategy
from pipeline.strategies.retrieval import LongRagStrategy, OrderPreservingStrategy, RagStrategy, ReorderStrategy
from pipeline.strategies.routing import AutoStrategy, SelfRouteStrategy

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
        ClosedBookStrategy,
    )
}
# "all" means the strategies compared; closed-book is a control pass, asked for by name.
ALL: tuple[str, ...] = tuple(name for name in REGISTRY if name != ClosedBookStrategy.name)


def get_strategy(name: str) -> Strategy:
    if name not in REGISTRY:
        raise UnknownStrategyError(f"unknown strategy {name!r}; choose one of {', '.join(REGISTRY)} (or all)")
    return REGISTRY[name]()


def resolve_names(spec: str) -> list[str]:
    """'all' or a comma-separated list, validated against the registry."""
    names = list(ALL) if spec.strip() == "all" else [n.strip() for n in spec.split(",") if n.strip()]
    for name in names:
        get_strategy(name)
    if not names:
        raise UnknownStrategyError(f"no strategy given; choose from {', '.join(REGISTRY)} (or all)")
    return names


__all__ = [
    "ALL",
    "REGISTRY", "get_strategy", "resolve_names", "Context", "ContextStrategy", "Corpus", "Outcome", "Question",
    "Strategy", "Toolkit", "UnknownStrategyError",
]
