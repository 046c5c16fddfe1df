"""The one base class of lcrag's domain errors.

A domain error is a problem the user can fix (a missing index, a bad config value, a
reader that does not answer); its message says how. The command line catches this base
only, so anything else (a bug) keeps its traceback.
"""

from __future__ import annotations


class LcragError(Exception):
    """A problem with the user's input or set-up; the message says how to fix it."""


class ConfigError(LcragError, ValueError):
    """A configuration file or value is wrong; the message says which key and how to fix it."""


def check(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless condition holds: constructors validate with it."""
    if not condition:
        raise ConfigError(message)
