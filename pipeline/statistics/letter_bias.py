"""Letter bias on multiple-choice data sets: is a strategy above *its own* chance?

A small reader asked to pick A-D rarely picks letters evenly: it may answer "A" by
habit, or never "D". Against a data set whose gold letters are not even either
(A 11 / B 24 / C 36 / D 29 in TPO), such a habit alone scores anything from 0 to
0.36, so neither "1 / options" nor the best strategy's rank says whether the reader
read the lecture. This module measures, per strategy, what it chose, what was gold,
how often it was right per gold letter, and whether its hits beat the accuracy its
letter habit alone would reach.

The chance baseline (``LetterProfile.chance``) is

    chance = sum over letters L of P_chosen(L) * P_gold(L)

where P_chosen(L) is the strategy's share of answers naming L (over its ``n``
answered questions; an unparseable reply counts in ``n`` under ``"none"`` and never
matches, so it lowers the baseline, as does a multi-letter choice against a
single-letter gold), and P_gold(L) the share of those same questions whose gold is L.
Why this one: take a *guesser* that, ignoring the question, picks letter L with
probability P_chosen(L). On a question whose gold is g it is right with probability
P_chosen(g); averaged over the questions that is exactly the sum above. So it is the
accuracy of an answerer with the strategy's letter preferences and no knowledge of
the questions -- the null hypothesis "these hits are guesses shaped by a letter
habit". It is the expected agreement of Cohen's kappa (the chosen and gold letter
marginals, independent). The uniform baseline ``1 / options`` is the special case of
an even habit or even golds; ``best_constant`` (always answering one letter) is the
most a habit can reach on these golds.

The test (``p_above_chance``) is the one-sided exact binomial test of ``hits`` out of
``n`` against ``chance`` (``scipy.stats.binomtest``, alternative "greater"), with
the baseline treated as fixed. Two approximations, stated rather than hidden:

* the baseline is estimated from the same questions (the strategy's own choice shares
  and these questions' golds), and its sampling error is ignored, so the p-value is
  slightly optimistic (a little too small) -- a small bias, in the direction of calling
  a strategy above chance, so "not above chance" is the safe reading;
* the guesser's hits are a sum of Bernoulli(P_chosen(g_i)), a Poisson binomial whose
  variance is at most the binomial's with the same mean, so the binomial test is, on
  that account, conservative.

``lead_low`` is the one-sided 97.5% Wilson lower bound of the accuracy minus the
baseline: the lead over chance the data show (negative: none shown). It is the score
interval, so near the 0.025 boundary it can disagree with the exact test; the test
(``above_chance``) decides.

Everything here is a pure function of ledger rows returning frozen dataclasses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from lcrag.core.errors import LcragError
from lcrag.pipeline.scoring.choices import LETTERS, parse_gold
from lcrag.pipeline.statistics.paired_tests import binomial_above
from lcrag.pipeline.statistics.paired_tests import wilson_lower as paired_wilson_lower

if TYPE_CHECKING:
    from lcrag.pipeline.ledger import LedgerRow


class LetterBiasError(LcragError, ValueError):
    """Rows a letter profile cannot be computed from; the message names what is wrong."""


NONE = "none"  # the ``chosen`` key of unparseable replies (``choice`` None)
ALPHA = 0.025  # one-sided level: the lower end of a two-sided 95% interval
CONTROL = "closed-book"  # the strategy that answers without the context
LEAD_LEVEL = 0.975  # one-sided confidence of ``lead_low``
UNLABELLED = "unlabelled"  # data set name for rows whose dataset is None (as ``verdict.UNLABELLED``)
OTHER_KINDS = frozenset({
    "kv", "niah", "niah-agg", "hotpotqa", "hotpotqa-positions", "hotpotqa-pooled", "squad2", "qa-jsonl", "synthetic",
})
"""Data sets this project loads whose answers are not option letters (the names
``verdict.DATASET_KINDS`` gives another kind; repeated, not imported, because
``verdict`` imports this module -- a test keeps the two in step)."""
_TIE = "="  # joins tied letters in ``best_constant`` ("B=C")
_TOLERANCE = 1e-12


@dataclass(frozen=True)
class LetterProfile:
    """One strategy's letters on one multiple-choice data set (see the module docstring).

    ``n`` counts the questions it answered (no error) and was scored on (``em`` set),
    unparseable replies included; ``hits`` those with ``em == 1``. ``chosen`` maps each
    choice as recorded (a letter, letters like ``"AC"``, or ``"none"``) to how often it
    was made, ``gold`` each gold letter to its questions, ``accuracy_by_gold`` each gold
    letter to (hits, questions). ``best_constant`` is the letter (tied letters joined
    with "=", e.g. ``"B=C"``) whose "always that letter" accuracy on these questions is
    highest, with that accuracy."""

    strategy: str
    n: int
    hits: int
    accuracy: float
    chosen: Mapping[str, int]
    gold: Mapping[str, int]
    accuracy_by_gold: Mapping[str, tuple[int, int]]
    chance: float
    best_constant: tuple[str, float]
    p_above_chance: float
    lead_low: float


def uniform_chance(options: int) -> float:
    """The accuracy of picking one of ``options`` options uniformly at random."""
    if isinstance(options, bool) or not isinstance(options, int) or options < 1:
        raise LetterBiasError(f"options must be a positive integer, got {options!r}")
    return 1.0 / options


def gold_letter(row: LedgerRow) -> str | None:
    """The row's gold as one option letter, or None when it is not a single letter
    (free text, several letters, no gold): ``("C",)``, ``("(C)",)`` and
    ``("C. to earn money",)`` give ``"C"``."""
    golds = row.gold_answers
    if not golds:
        return None
    letters = parse_gold(golds, LETTERS)
    return letters if letters is not None and len(letters) == 1 else None


def _mc_dataset(name: str) -> bool:
    """False for data sets the verdict knows to be of another kind (their golds are never
    option letters, even when one happens to read "A")."""
    return name not in OTHER_KINDS


def wilson_lower(hits: int, n: int, level: float = LEAD_LEVEL) -> float:
    """One-sided Wilson score lower bound of a proportion at confidence ``level``
    (``paired_tests.wilson_lower`` at alpha = 1 - level)."""
    if n < 1 or not 0 <= hits <= n:
        raise LetterBiasError(f"need 0 <= hits <= n and n >= 1, got hits={hits!r}, n={n!r}")
    return paired_wilson_lower(hits, n, 1.0 - level)


def _profile(strategy: str, answered: list[tuple[str, str | None, bool]]) -> LetterProfile:
    """``answered``: (gold letter, choice or None, hit) per question."""
    n = len(answered)
    hits = sum(1 for _, _, hit in answered if hit)
    chosen = Counter(choice if choice is not None else NONE for _, choice, _ in answered)
    gold = Counter(g for g, _, _ in answered)
    right = Counter(g for g, _, hit in answered if hit)
    # Sum of products of counts over n^2: exact up to one final division.
    chance = sum(chosen.get(letter, 0) * count for letter, count in gold.items()) / (n * n)
    top = max(gold.values())
    constant = _TIE.join(sorted(letter for letter, count in gold.items() if count == top))
    p_value = binomial_above(hits, n, chance)
    order = sorted(chosen, key=lambda c: (c == NONE, c))
    return LetterProfile(
        strategy=strategy,
        n=n,
        hits=hits,
        accuracy=hits / n,
        chosen=MappingProxyType({c: chosen[c] for c in order}),
        gold=MappingProxyType({g: gold[g] for g in sorted(gold)}),
        accuracy_by_gold=MappingProxyType({g: (right.get(g, 0), gold[g]) for g in sorted(gold)}),
        chance=chance,
        best_constant=(constant, top / n),
        p_above_chance=p_value,
        lead_low=wilson_lower(hits, n) - chance,
    )


def letter_profiles(rows: Iterable[LedgerRow], dataset: str | None = None) -> dict[str, LetterProfile]:
    """Per strategy (sorted by name), its letter profile on one multiple-choice data set.

    Rows count when their gold is a single option letter (``gold_letter``), their data
    set is not one the verdict knows as another kind, ``error`` is None and ``em`` is
    set. ``dataset`` picks the data set (``"unlabelled"`` for rows without one); left
    None, the multiple-choice rows must all come from one data set, since a baseline
    pooled over data sets with different gold letters would be nobody's chance (a
    ``LetterBiasError`` names them). A strategy with no such row has no profile. Two
    answered rows for one (run, question, strategy) are ambiguous and raise."""
    by_strategy: dict[str, dict[tuple[str, str], tuple[str, str | None, bool]]] = {}
    seen: set[str] = set()
    for row in rows:
        name = row.dataset or UNLABELLED
        if dataset is not None and name != dataset:
            continue
        if row.error is not None or row.em is None or not _mc_dataset(name):
            continue
        letter = gold_letter(row)
        if letter is None:
            continue
        seen.add(name)
        per = by_strategy.setdefault(row.strategy, {})
        key = (row.run_id, row.question_id)
        if key in per:
            raise LetterBiasError(
                f"{name}: strategy {row.strategy!r} answered run {key[0]!r} question {key[1]!r} twice; "
                "keep one row per pair")
        per[key] = (letter, row.choice, row.em == 1.0)
    if len(seen) > 1:
        raise LetterBiasError(
            f"multiple-choice rows from {len(seen)} data sets ({', '.join(sorted(seen))}); "
            "pass dataset= to profile one: each has its own gold letters and so its own chance")
    return {strategy: _profile(strategy, list(by_strategy[strategy].values())) for strategy in sorted(by_strategy)}


def _check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise LetterBiasError(f"alpha must be a number in (0, 1), got {alpha!r}")


def above_chance(profile: LetterProfile, alpha: float = ALPHA) -> bool:
    """Whether the strategy's hits are above its letter-bias chance: p < ``alpha``."""
    _check_alpha(alpha)
    return profile.p_above_chance < alpha


def closed_book_is_guessing(
    profiles: Mapping[str, LetterProfile], control: str = CONTROL, alpha: float = ALPHA
) -> bool:
    """True when the closed-book control has a profile and is *not* above its chance
    baseline: its hits are what its letter habit alone would score, so they say nothing
    about questions being answerable without the context. False when the control is
    absent or above chance (it does answer some questions from memory)."""
    _check_alpha(alpha)
    return control in profiles and not above_chance(profiles[control], alpha)


# ------------------------------------------------------------------- findings


@dataclass(frozen=True)
class LetterFindings:
    """What a letter-bias section says, decided here so the report only formats it.

    ``above``: strategies above their chance baseline (p < ``alpha``), in profile
    order. ``best``: the strategies with the highest accuracy (ties: all), at
    ``best_accuracy``. ``constant``: the first best strategy's ``best_constant`` (on its
    own questions, so the two are compared on the same questions), and
    ``best_vs_constant`` is "above", "level with" or "below": where that best strategy
    stands against always answering that letter. ``never_right``: gold letters some
    strategy was asked and no strategy got right once, each with the fewest and most
    questions of that letter a strategy faced. ``control``: the closed-book control when
    profiled, with ``control_guessing`` (``closed_book_is_guessing``) and
    ``control_top``: its most chosen answer (ties: all, joined by "="), times, ``n``."""

    alpha: float
    strategies: tuple[str, ...]
    above: tuple[str, ...]
    best: tuple[str, ...]
    best_accuracy: float | None
    constant: tuple[str, float] | None
    best_vs_constant: str | None
    never_right: Mapping[str, tuple[int, int]]
    control: str | None
    control_guessing: bool | None
    control_top: tuple[str, int, int] | None


def letter_findings(
    profiles: Mapping[str, LetterProfile], control: str = CONTROL, alpha: float = ALPHA
) -> LetterFindings:
    """The notable findings about a data set's letter profiles (see ``LetterFindings``)."""
    _check_alpha(alpha)
    names = tuple(profiles)
    above = tuple(s for s in names if above_chance(profiles[s], alpha))
    best: tuple[str, ...] = ()
    best_accuracy = constant = standing = None
    if names:
        best_accuracy = max(profiles[s].accuracy for s in names)
        best = tuple(s for s in names if profiles[s].accuracy >= best_accuracy - _TOLERANCE)
        lead = profiles[best[0]]
        constant = lead.best_constant
        gap = lead.accuracy - constant[1]
        standing = "above" if gap > _TOLERANCE else "below" if gap < -_TOLERANCE else "level with"
    asked: dict[str, list[int]] = {}
    right: set[str] = set()
    for p in profiles.values():
        for letter, (hits, questions) in p.accuracy_by_gold.items():
            asked.setdefault(letter, []).append(questions)
            if hits:
                right.add(letter)
    never = {letter: (min(counts), max(counts)) for letter, counts in sorted(asked.items()) if letter not in right}
    guessing = top = None
    if control in profiles:
        c = profiles[control]
        guessing = closed_book_is_guessing(profiles, control, alpha)
        most = max(c.chosen.values())
        top = (_TIE.join(k for k, v in c.chosen.items() if v == most), most, c.n)
    return LetterFindings(
        alpha=float(alpha),
        strategies=names,
        above=above,
        best=best,
        best_accuracy=best_accuracy,
        constant=constant,
        best_vs_constant=standing,
        never_right=MappingProxyType(never),
        control=control if control in profiles else None,
        control_guessing=guessing,
        control_top=top,
    )
