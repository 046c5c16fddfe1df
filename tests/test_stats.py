"""Retrieval metrics against hand-computed values and trec_eval, abstention, and the
bootstrap / paired-difference statistics on cases whose answers are known."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from lcrag.pipeline.statistics.intervals import (
    Interval,
    PairedDifference,
    abstention_accuracy,
    bootstrap_mean,
    mrr,
    ndcg_at_k,
    paired_against,
    paired_difference,
    recall_at_k,
    summarise,
)

INV_LOG2_3 = 1 / math.log2(3)  # discount at rank 2: 0.6309...


# --------------------------------------------------------------------------- retrieval


@pytest.mark.parametrize(
    "ranked, relevance, k, expected",
    [
        (["a", "b", "c"], {"a": 1}, 10, 1.0),
        (["b", "a"], {"a": 1}, 10, INV_LOG2_3),  # hit at rank 2, ideal has it at rank 1
        # graded: dcg = 1/1 + 2/log2(3); ideal = 2/1 + 1/log2(3)
        (["b", "a", "c"], {"a": 2, "b": 1}, 10, (1 + 2 * INV_LOG2_3) / (2 + INV_LOG2_3)),
        # relevant b never retrieved: dcg = 1, ideal = 1 + 1/log2(3)
        (["a", "x"], {"a": 1, "b": 1}, 10, 1 / (1 + INV_LOG2_3)),
        (["x", "y", "a"], {"a": 1}, 2, 0.0),  # k shorter than the run cuts the hit off
        (["x", "y", "a"], {"a": 1}, 3, 0.5),  # 1/log2(4)
        (["a"], {"a": 1, "b": 1, "c": 1}, 1, 1.0),  # ideal is cut at k too
        (["z", "a"], {"z": 0, "a": 1}, 10, INV_LOG2_3),  # judged non-relevant gains nothing
        ([], {"a": 2}, 10, 0.0),
    ],
)
def test_ndcg_at_k(ranked, relevance, k, expected):
    assert ndcg_at_k(ranked, relevance, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    "ranked, relevant, k, expected",
    [
        (["a", "b", "c"], {"a", "c"}, 2, 0.5),
        (["a", "b", "c"], {"a", "c"}, 3, 1.0),
        (["a", "b", "c"], {"a", "c"}, 100, 1.0),  # k beyond the run is fine
        (["a", "b", "c"], {"a": 2, "b": 0, "d": 1}, 10, 0.5),  # grade 0 is not relevant; d missed
        (["x", "y"], {"a"}, 10, 0.0),
        ([], {"a"}, 10, 0.0),
    ],
)
def test_recall_at_k(ranked, relevant, k, expected):
    assert recall_at_k(ranked, relevant, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    "ranked, relevant, expected",
    [
        (["a", "x"], {"a"}, 1.0),
        (["x", "a"], {"a"}, 0.5),
        (["x", "y", "a", "b"], {"a", "b"}, 1 / 3),  # first hit counts
        (["x", "y", "z"], {"a"}, 0.0),
        (["x", "y"], {"x": 0, "y": 1}, 0.5),
    ],
)
def test_mrr(ranked, relevant, expected):
    assert mrr(ranked, relevant) == pytest.approx(expected)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: recall_at_k(["a"], set(), 10), "no relevant ids"),
        (lambda: recall_at_k(["a"], {"a": 0}, 10), "no relevant ids"),
        (lambda: ndcg_at_k(["a"], {}, 10), "no relevant ids"),
        (lambda: mrr(["a"], set()), "no relevant ids"),
        (lambda: recall_at_k(["a"], {"a"}, 0), "k must be a positive integer"),
        (lambda: ndcg_at_k(["a"], {"a": 1}, -1), "k must be a positive integer"),
        (lambda: recall_at_k(["a", "a"], {"a"}, 10), "'a' more than once"),
        (lambda: ndcg_at_k(["a"], {"a": -1}, 10), "relevance of 'a'"),
        (lambda: ndcg_at_k(["a"], {"a"}, 10), "relevance must map"),
        (lambda: recall_at_k(["a"], ["a"], 10), "relevant must be a mapping"),
    ],
)
def test_retrieval_metrics_reject_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_parity_with_trec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = np.random.default_rng(7)
    pool = [f"d{i:03d}" for i in range(150)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(30):
        qid = f"q{q}"
        judged = rng.choice(pool, size=int(rng.integers(1, 12)), replace=False)
        grades = {str(d): int(g) for d, g in zip(judged, rng.integers(0, 3, size=len(judged)))}
        grades[str(judged[0])] = max(grades[str(judged[0])], 1)  # at least one relevant
        qrels[qid] = grades
        retrieved = rng.choice(pool, size=120, replace=False)  # > 100 so the recall cut bites
        scores = rng.permutation(len(retrieved)).astype(float)  # distinct: no tie-breaking
        run[qid] = {str(d): float(s) for d, s in zip(retrieved, scores)}

    expected = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    for qid, doc_scores in run.items():
        ranked = sorted(doc_scores, key=doc_scores.__getitem__, reverse=True)
        assert ndcg_at_k(ranked, qrels[qid], 10) == pytest.approx(expected[qid]["ndcg_cut_10"], abs=1e-4), qid
        assert recall_at_k(ranked, qrels[qid], 100) == pytest.approx(expected[qid]["recall_100"], abs=1e-4), qid


# --------------------------------------------------------------------------- abstention


@pytest.mark.parametrize(
    "abstained, answerable, expected",
    [
        ([True, False, True, False], [False, True, True, False], 0.5),
        ([True, False], [False, True], 1.0),
        ([True], [True], 0.0),  # abstained on an answerable question
        ([False], [False], 0.0),  # answered an unanswerable one
        ([False, False, False, True], [True, True, True, True], 0.75),
    ],
)
def test_abstention_accuracy(abstained, answerable, expected):
    assert abstention_accuracy(abstained, answerable) == pytest.approx(expected)


@pytest.mark.parametrize(
    "abstained, answerable, message",
    [([True], [True, False], "1 entries but answerable has 2"), ([], [], "at least one question")],
)
def test_abstention_accuracy_rejects_bad_input(abstained, answerable, message):
    with pytest.raises(ValueError, match=message):
        abstention_accuracy(abstained, answerable)


# --------------------------------------------------------------------------- bootstrap

NOISY = list(np.random.default_rng(3).normal(0.6, 0.2, size=80))


def test_bootstrap_is_deterministic_under_a_seed():
    assert bootstrap_mean(NOISY, seed=11) == bootstrap_mean(NOISY, seed=11)


def test_bootstrap_bounds_change_with_the_seed():
    one, two = bootstrap_mean(NOISY, seed=1), bootstrap_mean(NOISY, seed=2)
    assert one.mean == two.mean
    assert (one.low, one.high) != (two.low, two.high)


def test_bootstrap_interval_contains_the_mean():
    interval = bootstrap_mean(NOISY)
    assert interval.low < interval.mean < interval.high
    assert interval.mean == pytest.approx(float(np.mean(NOISY)))
    assert interval.n == 80


@pytest.mark.parametrize("values", [[0.7] * 25, [0.1] * 3, [1.0]])
def test_bootstrap_without_spread_is_a_point(values):
    assert bootstrap_mean(values) == Interval(mean=values[0], low=values[0], high=values[0], n=len(values))


def test_bootstrap_wider_at_higher_level():
    narrow, wide = bootstrap_mean(NOISY, level=0.90), bootstrap_mean(NOISY, level=0.99)
    assert wide.high - wide.low > narrow.high - narrow.low
    assert wide.low < narrow.low and wide.high > narrow.high


def test_bootstrap_known_binomial_case():
    # p = 0.5, n = 400: standard error 0.025, so a 95% half-width near 0.049
    interval = bootstrap_mean([0.0, 1.0] * 200)
    assert interval.mean == 0.5
    assert 0.03 <= (interval.high - interval.low) / 2 <= 0.07
    assert 0.03 <= interval.mean - interval.low <= 0.07 and 0.03 <= interval.high - interval.mean <= 0.07


@pytest.mark.parametrize(
    "values, kwargs, message",
    [
        ([], {}, "at least one value"),
        ([1.0, float("nan")], {}, "finite, got nan at position 1"),
        ([1.0, float("inf")], {}, "finite"),
        ([1.0, 2.0], {"resamples": 0}, "resamples must be a positive integer, got 0"),
        ([1.0, 2.0], {"level": 1.0}, "level must lie strictly between 0 and 1, got 1.0"),
        ([1.0, 2.0], {"level": 0}, "level must lie strictly between 0 and 1, got 0"),
    ],
)
def test_bootstrap_rejects_bad_input(values, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_mean(values, **kwargs)


def test_interval_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        bootstrap_mean([1.0, 2.0]).mean = 0.0  # type: ignore[misc]


# --------------------------------------------------------------------------- paired differences

BASE = {f"q{i}": float(v) for i, v in enumerate(np.random.default_rng(5).uniform(0, 1, size=50))}


def test_paired_identical_inputs():
    diff = paired_difference(BASE, dict(BASE))
    assert diff == PairedDifference(mean_diff=0.0, low=0.0, high=0.0, n_pairs=50, wins=0, losses=0, ties=50)


def test_paired_constant_shift():
    shifted = {q: v + 0.1 for q, v in BASE.items()}
    diff = paired_difference(shifted, BASE)
    assert diff.mean_diff == pytest.approx(0.1, abs=1e-12)
    assert diff.low == pytest.approx(0.1, abs=1e-12) and diff.high == pytest.approx(0.1, abs=1e-12)
    assert (diff.n_pairs, diff.wins, diff.losses, diff.ties) == (50, 50, 0, 0)


@pytest.mark.parametrize(
    "a, b, mean_diff, n_pairs, wins, losses, ties",
    [
        # q5 only in b and q6 only in a are ignored; diffs 1, -1, 0, 1
        (
            {"q1": 1.0, "q2": 0.0, "q3": 0.5, "q4": 1.0, "q6": 1.0},
            {"q1": 0.0, "q2": 1.0, "q3": 0.5, "q4": 0.0, "q5": 1.0},
            0.25,
            4,
            2,
            1,
            1,
        ),
        ({"x": 0.2, "y": 0.4}, {"x": 0.6, "y": 0.4, "z": 0.0}, -0.2, 2, 0, 1, 1),  # diffs -0.4, 0
        ({"only": 0.3}, {"only": 0.1}, 0.2, 1, 1, 0, 0),
    ],
)
def test_paired_counts_by_hand(a, b, mean_diff, n_pairs, wins, losses, ties):
    diff = paired_difference(a, b)
    assert diff.mean_diff == pytest.approx(mean_diff)
    assert (diff.n_pairs, diff.wins, diff.losses, diff.ties) == (n_pairs, wins, losses, ties)
    assert diff.low <= diff.mean_diff <= diff.high


def test_paired_difference_is_deterministic_and_independent_of_key_order():
    other = {q: v + 0.05 * math.sin(i) for i, (q, v) in enumerate(BASE.items())}
    reordered = dict(reversed(list(other.items())))
    assert paired_difference(other, BASE, seed=3) == paired_difference(reordered, BASE, seed=3)


@pytest.mark.parametrize(
    "a, b, message",
    [
        ({"q1": 1.0}, {"q2": 1.0}, "no shared question ids"),
        ({}, {"q2": 1.0}, "no shared question ids"),
        ({"q1": float("nan")}, {"q1": 1.0}, "question 'q1' in a must be finite"),
    ],
)
def test_paired_difference_rejects_bad_input(a, b, message):
    with pytest.raises(ValueError, match=message):
        paired_difference(a, b)


def test_paired_against_reference():
    scores = {
        "lc": {"q1": 0.0, "q2": 1.0, "q3": 0.0},
        "rag": {"q1": 1.0, "q2": 1.0, "q3": 1.0},  # +2/3 over lc
        "hybrid": {"q2": 0.0, "q3": 0.0, "q9": 1.0},  # shares q2, q3: diffs -1, 0
    }
    result = paired_against("lc", scores, resamples=500, seed=1)
    assert set(result) == {"rag", "hybrid"}
    assert result["rag"].mean_diff == pytest.approx(2 / 3)
    assert (result["rag"].wins, result["rag"].losses, result["rag"].ties) == (2, 0, 1)
    assert result["hybrid"].mean_diff == pytest.approx(-0.5)
    assert (result["hybrid"].n_pairs, result["hybrid"].losses, result["hybrid"].ties) == (2, 1, 1)
    assert result["rag"] == paired_difference(scores["rag"], scores["lc"], resamples=500, seed=1)


@pytest.mark.parametrize(
    "scores, message",
    [
        ({"rag": {"q1": 1.0}}, "reference strategy 'lc' not among"),
        ({"lc": {"q1": 1.0}, "rag": {"q2": 1.0}}, "strategy 'rag' against 'lc': no shared question ids"),
    ],
)
def test_paired_against_rejects_bad_input(scores, message):
    with pytest.raises(ValueError, match=message):
        paired_against("lc", scores)


# --------------------------------------------------------------------------- summarise


def test_summarise_matches_bootstrap_per_group():
    groups = {"lc": NOISY, "rag": [1.0, 0.0, 1.0, 1.0]}
    result = summarise(groups, resamples=300, seed=4)
    assert set(result) == {"lc", "rag"}
    for name, values in groups.items():
        assert result[name] == bootstrap_mean(values, resamples=300, seed=4)
    assert result["rag"].mean == 0.75 and result["rag"].n == 4


def test_summarise_names_the_bad_group():
    with pytest.raises(ValueError, match="group 'empty': bootstrap_mean needs at least one value"):
        summarise({"ok": [1.0], "empty": []})
