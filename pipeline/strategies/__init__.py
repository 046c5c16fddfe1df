"""Strategies: how a question's context is chosen, ordered and read.

The registry maps names to strategies; config and CLI names pick entries, and
errors list the registry's keys.
"""

from __future__ import annotations

from dataclasses import replace

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
from lcrag.pipeline.strategies.registry import strategy_classes


def __getattr__(name: str):
    """``REGISTRY``, ``ALL`` and ``CONTROL_NAMES`` are read from the installed entry points
    on first use (PEP 562), so importing this package loads no strategy module: the
    routers among them import this package's base in turn."""
    if name == "REGISTRY":
        return strategy_classes()
    if name == "CONTROL_NAMES":
        # Controls are passes asked for by name (``all,closed-book,oracle``), never compared:
        # closed-book reads nothing, the oracle only the question's gold evidence.
        return tuple(n for n, cls in strategy_classes().items() if getattr(cls, "control", False))
    if name == "ALL":  # "all" means the strategies compared
        return tuple(n for n, cls in strategy_classes().items() if not getattr(cls, "control", False))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        return TopKVariant(strategy_classes()[base](), int(k))
    classes = strategy_classes()
    if name not in classes:
        raise UnknownStrategyError(f"unknown strategy {name!r}; choose one of {', '.join(classes)} (or all, or NAME@kN)")
    return classes[name]()


def needs_evidence(name: str) -> bool:
    """The strategy reads only a question's gold evidence (the oracle)."""
    return bool(getattr(strategy_classes().get(name.partition("@k")[0]), "needs_evidence", False))


def asks(name: str, question: Question) -> bool:
    """Whether ``name`` is asked ``question``: every strategy is, except that one that
    reads only gold evidence is not asked a question without any (it would score 0 for a
    missing input, not for anything it read)."""
    return bool(question.evidence) or not needs_evidence(name)


def resolve_names(spec: str) -> list[str]:
    """'all', a comma-separated list, or both ('all,closed-book'), validated against
    the registry; each name once, in the order given."""
    names: list[str] = []
    every = __getattr__("ALL")
    for part in (p.strip() for p in spec.split(",")):
        for name in (every if part == "all" else (part,) if part else ()):
            get_strategy(name)
            if name not in names:
                names.append(name)
    if not names:
        raise UnknownStrategyError(f"no strategy given; choose from {', '.join(strategy_classes())} (or all)")
    return names


__all__ = [
    "ALL",
    "CONTROL_NAMES",
    "REGISTRY",
    "Context",
    "ContextStrategy",
    "Corpus",
    "Evidence",
    "Outcome",
    "Question",
    "Strategy",
    "Toolkit",
    "UnknownStrategyError",
    "asks",
    "get_strategy",
    "needs_evidence",
    "resolve_names",
]
