"""The verdict on hand-built tables: the primary metric per data set kind, pooling on
common questions only, and the non-inferiority rule (resolved, unresolved, the margin
boundary, best is cheapest, ties, the questions-needed estimate, "cannot tell")."""

from __future__ import annotations

import dataclasses
import math

import pytest

from lcrag.pipeline.evaluation.verdict import (
    INFERIOR,
    NON_INFERIOR,
    NON_INFERIORITY_MARGIN,
    UNDETERMINED,
    VerdictError,
    common_questions,
    dataset_kind,
    decide,
    metric_for,
    primary_metric,
    questions_needed,
    score_of,
    secondary_metric,
    verdicts,
)
from lcrag.pipeline.ledger import LedgerRow


def row(strategy, qid, *, dataset="hotpotqa", run="r1", em=None, f1=None, recall=None, tokens=100, error=None,
        golds=("x",)):
    return LedgerRow(
        run_id=run, question_id=qid, question="q?", strategy=strategy, route=strategy, answer="a",
        index_id="i", config_hash="c", model="m", retrieved_ids=(), used_ids=(), context_tokens=0,
        prompt_tokens=tokens, completion_tokens=1, retrieval_ms=0.0, reading_ms=0.0, context_cut=False,
        dataset=dataset, gold_answers=golds, em=em, f1=f1, recall=recall, error=error,
    )


def table(**columns):
    """Per-strategy scores over shared keys q0..q{n-1} from equal-length lists."""
    return {name: {f"q{i:03d}": float(v) for i, v in enumerate(values)} for name, values in columns.items()}


# ------------------------------------------------------------------ primary metric


@pytest.mark.parametrize("kind, metric, secondary", [
    ("multiple_choice", "accuracy", None),
    ("exact", "em", None),
    ("free_text", "answer_recall", "f1"),
])
def test_primary_metric_per_kind(kind, metric, secondary):
    assert primary_metric(kind) == metric
    assert secondary_metric(kind) == secondary


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(VerdictError, match="exact, free_text, multiple_choice"):
        primary_metric("mcq")


@pytest.mark.parametrize("dataset, rows, kind", [
    ("kv", [], "exact"),
    ("niah", [], "exact"),
    ("hotpotqa", [], "free_text"),
    ("hotpotqa-positions", [], "free_text"),
    ("squad2", [], "free_text"),
    # unknown names: from the rows
    ("my-kv", [row("lc", "kv3@pos7"), row("lc", "kv4@pos0")], "exact"),
    ("haystack", [row("lc", "niah@d25@L2000")], "exact"),  # one-needle ids of earlier runs
    ("haystack", [row("lc", "niah3@d25@L2000"), row("lc", "niah0@d0@L500")], "exact"),
    ("quality", [row("lc", "a", golds=("B",)), row("lc", "b", golds=("(D)",))], "multiple_choice"),
    ("quality", [row("lc", "a", golds=("B",)), row("lc", "b", golds=("Paris",))], "free_text"),
    ("mine", [row("lc", "q1")], "free_text"),
    (None, [], "free_text"),
])
def test_dataset_kind_by_name_then_rows(dataset, rows, kind):
    assert dataset_kind(dataset, rows) == kind


def test_metric_for_dataset():
    assert metric_for("kv") == "em"
    assert metric_for("niah") == "em"
    assert metric_for("hotpotqa") == "answer_recall"
    assert metric_for("quiz", [row("lc", "a", golds=("C",))]) == "accuracy"


@pytest.mark.parametrize("metric, expected", [("accuracy", 1.0), ("em", 1.0), ("answer_recall", 0.5), ("f1", 0.25)])
def test_score_of_reads_the_right_field(metric, expected):
    assert score_of(row("lc", "q", em=1.0, recall=0.5, f1=0.25), metric) == expected


def test_score_of_unscored_and_unknown():
    assert score_of(row("lc", "q"), "em") is None
    with pytest.raises(VerdictError, match="accuracy, answer_recall, em, f1"):
        score_of(row("lc", "q", em=1.0), "bleu")


# ------------------------------------------------------------------ common questions


def test_pair_answered_by_only_some_is_dropped():
    rows = [
        row("lc", "q1", recall=1.0, tokens=1000), row("rag", "q1", recall=0.0, tokens=100),
        row("lc", "q2", recall=0.0, tokens=1000), row("rag", "q2", recall=1.0, tokens=100),
        row("lc", "q3", recall=1.0, tokens=5000),  # rag never answered q3
    ]
    common = common_questions(rows)["hotpotqa"]
    assert common.metric == "answer_recall" and common.secondary_metric == "f1"
    assert common.strategies == ("lc", "rag") and common.missing == ()
    assert common.n_pairs == 2 and common.dropped == 1
    assert dict(common.answered) == {"lc": 3, "rag": 2}
    assert sorted(common.scores["lc"]) == [("r1", "q1"), ("r1", "q2")]
    assert common.mean_score("lc") == 0.5  # q3's 1.0 is not averaged in
    assert common.mean_prompt_tokens() == {"lc": 1000.0, "rag": 100.0}  # q3's 5000 neither


def test_error_and_unscored_rows_do_not_count_as_answered():
    rows = [
        row("lc", "q1", recall=1.0), row("rag", "q1", recall=1.0),
        row("lc", "q2", recall=1.0), row("rag", "q2", recall=1.0, error="timeout"),  # scored but failed
        row("lc", "q3", recall=1.0), row("rag", "q3"),  # no score on the metric
    ]
    common = common_questions(rows)["hotpotqa"]
    assert common.n_pairs == 1 and common.dropped == 2
    assert list(common.scores["rag"]) == [("r1", "q1")]


def test_strategy_on_one_dataset_is_missing_elsewhere_not_pooled():
    rows = [row(s, f"h{i}", recall=v) for i in range(3) for s, v in (("lc", 1.0), ("rag", 0.0))]
    rows += [row(s, f"kv{i}@pos0", dataset="kv", em=v) for i in range(3)
             for s, v in (("lc", 0.0), ("rag", 0.0), ("op-rag", 1.0))]
    sets = common_questions(rows)
    assert sets["hotpotqa"].strategies == ("lc", "rag") and sets["hotpotqa"].missing == ("op-rag",)
    assert sets["kv"].strategies == ("lc", "op-rag", "rag") and sets["kv"].metric == "em"
    found = verdicts(rows)
    assert found["hotpotqa"].best == "lc" and "op-rag" not in found["hotpotqa"].means
    assert found["hotpotqa"].missing == ("op-rag",)
    assert found["kv"].best == "op-rag"


def test_a_strategy_with_only_errors_is_missing_and_does_not_empty_the_comparison():
    rows = [row("lc", "q1", recall=1.0), row("rag", "q1", recall=1.0), row("op-rag", "q1", error="boom")]
    common = common_questions(rows)["hotpotqa"]
    assert common.strategies == ("lc", "rag") and common.missing == ("op-rag",) and common.n_pairs == 1


def test_pairs_are_per_run_never_across_runs():
    rows = [row("lc", "q1", run="r1", recall=1.0), row("rag", "q1", run="r2", recall=1.0)]
    common = common_questions(rows)["hotpotqa"]
    assert common.n_pairs == 0 and common.dropped == 2
    assert decide(common.scores, common.mean_prompt_tokens()).status == "no_common_questions"


def test_requested_strategies_filter_and_report_missing():
    rows = [row("lc", "q1", recall=1.0), row("rag", "q1", recall=0.0), row("other", "q1", recall=1.0)]
    common = common_questions(rows, ["rag", "lc", "self-route"])[("hotpotqa")]
    assert common.strategies == ("lc", "rag") and common.missing == ("self-route",)


def test_unlabelled_rows_and_metric_override():
    rows = [row("lc", "q1", dataset=None, em=1.0, recall=0.0), row("rag", "q1", dataset=None, em=0.0, recall=1.0)]
    assert common_questions(rows)["unlabelled"].scores["rag"][("r1", "q1")] == 1.0  # recall (free text)
    assert common_questions(rows, metrics={"unlabelled": "em"})["unlabelled"].scores["rag"][("r1", "q1")] == 0.0


def test_two_answers_for_one_pair_are_refused():
    rows = [row("lc", "q1", recall=1.0), row("lc", "q1", recall=0.0)]
    with pytest.raises(VerdictError, match="twice"):
        common_questions(rows)


# ----------------------------------------------------------------------- the rule

ONE_MISS = [1] * 90 + [0] * 10  # lc: 90/100
ONE_MORE_MISS = [0] + [1] * 89 + [0] * 10  # rag: the same minus one question -> diff -0.01


@pytest.mark.parametrize("scores, tokens, status, chosen, resolved", [
    # rag loses one question in 100: non-inferior, 0.3x the tokens
    (table(lc=ONE_MISS, rag=ONE_MORE_MISS), {"lc": 1000, "rag": 300}, "use_cheaper", "rag", True),
    # rag loses half the questions: shown worse than the margin
    (table(lc=[1] * 100, rag=[1, 0] * 50), {"lc": 1000, "rag": 300}, "use_best", "lc", True),
    # the best also spends fewest tokens
    (table(lc=ONE_MISS, rag=ONE_MORE_MISS), {"lc": 200, "rag": 300}, "best_is_cheapest", "lc", True),
    # identical scores: the cheaper one is the best (tie-break on tokens), nothing cheaper
    (table(lc=ONE_MISS, rag=ONE_MISS), {"lc": 1000, "rag": 300}, "best_is_cheapest", "rag", True),
    # identical scores and tokens: tie broken by name, still deterministic
    (table(lc=ONE_MISS, rag=ONE_MISS), {"lc": 300, "rag": 300}, "best_is_cheapest", "lc", True),
    # 40 noisy questions, diff -0.025: the interval straddles -0.05
    (table(lc=[1] * 4 + [0] * 3 + [1] * 33, rag=[0] * 4 + [1] * 3 + [1] * 33), {"lc": 1000, "rag": 300},
     "unresolved", None, False),
])
def test_rule_table(scores, tokens, status, chosen, resolved):
    verdict = decide(scores, tokens, metric="em")
    assert (verdict.status, verdict.chosen, verdict.resolved) == (status, chosen, resolved)
    assert verdict.margin == NON_INFERIORITY_MARGIN == 0.05


def test_use_cheaper_carries_interval_ratio_and_sentence():
    verdict = decide(table(lc=ONE_MISS, rag=ONE_MORE_MISS), {"lc": 1000, "rag": 310}, metric="answer_recall")
    d = verdict.difference
    assert verdict.best == "lc" and verdict.chosen == "rag"
    assert d.mean_diff == pytest.approx(-0.01) and d.n_pairs == 100 and d.losses == 1 and d.ties == 99
    assert -0.05 < d.low <= -0.01 <= d.high <= 0.0
    assert verdict.token_ratio == pytest.approx(0.31)
    assert verdict.comparisons[0].outcome == NON_INFERIOR
    assert verdict.describe() == (
        f"use rag: non-inferior to lc on answer_recall (difference \u22120.01, 95% CI [{_s(d.low)}, {_s(d.high)}], "
        "100 questions, margin 0.05) at 0.31\u00d7 lc's prompt tokens")


def _s(x):
    return f"{x:+.2f}".replace("-", "\u2212") if f"{x:+.2f}" not in ("+0.00", "-0.00") else "0.00"


@pytest.mark.parametrize("cheaper, margin, status, outcome", [
    # constant differences: the bootstrap interval is the point itself, so the bound is exact
    (0.96, 0.05, "use_cheaper", NON_INFERIOR),  # lower bound -0.04 > -0.05
    (0.95, 0.05, "unresolved", UNDETERMINED),  # lower bound at -0.05 (0.95 - 1.0 rounds past it): exclusive
    (0.94, 0.05, "use_best", INFERIOR),  # upper bound -0.06 < -0.05
    (0.75, 0.25, "unresolved", UNDETERMINED),  # exactly -0.25 in binary: not non-inferior
    (0.75, 0.2500001, "use_cheaper", NON_INFERIOR),
    (0.75, 0.2499999, "use_best", INFERIOR),
])
def test_margin_boundary_is_exclusive(cheaper, margin, status, outcome):
    verdict = decide(table(lc=[1.0] * 30, rag=[cheaper] * 30), {"lc": 1000, "rag": 100}, margin=margin)
    assert verdict.status == status
    assert verdict.comparisons[0].outcome == outcome


def test_at_the_margin_cannot_tell_at_any_size():
    verdict = decide(table(lc=[1.0] * 30, rag=[0.75] * 30), {"lc": 1000, "rag": 100}, margin=0.25)
    assert verdict.questions_needed is None and "cannot tell at any size" in verdict.reason


def test_questions_needed_by_hand():
    # mean 0, sd = sqrt(0.02): n = ((1.96 + 0.84) * 0.141421 / 0.05)^2 = 62.72 -> 63
    needed, sd, reason = questions_needed([0.1, -0.1])
    assert sd == pytest.approx(math.sqrt(0.02)) and needed == 63 and reason == ""
    # 4 losses, 3 wins, 33 ties: mean -0.025, sum of squares about the mean 7 - 40 * 0.025^2 = 6.975,
    # variance 6.975 / 39; n = 2.8^2 * 6.975 / 39 / 0.025^2 = 2243.47 -> 2244
    diffs = [-1] * 4 + [1] * 3 + [0] * 33
    needed, sd, _ = questions_needed(diffs)
    assert sd == pytest.approx(math.sqrt(6.975 / 39)) and needed == 2244
    assert questions_needed(diffs, margin=0.1)[0] == math.ceil(7.84 * 6.975 / 39 / 0.075 ** 2)  # 249.3 -> 250


def test_unresolved_reports_questions_needed_and_sentence():
    scores = table(lc=[1] * 4 + [0] * 3 + [1] * 33, rag=[0] * 4 + [1] * 3 + [1] * 33)
    verdict = decide(scores, {"lc": 1000, "rag": 300}, metric="em")
    d = verdict.difference
    assert verdict.status == "unresolved" and not verdict.resolved and verdict.chosen is None
    assert verdict.challenger == "rag" and verdict.best == "lc"
    assert d.low < -0.05 < d.high and d.n_pairs == 40 and d.mean_diff == pytest.approx(-0.025)
    assert verdict.questions_needed == 2244
    assert verdict.describe() == (
        f"unresolved: rag vs lc differ on em by \u22120.03 [{_s(d.low)}, {_s(d.high)}] over 40 questions; "
        "about 2244 questions would tell")


def test_a_difference_at_the_margin_is_called_impractical_not_quoted_in_six_figures():
    # 6 losses, 3 wins, 52 ties: mean -3/61 = -0.0492, 0.0008 inside the margin: about 1.7M questions
    scores = table(lc=[1] * 6 + [0] * 3 + [1] * 52, rag=[0] * 6 + [1] * 3 + [1] * 52)
    verdict = decide(scores, {"lc": 1000, "rag": 300}, metric="accuracy")
    assert verdict.status == "unresolved" and verdict.questions_needed > 10_000
    assert verdict.describe().endswith(
        "over 10,000 questions would be needed (the difference sits near the −0.05 margin): "
        "in practice these two cannot be told apart")


def test_cannot_tell_when_the_cheaper_trails_by_more_than_the_margin():
    # mean diff -0.1 with a wide interval: straddles -0.05, but margin + mean < 0
    scores = table(lc=[1] * 3 + [0] + [1] * 16, rag=[0] * 3 + [1] + [1] * 16)
    verdict = decide(scores, {"lc": 1000, "rag": 300})
    assert verdict.status == "unresolved"
    assert verdict.difference.low < -0.05 < verdict.difference.high
    assert verdict.questions_needed is None
    assert "cannot tell at any size" in verdict.describe()


def test_cheapest_non_inferior_wins_over_a_pricier_one():
    scores = table(lc=ONE_MISS, rag=[1, 0] * 50, op=ONE_MORE_MISS, mid=[1] * 89 + [0] * 11)
    verdict = decide(scores, {"lc": 1000, "rag": 100, "op": 400, "mid": 600})
    assert verdict.status == "use_cheaper" and verdict.chosen == "op"  # rag is cheaper but inferior
    assert [c.strategy for c in verdict.comparisons] == ["rag", "op", "mid"]
    assert [c.outcome for c in verdict.comparisons] == [INFERIOR, NON_INFERIOR, NON_INFERIOR]
    cheaper = decide(scores, {"lc": 1000, "rag": 100, "op": 400, "mid": 50})
    assert cheaper.chosen == "mid"


def test_use_best_needs_every_cheaper_one_shown_worse():
    worse = [1, 0] * 50
    noisy = [1] * 4 + [0] * 3 + [1] * 33
    scores = table(lc=[1] * 40, rag=worse[:40], op=noisy)
    verdict = decide(scores, {"lc": 1000, "rag": 100, "op": 400})
    assert verdict.status == "unresolved" and verdict.challenger == "op"
    assert decide(table(lc=[1] * 40, rag=worse[:40]), {"lc": 1000, "rag": 100}).status == "use_best"


def test_unresolved_prefers_a_challenger_more_questions_could_settle():
    lc = [1] * 5 + [0] + [1] * 34
    cannot = [0] * 5 + [1] + [1] * 34  # five losses, one win: trails by 0.1
    could = [0] * 2 + [1] * 4 + [1] * 34  # two losses, one win: trails by 0.025, wide
    scores = table(lc=lc, rag=cannot, op=could)
    verdict = decide(scores, {"lc": 1000, "rag": 100, "op": 400})
    outcomes = {c.strategy: c.outcome for c in verdict.comparisons}
    assert outcomes == {"rag": UNDETERMINED, "op": UNDETERMINED}
    assert verdict.comparisons[0].questions_needed is None  # rag: cannot tell at any size
    assert verdict.status == "unresolved" and verdict.challenger == "op"
    assert verdict.questions_needed is not None


@pytest.mark.parametrize("scores, status, sentence", [
    (table(lc=[1, 0]), "nothing_to_compare", "nothing to compare: only lc answered questions here"),
    ({}, "nothing_to_compare", "nothing to compare: no strategy answered questions here"),
    ({"lc": {}, "rag": {}}, "no_common_questions", "nothing to compare: no question was answered by all of lc, rag"),
])
def test_nothing_to_compare(scores, status, sentence):
    verdict = decide(scores, {s: 10 for s in scores})
    assert verdict.status == status and not verdict.resolved and verdict.chosen is None
    assert verdict.describe() == sentence


def test_single_strategy_data_set_names_the_missing_ones():
    rows = [row("lc", "q1", recall=1.0), row("rag", "k", dataset="kv", em=1.0), row("lc", "k", dataset="kv", em=1.0)]
    verdict = verdicts(rows)["hotpotqa"]
    assert verdict.status == "nothing_to_compare"
    assert verdict.describe() == "nothing to compare: only lc answered questions here (rag answered none here)"


def test_bad_inputs_are_refused():
    with pytest.raises(VerdictError, match="different questions"):
        decide({"lc": {"a": 1.0}, "rag": {"b": 1.0}}, {"lc": 1, "rag": 1})
    with pytest.raises(VerdictError, match="no prompt tokens given for rag"):
        decide(table(lc=[1], rag=[1]), {"lc": 1})
    with pytest.raises(VerdictError, match="margin"):
        decide(table(lc=[1], rag=[1]), {"lc": 1, "rag": 1}, margin=-0.1)


def test_deterministic_and_frozen():
    scores = table(lc=[1] * 4 + [0] * 3 + [1] * 33, rag=[0] * 4 + [1] * 3 + [1] * 33)
    first, second = decide(scores, {"lc": 9, "rag": 3}), decide(scores, {"lc": 9, "rag": 3})
    assert first.difference == second.difference and first.describe() == second.describe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.chosen = "rag"


def test_verdicts_from_rows_end_to_end():
    rows = []
    for i, (lc, rag) in enumerate(zip(ONE_MISS, ONE_MORE_MISS)):
        rows += [row("lc", f"q{i}", recall=lc, f1=lc, tokens=1000), row("rag", f"q{i}", recall=rag, f1=rag, tokens=250)]
    rows.append(row("rag", "extra", recall=0.0, tokens=9999))  # answered by rag only: dropped
    verdict = verdicts(rows)["hotpotqa"]
    assert verdict.metric == "answer_recall" and verdict.dropped == 1
    assert verdict.status == "use_cheaper" and verdict.chosen == "rag" and verdict.token_ratio == 0.25


def test_best_is_cheapest_shows_how_clearly_it_leads_the_runner_up():
    """On four questions the leader's edge is noise: the sentence carries the runner-up's interval."""
    scores = table(op=[1, 1, 0, 0], rag=[1, 0, 0, 0], lc=[0, 0, 0, 0])
    verdict = decide(scores, {"op": 100, "rag": 100, "lc": 900}, metric="accuracy")
    assert (verdict.status, verdict.chosen) == ("best_is_cheapest", "op")
    (runner_up,) = verdict.comparisons
    d = runner_up.difference
    assert runner_up.strategy == "rag" and d.mean_diff == pytest.approx(-0.25) and d.n_pairs == 4
    assert d.low < -verdict.margin and d.high >= 0  # too few questions to tell them apart
    assert verdict.describe() == (
        f"use op: highest accuracy (0.50) and fewest prompt tokens (4 questions; next rag \u22120.25 "
        f"[{_s(d.low)}, {_s(d.high)}])")
