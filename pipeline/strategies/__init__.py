"""Strategies: how a question's context is chosen, ordered and read.

The registry maps names to strategies; config and CLI names pick entries, and
errors list the registry's keys.
"""

from __future__ import annotations

from lcrag.pipeline.strategies.base import (
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
from lcrag.pipeline.strategies.registry import (
    TOP_K_STRATEGIES,
    TopKVariant,
    asks,
    compared_names,
    control_names,
    get_strategy,
    needs_evidence,
    resolve_names,
    strategy_classes,
)


def __getattr__(name: str):
    """``REGISTRY``, ``ALL`` and ``CONTROL_NAMES`` are read from the installed entry points
    on first use (PEP 562), so importing this package loads no strategy module: the
    routers among them import this package's base in turn."""
    if name == "REGISTRY":
        return strategy_classes()
    if name == "CONTROL_NAMES":
        return control_names()
    if name == "ALL":
        return compared_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALL",
    "CONTROL_NAMES",
    "REGISTRY",
    "TOP_K_STRATEGIES",
    "Context",
    "ContextStrategy",
    "Corpus",
    "Evidence",
    "Outcome",
    "Question",
    "Strategy",
    "Toolkit",
    "TopKVariant",
    "UnknownStrategyError",
    "asks",
    "compared_names",
    "control_names",
    "get_strategy",
    "needs_evidence",
    "resolve_names",
    "strategy_classes",
]
