"""Cutting text into sentence-aligned pieces under a token limit.

Token counts come from an array of token character offsets (one row per token,
``[start, end)``), made once per document by the encoder's tokenizer, so cutting
never re-tokenizes. The same packing serves two jobs: cutting a long document
into unit-sized pieces (sections first, then sentences), and cutting a span into
~200-token chunks (sentences).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from lcrag.retrievers.encoders.late_chunking import token_bounds

Range = tuple[int, int]

# A sentence ends at . ! ? (plus closing quotes/brackets, which stay with it)
# followed by white space, or at a line break. Abbreviations cost a slightly short
# chunk, never a lost span. Group "gap" is the white space between sentences.
_BREAK = re.compile(r"[.!?][\"')\]]*(?P<gap>\s+)|(?P<lines>\n+)")


def trim(text: str, start: int, end: int) -> Range:
    """Shrink ``[start, end)`` to exclude surrounding white space."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def sentence_ranges(text: str, start: int = 0, end: int | None = None) -> list[Range]:
    """Non-empty, trimmed sentence ranges covering the text of ``[start, end)`` in order."""
    end = len(text) if end is None else end
    ranges: list[Range] = []
    cursor = start
    for match in _BREAK.finditer(text, start, end):
        gap = "gap" if match.group("gap") is not None else "lines"
        piece = trim(text, cursor, match.start(gap))
        if piece[0] < piece[1]:
            ranges.append(piece)
        cursor = match.end(gap)
    piece = trim(text, cursor, end)
    if piece[0] < piece[1]:
        ranges.append(piece)
    return ranges


def count_tokens(offsets: np.ndarray, start: int, end: int) -> int:
    i, j = token_bounds(offsets, start, end)
    return j - i


def split_by_tokens(text: str, offsets: np.ndarray, rng: Range, limit: int) -> list[Range]:
    """Cut one over-long range at token boundaries into pieces of at most ``limit`` tokens."""
    i, j = token_bounds(offsets, *rng)
    if j - i <= limit:
        return [rng]
    pieces: list[Range] = []
    for first in range(i, j, limit):
        last = min(first + limit, j) - 1
        piece_start = rng[0] if first == i else int(offsets[first, 0])
        piece_end = rng[1] if last == j - 1 else int(offsets[last, 1])
        piece = trim(text, piece_start, piece_end)
        if piece[0] < piece[1]:
            pieces.append(piece)
    return pieces


def refine(text: str, offsets: np.ndarray, ranges: Sequence[Range], limit: int) -> list[Range]:
    """Replace every range longer than ``limit`` tokens by its sentences, and any
    sentence still too long by token-boundary pieces."""
    out: list[Range] = []
    for rng in ranges:
        if count_tokens(offsets, *rng) <= limit:
            out.append(rng)
            continue
        for sentence in sentence_ranges(text, *rng):
            out.extend(split_by_tokens(text, offsets, sentence, limit))
    return out


def pack(offsets: np.ndarray, ranges: Sequence[Range], limit: int) -> list[Range]:
    """Greedily merge consecutive ranges while the merged range stays within ``limit``
    tokens. Every input range must already fit. A merged range runs from the first
    piece's start to the last piece's end (the white space between is kept)."""
    packed: list[Range] = []
    current: Range | None = None
    for rng in ranges:
        if current is None:
            current = rng
            continue
        merged = (current[0], rng[1])
        if count_tokens(offsets, *merged) <= limit:
            current = merged
        else:
            packed.append(current)
            current = rng
    if current is not None:
        packed.append(current)
    return packed


def chunk_ranges(text: str, offsets: np.ndarray, rng: Range, target: int) -> list[Range]:
    """Sentence-aligned chunks of about ``target`` tokens covering ``rng``."""
    return pack(offsets, refine(text, offsets, sentence_ranges(text, *rng), target), target)


def cut_ranges(text: str, offsets: np.ndarray, sections: Sequence[Range], limit: int) -> list[Range]:
    """Cut a document into pieces of at most ``limit`` tokens, preferring section
    (paragraph) edges, then sentence edges, then token edges."""
    whole = trim(text, 0, len(text))
    if whole[0] >= whole[1]:
        return []
    if count_tokens(offsets, *whole) <= limit:
        return [whole]
    base = [trim(text, s, e) for s, e in sections] or [whole]
    base = [r for r in base if r[0] < r[1]]
    return pack(offsets, refine(text, offsets, base, limit), limit)
