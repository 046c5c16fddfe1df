"""Segmentation: sentence ranges, packing, refining and cutting under a token
limit. Token offsets are whitespace tokens, so every count is easy by hand."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from lcrag.pipeline.ingest.sentences import (
    chunk_ranges,
    count_tokens,
    cut_ranges,
    pack,
    refine,
    sentence_ranges,
    split_by_tokens,
    token_bounds,
    trim,
)
from tests.helpers import paragraphs, ws_offsets


def texts(text: str, ranges) -> list[str]:
    return [text[s:e] for s, e in ranges]


def ntok(text: str) -> int:
    return len(text.split())


# -- trim / token_bounds -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, start, end, expected",
    [
        ("  ab  ", 0, 6, (2, 4)),
        ("ab", 0, 2, (0, 2)),
        ("    ", 0, 4, (4, 4)),
        ("x  y", 1, 3, (3, 3)),
        ("\n a b \n", 0, 7, (2, 5)),
    ],
)
def test_trim(text, start, end, expected):
    assert trim(text, start, end) == expected


@pytest.mark.parametrize(
    "text, start, end, expected",
    [
        ("a bb ccc", 0, 8, (0, 3)),
        ("a bb ccc", 2, 8, (1, 3)),
        ("a bb ccc", 3, 8, (2, 3)),  # "b" of "bb" is mid-token: that token began earlier
        ("a bb ccc", 0, 2, (0, 1)),
        ("a bb ccc", 8, 8, (3, 3)),
        ("", 0, 0, (0, 0)),
    ],
)
def test_token_bounds_counts_tokens_beginning_inside(text, start, end, expected):
    assert token_bounds(ws_offsets(text), start, end) == expected
    assert count_tokens(ws_offsets(text), start, end) == expected[1] - expected[0]


# -- sentence_ranges ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("One. Two! Three?", ["One.", "Two!", "Three?"]),
        ("First line\nSecond line", ["First line", "Second line"]),
        ("Line one\n\n\nLine two", ["Line one", "Line two"]),
        ("Hi there.   ", ["Hi there."]),
        ("   Leading space. And more.  ", ["Leading space.", "And more."]),
        ("", []),
        ("   \n \t ", []),
        ("no terminal punctuation", ["no terminal punctuation"]),
        ("a.b c", ["a.b c"]),  # no space after the period: not a sentence end
        ("Wait... what?", ["Wait...", "what?"]),
        ("End.\nNext", ["End.", "Next"]),
        ("x?!  y", ["x?!", "y"]),
    ],
)
def test_sentence_ranges(text, expected):
    ranges = sentence_ranges(text)
    assert texts(text, ranges) == expected
    for s, e in ranges:
        assert trim(text, s, e) == (s, e)


def test_sentence_ranges_of_a_subrange():
    text = "Skip. Keep this. And this. Not this."
    start = text.index("Keep")
    end = text.index(" Not")
    assert texts(text, sentence_ranges(text, start, end)) == ["Keep this.", "And this."]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("(It works.) Next one.", ["(It works.)", "Next one."]),
    ],
)
def test_sentence_ranges_keep_closing_quotes(text, expected):
    assert texts(text, sentence_ranges(text)) == expected


# -- split_by_tokens / refine / pack --------------------------------------------------------------


@pytest.mark.parametrize(
    "limit, expected",
    [
        (7, ["one two three four five six seven"]),
        (10, ["one two three four five six seven"]),
        (3, ["one two three", "four five six", "seven"]),
        (4, ["one two three four", "five six seven"]),
        (1, ["one", "two", "three", "four", "five", "six", "seven"]),
    ],
)
def test_split_by_tokens(limit, expected):
    text = "  one two three four five six seven "
    rng = trim(text, 0, len(text))
    pieces = split_by_tokens(text, ws_offsets(text), rng, limit)
    assert texts(text, pieces) == expected
    assert all(count_tokens(ws_offsets(text), *p) <= limit for p in pieces)


@pytest.mark.parametrize(
    "limit, expected",
    [
        (8, ["a b c.", "d e f g h i j k."]),  # the long sentence fits on its own
        (3, ["a b c.", "d e f", "g h i", "j k."]),
        (11, ["a b c. d e f g h i j k."]),  # fits whole: unchanged
    ],
)
def test_refine_splits_over_long_ranges(limit, expected):
    text = "a b c. d e f g h i j k."
    out = refine(text, ws_offsets(text), [(0, len(text))], limit)
    assert texts(text, out) == expected


def test_refine_keeps_ranges_that_fit_untouched():
    text = "a b. c d e f g. h"
    ranges = [(0, 4), (5, 15), (16, 17)]  # 2, 5, 1 tokens
    out = refine(text, ws_offsets(text), ranges, 2)
    assert texts(text, out) == ["a b.", "c d", "e f", "g.", "h"]


@pytest.mark.parametrize(
    "limit, groups",
    [
        (4, [[0], [1, 2], [3]]),
        (5, [[0, 1], [2, 3]]),
        (6, [[0, 1, 2], [3]]),
        (10, [[0, 1, 2, 3]]),
        (100, [[0, 1, 2, 3]]),
    ],
)
def test_pack_table(limit, groups):
    text = "a b. c d e. f. g h i j."  # sentences of 2, 3, 1, 4 tokens
    sentences = sentence_ranges(text)
    assert [ntok(t) for t in texts(text, sentences)] == [2, 3, 1, 4]
    packed = pack(ws_offsets(text), sentences, limit)
    assert packed == [(sentences[g[0]][0], sentences[g[-1]][1]) for g in groups]


def test_pack_empty_and_single():
    offsets = ws_offsets("a b")
    assert pack(offsets, [], 3) == []
    assert pack(offsets, [(0, 3)], 3) == [(0, 3)]


def test_pack_never_exceeds_limit_and_covers_inputs_in_order():
    rnd = random.Random(7)
    for _ in range(200):
        words = [rnd.choice(["w", "xx", "yyy"]) + rnd.choice(["", "", "."]) for _ in range(rnd.randint(1, 60))]
        text = " ".join(words)
        offsets = ws_offsets(text)
        sentences = sentence_ranges(text)
        limit = max(ntok(text[s:e]) for s, e in sentences) + rnd.randint(0, 6)
        packed = pack(offsets, sentences, limit)
        assert all(count_tokens(offsets, *p) <= limit for p in packed)
        # each packed range is a run of consecutive inputs, the runs partition the inputs in order
        it = iter(sentences)
        for start, end in packed:
            first = next(it)
            assert first[0] == start
            last = first
            while last[1] != end:
                last = next(it)
        assert next(it, None) is None


# -- cut_ranges --------------------------------------------------------------------------------


THREE_PARAGRAPHS = "One two three.\n\nFour five six.\n\nSeven. Eight nine ten."


def test_cut_ranges_prefers_section_edges():
    text = THREE_PARAGRAPHS  # paragraphs of 3, 3 and 1+3 tokens
    sections = paragraphs(text)
    assert len(sections) == 3
    pieces = cut_ranges(text, ws_offsets(text), sections, 8)
    # sentence packing alone would take "Seven." into the first piece (3+3+1 = 7 <= 8)
    assert texts(text, pieces) == ["One two three.\n\nFour five six.", "Seven. Eight nine ten."]
    no_sections = cut_ranges(text, ws_offsets(text), [], 8)
    assert texts(text, no_sections) == ["One two three.\n\nFour five six.\n\nSeven.", "Eight nine ten."]


def test_cut_ranges_falls_back_to_sentences_then_tokens():
    text = "A b c. D e f. G h i.\n\nOne two three four five six seven eight nine ten."
    sections = paragraphs(text)
    pieces = cut_ranges(text, ws_offsets(text), sections, 6)
    assert texts(text, pieces) == [
        "A b c. D e f.",
        "G h i.",
        "One two three four five six",
        "seven eight nine ten.",
    ]


@pytest.mark.parametrize("text", ["", "   ", "\n\n \t"])
def test_cut_ranges_of_blank_text_is_empty(text):
    assert cut_ranges(text, ws_offsets(text), [], 10) == []


def test_cut_ranges_whole_text_when_it_fits():
    text = "  hello there world.\n\nSecond para.  "
    assert cut_ranges(text, ws_offsets(text), paragraphs(text), 5) == [trim(text, 0, len(text))]


# -- chunk_ranges --------------------------------------------------------------------------------


def test_chunk_ranges_are_sentence_aligned_in_order_and_within_target():
    text = (
        "The cat sat. It was warm and sunny outside today. Birds sang.\n"
        "A very long sentence follows here with many many words in it for sure. Short. End of it."
    )
    offsets = ws_offsets(text)
    sentences = sentence_ranges(text)
    for target in (3, 5, 8, 12, 40):
        # allowed edges: sentence edges, plus token edges inside sentences longer than target
        starts = {s for s, _ in sentences}
        ends = {e for _, e in sentences}
        for s, e in sentences:
            if count_tokens(offsets, s, e) > target:
                i, j = token_bounds(offsets, s, e)
                starts |= {int(x) for x in offsets[i:j, 0]}
                ends |= {int(x) for x in offsets[i:j, 1]}
        chunks = chunk_ranges(text, offsets, (0, len(text)), target)
        assert chunks
        for (_s1, e1), (s2, _e2) in itertools.pairwise(chunks):
            assert e1 <= s2
        for s, e in chunks:
            assert count_tokens(offsets, s, e) <= target
            assert s in starts and e in ends
        assert "".join("".join(text[s:e].split()) for s, e in chunks) == "".join(text.split())
    # a big target packs every sentence into one chunk
    assert chunk_ranges(text, offsets, (0, len(text)), 40) == [trim(text, 0, len(text))]


def test_chunk_ranges_on_a_subrange_stay_inside_it():
    text = "Before. One two. Three four five. Six. After."
    start, end = text.index("One"), text.index(" After")
    chunks = chunk_ranges(text, ws_offsets(text), (start, end), 4)
    assert texts(text, chunks) == ["One two.", "Three four five. Six."]


# -- property: random texts -------------------------------------------------------------------------


def random_text(rnd: random.Random) -> str:
    parts = []
    for _ in range(rnd.randint(0, 80)):
        word = "".join(rnd.choice("abcdefgh") for _ in range(rnd.randint(1, 6)))
        word += rnd.choice(["", "", "", ".", ",", "!", "?", ";", "..."])
        parts.append(word)
        parts.append(rnd.choice([" ", " ", " ", "  ", "\n", "\n\n", " \n\n "]))
    return rnd.choice(["", " ", "\n"]) + "".join(parts)


def check_pieces(text: str, offsets: np.ndarray, pieces, limit: int, lo: int = 0, hi: int | None = None) -> None:
    hi = len(text) if hi is None else hi
    for s, e in pieces:
        assert lo <= s < e <= hi
        assert count_tokens(offsets, s, e) <= limit
        assert trim(text, s, e) == (s, e)
    for (_, e1), (s2, _) in itertools.pairwise(pieces):
        assert e1 <= s2
    covered = np.zeros(len(text), dtype=bool)
    for s, e in pieces:
        covered[s:e] = True
    missing = [i for i in range(lo, hi) if not text[i].isspace() and not covered[i]]
    assert not missing, (text, pieces, missing)


def test_random_texts_cut_and_chunk_within_limit_and_cover_every_character():
    rnd = random.Random(1234)
    for _ in range(400):
        text = random_text(rnd)
        offsets = ws_offsets(text)
        limit = rnd.randint(1, 30)
        sections = paragraphs(text) if rnd.random() < 0.5 else []
        check_pieces(text, offsets, cut_ranges(text, offsets, sections, limit), limit)
        check_pieces(text, offsets, chunk_ranges(text, offsets, (0, len(text)), limit), limit)
        lo, hi = sorted(rnd.randint(0, len(text)) for _ in range(2))
        lo, hi = trim(text, lo, hi)
        # a sub-range must start and end on token edges for the coverage check to be exact
        if lo < hi and (lo == 0 or text[lo - 1].isspace()) and (hi == len(text) or text[hi].isspace()):
            check_pieces(text, offsets, chunk_ranges(text, offsets, (lo, hi), limit), limit, lo, hi)
