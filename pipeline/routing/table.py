"""One run's questions as a routing table: what was known before the costly read,
and what each candidate strategy scored and cost on the same question.

Built from ledger rows and the run's recorded features. Only questions that every
candidate answered (``verdict.common_questions``) and that have features count, so
every policy is scored on the same questions.

A question's label is the cheapest candidate that answered it right. A question no
candidate answered right has no label (``label`` gives None): it says nothing about
which strategy a question needs, so the router's tree is not trained on it (it used
to be labelled with the cheap read, which made the tree prefer rag wherever nothing
helped, and so always-rag). Such questions still count when policies are scored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lcrag.core.errors import LcragError
from lcrag.pipeline.ledger import FeatureRow, LedgerRow
from lcrag.pipeline.routing.features import PRE_READ_NAMES, with_cheap_read
from lcrag.pipeline.routing.strategies import DESTINATIONS
from lcrag.pipeline.statistics.verdict import UNLABELLED, PairKey, common_questions

CHEAP = "rag"  # the cheap read every routed question gets first
REFERENCE = "lc"  # what routing must not fall behind
CANDIDATES = tuple(DESTINATIONS)  # rag, longrag, op-rag, reorder, lc, coa
"""Strategies a router may send a question to. Routers (self-route, auto) are policies
themselves, attention-sort re-reads the context several times, and closed-book is a
control, so none of those is a destination."""
RIGHT = 0.5  # a score at least this counts as answered right (the metrics are 0/1 but F1)


class RoutingDataError(LcragError, ValueError):
    """The run cannot be routed on: the message says what is missing and how to get it."""


@dataclass(frozen=True)
class Question:
    key: PairKey
    features: Mapping[str, float]  # pre-read features plus the cheap read's (features.FEATURE_NAMES)
    scores: Mapping[str, float]  # per candidate, primary metric
    tokens: Mapping[str, int]  # per candidate, prompt tokens
    confidence: float | None  # the cheap read's
    declined: bool


@dataclass(frozen=True)
class RoutingTable:
    dataset: str
    metric: str
    candidates: tuple[str, ...]  # CHEAP first, then by mean prompt tokens
    questions: tuple[Question, ...]
    without_features: int  # common questions left out for lack of recorded features

    def label(self, question: Question) -> str | None:
        """The cheapest candidate that answered right; None when none did (the
        question tells nothing about which strategy it needs)."""
        for name in self.candidates:
            if question.scores[name] >= RIGHT:
                return name
        return None

    def label_counts(self) -> dict[str, int]:
        """Questions per label, in candidate order (every candidate listed); those no
        candidate answered right are ``no_candidate_answered``'s."""
        labels = [self.label(q) for q in self.questions]
        return {name: labels.count(name) for name in self.candidates}

    def no_candidate_answered(self) -> int:
        """Questions no candidate answered right (left out of the tree's training)."""
        return sum(self.label(q) is None for q in self.questions)


def row_confidence(row: LedgerRow) -> float | None:
    """The row's confidence; rows recorded before it existed fall back on the chosen
    letter's probability (multiple choice), which is the same statistic there."""
    return row.confidence if row.confidence is not None else row.choice_prob


def routing_table(rows: Iterable[LedgerRow], features: Sequence[FeatureRow], dataset: str | None = None) -> RoutingTable:
    """The routing table of one data set of a run's rows (``dataset`` may be omitted
    when the rows hold one)."""
    rows = [r for r in rows if r.strategy in CANDIDATES]
    sets = common_questions(rows, CANDIDATES)
    if not sets:
        raise RoutingDataError("no answered rows of rag, longrag, op-rag, reorder or lc in this run")
    name = dataset or (next(iter(sets)) if len(sets) == 1 else None)
    if name is None:
        raise RoutingDataError(f"the run holds several data sets ({', '.join(sets)}): pick one with --dataset")
    if name not in sets:
        raise RoutingDataError(f"data set {name!r} not in this run; it holds {', '.join(sets)}")
    common = sets[name]
    for needed in (CHEAP, REFERENCE):
        if needed not in common.strategies:
            raise RoutingDataError(
                f"{name}: routing needs both {CHEAP} and {REFERENCE} answered on the same questions; "
                f"{needed} is missing (evaluate with --strategies all)")
    tokens = common.mean_prompt_tokens()
    candidates = (CHEAP, *tuple(sorted((s for s in common.strategies if s != CHEAP), key=lambda s: (tokens[s], s))))
    cheap_rows = {(r.run_id, r.question_id): r for r in rows
                  if r.strategy == CHEAP and r.error is None and (r.dataset or UNLABELLED) == name}
    by_key = {(f.run_id, f.question_id): f.values() for f in features}
    questions, missing = [], 0
    for key in sorted(common.scores[CHEAP]):
        pre = by_key.get(key)
        if pre is None or any(n not in pre for n in PRE_READ_NAMES):
            missing += 1
            continue
        cheap = cheap_rows[key]
        confidence, declined = row_confidence(cheap), bool(cheap.abstained)
        questions.append(Question(
            key=key,
            features=with_cheap_read({n: pre[n] for n in PRE_READ_NAMES}, confidence, declined),
            scores={s: common.scores[s][key] for s in candidates},
            tokens={s: common.tokens[s][key] for s in candidates},
            confidence=confidence,
            declined=declined,
        ))
    if not questions:
        raise RoutingDataError(
            f"{name}: none of the {common.n_pairs} common questions has recorded routing features; rerun "
            "`lcrag eval` with the same run id (it records them without reading again)")
    return RoutingTable(name, common.metric, candidates, tuple(questions), missing)
