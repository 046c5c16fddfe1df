"""The report's data, computed once from ledger rows so that rendering (HTML,
Markdown, SVG) only formats and never does arithmetic on raw rows.

Rows are pooled across whatever runs are passed in: give one run's rows for a
one-run report. Quality means skip unscored rows (em/f1/recall None), so a
question that errored still counts in ``n`` and in cost, but not in quality;
``n_errors`` counts those rows (``error`` set). The ledger deletes an error row
once its pair is answered on a resumed run, so errors counted here are unresolved.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from lcrag.pipeline.evaluation.diagnosis import Diagnosis, diagnoses
from lcrag.pipeline.ledger import FeatureRow, LedgerRow, RetrievalRow
from lcrag.pipeline.report.cost import CostSection, cost_sections
from lcrag.pipeline.routing.fit import held_out
from lcrag.pipeline.routing.policies import PolicySummary
from lcrag.pipeline.routing.table import RoutingDataError, routing_table
from lcrag.pipeline.statistics.letter_bias import LetterProfile, closed_book_is_guessing, letter_profiles
from lcrag.pipeline.statistics.verdict import (
    CONTROLS,
    NON_INFERIORITY_MARGIN,
    CommonSet,
    Margin,
    Verdict,
    VerdictError,
    VerdictSettings,
    common_questions,
    dataset_kind,
    margins_for,
    metric_for,
    score_of,
    split_answerability,
    split_readers,
    verdict_of,
)

UNLABELLED = "unlabelled"  # table name for rows whose dataset is None

IntervalFn = Callable[[Sequence[float]], Any]  # -> (mean, low, high) or an object with .mean/.low/.high
PositionOf = Callable[[LedgerRow], "int | None"]
NiahCellOf = Callable[[LedgerRow], "tuple[int, int] | None"]
AccuracyOf = Callable[[LedgerRow], "float | None"]


# ------------------------------------------------------------------ records


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval over ``n`` scored values."""

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class StrategyStats:
    """One strategy's quality (with intervals), cost and behaviour on one slice of rows.
    Quality fields are None when no row of the slice was scored on that metric;
    ``fell_back_share`` is None when no row set ``fell_back`` (non-routing strategies)."""

    strategy: str
    n: int
    em: Estimate | None
    f1: Estimate | None
    recall: Estimate | None
    prompt_tokens: float
    completion_tokens: float
    latency_s: float
    cut_share: float
    fell_back_share: float | None
    n_errors: int = 0


@dataclass(frozen=True)
class DatasetTable:
    """The per-strategy table for one dataset, on the questions every compared
    strategy answered (``dropped`` pairs were answered by only some; ``missing``
    strategies answered none here and are not averaged in from elsewhere)."""

    dataset: str
    rows: tuple[StrategyStats, ...]
    missing: tuple[str, ...] = ()
    dropped: int = 0
    metric: str | None = None  # the primary metric the verdict uses


@dataclass(frozen=True)
class VerdictLine:
    """The verdict for one data set, as the report leads with it. ``basis`` says which
    questions it rests on: all of them, or (with the closed-book control) those the
    model could not answer unaided; ``other`` is the verdict on the other view."""

    dataset: str
    basis: str
    metric: str
    secondary_metric: str | None
    verdict: Verdict
    other: tuple[tuple[str, Verdict], ...] = ()

    @property
    def sentence(self) -> str:
        return self.verdict.describe()


@dataclass(frozen=True)
class FrontierPoint:
    """Where a strategy sits on the cost/quality plane (mean prompt tokens vs mean F1)."""

    strategy: str
    prompt_tokens: float
    f1: float


@dataclass(frozen=True)
class PositionPoint:
    """Accuracy of a strategy when the evidence sits at ``position`` (position sweeps)."""

    strategy: str
    position: int
    accuracy: float
    n: int


@dataclass(frozen=True)
class HeatCell:
    """Needle-in-a-haystack accuracy at one needle depth (%) and haystack length (tokens),
    pooled over strategies."""

    depth: int
    length: int
    accuracy: float
    n: int


@dataclass(frozen=True)
class RouteShare:
    """Share of a strategy's answers produced by one route (self-route: rag or lc)."""

    strategy: str
    route: str
    share: float


@dataclass(frozen=True)
class PairedRow:
    """One strategy against the reference (``lc``) on the questions both answered:
    the F1 difference with its bootstrap interval, win/loss counts, and the prompt
    tokens it spent relative to the reference on those questions."""

    dataset: str
    strategy: str
    reference: str
    mean_diff: float
    low: float
    high: float
    n_pairs: int
    wins: int
    losses: int
    ties: int
    token_ratio: float | None


@dataclass(frozen=True)
class AbstentionRow:
    """Where questions may have no answer (SQuAD 2.0): how often a strategy made the
    right call (abstain exactly when there is no answer), its F1 on the answerable
    questions, and its abstention rate on each kind."""

    dataset: str
    strategy: str
    accuracy: Estimate
    answerable_f1: Estimate | None
    abstained_unanswerable: float | None  # share of unanswerable questions it declined (higher is better)
    abstained_answerable: float | None  # share of answerable questions it declined (lower is better)
    n_answerable: int
    n_unanswerable: int


@dataclass(frozen=True)
class RetrievalStats:
    """One retrieval method on one retrieval-only data set (BEIR): mean judged
    quality with intervals over its queries, and mean search time."""

    dataset: str
    method: str
    n: int
    k: int
    ndcg_at_10: Estimate
    recall_at_k: Estimate
    mrr: Estimate
    latency_ms: float


@dataclass(frozen=True)
class RoutingSection:
    """One data set's routing policies (fitted router, calibrated self-route,
    always-X for every candidate, oracle), cross-validated: quality against prompt
    tokens; and the router against the best constant policy, with what ``route fit``
    would install by default."""

    dataset: str
    metric: str
    n: int
    without_features: int
    policies: tuple[PolicySummary, ...]
    decision: Any = None  # routing.decision.Decision: the router against the best constant (install auto)
    repeats: int = 1  # cross-validation repeats the router's held-out scores are averaged over
    no_candidate_answered: int = 0  # questions left out of the tree's training (still scored)


def routing_sections(rows: Sequence[LedgerRow], features: Sequence[FeatureRow], datasets: Sequence[str],
                     margin: float) -> tuple[RoutingSection, ...]:
    """Held-out routing results for each data set whose rows and features allow it
    (rag and lc on the same questions, features recorded); others are left out."""
    sections = []
    if not features:
        return ()
    for name in datasets:
        try:
            table = routing_table(rows, features, name)
        except (RoutingDataError, VerdictError):
            continue
        if len(table.questions) < 2:
            continue
        result = held_out(table, margin)
        sections.append(RoutingSection(name, table.metric, len(table.questions), table.without_features,
                                       result.summaries, result.decision, result.repeats, table.no_candidate_answered()))
    return tuple(sections)


@dataclass(frozen=True)
class Report:
    """Everything a rendered report shows; ``overall`` pools all datasets."""

    title: str
    generated_at: str
    run_ids: tuple[str, ...]
    n_rows: int
    overall: tuple[StrategyStats, ...]
    tables: tuple[DatasetTable, ...]
    frontier: tuple[FrontierPoint, ...]
    positions: tuple[PositionPoint, ...]
    heatmap: tuple[HeatCell, ...]
    routes: tuple[RouteShare, ...]
    config: Mapping[str, Any]
    data_hashes: Mapping[str, str]
    paired: tuple[PairedRow, ...] = ()
    abstention: tuple[AbstentionRow, ...] = ()
    retrieval: tuple[RetrievalStats, ...] = ()
    verdicts: tuple[VerdictLine, ...] = ()
    overall_left_out: tuple[str, ...] = ()  # strategies not pooled: absent from some data set
    settings: VerdictSettings = VerdictSettings()
    readers: tuple[str, ...] = ()  # the models that answered: data sets answered by several are split per reader
    letters: tuple[tuple[str, Mapping[str, LetterProfile]], ...] = ()  # multiple-choice data sets' letter profiles
    routing: tuple[RoutingSection, ...] = ()  # per data set with routing features: policies held out
    diagnosis: tuple[Diagnosis, ...] = ()  # per data set with oracle rows: where quality is lost (evaluation.diagnosis)
    cost: tuple[CostSection, ...] = ()  # per data set: prompt, prefill, cache, and prefill projected per question (report.cost)

    @property
    def margin(self) -> float:
        """The absolute margin (and cap) the verdicts use: the settings'."""
        return self.settings.margin

    @property
    def strategies(self) -> tuple[str, ...]:
        """Every strategy the report shows: the pooled ones first, then those left out of the pool."""
        pooled = tuple(s.strategy for s in self.overall)
        others = sorted({s.strategy for t in self.tables for s in t.rows} - set(pooled))
        return pooled + tuple(others)

    @property
    def n_errors(self) -> int:
        """Answer rows the reader failed on, all strategies and data sets."""
        return sum(s.n_errors for s in self.overall)

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(t.dataset for t in self.tables)


# ------------------------------------------------------------- extractors


def default_position_of(row: LedgerRow) -> int | None:
    """The slot of the row's evidence in a position sweep (its ``evidence_position``), else None."""
    return row.evidence_position


def default_niah_cell_of(row: LedgerRow) -> tuple[int, int] | None:
    """(depth %, haystack length) of a needle row: its first named fact's depth (an
    aggregation question's other facts lie elsewhere) and its haystack; else None."""
    if not row.needle_depths or row.haystack_length is None:
        return None
    return row.needle_depths[0], row.haystack_length


def default_accuracy(row: LedgerRow) -> float | None:
    """Exact match where scored, else F1: sweeps and needle tests care about 'found it'."""
    return row.em if row.em is not None else row.f1


# -------------------------------------------------------------- intervals


def default_interval(values: Sequence[float], *, resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Percentile bootstrap of the mean (95%), deterministic for a given seed, so a
    report rebuilt from the same rows shows the same intervals."""
    from lcrag.pipeline.statistics.intervals import bootstrap_mean

    interval = bootstrap_mean(list(values), resamples=resamples, seed=seed)
    return interval.mean, interval.low, interval.high


def _estimate(values: Sequence[float], interval_fn: IntervalFn) -> Estimate | None:
    """Run any interval function and normalise its answer (tuple or Interval-like)."""
    if not values:
        return None
    result = interval_fn(values)
    if all(hasattr(result, name) for name in ("mean", "low", "high")):
        mean, low, high = result.mean, result.low, result.high
    else:
        mean, low, high = tuple(result)[:3]
    return Estimate(mean=float(mean), low=float(low), high=float(high), n=len(values))


# ------------------------------------------------------------- building


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def strategy_stats(strategy: str, rows: Sequence[LedgerRow], interval_fn: IntervalFn) -> StrategyStats:
    """One table row: quality with intervals over scored rows, cost and shares over all rows."""
    fell = [r.fell_back for r in rows if r.fell_back is not None]
    return StrategyStats(
        strategy=strategy,
        n=len(rows),
        em=_estimate([r.em for r in rows if r.em is not None], interval_fn),
        f1=_estimate([r.f1 for r in rows if r.f1 is not None], interval_fn),
        recall=_estimate([r.recall for r in rows if r.recall is not None], interval_fn),
        prompt_tokens=_mean(r.prompt_tokens for r in rows),
        completion_tokens=_mean(r.completion_tokens for r in rows),
        latency_s=_mean((r.retrieval_ms + r.reading_ms) / 1000.0 for r in rows),
        cut_share=_mean(1.0 if r.context_cut else 0.0 for r in rows),
        fell_back_share=_mean(1.0 if f else 0.0 for f in fell) if fell else None,
        n_errors=sum(1 for r in rows if r.error),
    )


def _by(rows: Iterable[LedgerRow], key: Callable[[LedgerRow], Any]) -> dict[Any, list[LedgerRow]]:
    groups: dict[Any, list[LedgerRow]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def _table(rows: Sequence[LedgerRow], interval_fn: IntervalFn) -> tuple[StrategyStats, ...]:
    groups = _by(rows, lambda r: r.strategy)
    return tuple(strategy_stats(name, groups[name], interval_fn) for name in sorted(groups))


def position_points(
    rows: Sequence[LedgerRow], position_of: PositionOf, accuracy_of: AccuracyOf
) -> tuple[PositionPoint, ...]:
    """Mean accuracy per (strategy, evidence position), over rows that carry a position."""
    groups: dict[tuple[str, int], list[float]] = defaultdict(list)
    for row in rows:
        position, score = position_of(row), accuracy_of(row)
        if position is not None and score is not None:
            groups[(row.strategy, position)].append(score)
    return tuple(
        PositionPoint(strategy=s, position=p, accuracy=_mean(v), n=len(v)) for (s, p), v in sorted(groups.items())
    )


def heat_cells(rows: Sequence[LedgerRow], niah_cell_of: NiahCellOf, accuracy_of: AccuracyOf) -> tuple[HeatCell, ...]:
    """Mean accuracy per (depth, length) over needle rows, all strategies pooled."""
    groups: dict[tuple[int, int], list[float]] = defaultdict(list)
    for row in rows:
        cell, score = niah_cell_of(row), accuracy_of(row)
        if cell is not None and score is not None:
            groups[cell].append(score)
    return tuple(HeatCell(depth=d, length=n_tokens, accuracy=_mean(v), n=len(v)) for (d, n_tokens), v in sorted(groups.items()))


def route_shares(rows: Sequence[LedgerRow]) -> tuple[RouteShare, ...]:
    """For each strategy, the share of its rows per route (sums to 1 per strategy)."""
    shares: list[RouteShare] = []
    for strategy, group in sorted(_by(rows, lambda r: r.strategy).items()):
        counts = Counter(r.route for r in group)
        shares.extend(RouteShare(strategy, route, counts[route] / len(group)) for route in sorted(counts))
    return tuple(shares)


def abstention_rows(rows: Sequence[LedgerRow], interval_fn: IntervalFn) -> tuple[AbstentionRow, ...]:
    """Per data set and strategy, over rows that record both answerability and abstention."""
    from lcrag.pipeline.statistics.intervals import abstention_accuracy

    scored = [r for r in rows if r.answerable is not None and r.abstained is not None and r.error is None]
    out: list[AbstentionRow] = []
    for (dataset, strategy), group in sorted(_by(scored, lambda r: (r.dataset or UNLABELLED, r.strategy)).items()):
        answerable = [r for r in group if r.answerable]
        unanswerable = [r for r in group if not r.answerable]
        right = [float(abstention_accuracy([r.abstained], [r.answerable])) for r in group]
        out.append(AbstentionRow(
            dataset=dataset,
            strategy=strategy,
            accuracy=_estimate(right, interval_fn),
            answerable_f1=_estimate([r.f1 for r in answerable if r.f1 is not None], interval_fn),
            abstained_unanswerable=_mean(1.0 if r.abstained else 0.0 for r in unanswerable) if unanswerable else None,
            abstained_answerable=_mean(1.0 if r.abstained else 0.0 for r in answerable) if answerable else None,
            n_answerable=len(answerable),
            n_unanswerable=len(unanswerable),
        ))
    return tuple(out)


def retrieval_stats(rows: Sequence[RetrievalRow], interval_fn: IntervalFn) -> tuple[RetrievalStats, ...]:
    """Per (data set, method, k): means with intervals over the judged queries."""
    out = []
    for (dataset, method, k), group in sorted(_by(rows, lambda r: (r.dataset, r.method, r.k)).items()):
        out.append(RetrievalStats(
            dataset=dataset, method=method, n=len(group), k=k,
            ndcg_at_10=_estimate([r.ndcg_at_10 for r in group], interval_fn),
            recall_at_k=_estimate([r.recall_at_k for r in group], interval_fn),
            mrr=_estimate([r.mrr for r in group], interval_fn),
            latency_ms=_mean(r.retrieval_ms for r in group),
        ))
    return tuple(out)


def paired_rows(rows: Sequence[LedgerRow], reference: str = "lc") -> tuple[PairedRow, ...]:
    """Per data set, every strategy's F1 minus the reference's on shared questions.
    A pair is one question in one run: two runs may differ in reader or settings, so a
    question answered by ``rag`` in one run is never matched with ``lc`` in another."""
    from lcrag.pipeline.statistics.intervals import paired_against

    out: list[PairedRow] = []
    for dataset, group in sorted(_by(rows, lambda r: r.dataset or UNLABELLED).items()):
        scores: dict[str, dict[tuple[str, str], float]] = {}
        tokens: dict[str, dict[tuple[str, str], int]] = {}
        for row in group:
            if row.f1 is not None and row.error is None:
                pair_key = (row.run_id, row.question_id)
                scores.setdefault(row.strategy, {})[pair_key] = row.f1
                tokens.setdefault(row.strategy, {})[pair_key] = row.prompt_tokens
        if reference not in scores or len(scores) < 2:
            continue
        for strategy, diff in sorted(paired_against(reference, {k: v for k, v in scores.items()
                                                                  if set(v) & set(scores[reference])}).items()):
            shared = set(tokens[strategy]) & set(tokens[reference])
            ref_tokens = sum(tokens[reference][q] for q in shared)
            ratio = sum(tokens[strategy][q] for q in shared) / ref_tokens if ref_tokens else None
            out.append(PairedRow(dataset, strategy, reference, diff.mean_diff, diff.low, diff.high, diff.n_pairs,
                                 diff.wins, diff.losses, diff.ties, ratio))
    return tuple(out)


CLOSED_BOOK = "closed-book"
CLOSED_BOOK_MISSES = "closed-book misses"
ALL_QUESTIONS = "all questions"
_UNAIDED = 0.5  # a closed-book score at least this counts as answered without context


def subset_name(dataset: str) -> str:
    return f"{dataset} · {CLOSED_BOOK_MISSES}"


def closed_book_misses(rows: Sequence[LedgerRow], profiles: Mapping[str, Mapping[str, LetterProfile]] | None = None
                       ) -> list[LedgerRow]:
    """Where a run has the closed-book control: the other strategies' rows on the
    questions closed-book did not answer, relabelled as the data set's
    "closed-book misses" subset ("Long Context vs. RAG: Evaluation and Revisits")."""
    out: list[LedgerRow] = []
    for dataset, group in _by(rows, lambda r: r.dataset or UNLABELLED).items():
        control = [r for r in group if r.strategy == CLOSED_BOOK and r.error is None]
        if not control:
            continue
        metric = metric_for(dataset, group)
        mc = profiles[dataset] if profiles and dataset in profiles else (
            letter_profiles(group) if dataset_kind(dataset, group) == "multiple_choice" else None)
        if mc is not None and closed_book_is_guessing(mc):
            continue  # a closed-book "hit" on multiple choice is a guess: the subset would re-rank by letter bias
        misses = {(r.run_id, r.question_id) for r in control if (score_of(r, metric) or 0.0) < _UNAIDED}
        out += [replace(r, dataset=subset_name(dataset)) for r in group
                if r.strategy != CLOSED_BOOK and (r.run_id, r.question_id) in misses]
    return out


def _pairs(common: CommonSet | None) -> set[tuple[str, str]] | None:
    if common is None or not common.n_pairs:
        return None
    return set(next(iter(common.scores.values())))


def comparable_rows(group: Sequence[LedgerRow], common: CommonSet | None) -> list[LedgerRow]:
    """A data set's rows on its common pairs, compared strategies (and the controls,
    closed-book and oracle) only; error rows of those strategies stay (they count as
    errors). A data set without any common scored pair (ad hoc questions) keeps every row."""
    pairs = _pairs(common)
    if pairs is None:
        return list(group)
    keep = set(common.strategies) | CONTROLS
    return [r for r in group if r.strategy in keep and ((r.run_id, r.question_id) in pairs or r.error)]


def verdict_lines(datasets: Sequence[str], commons: Mapping[str, CommonSet], settings: VerdictSettings,
                  margins: Mapping[str, Margin]) -> tuple[VerdictLine, ...]:
    """One line per data set; with the closed-book control the line rests on the
    questions the model could not answer unaided, and the all-questions verdict follows.
    Both use the data set's own margin (from its control on all its questions)."""
    found = {}
    for name, common in commons.items():
        base = name[: -len(f" · {CLOSED_BOOK_MISSES}")] if name.endswith(f" · {CLOSED_BOOK_MISSES}") else name
        found[name] = verdict_of(common, settings=settings, margin=margins.get(base, settings.margin))
    lines = []
    for dataset in datasets:
        if dataset not in found:
            continue
        common, subset = commons[dataset], subset_name(dataset)
        if subset in found and found[subset].status not in ("nothing_to_compare", "no_common_questions"):
            lines.append(VerdictLine(dataset, CLOSED_BOOK_MISSES, common.metric, common.secondary_metric, found[subset],
                                     ((ALL_QUESTIONS, found[dataset]),)))
        else:
            lines.append(VerdictLine(dataset, ALL_QUESTIONS, common.metric, common.secondary_metric, found[dataset]))
    return tuple(lines)


def letter_sections(rows: Sequence[LedgerRow], datasets: Sequence[str]) -> tuple[tuple[str, Mapping[str, LetterProfile]], ...]:
    """Per multiple-choice data set, each strategy's letter profile (letters chosen,
    accuracy per gold letter, the chance baseline of its letter bias)."""
    out = []
    for name in datasets:
        group = [r for r in rows if (r.dataset or UNLABELLED) == name]
        if dataset_kind(name, group) == "multiple_choice":
            profiles = letter_profiles(group)
            if profiles:
                out.append((name, MappingProxyType(profiles)))
    return tuple(out)


def _is_sweep(rows: Sequence[LedgerRow]) -> bool:
    """A position sweep or needle grid: every row carries its evidence slot or needle cell."""
    return bool(rows) and all(default_position_of(r) is not None or default_niah_cell_of(r) is not None for r in rows)


def build_report(
    rows: Sequence[LedgerRow],
    *,
    title: str,
    config: Mapping[str, Any],
    data_hashes: Mapping[str, str],
    interval_fn: IntervalFn | None = None,
    position_of: PositionOf | None = None,
    niah_cell_of: NiahCellOf | None = None,
    accuracy_of: AccuracyOf | None = None,
    generated_at: str | None = None,
    retrieval_rows: Sequence[RetrievalRow] = (),
    margin: float = NON_INFERIORITY_MARGIN,
    features: Sequence[FeatureRow] = (),
    settings: VerdictSettings | None = None,
    questions_per_document: float | None = None,
) -> Report:
    """All report data from ledger rows. ``interval_fn`` may be ``lcrag.pipeline.statistics.intervals.bootstrap_mean``
    or anything returning (mean, low, high); ``generated_at`` defaults to now (UTC).

    Like with like: every comparison (tables, pooled summary, frontier, paired rows,
    verdicts) uses, per data set, the (run, question) pairs all compared strategies
    answered; a strategy absent from a data set is reported missing there.
    ``questions_per_document`` is the workload the cost section projects prefill to
    (default: each data set's observed questions per document; ``report.cost``)."""
    settings = settings or VerdictSettings(margin=margin)
    whole = split_readers(rows)  # the abstention table reads answerable and unanswerable questions side by side
    rows = split_answerability(whole)
    interval_fn = interval_fn or default_interval
    accuracy_of = accuracy_of or default_accuracy
    datasets = _by(rows, lambda r: r.dataset or UNLABELLED)
    names = sorted(datasets)
    letters = letter_sections(rows, names)
    profiles = dict(letters)
    subsets = closed_book_misses(rows, profiles)
    metrics = {name: metric_for(name, datasets[name]) for name in names}
    metrics |= {subset_name(name): metrics[name] for name in names}
    compared = [r for r in [*rows, *subsets] if r.strategy not in CONTROLS]
    commons = common_questions(compared, metrics=metrics)
    margins = margins_for(rows, {n: c for n, c in commons.items() if n in datasets}, settings, profiles)
    by_dataset = {name: comparable_rows(datasets[name], commons.get(name)) for name in names}
    subset_groups = _by(subsets, lambda r: r.dataset)
    for name in sorted(subset_groups):
        by_dataset[name] = comparable_rows(subset_groups[name], commons.get(name))
    # pooled: only strategies every data set compared, each on its own common pairs
    # The pool: data sets with at least two compared strategies, sweeps aside (position and
    # needle protocols are shown in their figures); ad hoc asks and all-error sets do not
    # constrain it. Only strategies compared in every pooled data set are pooled.
    poolable = [n for n in names if n in commons and len(commons[n].strategies) >= 2 and not _is_sweep(datasets[n])]
    compared_sets = [set(commons[n].strategies) for n in poolable]
    if not compared_sets:
        compared_sets = [{r.strategy for r in rows if r.strategy not in CONTROLS}]
    everywhere = set.intersection(*compared_sets) if compared_sets else set()
    seen = {r.strategy for r in rows}
    # pooled over the data sets where every pooled strategy was compared, plus those with
    # no common scored question (they add cost and errors, never quality)
    scored = {n for n in names if n in commons and commons[n].n_pairs}
    pool_names = [n for n in names if n not in scored or everywhere <= set(commons[n].strategies)]
    pooled = [r for n in pool_names for r in by_dataset[n] if r.strategy in everywhere]
    overall = _table(pooled, interval_fn)
    tables = tuple(
        DatasetTable(name, _table(by_dataset[name], interval_fn),
                     commons[name].missing if name in commons else (), commons[name].dropped if name in commons else 0,
                     metrics.get(name))
        for name in sorted(by_dataset)
    )
    comparable = [r for name in sorted(by_dataset) for r in by_dataset[name] if name in datasets]
    return Report(
        title=title,
        generated_at=generated_at or datetime.now(UTC).isoformat(timespec="seconds"),
        run_ids=tuple(sorted({r.run_id for r in rows} | {r.run_id for r in retrieval_rows})),
        readers=tuple(sorted({r.model for r in rows})),
        n_rows=len(rows) + len(retrieval_rows),
        overall=overall,
        tables=tables,
        frontier=tuple(FrontierPoint(s.strategy, s.prompt_tokens, s.f1.mean) for s in overall if s.f1 is not None),
        positions=position_points(rows, position_of or default_position_of, accuracy_of),
        heatmap=heat_cells(rows, niah_cell_of or default_niah_cell_of, accuracy_of),
        routes=route_shares(rows),
        config=MappingProxyType(dict(config)),
        data_hashes=MappingProxyType({str(k): str(v) for k, v in data_hashes.items()}),
        paired=paired_rows(comparable),
        abstention=abstention_rows(whole, interval_fn),
        retrieval=retrieval_stats(retrieval_rows, interval_fn),
        verdicts=verdict_lines(names, commons, settings, margins),
        overall_left_out=tuple(sorted(seen - everywhere - CONTROLS)),
        settings=settings,
        letters=letters,
        routing=routing_sections(rows, features, names, settings.margin),
        diagnosis=diagnoses(rows, names, metrics),
        cost=cost_sections({n: by_dataset[n] for n in names}, rows, questions_per_document),
    )
