"""Rank fusion and max-P aggregation as pure functions."""

from __future__ import annotations

from typing import Callable, Hashable, Iterable, Sequence, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]], k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[K, float]]:
    """RRF (Cormack et al. 2009): score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1.
    Ties keep the order in which items were first seen, so the result is deterministic."""
    if k < 1:
        raise ValueError(f"RRF k must be >= 1, got {k}")
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    scores: dict[K, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    order = {key: i for i, key in enumerate(scores)}
    return sorted(scores.items(), key=lambda item: (-item[1], order[item[0]]))


def max_by_key(items: Iterable[T], key: Callable[[T], K], score: Callable[[T], float]) -> list[tuple[K, T]]:
    """Max-P aggregation: each group's score is its best member's; returns
    (group key, best member) best first. Ties keep first-seen order."""
    best: dict[K, T] = {}
    for item in items:
        group = key(item)
        if group not in best or score(item) > score(best[group]):
            best[group] = item
    order = {group: i for i, group in enumerate(best)}
    return sorted(best.items(), key=lambda pair: (-score(pair[1]), order[pair[0]]))
