"""Letter bias on hand-built multiple-choice rows shaped like the TPO figures (gold A 11 /
B 24 / C 36 / D 29): the chance baseline of a letter habit, accuracy per gold letter,
"always one letter", ties, the binomial test against scipy, unparseable replies, the
closed-book rule, row filtering, and the report section (Markdown and escaped HTML)."""

from __future__ import annotations

import math
import re
from types import MappingProxyType

import pytest
from scipy.stats import binomtest

from lcrag.pipeline.ledger import LedgerRow
from lcrag.pipeline.report.letters import letter_html, letter_markdown
from lcrag.pipeline.statistics import verdict
from lcrag.pipeline.statistics.letter_bias import (
    OTHER_KINDS,
    UNLABELLED,
    LetterBiasError,
    above_chance,
    closed_book_is_guessing,
    gold_letter,
    letter_findings,
    letter_profiles,
    uniform_chance,
    wilson_lower,
)

GOLDS = {"A": 11, "B": 24, "C": 36, "D": 29}  # the reviewer's TPO gold letters, 100 questions


def row(strategy, qid, gold, choice, *, dataset="tpo", run="r1", em=None, error=None):
    hit = em if em is not None else (None if error else (1.0 if choice == gold else 0.0))
    return LedgerRow(
        run_id=run, question_id=qid, question="q?", strategy=strategy, route=strategy, answer=choice or "?",
        index_id="i", config_hash="c", model="m", retrieved_ids=(), used_ids=(), context_tokens=0,
        prompt_tokens=100, completion_tokens=1, retrieval_ms=0.0, reading_ms=0.0, context_cut=False,
        dataset=dataset, gold_answers=(gold,) if gold is not None else None, em=hit, error=error, choice=choice,
    )


def strategy_rows(strategy, plan, dataset="tpo", run="r1"):
    """``plan``: gold letter -> [(choice, times), ...]; question ids are numbered per gold
    letter in ``plan`` order, so every strategy given the same golds faces the same questions."""
    rows = []
    for gold, choices in plan.items():
        i = 0
        for choice, times in choices:
            for _ in range(times):
                rows.append(row(strategy, f"{gold}{i:03d}", gold, choice, dataset=dataset, run=run))
                i += 1
    return rows


# rag: never picks D; chooses A 20, B 30, C 50; right 3 + 8 + 20 + 0 = 31 of 100.
RAG = {
    "A": [("A", 3), ("B", 3), ("C", 5)],
    "B": [("A", 5), ("B", 8), ("C", 11)],
    "C": [("A", 6), ("B", 10), ("C", 20)],
    "D": [("A", 6), ("B", 9), ("C", 14)],
}
# closed-book: "A" 90 times, B 5, unparseable 5; right 11 + 2 = 13 of 100.
CLOSED = {
    "A": [("A", 11)],
    "B": [("A", 22), ("B", 2)],
    "C": [("A", 33), (None, 3)],
    "D": [("A", 24), ("B", 3), (None, 2)],
}
# a reader that knows most answers: right on 80 of 100, D included.
GOOD = {
    "A": [("A", 9), ("B", 2)],
    "B": [("B", 19), ("C", 5)],
    "C": [("C", 30), ("D", 6)],
    "D": [("D", 22), ("A", 7)],
}


def tpo_rows(**plans):
    return [r for name, plan in plans.items() for r in strategy_rows(name, plan)]


def test_fixture_has_the_reviewer_gold_counts():
    for plan in (RAG, CLOSED, GOOD):
        assert {g: sum(t for _, t in choices) for g, choices in plan.items()} == GOLDS


# ------------------------------------------------------------------ the profile


def test_rag_profile_by_hand():
    p = letter_profiles(tpo_rows(rag=RAG))["rag"]
    assert (p.strategy, p.n, p.hits) == ("rag", 100, 31)
    assert p.accuracy == pytest.approx(0.31)
    assert dict(p.chosen) == {"A": 20, "B": 30, "C": 50}
    assert "D" not in p.chosen
    assert dict(p.gold) == GOLDS
    assert dict(p.accuracy_by_gold) == {"A": (3, 11), "B": (8, 24), "C": (20, 36), "D": (0, 29)}
    # 0.20 * 0.11 + 0.30 * 0.24 + 0.50 * 0.36 + 0.00 * 0.29
    assert p.chance == pytest.approx(0.022 + 0.072 + 0.18 + 0.0)
    assert p.best_constant == ("C", pytest.approx(0.36))
    assert isinstance(p.chosen, MappingProxyType)


@pytest.mark.parametrize("plan, chance", [
    # always C: chance = P_gold(C)
    ({"A": [("C", 11)], "B": [("C", 24)], "C": [("C", 36)], "D": [("C", 29)]}, 0.36),
    # always C but 10 unparseable replies (on gold-D questions): 0.90 * 0.36
    ({"A": [("C", 11)], "B": [("C", 24)], "C": [("C", 36)], "D": [("C", 19), (None, 10)]}, 0.9 * 0.36),
    # all unparseable: nothing can match
    ({"A": [(None, 11)], "B": [(None, 24)], "C": [(None, 36)], "D": [(None, 29)]}, 0.0),
    # even habit, 25 each: 0.25 whatever the golds
    ({"A": [("A", 11)], "B": [("A", 14), ("B", 10)], "C": [("B", 15), ("C", 21)], "D": [("C", 4), ("D", 25)]}, 0.25),
    # multi-letter choices never match a single gold letter: half "AC" -> 0.5 * 0.36
    ({"A": [("AC", 11)], "B": [("AC", 24)], "C": [("AC", 15), ("C", 21)], "D": [("C", 29)]}, 0.5 * 0.36),
])
def test_chance_baseline(plan, chance):
    p = letter_profiles(strategy_rows("s", plan))["s"]
    assert p.chance == pytest.approx(chance, abs=1e-12)


def test_unparseable_replies_lower_the_baseline_and_are_listed_as_none():
    plain = {"A": [("C", 11)], "B": [("C", 24)], "C": [("C", 36)], "D": [("C", 29)]}
    vague = {"A": [("C", 11)], "B": [("C", 24)], "C": [("C", 36)], "D": [("C", 19), (None, 10)]}
    profiles = letter_profiles(strategy_rows("plain", plain) + strategy_rows("vague", vague))
    assert profiles["vague"].hits == profiles["plain"].hits == 36
    assert profiles["vague"].chance < profiles["plain"].chance
    assert dict(profiles["vague"].chosen) == {"C": 90, "none": 10}
    assert profiles["vague"].n == 100  # unparseable replies count as answered, wrong


def test_multi_letter_choice_kept_as_given():
    p = letter_profiles([row("s", "q1", "C", "AC"), row("s", "q2", "C", "C")])["s"]
    assert dict(p.chosen) == {"AC": 1, "C": 1}


@pytest.mark.parametrize("golds, constant", [
    ({"A": 11, "B": 24, "C": 36, "D": 29}, ("C", 0.36)),
    ({"A": 1, "B": 2, "C": 2}, ("B=C", 0.4)),
    ({"D": 3, "A": 3, "B": 1, "C": 3}, ("A=C=D", 0.3)),
    ({"B": 5}, ("B", 1.0)),
])
def test_best_constant_joins_ties_never_picks_by_alphabet(golds, constant):
    plan = {g: [("A", k)] for g, k in golds.items()}
    p = letter_profiles(strategy_rows("s", plan))["s"]
    assert p.best_constant[0] == constant[0]
    assert p.best_constant[1] == pytest.approx(constant[1])


@pytest.mark.parametrize("name, plan", [("rag", RAG), ("closed-book", CLOSED), ("good", GOOD)])
def test_p_value_matches_scipy_binomtest(name, plan):
    p = letter_profiles(strategy_rows(name, plan))[name]
    expected = binomtest(p.hits, p.n, p.chance, alternative="greater").pvalue
    assert p.p_above_chance == pytest.approx(expected, rel=1e-12)
    assert 0.0 <= p.p_above_chance <= 1.0


@pytest.mark.parametrize("name, plan, above", [("rag", RAG, False), ("closed-book", CLOSED, False), ("good", GOOD, True)])
def test_above_chance(name, plan, above):
    p = letter_profiles(strategy_rows(name, plan))[name]
    assert above_chance(p) is above
    assert (p.lead_low > 0) is above  # clear cases: Wilson and the exact test agree


@pytest.mark.parametrize("hits, n", [(31, 100), (13, 100), (0, 10), (10, 10), (80, 100)])
def test_wilson_lower_bound_by_formula_and_scipy(hits, n):
    z = 1.959963984540054
    phat = hits / n
    by_hand = (phat + z * z / (2 * n) - z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))) / (1 + z * z / n)
    low = wilson_lower(hits, n)
    assert low == pytest.approx(max(0.0, by_hand), abs=1e-9)
    scipy_low = binomtest(hits, n, 0.5, alternative="greater").proportion_ci(0.975, "wilson").low
    assert low == pytest.approx(scipy_low, abs=1e-9)


def test_lead_low_is_wilson_bound_minus_chance():
    p = letter_profiles(tpo_rows(rag=RAG))["rag"]
    assert p.lead_low == pytest.approx(wilson_lower(31, 100) - p.chance)
    assert p.lead_low < 0


@pytest.mark.parametrize("options, chance", [(4, 0.25), (5, 0.2), (1, 1.0)])
def test_uniform_chance(options, chance):
    assert uniform_chance(options) == chance


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_uniform_chance_rejects(bad):
    with pytest.raises(LetterBiasError):
        uniform_chance(bad)


@pytest.mark.parametrize("alpha", [0, 1, -0.1, True])
def test_alpha_must_be_a_level(alpha):
    p = letter_profiles(tpo_rows(rag=RAG))["rag"]
    with pytest.raises(LetterBiasError):
        above_chance(p, alpha)


# --------------------------------------------------------------- closed book


@pytest.mark.parametrize("plans, control, guessing", [
    ({"rag": RAG, "closed-book": CLOSED}, "closed-book", True),
    ({"rag": RAG, "closed-book": GOOD}, "closed-book", False),  # a control that knows answers
    ({"rag": RAG}, "closed-book", False),  # no control
    ({"rag": RAG, "memory": CLOSED}, "memory", True),
])
def test_closed_book_is_guessing(plans, control, guessing):
    profiles = letter_profiles(tpo_rows(**plans))
    assert closed_book_is_guessing(profiles, control) is guessing


def test_closed_book_profile_mirrors_the_reviewer():
    p = letter_profiles(tpo_rows(**{"closed-book": CLOSED}))["closed-book"]
    assert dict(p.chosen) == {"A": 90, "B": 5, "none": 5}
    assert p.chance == pytest.approx(0.9 * 0.11 + 0.05 * 0.24)
    assert dict(p.accuracy_by_gold)["A"] == (11, 11)


# ------------------------------------------------------------------- filtering


@pytest.mark.parametrize("gold, letter", [
    ("C", "C"), ("(C)", "C"), ("c", "C"), ("C. to earn money", "C"), ("Paris", None), ("BD", None), (None, None),
])
def test_gold_letter(gold, letter):
    assert gold_letter(row("s", "q", gold, "C")) == letter


def test_rows_that_do_not_count_are_skipped():
    rows = [
        *tpo_rows(rag=RAG),
        row("rag", "err1", "A", None, error="timeout"),  # reader failed
        row("rag", "free", "Paris", "A"),  # free-text gold
        row("rag", "hp1", "A", "A", dataset="hotpotqa"),  # a free-text data set by name
        row("other", "x1", "Paris", None),  # a strategy with no multiple-choice row at all
    ]
    profiles = letter_profiles(rows)
    assert list(profiles) == ["rag"]
    assert profiles["rag"].n == 100


def test_other_kinds_mirror_the_verdict():
    assert {name for name, kind in verdict.DATASET_KINDS.items() if kind != "multiple_choice"} == OTHER_KINDS
    assert UNLABELLED == verdict.UNLABELLED


def test_unlabelled_rows_form_one_data_set():
    p = letter_profiles([row("s", "q1", "A", "A", dataset=None), row("s", "q2", "B", "A", dataset=None)], UNLABELLED)
    assert (p["s"].n, p["s"].hits) == (2, 1)


def test_dataset_filter_and_mixed_data_sets():
    rows = [*tpo_rows(rag=RAG), row("rag", "q1", "B", "B", dataset="quality")]
    with pytest.raises(LetterBiasError, match="quality, tpo"):
        letter_profiles(rows)
    assert letter_profiles(rows, "quality")["rag"].n == 1
    assert letter_profiles(rows, "tpo")["rag"].n == 100
    assert letter_profiles(rows, "nothing") == {}


def test_same_pair_twice_raises_but_runs_are_separate():
    with pytest.raises(LetterBiasError, match="twice"):
        letter_profiles([row("s", "q1", "A", "A"), row("s", "q1", "A", "B")])
    p = letter_profiles([row("s", "q1", "A", "A"), row("s", "q1", "A", "B", run="r2")])["s"]
    assert (p.n, p.hits) == (2, 1)


def test_hits_come_from_em():
    p = letter_profiles([row("s", "q1", "A", "A", em=0.0), row("s", "q2", "B", "C", em=1.0)])["s"]
    assert p.hits == 1
    assert dict(p.accuracy_by_gold) == {"A": (0, 1), "B": (1, 1)}


# ------------------------------------------------------------------- findings


def test_findings_on_the_tpo_shape():
    profiles = letter_profiles(tpo_rows(rag=RAG, **{"closed-book": CLOSED}))
    f = letter_findings(profiles)
    assert f.above == ()
    assert f.best == ("rag",)
    assert f.constant == ("C", pytest.approx(0.36))
    assert f.best_vs_constant == "below"
    assert dict(f.never_right) == {"D": (29, 29)}
    assert (f.control, f.control_guessing, f.control_top) == ("closed-book", True, ("A", 90, 100))


def test_findings_with_a_strategy_above_chance():
    f = letter_findings(letter_profiles(tpo_rows(rag=RAG, good=GOOD)))
    assert f.above == ("good",)
    assert f.best == ("good",)
    assert f.best_vs_constant == "above"
    assert dict(f.never_right) == {}
    assert f.control is None


# ---------------------------------------------------------------------- report


def test_markdown_carries_the_numbers():
    profiles = letter_profiles(tpo_rows(rag=RAG, **{"closed-book": CLOSED}))
    lines = letter_markdown("tpo", profiles)
    text = "\n".join(lines)
    assert lines[0].startswith("#") and "tpo" in lines[0]
    rag_line = next(line for line in lines if line.startswith("| rag |"))
    for cell in ("100", "0.310", "0.274", "A 20, B 30, C 50", "A 3/11, B 8/24, C 20/36, D 0/29"):
        assert cell in rag_line
    closed_line = next(line for line in lines if line.startswith("| closed-book |"))
    assert "A 90, B 5, none 5" in closed_line and "0.111" in closed_line
    assert "No strategy is above its chance baseline" in text
    assert 'Always answering "C" scores 0.360' in text and "0.310 (below it)" in text
    assert "gold-D" in text and "29" in text
    assert "closed-book is not above its chance baseline" in text and "90 of 100" in text


def test_markdown_names_strategies_above_chance():
    text = "\n".join(letter_markdown("tpo", letter_profiles(tpo_rows(rag=RAG, good=GOOD))))
    assert "Above their chance baseline (p \\< 0.025): good." in text  # '<' escaped for Markdown
    assert "gold-D" not in text


def test_html_escapes_every_text():
    profiles = letter_profiles(strategy_rows("<b>rag&co</b>", RAG))
    html = letter_html("tpo<x>", profiles)
    assert html.startswith("<section") and html.endswith("</section>")
    assert "<b>" not in html and "tpo<x>" not in html
    assert "&lt;b&gt;rag&amp;co&lt;/b&gt;" in html and "tpo&lt;x&gt;" in html
    assert 'class="table-wrap"' in html and 'class="findings"' in html and '<tr class="best">' in html
    assert "A 3/11, B 8/24, C 20/36, D 0/29" in html
    md = "\n".join(letter_markdown("tpo", profiles))
    assert re.search(r"(?<!\\)<", md) is None  # every '<' escaped
    assert "\\<b>rag&co\\</b>" in md


def test_empty_section():
    assert letter_markdown("tpo", {})[-1] == "No multiple-choice answers."
    assert "No multiple-choice answers." in letter_html("tpo", {})
