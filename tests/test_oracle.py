"""The oracle control and the diagnosis it makes possible: every loader that knows a
question's gold evidence hands it on, the oracle's prompt holds that evidence and
nothing else of the corpus, questions without evidence are never asked of it (and a
resumed run does not wait for them), each branch of the diagnosis rule from hand-built
rows, and the report and ``report --json`` carry the diagnosis."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace

import pytest

from lcrag.core.errors import LcragError
from lcrag.core.types import Document
from lcrag.pipeline.config import StrategyConfig
from lcrag.pipeline.evaluation import DATASETS
from lcrag.pipeline.evaluation.diagnosis import (
    BIGGER_READER,
    CANNOT_TELL,
    INCOMPLETE,
    LONG_CONTEXT_PAYS,
    RAG_IS_ENOUGH,
    RETRIEVAL_BOTTLENECK,
    diagnose,
    wilson_upper,
)
from lcrag.pipeline.evaluation.items import EvalDataError
from lcrag.pipeline.recording import RunLabels, answer_and_record
from lcrag.pipeline.report.model import build_report
from lcrag.pipeline.report.render import render_html, render_markdown, verdict_json
from lcrag.pipeline.session import Session
from lcrag.pipeline.statistics.paired_tests import wilson_lower
from lcrag.pipeline.strategies import ALL, CONTROL_NAMES, REGISTRY, Evidence, Question, Toolkit, asks, get_strategy, resolve_names
from lcrag.readers.base import Passage
from lcrag.readers.fake import FakeReader
from tests.helpers import make_row

# ------------------------------------------------------------------ loaders

HOTPOT = {
    "_id": "h1",
    "question": "Which river flows through the capital of Ruritania?",
    "answer": "Strelsau River",
    # the third fact names a sentence the paragraph lacks, the fourth a paragraph the context lacks
    "supporting_facts": [["Ruritania", 1], ["Strelsau", 0], ["Strelsau", 7], ["Nowhere", 0]],
    "context": [
        ["Alpha", ["Alpha is a letter."]],
        ["Ruritania", ["Ruritania is a kingdom.", " Its capital is Strelsau."]],
        ["Strelsau", ["The Strelsau River flows through the capital of Ruritania."]],
    ],
}


def hotpot_set(tmp_path, name="hotpotqa", **options):
    path = tmp_path / "hotpot.json"
    path.write_text(json.dumps([HOTPOT, {**HOTPOT, "_id": "h2", "supporting_facts": []}]))
    return DATASETS[name](path, **options)


def squad_set(tmp_path):
    payload = {"data": [{"title": "Ruritania", "paragraphs": [
        {"context": "Ruritania is a kingdom in Europe.", "qas": [
            {"id": "s1", "question": "Where is Ruritania?", "answers": [{"text": "Europe", "answer_start": 26}]}]},
        {"context": "Strelsau is the capital of Ruritania.", "qas": [
            {"id": "s2", "question": "What is the capital?", "answers": [{"text": "Strelsau", "answer_start": 0}]},
            {"id": "s3", "question": "What is the currency?", "answers": [], "is_impossible": True}]},
    ]}]}
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(payload))
    return DATASETS["squad2"](path)


def niah_set(tmp_path):
    (tmp_path / "essays").mkdir()
    (tmp_path / "essays" / "a.txt").write_text("Some filler words here. " * 60)
    return DATASETS["niah"](tmp_path / "essays", limit=2)


BAMBOO_EVIDENCE = "  Mark Thomas: the Minister has been praising the builders.   "


def longdoc_set(tmp_path):
    document = "John: Welcome.\n\nMark Thomas: the Minister has been praising the builders.\n\nJohn: Thanks."
    lines = [
        {"id": "b1", "content": document, "question": "What does Mark think?", "evidence": BAMBOO_EVIDENCE,
         "options": ["A. he agrees", "B. he disagrees"], "answer": "B"},
        {"id": "b2", "content": document + " More.", "question": "Who welcomes?", "answer": "John"},  # no evidence
        {"id": "b3", "content": document + " Again.", "question": "Abridged?", "answer": "x",
         "evidence": ["praising ... builders"]},  # not verbatim: the text alone, no offsets
    ]
    path = tmp_path / "bamboo.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return DATASETS["longdoc"](path)


def mapped_longdoc_set(tmp_path):
    path = tmp_path / "mapped.jsonl"
    path.write_text(json.dumps({"text": "Alpha. The key is blue. Omega.", "q": "What is the key?", "a": "blue",
                                "ev": "The key is blue."}) + "\n")
    return DATASETS["longdoc"](path, fields="document=text,question=q,answers=a,evidence=ev")


def qa_jsonl_set(tmp_path):
    lines = [
        {"id": "j1", "question": "Who founded it?", "answers": ["Ada"], "evidence": ["Ada founded the firm.", "history.md"]},
        {"id": "j2", "question": "When?", "answers": ["1901"],  # what synth writes: one object
         "evidence": {"doc_id": "history.md", "chunk_id": "c1", "start": 4, "end": 20, "text": "It was in 1901.",
                      "title": "History"}},
        {"id": "j3", "question": "Where?", "answers": ["Paris"], "evidence": [{"doc_id": "places.md"}]},  # read whole
        {"id": "j4", "question": "Why?", "answers": ["because"]},
    ]
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return DATASETS["qa-jsonl"](path)


def synth_set(tmp_path):
    from lcrag.pipeline.evaluation.synth import SynthQuestion, SynthResult, to_qa_jsonl

    passage = Passage("doc.md#c3", "doc.md", 10, 34, "The lighthouse is green.", "Doc")
    path = to_qa_jsonl(SynthResult((SynthQuestion("synth-0001", "What colour is the lighthouse?", "green", passage),), 1, 0),
                       tmp_path / "synth.jsonl")
    return DATASETS["qa-jsonl"](path)


def kv_set(tmp_path):
    record = {"key": "k2", "value": "v2", "ordered_kv_records": [["k1", "v1"], ["k2", "v2"], ["k3", "v3"]]}
    path = tmp_path / "kv.jsonl.gz"
    path.write_bytes(gzip.compress((json.dumps(record) + "\n").encode()))
    return DATASETS["kv"](path)


def offsets_hold(evalset, item, evidence) -> bool:
    """Offsets, where given, slice the evidence out of its document in the item's corpus."""
    if evidence.start is None:
        return True
    docs = {d.doc_id: d for spec in evalset.corpora.values() for d in spec.documents}
    if evidence.doc_id not in docs:  # qa-jsonl: the documents are in the user's index
        return True
    return docs[evidence.doc_id].text[evidence.start:evidence.end] == evidence.text


@pytest.mark.parametrize("build, expected", [
    (hotpot_set, {"h1": [("Ruritania", "Its capital is Strelsau."),
                         ("Strelsau", "The Strelsau River flows through the capital of Ruritania.")], "h2": []}),
    (lambda tmp: hotpot_set(tmp, positions=(0,)),
     {"h1@pos0": [("Ruritania", "Its capital is Strelsau."),
                  ("Strelsau", "The Strelsau River flows through the capital of Ruritania.")], "h2@pos0": []}),
    (lambda tmp: hotpot_set(tmp, "hotpotqa-pooled"),
     {"h1": [("Ruritania", "Its capital is Strelsau."),
             ("Strelsau", "The Strelsau River flows through the capital of Ruritania.")], "h2": []}),
    (squad_set, {"s1": [("Ruritania", "Ruritania is a kingdom in Europe.")],
                 "s2": [("Ruritania", "Strelsau is the capital of Ruritania.")],
                 "s3": [("Ruritania", "Strelsau is the capital of Ruritania.")]}),
    (niah_set, {"niah0@d0@L500": [("niah0@d0@L500", "The best thing to do in San Francisco is eat a sandwich and sit "
                                                     "in Dolores Park on a sunny day.")],
                "niah0@d25@L500": [("niah0@d25@L500", "The best thing to do in San Francisco is eat a sandwich and "
                                                       "sit in Dolores Park on a sunny day.")]}),
    (longdoc_set, {"b1": [(None, BAMBOO_EVIDENCE.strip())], "b2": [], "b3": [(None, "praising ... builders")]}),
    (mapped_longdoc_set, {None: [(None, "The key is blue.")]}),
    (qa_jsonl_set, {"j1": [("", "Ada founded the firm."), ("", "history.md")], "j2": [("history.md", "It was in 1901.")],
                    "j3": [("places.md", "")], "j4": []}),
    (synth_set, {"synth-0001": [("doc.md", "The lighthouse is green.")]}),
    (kv_set, {"kv0@pos1": [("kv0", '"k2": "v2"')]}),
], ids=["hotpotqa", "hotpotqa-positions", "hotpotqa-pooled", "squad2", "niah", "bamboo", "mapped", "qa-jsonl", "synth", "kv"])
def test_each_loader_hands_on_the_gold_evidence(tmp_path, build, expected):
    evalset = build(tmp_path)
    items = {i.question.qid: i for i in evalset.items}
    if None in expected:  # one question with a generated id
        expected = {next(iter(items)): expected[None]}
    assert set(items) == set(expected)
    for qid, pieces in expected.items():
        evidence = items[qid].question.evidence
        docs = [e.doc_id for e in evidence]
        assert [e.text for e in evidence] == [text for _, text in pieces], qid
        # a None doc id: the item's own (hashed) document
        assert docs == [doc if doc is not None else items[qid].question.doc_scope[0] for doc, _ in pieces], qid
        assert all(offsets_hold(evalset, items[qid], e) for e in evidence), qid


def test_verbatim_evidence_gets_offsets_and_abridged_evidence_none(tmp_path):
    items = {i.question.qid: i for i in longdoc_set(tmp_path).items}
    assert items["b1"].question.evidence[0].start is not None
    assert items["b3"].question.evidence[0].start is None
    synth = synth_set(tmp_path).items[0].question.evidence[0]
    assert (synth.start, synth.end, synth.title) == (10, 34, "Doc")


@pytest.mark.parametrize("evidence", [
    5, [5], {"start": 3}, {"doc_id": 7}, [{"text": "x", "start": -1}], {"doc_id": "", "text": " "},
])
def test_qa_jsonl_names_the_line_of_unusable_evidence(tmp_path, evidence):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"question": "Q?", "answers": ["a"]}) + "\n"
                    + json.dumps({"question": "Q2?", "answers": ["b"], "evidence": evidence}) + "\n")
    with pytest.raises(EvalDataError, match=r"qa.jsonl:2: 'evidence' must be"):
        DATASETS["qa-jsonl"](path)


# ------------------------------------------------------------------ the strategy

DOCS = {
    "cats.md": Document("cats.md", "Cats purr when content. They sleep most of the day.", title="Cats"),
    "volcanoes.txt": Document("volcanoes.txt", "Mount Etna in Sicily is very active. Lava flows bury towns.", title="Volcanoes"),
    "bread.md": Document("bread.md", "Bread dough needs flour, water, salt and yeast.", title="Bread"),
}


class EvidenceOnlyCorpus:
    """Documents by id; any search fails the test (the oracle must not retrieve)."""

    corpus_tokens = 10_000

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def documents(self, doc_ids):
        self.asked.append(list(doc_ids))
        return {d: DOCS[d] for d in doc_ids if d in DOCS}

    def search(self, *args, **kwargs):
        raise AssertionError("the oracle searched the corpus")

    def doc_ids(self):
        raise AssertionError("the oracle listed the corpus")

    def doc_position(self, doc_id):
        return list(DOCS).index(doc_id)

    def units(self, unit_ids):
        raise AssertionError("the oracle read units")


def oracle_tools(budget=2000):
    return Toolkit(EvidenceOnlyCorpus(), FakeReader(), StrategyConfig(), budget)


ETNA = Evidence("volcanoes.txt", "Mount Etna in Sicily is very active.", 0, 36, "Volcanoes")


@pytest.mark.parametrize("evidence, texts", [
    ((ETNA,), ["Mount Etna in Sicily is very active."]),
    ((ETNA, Evidence("cats.md")), ["Mount Etna in Sicily is very active.", DOCS["cats.md"].text]),
    ((Evidence(text="bread.md"),), [DOCS["bread.md"].text]),  # a bare string naming a document: read whole
    ((Evidence(text="Etna erupted in 2021."),), ["Etna erupted in 2021."]),  # a bare string naming none: the passage
    ((ETNA, ETNA), ["Mount Etna in Sicily is very active."]),  # read once
])
def test_the_oracle_reads_the_evidence_and_nothing_else(evidence, texts):
    tools = oracle_tools()
    question = Question("q", "Which volcano in Sicily is very active?", doc_scope=tuple(DOCS), evidence=evidence)
    outcome = get_strategy("oracle").run_batch([question], tools)[0]
    (prompt,) = tools.reader.calls
    assert [p.text for p in prompt.passages] == texts
    assert outcome.route == "oracle" and outcome.calls == 1 and not outcome.context.cut
    corpus_text = "".join(d.text for d in DOCS.values())
    assert all(p.text in corpus_text or p.text in {e.text for e in evidence} for p in prompt.passages)


def test_the_oracle_row_names_the_evidence_it_read(tmp_path):
    tools = oracle_tools()
    question = Question("q", "Which volcano is active?", evidence=(ETNA, Evidence("cats.md")))
    rows = []
    answer_and_record([question], ["oracle"], tools, None, RunLabels("r", "idx", "cfg", "fake"),
                      on_recorded=lambda name, recorded: rows.extend(recorded))
    (row,) = rows
    assert (row.strategy, row.route) == ("oracle", "oracle")
    assert row.used_ids == ("volcanoes.txt@0", "cats.md") and row.retrieved_ids == row.used_ids


def test_evidence_over_the_budget_is_cut_like_lc():
    tools = oracle_tools(budget=12)
    question = Question("q", "Which volcano?", evidence=(Evidence("cats.md"), Evidence("volcanoes.txt"), Evidence("bread.md")))
    outcome = get_strategy("oracle").run_batch([question], tools)[0]
    assert outcome.context.cut and outcome.context.tokens <= 12


@pytest.mark.parametrize("evidence, message", [
    ((), "carries no gold evidence"),
    ((Evidence("missing.md"),), "names document 'missing.md', which is not in the index"),
])
def test_the_oracle_refuses_what_it_cannot_read(evidence, message):
    with pytest.raises(LcragError, match=message):
        get_strategy("oracle").run_batch([Question("q", "Why?", evidence=evidence)], oracle_tools())


def test_the_oracle_is_a_control_asked_for_by_name():
    assert "oracle" in REGISTRY and "oracle" not in ALL and CONTROL_NAMES == ("closed-book", "oracle")
    assert resolve_names("all,closed-book,oracle") == [*ALL, "closed-book", "oracle"]
    bare, marked = Question("a", "x?"), Question("b", "y?", evidence=(ETNA,))
    assert [asks(n, q) for n in ("oracle", "rag", "closed-book") for q in (bare, marked)] == [False, True, True, True, True, True]


# ------------------------------------------------------------------ skipping in a run


def test_questions_without_evidence_are_not_asked_and_a_rerun_does_not_wait_for_them(tmp_path, encoder):
    from lcrag.pipeline.config import config_from_dict
    from lcrag.pipeline.evaluation import EvalRun, run_evaluation
    from lcrag.pipeline.evaluation.runner import not_asked, pending_pairs
    from lcrag.pipeline.ledger import Ledger

    evalset = hotpot_set(tmp_path)  # h2 has no supporting facts
    ledger = Ledger(tmp_path / "eval.duckdb")
    run = EvalRun("r", "hotpotqa", ("rag", "oracle"), tmp_path / "work")
    assert pending_pairs(evalset.items, run.strategies, set()) == 3 and not_asked(evalset.items, run.strategies) == {"oracle": 1}
    config = config_from_dict({"chunking": {"target_tokens": 16}})
    assert run_evaluation(evalset, run, Session(config, encoder=encoder, reader=FakeReader(), attention=None, ledger=ledger), budget=400) == 3
    rows = ledger.rows("r")
    assert sorted((r.question_id, r.strategy) for r in rows) == [("h1", "oracle"), ("h1", "rag"), ("h2", "rag")]
    oracle = next(r for r in rows if r.strategy == "oracle")
    assert oracle.error is None and oracle.f1 is not None and oracle.used_ids == ("Ruritania@24", "Strelsau@0")
    assert pending_pairs(evalset.items, run.strategies, ledger.done_keys("r")) == 0
    assert run_evaluation(evalset, run, Session(config, encoder=encoder, reader=FakeReader(), attention=None, ledger=ledger), budget=400) == 0


def test_cli_eval_says_how_many_questions_the_oracle_was_not_asked(tmp_path):
    from typer.testing import CliRunner

    from lcrag.app.cli.app import app

    path = tmp_path / "hotpot.json"
    path.write_text(json.dumps([HOTPOT, {**HOTPOT, "_id": "h2", "supporting_facts": []}]))
    config = tmp_path / "config.yaml"
    config.write_text("reader:\n  backend: fake\n")
    result = CliRunner().invoke(app, ["eval", "--dataset", f"hotpotqa:{path}", "--strategies", "rag,oracle",
                                      "--run-id", "cli", "--config", str(config), "--ledger", str(tmp_path / "l.duckdb"),
                                      "--work", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert "oracle: not asked 1 of 2 questions (no gold evidence)" in result.output
    assert "answered 3 pairs" in result.output


# ------------------------------------------------------------------ the diagnosis


def rows_of(dataset="hotpotqa", start=0, **hits_by_strategy) -> list:
    return [make_row(question_id=f"q{start + i}", strategy=name.replace("_", "-"), route=name, dataset=dataset,
                     answer=f"{name} {hit}", em=float(hit), f1=float(hit), recall=float(hit))
            for name, hits in hits_by_strategy.items() for i, hit in enumerate(hits)]


HALF = [1, 0] * 30
ALL_RIGHT, ALL_WRONG = [1] * 60, [0] * 60
FEW = [1] * 12 + [0] * 48


@pytest.mark.parametrize("hits, finding, full, opening", [
    (dict(oracle=ALL_RIGHT, rag=HALF, lc=ALL_RIGHT), LONG_CONTEXT_PAYS, "lc",
     "long context pays: reading whole documents with lc beats rag by +0.500"),
    (dict(oracle=ALL_RIGHT, rag=HALF, lc=HALF, coa=ALL_RIGHT), LONG_CONTEXT_PAYS, "coa",
     "long context pays: reading whole documents with coa"),
    (dict(oracle=ALL_RIGHT, rag=HALF, lc=HALF), RETRIEVAL_BOTTLENECK, "lc",
     "retrieval is the bottleneck: from the gold evidence the reader scores +0.500"),
    (dict(oracle=FEW, rag=FEW, lc=FEW), BIGGER_READER, "lc",
     "a bigger reader is what would help: even from the gold evidence it misses 80%"),
    (dict(oracle=ALL_RIGHT, rag=ALL_RIGHT, lc=HALF), RAG_IS_ENOUGH, "lc", "rag is enough: nothing beats rag's passages"),
    (dict(oracle=[1, 0, 1, 1, 0, 1], rag=[1, 1, 0, 1, 0, 1], lc=[0, 1, 1, 1, 0, 1]), CANNOT_TELL, "lc",
     "cannot tell on 6 questions: no difference excludes 0"),
], ids=["lc-pays", "coa-pays", "retrieval", "reader", "rag-enough", "cannot-tell"])
def test_each_branch_of_the_rule(hits, finding, full, opening):
    d = diagnose(rows_of(**hits), "hotpotqa")
    assert (d.finding, d.full_reader, d.metric) == (finding, full, "answer_recall")
    assert d.sentence.startswith(opening), d.sentence
    assert d.n == len(hits["oracle"])


def test_the_three_quantities_and_their_intervals():
    d = diagnose(rows_of(oracle=FEW, rag=[0] * 60, lc=[1] * 6 + [0] * 54), "hotpotqa")
    assert (d.oracle, d.rag, d.full) == (pytest.approx(0.2), 0.0, pytest.approx(0.1))
    assert d.retrieval_loss.mean == pytest.approx(0.2) and d.retrieval_loss.low > 0  # oracle - rag
    assert d.recovery.mean == pytest.approx(0.1) and d.recovery.low > 0  # lc - rag
    assert d.reader_limit.mean == pytest.approx(0.8)
    limit = (d.reader_limit.low, d.reader_limit.high)
    assert limit == (pytest.approx(1 - wilson_upper(12, 60)), pytest.approx(1 - wilson_lower(12, 60)))
    assert wilson_lower(12, 60) < 0.2 < wilson_upper(12, 60) < 0.35


def test_only_questions_all_three_answered_are_diagnosed():
    rows = rows_of(oracle=ALL_RIGHT[:40], rag=HALF, lc=HALF)  # the oracle was not asked the last 20
    rows.append(make_row(question_id="q5", strategy="lc", dataset="hotpotqa", error="reader timed out",
                         em=None, f1=None, recall=None))
    d = diagnose([r for r in rows if not (r.strategy == "lc" and r.question_id == "q5" and r.error is None)], "hotpotqa")
    assert d.n == 39 and d.without_oracle == 20


@pytest.mark.parametrize("hits, expected", [
    (dict(rag=HALF, lc=HALF), None),  # no oracle rows: no diagnosis
    (dict(oracle=ALL_RIGHT, rag=HALF), ("lc or coa",)),
    (dict(oracle=ALL_RIGHT, lc=HALF), ("rag",)),
])
def test_without_the_conditions_there_is_no_diagnosis_or_an_incomplete_one(hits, expected):
    d = diagnose(rows_of(**hits), "hotpotqa")
    if expected is None:
        assert d is None
    else:
        assert d.finding == INCOMPLETE and d.missing == expected and d.sentence.startswith("cannot diagnose")


def test_no_shared_question_is_incomplete():
    rows = rows_of(oracle=[1] * 5, rag=[1] * 5) + rows_of(start=10, lc=[1] * 5)
    d = diagnose(rows, "hotpotqa")
    assert d.finding == INCOMPLETE and d.n == 0 and "no question was answered" in d.sentence


# ------------------------------------------------------------------ the report


def test_the_report_and_its_json_carry_the_diagnosis_and_the_oracle_never_contends():
    rows = rows_of(oracle=ALL_RIGHT, rag=HALF, lc=HALF) + rows_of("other", rag=HALF, lc=HALF)
    report = build_report(rows, title="t", config={}, data_hashes={}, generated_at="now")
    entries = {e["dataset"]: e for e in verdict_json(report)}
    assert entries["other"]["diagnosis"] is None
    diagnosis = entries["hotpotqa"]["diagnosis"]
    assert diagnosis["finding"] == RETRIEVAL_BOTTLENECK and diagnosis["n_questions"] == 60
    assert diagnosis["retrieval_loss"]["mean"] == pytest.approx(0.5) and diagnosis["full_reader"] == "lc"
    json.dumps(entries)  # plain data
    line = next(v for v in report.verdicts if v.dataset == "hotpotqa")
    assert "oracle" not in (line.verdict.means or {}) and "oracle" not in report.overall_left_out
    hotpot = next(t for t in report.tables if t.dataset == "hotpotqa")
    assert "oracle" in {s.strategy for s in hotpot.rows}  # shown beside the contenders, like closed-book
    for text in (render_markdown(report), render_html(report)):
        assert "Diagnosis: where quality is lost" in text and "retrieval is the bottleneck" in text
    assert "Diagnosis: where quality is lost" not in render_markdown(
        build_report(rows_of("other", rag=HALF, lc=HALF), title="t", config={}, data_hashes={}, generated_at="now"))


def test_answerable_and_unanswerable_parts_are_diagnosed_apart():
    rows = rows_of("squad2", oracle=ALL_RIGHT, rag=HALF, lc=HALF)
    rows = [replace(r, answerable=True) for r in rows]
    rows += [replace(r, answerable=False, abstained=True)
             for r in rows_of("squad2", start=100, oracle=[1] * 10, rag=[1] * 10, lc=[1] * 10)]
    report = build_report(rows, title="t", config={}, data_hashes={}, generated_at="now")
    assert {d.dataset: d.metric for d in report.diagnosis} == {"squad2 · answerable": "answer_recall",
                                                               "squad2 · unanswerable": "abstention"}
