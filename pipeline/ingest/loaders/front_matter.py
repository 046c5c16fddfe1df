"""YAML front matter of Markdown files: metadata, not text.

A block opened by a ``---`` first line and closed by a ``---`` (or ``...``) line
is front matter when it parses as a YAML mapping (or is empty). Anything else
(a horizontal rule, invalid YAML) is left in the text: a guess that drops text
would lose content silently, a guess that keeps it only costs a little noise.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

import yaml

MAX_FRONT_MATTER_CHARS = 64 * 1024  # a longer block is not front matter (and YAML parsing is slow)
MAX_VALUE_CHARS = 200  # metadata values are for filtering and grouping, not for text

_OPEN = re.compile(r"---[ \t]*\n")
_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.M)
_SCALARS = (str, int, float, bool, datetime.date)


@dataclass(frozen=True)
class FrontMatter:
    """The metadata pairs of a front matter block and the text after it."""

    metadata: tuple[tuple[str, str], ...]
    body: str
    found: bool  # there was a front matter block (possibly with no usable values)

    def get(self, key: str, default: str = "") -> str:
        return dict(self.metadata).get(key, default)


def _value(value: object) -> str | None:
    """A scalar, or a list of scalars joined by ", ", as a short string; else None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _SCALARS):
        text = str(value)
    elif isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value):
        text = ", ".join(str(v) for v in value)
    else:
        return None
    return text if text and len(text) <= MAX_VALUE_CHARS else None


def parse_front_matter(block: str) -> tuple[tuple[str, str], ...] | None:
    """The usable metadata of a YAML block, or None when it is not a YAML mapping."""
    try:
        data = yaml.safe_load(block) if block.strip() else {}
    except Exception:  # yaml.YAMLError, RecursionError on deep nesting: not front matter
        return None
    if not isinstance(data, dict):
        return None
    pairs = []
    for key, value in data.items():
        text = _value(value)
        if text is not None and key is not None:
            pairs.append((str(key), text))
    return tuple(pairs)


def split_front_matter(text: str) -> FrontMatter:
    """Front matter metadata and the body of a Markdown text (newlines normalised)."""
    opening = _OPEN.match(text)
    if not opening:
        return FrontMatter((), text, False)
    limit = opening.end() + MAX_FRONT_MATTER_CHARS + 8
    closing = _CLOSE.search(text, opening.end(), limit)
    if not closing or (closing.end() == limit < len(text)):  # none, or a line cut by the limit
        return FrontMatter((), text, False)
    metadata = parse_front_matter(text[opening.end() : closing.start()])
    if metadata is None:
        return FrontMatter((), text, False)
    return FrontMatter(metadata, text[closing.end() :].lstrip("\n"), True)
