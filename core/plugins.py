"""Entry point registries. Each pluggable role of lcrag is one entry point group --
``lcrag.strategies``, ``lcrag.readers``, ``lcrag.stores``, ``lcrag.encoders`` -- and lcrag's
own built-ins are registered in its pyproject exactly as another distribution's plugins
are, so config validation, error messages and the code that builds objects read one list.

``load_group`` reads a group on first use and keeps it (``clear_cache`` forgets it): it
checks every object, refuses a name claimed twice, and turns an entry point that fails to
load into a ``PluginError`` that names it, so a broken plugin says so instead of breaking
every command obscurely. Nothing is imported before a group is first asked for.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import Any

from lcrag.core.errors import LcragError

BUILTIN = "lcrag"  # the distribution whose entry points are the built-ins

Check = Callable[[str, Any], "str | None"]
"""``check(name, obj)``: what is wrong with the object an entry point named, or None."""


class PluginError(LcragError):
    """An entry point of an lcrag group does not load, names the wrong kind of object, or
    claims a name already taken; the message names the entry point and its distribution."""


_loaded: dict[str, dict[str, Any]] = {}


def load_group(group: str, kind: str, check: Check | None = None) -> dict[str, Any]:
    """Name -> object of every entry point in ``group``, in the order the metadata lists
    them; loaded on the first call and kept. ``kind`` names an entry in messages
    ("reader backend"). A copy is returned: callers may reorder it."""
    if group not in _loaded:
        _loaded[group] = _load(group, kind, check)
    return dict(_loaded[group])


def clear_cache(group: str | None = None) -> None:
    """Forget one loaded group (or all): the next ``load_group`` reads the installed
    metadata again (after a plugin was installed or removed in this process)."""
    if group is None:
        _loaded.clear()
    else:
        _loaded.pop(group, None)


def _distribution(ep: importlib.metadata.EntryPoint) -> str | None:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else None


def _load(group: str, kind: str, check: Check | None) -> dict[str, Any]:
    # read through the module attribute, so a test can stand in for the installed metadata
    found = list(importlib.metadata.entry_points(group=group))
    if not any(_distribution(ep) == BUILTIN for ep in found):
        raise PluginError(f"lcrag's own entry points are missing from the group {group!r}: its install metadata is "
                          "missing or stale; reinstall it (pip install -e . from a checkout)")
    loaded: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for ep in found:
        where = f"{ep.value}, from {_distribution(ep) or 'an unknown distribution'}"
        if ep.name in loaded:
            raise PluginError(f"two {kind} plugins are named {ep.name!r}: {origin[ep.name]}, and {where}; "
                              "uninstall one of them")
        try:
            obj = ep.load()
        except Exception as err:  # whatever the plugin raised: name the plugin, keep the cause
            raise PluginError(f"{kind} plugin {ep.name!r} ({where}) failed to load: {type(err).__name__}: {err}; "
                              "fix or uninstall it") from err
        problem = check(ep.name, obj) if check is not None else None
        if problem:
            raise PluginError(f"{kind} plugin {ep.name!r} ({where}) {problem}")
        loaded[ep.name] = obj
        origin[ep.name] = where
    return loaded
