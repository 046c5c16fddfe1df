"""Paired tests for the verdict: Tango's score test against McNemar and published
intervals, the (cluster) bootstrap, seeded simulations of the error rates, the omnibus
tests against hand computations and scipy, and the error-rate bookkeeping."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from lcrag.core.errors import LcragError
from lcrag.pipeline.statistics.paired_tests import (
    MIN_CLUSTERS,
    GlobalTest,
    NonInferiority,
    PairedTestError,
    binomial_above,
    bonferroni_alpha,
    cochran_q,
    friedman,
    global_test,
    paired_non_inferiority,
    spending_schedule,
    tango_interval,
    tango_statistic,
    too_few_clusters,
    wilson_lower,
    within_one_question,
)

Z975 = stats.norm.isf(0.025)


def pairs(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[int], list[int]]:
    """Per-question 0/1 scores of a and b from the four cells of a paired 2x2 table."""
    a = [1] * both + [1] * only_a + [0] * only_b + [0] * neither
    b = [1] * both + [0] * only_a + [1] * only_b + [0] * neither
    return a, b


def tables_from_categories(categories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-run (wins, losses) from per-question categories: 0 = a only right, 1 = b only, 2 = tie."""
    return (categories == 0).sum(axis=1), (categories == 1).sum(axis=1)


def tango_p_non_inferior(wins: np.ndarray, losses: np.ndarray, n: int, margin: float) -> np.ndarray:
    t = np.array([tango_statistic(int(w), int(lo), n, -margin) for w, lo in zip(wins, losses)])
    return stats.norm.sf(t)


# --------------------------------------------------------------------------- Tango's score test


@pytest.mark.parametrize("wins, losses, n", [(30, 12, 100), (12, 30, 100), (1, 7, 21), (5, 0, 5), (3, 3, 40), (1, 0, 1)])
def test_tango_at_zero_is_mcnemar(wins, losses, n):
    t = tango_statistic(wins, losses, n, 0.0)
    assert t == pytest.approx((wins - losses) / math.sqrt(wins + losses), rel=1e-12)
    assert t**2 == pytest.approx((wins - losses) ** 2 / (wins + losses), rel=1e-12)


def test_tango_with_no_discordant_pairs_is_zero_at_zero():
    assert tango_statistic(0, 0, 50, 0.0) == 0.0


@pytest.mark.parametrize(
    "table, alpha, expected",
    [
        # Bentur et al. 2009 airway data (both 1, a only 1, b only 7, neither 12), the worked
        # example of Fagerland, Lydersen & Laake 2014 (Stat Med 33:2850-2875): Tango 95% CI
        # -0.517 to -0.026 for the difference -0.2857.
        ((1, 1, 7, 12), 0.025, (-0.517, -0.026)),
    ],
)
def test_tango_matches_published_interval(table, alpha, expected):
    a, b = pairs(*table)
    result = paired_non_inferiority(a, b, margin=0.05, alpha=alpha)
    assert result.method == "tango-score"
    assert result.mean_diff == pytest.approx(-6 / 21)
    assert (round(result.low, 3), round(result.high, 3)) == expected


def test_tango_interval_matches_propcis_scoreci_mp():
    # R: PropCIs::scoreci.mp(25, 28, 618, conf.level = 0.90) -> [-0.0148, 0.0247];
    # scoreci.mp estimates (c - b)/n, i.e. wins = 28 and losses = 25 here.
    low, high = tango_interval(28, 25, 618, alpha=0.05)
    assert (round(low, 4), round(high, 4)) == (-0.0148, 0.0247)


@pytest.mark.parametrize("n", [5, 21, 400])
def test_tango_interval_without_discordant_pairs_has_closed_form(n):
    # b = c = 0: T(d) = sqrt(n * |d| / (1 - |d|)), so the bound solves |d| = z^2 / (n + z^2)
    low, high = tango_interval(0, 0, n, alpha=0.025)
    bound = Z975**2 / (n + Z975**2)
    assert low == pytest.approx(-bound, abs=1e-12)
    assert high == pytest.approx(bound, abs=1e-12)


@pytest.mark.parametrize("wins, losses, n", [(1, 7, 21), (0, 0, 10), (5, 0, 5), (0, 5, 5), (40, 20, 160), (2, 0, 3), (0, 1, 1)])
def test_tango_statistic_decreases_in_delta(wins, losses, n):
    grid = np.linspace(-1.0, 1.0, 801)
    values = np.array([tango_statistic(wins, losses, n, float(d)) for d in grid])
    assert np.all(np.diff(values) <= 1e-12), f"T not monotone for ({wins}, {losses}, {n})"
    assert values[0] > values[-1]


@pytest.mark.parametrize("table", [(1, 1, 7, 12), (50, 10, 3, 37), (0, 0, 0, 9), (0, 4, 0, 0), (0, 0, 4, 0), (10, 3, 3, 4)])
def test_tango_interval_contains_estimate_and_stays_in_range(table):
    a, b = pairs(*table)
    result = paired_non_inferiority(a, b, margin=0.1)
    assert -1.0 <= result.low <= result.mean_diff <= result.high <= 1.0
    assert (result.wins, result.losses, result.ties) == (table[1], table[2], table[0] + table[3])
    # each bound is where |T| reaches z (unless it sits on -1 or 1)
    for bound, target in ((result.low, Z975), (result.high, -Z975)):
        if abs(bound) < 1.0:
            assert tango_statistic(result.wins, result.losses, result.n_pairs, bound) == pytest.approx(target, abs=1e-6)


def test_tango_result_does_not_depend_on_seed_or_resamples():
    a, b = pairs(40, 9, 14, 37)
    first = paired_non_inferiority(a, b, margin=0.05, seed=0)
    assert first == paired_non_inferiority(a, b, margin=0.05, seed=12345, resamples=50_000)
    assert first.resamples is None and first.clusters is None


def test_all_tied_is_non_inferior_only_with_enough_questions():
    small = paired_non_inferiority(*pairs(3, 0, 0, 2), margin=0.05, alpha=0.025)
    assert small.mean_diff == 0.0 and small.ties == 5
    assert small.p_non_inferior > 0.025, small
    assert small.low < -0.05
    large = paired_non_inferiority(*pairs(250, 0, 0, 150), margin=0.05, alpha=0.025)
    assert large.p_non_inferior < 0.025, large
    assert large.low > -0.05
    # closed form with no discordant pairs: T(-m) = sqrt(n * m / (1 - m))
    assert small.p_non_inferior == pytest.approx(stats.norm.sf(math.sqrt(5 * 0.05 / 0.95)))


def test_tango_p_values_agree_with_interval():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(1, 120))
        cells = rng.multinomial(n, rng.dirichlet([1, 1, 1, 1]))
        margin = float(rng.uniform(0, 0.3))
        result = paired_non_inferiority(*pairs(*cells), margin=margin)
        assert result.p_non_inferior + result.p_inferior == pytest.approx(1.0)
        if abs(result.low + margin) > 1e-9:
            assert (result.p_non_inferior < result.alpha) == (result.low > -margin), (cells, margin, result)


def test_binary_scores_with_singleton_clusters_use_tango():
    a, b = pairs(10, 5, 2, 3)
    result = paired_non_inferiority(a, b, margin=0.05, clusters=[f"doc{i}" for i in range(20)])
    assert result.method == "tango-score" and result.clusters is None
    assert result == paired_non_inferiority(a, b, margin=0.05)


# --------------------------------------------------------------------------- bootstrap


def continuous_scores(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    b = rng.uniform(0.2, 0.8, n)
    a = np.clip(b + shift + rng.normal(0, 0.1, n), 0, 1)
    return a, b


def test_bootstrap_is_reproducible_and_seed_noise_is_small():
    a, b = continuous_scores(300, seed=1)
    first = paired_non_inferiority(a, b, margin=0.05, seed=0)
    assert first.method == "bootstrap+t" and first.resamples == 20_000 and first.clusters is None
    assert first == paired_non_inferiority(a, b, margin=0.05, seed=0)
    other = paired_non_inferiority(a, b, margin=0.05, seed=1)
    assert abs(other.low - first.low) < 0.002 and abs(other.high - first.high) < 0.002


def test_bootstrap_interval_matches_normal_approximation():
    a, b = continuous_scores(400, seed=2, shift=-0.02)
    result = paired_non_inferiority(a, b, margin=0.05)
    d = a - b
    # the t-test's standard error has a floor at what the score test assumes at the margin
    se = max(d.std(ddof=1), math.sqrt(0.05 * 0.95)) / math.sqrt(d.size)
    assert result.mean_diff == pytest.approx(d.mean())
    assert result.low == pytest.approx(d.mean() - Z975 * se, abs=0.2 * se)
    assert result.high == pytest.approx(d.mean() + Z975 * se, abs=0.2 * se)
    # one-sided p-value at -margin against the t tail (the mean is ~2.3 floored se above -margin)
    assert result.p_non_inferior == pytest.approx(stats.t.sf((d.mean() + 0.05) / se, d.size - 1), rel=0.05)
    assert result.p_non_inferior < 0.025 and result.low > -0.05
    assert result.p_inferior == pytest.approx(1.0, abs=1e-3)


def test_bootstrap_p_values_follow_the_resample_counts():
    a, b = continuous_scores(40, seed=3, shift=-0.05)
    result = paired_non_inferiority(a, b, margin=0.05, resamples=10_000)
    assert result.p_non_inferior + result.p_inferior >= 1.0  # both count draws exactly at -margin
    assert 0.05 < result.p_non_inferior < 0.95
    assert result.low < -0.05 < result.high


@pytest.mark.parametrize(
    "clusters, method, count",
    [
        (None, "bootstrap+t", None),
        ([f"q{i}" for i in range(30)], "bootstrap+t", None),
        ([f"q{i}" for i in range(29)] + ["q0"], "cluster-bootstrap+t", 29),
        ([i // 3 for i in range(30)], "cluster-bootstrap+t", 10),
    ],
)
def test_cluster_bootstrap_only_when_a_cluster_repeats(clusters, method, count):
    a, b = continuous_scores(30, seed=4)
    result = paired_non_inferiority(a, b, margin=0.05, clusters=clusters, resamples=10_000)
    assert (result.method, result.clusters) == (method, count)


def test_cluster_bootstrap_is_used_for_clustered_binary_scores():
    a, b = pairs(10, 6, 2, 12)
    result = paired_non_inferiority(a, b, margin=0.05, clusters=[i // 2 for i in range(30)], resamples=10_000)
    assert result.method == "cluster-bootstrap+t" and result.clusters == 15
    assert result.mean_diff == pytest.approx(4 / 30)


def test_few_clusters_and_no_losses_are_never_near_certainty():
    """The real case a bootstrap alone got wrong: 14 questions on 10 lectures, the cheap
    strategy never worse: no resample crosses the margin, so the bootstrap's p-value is its
    floor (5e-5); the cluster-robust t-test with 9 degrees of freedom keeps it honest."""
    a = [1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1]
    b = [1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1, 1]
    docs = [0, 0, 1, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9, 9]
    result = paired_non_inferiority(a, b, margin=0.05, alpha=0.00039, clusters=docs)
    assert result.losses == 0 and result.p_non_inferior > 0.00039 and result.low < -0.05
    assert result.p_non_inferior > 1 / 20_001


def test_cluster_interval_is_wider_when_questions_on_a_document_move_together():
    rng = np.random.default_rng(5)
    per_doc = rng.uniform(-0.3, 0.3, 30)  # 30 documents, 10 questions each, identical diffs within one
    diffs = np.repeat(per_doc, 10)
    b = np.full(diffs.size, 0.5)
    a = b + diffs
    docs = np.repeat(np.arange(30), 10)
    naive = paired_non_inferiority(a, b, margin=0.05)
    clustered = paired_non_inferiority(a, b, margin=0.05, clusters=docs.tolist())
    assert clustered.method == "cluster-bootstrap+t" and clustered.clusters == 30
    assert clustered.mean_diff == pytest.approx(naive.mean_diff)
    # ten copies of each value: the honest spread is ~sqrt(10) times the naive one
    ratio = (clustered.high - clustered.low) / (naive.high - naive.low)
    assert ratio > 2.5, ratio
    assert not too_few_clusters(clustered.clusters)


def test_cluster_bootstrap_averages_questions_not_clusters():
    # 20 one-question documents where a gains 0.4, 20 nine-question documents with no gain:
    # the mean over questions is 8 / 200 = 0.04, the mean of document means would be 0.2
    diffs = [0.4] * 20 + [0.0] * 180
    docs = list(range(20)) + [20 + i // 9 for i in range(180)]
    b = [0.5] * 200
    a = [0.5 + d for d in diffs]
    result = paired_non_inferiority(a, b, margin=0.05, clusters=docs, resamples=10_000)
    assert result.mean_diff == pytest.approx(0.04)
    assert result.low < 0.04 < result.high < 0.2


@pytest.mark.parametrize("n, shown", [(5, False), (10, False), (400, True)])
def test_identical_differences_need_enough_questions(n, shown):
    """No spread gives the bootstrap nothing to resample; the t-test's variance floor
    (what the score test assumes at the margin) decides, as Tango does for 0/1 scores."""
    result = paired_non_inferiority([0.7] * n, [0.7] * n, margin=0.05)
    assert result.method == "bootstrap+t" and result.mean_diff == 0.0
    assert (result.p_non_inferior < 0.025) is shown
    worse = paired_non_inferiority([0.5] * n, [0.6] * n, margin=0.05)
    assert worse.p_non_inferior > 0.5


def test_result_is_frozen():
    result = paired_non_inferiority(*pairs(5, 1, 1, 5), margin=0.05)
    assert isinstance(result, NonInferiority)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.low = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(a=[1, 0], b=[1]), "a has 2 scores but b has 1"),
        (dict(a=[], b=[]), "at least one question"),
        (dict(a=[0.5, 1.2], b=[0, 0]), "a[1]"),
        (dict(a=[0.5, 0.5], b=[0, float("nan")]), "b[1]"),
        (dict(a=[0.5, 0.5], b=[0, -0.1]), "-0.1"),
        (dict(a=[1, 0], b=[1, 0], margin=1.0), "margin"),
        (dict(a=[1, 0], b=[1, 0], margin=-0.01), "margin"),
        (dict(a=[1, 0], b=[1, 0], alpha=0.5), "alpha"),
        (dict(a=[1, 0], b=[1, 0], alpha=0.0), "alpha"),
        (dict(a=[1, 0], b=[1, 0], resamples=9_999), "9999"),
        (dict(a=[1, 0], b=[1, 0], clusters=["x"]), "clusters has 1 labels but there are 2"),
        (dict(a=[1, 0], b=[1, 0], clusters=[[1], [2]]), "clusters[0]"),
    ],
)
def test_non_inferiority_rejects_bad_inputs(kwargs, fragment):
    kwargs = {"margin": 0.05, **kwargs}
    with pytest.raises(PairedTestError) as info:
        paired_non_inferiority(**kwargs)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, LcragError)


# --------------------------------------------------------------------------- simulations


def test_tango_non_inferiority_keeps_its_level_at_the_margin():
    """True difference exactly -margin (discordance 0.3, n = 100): the one-sided test at
    alpha may reject at most alpha plus simulation noise. Goes through the public function."""
    rng = np.random.default_rng(20240601)
    n, margin, alpha, runs, disc = 100, 0.05, 0.025, 4000, 0.3
    p_only_a, p_only_b = (disc - margin) / 2, (disc + margin) / 2
    cells = rng.multinomial(n, [p_only_a, p_only_b, 1 - disc], size=runs)
    rejections = 0
    for only_a, only_b, tied in cells:
        result = paired_non_inferiority(*pairs(int(tied), int(only_a), int(only_b), 0), margin=margin, alpha=alpha)
        rejections += result.p_non_inferior < alpha
    rate = rejections / runs
    se = math.sqrt(alpha * (1 - alpha) / runs)
    assert rate <= alpha + 3 * se, f"type I error {rate:.4f} > {alpha} + 3 SE ({se:.4f})"
    assert rate >= alpha / 3, f"type I error {rate:.4f}: the test has stopped rejecting at all"


def test_tango_non_inferiority_has_power_with_no_true_difference():
    rng = np.random.default_rng(11)
    n, margin, alpha, runs, disc = 400, 0.05, 0.025, 2000, 0.15
    wins, losses = tables_from_categories(rng.choice(3, size=(runs, n), p=[disc / 2, disc / 2, 1 - disc]))
    power = float(np.mean(tango_p_non_inferior(wins, losses, n, margin) < alpha))
    assert power > 0.5, f"power {power:.3f} at n={n}, true diff 0, discordance {disc}, margin {margin}"


def test_spending_schedule_keeps_sequential_error_at_alpha():
    """Five looks at a growing run under the boundary null: each look tested at its share
    of alpha keeps the overall false rejection <= alpha, where testing every look at the
    full alpha does not."""
    rng = np.random.default_rng(99)
    total, margin, alpha, runs, disc = 200, 0.05, 0.025, 4000, 0.3
    fractions = (0.2, 0.4, 0.6, 0.8, 1.0)
    shares = spending_schedule(alpha, fractions)
    categories = rng.choice(3, size=(runs, total), p=[(disc - margin) / 2, (disc + margin) / 2, 1 - disc])
    spent = np.zeros(runs, dtype=bool)
    naive = np.zeros(runs, dtype=bool)
    for share, t in zip(shares, fractions):
        n = round(t * total)
        wins, losses = tables_from_categories(categories[:, :n])
        p = tango_p_non_inferior(wins, losses, n, margin)
        spent |= p < share
        naive |= p < alpha
    se = math.sqrt(alpha * (1 - alpha) / runs)
    assert spent.mean() <= alpha + 3 * se, f"sequential type I error {spent.mean():.4f} with spending"
    assert naive.mean() > alpha + 3 * se, f"five looks at full alpha should inflate the error, got {naive.mean():.4f}"


# --------------------------------------------------------------------------- omnibus tests

# 12 people x 3 brands (the R-help / statisticaconr example). Column totals 3, 9, 3 (N = 15);
# row totals squared sum to 27: Q = 2 * (3 * 99 - 225) / (45 - 27) = 8, p = exp(-8/2).
BRANDS = [[1, 1, 0], [0, 1, 0], [1, 1, 1], [0, 1, 0], [0, 1, 0], [0, 1, 1],
          [0, 0, 0], [0, 1, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1]]  # fmt: skip


def test_cochran_q_hand_computed_example():
    result = cochran_q(BRANDS)
    assert result == GlobalTest(name="cochran-q", statistic=pytest.approx(8.0), df=2,
                                p_value=pytest.approx(math.exp(-4.0)), n=12, k=3)  # fmt: skip
    # rows where every strategy agrees carry no information
    padded = cochran_q(BRANDS + [[1, 1, 1]] * 5 + [[0, 0, 0]] * 3)
    assert padded.statistic == pytest.approx(8.0) and padded.n == 20


@pytest.mark.parametrize("table", [(10, 12, 4, 20), (3, 0, 9, 1), (0, 5, 5, 0), (7, 1, 0, 2)])
def test_cochran_q_with_two_strategies_is_mcnemar(table):
    _both, only_a, only_b, _neither = table
    a, b = pairs(*table)
    result = cochran_q(list(zip(a, b)))
    chi2 = (only_a - only_b) ** 2 / (only_a + only_b)
    assert result.statistic == pytest.approx(chi2)
    assert result.p_value == pytest.approx(stats.chi2.sf(chi2, 1))
    assert result.df == 1


def test_cochran_q_equals_friedman_on_binary_data():
    rng = np.random.default_rng(8)
    for _ in range(20):
        data = (rng.random((25, 4)) < rng.uniform(0.2, 0.8, 4)).astype(int)
        q = cochran_q(data)
        assert friedman(data).statistic == pytest.approx(q.statistic)
        assert stats.friedmanchisquare(*data.T).statistic == pytest.approx(q.statistic)


@pytest.mark.parametrize("seed", range(6))
def test_friedman_matches_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    k = 3 + seed % 3
    data = rng.integers(0, 4, size=(30, k)).astype(float) / 3  # few distinct values: many ties
    ours = friedman(data)
    reference = stats.friedmanchisquare(*data.T)
    assert ours.statistic == pytest.approx(reference.statistic, rel=1e-10)
    assert ours.p_value == pytest.approx(reference.pvalue, rel=1e-8)
    assert (ours.name, ours.df, ours.n, ours.k) == ("friedman", k - 1, 30, k)


def test_friedman_with_two_strategies_is_the_sign_test_chi_square():
    a, b = continuous_scores(50, seed=9)
    a[:5] = b[:5]  # ties rank alike and drop out
    wins, losses = int(np.sum(a > b)), int(np.sum(a < b))
    result = friedman(np.column_stack([a, b]))
    assert result.statistic == pytest.approx((wins - losses) ** 2 / (wins + losses))


@pytest.mark.parametrize("test", [cochran_q, friedman, global_test])
def test_all_constant_rows_give_no_evidence(test):
    result = test([[1, 1, 1], [0, 0, 0], [1, 1, 1]])
    assert (result.statistic, result.p_value) == (0.0, 1.0)


def test_global_test_picks_cochran_for_binary_and_friedman_otherwise():
    assert global_test(BRANDS).name == "cochran-q"
    assert global_test([[0.5, 1, 0], [0.2, 0.1, 0.9]]).name == "friedman"


@pytest.mark.parametrize(
    "matrix, fragment",
    [
        ([[1], [0]], "at least 2 columns"),
        ([], "two-dimensional"),
        ([[1, 0], [1]], "matrix must be rows"),
        ([[1, float("inf")]], "matrix[0][1]"),
    ],
)
def test_global_tests_reject_bad_matrices(matrix, fragment):
    with pytest.raises(PairedTestError) as info:
        global_test(matrix)
    assert fragment in str(info.value)


def test_cochran_q_rejects_non_binary_values():
    with pytest.raises(PairedTestError, match=r"matrix\[1\]\[0\] is 0.5"):
        cochran_q([[1, 0], [0.5, 1]])


# --------------------------------------------------------------------------- bookkeeping


def test_bonferroni_alpha():
    assert bonferroni_alpha(0.05, 5) == pytest.approx(0.01)
    assert bonferroni_alpha(0.05, 0) == 0.05
    with pytest.raises(PairedTestError, match="comparisons"):
        bonferroni_alpha(0.05, -1)


def test_spending_schedule_shares():
    shares = spending_schedule(0.025, [0.2, 0.4, 0.6, 0.8, 1.0])
    expected = [0.025 * (t**3 - s**3) for s, t in zip([0, 0.2, 0.4, 0.6, 0.8], [0.2, 0.4, 0.6, 0.8, 1.0])]
    assert shares == pytest.approx(expected)
    assert sum(shares) == pytest.approx(0.025)
    # a run that stops at half its planned size has spent alpha * 0.5**rho
    assert sum(spending_schedule(0.05, [0.25, 0.5], rho=2.0)) == pytest.approx(0.05 * 0.25)
    assert spending_schedule(0.05, [1.0]) == pytest.approx((0.05,))


@pytest.mark.parametrize(
    "fractions, fragment",
    [([], "at least one look"), ([0.5, 0.5], "strictly increasing"), ([0.0, 1.0], "fractions[0]"), ([0.5, 1.5], "fractions[1]")],
)
def test_spending_schedule_rejects_bad_fractions(fractions, fragment):
    with pytest.raises(PairedTestError) as info:
        spending_schedule(0.025, fractions)
    assert fragment in str(info.value)


def test_too_few_clusters():
    assert not too_few_clusters(None)
    assert too_few_clusters(MIN_CLUSTERS - 1)
    assert not too_few_clusters(MIN_CLUSTERS)


@pytest.mark.parametrize(
    "bound, margin, n, expected",
    [
        (-0.045, 0.05, 100, True),
        (-0.03, 0.05, 100, False),
        (-0.06, 0.05, 50, True),
        (0.0, 0.05, 10, True),
        (0.0, 0.05, 21, False),
    ],
)
def test_within_one_question(bound, margin, n, expected):
    assert within_one_question(bound, margin, n) is expected


@pytest.mark.parametrize("hits, n, p0", [(7, 10, 0.5), (9, 20, 0.25), (0, 5, 0.3), (12, 12, 0.9)])
def test_binomial_above_matches_the_binomial_tail(hits, n, p0):
    tail = sum(math.comb(n, i) * p0**i * (1 - p0) ** (n - i) for i in range(hits, n + 1))
    assert binomial_above(hits, n, p0) == pytest.approx(tail, rel=1e-9)


def test_binomial_above_by_hand():
    assert binomial_above(7, 10, 0.5) == pytest.approx((120 + 45 + 10 + 1) / 1024)


@pytest.mark.parametrize("hits, n", [(81, 263), (15, 148), (1, 29), (10, 10), (3, 7)])
def test_wilson_lower_is_the_smaller_root_of_the_score_equation(hits, n):
    # (p_hat - p)^2 = z^2 p (1 - p) / n  <=>  (1 + z^2/n) p^2 - (2 p_hat + z^2/n) p + p_hat^2 = 0
    z2n, p_hat = Z975**2 / n, hits / n
    qa, qb, qc = 1 + z2n, -(2 * p_hat + z2n), p_hat**2
    root = (-qb - math.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)
    assert wilson_lower(hits, n) == pytest.approx(root, abs=1e-12)


@pytest.mark.parametrize("hits, n, expected", [(81, 263, 0.2553), (15, 148, 0.0624), (1, 29, 0.0061), (0, 20, 0.0)])
def test_wilson_lower_matches_newcombe_1998(hits, n, expected):
    # Newcombe 1998 (Stat Med 17:857-872), Wilson score method, 95% two-sided lower limits
    assert round(wilson_lower(hits, n, alpha=0.025), 4) == expected


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: binomial_above(11, 10, 0.5), "hits"),
        (lambda: binomial_above(1, 0, 0.5), "n must be"),
        (lambda: binomial_above(1, 10, 1.5), "p0"),
        (lambda: wilson_lower(1, 10, alpha=0.6), "alpha"),
        (lambda: tango_statistic(6, 5, 10, 0.0), "exceeds"),
        (lambda: tango_statistic(1, 1, 10, 1.5), "delta0"),
        (lambda: within_one_question(0.0, 0.05, 0), "n must be"),
        (lambda: too_few_clusters(0), "clusters"),
    ],
)
def test_helpers_reject_bad_inputs(call, fragment):
    with pytest.raises(PairedTestError) as info:
        call()
    assert fragment in str(info.value)
