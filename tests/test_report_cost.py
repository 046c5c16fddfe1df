"""The report's Cost section: prompt and prefill tokens (prompt minus what the server's
prefix cache served), the measured cached share, questions per document, the cold/warm
split of whole-document reads by ``created_at``, the prefill projected to a workload of
Q questions per document, and the Q from which lc costs at most rag per question;
rendered in Markdown and HTML, given in ``report --json``, set by
``--questions-per-document``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lcrag.app.cli.app import app
from lcrag.pipeline.ledger import Ledger
from lcrag.pipeline.report.cost import (
    DocumentReads,
    StrategyCost,
    break_even,
    cached_share,
    check_questions_per_document,
    cost_section,
    document_reads,
    first_reads,
    prefill,
    read_key,
    reads_document,
)
from lcrag.pipeline.report.model import build_report
from lcrag.pipeline.report.render import render_html, render_markdown, verdict_json
from lcrag.pipeline.statistics.verdict import VerdictSettings
from tests.helpers import make_row


def row(prompt=1000, cached=None, **extra):
    values = dict(prompt_tokens=prompt, cached_tokens=cached, em=1.0, f1=1.0, recall=1.0, answer="a", dataset="nq")
    values.update(extra)
    return make_row(**values)


# ------------------------------------------------------------ per row / per strategy


@pytest.mark.parametrize("prompt, cached, expected", [
    (100, None, 100),  # the server did not say: every prompt token counts
    (100, 0, 100),
    (100, 30, 70),
    (100, 100, 0),
    (100, 150, 0),  # never negative
])
def test_prefill_is_prompt_minus_cached(prompt, cached, expected):
    assert prefill(row(prompt, cached)) == expected


@pytest.mark.parametrize("rows, expected", [
    ([(100, None)], None),  # no row reports cached tokens
    ([(100, None), (300, None)], None),
    ([(100, 50), (100, None)], 0.5),  # only the rows that report it
    ([(100, 50), (300, 0)], 0.125),  # token-weighted: 50 / 400
    ([(7000, 6850), (7000, 100)], 6950 / 14000),
    ([(0, 0)], 0.0),
])
def test_cached_share_is_cached_over_prompt_on_the_rows_that_report_it(rows, expected):
    share = cached_share([row(p, c) for p, c in rows])
    assert share == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize("steps, whole", [
    (("lc",), True), (("coa",), True), (("longrag",), True), (("longrag@k4",), True), (("auto", "lc"), True),
    (("self-route", "rag", "lc"), True), (("auto", "self-route", "rag", "lc"), True), (("auto", "rag", "longrag"), True),
    (("rag",), False), (("op-rag",), False), (("reorder",), False), (("attention-sort",), False), (("closed-book",), False),
    (("self-route", "rag"), False), (("auto", "self-route", "rag"), False), (("auto", "lc", "rag"), False),
    ((), False), (None, False),  # an error row passed through none; a row without steps tells nothing
])
def test_a_read_of_the_whole_document_is_told_by_the_last_of_its_route_steps(steps, whole):
    assert reads_document(steps) is whole


def test_strategy_means_over_its_rows():
    from lcrag.pipeline.report.cost import strategy_cost

    rows = [row(1000, 900, reading_ms=2000.0, calls=1), row(3000, None, reading_ms=4000.0, calls=3)]
    s = strategy_cost("rag", rows)
    assert (s.n, s.prompt_tokens, s.prefill_tokens, s.reading_s, s.calls) == (2, 2000.0, (100 + 3000) / 2, 3.0, 2.0)
    assert s.cached_share == pytest.approx(0.9) and s.document_share == 0.0 and s.document is None


# ------------------------------------------------------------ questions per document


@pytest.mark.parametrize("layout, observed", [
    ({"d1": 3, "d2": 3}, 3.0),
    ({"d1": 4, "d2": 1}, 2.5),
    ({"d1": 1, "d2": 1, "d3": 1}, 1.0),
    ({"corpus": 7}, 7.0),  # one index for the whole data set: every question on it
])
def test_questions_per_document_is_questions_over_distinct_index_ids(layout, observed):
    rows = [row(question_id=f"{doc}-{i}", index_id=doc, strategy=s, route=s)
            for doc, n in layout.items() for i in range(n) for s in ("rag", "lc")]
    section = cost_section("nq", rows)
    assert section.observed_q == observed and section.q == observed and not section.q_given
    assert section.n_questions == sum(layout.values()) and section.n_documents == len(layout)


def test_questions_per_document_counts_each_run_apart():
    rows = [row(run_id=run, question_id=f"q{i}", index_id=f"d{i % 2}") for run in ("a", "b") for i in range(6)]
    section = cost_section("nq", rows)
    assert (section.n_questions, section.n_documents, section.observed_q) == (12, 4, 3.0)


def test_error_rows_are_left_out_of_the_cost():
    rows = [row(question_id="q1"), row(question_id="q2", prompt=0, error="timeout")]
    section = cost_section("nq", rows)
    assert section.strategies[0].n == 1 and section.n_questions == 1
    assert cost_section("nq", [row(error="timeout")]) is None


# ------------------------------------------------------------ cold and warm reads


def test_the_first_read_per_strategy_run_and_document_in_created_at_order_is_cold():
    rows = [
        row(question_id="q1", strategy="lc", route="lc", index_id="d1", created_at=30.0, row_id="lc-q1"),
        row(question_id="q2", strategy="lc", route="lc", index_id="d1", created_at=10.0, row_id="lc-q2"),  # first on d1
        row(question_id="q3", strategy="lc", route="lc", index_id="d1", created_at=20.0, row_id="lc-q3"),
        row(question_id="q4", strategy="lc", route="lc", index_id="d2", created_at=40.0, row_id="lc-q4"),  # first on d2
        row(question_id="q2", strategy="lc", route="lc", index_id="d1", created_at=5.0, row_id="lc-err", error="boom"),
        row(question_id="q1", strategy="lc", route="lc", index_id="d1", run_id="run2", created_at=50.0, row_id="r2"),
        row(question_id="q1", strategy="rag", route="rag", index_id="d1", created_at=1.0, row_id="rag-q1"),  # not a document read
        row(question_id="q1", strategy="auto", route="rule:self-route:rag->lc", index_id="d1", created_at=2.0,
            row_id="auto-q1"),  # its own strategy: a first read of its own
        row(question_id="q3", strategy="auto", route="rule:lc", index_id="d1", created_at=3.0, row_id="auto-q3"),
    ]
    by_id = {r.row_id: read_key(r) for r in rows}
    assert first_reads(rows) == {by_id["lc-q2"], by_id["lc-q4"], by_id["r2"], by_id["auto-q1"]}


@pytest.mark.parametrize("reads, cold, warm, n_cold, n_warm", [
    # (prompt, cached, first?) per read
    ([(7000, 100, True), (7000, 6850, False), (7000, 6850, False)], 6900.0, 150.0, 1, 2),
    ([(7000, 100, True), (5000, 100, True), (7000, 6900, False), (5000, 4800, False)], 5900.0, 150.0, 2, 2),
    ([(7000, 0, True)], 7000.0, None, 1, 0),  # no document read twice: warm unmeasured
    ([(7000, None, True), (7000, None, False)], 7000.0, 7000.0, 1, 1),  # no cached counts: nothing is shared
    ([(7000, 6850, False), (7000, 6850, False)], 7000.0, 150.0, 0, 2),  # first reads outside the rows: cold = prompt
])
def test_cold_and_warm_prefill_are_the_means_of_first_and_later_reads(reads, cold, warm, n_cold, n_warm):
    rows = [row(p, c, strategy="lc", route="lc", question_id=f"q{i}") for i, (p, c, _) in enumerate(reads)]
    d = document_reads(rows, frozenset(read_key(r) for r, (_, _, first) in zip(rows, reads) if first))
    assert (d.cold_prefill, d.warm_prefill, d.n_cold, d.n_warm) == (cold, warm, n_cold, n_warm)
    assert d.doc_prefix == (None if warm is None else max(0.0, cold - warm))


# ------------------------------------------------------------ projection


def lc_cost(cold, warm, *, share=1.0, other=0.0, cold_cached=0.0, reported=True, document_tokens=6000):
    d = DocumentReads(1, 0 if warm is None else 3, cold, warm, cold_cached, reported)
    return StrategyCost("lc", 4, cold, cold, None, 1.0, 1.0, share, other, d, document_tokens)


def rag_cost(prefill_tokens):
    return StrategyCost("rag", 4, prefill_tokens, prefill_tokens, None, 1.0, 1.0, 0.0, prefill_tokens, None)


@pytest.mark.parametrize("strategy, q, expected", [
    (lc_cost(6900, 150), 1, 6900.0),  # the first question pays the document cold
    (lc_cost(6900, 150), 2, 150 + 6750 / 2),
    (lc_cost(6900, 150), 10, 150 + 675.0),
    (lc_cost(6900, 150), 2.5, 150 + 6750 / 2.5),
    (rag_cost(1000), 1, 1000.0),  # retrieval: flat in Q
    (rag_cost(1000), 50, 1000.0),
    (lc_cost(7000, 200, share=0.5, other=1000), 1, 500 + 0.5 * 7000),  # routed: half its questions read lc
    (lc_cost(7000, 200, share=0.5, other=1000), 2, 500 + 100 + 0.75 / 2 * 6800),
    (lc_cost(6900, None), 1, 6900.0),
    (lc_cost(6900, None), 2, None),  # a warm read was never measured
])
def test_prefill_per_question_is_projected_to_q_questions_per_document(strategy, q, expected):
    got = strategy.projected(q)
    assert got == (None if expected is None else pytest.approx(expected))


def test_the_projection_at_the_observed_q_is_the_measured_mean():
    rows = []
    for d in range(3):
        for i in range(4):
            rows.append(row(7000, 100 if i == 0 else 6850, question_id=f"d{d}q{i}", strategy="lc", route="lc",
                            index_id=f"d{d}", created_at=float(100 * d + i + 1)))
    section = cost_section("nq", rows)
    (lc,) = section.strategies
    assert section.observed_q == 4.0 and lc.projected(4) == pytest.approx(lc.prefill_tokens)
    again = cost_section("nq", rows, questions_per_document=20)
    assert again.q == 20 and again.q_given and again.strategies[0].projected(again.q) == pytest.approx(150 + 6750 / 20)


@pytest.mark.parametrize("q, ok", [(None, True), (1, True), (2.5, True), (0.5, False), (0, False), (-3, False),
                                   (float("nan"), False), (float("inf"), False), (True, False), ("4", False)])
def test_questions_per_document_must_be_at_least_one(q, ok):
    if ok:
        assert check_questions_per_document(q) == (None if q is None else float(q))
    else:
        with pytest.raises(ValueError, match="at least 1"):
            check_questions_per_document(q)


# ------------------------------------------------------------ break-even


@pytest.mark.parametrize("cold, warm, rag, expected", [
    (6900, 150, 1000, 8),  # 150 + 6750 / Q <= 1000 from Q = 7.94
    (6950, 150, 1000, 8),  # exactly equal at Q = 8 counts ("at most")
    (6900, 150, 900, 9),
    (900, 100, 1000, 1),  # cheaper even cold
    (1000, 100, 1000, 1),
    (5000, 1200, 1000, None),  # later questions alone cost more than rag: never
    (5000, 1000, 1000, None),  # equal only in the limit: never at a finite Q
    (100_000, 999, 1000, 99_001),  # far, but found
])
def test_break_even_is_the_smallest_q_with_lc_at_most_rag(cold, warm, rag, expected):
    result = break_even(lc_cost(cold, warm), rag_cost(rag))
    assert result.questions_per_document == expected
    if expected is not None:
        lc = lc_cost(cold, warm)
        assert lc.projected(expected) <= rag + 1e-6
        assert expected == 1 or lc.projected(expected - 1) > rag


def test_the_break_even_sentence_gives_the_arithmetic():
    sentence = break_even(lc_cost(6900, 150), rag_cost(1000)).sentence
    assert sentence == ("lc pays 6,900 prefill tokens on the first question of a 6,000-token document (mean) and 150 on "
                        "each later one; rag pays 1,000 per question: lc's expected prefill per question, "
                        "150 + 6,750 / Q, is at most rag's from Q = 8 questions per document.")
    never = break_even(lc_cost(5000, 1200), rag_cost(1000)).sentence
    assert "never cheaper" in never and "5,000" in never and "1,200" in never


@pytest.mark.parametrize("lc, rag, words", [
    (None, rag_cost(1000), "lc is not compared"),
    (lc_cost(6900, 150), None, "rag is not compared"),
    (None, None, "lc and rag are not compared"),
    (lc_cost(6900, None), rag_cost(1000), "no document had a second lc question"),
    (lc_cost(6900, 6900, reported=False), rag_cost(1000), "reported no cached tokens"),
])
def test_no_break_even_when_a_strategy_is_missing_or_the_warm_cost_unknown(lc, rag, words):
    result = break_even(lc, rag)
    assert result.questions_per_document is None and words in result.sentence


def test_a_cold_read_that_was_already_cached_is_flagged():
    sentence = break_even(lc_cost(3000, 150, cold_cached=0.6), rag_cost(1000)).sentence
    assert "already 60% cached" in sentence and "understated" in sentence
    assert "already" not in break_even(lc_cost(3000, 150, cold_cached=0.01), rag_cost(1000)).sentence


# ------------------------------------------------------------ the report


def workload(dataset="nq", docs=3, per_doc=4):
    """rag and lc answer alike; lc's first question on each document is cold."""
    rows, t = [], 1000.0
    for d in range(docs):
        for i in range(per_doc):
            q, t = f"d{d}q{i}", t + 2
            rows.append(row(1000, 100, question_id=q, strategy="rag", route="rag", dataset=dataset,
                            index_id=f"{dataset}-doc{d}", created_at=t, reading_ms=1500.0))
            rows.append(row(7000, 100 if i == 0 else 6850, question_id=q, strategy="lc", route="lc", dataset=dataset,
                            index_id=f"{dataset}-doc{d}", created_at=t + 1, reading_ms=30000.0 if i == 0 else 2000.0,
                            context_tokens=6000))
    return rows


def test_build_report_carries_a_cost_section_per_data_set_on_the_compared_questions():
    rows = workload("nq") + workload("hotpot", docs=2, per_doc=2)
    rows.append(row(9000, 0, question_id="only-lc", strategy="lc", route="lc", index_id="nq-doc0", created_at=1.0))
    report = build_report(rows, title="t", config={}, data_hashes={}, generated_at="now")
    sections = {c.dataset: c for c in report.cost}
    assert set(sections) == {"nq", "hotpot"}
    nq = sections["nq"]
    assert nq.n_questions == 12  # the question only lc answered is left out of the means
    lc = nq.strategy("lc")
    # ... but its earlier read of doc0 made lc's first compared question there warm
    assert (lc.document.n_cold, lc.document.n_warm) == (2, 10)
    assert nq.strategy("rag").prefill_tokens == 900.0 and nq.break_even.questions_per_document is not None
    given = build_report(rows, title="t", config={}, data_hashes={}, generated_at="now", questions_per_document=10)
    assert all(c.q == 10 and c.q_given for c in given.cost)


def test_the_cost_section_renders_in_markdown_with_the_axis_and_the_model():
    report = build_report(workload(), title="t", config={}, data_hashes={}, generated_at="now")
    md = render_markdown(report)
    cost = md[md.index("## Cost"):md.index("## Router choices")]
    assert ("| Strategy | n | Prompt tokens | Prefill tokens | Cached share | Reading (s) | Calls "
            "| Projected prefill / question at Q = 4 |") in cost
    assert "| rag | 12 | 1,000 | 900 | 10.0% | 1.50 | 1.00 | 900 |" in cost
    assert "12 question(s) on 3 document(s): Q observed = 4 per document" in cost
    assert "ranks strategies by prompt tokens (--cost tokens, the default)" in cost
    assert "same count on any machine and in any cache state" in cost and "warm + (cold - warm) / Q" in cost
    assert "lc pays 6,900 prefill tokens on the first question of a 6,000-token document (mean) and 150 on each" in cost
    prefill_report = build_report(workload(), title="t", config={}, data_hashes={}, generated_at="now",
                                  settings=VerdictSettings(cost="prefill"))
    assert "ranks strategies by prefill tokens (prompt tokens not served from the prefix cache) (--cost prefill)" in \
        render_markdown(prefill_report)


def test_the_cost_section_renders_in_html_escaped():
    report = build_report(workload("<b>nq&co</b>"), title="t", config={}, data_hashes={}, generated_at="now")
    html = render_html(report)
    cost = html[html.index('<section id="cost">'):]
    cost = cost[:cost.index("</section>")]
    assert '<a href="#cost">Cost</a>' in html
    assert "<h3>&lt;b&gt;nq&amp;co&lt;/b&gt;</h3>" in cost and "<b>nq" not in cost
    assert "<th>Projected prefill / question at Q = 4</th>" in cost and "<td>6,900</td>" not in cost
    assert "lc&#x27;s expected prefill per question" in cost


def test_report_json_gives_the_cost_per_data_set():
    report = build_report(workload(), title="t", config={}, data_hashes={}, generated_at="now")
    (entry,) = verdict_json(report)
    assert entry["status"] and entry["verdicts"]  # the verdict's keys stay
    assert entry["cost_axis"] == "tokens" and entry["cost"]["axis"] == "tokens"
    cost = entry["cost"]
    assert (cost["questions"], cost["documents"], cost["questions_per_document_observed"], cost["projected_at"]) == \
        (12, 3, 4.0, 4.0)
    lc = next(s for s in cost["strategies"] if s["strategy"] == "lc")
    assert (lc["cold_prefill"], lc["warm_prefill"], lc["document_share"]) == (6900.0, 150.0, 1.0)
    assert cost["break_even"]["questions_per_document"] == 9  # 150 + 6750 / Q <= 900
    json.dumps(entry)  # plain data


def test_lcrag_report_takes_questions_per_document(tmp_path):
    ledger = Ledger(tmp_path / "l.duckdb")
    ledger.record(workload())
    result = CliRunner().invoke(app, ["report", "--ledger", str(ledger.path), "--json", "--questions-per-document", "20"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.output)["verdicts"]
    assert entry["cost"]["projected_at"] == 20.0 and entry["cost"]["questions_per_document_observed"] == 4.0
    lc = next(s for s in entry["cost"]["strategies"] if s["strategy"] == "lc")
    assert lc["projected_prefill"] == pytest.approx(150 + 6750 / 20)
    written = CliRunner().invoke(app, ["report", "--ledger", str(ledger.path), "--out", str(tmp_path / "rep")])
    assert written.exit_code == 0, written.output
    assert "## Cost" in (tmp_path / "rep" / "report.md").read_text()
    for bad in ("0.5", "0", "-2", "nan"):
        refused = CliRunner().invoke(app, ["report", "--ledger", str(ledger.path), "--json",
                                           "--questions-per-document", bad])
        assert refused.exit_code == 2 and "--questions-per-document must be at least 1" in refused.output, bad
