"""The verdict: which strategy to use on a data set, as pure functions of ledger rows.

Three steps, each usable alone:

1. **Primary metric** (``dataset_kind``, ``primary_metric``, ``score_of``). Every data
   set is judged on one metric fixed by its kind, never picked after looking at the
   numbers: ``accuracy`` for multiple choice, ``em`` where the answer is an exact
   string (kv retrieval, needle in a haystack), ``answer_recall`` for free text with
   ``f1`` beside it (small readers answer in sentences, which EM calls wrong).
2. **Common questions** (``common_questions``). Per data set, strategies are compared
   only on the (run_id, question_id) pairs that *every* compared strategy answered,
   so no strategy's mean borrows easy or hard questions the others did not face.
3. **The rule** (``decide``), stated once in README "How the verdict decides":

   - Strategies whose answers are identical on every common question are one
     contender ("rag = self-route"); costs within ``COST_TIE`` of each other are tied,
     and names never break a tie.
   - "use X" needs a test: X must be shown non-inferior to **every** costlier
     contender (intersection-union test: each one-sided paired test at level
     ``alpha / m``, Bonferroni over the ``m`` contenders that have a costlier one),
     so the chance of recommending a cheaper strategy that is truly worse than some
     costlier one by the margin is at most ``alpha`` (2.5%). The cheapest contenders
     that pass are recommended, all of them when tied.
   - When none passes, the costliest contender is recommended only if a global test
     (Cochran's Q for 0/1 metrics, Friedman otherwise) finds a difference and every
     cheaper contender is shown worse than some costlier one by more than the margin.
   - Otherwise the verdict is unresolved and says how many questions would tell.
   - The margin is half the reference's (lc's) shown lead over the no-context control
     (closed-book), or over the letter-bias chance baseline for multiple choice, capped
     at the absolute margin (0.05); without a control, the absolute margin (``margin_for``).

Everything here takes plain mappings or rows and returns frozen dataclasses; the
bootstrap is seeded and binary outcomes use an exact-free score test, so the same rows
always give the same verdict and sentence.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import norm

from lcrag.core.errors import LcragError
from lcrag.pipeline.statistics.intervals import PairedDifference
from lcrag.pipeline.statistics.paired_tests import (
    GlobalTest,
    NonInferiority,
    bonferroni_alpha,
    global_test,
    paired_non_inferiority,
    too_few_clusters,
    within_one_question,
)

if TYPE_CHECKING:
    from lcrag.pipeline.ledger import LedgerRow


class VerdictError(LcragError, ValueError):
    """Inputs the verdict cannot be computed from; the message names what is wrong."""


UNLABELLED = "unlabelled"  # data set name for rows whose dataset is None (as in the report)

NON_INFERIORITY_MARGIN = 0.05
"""The absolute margin (on a 0-1 metric): how much worse a cheaper strategy may be and
still be called "as good as" a costlier one when the run has no control to tie the
margin to, and the cap on a margin derived from one. 0.05 is one question in twenty."""

MARGIN_FRACTION = 0.5
"""With a no-context control, the margin is this share of the reference's shown lead
over it (the lower bound of its interval): "preserve at least half of what reading
buys", the fixed-margin convention of non-inferiority trials (FDA 2016 guidance, M2 =
50% of M1)."""

ALPHA = 0.025
"""One-sided error rate of a recommendation: the chance of saying "use X" when X is
truly worse than some costlier contender by the margin or more."""

RESAMPLES = 20_000  # bootstrap resamples where a score test does not apply (non-binary or clustered)

COST_TIE = 0.01
"""Costs within 1% of each other are tied: rag, op-rag and reorder read the same chunks
and differ by a handful of prompt-template tokens, which must not pick a winner."""

COST_AXES = ("tokens", "prefill", "seconds")
"""What "costlier" means: prompt tokens (default: fixed by the prompt, the same on any
machine and cache state), prefill (prompt tokens the server did not serve from its
prefix cache), or reading seconds (this machine, this load)."""

CONTROL = "closed-book"  # the no-context control; never a contender
CONTROLS = frozenset({CONTROL, "oracle"})  # controls are diagnostics, not strategies to use

LEVEL = 0.95  # confidence level of the router's and calibration's paired intervals; Z_ALPHA matches it
Z_ALPHA = 1.96
"""z_{1-alpha/2} for alpha = 0.05: the lower bound of a two-sided 95% interval is a
one-sided test at 2.5%, the standard non-inferiority convention."""
Z_BETA = 0.84
"""z_{1-beta} for power 0.8 (0.8416 rounded, as in the textbook formula)."""

PRACTICAL_QUESTIONS = 10_000
"""Beyond this many questions the sentence says the two cannot practically be told apart
(the observed difference sits near the margin) instead of quoting a six-figure estimate;
``questions_needed`` keeps the number."""

BOUNDARY_TOLERANCE = 1e-12
"""A bound within this of ``-margin`` counts as *at* the margin: floating-point
rounding (0.95 - 1.0 is -0.05000000000000004) never decides a verdict either way."""


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class DatasetKind:
    """What kind of answers a data set has and the metric that judges them."""

    name: str
    metric: str  # primary metric: the verdict uses this one only
    secondary: str | None  # shown beside the primary, never decides
    description: str


KINDS: Mapping[str, DatasetKind] = MappingProxyType({
    "multiple_choice": DatasetKind(
        "multiple_choice", "accuracy", None, "pick one of given options; right or wrong"),
    "exact": DatasetKind(
        "exact", "em", None, "one exact string to reproduce (kv retrieval, needle in a haystack)"),
    "free_text": DatasetKind(
        "free_text", "answer_recall", "f1", "short free-text answers a reader may phrase in a sentence"),
    "unanswerable": DatasetKind(
        "unanswerable", "abstention", None, "questions the corpus does not answer: right when the reader declines"),
})

# metric name -> LedgerRow field holding it. Multiple-choice accuracy is exact match
# of the chosen option, which the ledger stores as ``em``.
METRICS: Mapping[str, str] = MappingProxyType({
    "accuracy": "em",
    "em": "em",
    "answer_recall": "recall",
    "f1": "f1",
    "abstention": "abstained",
})

# data sets this project loads (``lcrag.pipeline.evaluation.DATASETS`` and their
# EvalSet names) -> kind. Other names take the kind their rows record (``dataset_kind``).
DATASET_KINDS: Mapping[str, str] = MappingProxyType({
    "kv": "exact",
    "niah": "exact",
    "niah-agg": "exact",
    "hotpotqa": "free_text",
    "hotpotqa-positions": "free_text",
    "hotpotqa-pooled": "free_text",
    "squad2": "free_text",
    "qa-jsonl": "free_text",
    "synthetic": "free_text",
})


def _kind(kind: str) -> DatasetKind:
    if kind not in KINDS:
        raise VerdictError(f"unknown data set kind {kind!r}; valid kinds: {', '.join(sorted(KINDS))}")
    return KINDS[kind]


def primary_metric(kind: str) -> str:
    """The metric that decides the verdict for a data set of this kind."""
    return _kind(kind).metric


def secondary_metric(kind: str) -> str | None:
    """The metric shown beside the primary one (``f1`` for free text), or None."""
    return _kind(kind).secondary


def dataset_kind(dataset: str | None, rows: Iterable[LedgerRow] = ()) -> str:
    """The kind of a data set: by name for the data sets this project loads, else from
    the ``answer_kind`` its rows record -- ``exact`` when every row says so, ``multiple_choice``
    when every row that records a kind says so (the data set's loader set it; rows recorded
    before the column were filled from their ids and gold answers, ``ledger.migrations``)
    -- else ``free_text`` (the safe default: answer recall is defined for any answer with a
    gold string)."""
    name = dataset or UNLABELLED
    if name.endswith(" · unanswerable"):
        return "unanswerable"
    if name.endswith(" · answerable"):
        name = name[: -len(" · answerable")]
    name = name.split(" · ")[0]  # a per-reader part ("tpo · <model>") is of its data set's kind
    if name in DATASET_KINDS:
        return DATASET_KINDS[name]
    kinds = [r.answer_kind for r in rows]
    if kinds and all(k == "exact" for k in kinds):
        return "exact"
    recorded = [k for k in kinds if k is not None]
    if recorded and all(k == "multiple_choice" for k in recorded):
        return "multiple_choice"
    return "free_text"


def metric_for(dataset: str | None, rows: Iterable[LedgerRow] = ()) -> str:
    """The primary metric of a data set (by name, else from its rows)."""
    return primary_metric(dataset_kind(dataset, rows))


def score_of(row: LedgerRow, metric: str) -> float | None:
    """The row's score on ``metric`` (None when the row was not scored on it)."""
    if metric not in METRICS:
        raise VerdictError(f"unknown metric {metric!r}; valid metrics: {', '.join(sorted(METRICS))}")
    value = getattr(row, METRICS[metric])
    if metric == "abstention" and row.answerable is not False:
        return None  # abstaining is right only where there is nothing to answer
    return None if value is None else float(value)


# ------------------------------------------------------------------ common questions

PairKey = tuple[str, str]  # (run_id, question_id): a question in one run, never matched across runs


@dataclass(frozen=True)
class CommonSet:
    """One data set's strategies on the questions all of them answered.

    ``strategies`` are compared; ``missing`` were asked for (or seen in other data
    sets) but answered nothing here, so they are left out rather than averaged in from
    elsewhere. ``scores[s][pair]`` is the primary metric, ``secondary[s][pair]`` the
    secondary one where scored, ``tokens[s][pair]`` the prompt tokens, all on the
    common pairs only. ``answered[s]`` counts the pairs strategy ``s`` answered before
    intersecting, and ``dropped`` the pairs some but not all compared strategies
    answered (left out of every mean here)."""

    dataset: str
    metric: str
    secondary_metric: str | None
    strategies: tuple[str, ...]
    missing: tuple[str, ...]
    scores: Mapping[str, Mapping[PairKey, float]]
    secondary: Mapping[str, Mapping[PairKey, float]]
    tokens: Mapping[str, Mapping[PairKey, int]]
    answered: Mapping[str, int]
    n_pairs: int
    dropped: int
    answers: Mapping[str, Mapping[PairKey, str]] = field(default_factory=lambda: MappingProxyType({}))  # the reply text, to find identical strategies
    clusters: Mapping[PairKey, str] = field(default_factory=lambda: MappingProxyType({}))  # the corpus (document) each question was asked over
    prefill: Mapping[str, Mapping[PairKey, int]] = field(default_factory=lambda: MappingProxyType({}))  # prompt tokens not served from the cache
    seconds: Mapping[str, Mapping[PairKey, float]] = field(default_factory=lambda: MappingProxyType({}))  # reading time

    def mean_cost(self, axis: str = "tokens") -> dict[str, float]:
        """Mean cost per compared strategy on ``axis`` (``COST_AXES``) over the common pairs."""
        if axis not in COST_AXES:
            raise VerdictError(f"unknown cost axis {axis!r}; valid axes: {', '.join(COST_AXES)}")
        source = {"tokens": self.tokens, "prefill": self.prefill, "seconds": self.seconds}[axis]
        out = {}
        for strategy in self.strategies:
            values = list(source.get(strategy, {}).values())
            out[strategy] = sum(values) / len(values) if values else 0.0
        return out

    def mean_score(self, strategy: str) -> float | None:
        values = list(self.scores[strategy].values())
        return sum(values) / len(values) if values else None

    def mean_prompt_tokens(self) -> dict[str, float]:
        """Mean prompt tokens per compared strategy over the common pairs (0 when none)."""
        out = {}
        for strategy in self.strategies:
            values = list(self.tokens[strategy].values())
            out[strategy] = sum(values) / len(values) if values else 0.0
        return out


def _frozen(nested: Mapping[str, Mapping]) -> Mapping[str, Mapping]:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in nested.items()})


def common_questions(
    rows: Iterable[LedgerRow],
    strategies: Sequence[str] | None = None,
    *,
    metrics: Mapping[str, str] | None = None,
) -> dict[str, CommonSet]:
    """Per data set (``None`` -> ``"unlabelled"``), the strategies' scores on the pairs
    all of them answered.

    A row *answered* its pair when ``error`` is None and it is scored on the data set's
    primary metric (``metrics[dataset]`` if given, else ``metric_for``). The strategies
    considered are ``strategies`` if given (rows of others are ignored), else every
    strategy in ``rows``; in each data set, those that answered nothing there are
    ``missing`` and the rest are compared on the intersection of their answered pairs.
    So a strategy that answered only a few of a data set's pairs shrinks the comparison
    to those few for everyone (see ``answered`` and ``dropped`` to spot it) instead of
    being compared on different questions. Two answered rows for one (run, question,
    strategy) are ambiguous and raise ``VerdictError``."""
    rows = list(rows)
    wanted = tuple(dict.fromkeys(strategies)) if strategies is not None else tuple(sorted({r.strategy for r in rows}))
    by_dataset: dict[str, list] = {}
    for row in rows:
        if row.strategy in wanted:
            by_dataset.setdefault(row.dataset or UNLABELLED, []).append(row)
    out: dict[str, CommonSet] = {}
    for dataset in sorted(by_dataset):
        group = by_dataset[dataset]
        metric = (metrics or {}).get(dataset) or metric_for(dataset, group)
        if metric not in METRICS:
            raise VerdictError(f"unknown metric {metric!r} for {dataset!r}; valid metrics: {', '.join(sorted(METRICS))}")
        kind = dataset_kind(dataset, group)
        second = secondary_metric(kind) if metric == primary_metric(kind) else None
        answered: dict[str, dict[PairKey, LedgerRow]] = {}
        for row in group:
            if row.error is not None or score_of(row, metric) is None:
                continue
            key = (row.run_id, row.question_id)
            per = answered.setdefault(row.strategy, {})
            if key in per:
                raise VerdictError(
                    f"{dataset}: strategy {row.strategy!r} answered run {key[0]!r} question {key[1]!r} twice "
                    f"(rows {per[key].row_id} and {row.row_id}); keep one row per pair")
            per[key] = row
        compared = tuple(s for s in sorted(wanted) if s in answered)
        missing = tuple(s for s in sorted(wanted) if s not in answered)
        union: set[PairKey] = set().union(*(answered[s] for s in compared)) if compared else set()
        common = set.intersection(*(set(answered[s]) for s in compared)) if compared else set()
        keys = sorted(common)
        scores = {s: {k: score_of(answered[s][k], metric) for k in keys} for s in compared}
        secondary = {
            s: {k: v for k in keys if (v := score_of(answered[s][k], second)) is not None} if second else {}
            for s in compared
        }
        tokens = {s: {k: answered[s][k].prompt_tokens for k in keys} for s in compared}
        prefill = {s: {k: answered[s][k].prefill_tokens for k in keys} for s in compared}
        seconds = {s: {k: answered[s][k].reading_ms / 1000.0 for k in keys} for s in compared}
        answers = {s: {k: answered[s][k].answer for k in keys} for s in compared}
        clusters = {k: answered[compared[0]][k].index_id for k in keys} if compared else {}
        out[dataset] = CommonSet(
            dataset=dataset,
            metric=metric,
            secondary_metric=second,
            strategies=compared,
            missing=missing,
            scores=_frozen(scores),
            secondary=_frozen(secondary),
            tokens=_frozen(tokens),
            answered=MappingProxyType({s: len(answered[s]) for s in compared}),
            n_pairs=len(keys),
            dropped=len(union) - len(keys),
            answers=_frozen(answers),
            clusters=MappingProxyType(clusters),
            prefill=_frozen(prefill),
            seconds=_frozen(seconds),
        )
    return out


# --------------------------------------------------------------------- settings


@dataclass(frozen=True)
class VerdictSettings:
    """How the verdict decides; every field is a command-line option of ``lcrag report``.

    ``reference`` is named before looking at the data (lc: what reading everything
    gives) and anchors the margin; ``margin`` is the absolute margin and the cap on one
    derived from a control; ``alpha`` the one-sided error rate of a recommendation (per
    look when sequential); ``cost`` the axis that says which strategy is costlier."""

    reference: str = "lc"
    margin: float = NON_INFERIORITY_MARGIN
    margin_fraction: float = MARGIN_FRACTION
    alpha: float = ALPHA
    resamples: int = RESAMPLES
    seed: int = 0
    cost: str = "tokens"

    def __post_init__(self) -> None:
        if not isinstance(self.reference, str) or not self.reference.strip():
            raise VerdictError(f"reference must name a strategy, got {self.reference!r}")
        for name, low, high in (("margin", 0.0, 1.0), ("margin_fraction", 0.0, 1.0), ("alpha", 0.0, 0.5)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
                raise VerdictError(f"{name} must be a number strictly between {low} and {high}, got {value!r}")
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int) or self.resamples < 10_000:
            raise VerdictError(f"resamples must be an integer of at least 10,000, got {self.resamples!r}")
        if self.cost not in COST_AXES:
            raise VerdictError(f"unknown cost axis {self.cost!r}; valid axes: {', '.join(COST_AXES)}")


# ----------------------------------------------------------------------- margin


@dataclass(frozen=True)
class Margin:
    """The non-inferiority margin and where it comes from. ``basis`` is ``control``
    (a share of the reference's shown lead over the no-context control), ``letter-bias``
    (over the chance baseline of a reader with the reference's letter bias) or
    ``absolute``; ``lead_low`` is the lower bound of that lead, ``relative`` the margin
    as a share of it."""

    absolute: float
    basis: str = "absolute"
    control: str | None = None
    lead_low: float | None = None
    relative: float | None = None
    reference_above_control: bool | None = None
    note: str = ""

    def as_dict(self) -> dict:
        return {"absolute": self.absolute, "relative": self.relative, "basis": self.basis, "control": self.control,
                "lead_low": self.lead_low, "reference_above_control": self.reference_above_control, "note": self.note}


def margin_for(lead_low: float | None, settings: VerdictSettings = VerdictSettings(), *, basis: str = "control",
               control: str | None = None) -> Margin:
    """The margin from the lower bound of the reference's lead over a control (pure).

    Lead shown (> 0): ``margin_fraction`` of it, capped at the absolute margin. Lead not
    shown, or no control: the absolute margin, with a note that says what it means."""
    ref, cap = settings.reference, settings.margin
    if lead_low is None:
        return Margin(cap, note=f"no no-context control in this run: the absolute margin {cap:.2f} "
                                "(add closed-book to tie it to the reference's effect)")
    what = "chance with its letter bias" if basis == "letter-bias" else control or "the control"
    if lead_low <= 0:
        return Margin(cap, basis="absolute", control=control, lead_low=lead_low, reference_above_control=False,
                      note=f"{ref} is not shown above {what} (lead's lower bound {_signed(lead_low)}): the margin "
                           f"falls back to the absolute {cap:.2f}, and a strategy 'as good as' {ref} may be no better "
                           "than it")
    share = settings.margin_fraction * lead_low
    value = min(cap, share)
    capped = "" if share <= cap else f", capped at {cap:.2f}"
    return Margin(value, basis=basis, control=control, lead_low=lead_low, relative=value / lead_low,
                  reference_above_control=True,
                  note=f"{settings.margin_fraction:.0%} of {ref}'s shown lead over {what} ({_signed(lead_low)}){capped}")


def _as_margin(margin: Margin | float) -> Margin:
    if isinstance(margin, Margin):
        value = margin.absolute
    else:
        value, margin = margin, None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise VerdictError(f"margin must be a number in [0, 1), got {value!r}")
    return margin or Margin(float(value), note=f"the absolute margin {float(value):.2f}")


# -------------------------------------------------------------------- contenders


@dataclass(frozen=True)
class Contender:
    """Strategies whose answers are identical on every common question, compared as
    one. ``cheapest`` are the members at the group's lowest cost (ties within
    ``COST_TIE`` kept together); ``cost`` is that cost."""

    name: str
    members: tuple[str, ...]
    cheapest: tuple[str, ...]
    mean: float
    cost: float


def cost_tied(a: float, b: float) -> bool:
    """Two costs within ``COST_TIE`` (relative) of each other."""
    return abs(a - b) <= COST_TIE * max(abs(a), abs(b))


def costlier(a: Contender, b: Contender) -> bool:
    """Whether ``a`` costs more than ``b`` beyond the tie tolerance."""
    return a.cost > b.cost and not cost_tied(a.cost, b.cost)


def contenders_of(
    scores: Mapping[str, Mapping[Hashable, float]],
    costs: Mapping[str, float],
    answers: Mapping[str, Mapping[Hashable, str]] | None = None,
) -> tuple[Contender, ...]:
    """Strategies grouped by identical answers (with ``answers``; else one each),
    cheapest first. Display order only: names never decide anything below."""
    keys = sorted(next(iter(scores.values()))) if scores else []
    groups: dict[object, list[str]] = {}
    for name in sorted(scores):
        # the reply and its score: the same text scored differently is not the same answer
        signature = (tuple((answers[name][k], float(scores[name][k])) for k in keys)
                     if answers and name in answers else ("", name))
        groups.setdefault(signature, []).append(name)
    out = []
    for members in groups.values():
        low = min(float(costs[m]) for m in members)
        cheapest = tuple(m for m in members if cost_tied(float(costs[m]), low))
        ordered = tuple(sorted(members, key=lambda m: (float(costs[m]), m)))
        out.append(Contender(" = ".join(ordered), ordered, cheapest, _mean(scores[members[0]].values()), low))
    return tuple(sorted(out, key=lambda c: (c.cost, c.name)))


def tied_means(contenders: Sequence[Contender], n: int) -> tuple[tuple[str, ...], ...]:
    """Contenders whose means lie within one question (1/n) of their neighbour's:
    the data cannot order them, so they are reported together."""
    if n < 1:
        return ()
    ordered = sorted(contenders, key=lambda c: -c.mean)
    groups: list[list[str]] = []
    for i, c in enumerate(ordered):
        if i and ordered[i - 1].mean - c.mean < 1.0 / n - 1e-12:
            groups[-1].append(c.name)
        else:
            groups.append([c.name])
    return tuple(tuple(sorted(g)) for g in groups if len(g) > 1)


# ---------------------------------------------------------------------- the rule

NON_INFERIOR = "non_inferior"  # shown no worse than the other by the margin or more
INFERIOR = "inferior"  # shown worse than the other by more than the margin
UNDETERMINED = "undetermined"  # neither


@dataclass(frozen=True)
class Comparison:
    """A cheaper contender against a costlier one: the paired test of (candidate -
    costlier) at the Bonferroni level, its outcome, and whether one question's answer
    could move the bound across the margin (``fragile``)."""

    candidate: str
    against: str
    test: NonInferiority
    outcome: str
    cost_ratio: float | None  # candidate's cost / the costlier one's
    fragile: bool
    questions_needed: int | None = None  # undetermined and passable: paired questions that would settle it


RESOLVED = "resolved"
UNRESOLVED = "unresolved"
NOTHING_TO_COMPARE = "nothing_to_compare"
NO_COMMON_QUESTIONS = "no_common_questions"


@dataclass(frozen=True)
class Verdict:
    """What to use on one data set, and how sure that is.

    ``status``: ``resolved`` (``use`` lists every recommended strategy; ``basis`` says
    why: ``non-inferior`` to every costlier contender, or ``costlier-better``: every
    cheaper one is shown worse), ``unresolved`` (``use`` is empty; ``questions_needed``
    says what would tell, ``focus`` is the closest comparison), ``nothing_to_compare``
    or ``no_common_questions``."""

    status: str
    resolved: bool
    metric: str
    margin: Margin
    reference: str
    cost_axis: str
    alpha: float
    n_questions: int
    use: tuple[str, ...] = ()
    basis: str = ""
    alpha_each: float | None = None
    candidates: int = 0
    contenders: tuple[Contender, ...] = ()
    comparisons: tuple[Comparison, ...] = ()
    global_test: GlobalTest | None = None
    questions_needed: int | None = None
    means: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    costs: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    tied: tuple[tuple[str, ...], ...] = ()
    focus: Comparison | None = None
    reason: str = ""
    clusters: int | None = None
    few_clusters: bool = False
    dataset: str | None = None
    missing: tuple[str, ...] = ()
    dropped: int = 0

    @property
    def identical(self) -> tuple[tuple[str, ...], ...]:
        return tuple(c.members for c in self.contenders if len(c.members) > 1)

    @property
    def test_name(self) -> str:
        return (f"intersection-union non-inferiority: each cheaper contender against every costlier one, one-sided "
                f"at {self.alpha:.1%}/{max(1, self.candidates)} (Bonferroni over {self.candidates} candidate(s)); "
                "Tango's score test for paired 0/1 outcomes, a (cluster) bootstrap otherwise; "
                "Cochran's Q (0/1) or Friedman as the global test before calling a costlier strategy better")

    def describe(self) -> str:
        """One plain sentence for the report."""
        n = self.n_questions
        if self.status in (NOTHING_TO_COMPARE, NO_COMMON_QUESTIONS):
            absent = f" ({', '.join(self.missing)} answered none here)" if self.missing else ""
            return f"nothing to compare: {self.reason}{absent}"
        margin = _margin_words(self.margin)
        notes = _notes(self)
        if self.status == RESOLVED and self.basis == "non-inferior":
            c = self.focus
            against = sorted({x.against for x in self.comparisons if x.candidate in _names_of(self, self.use)})
            tight = (f"; tightest {c.candidate} − {c.against} {_signed(c.test.mean_diff)} {_ci(c.test)}"
                     if c is not None else "")
            return (f"use {_or(self.use)}: shown non-inferior to every costlier strategy ({', '.join(against)}) on "
                    f"{_questions(n)}, {margin}{tight}{_cost_words(self)}{notes}")
        if self.status == RESOLVED:
            return (f"use {_or(self.use)}: every cheaper strategy is shown worse than a costlier one by more than the "
                    f"{margin} ({_global(self.global_test)}, {_questions(n)}){notes}")
        c = self.focus
        head = f"unresolved on {_questions(n)}: no cheaper strategy is shown non-inferior to every costlier one"
        if c is not None:
            head += f" (closest: {c.candidate} − {c.against} {_signed(c.test.mean_diff)} {_ci(c.test)}, {margin})"
        if self.global_test is not None and self.global_test.p_value >= 2 * self.alpha:
            head += f", and no difference among them is found ({_global(self.global_test)})"
        if self.questions_needed is not None and self.questions_needed > PRACTICAL_QUESTIONS:
            return (f"{head}; over {PRACTICAL_QUESTIONS:,} questions would be needed: in practice these cannot be "
                    f"told apart{notes}")
        if self.questions_needed is not None:
            return f"{head}; about {self.questions_needed:,} questions would tell{notes}"
        return f"{head}; {self.reason}{notes}"


def _names_of(verdict: Verdict, strategies: Sequence[str]) -> set[str]:
    wanted = set(strategies)
    return {c.name for c in verdict.contenders if wanted & set(c.members)}


def _or(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" or {names[-1]} (tied)"


def _margin_words(margin: Margin) -> str:
    if margin.relative is not None:
        return f"margin {margin.absolute:.3f} ({margin.relative:.0%} of {margin.lead_low:.3f} lead)"
    return f"margin {margin.absolute:.2f} (absolute)"


def _cost_words(verdict: Verdict) -> str:
    ref = verdict.reference
    if ref not in verdict.costs or not verdict.costs[ref] or not verdict.use:
        return ""
    ratio = verdict.costs[verdict.use[0]] / verdict.costs[ref]
    unit = {"tokens": "prompt tokens", "prefill": "prefill tokens", "seconds": "reading time"}[verdict.cost_axis]
    return f"; at {ratio:.2f}× {ref}'s {unit}" if verdict.use[0] != ref else ""


def _global(test: GlobalTest | None) -> str:
    if test is None:
        return "no global test"
    name = "Cochran's Q" if test.name == "cochran-q" else "Friedman"
    return f"{name} p={test.p_value:.2g}"


def _notes(verdict: Verdict) -> str:
    out = []
    same = [" = ".join(g) for g in verdict.identical]
    if same:
        out.append("identical answers: " + "; ".join(same))
    if verdict.tied:
        out.append("means within one question: " + "; ".join(", ".join(g) for g in verdict.tied))
    if verdict.few_clusters:
        out.append(f"only {verdict.clusters} documents to resample: intervals may be too narrow")
    if any(c.fragile for c in verdict.comparisons if c is verdict.focus):
        out.append("a bound sits within one question of the margin")
    if verdict.margin.reference_above_control is False:
        out.append(verdict.margin.note)
    return "".join(f" [{note}]" for note in out)


def _signed(x: float) -> str:
    text = f"{x:+.2f}"
    if text in ("-0.00", "+0.00"):
        return "0.00"
    return text.replace("-", "\u2212")


def _ci(d) -> str:
    return f"[{_signed(d.low)}, {_signed(d.high)}]"


def _questions(n: int) -> str:
    return f"{n} question" + ("" if n == 1 else "s")


def _mean(values: Iterable[float]) -> float:
    items = [float(v) for v in values]
    return sum(items) / len(items)


def questions_needed(
    differences: Sequence[float], margin: float = NON_INFERIORITY_MARGIN, alpha: float = ALPHA
) -> tuple[int | None, float | None, str]:
    """Paired questions a one-sided non-inferiority test at ``alpha`` would need for
    power 0.8, by the normal approximation n = ((z_{1-alpha} + Z_BETA) * sd / (margin
    + mean))^2 with the observed mean and standard deviation of the differences
    (candidate - costlier). The variance has a floor of margin * (1 - margin), what the
    score test assumes at the margin when the two barely disagree, so a handful of tied
    questions never claims that a few more would do. Returns (n or None, sd, reason):
    None when the differences trail by at least the margin (no size would show
    non-inferiority) or there is no question to go on."""
    data = np.asarray(differences, dtype=float)
    if data.size < 1:
        return None, None, "no paired question to size a study from"
    mean = float(data.mean())
    sd = float(data.std(ddof=1)) if data.size > 1 else 0.0
    gap = margin + mean
    if gap <= BOUNDARY_TOLERANCE:
        return None, sd, (f"cannot tell at any size: the cheaper strategy trails by {abs(mean):.2f}, "
                          f"at least the {margin:.2f} margin")
    variance = max(sd * sd, margin * (1.0 - margin), 1e-6)
    z = float(norm.isf(alpha))
    return math.ceil((z + Z_BETA) ** 2 * variance / gap ** 2 - 1e-9), sd, ""


def outcome_of(diff: PairedDifference, margin: float = NON_INFERIORITY_MARGIN) -> str:
    """The rule on one paired interval (a - reference), for the router and self-route's
    calibration: NON_INFERIOR when its lower bound is strictly above ``-margin``,
    INFERIOR when its upper bound is strictly below it, else UNDETERMINED."""
    if diff.low > -margin + BOUNDARY_TOLERANCE:
        return NON_INFERIOR
    if diff.high < -margin - BOUNDARY_TOLERANCE:
        return INFERIOR
    return UNDETERMINED


def _outcome(test: NonInferiority, alpha: float) -> str:
    if test.p_non_inferior < alpha:
        return NON_INFERIOR
    if test.p_inferior < alpha:
        return INFERIOR
    return UNDETERMINED


def decide(
    scores: Mapping[str, Mapping[Hashable, float]],
    costs: Mapping[str, float],
    *,
    margin: Margin | float = NON_INFERIORITY_MARGIN,
    settings: VerdictSettings = VerdictSettings(),
    metric: str = "score",
    answers: Mapping[str, Mapping[Hashable, str]] | None = None,
    clusters: Mapping[Hashable, Hashable] | None = None,
    dataset: str | None = None,
) -> Verdict:
    """The verdict from per-strategy scores on common questions (every strategy scores
    the same keys; see ``common_questions``) and mean costs. The rule is the module
    docstring's; ``answers`` merge identical strategies, ``clusters`` (question ->
    document) switch the resampling to whole documents when questions share one."""
    margin = _as_margin(margin)
    names = sorted(scores)
    absent = [s for s in names if s not in costs]
    if absent:
        raise VerdictError(f"no cost given for {', '.join(absent)}")
    base: dict[str, Any] = {"metric": metric, "margin": margin, "reference": settings.reference, "cost_axis": settings.cost,
            "alpha": settings.alpha, "dataset": dataset,
            "costs": MappingProxyType({s: float(costs[s]) for s in names})}
    if not names:
        return Verdict(status=NOTHING_TO_COMPARE, resolved=False, n_questions=0,
                       reason="no strategy answered questions here", **base)
    keys = sorted(scores[names[0]])
    for s in names[1:]:
        if set(scores[s]) != set(keys):
            raise VerdictError(f"{s!r} and {names[0]!r} score different questions; decide() takes common questions "
                               "only (see common_questions)")
    if not keys:
        return Verdict(status=NO_COMMON_QUESTIONS, resolved=False, n_questions=0,
                       reason=f"no question was answered by all of {', '.join(names)}", **base)
    n = len(keys)
    means = {s: _mean(scores[s].values()) for s in names}
    groups = contenders_of(scores, costs, answers)
    base |= {"means": MappingProxyType(means), "contenders": groups, "tied": tied_means(groups, n), "n_questions": n}
    if len(groups) < 2:
        cheapest = ", ".join(groups[0].cheapest)
        why = (f"only {names[0]} answered questions here" if len(names) == 1
               else f"{', '.join(names)} gave identical answers on every question: nothing but cost tells them apart "
                    f"here ({cheapest} cheapest), and {_questions(n)} do not show they always will")
        return Verdict(status=NOTHING_TO_COMPARE, resolved=False, reason=why, **base)
    by_name = {c.name: c for c in groups}
    columns = {c.name: [float(scores[c.members[0]][k]) for k in keys] for c in groups}
    per_key = [clusters[k] for k in keys] if clusters else None
    overall = global_test([[columns[c.name][i] for c in groups] for i in range(n)])
    candidates = [c for c in groups if any(costlier(o, c) for o in groups)]
    alpha_each = bonferroni_alpha(settings.alpha, len(candidates))
    comparisons: list[Comparison] = []
    for cand in candidates:
        for other in groups:
            if not costlier(other, cand):
                continue
            test = paired_non_inferiority(columns[cand.name], columns[other.name], margin=margin.absolute,
                                          alpha=alpha_each, clusters=per_key,
                                          resamples=settings.resamples, seed=settings.seed)
            outcome = _outcome(test, alpha_each)
            needed = None
            if outcome == UNDETERMINED:
                diffs = [a - b for a, b in zip(columns[cand.name], columns[other.name])]
                needed = questions_needed(diffs, margin.absolute, alpha_each)[0]
            comparisons.append(Comparison(cand.name, other.name, test, outcome,
                                          cand.cost / other.cost if other.cost else None,
                                          within_one_question(test.low, margin.absolute, n), needed))
    n_clusters = comparisons[0].test.clusters if comparisons else None  # None: questions resampled singly
    base |= {"alpha_each": alpha_each, "candidates": len(candidates), "comparisons": tuple(comparisons),
             "global_test": overall, "clusters": n_clusters, "few_clusters": too_few_clusters(n_clusters)}
    against = {c.name: [x for x in comparisons if x.candidate == c.name] for c in candidates}
    passed = [c for c in candidates if all(x.outcome == NON_INFERIOR for x in against[c.name])]
    if passed:
        low = min(c.cost for c in passed)
        chosen = [c for c in passed if cost_tied(c.cost, low)]
        use = tuple(sorted({m for c in chosen for m in c.cheapest}))
        focus = min((x for c in chosen for x in against[c.name]), key=lambda x: (x.test.low, x.against))
        return Verdict(status=RESOLVED, resolved=True, basis="non-inferior", use=use, focus=focus,
                       reason="the cheapest strategies shown non-inferior to every costlier one", **base)
    top = [c for c in groups if c not in candidates]
    beaten = all(any(x.outcome == INFERIOR for x in against[c.name]) for c in candidates)
    if beaten and overall.p_value < 2 * settings.alpha:
        use = tuple(sorted({m for c in top for m in c.cheapest}))
        return Verdict(status=RESOLVED, resolved=True, basis="costlier-better", use=use,
                       reason="every cheaper strategy is shown worse than a costlier one", **base)
    sizes = {c.name: _needed_for(against[c.name]) for c in candidates}
    closest = [c for c in candidates if sizes[c.name] is not None]
    if closest:
        best = min(closest, key=lambda c: (sizes[c.name], c.cost))
        focus = min(against[best.name], key=lambda x: (x.test.low, x.against))
        return Verdict(status=UNRESOLVED, resolved=False, questions_needed=sizes[best.name], focus=focus,
                       reason="the intervals contain the margin", **base)
    blockers = [min(against[c.name], key=lambda x: (x.test.mean_diff, x.against)) for c in candidates if against[c.name]]
    focus = max(blockers, key=lambda x: (x.test.mean_diff, -by_name[x.candidate].cost)) if blockers else None
    return Verdict(status=UNRESOLVED, resolved=False, focus=focus,
                   reason="at the differences seen, no number of questions would show a cheaper strategy non-inferior "
                          "(each trails a costlier one by the margin or more), and no costlier one is shown better", **base)


def _needed_for(comparisons: Sequence[Comparison]) -> int | None:
    """Questions that would settle every comparison of one candidate (the largest of
    them), or None when one of them cannot be settled in its favour."""
    sizes = []
    for c in comparisons:
        if c.outcome == NON_INFERIOR:
            continue
        if c.outcome == INFERIOR or c.questions_needed is None:
            return None
        sizes.append(c.questions_needed)
    return max(sizes) if sizes else None


# ------------------------------------------------------------------- from rows

ANSWERABLE = "answerable"
UNANSWERABLE = "unanswerable"


def part_name(dataset: str, answerable: bool) -> str:
    return f"{dataset} · {ANSWERABLE if answerable else UNANSWERABLE}"


def split_answerability(rows: Iterable[LedgerRow]) -> list[LedgerRow]:
    """Rows of a data set that mixes answerable and unanswerable questions (SQuAD 2.0,
    qa-jsonl ``answerable: false``) relabelled into its two parts: one number over both
    hides a reader that never declines behind one that answers well. Other rows as given."""
    rows = list(rows)
    mixed = {ds for ds in {r.dataset for r in rows}
             if {r.answerable for r in rows if r.dataset == ds} >= {True, False}}
    return [replace(r, dataset=part_name(r.dataset, r.answerable is not False)) if r.dataset in mixed else r
            for r in rows]


def split_readers(rows: Iterable[LedgerRow]) -> list[LedgerRow]:
    """Rows of a data set answered by more than one reader relabelled per reader
    ("tpo · qwen2.5-coder-1.5b-instruct"): verdicts of different readers are never
    pooled, and the report shows them side by side. Other rows as given."""
    rows = list(rows)
    models: dict[str | None, set[str]] = {}
    for r in rows:
        models.setdefault(r.dataset, set()).add(r.model)
    return [replace(r, dataset=f"{r.dataset or UNLABELLED} · {r.model}") if len(models[r.dataset]) > 1 else r
            for r in rows]


def control_lead(reference: Sequence[float], control: Sequence[float], settings: VerdictSettings,
                 clusters: Sequence[Hashable] | None = None) -> float:
    """Lower bound (one-sided ``alpha``) of the reference's paired lead over a control."""
    return paired_non_inferiority(list(reference), list(control), margin=0.0, alpha=settings.alpha, clusters=clusters,
                                  resamples=settings.resamples, seed=settings.seed).low


def margins_for(rows: Sequence[LedgerRow], commons: Mapping[str, CommonSet],
                settings: VerdictSettings = VerdictSettings(), profiles: Mapping[str, Mapping] | None = None
                ) -> dict[str, Margin]:
    """Each data set's margin from its own rows: multiple choice against the reference's
    letter-bias chance baseline, other kinds against the closed-book control where it
    answered the reference's questions, else the absolute margin. ``profiles`` (data set
    -> strategy -> ``LetterProfile``) spares computing the letter profiles again."""
    from lcrag.pipeline.statistics.letter_bias import letter_profiles

    by_dataset: dict[str, list[LedgerRow]] = {}
    for row in rows:
        by_dataset.setdefault(row.dataset or UNLABELLED, []).append(row)
    out = {}
    ref = settings.reference
    for name, common in commons.items():
        group = by_dataset.get(name, [])
        if ref not in common.strategies:
            out[name] = replace(margin_for(None, settings), note=f"{ref} did not answer here: the absolute margin "
                                                                 f"{settings.margin:.2f}")
            continue
        if common.metric == "accuracy" and dataset_kind(name, group) == "multiple_choice":
            profile = (profiles[name] if profiles and name in profiles else letter_profiles(group)).get(ref)
            out[name] = margin_for(profile.lead_low if profile else None, settings, basis="letter-bias",
                                   control="chance (letter bias)")
            continue
        control = {(r.run_id, r.question_id): score_of(r, common.metric) for r in group
                   if r.strategy == CONTROL and r.error is None and score_of(r, common.metric) is not None}
        keys = [k for k in sorted(common.scores[ref]) if k in control]
        if not keys:
            out[name] = margin_for(None, settings)
            continue
        lead = control_lead([common.scores[ref][k] for k in keys], [control[k] for k in keys], settings,
                            [common.clusters.get(k, "") for k in keys])
        out[name] = margin_for(lead, settings, basis="control", control=CONTROL)
    return out


def verdict_of(common: CommonSet, *, settings: VerdictSettings = VerdictSettings(),
               margin: Margin | float | None = None) -> Verdict:
    """``decide`` on one data set's common questions, with its primary metric, costs on
    the settings' axis, answers (identical strategies merge) and documents (clusters)."""
    verdict = decide(common.scores, common.mean_cost(settings.cost),
                     margin=settings.margin if margin is None else margin, settings=settings,
                     metric=common.metric, answers=common.answers or None, clusters=common.clusters or None,
                     dataset=common.dataset)
    return replace(verdict, missing=common.missing, dropped=common.dropped)


def verdicts(
    rows: Iterable[LedgerRow],
    strategies: Sequence[str] | None = None,
    *,
    settings: VerdictSettings = VerdictSettings(),
    metrics: Mapping[str, str] | None = None,
) -> dict[str, Verdict]:
    """One verdict per data set from ledger rows: answerable and unanswerable parts
    apart, controls (closed-book, oracle) out of the contest and into the margin,
    ``common_questions`` then ``decide``."""
    rows = split_answerability(split_readers(rows))
    compared = [r for r in rows if r.strategy not in CONTROLS]
    commons = common_questions(compared, strategies, metrics=metrics)
    margins = margins_for(rows, commons, settings)
    return {name: verdict_of(common, settings=settings, margin=margins[name]) for name, common in commons.items()}
