"""Deciding with fewer questions: look at the verdict after every round of answers and
stop as soon as it is settled, without raising the error rate of a recommendation.

A verdict computed after every round of, say, 20 questions and acted on the first time
it says "use X" is wrong more often than one computed once: every look is another
chance for noise to cross the line. So each look is tested at its own share of the
error rate ``alpha``, spent by the power family alpha * t^rho (Lan & DeMets 1983;
Kim & DeMets 1987; ``paired_tests.spending_schedule``), with t the share of the planned
questions answered at that look. The shares add up to at most alpha, and by the union
bound the chance that *any* look recommends wrongly is at most their sum. Stopping
without a recommendation (futility: the verdict says no size within the data set would
settle it) can only remove chances to be wrong, so it never raises that rate.

Looks sit at multiples of the round size (``looks``), so a resumed run re-derives
them from the ledger alone. ``replay`` runs the same rule over rows already recorded
(every question answered), in the order the questions were first answered, to measure
how many reader calls the rule would have saved and whether it lands where the
full-data verdict does. Everything here is pure: rows in, frozen dataclasses out; the
verdict function is injected (``decide``) so the rule is testable without it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from lcrag.core.errors import LcragError

if TYPE_CHECKING:
    from lcrag.pipeline.evaluation.verdict import VerdictSettings
    from lcrag.pipeline.ledger import LedgerRow

UNLABELLED = "unlabelled"  # data set name of rows whose dataset is None (as the verdict and report call it)
RESOLVED, FUTILE, EXHAUSTED = "resolved", "futile", "exhausted"  # why a sequence of looks stopped
NOTHING = "nothing_to_compare"  # status given when the verdict returns nothing for a data set

# decide(rows, settings) -> {data set: verdict}; the verdict needs status, resolved, use,
# questions_needed and describe() (``lcrag.pipeline.evaluation.verdict.Verdict``)
Decide = Callable[[Sequence["LedgerRow"], "VerdictSettings"], Mapping[str, Any]]
# spend(alpha, fractions) -> the alpha each look is tested at
Spend = Callable[[float, Sequence[float]], Sequence[float]]


class SequentialError(LcragError, ValueError):
    """A round size or question count the sequential rule cannot use."""


def looks(total: int, round_size: int) -> tuple[int, ...]:
    """Questions answered at each look: round_size, 2 * round_size, ..., and ``total``
    (the last round may be short). No looks for no questions."""
    if isinstance(round_size, bool) or not isinstance(round_size, int) or round_size < 1:
        raise SequentialError(f"round size must be a whole number of questions >= 1, got {round_size!r}")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise SequentialError(f"total must be a whole number of questions >= 0, got {total!r}")
    if total == 0:
        return ()
    return (*range(round_size, total, round_size), total)


def _default_spend(alpha: float, fractions: Sequence[float]) -> Sequence[float]:
    from lcrag.pipeline.evaluation.paired_tests import spending_schedule

    return spending_schedule(alpha, tuple(fractions))


def look_alphas(sizes: Sequence[int], planned: int, alpha: float, spend: Spend | None = None) -> tuple[float, ...]:
    """The alpha each look is tested at: look j's share of ``alpha`` with t_j =
    sizes[j] / planned (``spending_schedule``). Fewer questions than planned leave the
    unspent rest unused (conservative)."""
    if planned < 1 or any(n > planned for n in sizes):
        raise SequentialError(f"looks {tuple(sizes)} do not fit {planned} planned questions")
    shares = tuple(float(a) for a in (spend or _default_spend)(alpha, [n / planned for n in sizes]))
    if len(shares) != len(sizes):
        raise SequentialError(f"the spending schedule gave {len(shares)} alphas for {len(sizes)} looks")
    return shares


def stop_reason(verdict: Any, planned: int) -> str | None:
    """Why a look stops the sequence: ``resolved`` (a recommendation), ``futile``
    (unresolved, and the verdict says no size up to ``planned`` questions would settle it:
    ``questions_needed`` None or above ``planned``), else None (look again). A verdict
    with nothing to compare yet is not futile: more answers may give it something."""
    if verdict is None:
        return None
    if verdict.resolved:
        return RESOLVED
    if verdict.status == "unresolved" and (verdict.questions_needed is None or verdict.questions_needed > planned):
        return FUTILE
    return None


def control_strategies() -> frozenset[str]:
    """Strategies that are controls, never candidates (closed-book): registered names
    outside ``all``. The report leaves them out of the verdict too."""
    from lcrag.pipeline.answer import ALL, REGISTRY

    return frozenset(REGISTRY) - frozenset(ALL)


def compared(rows: Iterable[LedgerRow]) -> tuple[str, ...]:
    """The strategies of ``rows`` a verdict compares: all but the controls."""
    controls = control_strategies()
    return tuple(sorted({r.strategy for r in rows} - controls))


def default_decide(strategies: Sequence[str] | None = None) -> Decide:
    """``verdicts`` with the look's settings, over ``strategies`` (default: those of the
    rows, controls left out)."""

    def decide(rows: Sequence[LedgerRow], settings: VerdictSettings) -> Mapping[str, Any]:
        from lcrag.pipeline.evaluation.verdict import verdicts

        names = tuple(strategies) if strategies is not None else compared(rows)
        return verdicts(rows, names, settings=settings)

    return decide


def _default_settings() -> VerdictSettings:
    from lcrag.pipeline.evaluation.verdict import VerdictSettings

    return VerdictSettings()


def answering_order(rows: Iterable[LedgerRow]) -> tuple[str, ...]:
    """Question ids in the order they were first answered: the earliest ``created_at``
    over each question's rows (error rows included: they were asked then), ties by id."""
    first: dict[str, float] = {}
    for row in rows:
        if row.question_id not in first or row.created_at < first[row.question_id]:
            first[row.question_id] = row.created_at
    return tuple(sorted(first, key=lambda q: (first[q], q)))


@dataclass(frozen=True)
class Look:
    """One look: the verdict on the first ``questions`` questions, tested at ``alpha``."""

    questions: int
    alpha: float
    status: str
    resolved: bool
    use: tuple[str, ...]  # empty unless resolved
    questions_needed: int | None
    sentence: str
    stop: str | None  # RESOLVED or FUTILE when this look ends the sequence


@dataclass(frozen=True)
class ReplayOutcome:
    """The sequential rule replayed over one (run, data set) of a ledger, against the
    verdict on all its questions at the full alpha in one look. ``calls`` are ledger rows
    (one reader call per question and strategy); ``agree``: both recommend the same
    strategies, or neither recommends any."""

    dataset: str
    run_id: str
    round_size: int
    planned: int  # N: the questions the looks' alpha shares are computed over
    looks: tuple[Look, ...]  # every look taken, the stopping one last
    questions_used: int
    questions_available: int
    calls_used: int
    calls_available: int
    status: str  # at the stop
    use: tuple[str, ...]
    sentence: str
    full_status: str
    full_use: tuple[str, ...]
    full_sentence: str
    agree: bool
    stop_reason: str  # RESOLVED, FUTILE or EXHAUSTED (the last look neither)

    @property
    def looks_taken(self) -> int:
        return len(self.looks)

    @property
    def calls_saved(self) -> float:
        """Share of the available reader calls the rule did not need (0 to 1)."""
        return 1.0 - self.calls_used / self.calls_available if self.calls_available else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "run_id": self.run_id, "round_size": self.round_size, "planned": self.planned,
            "looks_taken": self.looks_taken, "questions_used": self.questions_used,
            "questions_available": self.questions_available, "calls_used": self.calls_used,
            "calls_available": self.calls_available, "calls_saved": round(self.calls_saved, 4),
            "stop_reason": self.stop_reason, "status": self.status, "use": list(self.use), "sentence": self.sentence,
            "full_status": self.full_status, "full_use": list(self.full_use), "full_sentence": self.full_sentence,
            "agree": self.agree,
            "looks": [{"questions": k.questions, "alpha": k.alpha, "status": k.status, "resolved": k.resolved,
                       "use": list(k.use),
                       "questions_needed": k.questions_needed, "stop": k.stop, "sentence": k.sentence}
                      for k in self.looks],
        }


def verdict_for(found: Mapping[str, Any], dataset: str) -> Any:
    """The verdict of ``dataset`` in a ``decide`` result (the only one if it holds one)."""
    if dataset in found:
        return found[dataset]
    return next(iter(found.values())) if len(found) == 1 else None


def _summary(verdict: Any) -> tuple[str, bool, tuple[str, ...], int | None, str]:
    if verdict is None:
        return NOTHING, False, (), None, "nothing to compare: no strategy to compare answered here"
    use = tuple(verdict.use) if verdict.resolved else ()
    return verdict.status, bool(verdict.resolved), use, verdict.questions_needed, verdict.describe()


def replay(
    rows: Iterable[LedgerRow],
    *,
    round_size: int,
    max_questions: int | None = None,
    settings: VerdictSettings | None = None,
    decide: Decide | None = None,
    spend: Spend | None = None,
) -> tuple[ReplayOutcome, ...]:
    """The sequential rule over recorded rows, one outcome per (run_id, data set), in
    that order. Questions come in the order they were first answered (``answering_order``);
    N = ``max_questions`` (capping the questions used) or the questions available. At the
    look after n questions the verdict of the rows of the first n is taken with alpha =
    that look's share of ``settings.alpha`` (``spend``, default ``spending_schedule``);
    the sequence stops at the first look that is resolved or futile (``stop_reason``),
    else at the last ("exhausted"). ``decide(rows, settings)`` defaults to ``verdicts``
    over the rows' strategies, controls left out."""
    if max_questions is not None and (isinstance(max_questions, bool) or not isinstance(max_questions, int)
                                      or max_questions < 1):
        raise SequentialError(f"max_questions must be a whole number >= 1, got {max_questions!r}")
    looks(0, round_size)  # validates the round size
    settings = settings if settings is not None else _default_settings()
    decide = decide or default_decide()
    groups: dict[tuple[str, str], list[LedgerRow]] = {}
    for row in rows:
        groups.setdefault((row.run_id, row.dataset or UNLABELLED), []).append(row)
    outcomes = []
    for (run_id, dataset), group in sorted(groups.items()):
        order = answering_order(group)
        planned = max_questions or len(order)
        order = order[:planned]
        position = {qid: i for i, qid in enumerate(order)}
        group = sorted((r for r in group if r.question_id in position), key=lambda r: position[r.question_id])
        # rows of the first n questions are group[:cut[n]] (group sorted by question position)
        ends: dict[int, int] = {}
        for index, row in enumerate(group):
            ends[position[row.question_id] + 1] = index + 1
        sizes = looks(len(order), round_size)
        alphas = look_alphas(sizes, planned, settings.alpha, spend)
        taken: list[Look] = []
        for n, alpha in zip(sizes, alphas):
            found = decide(group[:ends[n]], replace(settings, alpha=alpha))
            verdict = verdict_for(found, dataset)
            status, resolved, use, needed, sentence = _summary(verdict)
            stop = stop_reason(verdict, planned)
            taken.append(Look(n, alpha, status, resolved, use, needed, sentence, stop))
            if stop:
                break
        last = taken[-1]
        full = verdict_for(decide(group, settings), dataset)
        full_status, full_resolved, full_use, _, full_sentence = _summary(full)
        used = ends[last.questions]
        outcomes.append(ReplayOutcome(
            dataset=dataset, run_id=run_id, round_size=round_size, planned=planned, looks=tuple(taken),
            questions_used=last.questions, questions_available=len(order), calls_used=used,
            calls_available=len(group), status=last.status, use=last.use, sentence=last.sentence,
            full_status=full_status, full_use=full_use, full_sentence=full_sentence,
            agree=last.resolved == full_resolved and last.use == full_use,
            stop_reason=last.stop or EXHAUSTED,
        ))
    return tuple(outcomes)


# ------------------------------------------------------------------ answering in rounds


def round_order(question_ids: Iterable[str], seed: int) -> tuple[str, ...]:
    """The order rounds take questions in: seeded, by a hash of (seed, id), so every round
    is a random sample of the data set whatever order its loader gives (SQuAD 2.0 and long
    documents come grouped by document, needles by cell) and the order depends on the
    seed and the ids alone: a rerun derives the same rounds."""
    import hashlib

    return tuple(sorted(dict.fromkeys(question_ids),
                        key=lambda q: (hashlib.sha1(f"{seed}\x00{q}".encode()).hexdigest(), q)))


@dataclass(frozen=True)
class DatasetLook:
    dataset: str
    status: str
    sentence: str
    stop: str | None


@dataclass(frozen=True)
class RoundReport:
    """The look after one round of an ``lcrag eval --until-decided`` run."""

    number: int  # 1-based
    rounds: int  # looks planned
    questions: int  # answered so far
    planned: int
    alpha: float  # this look's share
    spent: float  # shares of the looks so far, this one included
    total_alpha: float
    verdicts: tuple[DatasetLook, ...]

    @property
    def decided(self) -> bool:
        """Every data set resolved or futile (and at least one data set judged)."""
        return bool(self.verdicts) and all(v.stop for v in self.verdicts)

    def line(self) -> str:
        head = (f"look {self.number}/{self.rounds}: {self.questions}/{self.planned} questions, "
                f"alpha {self.alpha:.2g} at this look ({self.spent:.2g} of {self.total_alpha:g} spent)")
        if not self.verdicts:
            return f"{head}: no answered rows to judge yet"
        parts = [f"{v.dataset}: {v.sentence}" + (f" [{v.stop}]" if v.stop else "") for v in self.verdicts]
        return f"{head}: " + "; ".join(parts)


def judge_round(
    rows: Sequence[LedgerRow],
    *,
    number: int,
    sizes: Sequence[int],
    alphas: Sequence[float],
    planned: int,
    settings: VerdictSettings,
    decide: Decide,
) -> RoundReport:
    """The look after round ``number`` (1-based) over ``rows`` (those of the questions
    answered so far), every data set in them judged at that look's alpha."""
    alpha = alphas[number - 1]
    found = decide(rows, replace(settings, alpha=alpha))
    judged = []
    for name, verdict in sorted(found.items()):
        status, _, _, _, sentence = _summary(verdict)
        judged.append(DatasetLook(name, status, sentence, stop_reason(verdict, planned)))
    return RoundReport(number, len(sizes), sizes[number - 1], planned, alpha, sum(alphas[:number]), settings.alpha,
                       tuple(judged))
