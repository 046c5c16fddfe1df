"""Context ordering and budgeting as pure functions.

- ``reorder_ends``: retrieval reordering (Jin et al. 2024): best passages at the
  two ends of the context, worst in the middle, where long-context models attend least.
- ``document_order``: order-preserving RAG (Yu et al. 2024): retrieved chunks in
  the order they stand in the corpus, whatever their scores.
- ``attention_order``: attention sorting (Peysakhovich & Lerer 2023): most
  attended passage last, next to the question.
- ``fit_budget`` / ``cut_middle``: stay within the reader's token budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def reorder_ends(best_first: Sequence[T]) -> list[T]:
    """[1, 2, 3, 4, 5] -> [1, 3, 5, 4, 2]: ranks alternate between the front and the back."""
    front: list[T] = []
    back: list[T] = []
    for rank, item in enumerate(best_first):
        (front if rank % 2 == 0 else back).append(item)
    return front + back[::-1]


def document_order(items: Sequence[T], position: Callable[[T], tuple]) -> list[T]:
    """Items sorted by where they stand in the corpus (stable for equal positions)."""
    return sorted(items, key=position)


def attention_order(items: Sequence[T], attention: Sequence[float]) -> list[T]:
    """Least attended first, most attended last; ties keep the current order."""
    if len(items) != len(attention):
        raise ValueError(f"{len(attention)} attention scores for {len(items)} passages")
    order = sorted(range(len(items)), key=lambda i: (attention[i], i))
    return [items[i] for i in order]


def fit_budget(items: Sequence[T], cost: Callable[[T], int], budget: int) -> tuple[list[T], int]:
    """Items in the given order while they fit; one too large is skipped and the
    next ones still tried. Returns the kept items and their total cost."""
    kept, used = [], 0
    for item in items:
        c = cost(item)
        if used + c <= budget:
            kept.append(item)
            used += c
    return kept, used


def longest_prefix(text: str, budget: int, count: Callable[[str], int]) -> int:
    """The largest character length whose prefix costs at most ``budget`` tokens."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def longest_suffix(text: str, budget: int, count: Callable[[str], int]) -> int:
    """The largest character length whose suffix costs at most ``budget`` tokens."""
    return longest_prefix(text[::-1], budget, lambda s: count(s[::-1]))


def cut_middle(text: str, budget: int, count: Callable[[str], int]) -> tuple[int, int, bool]:
    """Keep the head and the tail of ``text`` within ``budget`` tokens, cutting the
    middle. Returns (head_end, tail_start, cut): the kept text is
    ``text[:head_end] + text[tail_start:]``; without a cut, (len, len, False)."""
    if count(text) <= budget:
        return len(text), len(text), False
    half = budget // 2
    head_end = longest_prefix(text, half, count)
    tail_start = max(len(text) - longest_suffix(text, budget - half, count), head_end)
    return head_end, tail_start, True
