"""Routing policies scored on a routing table, as quality against prompt tokens.

A policy picks, per question, which candidate's answer the user gets and pays for:
always-X for every candidate X (the constant policies), self-route at a threshold,
a fitted router, and the oracle (the best candidate per question at the cheapest
cost: the ceiling no router can pass). A routed question always pays for the cheap read first, and for its
destination too when that is not the cheap read. Each policy is then compared
with always-lc on the same questions, by the verdict rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from lcrag.pipeline.routing.calibrate import CalibrationItem, falls_back
from lcrag.pipeline.routing.table import CHEAP, REFERENCE, RoutingTable
from lcrag.pipeline.statistics.intervals import PairedDifference, paired_difference
from lcrag.pipeline.statistics.verdict import (
    LEVEL,
    NON_INFERIORITY_MARGIN,
    UNDETERMINED,
    PairKey,
    outcome_of,
    questions_needed,
)


@dataclass(frozen=True)
class PolicyResult:
    """What a policy gave each question (score) and what it cost (prompt tokens)."""

    name: str
    choices: Mapping[PairKey, str]  # the destination per question
    scores: Mapping[PairKey, float]
    tokens: Mapping[PairKey, float]
    # share of questions sent to each destination, when ``choices`` alone does not say
    # (a router cross-validated several times: its choices over every repeat)
    shares: Mapping[str, float] | None = None

    def destination_shares(self) -> dict[str, float]:
        if self.shares is not None:
            return dict(sorted(self.shares.items()))
        n = len(self.choices)
        return {k: v / n for k, v in sorted(Counter(self.choices.values()).items())}


@dataclass(frozen=True)
class PolicySummary:
    name: str
    n: int
    mean_score: float
    mean_tokens: float
    token_ratio: float | None  # mean prompt tokens / always-lc's
    difference: PairedDifference | None  # (policy - always-lc), None for always-lc itself
    outcome: str  # against always-lc: NON_INFERIOR, INFERIOR or UNDETERMINED ("" for always-lc)
    shares: Mapping[str, float]  # share of questions sent to each destination
    # undetermined only: paired questions the observed variance says would settle it (None: no size would)
    questions_needed: int | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["shares"] = dict(self.shares)
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> PolicySummary:
        """Back from ``as_dict`` (a router file's stored scores)."""
        diff = data.get("difference")
        return cls(**{**data, "difference": PairedDifference(**diff) if diff else None, "shares": dict(data.get("shares", {}))})


def routed(table: RoutingTable, name: str, choices: Mapping[PairKey, str], cheap_first: bool = True) -> PolicyResult:
    """The result of sending each question to ``choices[key]``; with ``cheap_first``
    a destination other than the cheap read also pays for the cheap read."""
    scores, tokens = {}, {}
    for q in table.questions:
        choice = choices[q.key]
        scores[q.key] = q.scores[choice]
        extra = q.tokens[CHEAP] if cheap_first and choice != CHEAP else 0
        tokens[q.key] = q.tokens[choice] + extra
    return PolicyResult(name, dict(choices), scores, tokens)


CONSTANT_PREFIX = "always-"


def always(table: RoutingTable, strategy: str) -> PolicyResult:
    return routed(table, f"{CONSTANT_PREFIX}{strategy}", {q.key: strategy for q in table.questions}, cheap_first=False)


def constant_policies(table: RoutingTable) -> list[PolicyResult]:
    """always-X for every candidate, in the table's order (the cheap read first)."""
    return [always(table, name) for name in table.candidates]


def oracle(table: RoutingTable) -> PolicyResult:
    """Per question the best score, from the cheapest candidate that reaches it,
    without a cheap read (an oracle needs none). Ties in tokens go to the candidate
    listed first (the cheap read), as a question's label does, not to a name's spelling."""
    choices = {}
    order = {name: rank for rank, name in enumerate(table.candidates)}
    for q in table.questions:
        top = max(q.scores.values())
        choices[q.key] = min((s for s in table.candidates if q.scores[s] == top), key=lambda s: (q.tokens[s], order[s]))
    return routed(table, "oracle", choices, cheap_first=False)


def calibration_items(table: RoutingTable, keys=None) -> list[CalibrationItem]:
    return [CalibrationItem(q.scores[CHEAP], q.scores[REFERENCE], q.confidence, q.declined)
            for q in table.questions if keys is None or q.key in keys]


def self_route(table: RoutingTable, thresholds: Mapping[PairKey, float], name: str = "self-route") -> PolicyResult:
    """Self-route with a threshold per question (one for all, or each fold's own)."""
    choices = {q.key: REFERENCE if falls_back(item, thresholds[q.key]) else CHEAP
               for q, item in zip(table.questions, calibration_items(table))}
    return routed(table, name, choices)


def summarise(result: PolicyResult, reference: PolicyResult, margin: float = NON_INFERIORITY_MARGIN,
              resamples: int = 10_000, seed: int = 0) -> PolicySummary:
    n = len(result.scores)
    mean_tokens = sum(result.tokens.values()) / n
    ref_tokens = sum(reference.tokens.values()) / n
    shares = result.destination_shares()
    needed = None
    if result.name == reference.name:
        diff, outcome = None, ""
    else:
        diff = paired_difference(result.scores, reference.scores, resamples=resamples, level=LEVEL, seed=seed)
        outcome = outcome_of(diff, margin)
        if outcome == UNDETERMINED:
            needed = questions_needed([result.scores[k] - reference.scores[k] for k in result.scores], margin)[0]
    return PolicySummary(result.name, n, sum(result.scores.values()) / n, mean_tokens,
                         mean_tokens / ref_tokens if ref_tokens else None, diff, outcome, shares, needed)
