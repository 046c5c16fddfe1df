"""Context ordering and budgeting: table-driven, plus parity with llama-index's
LongContextReorder (the same "lost in the middle" placement)."""

from __future__ import annotations

import pytest

from lcrag.pipeline.strategies.ordering import (
    attention_order,
    cut_middle,
    document_order,
    fit_budget,
    longest_prefix,
    longest_suffix,
    reorder_ends,
)


@pytest.mark.parametrize(
    "best_first, expected",
    [
        ([], []),
        ([1], [1]),
        ([1, 2], [1, 2]),
        ([1, 2, 3], [1, 3, 2]),
        ([1, 2, 3, 4, 5], [1, 3, 5, 4, 2]),
        ([1, 2, 3, 4, 5, 6], [1, 3, 5, 6, 4, 2]),
    ],
)
def test_reorder_puts_best_at_both_ends_worst_in_the_middle(best_first, expected):
    out = reorder_ends(best_first)
    assert out == expected
    if len(out) >= 2:
        assert {out[0], out[-1]} == {1, 2}
    if len(out) >= 3:
        assert out[len(out) // 2] in best_first[-2:]


@pytest.mark.parametrize("n", [2, 3, 5, 8, 11])
def test_reorder_matches_llama_index_long_context_reorder(n):
    from llama_index.core.postprocessor import LongContextReorder
    from llama_index.core.schema import NodeWithScore, TextNode

    scores = [1.0 - i / n for i in range(n)]
    nodes = [NodeWithScore(node=TextNode(text=str(i), id_=str(i)), score=s) for i, s in enumerate(scores)]
    reference = [int(x.node.text) for x in LongContextReorder().postprocess_nodes(nodes)]
    # llama-index fills from the worst up, so for an even count its order is our mirror
    # image (best passage last rather than first); both put the best two at the ends.
    assert reorder_ends(list(range(n))) in (reference, reference[::-1])


@pytest.mark.parametrize(
    "items, expected",
    [
        ([("b", 5, 0.9), ("a", 10, 0.8), ("a", 0, 0.1), ("c", 0, 0.99)], [("a", 0, 0.1), ("a", 10, 0.8), ("b", 5, 0.9), ("c", 0, 0.99)]),
        ([("a", 3, 0.1), ("a", 3, 0.2)], [("a", 3, 0.1), ("a", 3, 0.2)]),  # equal positions keep their order
    ],
)
def test_document_order_ignores_scores(items, expected):
    position = {"a": 0, "b": 1, "c": 2}
    assert document_order(items, lambda t: (position[t[0]], t[1])) == expected


@pytest.mark.parametrize(
    "attention, expected",
    [([0.5, 0.1, 0.9], ["b", "a", "c"]), ([0.2, 0.2, 0.1], ["c", "a", "b"]), ([1.0, 0.0, 0.0], ["b", "c", "a"])],
)
def test_attention_order_puts_most_attended_last(attention, expected):
    assert attention_order(["a", "b", "c"], attention) == expected


def test_attention_order_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 attention scores for 3"):
        attention_order(["a", "b", "c"], [0.1, 0.2])


@pytest.mark.parametrize(
    "costs, budget, kept, used",
    [([3, 4, 5], 12, [3, 4, 5], 12), ([3, 4, 5], 8, [3, 4], 7), ([10, 2, 3], 5, [2, 3], 5), ([6], 5, [], 0), ([], 5, [], 0)],
)
def test_fit_budget_never_exceeds_and_skips_what_does_not_fit(costs, budget, kept, used):
    out, total = fit_budget(costs, lambda c: c, budget)
    assert out == kept and total == used and total <= budget


def words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize("budget", [0, 1, 3, 7])
def test_longest_suffix_is_the_longest_that_fits(budget):
    text = "one two three four five six seven eight"
    n = longest_suffix(text, budget, words)
    assert words(text[len(text) - n:]) <= budget
    if n < len(text):
        assert words(text[len(text) - n - 1:]) > budget or text[len(text) - n - 1] == " "


@pytest.mark.parametrize("budget", [0, 1, 3, 7])
def test_longest_prefix_is_the_longest_that_fits(budget):
    text = "one two three four five six seven eight"
    n = longest_prefix(text, budget, words)
    assert words(text[:n]) <= budget
    if n < len(text):
        assert words(text[: n + 1]) > budget or text[n] == " "


@pytest.mark.parametrize("budget", [2, 4, 6, 9])
def test_cut_middle_keeps_head_and_tail_within_budget(budget):
    text = " ".join(f"w{i}" for i in range(20))
    head, tail, cut = cut_middle(text, budget, words)
    assert cut
    kept = text[:head] + " " + text[tail:]
    assert words(text[:head]) + words(text[tail:]) <= budget
    assert (kept.startswith("w0") and kept.rstrip().endswith("w19")) or budget < 2
    assert head <= tail


def test_cut_middle_leaves_short_text_alone():
    assert cut_middle("a b c", 5, words) == (5, 5, False)
