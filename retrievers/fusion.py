"""Rank and score fusion, and max-P aggregation, as pure functions."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

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
    return sorted(scores.items(), key=lambda item: -item[1])  # stable: ties keep first-seen order


def convex_combination_fusion(
    scored: Sequence[Sequence[tuple[K, float]]], weights: Sequence[float] | None = None
) -> list[tuple[K, float]]:
    """Convex combination of min-max normalised scores (Bruch et al. 2023, "An Analysis
    of Fusion Functions for Hybrid Retrieval"): score(d) = sum_i w_i * (s_i(d) - min_i) /
    (max_i - min_i), with the weights scaled to sum to 1, so the result lies in [0, 1].

    Unlike RRF it keeps how far a hit stands out in its own list: a BM25 hit scoring
    three times the runner-up (an identifier, a code, an exact phrase) stays on top when
    the dense list ranks it low, where RRF sees only the ranks. An item missing from a
    list scores that list's minimum (0); a list whose scores are all equal gives its
    members 1. Ties keep first-seen order, so the result is deterministic."""
    weights = list(weights) if weights is not None else [1.0] * len(scored)
    if len(weights) != len(scored):
        raise ValueError(f"{len(weights)} weights for {len(scored)} score lists")
    if not scored:
        return []
    if any(w < 0 for w in weights):
        raise ValueError(f"fusion weights must be >= 0, got {weights}")
    total = sum(weights)
    if total <= 0:
        raise ValueError("at least one fusion weight must be > 0")
    fused: dict[K, float] = {}
    for items, weight in zip(scored, weights):
        for key, _ in items:
            fused.setdefault(key, 0.0)
        if not items or weight == 0:
            continue
        best: dict[K, float] = {}
        for key, score in items:  # a key listed twice counts once, at its best score
            best[key] = max(float(score), best.get(key, float("-inf")))
        low, high = min(best.values()), max(best.values())
        span = high - low
        for key, score in best.items():
            fused[key] += weight / total * ((score - low) / span if span > 0 else 1.0)
    return sorted(fused.items(), key=lambda item: -item[1])  # stable: ties keep first-seen order


def max_by_key(items: Iterable[T], key: Callable[[T], K], score: Callable[[T], float]) -> list[tuple[K, T]]:
    """Max-P aggregation: each group's score is its best member's; returns
    (group key, best member) best first. Ties keep first-seen order."""
    best: dict[K, T] = {}
    for item in items:
        group = key(item)
        if group not in best or score(item) > score(best[group]):
            best[group] = item
    return sorted(best.items(), key=lambda pair: -score(pair[1]))  # stable: ties keep first-seen order
