"""The strategy registry: every strategy, built-in or from another package, is an entry
point in the ``lcrag.strategies`` group (``name = "module:Class"``), so a plugin installs
the same way lcrag's own strategies do and config and CLI validation read one list.
Loading, caching and the errors a broken plugin raises are ``lcrag.core.plugins``'."""

from __future__ import annotations

from lcrag.core.plugins import PluginError, load_group

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
