"""Paired tests with stated error rates, for a verdict rule that compares strategies
answering the same questions.

Every strategy answers the same questions, so comparisons are paired: question
difficulty cancels out of a - b. This module gives the pieces a verdict needs, as
pure functions of plain sequences:

* ``paired_non_inferiority``: is a worse than b by less than a margin? Binary
  per-question scores use Tango's score interval (exact enough at small n, no
  seed); anything else, or questions that share a document, use a (cluster)
  percentile bootstrap. Both report one-sided p-values at the margin.
* ``too_few_clusters`` / ``within_one_question``: flags for results too fragile
  to act on.
* ``cochran_q`` / ``friedman`` / ``global_test``: "do the k strategies differ at
  all?" before any pairwise look.
* ``bonferroni_alpha`` / ``spending_schedule``: keep the family-wise error at
  alpha over many comparisons or many looks at a growing run.
* ``binomial_above`` / ``wilson_lower``: one strategy's accuracy against a fixed
  bar (e.g. chance on multiple choice).

Each function validates its inputs and raises ``PairedTestError`` naming the bad
value. Nothing here keeps state; the bootstrap is seeded.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from lcrag.core.errors import LcragError
from lcrag.pipeline.statistics.intervals import resample_blocks

MIN_RESAMPLES = 10_000
MIN_CLUSTERS = 20
"""Below this many clusters a cluster bootstrap's percentile interval is too narrow:
its coverage falls well short of nominal (Cameron, Gelbach & Miller 2008, Review
of Economics and Statistics 90:414-427, report over-rejection with 5-30 clusters)."""

_BISECTION_STEPS = 200  # each halves the bracket; stops early once it cannot shrink


class PairedTestError(LcragError, ValueError):
    """Inputs a paired test cannot be computed from; the message names the bad value."""


# --------------------------------------------------------------------------- validation


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _check_alpha(alpha: float, *, upper: float = 0.5, name: str = "alpha") -> float:
    if not (_is_real(alpha) and 0.0 < float(alpha) < upper):
        raise PairedTestError(f"{name} must lie strictly between 0 and {upper}, got {alpha!r}")
    return float(alpha)


def _check_margin(margin: float) -> float:
    if not (_is_real(margin) and 0.0 <= float(margin) < 1.0):
        raise PairedTestError(f"margin must lie in [0, 1), got {margin!r}")
    return float(margin)


def _scores(values: Sequence[float], name: str) -> np.ndarray:
    """Per-question scores as floats: finite and in [0, 1]."""
    try:
        data = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise PairedTestError(f"{name} must be a sequence of numbers in [0, 1]: {exc}") from exc
    if data.ndim != 1:
        raise PairedTestError(f"{name} must be one-dimensional (one score per question), got shape {data.shape}")
    bad = np.flatnonzero(~np.isfinite(data) | (data < 0.0) | (data > 1.0))
    if bad.size:
        i = int(bad[0])
        raise PairedTestError(f"{name}[{i}] must be a finite score in [0, 1], got {float(data[i])!r}")
    return data


def _cluster_codes(clusters: Sequence[Hashable], n: int) -> np.ndarray:
    """Cluster label of each question as 0..k-1, numbered in order of first appearance."""
    if isinstance(clusters, (str, bytes)):
        raise PairedTestError("clusters must be a sequence of labels, one per question, not a single string")
    labels = list(clusters)
    if len(labels) != n:
        raise PairedTestError(f"clusters has {len(labels)} labels but there are {n} questions")
    codes: dict[Hashable, int] = {}
    out = np.empty(n, dtype=np.intp)
    for i, label in enumerate(labels):
        try:
            out[i] = codes.setdefault(label, len(codes))
        except TypeError as exc:
            raise PairedTestError(f"clusters[{i}] must be hashable, got {label!r}") from exc
    return out


# --------------------------------------------------------------------------- Tango's score test


def tango_statistic(wins: int, losses: int, n: int, delta0: float) -> float:
    """Tango's score statistic T(delta0) for H0: p(a) - p(b) = delta0 on n paired 0/1 outcomes,
    with ``wins`` = #(a=1, b=0) and ``losses`` = #(a=0, b=1).

    T = (wins - losses - n*delta0) / sqrt(n*(2*q + delta0*(1 - delta0))), q the MLE of
    P(a=0, b=1) restricted to H0 (a root of a quadratic). Tango 1998, Statistics in
    Medicine 17:891-908, in the corrected notation of Tango's 1999 letter (Stat Med
    18:3511-3513) and Fagerland, Lydersen & Laake 2014 (Stat Med 33:2850-2875). At
    delta0 = 0 it is McNemar's (wins - losses)/sqrt(wins + losses). T decreases in
    delta0; at the ends of [-1, 1] it may be +-inf. 0/0 (nothing to test) is 0.
    """
    b, c, n, delta = _check_table(wins, losses, n, delta0)
    return _tango(b, c, n, delta)


def _check_table(wins: int, losses: int, n: int, delta0: float) -> tuple[int, int, int, float]:
    for name, value in (("wins", wins), ("losses", losses), ("n", n)):
        if not _is_int(value) or value < 0:
            raise PairedTestError(f"{name} must be a non-negative integer, got {value!r}")
    if n < 1:
        raise PairedTestError(f"n must be at least 1, got {n!r}")
    if wins + losses > n:
        raise PairedTestError(f"wins + losses = {wins + losses} exceeds the {n} pairs")
    if not (_is_real(delta0) and -1.0 <= float(delta0) <= 1.0):
        raise PairedTestError(f"delta0 must lie in [-1, 1], got {delta0!r}")
    return int(wins), int(losses), int(n), float(delta0)


def _tango(b: int, c: int, n: int, delta: float) -> float:
    numerator = b - c - n * delta
    if numerator == 0.0:
        return 0.0
    big_a = 2.0 * n
    big_b = -b - c + (2.0 * n - b + c) * delta
    big_c = -c * delta * (1.0 - delta)
    disc = max(0.0, big_b * big_b - 4.0 * big_a * big_c)
    q = (math.sqrt(disc) - big_b) / (2.0 * big_a)
    variance = n * (2.0 * q + delta * (1.0 - delta))
    if variance <= 0.0:
        return math.copysign(math.inf, numerator)
    return numerator / math.sqrt(variance)


def _crossing(f, target: float, lo: float, hi: float) -> float:
    """The delta in [lo, hi] where the decreasing f crosses target (f(lo) > target >= f(hi)), by bisection."""
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def tango_interval(wins: int, losses: int, n: int, alpha: float = 0.025) -> tuple[float, float]:
    """The two-sided (1 - 2*alpha) Tango score interval for p(a) - p(b): every delta0 in
    [-1, 1] with |T(delta0)| <= z_{1-alpha}. Found by bisection (T is monotone), so it
    needs no seed; it equals R's PropCIs::scoreci.mp(losses, wins, n, 1 - 2*alpha)."""
    b, c, n, _ = _check_table(wins, losses, n, 0.0)
    alpha = _check_alpha(alpha)
    return _tango_interval(b, c, n, stats.norm.isf(alpha))


def _tango_interval(b: int, c: int, n: int, z: float) -> tuple[float, float]:
    estimate = (b - c) / n  # T(estimate) = 0, inside the interval

    def t(delta: float) -> float:
        return _tango(b, c, n, delta)

    low = -1.0 if t(-1.0) <= z else _crossing(t, z, -1.0, estimate)
    high = 1.0 if t(1.0) >= -z else _crossing(t, -z, estimate, 1.0)
    return low, high


# --------------------------------------------------------------------------- non-inferiority


@dataclass(frozen=True)
class NonInferiority:
    """Paired comparison of a against b with margin: H0: mean(a-b) <= -margin (a is worse by the margin or more).

    ``low``/``high`` bound the two-sided (1 - 2*alpha) interval of mean(a - b), so
    ``low > -margin`` is the one-sided non-inferiority test at level alpha.
    ``p_non_inferior`` is small when a is shown non-inferior, ``p_inferior`` small when
    a is shown worse by more than the margin. ``method`` is "tango-score",
    "bootstrap+t" or "cluster-bootstrap+t" (the more conservative of a bootstrap and
    a cluster-robust t-test); ``clusters`` counts the clusters (else None),
    ``resamples`` the bootstrap draws (None for Tango).
    """

    mean_diff: float
    low: float
    high: float
    p_non_inferior: float
    p_inferior: float
    alpha: float
    margin: float
    n_pairs: int
    wins: int
    losses: int
    ties: int
    method: str
    clusters: int | None
    resamples: int | None


def paired_non_inferiority(
    a: Sequence[float],
    b: Sequence[float],
    *,
    margin: float,
    alpha: float = 0.025,
    clusters: Sequence[Hashable] | None = None,
    resamples: int = 20_000,
    seed: int = 0,
) -> NonInferiority:
    """Is a non-inferior to b by ``margin``? a[i] and b[i] score the same question i.

    Binary scores on independent questions use Tango's score test (Tango 1998; Nam
    1997): it keeps its level at small n and its interval needs no seed. Otherwise a
    percentile bootstrap of the mean difference (Efron & Tibshirani 1993) with
    ``resamples`` seeded draws; when some cluster (e.g. the document a question is
    about) holds 2+ questions, whole clusters are resampled, since questions on one
    document are not independent and resampling them singly understates the spread
    (Davison & Hinkley 1997, sec. 3.8); a single cluster for every question (one
    corpus of many documents) carries no such information and counts as none. Bootstrap p-values are
    (1 + #{boot mean beyond -margin}) / (resamples + 1). A bootstrap alone fails at
    small n or with few clusters (no resample crosses the margin, so it reports near
    certainty: 14 questions on 10 lectures, none worse, "passed" at a 0.04% level), so
    the result is the more conservative of it and a cluster-robust t-test with k - 1
    degrees of freedom (``_robust_t``), whose variance has a floor at the margin.
    """
    margin = _check_margin(margin)
    alpha = _check_alpha(alpha)
    if not _is_int(resamples) or resamples < MIN_RESAMPLES:
        raise PairedTestError(
            f"resamples must be an integer of at least {MIN_RESAMPLES} (p-values near alpha need them), got {resamples!r}"
        )
    if not _is_int(seed):
        raise PairedTestError(f"seed must be an integer, got {seed!r}")
    left = _scores(a, "a")
    right = _scores(b, "b")
    if left.size != right.size:
        raise PairedTestError(f"a has {left.size} scores but b has {right.size}; they must be aligned per question")
    n = int(left.size)
    if n == 0:
        raise PairedTestError("paired_non_inferiority needs at least one question, got 0")
    codes = None if clusters is None else _cluster_codes(clusters, n)
    if codes is not None and int(codes.max()) == 0:
        codes = None  # one cluster (a corpus of many documents) says nothing about which questions move together
    k = n if codes is None else int(codes.max()) + 1
    wins = int(np.sum(left > right))
    losses = int(np.sum(left < right))
    common: dict[str, Any] = dict(alpha=alpha, margin=margin, n_pairs=n, wins=wins, losses=losses, ties=n - wins - losses)

    binary = bool(np.all((left == 0.0) | (left == 1.0)) and np.all((right == 0.0) | (right == 1.0)))
    if binary and k == n:
        t = _tango(wins, losses, n, -margin)
        low, high = _tango_interval(wins, losses, n, stats.norm.isf(alpha))
        return NonInferiority(
            mean_diff=(wins - losses) / n,
            low=low,
            high=high,
            p_non_inferior=float(stats.norm.sf(t)),
            p_inferior=float(stats.norm.cdf(t)),
            method="tango-score",
            clusters=None,
            resamples=None,
            **common,
        )

    diffs = left - right
    method, n_clusters = ("bootstrap", None) if k == n else ("cluster-bootstrap", k)
    if codes is None:
        sums, sizes = diffs, np.ones(n)
    else:
        sums = np.bincount(codes, weights=diffs, minlength=k)
        sizes = np.bincount(codes, minlength=k).astype(float)
    t_test = _robust_t(sums, sizes, margin, alpha)
    if np.all(diffs == diffs[0]):
        point = float(diffs[0])
        boot = (point, point, 0.0 if point > -margin else 1.0, 0.0 if point < -margin else 1.0)
    else:
        means = _bootstrap_ratio(sums, sizes, resamples, seed)
        low, high = np.quantile(means, [alpha, 1.0 - alpha])
        boot = (float(low), float(high), (1 + int(np.sum(means <= -margin))) / (resamples + 1),
                (1 + int(np.sum(means >= -margin))) / (resamples + 1))
    # the more conservative of the two: each is valid where the other fails (the bootstrap
    # at small n or few clusters says "certain" when no resample crosses the margin; the
    # t-test leans on normality), and the larger p-value is valid when either is
    return NonInferiority(
        mean_diff=float(diffs.mean()),
        low=min(boot[0], t_test[0]),
        high=max(boot[1], t_test[1]),
        p_non_inferior=max(boot[2], t_test[2]),
        p_inferior=max(boot[3], t_test[3]),
        method=f"{method}+t",
        clusters=n_clusters,
        resamples=resamples,
        **common,
    )


def _robust_t(sums: np.ndarray, sizes: np.ndarray, margin: float, alpha: float) -> tuple[float, float, float, float]:
    """(low, high, p_non_inferior, p_inferior) of the mean difference by a t-test on
    ``k`` independent units (questions, or clusters with their sums): the cluster-robust
    variance (CR1) with k - 1 degrees of freedom, which stays honest with few clusters
    (Cameron, Gelbach & Miller 2008; Bell & McCaffrey 2002). The variance of the mean has
    a floor of margin * (1 - margin) / N, what the score test assumes at the margin when
    the two barely disagree, so a handful of identical answers is never "certain"."""
    k, total = sums.size, float(sizes.sum())
    mean = float(sums.sum() / total)
    if k < 2:
        return -1.0, 1.0, 1.0, 1.0
    residual = sums - sizes * mean
    variance = k / (k - 1) * float(np.sum(residual ** 2)) / total ** 2
    se = math.sqrt(max(variance, margin * (1.0 - margin) / total, 1e-12))
    df = k - 1
    crit = float(stats.t.isf(alpha, df))
    statistic = (mean + margin) / se
    return (mean - crit * se, mean + crit * se, float(stats.t.sf(statistic, df)), float(stats.t.cdf(statistic, df)))


def _bootstrap_ratio(sums: np.ndarray, sizes: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Means over all questions of k units drawn with replacement from k (units = questions
    or clusters), drawn in blocks so memory stays bounded."""
    out = np.empty(resamples)
    for start, stop, idx in resample_blocks(sums.size, resamples, seed):
        out[start:stop] = sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
    return out


def too_few_clusters(clusters: int | None) -> bool:
    """True when a cluster bootstrap rests on fewer than MIN_CLUSTERS clusters: its
    interval is then too narrow to trust (Cameron, Gelbach & Miller 2008)."""
    if clusters is None:
        return False
    if not _is_int(clusters) or clusters < 1:
        raise PairedTestError(f"clusters must be None or a positive integer, got {clusters!r}")
    return clusters < MIN_CLUSTERS


def within_one_question(bound: float, margin: float, n: int) -> bool:
    """True when |bound - (-margin)| < 1/n: one question's answer flipping moves a mean
    by 1/n, so it could carry the bound across the margin and the verdict with it."""
    if not (_is_real(bound) and math.isfinite(bound)):
        raise PairedTestError(f"bound must be a finite number, got {bound!r}")
    margin = _check_margin(margin)
    if not _is_int(n) or n < 1:
        raise PairedTestError(f"n must be a positive integer, got {n!r}")
    return abs(float(bound) + margin) < 1.0 / n


# --------------------------------------------------------------------------- k strategies at once


@dataclass(frozen=True)
class GlobalTest:
    """An omnibus test that k strategies score alike on n questions (blocks):
    ``name`` is "cochran-q" or "friedman"; chi-square ``statistic`` on ``df`` = k - 1."""

    name: str
    statistic: float
    df: int
    p_value: float
    n: int
    k: int


def _matrix(matrix: Sequence[Sequence[float]]) -> np.ndarray:
    try:
        data = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError) as exc:
        raise PairedTestError(f"matrix must be rows (questions) of equal length holding numbers: {exc}") from exc
    if data.ndim != 2:
        raise PairedTestError(f"matrix must be two-dimensional (questions x strategies), got shape {data.shape}")
    n, k = data.shape
    if n < 1:
        raise PairedTestError("matrix needs at least one row (question), got 0")
    if k < 2:
        raise PairedTestError(f"matrix needs at least 2 columns (strategies) to compare, got {k}")
    bad = np.argwhere(~np.isfinite(data))
    if bad.size:
        i, j = (int(x) for x in bad[0])
        raise PairedTestError(f"matrix[{i}][{j}] must be finite, got {float(data[i, j])!r}")
    return data


def _is_binary(data: np.ndarray) -> bool:
    return bool(np.all((data == 0.0) | (data == 1.0)))


def cochran_q(matrix: Sequence[Sequence[float]]) -> GlobalTest:
    """Cochran's Q (Cochran 1950, Biometrika 37:256-266) for 0/1 outcomes, rows = questions,
    columns = strategies: Q = (k-1)(k*sum C_j^2 - N^2) / (k*N - sum R_i^2), chi-square with
    k-1 df. Rows where every strategy agrees add nothing; if all do, Q = 0 and p = 1.
    With k = 2 it is McNemar's chi-square without continuity correction."""
    data = _matrix(matrix)
    if not _is_binary(data):
        i, j = (int(x) for x in np.argwhere((data != 0.0) & (data != 1.0))[0])
        raise PairedTestError(f"cochran_q needs 0/1 outcomes; matrix[{i}][{j}] is {float(data[i, j])!r}")
    n, k = data.shape
    cols = data.sum(axis=0)
    rows = data.sum(axis=1)
    total = rows.sum()
    denominator = k * total - float(np.sum(rows**2))
    if denominator == 0.0:
        return GlobalTest(name="cochran-q", statistic=0.0, df=k - 1, p_value=1.0, n=n, k=k)
    q = (k - 1) * (k * float(np.sum(cols**2)) - total**2) / denominator
    return GlobalTest(name="cochran-q", statistic=float(q), df=k - 1, p_value=float(stats.chi2.sf(q, k - 1)), n=n, k=k)


def friedman(matrix: Sequence[Sequence[float]]) -> GlobalTest:
    """Friedman's rank test (Friedman 1937, JASA 32:675-701), rows = questions, columns =
    strategies, any scores; ties get average ranks and the statistic is corrected for
    them (Conover 1999, sec. 5.8): (k-1) * sum_j S_j^2 / sum_ij d_ij^2 with d the ranks
    centred at (k+1)/2 and S_j their column sums. Equals scipy's friedmanchisquare
    (which needs k >= 3; this works for k = 2 too). All rows constant: 0, p = 1."""
    data = _matrix(matrix)
    n, k = data.shape
    centred = stats.rankdata(data, axis=1) - (k + 1) / 2.0
    spread = float(np.sum(centred**2))
    if spread == 0.0:
        return GlobalTest(name="friedman", statistic=0.0, df=k - 1, p_value=1.0, n=n, k=k)
    statistic = (k - 1) * float(np.sum(centred.sum(axis=0) ** 2)) / spread
    return GlobalTest(
        name="friedman", statistic=statistic, df=k - 1, p_value=float(stats.chi2.sf(statistic, k - 1)), n=n, k=k
    )


def global_test(matrix: Sequence[Sequence[float]]) -> GlobalTest:
    """Cochran's Q when every value is 0/1 (the exact binary case of Friedman's test),
    else Friedman's test. Needs n >= 1 rows and k >= 2 columns."""
    data = _matrix(matrix)
    return cochran_q(data) if _is_binary(data) else friedman(data)


# --------------------------------------------------------------------------- error-rate bookkeeping


def bonferroni_alpha(alpha: float, comparisons: int) -> float:
    """Per-comparison level alpha / comparisons: the family-wise error stays <= alpha by
    the union bound whatever the dependence between comparisons (Dunn 1961)."""
    alpha = _check_alpha(alpha, upper=1.0)
    if not _is_int(comparisons) or comparisons < 0:
        raise PairedTestError(f"comparisons must be a non-negative integer, got {comparisons!r}")
    return alpha / max(1, int(comparisons))


def spending_schedule(alpha: float, fractions: Sequence[float], rho: float = 3.0) -> tuple[float, ...]:
    """Alpha spent at each look of a sequential analysis, with the power-family spending
    function alpha * t**rho (Lan & DeMets 1983, Biometrika 70:659-663; Kim & DeMets 1987,
    Biometrics 43:857-864); t = information fraction at each look (e.g. questions so far /
    planned), strictly increasing in (0, 1]. Look j gets alpha*(t_j**rho - t_{j-1}**rho),
    t_0 = 0. Testing each look at its own share keeps the overall error <= alpha by the
    union bound, however many looks and without their joint distribution (conservative).
    A run that stops early simply leaves the unspent alpha unused."""
    alpha = _check_alpha(alpha, upper=1.0)
    if not (_is_real(rho) and math.isfinite(rho) and rho > 0):
        raise PairedTestError(f"rho must be a positive number, got {rho!r}")
    if isinstance(fractions, (str, bytes)):
        raise PairedTestError("fractions must be a sequence of numbers, not a string")
    ts = list(fractions)
    if not ts:
        raise PairedTestError("fractions needs at least one look, got none")
    previous = 0.0
    spent: list[float] = []
    for j, t in enumerate(ts):
        if not (_is_real(t) and 0.0 < float(t) <= 1.0):
            raise PairedTestError(f"fractions[{j}] must lie in (0, 1], got {t!r}")
        if float(t) <= previous:
            raise PairedTestError(f"fractions must be strictly increasing; fractions[{j}] = {t!r} follows {previous!r}")
        spent.append(alpha * (float(t) ** rho - previous**rho))
        previous = float(t)
    return tuple(spent)


# --------------------------------------------------------------------------- one strategy against a bar


def _check_counts(hits: int, n: int) -> tuple[int, int]:
    if not _is_int(n) or n < 1:
        raise PairedTestError(f"n must be a positive integer, got {n!r}")
    if not _is_int(hits) or not 0 <= hits <= n:
        raise PairedTestError(f"hits must be an integer in [0, {n}], got {hits!r}")
    return int(hits), int(n)


def binomial_above(hits: int, n: int, p0: float) -> float:
    """One-sided exact binomial p-value for accuracy > p0: P(X >= hits) with X ~ Bin(n, p0)
    (Clopper & Pearson's tail; scipy.stats.binomtest, alternative="greater")."""
    hits, n = _check_counts(hits, n)
    if not (_is_real(p0) and 0.0 <= float(p0) <= 1.0):
        raise PairedTestError(f"p0 must lie in [0, 1], got {p0!r}")
    return float(stats.binomtest(hits, n, float(p0), alternative="greater").pvalue)


def wilson_lower(hits: int, n: int, alpha: float = 0.025) -> float:
    """One-sided (1 - alpha) Wilson score lower bound for a proportion (Wilson 1927, JASA
    22:209-212): unlike the Wald bound it stays in [0, 1] and keeps near-nominal coverage
    at small n and accuracies near 0 or 1."""
    hits, n = _check_counts(hits, n)
    alpha = _check_alpha(alpha)
    z = float(stats.norm.isf(alpha))
    p = hits / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return max(0.0, centre - half)
