"""Answer metrics against hand-computed values, with the SQuAD normalisation edge cases."""

from __future__ import annotations

import pytest

from lcrag.pipeline.scoring.metrics import (
    answer_recall,
    best_over_golds,
    exact_match,
    normalize_answer,
    token_f1,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  an   apple, a day!  ", "apple day"),
        ("Theatre", "theatre"),  # 'the' inside a word stays
        ("A.D. 1066", "ad 1066"),
        ("rock-'n'-roll", "rocknroll"),
        ("", ""),
        ("The the THE", ""),
        ("Café au lait", "café au lait"),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    "prediction, gold, em, f1",
    [
        ("Paris", "paris", 1.0, 1.0),
        ("the Paris", "Paris.", 1.0, 1.0),
        ("Paris France", "Paris", 0.0, 2 * (1 / 2) * 1 / (1 / 2 + 1)),  # p=1/2, r=1 -> 2/3
        ("New York City", "York New", 0.0, 2 * (2 / 3) * 1 / (2 / 3 + 1)),  # p=2/3, r=1 -> 0.8
        ("London", "Paris", 0.0, 0.0),
        ("", "Paris", 0.0, 0.0),
        ("the", "a", 1.0, 1.0),  # both normalise to empty: SQuAD counts that as a match
        ("cat cat dog", "cat dog dog", 0.0, 2 / 3),  # multiset overlap 2 of 3 each side
    ],
)
def test_exact_match_and_f1(prediction, gold, em, f1):
    assert exact_match(prediction, gold) == em
    assert token_f1(prediction, gold) == pytest.approx(f1)


@pytest.mark.parametrize(
    "prediction, gold, expected",
    [
        ("It was built in 1889 by Eiffel.", "1889", 1.0),
        ("It was built in 18890.", "1889", 0.0),  # whole tokens only
        ("The answer is the Eiffel Tower", "Eiffel Tower", 1.0),
        ("Paris", "", 0.0),
    ],
)
def test_answer_recall(prediction, gold, expected):
    assert answer_recall(prediction, gold) == expected


def test_best_over_golds_takes_the_best_match():
    assert best_over_golds(token_f1, "New York", ["Boston", "New York City"]) == pytest.approx(0.8)
    assert best_over_golds(exact_match, "x", []) == 0.0
