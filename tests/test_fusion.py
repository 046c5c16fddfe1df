"""Reciprocal rank fusion and max-P aggregation, against hand-computed scores."""

from __future__ import annotations

import pytest

from lcrag.retrievers.fusion import max_by_key, reciprocal_rank_fusion


@pytest.mark.parametrize(
    "rankings, k, weights, expected",
    [
        # single ranking: order kept, score 1 / (k + rank)
        ([["a", "b", "c"]], 60, None, [("a", 1 / 61), ("b", 1 / 62), ("c", 1 / 63)]),
        # a and b tie (1/61 + 1/62 each), c and d tie (1/63): first-seen order breaks ties
        (
            [["a", "b", "c"], ["b", "a", "d"]],
            60,
            None,
            [("a", 1 / 61 + 1 / 62), ("b", 1 / 62 + 1 / 61), ("c", 1 / 63), ("d", 1 / 63)],
        ),
        # weights break the tie in favour of the first ranking
        (
            [["a", "b", "c"], ["b", "a", "d"]],
            60,
            [2.0, 1.0],
            [("a", 2 / 61 + 1 / 62), ("b", 2 / 62 + 1 / 61), ("c", 2 / 63), ("d", 1 / 63)],
        ),
        (
            [["a", "b", "c"], ["b", "a", "d"]],
            60,
            [1.0, 2.0],
            [("b", 1 / 62 + 2 / 61), ("a", 1 / 61 + 2 / 62), ("d", 2 / 63), ("c", 1 / 63)],
        ),
        # an item found by both retrievers beats one ranked first by only one
        ([["x", "y"], ["y"]], 1, None, [("y", 1 / 3 + 1 / 2), ("x", 1 / 2)]),
        # 1/63 + 1/61 > 2/62 (1/x is convex): ranks 1 and 3 beat ranks 2 and 2
        ([["x", "y", "z"], ["z", "y"]], 60, None, [("z", 1 / 63 + 1 / 61), ("y", 1 / 62 + 1 / 62), ("x", 1 / 61)]),
        # zero weight: the item still appears, with score 0, after the rest
        ([["a"], ["b"]], 60, [0.0, 1.0], [("b", 1 / 61), ("a", 0.0)]),
        ([], 60, None, []),
        ([[], []], 60, None, []),
        ([[1, 2], [2, 3]], 10, None, [(2, 1 / 12 + 1 / 11), (1, 1 / 11), (3, 1 / 12)]),
    ],
)
def test_rrf_table(rankings, k, weights, expected):
    result = reciprocal_rank_fusion(rankings, k=k, weights=weights)
    assert [key for key, _ in result] == [key for key, _ in expected]
    for (_, got), (_, want) in zip(result, expected):
        assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(
    "rankings, expected_order",
    [
        ([["p", "q"], ["q", "p"]], ["p", "q"]),
        ([["q", "p"], ["p", "q"]], ["q", "p"]),
        ([["a"], ["b"], ["c"]], ["a", "b", "c"]),
        ([["c"], ["b"], ["a"]], ["c", "b", "a"]),
    ],
)
def test_rrf_ties_keep_first_seen_order(rankings, expected_order):
    assert [key for key, _ in reciprocal_rank_fusion(rankings)] == expected_order


def test_rrf_default_k_is_60():
    assert reciprocal_rank_fusion([["a"]]) == [("a", pytest.approx(1 / 61))]


@pytest.mark.parametrize("k", [0, -1, -60])
def test_rrf_rejects_bad_k(k):
    with pytest.raises(ValueError, match="k"):
        reciprocal_rank_fusion([["a"]], k=k)


@pytest.mark.parametrize("weights", [[1.0], [1.0, 1.0, 1.0], []])
def test_rrf_rejects_mismatched_weights(weights):
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([["a"], ["b"]], weights=weights)


@pytest.mark.parametrize(
    "items, expected",
    [
        ([], []),
        ([("a", 1.0, "a1")], [("a", "a1")]),
        ([("a", 1.0, "a1"), ("b", 3.0, "b1"), ("a", 5.0, "a2")], [("a", "a2"), ("b", "b1")]),
        ([("a", 1.0, "a1"), ("b", 3.0, "b1"), ("a", 2.0, "a2")], [("b", "b1"), ("a", "a2")]),
        # a tie inside a group keeps the first member
        ([("a", 2.0, "x"), ("a", 2.0, "y")], [("a", "x")]),
        # a tie between groups keeps the first-seen group first
        ([("b", 1.0, "b1"), ("a", 1.0, "a1")], [("b", "b1"), ("a", "a1")]),
        ([("a", 1.0, "a1"), ("b", 1.0, "b1"), ("c", 4.0, "c1")], [("c", "c1"), ("a", "a1"), ("b", "b1")]),
        ([("a", -1.0, "a1"), ("b", -3.0, "b1"), ("a", -2.0, "a2")], [("a", "a1"), ("b", "b1")]),
    ],
)
def test_max_by_key_table(items, expected):
    result = max_by_key(items, key=lambda item: item[0], score=lambda item: item[1])
    assert [(group, item[2]) for group, item in result] == expected


def test_max_by_key_accepts_an_iterator():
    items = iter([("d1", 0.2), ("d2", 0.9), ("d1", 0.5)])
    result = max_by_key(items, key=lambda item: item[0], score=lambda item: item[1])
    assert result == [("d2", ("d2", 0.9)), ("d1", ("d1", 0.5))]
