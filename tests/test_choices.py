"""Multiple-choice replies: which letter a reader chose, or None when it is not clear."""

from __future__ import annotations

import pytest

from lcrag.pipeline.scoring.choices import (
    ChoiceError,
    parse_choice,
    parse_gold,
    render_options,
    score_choice,
    strip_option_letter,
)

OPTIONS = (
    "to study human form and movement",
    "to earn money by painting portraits",
    "to paint farm animals in an outdoor setting",
    "to meet people who could model for her painting",
)

SINGLE = [
    # bare letters
    ("B", "B"),
    ("b", "B"),
    ("B.", "B"),
    ("(B)", "B"),
    ("B)", "B"),
    ("  **C**  ", "C"),
    ("D\nBecause the lecture says so.", "D"),
    # answer phrases
    ("Answer: B", "B"),
    ("answer: b", "B"),
    ("Answer: (D)", "D"),
    ("The answer is B) to earn money by painting portraits", "B"),
    ("The correct answer is C.", "C"),
    ("I think the answer is A because she studied form", "A"),
    ("The answer is B, I think", "B"),
    ("Option A is wrong. The answer is C.", "C"),
    ("A. to study human form and movement", "A"),
    ("I'd go with (C).", "C"),
    # option text
    ("To earn money by painting portraits.", "B"),
    ("TO PAINT FARM ANIMALS, in an outdoor setting", "C"),
    ("earn money", "B"),  # contained in exactly one option
    ("She went there to earn money by painting portraits, I believe.", "B"),  # one option inside the reply
    # garbage, ambiguity, out of range
    ("", None),
    ("   ", None),
    ("xyz", None),
    ("I don't know", None),
    ("The answer is a dog", None),
    ("painting", None),  # in two options
    ("to", None),  # in every option
    ("B, D", None),  # two letters where one is asked
    ("BD", None),
    ("Both (A) and (C) look plausible", None),
    ("The answer is B) to paint farm animals in an outdoor setting", None),  # letter and text disagree
    ("E", None),  # past the last option
    ("Answer: F", None),
]


@pytest.mark.parametrize("reply, expected", SINGLE)
def test_single_answer(reply: str, expected: str | None) -> None:
    assert parse_choice(reply, OPTIONS) == expected


MULTI = [
    ("B, D", "BD"),
    ("BD", "BD"),
    ("DB", "BD"),
    ("B and D", "BD"),
    ("(D) (B)", "BD"),
    ("The correct answers are B and D", "BD"),
    ("Answer: A, C, D", "ACD"),
    ("Both (A) and (C)", "AC"),
    ("C", "C"),
    ("to earn money by painting portraits", "B"),
    ("B, E", None),  # a letter past the last option
    ("no idea", None),
]


@pytest.mark.parametrize("reply, expected", MULTI)
def test_multi_answer(reply: str, expected: str | None) -> None:
    assert parse_choice(reply, OPTIONS, multi=True) == expected


def test_a_letter_needs_options() -> None:
    assert parse_choice("B", []) is None
    assert parse_choice("C", ["yes", "no"]) is None  # only A and B exist
    assert parse_choice("B", ["yes", "no"]) == "B"
    assert parse_choice("no", ["yes", "no"]) == "B"


def test_letters_of_a_text_option_do_not_count_as_letters() -> None:
    options = ["Volume, Velocity, Veracity", "Variety, Velocity, Veracity", "Volume, Variety, Visualization", "Volume, Variety, Velocity"]
    assert parse_choice("Volume, Variety, Velocity", options) == "D"
    assert parse_choice("use IFERROR", ["ISERROR", "ERROR", "DIV", "IFERROR"]) == "D"


GOLD = [
    ("C", "C"),
    ("BD", "BD"),
    ("B, D", "BD"),
    ("(B)", "B"),
    ("(B) to earn money by painting portraits", "B"),
    ("B. to earn money", "B"),
    ("Answer: C", "C"),
    ("to meet people who could model for her painting", "D"),
    (["A", "C"], "AC"),
    ("E", None),
    ("it depends", None),
]


@pytest.mark.parametrize("gold, expected", GOLD)
def test_gold_answers(gold, expected) -> None:
    assert parse_gold(gold, OPTIONS) == expected


def test_gold_prefers_letters_to_an_option_reading_the_same() -> None:
    assert parse_gold("A", ["B", "A"]) == "A"


@pytest.mark.parametrize(
    "chosen, correct, expected",
    [("B", "B", 1.0), ("C", "B", 0.0), (None, "B", None), ("BD", "DB", 1.0), ("B", "BD", 0.0), ("ABD", "BD", 0.0), ("b", "B", 1.0)],
)
def test_score_choice(chosen, correct, expected) -> None:
    assert score_choice(chosen, correct) == expected


def test_render_options() -> None:
    assert render_options(["yes", "no  \n way"]) == "A. yes\nB. no way"
    with pytest.raises(ChoiceError):
        render_options([])
    with pytest.raises(ChoiceError):
        render_options([str(i) for i in range(27)])


@pytest.mark.parametrize(
    "text, expected",
    [("A. first", "first"), ("(B) second", "second"), ("C) third", "third"), ("plain", "plain"), ("A.B. testing", "A.B. testing")],
)
def test_strip_option_letter(text: str, expected: str) -> None:
    assert strip_option_letter(text) == expected


def test_parse_then_score_round_trip() -> None:
    assert score_choice(parse_choice("The answer is (C)", OPTIONS), "C") == 1.0
    assert score_choice(parse_choice("garbage", OPTIONS), "C") is None
    assert score_choice(parse_choice("B and D", OPTIONS, multi=True), "BD") == 1.0
