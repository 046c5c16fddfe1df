"""The verdict: which strategy to use on a data set, as pure functions of ledger rows.

Three steps, each usable alone:

1. **Primary metric** (``dataset_kind``, ``primary_metric``, ``score_of``). Every data
   set is judged on one metric fixed by its kind, never picked after looking at the
   numbers: ``accuracy`` for multiple choice, ``em`` where the answer is an exact
   string (kv retrieval, needle in a haystack), ``answer_recall`` for free text with
   ``f1`` beside it (small readers answer in sentences, which EM calls wrong).
2. **Common questions** (``common_questions``). Per data set, strategies are compared
   only on the (run_id, question_id) pairs that *every* compared strategy answered,
   so no strategy's mean borrows easy or hard questions the others did not face, and
   a strategy run on one data set is never ranked against means pooled elsewhere.
3. **The rule** (``decide``). Take the best strategy (highest mean primary metric on
   the common questions); then use the *cheapest* strategy (fewest mean prompt
   tokens) that is shown non-inferior to it: the 95% paired-bootstrap interval of
   (strategy - best) has its lower bound above ``-margin``. If no cheaper strategy is
   shown non-inferior and not all of them are shown worse than the margin, the
   verdict is unresolved and says how many questions would settle it.

Everything here takes plain mappings or rows and returns frozen dataclasses; the
bootstrap is seeded, so the same rows always give the same verdict and sentence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from lcrag.core.errors import LcragError
from lcrag.pipeline.evaluation.stats import PairedDifference, paired_difference

if TYPE_CHECKING:
    from lcrag.pipeline.ledger import LedgerRow


class VerdictError(LcragError, ValueError):
    """Inputs the verdict cannot be computed from; the message names what is wrong."""


UNLABELLED = "unlabelled"  # data set name for rows whose dataset is None (as in the report)

NON_INFERIORITY_MARGIN = 0.05
"""How much worse (absolute, on a 0-1 metric) a cheaper strategy may be and still be
called "as good as" the best: 0.05 is one question in twenty. It is the usual
non-inferiority choice in QA comparisons (a few points of accuracy), small enough
that a real loss is not waved through, and large enough that the answer-to-answer
noise of a small reader does not make every comparison inconclusive."""

LEVEL = 0.95  # confidence level of every paired interval here; Z_ALPHA below matches it
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
})

# metric name -> LedgerRow field holding it. Multiple-choice accuracy is exact match
# of the chosen option, which the ledger stores as ``em``.
METRICS: Mapping[str, str] = MappingProxyType({
    "accuracy": "em",
    "em": "em",
    "answer_recall": "recall",
    "f1": "f1",
})

# data sets this project loads (``lcrag.pipeline.evaluation.DATASETS`` and their
# EvalSet names) -> kind. Other names are inferred from their rows (``dataset_kind``).
DATASET_KINDS: Mapping[str, str] = MappingProxyType({
    "kv": "exact",
    "niah": "exact",
    "hotpotqa": "free_text",
    "hotpotqa-positions": "free_text",
    "hotpotqa-pooled": "free_text",
    "squad2": "free_text",
    "qa-jsonl": "free_text",
    "synthetic": "free_text",
})

_EXACT_ID = re.compile(r"^(kv\d+@pos\d+|niah\d*@d\d+@L\d+)$")  # ids the kv and niah loaders write
_CHOICE = re.compile(r"^\(?[A-J]\)?$")  # a gold answer that is an option letter


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
    its rows -- question ids all written by the kv / niah loaders mean ``exact``, gold
    answers all option letters (A-J) mean ``multiple_choice`` -- else ``free_text``
    (the safe default: answer recall is defined for any answer with a gold string)."""
    name = dataset or UNLABELLED
    if name in DATASET_KINDS:
        return DATASET_KINDS[name]
    rows = list(rows)
    if rows and all(_EXACT_ID.match(r.question_id) for r in rows):
        return "exact"
    golds = [g for r in rows for g in (r.gold_answers or ())]
    if golds and all(_CHOICE.match(g.strip()) for g in golds):
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
        )
    return out


# ---------------------------------------------------------------------- the rule

NON_INFERIOR = "non_inferior"  # lower bound of (cheaper - best) above -margin
INFERIOR = "inferior"  # upper bound of (cheaper - best) below -margin: worse by more than the margin
UNDETERMINED = "undetermined"  # the interval contains -margin


@dataclass(frozen=True)
class Comparison:
    """One strategy cheaper than the best, against it: the paired difference
    (strategy - best) on the common questions and what it shows. ``questions_needed``
    (total paired questions, not additional) is set for undetermined comparisons the
    observed variance says a larger sample would settle; otherwise ``reason`` says why not."""

    strategy: str
    prompt_tokens: float
    token_ratio: float | None  # strategy's mean prompt tokens / best's
    difference: PairedDifference
    sd: float | None  # standard deviation (n - 1) of the paired differences; None for one pair
    outcome: str  # NON_INFERIOR, INFERIOR or UNDETERMINED
    questions_needed: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """What to use on one data set, and how sure that is.

    ``status`` is one of ``use_cheaper`` (a cheaper strategy is non-inferior to the
    best: ``chosen`` != ``best``), ``use_best`` (every cheaper strategy is worse than
    the best by more than the margin), ``best_is_cheapest`` (no strategy spends fewer
    prompt tokens than the best), ``unresolved`` (``chosen`` is None; ``challenger``
    is the cheaper strategy the sentence is about), ``nothing_to_compare`` (fewer
    than two strategies) or ``no_common_questions``. ``difference`` is (chosen or
    challenger) - best with its 95% interval, ``token_ratio`` their prompt tokens
    over the best's. ``comparisons`` holds every cheaper strategy against the best (for
    ``best_is_cheapest``: the runner-up against it)."""

    status: str
    resolved: bool
    metric: str
    margin: float
    best: str | None
    chosen: str | None
    challenger: str | None
    difference: PairedDifference | None
    token_ratio: float | None
    questions_needed: int | None
    n_questions: int
    means: Mapping[str, float]
    prompt_tokens: Mapping[str, float]
    comparisons: tuple[Comparison, ...]
    reason: str
    dataset: str | None = None
    missing: tuple[str, ...] = ()  # strategies that answered nothing in this data set (set by ``verdicts``)
    dropped: int = 0  # pairs answered by some but not all compared strategies (set by ``verdicts``)

    def describe(self) -> str:
        """One plain sentence for the report."""
        if self.status in ("nothing_to_compare", "no_common_questions"):
            absent = f" ({', '.join(self.missing)} answered none here)" if self.missing else ""
            return f"nothing to compare: {self.reason}{absent}"
        best, n = self.best, self.n_questions
        if self.status == "best_is_cheapest":
            runner = "".join(f"; next {c.strategy} {_signed(c.difference.mean_diff)} {_ci(c.difference)}"
                             for c in self.comparisons)
            return (f"use {best}: highest {self.metric} ({self.means[best]:.2f}) and fewest prompt tokens "
                    f"({_questions(n)}{runner})")
        if self.status == "use_best":
            parts = ", ".join(f"{c.strategy} {_signed(c.difference.mean_diff)} {_ci(c.difference)}"
                              for c in self.comparisons)
            return (f"use {best}: every cheaper strategy trails it on {self.metric} by more than the "
                    f"{self.margin:.2f} margin ({parts}, {_questions(n)})")
        d = self.difference
        if self.status == "use_cheaper":
            return (f"use {self.chosen}: non-inferior to {best} on {self.metric} (difference "
                    f"{_signed(d.mean_diff)}, 95% CI {_ci(d)}, {_questions(d.n_pairs)}, margin {self.margin:.2f}) "
                    f"at {_ratio(self.token_ratio)} {best}'s prompt tokens")
        head = (f"unresolved: {self.challenger} vs {best} differ on {self.metric} by {_signed(d.mean_diff)} "
                f"{_ci(d)} over {_questions(d.n_pairs)}")
        if self.questions_needed is not None and self.questions_needed > PRACTICAL_QUESTIONS:
            return (f"{head}; over {PRACTICAL_QUESTIONS:,} questions would be needed (the difference sits near the "
                    f"−{self.margin:.2f} margin): in practice these two cannot be told apart")
        if self.questions_needed is not None:
            return f"{head}; about {self.questions_needed} questions would tell"
        return f"{head}; {self.reason}"


def _signed(x: float) -> str:
    text = f"{x:+.2f}"
    if text in ("-0.00", "+0.00"):
        return "0.00"
    return text.replace("-", "\u2212")


def _ci(d: PairedDifference) -> str:
    return f"[{_signed(d.low)}, {_signed(d.high)}]"


def _questions(n: int) -> str:
    return f"{n} question" + ("" if n == 1 else "s")


def _ratio(ratio: float | None) -> str:
    return "an unknown multiple of" if ratio is None else f"{ratio:.2f}\u00d7"


def questions_needed(
    differences: Sequence[float], margin: float = NON_INFERIORITY_MARGIN
) -> tuple[int | None, float | None, str]:
    """Paired questions a non-inferiority test would need, by the normal approximation
    n = ((Z_ALPHA + Z_BETA) * sd / (margin + mean))^2 with the observed mean and
    standard deviation (n - 1) of the differences (strategy - best), rounded up.
    Returns (n or None, sd, reason): None when the differences trail by at least the
    margin (no size would show non-inferiority) or there is no variance to go on."""
    data = np.asarray(differences, dtype=float)
    if data.size < 2:
        return None, None, "one paired question gives no variance to size a study from"
    mean, sd = float(data.mean()), float(data.std(ddof=1))
    gap = margin + mean
    if gap <= BOUNDARY_TOLERANCE:
        return None, sd, (f"cannot tell at any size: the cheaper strategy trails by {abs(mean):.2f}, "
                          f"at least the {margin:.2f} margin")
    if sd == 0.0:
        return None, sd, "the differences do not vary; more questions would not change the interval"
    return math.ceil(((Z_ALPHA + Z_BETA) * sd / gap) ** 2 - 1e-9), sd, ""


def decide(
    scores: Mapping[str, Mapping[Hashable, float]],
    prompt_tokens: Mapping[str, float],
    *,
    margin: float = NON_INFERIORITY_MARGIN,
    metric: str = "score",
    resamples: int = 2000,
    seed: int = 0,
    dataset: str | None = None,
) -> Verdict:
    """The verdict from per-strategy scores on common questions (every strategy must
    score the same question keys; use ``common_questions``) and mean prompt tokens.

    Best: highest mean score; ties go to fewer prompt tokens, then name. Candidates:
    strategies spending strictly fewer mean prompt tokens than the best, cheapest
    first. A candidate is non-inferior when the lower bound of its 95% paired interval
    (candidate - best) is strictly above ``-margin`` (a bound exactly at ``-margin``,
    within ``BOUNDARY_TOLERANCE``, is not enough: non-inferiority's null hypothesis
    includes the margin itself); it is shown inferior when the upper bound is strictly
    below ``-margin``. The cheapest non-inferior candidate is chosen; with none, the
    best is used if every candidate is shown inferior, else the verdict is unresolved
    and its challenger is the cheapest undetermined candidate a larger sample could
    settle (or, if none could, the cheapest undetermined one)."""
    if not (isinstance(margin, (int, float)) and not isinstance(margin, bool) and 0.0 <= margin < 1.0):
        raise VerdictError(f"margin must be a number in [0, 1), got {margin!r}")
    names = sorted(scores)
    absent = [s for s in names if s not in prompt_tokens]
    if absent:
        raise VerdictError(f"no prompt tokens given for {', '.join(absent)}")
    base = {
        "metric": metric, "margin": float(margin), "chosen": None, "challenger": None, "difference": None,
        "token_ratio": None, "questions_needed": None, "comparisons": (), "dataset": dataset,
        "prompt_tokens": MappingProxyType({s: float(prompt_tokens[s]) for s in names}),
    }
    if len(names) < 2:
        only = f"only {names[0]} answered questions here" if names else "no strategy answered questions here"
        return Verdict(status="nothing_to_compare", resolved=False, best=names[0] if names else None,
                       n_questions=len(scores[names[0]]) if names else 0,
                       means=MappingProxyType({s: _mean(scores[s].values()) for s in names if scores[s]}),
                       reason=only, **base)
    keys = set(scores[names[0]])
    for s in names[1:]:
        if set(scores[s]) != keys:
            raise VerdictError(
                f"{s!r} and {names[0]!r} score different questions; decide() takes common questions only "
                "(see common_questions)")
    if not keys:
        return Verdict(status="no_common_questions", resolved=False, best=None, n_questions=0,
                       means=MappingProxyType({}),
                       reason=f"no question was answered by all of {', '.join(names)}", **base)
    means = {s: _mean(scores[s].values()) for s in names}
    tokens = {s: float(prompt_tokens[s]) for s in names}
    best = min(names, key=lambda s: (-means[s], tokens[s], s))
    common = dict(base, best=best, n_questions=len(keys), means=MappingProxyType(means))
    candidates = sorted((s for s in names if tokens[s] < tokens[best]), key=lambda s: (tokens[s], s))
    if not candidates:
        # Nothing cheaper to prefer; the runner-up's paired difference says how clearly the
        # best leads (on few questions it does not: the sentence shows the interval).
        runner_up = min((s for s in names if s != best), key=lambda s: (-means[s], tokens[s], s))
        common["comparisons"] = (_compare(runner_up, best, scores, tokens, margin, resamples, seed),)
        return Verdict(status="best_is_cheapest", resolved=True, reason="the best strategy is also the cheapest",
                       **dict(common, chosen=best, token_ratio=1.0))
    comparisons = tuple(_compare(s, best, scores, tokens, margin, resamples, seed) for s in candidates)
    common["comparisons"] = comparisons
    for c in comparisons:
        if c.outcome == NON_INFERIOR:
            return Verdict(status="use_cheaper", resolved=True,
                           reason=f"{c.strategy} is the cheapest strategy within {margin:.2f} of {best}",
                           **dict(common, chosen=c.strategy, challenger=c.strategy, difference=c.difference,
                                  token_ratio=c.token_ratio))
    open_ = [c for c in comparisons if c.outcome == UNDETERMINED]
    if not open_:
        return Verdict(status="use_best", resolved=True,
                       reason=f"every cheaper strategy trails {best} by more than {margin:.2f}",
                       **dict(common, chosen=best, token_ratio=1.0))
    c = next((c for c in open_ if c.questions_needed is not None), open_[0])
    return Verdict(status="unresolved", resolved=False, reason=c.reason or "the interval contains the margin",
                   **dict(common, challenger=c.strategy, difference=c.difference, token_ratio=c.token_ratio,
                          questions_needed=c.questions_needed))


def _mean(values: Iterable[float]) -> float:
    items = [float(v) for v in values]
    return sum(items) / len(items)


def outcome_of(diff: PairedDifference, margin: float = NON_INFERIORITY_MARGIN) -> str:
    """The rule on one paired interval (a - reference): NON_INFERIOR when its lower bound
    is strictly above ``-margin``, INFERIOR when its upper bound is strictly below it
    (a bound at the margin, within ``BOUNDARY_TOLERANCE``, decides neither way), else
    UNDETERMINED."""
    if diff.low > -margin + BOUNDARY_TOLERANCE:
        return NON_INFERIOR
    if diff.high < -margin - BOUNDARY_TOLERANCE:
        return INFERIOR
    return UNDETERMINED


def _compare(strategy: str, best: str, scores, tokens, margin: float, resamples: int, seed: int) -> Comparison:
    diff = paired_difference(scores[strategy], scores[best], resamples=resamples, level=LEVEL, seed=seed)
    keys = sorted(scores[best])
    differences = [float(scores[strategy][k]) - float(scores[best][k]) for k in keys]
    needed, sd, reason = questions_needed(differences, margin)
    outcome = outcome_of(diff, margin)
    if outcome != UNDETERMINED:
        needed, reason = None, ""
    ratio = tokens[strategy] / tokens[best] if tokens[best] else None
    return Comparison(strategy=strategy, prompt_tokens=tokens[strategy], token_ratio=ratio, difference=diff,
                      sd=sd, outcome=outcome, questions_needed=needed, reason=reason)


def verdicts(
    rows: Iterable[LedgerRow],
    strategies: Sequence[str] | None = None,
    *,
    margin: float = NON_INFERIORITY_MARGIN,
    metrics: Mapping[str, str] | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Verdict]:
    """One verdict per data set from ledger rows: ``common_questions`` then ``decide``
    with each data set's primary metric and mean prompt tokens on its common pairs."""
    return {
        dataset: verdict_of(common, margin=margin, resamples=resamples, seed=seed)
        for dataset, common in common_questions(rows, strategies, metrics=metrics).items()
    }


def verdict_of(common: CommonSet, *, margin: float = NON_INFERIORITY_MARGIN, resamples: int = 2000, seed: int = 0) -> Verdict:
    """``decide`` on one data set's common questions, with its primary metric and mean prompt tokens."""
    verdict = decide(common.scores, common.mean_prompt_tokens(), margin=margin, metric=common.metric,
                     resamples=resamples, seed=seed, dataset=common.dataset)
    return replace(verdict, missing=common.missing, dropped=common.dropped)
