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
them from the ledger alone. A look judges every data set in the rows; a data set whose
verdict comes in parts (SQuAD 2.0's answerable and unanswerable questions are judged
apart) is settled when every part is. ``replay`` runs the same rule over rows already
recorded, in the order the questions were first answered, to measure how many reader
calls the rule would have saved and whether it lands where the full-data verdict does.
Everything here is pure: rows in, frozen dataclasses out; the verdict function is
injected (``decide``, default ``verdicts``) so the rule is testable without it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from lcrag.core.errors import LcragError
from lcrag.pipeline.statistics.paired_tests import spending_schedule
from lcrag.pipeline.statistics.verdict import VerdictSettings, verdicts

if TYPE_CHECKING:
    from lcrag.pipeline.ledger import LedgerRow

UNLABELLED = "unlabelled"  # data set name of rows whose dataset is None (as the verdict and report call it)
RESOLVED, FUTILE, EXHAUSTED = "resolved", "futile", "exhausted"  # why a sequence of looks stopped

# decide(rows, settings) -> {data set or part: verdict}; a verdict needs status, resolved,
# use, questions_needed and describe() (``lcrag.pipeline.statistics.verdict.Verdict``)
Decide = Callable[[Sequence["LedgerRow"], VerdictSettings], Mapping[str, Any]]
# spend(alpha, fractions) -> the alpha each look is tested at (default ``spending_schedule``)
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


def look_alphas(sizes: Sequence[int], planned: int, alpha: float, spend: Spend | None = None) -> tuple[float, ...]:
    """The alpha each look is tested at: look j's share of ``alpha`` with t_j =
    sizes[j] / planned (``spending_schedule``). Fewer questions than planned leave the
    unspent rest unused (conservative)."""
    if not sizes:
        return ()
    if planned < 1 or any(n > planned for n in sizes):
        raise SequentialError(f"looks {tuple(sizes)} do not fit {planned} planned questions")
    shares = tuple(float(a) for a in (spend or spending_schedule)(alpha, [n / planned for n in sizes]))
    if len(shares) != len(sizes):
        raise SequentialError(f"the spending schedule gave {len(shares)} alphas for {len(sizes)} looks")
    return shares


FUTILITY_FROM = 0.5
"""Share of the planned questions answered before a look may stop for futility: the size
estimate of an early look is noisy and made at that look's small alpha share (on the
synthetic set 20 of 50 questions said 111 were needed, and all 50 resolved it). Futility
stops never raise the error rate, so when they may happen is a choice of power alone."""


def stop_reason(verdict: Any, planned: int, answered: int | None = None) -> str | None:
    """Why one verdict lets the sequence stop: ``resolved`` (a recommendation), ``futile``
    (unresolved, at least ``FUTILITY_FROM`` of the planned questions ``answered`` (when
    given), and no size up to ``planned`` questions would settle it: ``questions_needed``
    None or above ``planned``), else None (look again). A verdict with nothing to compare
    yet is not futile: more answers may give it something."""
    if verdict is None:
        return None
    if verdict.resolved:
        return RESOLVED
    if answered is not None and answered < FUTILITY_FROM * planned:
        return None
    if verdict.status == "unresolved" and (verdict.questions_needed is None or verdict.questions_needed > planned):
        return FUTILE
    return None


def settled(stops: Iterable[str | None]) -> str | None:
    """Why a look stops given each part's ``stop_reason``: RESOLVED when every part is
    resolved, FUTILE when every part is resolved or futile and one is futile, else None
    (also for no parts at all: nothing was judged)."""
    stops = list(stops)
    if not stops or not all(stops):
        return None
    return RESOLVED if all(s == RESOLVED for s in stops) else FUTILE


def default_decide(strategies: Sequence[str] | None = None) -> Decide:
    """``verdicts`` with the look's settings over ``strategies`` (None: every strategy
    of the rows; the verdict keeps controls out of the contest and uses them for the margin)."""

    def decide(rows: Sequence[LedgerRow], settings: VerdictSettings) -> Mapping[str, Any]:
        return verdicts(rows, None if strategies is None else tuple(strategies), settings=settings)

    return decide


def answering_order(rows: Iterable[LedgerRow]) -> tuple[str, ...]:
    """Question ids in the order they were first answered: the earliest ``created_at``
    over each question's rows (error rows included: they were asked then), ties by id."""
    first: dict[str, float] = {}
    for row in rows:
        if row.question_id not in first or row.created_at < first[row.question_id]:
            first[row.question_id] = row.created_at
    return tuple(sorted(first, key=lambda q: (first[q], q)))


@dataclass(frozen=True)
class PartVerdict:
    """One data set's (or part's) verdict at a look, reduced to what the rule needs."""

    name: str
    status: str
    resolved: bool
    use: tuple[str, ...]  # empty unless resolved
    questions_needed: int | None
    sentence: str
    stop: str | None  # ``stop_reason`` of this verdict


def part_verdicts(found: Mapping[str, Any], planned: int, answered: int | None = None) -> tuple[PartVerdict, ...]:
    """A ``decide`` result as PartVerdicts, by name (``answered``: questions so far, for ``stop_reason``)."""
    out = []
    for name, v in sorted(found.items()):
        out.append(PartVerdict(name, v.status, bool(v.resolved), tuple(v.use) if v.resolved else (),
                               v.questions_needed, v.describe(), stop_reason(v, planned, answered)))
    return tuple(out)


@dataclass(frozen=True)
class Look:
    """One look: the verdicts on the first ``questions`` questions, tested at ``alpha``."""

    questions: int
    alpha: float
    verdicts: tuple[PartVerdict, ...]
    stop: str | None  # ``settled``: RESOLVED or FUTILE when this look ends the sequence


@dataclass(frozen=True)
class PartOutcome:
    """Where the sequence stopped for one data set (or part), against the full-data verdict.
    ``agree``: both recommend the same strategies, or neither recommends any."""

    name: str
    status: str
    use: tuple[str, ...]
    stop: str | None
    sentence: str
    full_status: str
    full_use: tuple[str, ...]
    full_sentence: str

    @property
    def agree(self) -> bool:
        return self.use == self.full_use and (self.status == RESOLVED) == (self.full_status == RESOLVED)


ABSENT = PartVerdict("", "nothing_to_compare", False, (), None, "not judged at this look", None)


@dataclass(frozen=True)
class ReplayOutcome:
    """The sequential rule replayed over one (run, data set) of a ledger, against the
    verdict on all its questions at the full alpha in one look. ``calls`` are ledger rows
    (one reader call per question and strategy); ``parts`` hold one verdict per data set
    or part (SQuAD 2.0's answerable and unanswerable questions are judged apart)."""

    dataset: str
    run_id: str
    round_size: int
    planned: int  # N: the questions the looks' alpha shares are computed over
    looks: tuple[Look, ...]  # every look taken, the stopping one last
    questions_used: int
    questions_available: int
    calls_used: int
    calls_available: int
    parts: tuple[PartOutcome, ...]
    stop_reason: str  # RESOLVED, FUTILE or EXHAUSTED (the last look settled neither)

    @property
    def looks_taken(self) -> int:
        return len(self.looks)

    @property
    def calls_saved(self) -> float:
        """Share of the available reader calls the rule did not need (0 to 1)."""
        return 1.0 - self.calls_used / self.calls_available if self.calls_available else 0.0

    @property
    def agree(self) -> bool:
        return all(p.agree for p in self.parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "run_id": self.run_id, "round_size": self.round_size, "planned": self.planned,
            "looks_taken": self.looks_taken, "questions_used": self.questions_used,
            "questions_available": self.questions_available, "calls_used": self.calls_used,
            "calls_available": self.calls_available, "calls_saved": round(self.calls_saved, 4),
            "stop_reason": self.stop_reason, "agree": self.agree,
            "parts": [{"name": p.name, "status": p.status, "use": list(p.use), "stop": p.stop, "sentence": p.sentence,
                       "full_status": p.full_status, "full_use": list(p.full_use), "full_sentence": p.full_sentence,
                       "agree": p.agree} for p in self.parts],
            "looks": [{"questions": k.questions, "alpha": k.alpha, "stop": k.stop,
                       "verdicts": [{"name": v.name, "status": v.status, "use": list(v.use),
                                     "questions_needed": v.questions_needed, "stop": v.stop} for v in k.verdicts]}
                      for k in self.looks],
        }


def replay(
    rows: Iterable[LedgerRow],
    *,
    round_size: int,
    max_questions: int | None = None,
    settings: VerdictSettings = VerdictSettings(),
    decide: Decide | None = None,
    spend: Spend | None = None,
) -> tuple[ReplayOutcome, ...]:
    """The sequential rule over recorded rows, one outcome per (run_id, data set), in
    that order. Questions come in the order they were first answered (``answering_order``);
    N = ``max_questions`` (capping the questions used) or the questions available. At the
    look after n questions the verdicts of the rows of the first n are taken with alpha =
    that look's share of ``settings.alpha`` (``spend``, default ``spending_schedule``);
    the sequence stops at the first look where every verdict is resolved or futile
    (``settled``), else at the last ("exhausted"). ``decide(rows, settings)`` defaults to
    ``verdicts``; the full-data verdict is ``decide`` on all N questions at ``settings``."""
    if max_questions is not None and (isinstance(max_questions, bool) or not isinstance(max_questions, int)
                                      or max_questions < 1):
        raise SequentialError(f"max_questions must be a whole number >= 1, got {max_questions!r}")
    looks(0, round_size)  # validates the round size
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
        ends = {}  # questions n -> rows of the first n questions (group is sorted by question position)
        for index, row in enumerate(group):
            ends[position[row.question_id] + 1] = index + 1
        sizes = looks(len(order), round_size)
        taken: list[Look] = []
        for n, alpha in zip(sizes, look_alphas(sizes, planned, settings.alpha, spend)):
            judged = part_verdicts(decide(group[:ends[n]], replace(settings, alpha=alpha)), planned, n)
            taken.append(Look(n, alpha, judged, settled(v.stop for v in judged)))
            if taken[-1].stop:
                break
        last = taken[-1]
        full = {v.name: v for v in part_verdicts(decide(group, settings), planned)}
        at_stop = {v.name: v for v in last.verdicts}
        parts = tuple(
            PartOutcome(name, s.status, s.use, s.stop, s.sentence, f.status, f.use, f.sentence)
            for name in sorted(set(full) | set(at_stop))
            for s, f in [(at_stop.get(name, ABSENT), full.get(name, ABSENT))])
        outcomes.append(ReplayOutcome(
            dataset=dataset, run_id=run_id, round_size=round_size, planned=planned, looks=tuple(taken),
            questions_used=last.questions, questions_available=len(order), calls_used=ends[last.questions],
            calls_available=len(group), parts=parts, stop_reason=last.stop or EXHAUSTED,
        ))
    return tuple(outcomes)


# ------------------------------------------------------------------ answering in rounds


def round_order(question_ids: Iterable[str], seed: int) -> tuple[str, ...]:
    """The order rounds take questions in: seeded, by a hash of (seed, id), so every round
    is a random sample of the data set whatever order its loader gives (SQuAD 2.0 and long
    documents come grouped by document, needles by cell) and the order depends on the
    seed and the ids alone: a rerun derives the same rounds."""
    return tuple(sorted(dict.fromkeys(question_ids),
                        key=lambda q: (hashlib.sha1(f"{seed}\x00{q}".encode()).hexdigest(), q)))


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
    verdicts: tuple[PartVerdict, ...]

    @property
    def stop(self) -> str | None:
        """``settled`` over the data sets (and parts) judged: RESOLVED, FUTILE or None."""
        return settled(v.stop for v in self.verdicts)

    @property
    def decided(self) -> bool:
        """Every data set (and part) judged is resolved or futile, and one was judged."""
        return self.stop is not None

    def line(self) -> str:
        head = (f"look {self.number}/{self.rounds}: {self.questions}/{self.planned} questions, "
                f"alpha {self.alpha:.2g} at this look ({self.spent:.2g} of {self.total_alpha:g} spent)")
        if not self.verdicts:
            return f"{head}: no answered rows to judge yet"
        return f"{head}: " + "; ".join(f"{v.name}: {v.sentence}" + (f" [{v.stop}]" if v.stop else "")
                                       for v in self.verdicts)


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
    judged = part_verdicts(decide(rows, replace(settings, alpha=alpha)), planned, sizes[number - 1])
    return RoundReport(number, len(sizes), sizes[number - 1], planned, alpha, sum(alphas[:number]), settings.alpha,
                       judged)
