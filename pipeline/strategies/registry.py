"""The strategy registry: every strategy, built-in or from another package, is an entry
point in the ``lcrag.strategies`` group (``name = "module:Class"``), so a plugin installs
the same way lcrag's own strategies do and config and CLI validation read one list."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from lcrag.core.errors import LcragError

GROUP = "lcrag.strategies"
UNRANKED = 1_000  # a plugin strategy without a rank sorts after the built-ins


class StrategyPluginError(LcragError):
    """An entry point of the strategy group does not load or does not name a strategy."""


@cache
def strategy_classes() -> dict[str, type]:
    """Name -> strategy class, ordered by the class's ``rank`` (lcrag's own set one; a
    plugin without one comes after them), then by name. The order is presentation only
    (``all``, report columns); no verdict reads it. A name claimed twice is an error."""
    found = list(entry_points(group=GROUP))
    if not any(ep.dist is not None and ep.dist.name == "lcrag" for ep in found):
        raise StrategyPluginError(f"no built-in strategies in the entry point group {GROUP!r}: lcrag's install metadata "
                                  "is missing or stale; reinstall it (pip install -e . from a checkout)")
    classes: dict[str, type] = {}
    for ep in found:
        try:
            cls = ep.load()
        except Exception as err:  # a broken plugin names itself instead of breaking every command obscurely
            raise StrategyPluginError(f"strategy plugin {ep.name!r} ({ep.value}) failed to load: {err}") from err
        if getattr(cls, "name", None) != ep.name or not callable(getattr(cls, "run_batch", None)):
            raise StrategyPluginError(f"entry point {ep.name!r} ({ep.value}) must name a class with name = {ep.name!r} "
                                      "and a run_batch(questions, tools) method")
        if ep.name in classes:
            raise StrategyPluginError(f"two strategies are named {ep.name!r}; the second is {ep.value}")
        classes[ep.name] = cls
    return dict(sorted(classes.items(), key=lambda item: (getattr(item[1], "rank", UNRANKED), item[0])))
