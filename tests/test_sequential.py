"""The sequential verdict (``lcrag eval --until-decided``) with an injected verdict: where
the looks sit, where a replay stops (resolved, futile, exhausted) and on which questions,
the calls-saved arithmetic, the alpha each look is tested at, answering in rounds over a
real ledger (and resuming), the command line with the fake reader, and a simulation that
peeking after every round at its spent share of alpha keeps the error rate of a wrong
recommendation at alpha, where peeking at the full alpha each time does not."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np
import pytest

from lcrag.pipeline.evaluation.sequential import (
    EXHAUSTED,
    FUTILE,
    RESOLVED,
    SequentialError,
    answering_order,
    looks,
    replay,
    round_order,
    settled,
    stop_reason,
)
from lcrag.pipeline.statistics.paired_tests import spending_schedule
from lcrag.pipeline.statistics.verdict import VerdictSettings
from tests.helpers import make_row

SETTINGS = VerdictSettings()


@dataclass(frozen=True)
class FakeVerdict:
    status: str
    resolved: bool
    use: tuple[str, ...] = ()
    questions_needed: int | None = None
    n_questions: int = 0

    def describe(self) -> str:
        return f"{self.status} {','.join(self.use)} on {self.n_questions}".strip()


def use(name: str = "rag", n: int = 0) -> FakeVerdict:
    return FakeVerdict("resolved", True, (name,), None, n)


def unresolved(needed: int | None = 10_000_000, n: int = 0) -> FakeVerdict:
    return FakeVerdict("unresolved", False, (), needed, n)


def scripted(script, calls=None):
    """A decide that answers by the number of questions it is given: script[n] (a verdict
    factory), ``default`` otherwise, under the rows' data set; records (questions, alpha,
    question ids) of every call."""

    def decide(rows, settings):
        qids = {r.question_id for r in rows}
        if calls is not None:
            calls.append((len(qids), settings.alpha, tuple(sorted(qids))))
        make = script.get(len(qids), script.get("default", lambda n: unresolved(50, n)))
        return {rows[0].dataset if rows else "none": make(len(qids))}

    return decide


def rows_for(n_questions, strategies=("rag", "lc"), run_id="run1", dataset="hotpotqa", start=1000.0):
    """Rows of n questions answered in id order, one second apart."""
    return [make_row(run_id=run_id, dataset=dataset, question_id=f"q{i:03d}", strategy=s, created_at=start + i,
                     em=1.0, recall=1.0)
            for i in range(n_questions) for s in strategies]


# ---------------------------------------------------------------------- looks


@pytest.mark.parametrize("total, size, expected", [
    (0, 20, ()),
    (5, 20, (5,)),
    (20, 20, (20,)),
    (21, 20, (20, 21)),
    (45, 20, (20, 40, 45)),
    (60, 20, (20, 40, 60)),
    (3, 1, (1, 2, 3)),
])
def test_looks_sit_at_multiples_of_the_round_size_and_end_at_the_total(total, size, expected):
    assert looks(total, size) == expected


@pytest.mark.parametrize("total, size", [(10, 0), (10, -3), (10, True), (10, 2.5), (-1, 5)])
def test_looks_refuse_a_round_size_or_total_that_is_not_a_count(total, size):
    with pytest.raises(SequentialError):
        looks(total, size)


# ------------------------------------------------------------ where it stops


@pytest.mark.parametrize("script, n, expected_looks, reason, status, used", [
    # resolved at the second look: stops there, not at the (also resolved) third
    ({20: lambda n: unresolved(55, n), 40: lambda n: use("rag", n), 60: lambda n: use("lc", n)}, 60,
     (20, 40), RESOLVED, "resolved", 40),
    ({20: lambda n: use("op-rag", n)}, 60, (20,), RESOLVED, "resolved", 20),
    # never resolved, always worth more questions: every look, exhausted
    ({"default": lambda n: unresolved(45, n)}, 50, (20, 40, 50), EXHAUSTED, "unresolved", 50),
    # nothing to compare yet is not futile: look again
    ({20: lambda n: FakeVerdict("nothing_to_compare", False), 40: lambda n: use("rag", n)}, 60, (20, 40), RESOLVED,
     "resolved", 40),
])
def test_replay_stops_at_the_first_resolved_look(script, n, expected_looks, reason, status, used):
    (outcome,) = replay(rows_for(n), round_size=20, settings=SETTINGS, decide=scripted(script))
    assert tuple(k.questions for k in outcome.looks) == expected_looks
    assert (outcome.stop_reason, outcome.parts[0].status, outcome.questions_used) == (reason, status, used)
    assert outcome.questions_available == n and outcome.looks[-1].stop == (None if reason == EXHAUSTED else reason)


@pytest.mark.parametrize("needed, planned, expected", [
    (None, 100, FUTILE),  # no size would settle it
    (101, 100, FUTILE),  # more than the data set holds
    (100, 100, None),  # exactly the data set: keep looking
    (30, 100, None),
])
def test_an_unresolved_look_is_futile_when_no_size_up_to_the_data_set_would_settle_it(needed, planned, expected):
    assert stop_reason(unresolved(needed), planned) == expected
    assert stop_reason(use(), planned) == RESOLVED
    assert stop_reason(FakeVerdict("no_common_questions", False), planned) is None


@pytest.mark.parametrize("script, expected_looks, reason", [
    ({20: lambda n: unresolved(40, n), 40: lambda n: unresolved(None, n)}, (20, 40), FUTILE),
    ({20: lambda n: unresolved(61, n), 40: lambda n: unresolved(61, n)}, (20, 40), FUTILE),  # 61 > N = 60
    # before half the planned questions are in, a look never stops for futility (FUTILITY_FROM)
    ({20: lambda n: unresolved(None, n)}, (20, 40, 60), EXHAUSTED),
    ({"default": lambda n: unresolved(60, n)}, (20, 40, 60), EXHAUSTED),
])
def test_replay_stops_for_futility(script, expected_looks, reason):
    (outcome,) = replay(rows_for(60), round_size=20, settings=SETTINGS, decide=scripted(script))
    assert tuple(k.questions for k in outcome.looks) == expected_looks and outcome.stop_reason == reason
    assert outcome.parts[0].use == ()


@pytest.mark.parametrize("stops, expected", [
    ([RESOLVED], RESOLVED),
    ([RESOLVED, RESOLVED], RESOLVED),
    ([RESOLVED, FUTILE], FUTILE),
    ([FUTILE, FUTILE], FUTILE),
    ([RESOLVED, None], None),  # one part still open: look again
    ([], None),  # nothing judged yet
])
def test_a_look_is_settled_when_every_part_is(stops, expected):
    assert settled(stops) == expected


def test_a_data_set_judged_in_parts_stops_when_every_part_is_settled():
    # SQuAD 2.0's verdict comes in two parts; the answerable one settles at 20, the other at 40
    def decide(rows, settings):
        n = len({r.question_id for r in rows})
        later = use("lc", n) if n >= 40 else unresolved(50, n)
        return {"squad2 · answerable": use("rag", n), "squad2 · unanswerable": later}

    (outcome,) = replay(rows_for(60, dataset="squad2"), round_size=20, settings=SETTINGS, decide=decide)
    assert (outcome.questions_used, outcome.stop_reason, outcome.dataset) == (40, RESOLVED, "squad2")
    assert [(p.name, p.use, p.agree) for p in outcome.parts] == [
        ("squad2 · answerable", ("rag",), True), ("squad2 · unanswerable", ("lc",), True)]


# ----------------------------------------------------------- question order


@pytest.mark.parametrize("answered, first_two", [
    # (question, strategy, created_at): order by each question's earliest row
    ([("q1", "rag", 30), ("q1", "lc", 31), ("q2", "rag", 10), ("q2", "lc", 40), ("q3", "rag", 20), ("q3", "lc", 21)],
     ("q2", "q3")),
    # the earliest row of q3 is its lc row; ties by question id
    ([("q1", "rag", 5), ("q1", "lc", 6), ("q2", "rag", 5), ("q2", "lc", 9), ("q3", "rag", 50), ("q3", "lc", 1)],
     ("q3", "q1")),
])
def test_replay_takes_questions_in_the_order_they_were_first_answered(answered, first_two):
    rows = [make_row(question_id=q, strategy=s, created_at=float(t), dataset="hotpotqa", em=1.0, recall=1.0)
            for q, s, t in answered]
    assert answering_order(rows)[:2] == first_two
    calls = []
    replay(rows, round_size=2, settings=SETTINGS, decide=scripted({}, calls=calls))
    assert calls[0][2] == tuple(sorted(first_two))  # the first look saw exactly those two
    assert calls[1][2] == ("q1", "q2", "q3")


def test_each_run_and_data_set_is_replayed_on_its_own():
    rows = rows_for(40, run_id="a") + rows_for(20, run_id="b") + rows_for(20, run_id="b", dataset="kv")
    outcomes = replay(rows, round_size=20, settings=SETTINGS, decide=scripted({"default": lambda n: unresolved(30, n)}))
    assert [(o.run_id, o.dataset, o.questions_available) for o in outcomes] == [
        ("a", "hotpotqa", 40), ("b", "hotpotqa", 20), ("b", "kv", 20)]


# ------------------------------------------------------- calls-saved arithmetic


@pytest.mark.parametrize("per_question, stop_at, used, available", [
    # rows per question (strategies that answered it), stop after this many questions
    ([2] * 10, 4, 8, 20),
    ([3, 1, 2, 2, 3, 1], 2, 4, 12),  # uneven: a strategy missing a question, an error row beside a success
    ([2] * 5, 5, 10, 10),  # never stops early: nothing saved
])
def test_calls_saved_counts_the_rows_of_the_questions_not_needed(per_question, stop_at, used, available):
    names = ("rag", "lc", "op-rag")
    rows = [make_row(question_id=f"q{i}", strategy=names[k], created_at=100.0 + i, dataset="hotpotqa", em=1.0)
            for i, count in enumerate(per_question) for k in range(count)]
    (outcome,) = replay(rows, round_size=1, settings=SETTINGS,
                        decide=scripted({stop_at: lambda n: use("rag", n), "default": lambda n: unresolved(1, n)}))
    assert (outcome.questions_used, outcome.calls_used, outcome.calls_available) == (stop_at, used, available)
    assert math.isclose(outcome.calls_saved, 1 - used / available)
    assert outcome.as_dict()["calls_saved"] == round(1 - used / available, 4)


# ----------------------------------------------------------- alpha per look


@pytest.mark.parametrize("n, max_questions, expected_fractions", [
    (60, None, (1 / 3, 2 / 3, 1.0)),
    (60, 100, (0.2, 0.4, 0.6)),  # N planned above what is there: the rest of alpha stays unspent
    (100, 50, (0.4, 0.8, 1.0)),  # capped at 50 questions
])
def test_each_look_is_tested_at_its_spent_share_and_the_full_data_verdict_at_alpha(n, max_questions, expected_fractions):
    calls = []
    (outcome,) = replay(rows_for(n), round_size=20, max_questions=max_questions, settings=SETTINGS,
                        decide=scripted({"default": lambda k: unresolved(1, k)}, calls=calls))
    expected = spending_schedule(SETTINGS.alpha, expected_fractions)
    assert [c[1] for c in calls[:-1]] == pytest.approx(expected)
    assert [k.alpha for k in outcome.looks] == pytest.approx(expected)
    assert sum(k.alpha for k in outcome.looks) <= SETTINGS.alpha + 1e-12
    assert calls[-1][:2] == (min(n, max_questions or n), SETTINGS.alpha)  # full data: one look at full alpha
    assert outcome.planned == (max_questions or n)


@pytest.mark.parametrize("at_stop, full, agree", [
    (use("rag"), use("rag"), True),
    (use("rag"), use("lc"), False),
    (unresolved(None), unresolved(500), True),  # neither recommends
    (unresolved(None), use("rag"), False),
])
def test_agreement_with_the_full_data_verdict(at_stop, full, agree):
    def decide(rows, settings):
        return {"hotpotqa": full if settings.alpha == SETTINGS.alpha else at_stop}

    (outcome,) = replay(rows_for(40), round_size=20, settings=SETTINGS, decide=decide)
    assert outcome.agree is agree and outcome.parts[0].full_use == (full.use if full.resolved else ())


# ------------------------------------------------------------ the simulation

MARGIN = 0.05
P_LC = 0.6  # the reference answers right this often; the cheap strategy (rag) exactly MARGIN less often
QUESTIONS, ROUND, RUNS = 100, 20, 2000


def z_test(rows, settings):
    """A one-sided non-inferiority z-test of (rag - lc) > -MARGIN at the look's alpha:
    resolved ("use rag") when z > z_{1-alpha}; else unresolved with the textbook size
    estimate at that alpha (None when rag trails by the margin or more)."""
    by_question: dict[str, dict[str, float]] = {}
    for row in rows:
        by_question.setdefault(row.question_id, {})[row.strategy] = row.em
    d = np.array([q["rag"] - q["lc"] for q in by_question.values()])
    gap, sd = d.mean() + MARGIN, d.std(ddof=1)
    z = gap / (sd / math.sqrt(d.size)) if sd > 0 else math.copysign(math.inf, gap)
    critical = NormalDist().inv_cdf(1 - settings.alpha)
    if z > critical:
        return {"sim": use("rag", d.size)}
    needed = None if gap <= 0 or sd == 0 else math.ceil(((critical + 0.84) * sd / gap) ** 2)
    return {"sim": unresolved(needed, d.size)}


def the_verdict(rows, settings):
    from lcrag.pipeline.statistics.verdict import verdicts

    return verdicts(rows, settings=settings)


DECIDERS = {"z-test": z_test, "verdict": the_verdict}


def without_futility(decide):
    """``decide`` with every unresolved verdict claiming a size within reach: never futile."""

    def wrapped(rows, settings):
        return {name: replace(v, questions_needed=1) if v.status == "unresolved" else v
                for name, v in decide(rows, settings).items()}

    return wrapped


@pytest.fixture(scope="module")
def simulated_rows():
    """RUNS runs of QUESTIONS paired right/wrong answers: lc (1,000 prompt tokens) right
    with P_LC, rag (100) with P_LC - MARGIN, independently: rag is cheaper and worse by
    exactly the margin, so recommending it is wrong (non-inferiority's null holds)."""
    rng = np.random.default_rng(20240607)
    right = {"lc": rng.random((RUNS, QUESTIONS)) < P_LC, "rag": rng.random((RUNS, QUESTIONS)) < P_LC - MARGIN}
    tokens = {"lc": 1000, "rag": 100}
    return [make_row(run_id=f"sim{run:04d}", question_id=f"q{q:03d}", strategy=name, dataset="sim", created_at=1.0 + q,
                     em=float(right[name][run, q]), recall=float(right[name][run, q]), prompt_tokens=tokens[name],
                     answer=f"{name} answer {q}")
            for run in range(RUNS) for q in range(QUESTIONS) for name in ("lc", "rag")]


def naive(alpha, fractions):
    """Every look at the full alpha: what the spending replaces."""
    return [alpha] * len(fractions)


@pytest.fixture(scope="module")
def wrong(simulated_rows):
    """decider, schedule, futility -> the runs whose sequence ended recommending rag."""
    out = {}
    for name, decide in DECIDERS.items():
        for schedule, spend in (("spent", None), ("naive", naive)):
            for futility in (True, False):
                outcomes = replay(simulated_rows, round_size=ROUND, settings=replace(SETTINGS, margin=MARGIN),
                                  decide=decide if futility else without_futility(decide), spend=spend)
                assert len(outcomes) == RUNS and all(o.looks_taken <= QUESTIONS // ROUND for o in outcomes)
                out[name, schedule, futility] = frozenset(o.run_id for o in outcomes if "rag" in o.parts[0].use)
    return out


LIMIT = SETTINGS.alpha + 3 * math.sqrt(SETTINGS.alpha * (1 - SETTINGS.alpha) / RUNS)  # alpha + 3 simulation SEs


@pytest.mark.parametrize("decider", list(DECIDERS))
@pytest.mark.parametrize("futility", [True, False])
@pytest.mark.slow  # Monte Carlo: thousands of simulated runs
def test_peeking_after_every_round_at_its_spent_share_keeps_the_error_rate(wrong, decider, futility):
    share = len(wrong[decider, "spent", futility]) / RUNS
    assert share <= LIMIT, f"alpha spending let {share:.4f} of runs recommend the worse strategy (limit {LIMIT:.4f})"


@pytest.mark.parametrize("decider", list(DECIDERS))
@pytest.mark.slow  # Monte Carlo: thousands of simulated runs
def test_peeking_at_the_full_alpha_every_round_inflates_the_error_rate(wrong, decider):
    naive_share, spent_share = (len(wrong[decider, s, False]) / RUNS for s in ("naive", "spent"))
    assert naive_share > LIMIT and naive_share > spent_share, (naive_share, spent_share)


@pytest.mark.parametrize("decider", list(DECIDERS))
@pytest.mark.parametrize("schedule", ["spent", "naive"])
@pytest.mark.slow  # Monte Carlo: thousands of simulated runs
def test_stopping_for_futility_never_adds_a_wrong_recommendation(wrong, decider, schedule):
    # the same runs, the same looks: a futility stop only takes later looks away
    assert wrong[decider, schedule, True] <= wrong[decider, schedule, False]
    assert len(wrong[decider, schedule, True]) < len(wrong[decider, schedule, False])  # and here it takes some away


# ------------------------------------------------------------ answering in rounds


def test_round_order_is_seeded_and_ignores_the_loaders_order():
    ids = [f"q{i}" for i in range(30)]
    assert round_order(ids, 0) == round_order(reversed(ids), 0)
    assert sorted(round_order(ids, 0)) == sorted(ids)
    assert round_order(ids, 0) != round_order(ids, 1)
    assert round_order(ids, 0) != tuple(ids)


def fifty_questions():
    from lcrag.pipeline.evaluation.items import EvalItem, EvalSet
    from lcrag.pipeline.strategies import Question

    items = tuple(EvalItem(Question(f"q{i:02d}", f"Question {i}?"), ("a",), f"c{i}") for i in range(50))
    return EvalSet("hotpotqa", items, {})


def recording_answer(ledger, asked, run_id="r", strategies=("rag", "lc")):
    """An ``answer`` that records a row per pending (question, strategy), as run_evaluation does."""

    def answer(subset):
        done = ledger.done_keys(run_id)
        asked.append(tuple(i.question.qid for i in subset.items))
        return ledger.record([make_row(run_id=run_id, question_id=i.question.qid, strategy=s, dataset="hotpotqa",
                                       em=1.0, recall=1.0)
                              for i in subset.items for s in strategies if (i.question.qid, s) not in done])

    return answer


@pytest.mark.parametrize("script, expected_sizes, decided, last_line", [
    ({40: lambda n: use("rag", n)}, (20, 40), True, "stopped after 40 of 50 questions (resolved)"),
    ({20: lambda n: unresolved(None, n), 40: lambda n: unresolved(None, n)}, (20, 40), True,
     "stopped after 40 of 50 questions (futile)"),
    ({"default": lambda n: unresolved(45, n)}, (20, 40, 50), False, "all 50 questions answered without settling"),
])
def test_rounds_stop_once_decided_and_a_rerun_rederives_the_same_looks(tmp_path, script, expected_sizes, decided,
                                                                        last_line):
    from lcrag.pipeline.evaluation.job import answer_until_decided
    from lcrag.pipeline.ledger import Ledger

    ledger, evalset, asked, lines = Ledger(tmp_path / "l.duckdb"), fifty_questions(), [], []
    calls = []
    kwargs = dict(round_size=20, seed=3, settings=SETTINGS, decide=scripted(script, calls=calls))
    answered, reports = answer_until_decided(evalset, "r", ("rag", "lc"), ledger, recording_answer(ledger, asked),
                                             announce=lines.append, **kwargs)
    order = round_order((i.question.qid for i in evalset.items), 3)
    assert [len(a) for a in asked] == list(expected_sizes) and answered == 2 * expected_sizes[-1]
    assert set(asked[0]) == set(order[:20]) and list(asked[0]) == sorted(asked[0])  # loader's order within a round
    assert {r.question_id for r in ledger.rows("r")} == set(order[:expected_sizes[-1]])
    assert [r.questions for r in reports] == list(expected_sizes) and reports[-1].decided is decided
    assert [r.alpha for r in reports] == pytest.approx(spending_schedule(SETTINGS.alpha, (0.4, 0.8, 1.0))[:len(reports)])
    assert [c[2] for c in calls] == [tuple(sorted(order[:n])) for n in expected_sizes]  # judged on those questions only
    assert lines[0].startswith("look 1/3: 20/50 questions, alpha ") and "hotpotqa: " in lines[0]
    assert lines[-1].startswith(last_line)
    again, asked_again = answer_until_decided(evalset, "r", ("rag", "lc"), ledger, recording_answer(ledger, []),
                                              **kwargs)
    assert (again, asked_again) == (0, reports)  # nothing new to answer, the same looks


def test_cli_eval_until_decided_answers_in_rounds_and_stops(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lcrag.app.cli.app import app
    from lcrag.pipeline.evaluation import job
    from tests.test_evaluation import write_hotpot

    calls = []
    monkeypatch.setattr(job, "default_decide", lambda strategies=None: scripted(
        {2: lambda n: use("rag", n), "default": lambda n: unresolved(3, n)}, calls=calls))
    config = tmp_path / "config.yaml"
    config.write_text("reader:\n  backend: fake\n")
    ledger = tmp_path / "l.duckdb"
    args = ["eval", "--dataset", f"hotpotqa:{write_hotpot(tmp_path, n=5)}", "--strategies", "rag,lc", "--run-id", "seq",
            "--config", str(config), "--ledger", str(ledger), "--work", str(tmp_path / "w"), "--until-decided",
            "--round-size", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "look 1/5: 1/5 questions" in result.output and "look 2/5: 2/5 questions" in result.output
    assert "look 3/5" not in result.output
    assert "stopped (resolved) after look 2 of 5: 2 of 5 questions" in result.output
    assert "answered 4 pairs" in result.output
    from lcrag.pipeline.ledger import Ledger

    assert Ledger(ledger).count("seq") == 4
    rerun = CliRunner().invoke(app, args)
    assert rerun.exit_code == 0 and "answered 0 pairs" in rerun.output and "stopped (resolved) after look 2 of 5" in rerun.output
    assert [c[0] for c in calls] == [1, 2, 1, 2]  # each run judged one, then two questions


@pytest.mark.parametrize("args, message", [
    (["--round-size", "5"], "--round-size applies with --until-decided only"),
    (["--until-decided", "--strategies", "rag"], "name at least two strategies"),
    (["--until-decided", "--strategies", "rag,closed-book"], "closed-book is a control"),
])
def test_cli_until_decided_refuses_what_it_cannot_use(tmp_path, args, message):
    from typer.testing import CliRunner

    from lcrag.app.cli.app import app
    from tests.test_evaluation import write_hotpot

    config = tmp_path / "config.yaml"
    config.write_text("reader:\n  backend: fake\n")
    result = CliRunner().invoke(app, ["eval", "--dataset", f"hotpotqa:{write_hotpot(tmp_path)}", "--config", str(config),
                                      "--ledger", str(tmp_path / "l.duckdb"), "--work", str(tmp_path / "w"), *args])
    assert result.exit_code == 2 and message in result.output


def test_an_evaluation_request_refuses_a_round_size_below_one_and_until_decided_on_beir(tmp_path):
    from lcrag.pipeline.evaluation.items import EvalDataError
    from lcrag.pipeline.evaluation.job import EvalRequest

    with pytest.raises(EvalDataError, match="--round-size must be at least 1"):
        EvalRequest(f"hotpotqa:{tmp_path}", until_decided=True, round_size=0)
    with pytest.raises(EvalDataError, match="beir judges retrieval only"):
        EvalRequest(f"beir:{tmp_path}", until_decided=True)


# ------------------------------------------------------------------ the bench


def load_bench():
    from tests.helpers import load_bench_script

    return load_bench_script("sequential_replay")


def test_the_bench_replays_a_ledger_copy_and_writes_json_and_a_table(tmp_path):
    import hashlib
    import json

    from lcrag.pipeline.ledger import Ledger

    bench = load_bench()
    ledger = tmp_path / "ledger.duckdb"
    Ledger(ledger).record(rows_for(50, run_id="a") + rows_for(30, run_id="b", dataset="kv"))
    before = hashlib.sha256(ledger.read_bytes()).hexdigest()
    decide = scripted({40: lambda n: use("rag", n), "default": lambda n: unresolved(30, n)})
    records = bench.replay_ledgers([ledger], 20, SETTINGS, decide=decide)
    assert hashlib.sha256(ledger.read_bytes()).hexdigest() == before  # read from a copy
    assert [(r["run_id"], r["questions_used"], r["stop_reason"]) for r in records] == [("a", 40, "resolved"),
                                                                                     ("b", 30, "exhausted")]
    json_path, md_path = bench.write(records, 20, SETTINGS, tmp_path / "out")
    payload = json.loads(json_path.read_text())
    assert payload["round_size"] == 20 and payload["settings"]["alpha"] == SETTINGS.alpha
    assert payload["outcomes"][0]["calls_saved"] == 0.2 and payload["outcomes"][0]["parts"][0]["use"] == ["rag"]
    table = md_path.read_text()
    assert "| hotpotqa | a | 40 / 50 | 2 | 80 / 100 | 20% | resolved | use rag |" in table
    assert "| kv | b | 30 / 30 | 2 | 60 / 60 | 0% | exhausted | unresolved |" in table
    assert json_path.name == "sequential-replay.json"
    assert bench.write(records, 10, SETTINGS, tmp_path / "out")[0].name == "sequential-replay-r10.json"


def test_the_bench_runs_the_real_verdict_on_the_committed_ledgers_without_touching_them(tmp_path):
    import hashlib

    bench = load_bench()
    committed = [p for p in bench.LEDGERS if p.is_file()]
    if not committed:
        pytest.skip("no committed ledger")
    before = [hashlib.sha256(p.read_bytes()).hexdigest() for p in committed]
    assert bench.main(["--out", str(tmp_path)]) == 0
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in committed] == before
    assert not any(p.with_name(p.name + ".segments").exists() and not p.with_name(p.name + ".segments").is_dir()
                   for p in committed)
    table = (tmp_path / "sequential-replay.md").read_text()
    assert "| data set | run | questions used / available |" in table and "closing-hotpotqa" in table
