"""Retrieval metrics and the statistics that let us compare strategies honestly.

Answer metrics (EM, F1, answer recall) live in ``lcrag.pipeline.scoring.metrics``; this module
scores rankings and puts uncertainty on per-question scores: a percentile
bootstrap for a strategy's mean, and a paired bootstrap over shared question ids
for the difference between two strategies (pairing removes question difficulty
from the noise, so small real differences are not drowned out).

The retrieval metrics take an *already-ranked* list of ids, best first, and
follow trec_eval's definitions (ndcg_cut, recall, recip_rank). trec_eval itself
sorts a run by score descending and breaks ties by docid descending, so on tied
scores the two can disagree: rank before calling, the order given is the order
scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

import numpy as np

Relevant = Mapping[str, int] | Set[str]

# rows of bootstrap indices drawn at once, so memory stays bounded for large n
_BLOCK_ELEMENTS = 1_000_000


# --------------------------------------------------------------------------- retrieval


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _check_ranking(ranked_ids: Sequence[str]) -> None:
    """A duplicate id would be counted twice as a hit; trec_eval refuses such runs too."""
    seen: set[str] = set()
    for doc_id in ranked_ids:
        if doc_id in seen:
            raise ValueError(f"ranked_ids lists {doc_id!r} more than once; de-duplicate before scoring")
        seen.add(doc_id)


def _check_grades(relevance: Mapping[str, int]) -> None:
    for doc_id, grade in relevance.items():
        if isinstance(grade, bool) or not isinstance(grade, (int, np.integer)) or grade < 0:
            raise ValueError(f"relevance of {doc_id!r} must be a non-negative integer, got {grade!r}")


def _relevant_set(relevant: Relevant) -> set[str]:
    """Ids that count as relevant: the set itself, or grades >= 1 (trec_eval's default level)."""
    if isinstance(relevant, Mapping):
        _check_grades(relevant)
        ids = {doc_id for doc_id, grade in relevant.items() if grade > 0}
    elif isinstance(relevant, Set):
        ids = set(relevant)
    else:
        raise ValueError(f"relevant must be a mapping of grades or a set of ids, got {type(relevant).__name__}")
    if not ids:
        raise ValueError("no relevant ids: the metric is undefined for a query without relevant documents")
    return ids


def recall_at_k(ranked_ids: Sequence[str], relevant: Relevant, k: int) -> float:
    """Fraction of the relevant ids found in the first ``k`` of an already-ranked list."""
    _check_k(k)
    _check_ranking(ranked_ids)
    ids = _relevant_set(relevant)
    return sum(1 for doc_id in ranked_ids[:k] if doc_id in ids) / len(ids)


def ndcg_at_k(ranked_ids: Sequence[str], relevance: Mapping[str, int], k: int = 10) -> float:
    """trec_eval's ndcg_cut: gain = grade, discount log2(rank + 1), ideal ranking
    from all judged grades sorted descending (so relevant documents the run missed
    still lower the score)."""
    _check_k(k)
    _check_ranking(ranked_ids)
    if not isinstance(relevance, Mapping):
        raise ValueError(f"relevance must map ids to integer grades, got {type(relevance).__name__}")
    _relevant_set(relevance)  # validates grades and rejects queries with nothing relevant
    dcg = sum(relevance.get(doc_id, 0) / math.log2(rank + 1) for rank, doc_id in enumerate(ranked_ids[:k], start=1))
    ideal = sorted((g for g in relevance.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg


def mrr(ranked_ids: Sequence[str], relevant: Relevant) -> float:
    """Reciprocal rank of the first relevant id (0 when none is retrieved); average it over queries."""
    _check_ranking(ranked_ids)
    ids = _relevant_set(relevant)
    for rank, doc_id in enumerate(ranked_ids, start=1):
        if doc_id in ids:
            return 1.0 / rank
    return 0.0


# --------------------------------------------------------------------------- abstention


def abstention_accuracy(abstained: Sequence[bool], answerable: Sequence[bool]) -> float:
    """Share of questions where the reader did the right thing: abstained on an
    unanswerable question or answered an answerable one."""
    if len(abstained) != len(answerable):
        raise ValueError(f"abstained has {len(abstained)} entries but answerable has {len(answerable)}")
    if not abstained:
        raise ValueError("abstention_accuracy needs at least one question, got 0")
    correct = sum(1 for a, ok in zip(abstained, answerable) if bool(a) != bool(ok))
    return correct / len(abstained)


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class Interval:
    """A sample mean with its percentile-bootstrap confidence interval over ``n`` values."""

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class PairedDifference:
    """Mean of (a - b) over shared question ids, with a bootstrap interval over the
    pairs and the head-to-head counts (wins: a > b, losses: a < b, ties: exactly equal)."""

    mean_diff: float
    low: float
    high: float
    n_pairs: int
    wins: int
    losses: int
    ties: int


def _check_bootstrap_args(resamples: int, level: float) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")
    if not (isinstance(level, (int, float)) and 0.0 < level < 1.0):
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")


def resample_blocks(n: int, resamples: int, seed: int):
    """Bootstrap draws of ``n`` indices with replacement, ``resamples`` of them, as
    (start, stop, indices) blocks of rows so memory stays bounded for large ``n``; the
    same seed always gives the same draws."""
    rng = np.random.default_rng(seed)
    rows = max(1, _BLOCK_ELEMENTS // n)
    for start in range(0, resamples, rows):
        stop = min(start + rows, resamples)
        yield start, stop, rng.integers(0, n, size=(stop - start, n))


def bootstrap_mean(values: Sequence[float], *, resamples: int = 10_000, level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap of the mean; the same seed always gives the same interval,
    so reported numbers can be reproduced exactly. 10,000 resamples by default: at 2,000
    a bound at n = 100 moved by 0.01 from one seed to the next."""
    _check_bootstrap_args(resamples, level)
    data = np.asarray(values, dtype=float).ravel()
    n = data.size
    if n == 0:
        raise ValueError("bootstrap_mean needs at least one value, got 0")
    if not np.all(np.isfinite(data)):
        bad = int(np.flatnonzero(~np.isfinite(data))[0])
        raise ValueError(f"values must be finite, got {float(data[bad])!r} at position {bad}")
    if np.all(data == data[0]):
        # no spread to resample: the interval is the point itself, free of summation rounding
        point = float(data[0])
        return Interval(mean=point, low=point, high=point, n=n)
    mean = float(data.mean())
    means = np.empty(resamples)
    for start, stop, idx in resample_blocks(n, resamples, seed):
        means[start:stop] = data[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(mean=mean, low=float(low), high=float(high), n=n)


def paired_difference(
    a: Mapping[str, float],
    b: Mapping[str, float],
    *,
    resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """Compare a against b on the question ids both have (others are ignored; see
    ``n_pairs``), resampling whole pairs so each question stays matched to itself."""
    shared = sorted(set(a) & set(b))  # sorted: the result must not depend on dict order
    if not shared:
        raise ValueError(f"no shared question ids to pair: a has {len(a)} ids, b has {len(b)}, none in common")
    for side, scores in (("a", a), ("b", b)):
        for qid in shared:
            if not math.isfinite(scores[qid]):
                raise ValueError(f"score for question {qid!r} in {side} must be finite, got {scores[qid]!r}")
    left = np.array([a[qid] for qid in shared], dtype=float)
    right = np.array([b[qid] for qid in shared], dtype=float)
    interval = bootstrap_mean(left - right, resamples=resamples, level=level, seed=seed)
    return PairedDifference(
        mean_diff=interval.mean,
        low=interval.low,
        high=interval.high,
        n_pairs=len(shared),
        wins=int(np.sum(left > right)),
        losses=int(np.sum(left < right)),
        ties=int(np.sum(left == right)),
    )


def paired_against(
    reference: str, scores: Mapping[str, Mapping[str, float]], **kw
) -> dict[str, PairedDifference]:
    """Each strategy minus the reference (e.g. "lc"), so every row answers
    "does this beat the baseline?" on the questions both answered."""
    if reference not in scores:
        raise ValueError(f"reference strategy {reference!r} not among {sorted(scores)}")
    out: dict[str, PairedDifference] = {}
    for name, per_question in scores.items():
        if name == reference:
            continue
        try:
            out[name] = paired_difference(per_question, scores[reference], **kw)
        except ValueError as exc:
            raise ValueError(f"strategy {name!r} against {reference!r}: {exc}") from exc
    return out


def summarise(values_by_group: Mapping[str, Sequence[float]], **kw) -> dict[str, Interval]:
    """One bootstrap interval per group (strategy, data set, ...), same settings for all."""
    out: dict[str, Interval] = {}
    for group, values in values_by_group.items():
        try:
            out[group] = bootstrap_mean(values, **kw)
        except ValueError as exc:
            raise ValueError(f"group {group!r}: {exc}") from exc
    return out
