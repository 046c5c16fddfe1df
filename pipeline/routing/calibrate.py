"""Self-route's confidence threshold, calibrated on questions both rag and lc answered.

Self-route keeps the cheap (rag) answer unless the reader declined or its
confidence is below the threshold; then it pays for lc as well. The calibrated
threshold is the one with the *least* fall-back rate whose simulated quality is
non-inferior to always reading lc under the verdict rule (the lower bound of the
95% paired interval of (self-route - lc) above -margin). Falling back on every
question reproduces lc exactly, so a threshold always exists; how far below 1 it
lands is what the cheap read is worth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lcrag.pipeline.statistics.intervals import PairedDifference, paired_difference
from lcrag.pipeline.statistics.verdict import LEVEL, NON_INFERIOR, NON_INFERIORITY_MARGIN, outcome_of

ALWAYS = 1.000001  # a threshold above every probability: every answered question falls back


@dataclass(frozen=True)
class CalibrationItem:
    """One question: the cheap read's score, confidence (None without logprobs) and
    whether it declined; lc's score."""

    rag_score: float
    lc_score: float
    confidence: float | None
    declined: bool = False


@dataclass(frozen=True)
class Calibration:
    threshold: float  # fall back below this confidence (0: on declines only)
    fallback_rate: float
    difference: PairedDifference  # (self-route - lc) at this threshold
    n: int
    margin: float
    non_inferior: bool  # False only when even the highest threshold is not (questions without confidence)


def falls_back(item: CalibrationItem, threshold: float) -> bool:
    return item.declined or (item.confidence is not None and item.confidence < threshold)


def simulate(items: Sequence[CalibrationItem], threshold: float) -> list[float]:
    """Self-route's score per question at ``threshold``."""
    return [i.lc_score if falls_back(i, threshold) else i.rag_score for i in items]


def candidate_thresholds(items: Sequence[CalibrationItem]) -> list[float]:
    """0 (declines only), then just above each observed confidence, then ALWAYS: each
    step sends at least one more question to lc."""
    seen = sorted({i.confidence for i in items if i.confidence is not None})
    return [0.0] + [c + 1e-9 for c in seen] + [ALWAYS]


def calibrate(
    items: Sequence[CalibrationItem], margin: float = NON_INFERIORITY_MARGIN, resamples: int = 2000, seed: int = 0
) -> Calibration:
    """The least fall-back threshold non-inferior to lc (see the module doc)."""
    if not items:
        raise ValueError("calibration needs at least one question answered by both rag and lc")
    lc = {i: item.lc_score for i, item in enumerate(items)}
    last = None
    for threshold in candidate_thresholds(items):
        routed = dict(enumerate(simulate(items, threshold)))
        diff = paired_difference(routed, lc, resamples=resamples, level=LEVEL, seed=seed)
        rate = sum(falls_back(i, threshold) for i in items) / len(items)
        ok = outcome_of(diff, margin) == NON_INFERIOR
        last = Calibration(threshold, rate, diff, len(items), margin, ok)
        if ok:
            return last
    assert last is not None
    return last
