"""Routing that learns from the ledger: the reader's confidence, self-route's
calibrated threshold, the routing table and its policies, the fitted router's file,
and ``route fit`` -> ``ask --strategy auto`` end to end with the fake reader."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lcrag.app.cli.app import app
from lcrag.pipeline.ledger import FeatureRow
from lcrag.pipeline.routing.calibrate import ALWAYS, CalibrationItem, calibrate, candidate_thresholds
from lcrag.pipeline.routing.confidence import reply_confidence
from lcrag.pipeline.routing.features import FEATURE_NAMES, PRE_READ_NAMES, question_form, retrieval_features
from lcrag.pipeline.routing.fit import cross_validated, fit_router, folds, policy_summaries, score_router
from lcrag.pipeline.routing.policies import oracle
from lcrag.pipeline.routing.router import FittedRouter, Node, RouterError, load_router, save_router
from lcrag.pipeline.routing.strategies import falls_back
from lcrag.pipeline.routing.table import RoutingDataError, routing_table
from lcrag.pipeline.session import Session
from lcrag.pipeline.strategies.base import Question
from lcrag.readers.base import Answer, mean_token_probability
from lcrag.readers.fake import FakeReader
from lcrag.readers.vllm import answer_logprobs
from tests.helpers import make_row

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


# ----------------------------------------------------------------- confidence


@pytest.mark.parametrize(
    "logprobs, expected",
    [
        ((), None),
        ((0.0,), 1.0),
        ((math.log(0.5), math.log(0.5)), 0.5),
        ((math.log(0.9), math.log(0.1)), math.sqrt(0.9 * 0.1)),  # geometric mean, not the minimum
    ],
)
def test_confidence_is_the_geometric_mean_token_probability(logprobs, expected):
    got = mean_token_probability(logprobs)
    assert got == expected if expected is None else got == pytest.approx(expected)


def test_confidence_rejects_impossible_logprobs():
    with pytest.raises(ValueError, match="logprobs must be <= 0"):
        mean_token_probability((0.5,))


def test_confidence_from_a_recorded_server_response():
    recorded = json.loads((FIXTURES / "vllm_chat_completion_logprobs.json").read_text())
    choice = recorded["choices"][0]
    logprobs, top = answer_logprobs(choice)
    answer = Answer(choice["message"]["content"], 116, 2, 1.0, "m", token_logprobs=logprobs, first_token_top=top)
    first = choice["logprobs"]["content"][0]["logprob"]
    assert answer.confidence == pytest.approx(math.exp(first))  # the end-of-turn token is not part of the answer
    options = ("a volcano", "a river", "a lake", "a city")
    chosen = reply_confidence(Question("q", "What is Etna?", options=options), answer)
    top_a = sum(math.exp(alt["logprob"]) for alt in choice["logprobs"]["content"][0]["top_logprobs"]
                if alt["token"].upper() == "A")
    assert chosen == pytest.approx(top_a) and chosen > math.exp(first)  # "A" and "a" both choose option A
    assert reply_confidence(Question("q", "x?"), Answer("x", 1, 1, 1.0, "m")) is None  # no logprobs, no confidence


def test_answer_logprobs_stop_at_the_first_line():
    content = [{"token": "Paris", "logprob": -0.1}, {"token": "\n", "logprob": -0.2}, {"token": "Because", "logprob": -3.0}]
    assert answer_logprobs({"logprobs": {"content": content}}) == ((-0.1,), ())
    assert answer_logprobs({"logprobs": {"content": content}}, first_line_only=False) == ((-0.1, -3.0), ())


@pytest.mark.parametrize(
    "unanswerable, logprob, threshold, expected",
    [
        (True, 0.0, None, True),  # a decline always falls back
        (False, math.log(0.3), None, False),  # no threshold: declines only
        (False, math.log(0.3), 0.5, True),
        (False, math.log(0.7), 0.5, False),
        (False, None, 0.5, False),  # no logprobs: nothing to judge by
    ],
)
def test_self_route_falls_back_on_declines_and_low_confidence(unanswerable, logprob, threshold, expected):
    answer = Answer("x", 1, 1, 1.0, "m", unanswerable, token_logprobs=() if logprob is None else (logprob,))
    assert falls_back(Question("q", "x?"), answer, threshold) is expected


# ---------------------------------------------------------------- calibration


def items(rows: list[tuple[float, float, float | None]]) -> list[CalibrationItem]:
    return [CalibrationItem(rag, lc, conf) for rag, lc, conf in rows]


def test_calibration_picks_the_least_fallback_that_is_non_inferior():
    # rag is right exactly when it is confident (>= 0.6); lc is always right
    table = [(1.0, 1.0, 0.6 + i / 100) for i in range(30)] + [(0.0, 1.0, 0.1 + i / 100) for i in range(10)]
    result = calibrate(items(table))
    assert result.non_inferior and result.fallback_rate == pytest.approx(10 / 40)
    assert 0.19 < result.threshold <= 0.6 and result.difference.low > -0.05


def test_calibration_without_need_keeps_every_cheap_answer():
    result = calibrate(items([(1.0, 1.0, 0.5)] * 20))
    assert (result.threshold, result.fallback_rate, result.non_inferior) == (0.0, 0.0, True)


def test_calibration_that_never_trusts_rag_falls_back_always():
    result = calibrate(items([(0.0, 1.0, 0.99)] * 20))
    assert result.threshold > 0.99 and result.fallback_rate == 1.0 and result.non_inferior


def test_calibration_cannot_help_questions_without_confidence():
    result = calibrate(items([(0.0, 1.0, None)] * 20))
    assert result.fallback_rate == 0.0 and not result.non_inferior


def test_candidate_thresholds_step_over_each_confidence():
    assert candidate_thresholds(items([(1, 1, 0.5), (1, 1, None), (1, 1, 0.2), (1, 1, 0.5)])) == [
        0.0, pytest.approx(0.2), pytest.approx(0.5), ALWAYS]


def test_calibration_needs_questions():
    with pytest.raises(ValueError, match="at least one question"):
        calibrate([])


# --------------------------------------------------------------- routing table


def features(**overrides) -> str:
    values = dict.fromkeys(PRE_READ_NAMES, 0.0) | overrides
    return json.dumps(values)


def run_rows(n: int = 40) -> tuple[list, list[FeatureRow]]:
    """rag right on 'easy' questions (dense_top high, confident), lc right on all but
    the last two; lc costs 10x rag."""
    rows, feats = [], []
    for i in range(n):
        easy = i % 2 == 0
        qid = f"q{i:02d}"
        conf = 0.9 if easy else 0.2
        rows.append(make_row(question_id=qid, strategy="rag", dataset="kv", em=1.0 if easy else 0.0, recall=1.0 if easy else 0.0,
                             prompt_tokens=100, confidence=conf))
        lc_right = 1.0 if i < n - 2 else 0.0
        rows.append(make_row(question_id=qid, strategy="lc", dataset="kv", em=lc_right, recall=lc_right, prompt_tokens=1000))
        rows.append(make_row(question_id=qid, strategy="self-route", dataset="kv", em=1.0, recall=1.0, prompt_tokens=500))
        feats.append(FeatureRow("run1", qid, "kv", "idx", features(dense_top=0.8 if easy else 0.3)))
    return rows, feats


def test_routing_table_labels_the_cheapest_right_strategy():
    rows, feats = run_rows()
    table = routing_table(rows, feats)
    assert table.candidates == ("rag", "lc") and table.metric == "em" and len(table.questions) == 40
    labels = [table.label(q) for q in table.questions]
    # nothing right: no label (it used to be "rag", which taught the tree always-rag)
    assert labels[0] == "rag" and labels[1] == "lc" and labels[-1] is None
    assert table.label_counts() == {"rag": 20, "lc": 19} and table.no_candidate_answered() == 1
    assert table.questions[0].features["rag_confidence"] == 0.9 and set(table.questions[0].features) == set(FEATURE_NAMES)


def test_routing_table_counts_questions_without_features_and_names_the_fix():
    rows, feats = run_rows()
    table = routing_table(rows, feats[:30])
    assert len(table.questions) == 30 and table.without_features == 10
    with pytest.raises(RoutingDataError, match="rerun `lcrag eval` with the same run id"):
        routing_table(rows, [])
    with pytest.raises(RoutingDataError, match="lc is missing"):
        routing_table([r for r in rows if r.strategy != "lc"], feats)


def test_oracle_and_policies_against_lc():
    rows, feats = run_rows()
    table = routing_table(rows, feats)
    best = oracle(table)
    assert sum(best.scores.values()) == 39  # lc fails the last two; rag answers the last (even) one
    summaries = {s.name: s for s in policy_summaries(table, cross_validated(table))}
    assert summaries["always-lc"].token_ratio == 1.0 and summaries["always-lc"].difference is None
    assert summaries["always-rag"].outcome == "inferior"
    router = summaries["router"]
    # the split is learnable from dense_top / confidence: the router sends easy questions to rag only
    assert router.outcome == "non_inferior" and router.token_ratio < 0.7
    assert summaries["self-route"].outcome == "non_inferior" and 0 < summaries["self-route"].shares["lc"] < 1


@pytest.mark.parametrize("scores, tokens, chosen", [
    ({"rag": 0, "op-rag": 0, "lc": 0}, {"rag": 100, "op-rag": 100, "lc": 900}, "rag"),  # none right: the cheap read
    ({"rag": 1, "op-rag": 1, "lc": 1}, {"rag": 100, "op-rag": 100, "lc": 900}, "rag"),  # same tokens: listed first
    ({"rag": 0, "op-rag": 1, "lc": 1}, {"rag": 100, "op-rag": 100, "lc": 900}, "op-rag"),
    ({"rag": 0, "op-rag": 1, "lc": 1}, {"rag": 100, "op-rag": 950, "lc": 900}, "lc"),  # this question's tokens decide
])
def test_oracle_takes_the_cheapest_best_and_breaks_ties_by_candidate_order(scores, tokens, chosen):
    from lcrag.pipeline.routing.table import Question, RoutingTable

    question = Question(("run", "q1"), {}, scores, tokens, None, False)
    table = RoutingTable("squad2", "recall", ("rag", "op-rag", "lc"), (question,), 0)
    assert oracle(table).choices[question.key] == chosen


@pytest.mark.parametrize("policy_scores, needed", [
    ([1.0] * 40, None),                      # non-inferior: nothing to size
    ([0.0] * 40, None),                      # inferior: nothing to size
    ([1.0, 0.0] * 10 + [1.0] * 20, "n"),     # a tie on average, wide interval: a size to reach
])
def test_an_undetermined_policy_says_how_many_questions_would_tell(policy_scores, needed):
    from lcrag.pipeline.report.render import routing_cells
    from lcrag.pipeline.routing.policies import PolicyResult, summarise
    from lcrag.pipeline.statistics.verdict import questions_needed

    keys = [("r", f"q{i}") for i in range(40)]
    lc_scores = [1.0] * 20 + [1.0, 0.0] * 10  # disagrees with the policy on half the questions in the third case
    reference = PolicyResult("always-lc", dict.fromkeys(keys, "lc"), dict(zip(keys, lc_scores)), dict.fromkeys(keys, 10))
    policy = PolicyResult("router", dict.fromkeys(keys, "rag"), dict(zip(keys, policy_scores)), dict.fromkeys(keys, 1))
    summary = summarise(policy, reference, resamples=300)
    if needed is None:
        assert summary.outcome != "undetermined" and summary.questions_needed is None
        assert "would tell" not in routing_cells(summary)[5]
    else:
        expected = questions_needed([a - b for a, b in zip(policy_scores, lc_scores)])[0]
        assert summary.outcome == "undetermined" and summary.questions_needed == expected > 40
        assert f"~{expected} q would tell" in routing_cells(summary)[5]


def test_folds_cover_every_question_once():
    parts = folds(23, 5, seed=3)
    assert sorted(int(i) for p in parts for i in p) == list(range(23)) and len(parts) == 5
    assert len(folds(3, 5)) == 3


def test_fit_router_stores_its_run_threshold_and_held_out_scores(tmp_path):
    rows, feats = run_rows()
    table = routing_table(rows, feats)
    router = fit_router(table, "run1")
    assert router.run_id == "run1" and router.dataset == "kv" and router.classes == ("rag", "lc")
    assert 0.2 < router.self_route_threshold <= 0.9
    assert {s["name"] for s in router.scores["held_out"]} == {"router", "self-route", "always-rag", "always-lc", "oracle"}
    easy, hard = table.questions[0].features, table.questions[1].features
    assert (router.choose(easy), router.choose(hard)) == ("rag", "lc")
    path = save_router(router, tmp_path / "router.json")
    again = load_router(path)
    assert again == router and again.rules()
    tested = {s.name: s for s in score_router(router, table)}
    assert tested["router"].mean_score == pytest.approx(1 - 1 / 40)


# ----------------------------------------------------------------- router file


@pytest.mark.parametrize("fitted_metric, is_choice, fits", [
    ("accuracy", True, True),        # calibrated on letters, asked with options
    ("accuracy", False, False),      # letters' probabilities are another scale than free text's
    ("answer_recall", True, False),
    ("answer_recall", False, True),
    ("em", False, True),
    ("", True, True),                # an older router that does not say: taken to match
    ("", False, True),
])
def test_a_threshold_applies_only_to_the_answer_kind_it_was_calibrated_on(fitted_metric, is_choice, fits):
    from lcrag.pipeline.routing.router import threshold_fits_kind

    assert threshold_fits_kind(fitted_metric, is_choice) is fits


def test_the_choice_metric_is_the_verdicts_multiple_choice_metric():
    from lcrag.pipeline.routing.router import CHOICE_METRIC
    from lcrag.pipeline.statistics.verdict import KINDS

    assert KINDS["multiple_choice"].metric == CHOICE_METRIC


@pytest.mark.parametrize("configured, options, expected", [
    (-1.0, (), 0.885),             # calibrated on free text, asked free text
    (-1.0, ("A", "B"), None),      # ... asked with options: declines only
    (0.3, ("A", "B"), 0.3),        # a configured threshold is the user's choice, for every kind
    (0.0, (), None),               # 0: declines only
])
def test_self_route_uses_the_fitted_threshold_only_for_its_answer_kind(configured, options, expected):
    from types import SimpleNamespace

    from lcrag.pipeline.routing.strategies import OTHER_KIND, self_route_threshold, threshold_skipped

    tools = SimpleNamespace(config=SimpleNamespace(self_route_threshold=configured),
                            router=tiny_router(self_route_threshold=0.885, metric="answer_recall"))
    question = Question("q", "which?", options=options)
    assert self_route_threshold(tools, question) == expected
    assert threshold_skipped(tools, question) is (configured < 0 and bool(options))
    assert OTHER_KIND.startswith("[")


def test_a_router_scored_on_the_other_answer_kind_self_routes_on_declines_only():
    rows, feats = run_rows()
    table = routing_table(rows, feats)  # scored by em: free text
    letters = tiny_router(self_route_threshold=0.95, metric="accuracy")  # would send nearly all to lc
    same_kind = tiny_router(self_route_threshold=0.95, metric="em")
    other = {s.name: s for s in score_router(letters, table)}["self-route"]
    own = {s.name: s for s in score_router(same_kind, table)}["self-route"]
    assert other.shares.get("lc", 0.0) == 0.0 and own.shares["lc"] == 1.0


def tiny_router(**overrides) -> FittedRouter:
    nodes = (Node(FEATURE_NAMES.index("rag_confidence"), 0.5, 1, 2, (3.0, 5.0)), Node(-1, 0.0, -1, -1, (0.0, 5.0)),
             Node(-1, 0.0, -1, -1, (3.0, 0.0)))
    return FittedRouter(classes=("rag", "lc"), nodes=nodes, **overrides)


def test_router_chooses_by_its_splits_and_breaks_ties_to_the_cheaper():
    router = tiny_router()
    low = dict.fromkeys(FEATURE_NAMES, 0.0) | {"rag_confidence": 0.2}
    assert router.choose(low) == "lc" and router.choose(low | {"rag_confidence": 0.8}) == "rag"
    tie = FittedRouter(classes=("rag", "lc"), nodes=(Node(-1, 0.0, -1, -1, (2.0, 2.0)),))
    assert tie.choose(low) == "rag"
    with pytest.raises(RouterError, match="needs features"):
        router.choose({"rag_confidence": 0.2})


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.update(feature_names=d["feature_names"][:-1]), "fitted on other features"),
        (lambda d: d.update(features_version=0), "fitted on other features"),
        (lambda d: d.update(format="other"), "not an lcrag-router/1 file"),
        (lambda d: d["nodes"][0].update(left=99), "points outside the tree"),
    ],
)
def test_a_router_file_that_no_longer_fits_is_refused_with_the_refit_command(tmp_path, edit, message):
    path = save_router(tiny_router(run_id="r7"), tmp_path / "router.json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(RouterError, match=message) as err:
        load_router(path)
    assert "lcrag route fit" in str(err.value) or "refit" in str(err.value)


def test_no_router_file_means_none(tmp_path):
    assert load_router(tmp_path / "router.json") is None


@pytest.mark.parametrize(
    "text, form",
    [("What is Etna?", "what"), ("Who wrote it?", "who"), ("Is tea oxidised?", "yesno"), ("Name the capital.", "other"),
     ("In which year did it end?", "which"), ("How many moons?", "how")],
)
def test_question_form(text, form):
    assert question_form(text) == form


def test_retrieval_features_margin_and_agreement():
    from lcrag.core.types import Hit

    def hit(key, score):
        return Hit("chunk", key, score, key, "u", "d", 0, 1)

    got = retrieval_features([hit("a", 0.9), hit("b", 0.5)], [hit("b", 10.0), hit("c", 5.0)])
    assert got["dense_top"] == 0.9 and got["dense_margin"] == pytest.approx(0.4)
    assert got["bm25_margin"] == pytest.approx(0.5) and got["agreement"] == 0.5
    assert retrieval_features([], [])["agreement"] == 0.0


# ---------------------------------------------------------- end to end (CLI)


@pytest.fixture
def fake_setup(tmp_path):
    from tests.conftest import TOPICS, write_corpus

    corpus = write_corpus(tmp_path / "corpus", TOPICS)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"reader": {"backend": "fake"}, "chunking": {"target_tokens": 64},
                                      "units": {"max_tokens": 128}}))
    index = tmp_path / "index"
    result = runner.invoke(app, ["ingest", str(corpus), "--index", str(index), "--config", str(config)])
    assert result.exit_code == 0, result.output
    return corpus, config, index, str(tmp_path / "ledger.duckdb")


def test_synth_then_route_fit_then_ask_auto_follows_the_router(fake_setup, tmp_path):
    corpus, config, index, ledger = fake_setup
    result = runner.invoke(app, ["eval", "--dataset", "synth:4", "--index", str(index), "--strategies", "rag,longrag,lc,auto",
                                 "--run-id", "syn", "--config", str(config), "--ledger", ledger, "--work", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    written = tmp_path / "w" / "synth" / "syn.jsonl"
    lines = [json.loads(line) for line in written.read_text().splitlines()]
    assert len(lines) == 4 and all(line["synthetic"] and line["evidence"]["text"] for line in lines)
    assert "kept by the round trip" in result.output
    from lcrag.pipeline.ledger import Ledger

    rows = Ledger(ledger).rows("syn")
    assert {r.dataset for r in rows} == {"synthetic"} and all(r.route.startswith("rule:") for r in rows if r.strategy == "auto")

    fitted = runner.invoke(app, ["route", "fit", "--run-id", "syn", "--index", str(index), "--ledger", ledger])
    assert fitted.exit_code == 0, fitted.output
    assert (index / "router.json").is_file() and "held out" in fitted.output
    # every strategy answers all four synthetic questions and longrag reads the fewest tokens here, so the tree
    # cannot beat always-longrag and that constant is installed: auto then reads with longrag alone
    router = load_router(index / "router.json")
    decision = router.scores["decision"]
    assert (decision["installed"], decision["policy"]) == ("constant", "always-longrag") and router.constant == "longrag"
    assert "installing always-longrag" in " ".join(fitted.output.split())

    asked = runner.invoke(app, ["ask", "Which volcano in Sicily is active?", "--index", str(index), "--strategy", "auto",
                                "--config", str(config), "--ledger", ledger, "--json"])
    assert asked.exit_code == 0, asked.output
    assert json.loads(asked.output)[0]["route"] == "router:longrag"

    shown = runner.invoke(app, ["route", "show", "--index", str(index)])
    assert shown.exit_code == 0 and "fitted on run syn" in shown.output

    # a new generation of the index keeps the router (it lives beside the generations)
    (corpus / "new.txt").write_text("Glaciers carve valleys as they move slowly downhill under their own weight.\n")
    assert runner.invoke(app, ["ingest", str(corpus), "--index", str(index), "--config", str(config)]).exit_code == 0
    again = runner.invoke(app, ["ask", "What do glaciers carve?", "--index", str(index), "--strategy", "auto",
                                "--config", str(config), "--ledger", ledger, "--json"])
    assert again.exit_code == 0 and json.loads(again.output)[0]["route"].startswith("router:")

    # a router fitted on other features is refused, naming the refit command
    data = json.loads((index / "router.json").read_text())
    data["features_version"] = 0
    (index / "router.json").write_text(json.dumps(data))
    refused = runner.invoke(app, ["ask", "What do glaciers carve?", "--index", str(index), "--strategy", "auto",
                                  "--config", str(config), "--ledger", ledger])
    assert refused.exit_code != 0 and "lcrag route fit --run-id syn" in refused.output


def test_synth_needs_an_index_and_a_count(tmp_path):
    missing = runner.invoke(app, ["eval", "--dataset", "synth:5"])
    assert missing.exit_code != 0 and "pass --index" in missing.output
    bad = runner.invoke(app, ["eval", "--dataset", "synth:x", "--index", str(tmp_path)])
    assert bad.exit_code != 0 and "synth:N needs N" in bad.output


def test_route_fit_names_what_is_missing(fake_setup):
    _, _, index, ledger = fake_setup
    result = runner.invoke(app, ["route", "fit", "--run-id", "nothing", "--index", str(index), "--ledger", ledger])
    assert result.exit_code != 0 and "has no rows" in result.output
    nowhere = runner.invoke(app, ["route", "fit", "--run-id", "nothing", "--ledger", ledger])
    assert nowhere.exit_code != 0 and "--index INDEX" in nowhere.output
    show = runner.invoke(app, ["route", "show", "--index", str(index)])
    assert show.exit_code != 0 and "no router at" in show.output


def test_report_shows_routing_policies_held_out_per_data_set():
    from lcrag.pipeline.report.model import build_report
    from lcrag.pipeline.report.render import render_html, render_markdown

    rows, feats = run_rows()
    report = build_report(rows, title="t", config={}, data_hashes={}, features=feats)
    (section,) = report.routing
    assert section.dataset == "kv" and section.n == 40 and section.repeats == 5 and section.no_candidate_answered == 1
    assert [p.name for p in section.policies] == ["router", "self-route", "always-rag", "always-lc", "oracle"]
    assert section.decision.best_constant == ("always-lc",) and section.decision.installed == "tree"
    markdown, html = render_markdown(report), render_html(report)
    assert "## Routing policies" in markdown and 'id="routing"' in html
    assert "| always-lc (best constant) |" in markdown and "1 no strategy answered right" in markdown
    line = "Best constant policy: always-lc. Router against always-lc, held out, averaged over 5 cross-validation repeats"
    assert line in markdown and line in html and "installing the router." in markdown
    assert build_report(rows, title="t", config={}, data_hashes={}).routing == ()  # no features, no section


def test_eval_with_a_router_file_routes_auto_on_every_corpus(tmp_path, encoder):
    from lcrag.pipeline.config import config_from_dict
    from lcrag.pipeline.evaluation import DATASETS, EvalRun, run_evaluation
    from lcrag.pipeline.ledger import Ledger
    from tests.test_evaluation import write_hotpot

    router = save_router(tiny_router(run_id="elsewhere", self_route_threshold=0.5), tmp_path / "router.json")
    evalset = DATASETS["hotpotqa"](write_hotpot(tmp_path), limit=2)
    ledger = Ledger(tmp_path / "l.duckdb")
    config = config_from_dict({"chunking": {"target_tokens": 16}})
    run = EvalRun("routed", "hotpotqa", ("auto",), tmp_path / "work", router=router)
    run_evaluation(evalset, run, Session(config, encoder=encoder, reader=FakeReader(), attention=None, ledger=ledger), budget=400)
    rows = ledger.rows("routed")
    assert len(rows) == 2 and all(r.route.startswith("router:rag") for r in rows)
    assert len(ledger.feature_rows("routed")) == 2  # features are recorded for every evaluated question
    missing = EvalRun("none", "hotpotqa", ("auto",), tmp_path / "work", router=tmp_path / "absent.json")
    with pytest.raises(ValueError, match="no router file"):
        run_evaluation(evalset, missing, Session(config, encoder=encoder, reader=FakeReader(), attention=None, ledger=ledger), budget=400)


class BlindReader:
    """The fake reader without logprobs (a server that gives none)."""

    def __init__(self):
        self.inner, self.model = FakeReader(), "blind"

    def count_tokens(self, text):
        return self.inner.count_tokens(text)

    def read(self, prompt):
        from dataclasses import replace

        return replace(self.inner.read(prompt), token_logprobs=())

    def read_many(self, prompts):
        return [self.read(p) for p in prompts]


def test_routing_without_logprobs_says_so_in_the_route(tmp_path, encoder):
    from lcrag.pipeline.config import StrategyConfig
    from lcrag.pipeline.index.search import IndexReader
    from lcrag.pipeline.strategies import Toolkit, get_strategy
    from tests.service_support import build_index

    index = build_index(tmp_path, encoder)
    question = Question("q", "Which volcano in Sicily is active?")
    with IndexReader(index, lambda c: encoder) as corpus:
        tools = Toolkit(corpus, BlindReader(), StrategyConfig(), 400, router=tiny_router(self_route_threshold=0.5))
        (auto,) = get_strategy("auto").run_batch([question], tools)
        (self_route,) = get_strategy("self-route").run_batch([question], tools)
        seeing = Toolkit(corpus, FakeReader(), StrategyConfig(), 400, router=tiny_router(self_route_threshold=0.5))
        (confident,) = get_strategy("auto").run_batch([question], seeing)
    assert auto.route.startswith("router[no confidence]:rag")  # missing confidence is below every split: lc
    assert self_route.route == "rag[no confidence]" and self_route.fell_back is False
    assert confident.route == "router:rag"
    # the same as data: the route's steps and its reason
    assert (auto.steps[:2], auto.route_reason) == (("auto", "rag"), "no confidence")
    assert (self_route.steps, self_route.route_reason) == (("self-route", "rag"), "no confidence")
    assert (confident.steps, confident.route_reason) == (("auto", "rag"), None)


# ------------------------------------------------- earning its place (decision)


def synthetic_table(rule, n: int = 100, tokens=None, candidates=("rag", "lc")):
    """A routing table of ``n`` questions whose dense_top runs evenly over (0, 1);
    ``rule(x)`` gives each candidate's score on a question with dense_top x."""
    from lcrag.pipeline.routing.table import Question as Row
    from lcrag.pipeline.routing.table import RoutingTable

    tokens = tokens or {"rag": 100, "lc": 1000}
    rows = []
    for i in range(n):
        x = (i + 0.5) / n
        values = dict.fromkeys(FEATURE_NAMES, 0.0) | {"dense_top": x}
        rows.append(Row(("run", f"q{i:03d}"), values, {c: float(v) for c, v in rule(x).items()}, dict(tokens), None, False))
    return RoutingTable("synthetic", "em", candidates, tuple(rows), 0)


def leaf_total(nodes) -> float:
    return sum(sum(n.counts) for n in nodes if n.feature < 0)


@pytest.mark.parametrize("rule, leaves, labelled", [
    # nothing right below 0.5, only lc right above: once labelled "rag", the low half split off as rag; now one lc leaf
    (lambda x: {"rag": 0, "lc": 0} if x < 0.5 else {"rag": 0, "lc": 1}, ["lc"], 50),
    # nothing right anywhere: nothing to learn, one leaf for the cheap read, trained on no question
    (lambda x: {"rag": 0, "lc": 0}, ["rag"], 0),
    # rag right below 0.3, nothing right in between, lc right above 0.7: both labels kept, the middle left out
    (lambda x: {"rag": 1, "lc": 0} if x < 0.3 else {"rag": 0, "lc": 0} if x < 0.7 else {"rag": 0, "lc": 1}, ["rag", "lc"], 60),
])
def test_questions_no_candidate_answered_are_left_out_of_training(rule, leaves, labelled):
    from lcrag.pipeline.routing.fit import fit_tree

    table = synthetic_table(rule)
    nodes = fit_tree(table, table.questions)
    router = FittedRouter(classes=table.candidates, nodes=nodes)
    assert [router.choose_leaf(n) for n in nodes if n.feature < 0] == leaves
    assert leaf_total(nodes) == labelled == sum(table.label_counts().values())
    assert ("no question to learn from" in router.rules()[-1]) is (labelled == 0)
    assert table.no_candidate_answered() == 100 - labelled
    fitted = fit_router(table, "run", repeats=1)
    assert fitted.scores["labels"] == table.label_counts() and fitted.scores["no_candidate_answered"] == 100 - labelled


def constant(name: str, scores: list[float], tokens: list[float]):
    from lcrag.pipeline.routing.policies import PolicyResult

    keys = [("r", f"q{i}") for i in range(len(scores))]
    return PolicyResult(name, dict.fromkeys(keys, name), dict(zip(keys, scores)), dict(zip(keys, tokens)))


@pytest.mark.parametrize("policies, best", [
    ([("always-rag", [1, 0, 0, 0], [100] * 4), ("always-lc", [1, 1, 0, 0], [900] * 4)], ("always-lc",)),   # quality first
    ([("always-rag", [1, 1, 0, 0], [100] * 4), ("always-lc", [0, 0, 1, 1], [900] * 4)], ("always-rag",)),  # then tokens
    ([("always-zeta", [1, 0], [5, 5]), ("always-alpha", [0, 1], [5, 5])], ("always-zeta", "always-alpha")),  # a tie
    ([("always-alpha", [0, 1], [5, 5]), ("always-zeta", [1, 0], [5, 5])], ("always-alpha", "always-zeta")),  # not by name
    ([("always-a", [0.5, 0.5], [2, 8]), ("always-b", [1, 0], [5, 5]), ("always-c", [1, 0], [6, 6])],
     ("always-a", "always-b")),  # equal means and mean tokens tie; more tokens do not
])
def test_best_constant_is_highest_quality_then_fewest_tokens_and_ties_stay_ties(policies, best):
    from lcrag.pipeline.routing.decision import best_constants

    assert best_constants([constant(*p) for p in policies]) == best


@pytest.mark.parametrize("candidates, tokens, rule, installed, policy, says", [
    # a feature truly separates: rag right below 0.5, lc right above; every constant gets half
    (("rag", "lc"), {"rag": 100, "lc": 1000}, lambda x: {"rag": x < 0.5, "lc": x >= 0.5},
     "tree", "router", "the router beats always-rag"),
    # lc always right, rag only below 0.5: as good as always-lc at fewer tokens
    (("rag", "lc"), {"rag": 100, "lc": 1000}, lambda x: {"rag": x < 0.5, "lc": 1},
     "tree", "router", "the router is non-inferior to always-lc"),
    # everything always-rag-right: the tree is always-rag with a cheap read to spare at best
    (("rag", "lc"), {"rag": 100, "lc": 1000}, lambda x: {"rag": 1, "lc": 1},
     "constant", "always-rag", "the router does not beat always-rag (difference 0.00 [0.00, 0.00]); installing always-rag"),
    # only lc ever right: the router pays the cheap read on top of lc
    (("rag", "lc"), {"rag": 100, "lc": 1000}, lambda x: {"rag": 0, "lc": 1},
     "constant", "always-lc", "the router does not beat always-lc (difference 0.00 [0.00, 0.00]); installing always-lc"),
    # nothing right: no labels at all, the cheap read
    (("rag", "lc"), {"rag": 100, "lc": 1000}, lambda x: {"rag": 0, "lc": 0},
     "constant", "always-rag", "installing always-rag"),
    # rag and op-rag tied at the top: the cheap read among them is installed
    (("rag", "op-rag", "lc"), {"rag": 100, "op-rag": 100, "lc": 1000}, lambda x: {"rag": 1, "op-rag": 1, "lc": 1},
     "constant", "always-rag", "installing always-rag, the cheap read among the tied best (always-rag, always-op-rag)"),
    # op-rag and lc tied at the top, rag never right: no constant to pick without a name's spelling
    (("rag", "op-rag", "lc"), {"rag": 100, "op-rag": 500, "lc": 500}, lambda x: {"rag": 0, "op-rag": 1, "lc": 1},
     "none", "", "none is the cheap read (rag), so there is no constant to install"),
])
def test_the_router_is_installed_only_when_it_earns_its_place(tmp_path, candidates, tokens, rule, installed, policy, says):
    table = synthetic_table(rule, tokens=tokens, candidates=candidates)
    router = fit_router(table, "run")
    decision = router.scores["decision"]
    assert (decision["installed"], decision["policy"]) == (installed, policy)
    assert says in decision["reason"] and decision["earns_place"] is (installed == "tree")
    assert set(decision) >= {"installed", "policy", "best_constant", "difference", "reason"}
    assert {f"always-{c}" for c in candidates} | {"router", "self-route", "oracle"} == {
        s["name"] for s in router.scores["held_out"]}
    low = dict.fromkeys(FEATURE_NAMES, 0.0) | {"dense_top": 0.2}
    high = low | {"dense_top": 0.8}
    if installed == "constant":  # one leaf choosing the constant, and it survives a round trip
        strategy = policy.removeprefix("always-")
        assert len(router.nodes) == 1 and router.constant == strategy
        assert router.choose(low) == router.choose(high) == strategy
        assert router.rules() == [f"-> {strategy}  (100 questions: {strategy} 100%)"]
    elif installed == "tree" and "beats" in says:
        assert (router.choose(low), router.choose(high)) == ("rag", "lc") and router.constant is None
    again = load_router(save_router(router, tmp_path / "router.json"))
    assert again == router and again.choose(low) == router.choose(low)


@pytest.mark.parametrize("install, installed, policy", [
    ("auto", "tree", "router"),
    ("tree", "tree", "router"),
    ("constant", "constant", "always-lc"),  # run_rows: lc right on 38 of 40, rag on 20
    ("none", "none", ""),
])
def test_install_overrides_the_rule_and_says_so(install, installed, policy):
    rows, feats = run_rows()
    router = fit_router(routing_table(rows, feats), "run1", install=install)
    decision = router.scores["decision"]
    assert (decision["installed"], decision["policy"], decision["requested"]) == (installed, policy, install)
    assert decision["earns_place"] and (install == "auto") is ("as asked" not in decision["reason"])
    assert (router.constant == "lc") is (installed == "constant")


def noisy_table(n: int = 60):
    """Labels only loosely tied to the feature, so the folds change what is learnt."""
    import random

    draw = random.Random(7)
    return synthetic_table(lambda x: {"rag": draw.random() < 1 - x, "lc": draw.random() < 0.7}, n=n)


def test_repeated_cross_validation_is_deterministic_and_averages_the_repeats():
    from lcrag.pipeline.routing.fit import held_out, repeated_router

    table = noisy_table()
    first, again = repeated_router(table, 3), repeated_router(table, 3)
    assert (first.scores, first.tokens, first.choices, first.shares) == (again.scores, again.tokens, again.choices,
                                                                         again.shares)
    assert all(round(v * 3, 9) == round(v * 3) for v in first.scores.values())  # a mean of three 0/1 scores
    assert sum(first.shares.values()) == pytest.approx(1.0)
    assert repeated_router(table, 1).scores == cross_validated(table)["router"].scores  # one repeat: seed 0's folds
    repeats = [cross_validated(table, seed=s)["router"] for s in range(3)]
    key = table.questions[5].key
    assert first.tokens[key] == pytest.approx(sum(r.tokens[key] for r in repeats) / 3)
    assert held_out(table, repeats=3).decision == held_out(table, repeats=3).decision


def test_the_route_command_and_the_library_agree_on_defaults():
    from lcrag.app.cli import route
    from lcrag.pipeline.routing import decision, fit

    assert (route.REPEATS, route.INSTALL_CHOICES, route.AUTO) == (fit.REPEATS, decision.INSTALL_CHOICES, decision.AUTO)


def ledger_of(tmp_path, rule, n: int = 40) -> str:
    """A ledger holding run "r" of ``n`` questions: rag and lc scored by ``rule(i)``."""
    from lcrag.pipeline.ledger import Ledger

    rows, feats = [], []
    for i in range(n):
        qid, scores = f"q{i:02d}", rule(i)
        for strategy, tokens in (("rag", 100), ("lc", 1000)):
            rows.append(make_row(run_id="r", question_id=qid, strategy=strategy, dataset="kv", em=scores[strategy],
                                 recall=scores[strategy], prompt_tokens=tokens, confidence=0.5))
        feats.append(FeatureRow("r", qid, "kv", "idx", features(dense_top=i / n)))
    ledger = Ledger(tmp_path / "ledger.duckdb")
    ledger.record(rows)
    ledger.record_features(feats)
    return str(ledger.path)


@pytest.mark.parametrize("rule, install, says, written", [
    (lambda i: {"rag": float(i < 20), "lc": float(i >= 20)}, "auto", "the router beats always-rag", "tree"),
    (lambda i: {"rag": 1.0, "lc": 1.0}, "auto",
     "the router does not beat always-rag (difference 0.00 [0.00, 0.00]); installing always-rag", "rag"),
    (lambda i: {"rag": float(i < 20), "lc": float(i >= 20)}, "constant",
     "the router beats always-rag (difference +0.", "rag"),
    (lambda i: {"rag": 0.0, "lc": 0.0}, "auto", "no candidate answered right: 40 questions", "rag"),
])
def test_route_fit_prints_the_decision_and_installs_it(tmp_path, rule, install, says, written):
    ledger = ledger_of(tmp_path, rule)
    out_file = tmp_path / "router.json"
    result = runner.invoke(app, ["route", "fit", "--run-id", "r", "--out", str(out_file), "--ledger", ledger,
                                 "--install", install, "--repeats", "2"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert says in text.lower() and "Best constant policy: always-rag" in text and f"saved to {out_file}" in text
    router = load_router(out_file)
    assert router.scores["repeats"] == 2 and "held out (2× repeated 5-fold cross-validation)" in text
    assert (router.constant or "tree") == written


def test_route_fit_that_installs_nothing_leaves_the_index_router_alone(tmp_path):
    ledger = ledger_of(tmp_path, lambda i: {"rag": float(i < 20), "lc": float(i >= 20)})
    index = tmp_path / "index"
    index.mkdir()
    before = save_router(tiny_router(run_id="earlier"), index / "router.json").read_text()
    result = runner.invoke(app, ["route", "fit", "--run-id", "r", "--index", str(index), "--ledger", ledger,
                                 "--install", "none"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "installing nothing as asked (--install none)" in text and "fitted on run earlier" in text
    assert "left as it is" in text and (index / "router.json").read_text() == before
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    nothing = runner.invoke(app, ["route", "fit", "--run-id", "r", "--index", str(fresh), "--ledger", ledger,
                                  "--install", "none"])
    assert nothing.exit_code == 0 and not (fresh / "router.json").exists() and "no router written" in nothing.output
    bad = runner.invoke(app, ["route", "fit", "--run-id", "r", "--index", str(fresh), "--ledger", ledger,
                              "--install", "sometimes"])
    assert bad.exit_code != 0 and "--install must be one of auto, tree, constant, none" in bad.output


@pytest.mark.parametrize("strategy, reads", [("lc", 1), ("rag", 1)])
def test_auto_with_a_constant_router_reads_with_that_strategy_alone(tmp_path, encoder, strategy, reads):
    from lcrag.pipeline.config import StrategyConfig
    from lcrag.pipeline.index.search import IndexReader
    from lcrag.pipeline.routing.fit import constant_tree
    from lcrag.pipeline.strategies import Toolkit, get_strategy
    from tests.service_support import build_index

    index = build_index(tmp_path, encoder)
    router = FittedRouter(classes=("rag", "lc"), nodes=constant_tree(("rag", "lc"), strategy, 10))
    question = Question("q", "Which volcano in Sicily is active?")
    with IndexReader(index, lambda c: encoder) as corpus:
        tools = Toolkit(corpus, FakeReader(), StrategyConfig(), 400, router=router)
        (auto,) = get_strategy("auto").run_batch([question], tools)
        (alone,) = get_strategy(strategy).run_batch([question], tools)
    assert auto.route == f"router:{strategy}" and auto.calls == reads and auto.prompt_tokens == alone.prompt_tokens
    assert auto.steps == ("auto", strategy)
