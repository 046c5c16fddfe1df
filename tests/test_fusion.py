"""Reciprocal rank fusion, convex score fusion and max-P aggregation, against
hand-computed scores."""

from __future__ import annotations

import pytest

from lcrag.retrievers.fusion import convex_combination_fusion, max_by_key, reciprocal_rank_fusion


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


@pytest.mark.parametrize(
    "scored, weights, expected",
    [
        # one list: min-max normalised, order kept
        ([[("a", 10.0), ("b", 6.0), ("c", 2.0)]], None, [("a", 1.0), ("b", 0.5), ("c", 0.0)]),
        # equal weights: each list counts half (a tie keeps first-seen order)
        (
            [[("a", 0.9), ("b", 0.5)], [("b", 20.0), ("a", 10.0)]],
            None,
            [("a", 0.5 * 1.0 + 0.5 * 0.0), ("b", 0.5 * 0.0 + 0.5 * 1.0)],
        ),
        # a standout lexical hit: dense ranks it third (close scores), BM25 scores it 3x
        # the runner-up -> it wins
        (
            [[("d", 0.40), ("e", 0.39), ("g", 0.38), ("h", 0.30)], [("g", 18.0), ("d", 6.0), ("e", 0.0)]],
            None,
            [("g", 0.5 * 0.8 + 0.5 * 1.0), ("d", 0.5 * 1.0 + 0.5 * 6 / 18), ("e", 0.5 * 0.9), ("h", 0.0)],
        ),
        # missing from a list scores that list's minimum (0)
        ([[("a", 2.0), ("b", 1.0)], [("c", 5.0), ("a", 1.0)]], None, [("a", 0.5), ("c", 0.5), ("b", 0.0)]),
        # weights are scaled to sum to 1
        ([[("a", 1.0), ("b", 0.0)], [("b", 1.0), ("a", 0.0)]], [3.0, 1.0], [("a", 0.75), ("b", 0.25)]),
        # a zero weight keeps the list's items, at 0 from it
        ([[("a", 1.0)], [("b", 1.0), ("c", 0.0)]], [0.0, 1.0], [("b", 1.0), ("a", 0.0), ("c", 0.0)]),
        # all scores equal: every member gets 1 from that list
        ([[("a", 3.0), ("b", 3.0)]], None, [("a", 1.0), ("b", 1.0)]),
        # negative scores (cosine) normalise the same way
        ([[("a", -0.1), ("b", -0.5), ("c", -0.3)]], None, [("a", 1.0), ("c", 0.5), ("b", 0.0)]),
        # a key listed twice counts once, at its best score
        ([[("a", 1.0), ("b", 3.0), ("a", 5.0)]], None, [("a", 1.0), ("b", 0.0)]),
        ([], None, []),
        ([[], []], None, []),
    ],
)
def test_convex_fusion_table(scored, weights, expected):
    result = convex_combination_fusion(scored, weights=weights)
    assert [key for key, _ in result] == [key for key, _ in expected]
    for (_, got), (_, want) in zip(result, expected):
        assert got == pytest.approx(want, abs=1e-12)


def test_convex_fusion_ties_keep_first_seen_order():
    scored = [[("p", 1.0), ("q", 0.0)], [("q", 1.0), ("p", 0.0)]]
    assert [key for key, _ in convex_combination_fusion(scored)] == ["p", "q"]


@pytest.mark.parametrize("weights, match", [([1.0], "weights"), ([1.0, -1.0], ">= 0"), ([0.0, 0.0], "> 0")])
def test_convex_fusion_rejects_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        convex_combination_fusion([[("a", 1.0)], [("b", 1.0)]], weights=weights)


def test_rrf_buries_the_standout_hit_that_convex_fusion_keeps():
    """The case that motivates ``retrieval.fusion: convex`` (an identifier query)."""
    # dense: near-equal scores (UUIDs mean nothing to it), the match third of many;
    # BM25: the match scores 3x the runner-up
    dense = [("d", 0.40), ("e", 0.39), ("g", 0.38)] + [(f"t{i}", 0.30 - 0.01 * i) for i in range(6)]
    bm25 = [("g", 18.0), ("d", 5.6), ("e", 4.8), ("f", 0.1)]
    rrf_top = reciprocal_rank_fusion([[k for k, _ in dense], [k for k, _ in bm25]])[0][0]
    convex_top = convex_combination_fusion([dense, bm25])[0][0]
    assert (rrf_top, convex_top) == ("d", "g")
