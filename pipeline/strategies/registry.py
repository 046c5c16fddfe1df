"""The strategy registry and name resolution: every strategy, built-in or from another package, is an entry
point in the ``lcrag.strategies`` group (``name = "module:Class"``), so a plugin installs
the same way lcrag's own strategies do and config and CLI validation read one list.
Loading, caching and the errors a broken plugin raises are ``lcrag.core.plugins``'."""

from __future__ import annotations

from dataclasses import replace

from lcrag.core.plugins import PluginError, load_group
from lcrag.pipeline.strategies.base import Outcome, Question, Strategy, Toolkit, UnknownStrategyError

GROUP = "lcrag.strategies"
UNRANKED = 1_000  # a plugin strategy without a rank sorts after the built-ins

StrategyPluginError = PluginError  # the name it had before every role had a group


def _strategy_class(name: str, cls: object) -> str | None:
    if getattr(cls, "name", None) != name or not callable(getattr(cls, "run_batch", None)):
        return f"must name a class with name = {name!r} and a run_batch(questions, tools) method"
    return None


def strategy_classes() -> dict[str, type]:
    """Name -> strategy class, ordered by the class's ``rank`` (lcrag's own set one; a
    plugin without one comes after them), then by name. The order is presentation only
    (``all``, report columns); no verdict reads it. A name claimed twice is an error."""
    classes = load_group(GROUP, "strategy", _strategy_class)
    return dict(sorted(classes.items(), key=lambda item: (getattr(item[1], "rank", UNRANKED), item[0])))


def compared_names() -> tuple[str, ...]:
    """What "all" means: the strategies compared (every one but the controls)."""
    return tuple(n for n, cls in strategy_classes().items() if not getattr(cls, "control", False))


def control_names() -> tuple[str, ...]:
    """Controls are passes asked for by name (``all,closed-book,oracle``), never compared:
    closed-book reads nothing, the oracle only the question's gold evidence."""
    return tuple(n for n, cls in strategy_classes().items() if getattr(cls, "control", False))


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
    every = compared_names()
    for part in (p.strip() for p in spec.split(",")):
        for name in (every if part == "all" else (part,) if part else ()):
            get_strategy(name)
            if name not in names:
                names.append(name)
    if not names:
        raise UnknownStrategyError(f"no strategy given; choose from {', '.join(strategy_classes())} (or all)")
    return names
