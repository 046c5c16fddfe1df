"""The evaluation harness above the reader (fake reader): data sets become
questions over corpora, every strategy answers every question once, scored rows
land in the ledger, and a rerun resumes without repeating work."""

from __future__ import annotations

import json
import math

import pytest

from lcrag.pipeline.config import ReaderConfig, config_from_dict
from lcrag.pipeline.evaluation import DATASETS, EvalRun, move_gold, run_evaluation
from lcrag.pipeline.evaluation.items import EvalDataError
from lcrag.pipeline.ledger import Ledger
from lcrag.pipeline.session import Session
from lcrag.readers.fake import FakeReader

RECORD = {
    "_id": "q1",
    "question": "Which river flows through the capital of Ruritania?",
    "answer": "Strelsau River",
    "supporting_facts": [["Ruritania", 0], ["Strelsau", 0]],
    "context": [
        ["Alpha", ["Alpha is a letter."]],
        ["Ruritania", ["Ruritania is a kingdom whose capital is Strelsau."]],
        ["Beta", ["Beta follows alpha."]],
        ["Strelsau", ["The Strelsau River flows through the capital of Ruritania."]],
        ["Gamma", ["Gamma rays are energetic."]],
    ],
}


@pytest.mark.parametrize(
    "slot, expected",
    [
        (0, ["Ruritania", "Strelsau", "Alpha", "Beta", "Gamma"]),
        (1, ["Alpha", "Ruritania", "Strelsau", "Beta", "Gamma"]),
        (3, ["Alpha", "Beta", "Gamma", "Ruritania", "Strelsau"]),
        (9, ["Alpha", "Beta", "Gamma", "Ruritania", "Strelsau"]),  # clamped to the end
    ],
)
def test_move_gold_places_the_gold_paragraphs_at_the_slot(slot, expected):
    assert [title for title, _ in move_gold(RECORD, slot)["context"]] == expected


def write_hotpot(tmp_path, n=3):
    records = [{**RECORD, "_id": f"q{i}"} for i in range(n)]
    path = tmp_path / "hotpot.json"
    path.write_text(json.dumps(records))
    return path


def test_hotpotqa_items_scope_and_positions(tmp_path):
    evalset = DATASETS["hotpotqa"](write_hotpot(tmp_path), limit=2, seed=1, positions=(0, 3))
    assert len(evalset.items) == 4 and len(evalset.corpora) == 4
    assert evalset.name == "hotpotqa-positions"  # kept apart from unmoved hotpotqa rows in reports
    assert {i.question.qid.split("@")[1] for i in evalset.items} == {"pos0", "pos3"}
    item = evalset.items[0]
    assert set(item.question.doc_scope) == {d.doc_id for d in evalset.corpora[item.corpus].documents}
    assert item.golds == ("Strelsau River",)


def test_sampling_is_seeded_and_prefix_stable(tmp_path):
    path = write_hotpot(tmp_path, n=10)
    small = [i.question.qid for i in DATASETS["hotpotqa"](path, limit=3, seed=7).items]
    large = [i.question.qid for i in DATASETS["hotpotqa"](path, limit=6, seed=7).items]
    assert large[:3] == small
    assert [i.question.qid for i in DATASETS["hotpotqa"](path, limit=3, seed=7).items] == small


def write_squad_article(tmp_path, qas, context="Strelsau is the capital of Ruritania."):
    """A SQuAD 2.0 file of one article (Ruritania) of one paragraph with these questions."""
    payload = {"data": [{"title": "Ruritania", "paragraphs": [{"context": context, "qas": qas}]}]}
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(payload))
    return path


def test_squad2_keeps_unanswerable_questions_without_gold(tmp_path):
    path = write_squad_article(tmp_path, [
        {"id": "a", "question": "What is the capital?", "answers": [{"text": "Strelsau", "answer_start": 0}], "is_impossible": False},
        {"id": "b", "question": "What is the currency?", "answers": [], "is_impossible": True},
    ], context="Strelsau is the capital.")
    evalset = DATASETS["squad2"](path)
    by_id = {i.question.qid: i for i in evalset.items}
    assert by_id["a"].golds == ("Strelsau",) and by_id["a"].answerable
    assert by_id["b"].golds == () and not by_id["b"].answerable
    assert by_id["a"].question.doc_scope == ("Ruritania",)


def test_qa_jsonl_names_a_missing_field(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "x?", "answers": ["y"]}\n{"answers": ["z"]}\n')
    with pytest.raises(ValueError, match=r"qa.jsonl:2: no 'question'"):
        DATASETS["qa-jsonl"](path)


def test_run_answers_every_pair_once_and_resumes(tmp_path, encoder):
    evalset = DATASETS["hotpotqa"](write_hotpot(tmp_path), limit=2)
    ledger = Ledger(tmp_path / "eval.duckdb")
    config = config_from_dict({"chunking": {"target_tokens": 16}})
    strategies = ("rag", "lc", "self-route")
    run = EvalRun("r1", "hotpotqa", strategies, tmp_path / "work", workers=2)
    answered = run_evaluation(evalset, run, Session(config, encoder=encoder, reader=FakeReader(), attention=None, ledger=ledger), budget=400)
    assert answered == 2 * len(strategies)
    rows = ledger.rows("r1")
    asked = [i.question.qid for i in evalset.items]
    assert sorted((r.question_id, r.strategy) for r in rows) == sorted((q, s) for q in asked for s in strategies)
    assert all(r.gold_answers == ("Strelsau River",) and r.f1 is not None and r.dataset == "hotpotqa" for r in rows)
    again = run_evaluation(evalset, run, Session(config, encoder=encoder, reader=FakeReader(), attention=None, ledger=ledger), budget=400)
    assert again == 0 and ledger.count("r1") == 6


def test_a_resumed_run_refuses_questions_that_read_differently_now(tmp_path, encoder):
    path = write_hotpot(tmp_path)
    ledger = Ledger(tmp_path / "eval.duckdb")
    config = config_from_dict({"chunking": {"target_tokens": 16}})
    run = EvalRun("r1", "hotpotqa", ("rag",), tmp_path / "work")
    run_evaluation(DATASETS["hotpotqa"](path), run, Session(config, encoder=encoder, reader=FakeReader(), attention=None, ledger=ledger), budget=400)
    records = json.loads(path.read_text())
    records[1]["question"] = "Which river flows through Strelsau?"  # an edited question file, same ids
    path.write_text(json.dumps(records))
    edited = DATASETS["hotpotqa"](path)
    with pytest.raises(EvalDataError, match=r"run r1 already answered 1 question\(s\) that read differently now "
                                            r"\(first: q1: .*Ruritania\?' -> 'Which river flows through Strelsau\?'\).*new --run-id"):
        run_evaluation(edited, run, Session(config, encoder=encoder, reader=FakeReader(), attention=None, ledger=ledger), budget=400)
    assert ledger.count("r1") == 3  # nothing answered, nothing lost
    fresh = EvalRun("r2", "hotpotqa", ("rag",), tmp_path / "work")
    assert run_evaluation(edited, fresh, Session(config, encoder=encoder, reader=FakeReader(), attention=None, ledger=ledger), budget=400) == 3


@pytest.mark.parametrize("asked, current, changed", [
    ({}, {"a": "Who?"}, []),                                           # a new run
    ({"a": "Who?"}, {"a": "Who?", "b": "When?"}, []),                   # a run with more questions since
    ({"a": "Who?", "z": "Gone?"}, {"a": "Who?"}, []),                   # a smaller --limit on resume
    ({"a": "Who?"}, {"a": "Who is it?"}, [("a", "Who?", "Who is it?")]),
    ({"a": "Who?", "b": "When?"}, {"b": "When? ", "a": "Who?"}, [("b", "When?", "When? ")]),  # exact text
])
def test_changed_questions(asked, current, changed):
    from lcrag.pipeline.evaluation.items import EvalItem, changed_questions
    from lcrag.pipeline.strategies import Question

    items = [EvalItem(Question(qid, text), (), "corpus") for qid, text in current.items()]
    assert changed_questions(asked, items) == changed


def test_squad2_run_scores_abstention_on_both_kinds(tmp_path, encoder):
    path = write_squad_article(tmp_path, [
        {"id": "a", "question": "Which city is the capital of Ruritania?", "answers": [{"text": "Strelsau", "answer_start": 0}]},
        {"id": "b", "question": "Who composed the Brandenburg concertos?", "answers": [], "is_impossible": True},
    ])
    evalset = DATASETS["squad2"](path)
    assert evalset.may_abstain
    ledger = Ledger(tmp_path / "ledger.duckdb")
    run = EvalRun("sq", "squad2", ("rag",), tmp_path / "work")
    reader = FakeReader()
    session = Session(config_from_dict({"chunking": {"target_tokens": 16}}), encoder=encoder, reader=reader, attention=None, ledger=ledger)
    run_evaluation(evalset, run, session, budget=400)
    assert all(p.allow_unanswerable for p in reader.calls)
    rows = {r.question_id: r for r in ledger.rows("sq")}
    assert (rows["a"].answerable, rows["a"].abstained, rows["a"].gold_answers) == (True, False, ("Strelsau",))
    assert (rows["b"].answerable, rows["b"].abstained, rows["b"].em, rows["b"].f1) == (False, True, 1.0, 1.0)


def test_qa_jsonl_answerable_flag_turns_on_abstention(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"id": "1", "question": "Q1?", "answers": ["x"]}\n{"id": "2", "question": "Q2?", "answerable": false}\n')
    evalset = DATASETS["qa-jsonl"](path)
    assert evalset.may_abstain and {i.question.qid: i.answerable for i in evalset.items} == {"1": True, "2": False}
    path.write_text('{"id": "1", "question": "Q1?", "answers": ["x"]}\n')
    assert not DATASETS["qa-jsonl"](path).may_abstain
    path.write_text('{"id": "1", "question": "Q1?", "answerable": "no"}\n')
    with pytest.raises(ValueError, match="'answerable' must be true or false"):
        DATASETS["qa-jsonl"](path)


def test_cli_eval_with_the_fake_backend_prints_a_summary(tmp_path):
    from typer.testing import CliRunner

    from lcrag.app.cli.app import app

    config = tmp_path / "config.yaml"
    config.write_text("reader:\n  backend: fake\n")
    result = CliRunner().invoke(app, ["eval", "--dataset", f"hotpotqa:{write_hotpot(tmp_path)}", "--strategies", "rag,op-rag",
                                      "--limit", "1", "--run-id", "cli", "--config", str(config),
                                      "--ledger", str(tmp_path / "l.duckdb"), "--work", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    assert "strategy=rag" in result.output and "answered 2 pairs" in result.output


def test_cli_eval_rejects_an_unknown_dataset(tmp_path):
    from typer.testing import CliRunner

    from lcrag.app.cli.app import app

    result = CliRunner().invoke(app, ["eval", "--dataset", "trivia:x.json"])
    assert result.exit_code == 2 and "hotpotqa, hotpotqa-pooled, squad2, qa-jsonl" in result.output


def test_cli_report_after_an_eval_run_writes_html_and_markdown(tmp_path):
    from typer.testing import CliRunner

    from lcrag.app.cli.app import app

    config = tmp_path / "config.yaml"
    config.write_text("reader:\n  backend: fake\n")
    ledger = str(tmp_path / "l.duckdb")
    runner = CliRunner()
    runner.invoke(app, ["eval", "--dataset", f"hotpotqa:{write_hotpot(tmp_path)}", "--strategies", "rag,lc", "--limit", "2",
                        "--run-id", "rep", "--config", str(config), "--ledger", ledger, "--work", str(tmp_path / "w")])
    result = runner.invoke(app, ["report", "--out", str(tmp_path / "out"), "--ledger", ledger, "--run-id", "rep"])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "out" / "report.html").read_text()
    assert "hotpotqa" in html and "rag" in html and "<svg" in html and "http" not in html.replace("http://www.w3.org", "")
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "rag" in markdown and "lc" in markdown and "|" in markdown
    missing = runner.invoke(app, ["report", "--out", str(tmp_path / "o2"), "--ledger", ledger, "--run-id", "nope"])
    assert missing.exit_code == 2 and "no ledger rows for run nope" in missing.output


@pytest.mark.parametrize(
    "depth, expected_prefix",
    [(0, "NEEDLE One."), (100, "One. Two three. Four five six. NEEDLE"), (50, "One. Two three. NEEDLE"), (25, "One. NEEDLE")],
)
def test_insert_at_depth_lands_after_a_sentence_end(depth, expected_prefix):
    from lcrag.pipeline.evaluation.needles import insert_at_depth

    words = ["One.", "Two", "three.", "Four", "five", "six."]
    assert insert_at_depth(words, depth, "NEEDLE").startswith(expected_prefix)


def test_niah_cells_carry_depth_and_length(tmp_path):
    from lcrag.pipeline.evaluation.needles import NEEDLES

    (tmp_path / "essays").mkdir()
    (tmp_path / "essays" / "a.txt").write_text(" ".join(f"Word{i} is here." for i in range(400)))
    evalset = DATASETS["niah"](tmp_path / "essays", lengths=(300, 900), depths=(0, 50, 100))
    assert len(evalset.items) == 6 * len(NEEDLES) and len({i.question.qid for i in evalset.items}) == len(evalset.items)
    for item in evalset.items:
        (depth,), length = item.question.needle_depths, item.question.haystack_length
        assert item.question.qid.endswith(f"@d{depth}@L{length}") and item.question.answer_kind == "exact"
        needle = NEEDLES[int(item.question.qid[len("niah"):].split("@")[0])]
        assert item.question.text == needle.question and item.golds == (needle.answer,)
        text = evalset.corpora[item.corpus].documents[0].text
        assert needle.sentence in text and len(text.split()) == length + len(needle.sentence.split())
        where = text.index(needle.sentence) / len(text)
        assert abs(where - depth / 100) < 0.1


def test_niah_gives_each_needle_its_own_filler_and_limit_keeps_whole_grids(tmp_path):
    from lcrag.pipeline.evaluation.needles import NEEDLES

    (tmp_path / "essays").mkdir()
    (tmp_path / "essays" / "a.txt").write_text(" ".join(f"Word{i} is here." for i in range(400)))
    evalset = DATASETS["niah"](tmp_path / "essays", limit=12, lengths=(300, 900), depths=(0, 50, 100))
    assert [i.question.qid.split("@")[0] for i in evalset.items] == ["niah0"] * 6 + ["niah1"] * 6
    first, second = (evalset.corpora[f"niah{n}@d0@L300"].documents[0].text for n in (0, 1))
    # needle 1 reads filler from word 900 on (wrapping round the 1,200 words), needle 0 from word 0
    assert first.split()[len(NEEDLES[0].sentence.split())] == "Word0"
    assert second.split()[len(NEEDLES[1].sentence.split())] == "Word300"


@pytest.mark.parametrize("sentence, question, answer", [
    ("The code is 4817.", "What is the code?", "4818"),  # answer not in the sentence
    ("The code is 4817.", "", "4817"),                   # no question
    ("", "What is the code?", "4817"),
])
def test_a_needle_refuses_an_answer_its_sentence_does_not_hold(sentence, question, answer):
    from lcrag.pipeline.evaluation.items import EvalDataError
    from lcrag.pipeline.evaluation.needles import Needle

    with pytest.raises(EvalDataError):
        Needle(sentence, question, answer)


def test_every_shipped_needle_answers_its_own_question():
    from lcrag.pipeline.evaluation.needles import NEEDLES
    from lcrag.pipeline.scoring.metrics import exact_match

    assert len({n.answer for n in NEEDLES}) == len(NEEDLES) >= 8
    for needle in NEEDLES:  # the gold is what exact match expects of a reply giving just the answer
        assert exact_match(needle.answer + ".", needle.answer) == 1.0
        assert needle.question.endswith("?")


def test_kv_items_know_the_gold_index(shared_data):
    evalset = DATASETS["kv"](shared_data / "lost_in_the_middle" / "kv-retrieval-75_keys.jsonl.gz", limit=5)
    assert len(evalset.items) == 5
    for item in evalset.items:
        doc = evalset.corpora[item.corpus].documents[0]
        lines = doc.text.split("\n")
        gold = item.question.evidence_position
        assert item.question.qid.endswith(f"@pos{gold}") and item.question.answer_kind == "exact"
        assert len(lines) == 75 and item.golds[0] in lines[gold]
        assert all(doc.text[s.start : s.end] == line for s, line in zip(doc.sections, lines))
    # a UUID is 34 reader tokens: the default reply length would cut every value short
    assert evalset.reply_tokens > ReaderConfig().max_tokens


@pytest.mark.parametrize("golds, declared, needed", [
    ([], 0, 0),                                   # no gold answers (a synthetic set not yet written)
    ([("Paris",), ("B",)], 0, 2),                 # short answers: the reader's default suffices
    ([("a b c d e f g h i j",)], 0, 20),          # ten words: 2 tokens a word
    ([("x",), ("one two three", "w " * 30)], 0, 60),  # the longest gold of any item counts
    ([("w " * 400,)], 0, 512),                    # capped at a paragraph
    ([("5803b872-dc90-4d23-a93e-358d7325a795",)], 64, 64),  # a declared need wins over the word count
])
def test_reply_tokens_needed_covers_the_longest_gold_answer(golds, declared, needed):
    from lcrag.pipeline.evaluation.items import EvalItem, EvalSet, reply_tokens_needed
    from lcrag.pipeline.strategies import Question

    items = tuple(EvalItem(Question(f"q{i}", "?"), g, "c") for i, g in enumerate(golds))
    assert reply_tokens_needed(EvalSet("s", items, {}, reply_tokens=declared)) == needed


@pytest.mark.parametrize("configured, needed, expected", [
    (32, 0, 32),    # the data set asks nothing: the setting stands
    (32, 64, 64),   # kv: raised to what a full answer needs
    (128, 64, 128), # already roomier: never lowered
    (64, 64, 64),
])
def test_with_reply_room_raises_the_reply_length_and_shrinks_the_context_budget(configured, needed, expected):
    from lcrag.pipeline.evaluation.job import with_reply_room
    from lcrag.pipeline.recording import context_budget

    config = config_from_dict({"reader": {"max_tokens": configured}})
    roomy = with_reply_room(config, needed)
    assert roomy.reader.max_tokens == expected
    # the prompt still fits the window: context gives up exactly the reply's extra tokens
    assert context_budget(roomy.reader, roomy.strategies) == (
        context_budget(config.reader, config.strategies) - (expected - configured))
    assert (roomy is config) == (expected == configured)


BEIR_DOCS = [
    ("d-cat", "Cats", "Cats purr when content and sleep most of the day."),
    ("d-volcano", "Etna", "Mount Etna in Sicily is an active volcano with lava flows."),
    ("d-bread", "Bread", "Sourdough bread rises with a starter instead of yeast."),
    ("d-rocket", "Rockets", "Rockets burn hydrogen and oxygen to reach orbit."),
]
BEIR_QUERIES = [("q1", "Which volcano in Sicily has lava flows?", "d-volcano"), ("q2", "Why do cats purr?", "d-cat"),
                ("q3", "unjudged question about tea", None)]


def write_beir(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, t, x in BEIR_DOCS))
    (folder / "queries.jsonl").write_text("\n".join(json.dumps({"_id": q, "text": t}) for q, t, _ in BEIR_QUERIES))
    (folder / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, _, d in BEIR_QUERIES if d]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_beir_judges_every_method_and_resumes(tmp_path, encoder):
    from lcrag.pipeline.evaluation.retrieval import beir, run_retrieval

    rset = beir(write_beir(tmp_path / "tiny"))
    assert sorted(q for q, _ in rset.queries) == ["q1", "q2"]  # the unjudged query is left out
    ledger = Ledger(tmp_path / "ledger.duckdb")
    config = config_from_dict({"chunking": {"target_tokens": 16}})
    judged = run_retrieval(rset, "b1", ("bm25", "dense", "hybrid"), tmp_path / "work", config, encoder, ledger, k=10)
    assert judged == 6
    rows = ledger.retrieval_rows("b1")
    assert {(r.query_id, r.method) for r in rows} == {(q, f"{m}/doc") for q in ("q1", "q2") for m in ("bm25", "dense", "hybrid")}
    # four documents, one relevant each: every method finds it (recall@10 = 1); nDCG = 1/log2(rank + 1), MRR = 1/rank
    assert all(r.recall_at_k == 1.0 for r in rows)
    assert all(r.ndcg_at_10 == pytest.approx(1 / math.log2(1 / r.mrr + 1)) for r in rows)
    assert all(r.ndcg_at_10 > 0.6 and r.dataset == "beir/tiny" for r in rows)
    assert run_retrieval(rset, "b1", ("bm25", "dense", "hybrid"), tmp_path / "work", config, encoder, ledger, k=10) == 0


@pytest.mark.parametrize("text, expected", [("all", ("dense", "bm25", "hybrid")), ("bm25, hybrid", ("bm25", "hybrid")),
                                            ("bm25,bm25", ("bm25",))])
def test_resolve_methods(text, expected):
    from lcrag.pipeline.evaluation.retrieval import resolve_methods

    assert resolve_methods(text) == expected


@pytest.mark.parametrize("text", ["rag", "", "bm25,colbert"])
def test_resolve_methods_rejects_strategies(text):
    from lcrag.pipeline.evaluation.retrieval import resolve_methods

    with pytest.raises(ValueError, match=r"bm25, hybrid|dense, bm25, hybrid"):
        resolve_methods(text)


def test_cli_eval_beir_and_report_show_retrieval(tmp_path):
    from typer.testing import CliRunner

    from lcrag.app.cli.app import app

    folder = write_beir(tmp_path / "tiny")
    common = ["--ledger", str(tmp_path / "l.duckdb")]
    result = CliRunner().invoke(app, ["eval", "-d", f"beir:{folder}", "-s", "bm25", "--k", "10", "--run-id", "b",
                                      "--work", str(tmp_path / "w"), *common])
    assert result.exit_code == 0, result.output
    assert "method=bm25/doc" in result.output and "judged 2 pairs" in result.output
    report = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "rep"), *common])
    assert report.exit_code == 0, report.output
    markdown = (tmp_path / "rep" / "report.md").read_text()
    assert "## Retrieval (judged by relevance labels)" in markdown and "| beir/tiny | bm25/doc | 2 |" in markdown


# ------------------------------------------------------- reader failures


class FlakyReader(FakeReader):
    """The fake reader, failing (as the HTTP reader reports failures) on questions
    that contain one of ``failing``; clear it to let them through."""

    def __init__(self, *failing: str) -> None:
        super().__init__()
        self.failing = set(failing)

    def read(self, prompt):
        from lcrag.readers.base import ReaderError

        if any(marker in prompt.question for marker in self.failing):
            raise ReaderError("the reader at http://127.0.0.1:1/v1 answered HTTP 500: boom")
        return super().read(prompt)


def write_distinct_hotpot(tmp_path, n=3):
    records = [{**RECORD, "_id": f"q{i}", "question": f"{RECORD['question']} (case {i})"} for i in range(n)]
    path = tmp_path / "hotpot.json"
    path.write_text(json.dumps(records))
    return path


def test_reader_failures_become_error_rows_and_a_resumed_run_retries_exactly_them(tmp_path, encoder):
    from lcrag.pipeline.report import build_report
    from lcrag.pipeline.report.render import render_markdown

    evalset = DATASETS["hotpotqa"](write_distinct_hotpot(tmp_path), limit=3)
    ledger = Ledger(tmp_path / "eval.duckdb")
    config = config_from_dict({"chunking": {"target_tokens": 16}})
    run = EvalRun("flaky", "hotpotqa", ("rag", "lc"), tmp_path / "work", workers=2)
    reader = FlakyReader("(case 1)")
    assert run_evaluation(evalset, run, Session(config, encoder=encoder, reader=reader, attention=None, ledger=ledger), budget=400) == 4
    rows = ledger.rows("flaky")
    assert len(rows) == 6
    failed = sorted((r.question_id, r.strategy) for r in rows if r.error)
    assert failed == [("q1", "lc"), ("q1", "rag")]
    for row in (r for r in rows if r.error):
        assert "HTTP 500: boom" in row.error and row.route == "error" and row.dataset == "hotpotqa"
        assert (row.prompt_tokens, row.completion_tokens, row.context_tokens, row.em, row.f1) == (0, 0, 0, None, None)
    assert ledger.done_keys("flaky") == {(q, s) for q in ("q0", "q2") for s in ("rag", "lc")}

    report = build_report(rows, title="t", config={}, data_hashes={})
    assert report.n_errors == 2 and {s.strategy: s.n_errors for s in report.overall} == {"lc": 1, "rag": 1}
    assert "2 answer(s) failed with a reader error" in render_markdown(report)
    summary = ledger.query("select strategy, n, n_errors from ledger_summary where run_id = 'flaky' order by 1")
    assert summary == [{"strategy": "lc", "n": 3, "n_errors": 1}, {"strategy": "rag", "n": 3, "n_errors": 1}]

    reader.failing.clear()
    reader.calls.clear()
    assert run_evaluation(evalset, run, Session(config, encoder=encoder, reader=reader, attention=None, ledger=ledger), budget=400) == 2
    retried = {i.question.text for i in evalset.items if i.question.qid == "q1"}
    assert {p.question for p in reader.calls} == retried  # only the failed ones again
    rows = ledger.rows("flaky")
    assert len(rows) == 6 and not [r for r in rows if r.error]
    assert all(r.f1 is not None for r in rows)
    assert ledger.done_keys("flaky") == {(q, s) for q in ("q0", "q1", "q2") for s in ("rag", "lc")}
    assert build_report(rows, title="t", config={}, data_hashes={}).n_errors == 0
    summary = ledger.query("select strategy, n, n_errors from ledger_summary where run_id = 'flaky' order by 1")
    assert summary == [{"strategy": "lc", "n": 3, "n_errors": 0}, {"strategy": "rag", "n": 3, "n_errors": 0}]


def test_a_reader_that_is_down_stops_the_run_after_recording_the_failures(tmp_path, encoder):
    from lcrag.readers.base import ReaderError

    evalset = DATASETS["hotpotqa"](write_distinct_hotpot(tmp_path, n=4), limit=4)
    ledger = Ledger(tmp_path / "eval.duckdb")
    config = config_from_dict({"chunking": {"target_tokens": 16}})
    run = EvalRun("down", "hotpotqa", ("rag", "lc"), tmp_path / "work", workers=1, max_consecutive_failures=3)
    with pytest.raises(ReaderError, match=r"failed on 3 questions in a row .*rerun with the same run id"):
        run_evaluation(evalset, run, Session(config, encoder=encoder, reader=FlakyReader("case"), attention=None, ledger=ledger), budget=400)
    rows = ledger.rows("down")
    assert len(rows) == 3 and all(r.error for r in rows)  # recorded, then stopped: the rest never tried
    assert ledger.done_keys("down") == set()

    assert run_evaluation(evalset, run, Session(config, encoder=encoder, reader=FakeReader(), attention=None, ledger=ledger), budget=400) == 8
    rows = ledger.rows("down")
    assert len(rows) == 8 and not [r for r in rows if r.error]


def test_an_interrupted_run_stops_at_once_and_resumes(tmp_path, encoder):
    """Ctrl-C while one corpus is read: the corpora not begun are not started (the run
    ends now, not after every queued corpus) and the same run id answers the rest."""
    class InterruptingReader(FakeReader):
        def read(self, prompt):
            if "(case 1)" in prompt.question:
                raise KeyboardInterrupt
            return super().read(prompt)

    evalset = DATASETS["hotpotqa"](write_distinct_hotpot(tmp_path, n=4), limit=4)
    ledger = Ledger(tmp_path / "eval.duckdb")
    config = config_from_dict({"chunking": {"target_tokens": 16}})
    run = EvalRun("stop", "hotpotqa", ("rag", "lc"), tmp_path / "work", workers=1)
    order = [i.question.qid for i in evalset.items]
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(evalset, run, Session(config, encoder=encoder, reader=InterruptingReader(), attention=None, ledger=ledger), budget=400)
    before = order[: order.index("q1")]  # corpora answered before the interrupted one, in submission order
    assert ledger.done_keys("stop") == {(q, s) for q in before for s in ("rag", "lc")}
    session = Session(config, encoder=encoder, reader=FakeReader(), attention=None, ledger=ledger)
    assert run_evaluation(evalset, run, session, budget=400) == 2 * (4 - len(before))
    assert ledger.done_keys("stop") == {(q, s) for q in order for s in ("rag", "lc")}


def write_one_article_squad(tmp_path, n):
    return write_squad_article(tmp_path, [
        {"id": f"q{i}", "question": f"Which city is the capital of Ruritania (case {i})?",
         "answers": [{"text": "Strelsau", "answer_start": 0}]} for i in range(n)])


def test_one_corpus_is_answered_in_recorded_windows_so_a_stop_keeps_the_finished_ones(tmp_path, encoder):
    """A one-corpus data set (SQuAD's articles) is answered window by window, every
    strategy on a window before the next (so lc and the strategies that read the same
    article find it in the server's prefix cache): rows are recorded per call, so a stop
    keeps the finished windows, the progress bar moves per call, and the same run id
    answers the rest."""
    class InterruptingReader(FakeReader):
        def read(self, prompt):
            if "(case 3)" in prompt.question:
                raise KeyboardInterrupt
            return super().read(prompt)

    evalset = DATASETS["squad2"](write_one_article_squad(tmp_path, 5))
    assert len(evalset.corpora) == 1
    order = [i.question.qid for i in evalset.items]
    ledger = Ledger(tmp_path / "eval.duckdb")
    config = config_from_dict({"chunking": {"target_tokens": 16}})
    run = EvalRun("batched", "squad2", ("rag", "lc"), tmp_path / "work", batch_size=2)
    with pytest.raises(KeyboardInterrupt):
        run_evaluation(evalset, run, Session(config, encoder=encoder, reader=InterruptingReader(), attention=None, ledger=ledger), budget=400)
    stopped_window = order.index("q3") // 2
    kept = order[: 2 * stopped_window]
    assert kept and ledger.done_keys("batched") == {(q, s) for q in kept for s in ("rag", "lc")}

    steps, reader = [], FakeReader()
    session = Session(config, encoder=encoder, reader=reader, attention=None, ledger=ledger)
    answered = run_evaluation(evalset, run, session, budget=400, progress=steps.append)
    assert answered == 2 * (len(order) - len(kept))
    rest = len(order) - len(kept)
    windows = [min(2, rest - start) for start in range(0, rest, 2)]
    assert steps == [n for n in windows for _ in ("rag", "lc")]  # each window: rag, then lc
    first_window = {i.question.text for i in evalset.items if i.question.qid in order[len(kept):len(kept) + 2]}
    asked = [p.question for p in reader.calls]
    assert set(asked[: 2 * len(first_window)]) == first_window  # rag and lc on the first window before the next
    assert ledger.done_keys("batched") == {(q, s) for q in order for s in ("rag", "lc")}


@pytest.mark.parametrize("field", ["workers", "max_consecutive_failures", "batch_size"])
def test_eval_run_refuses_a_count_below_one(tmp_path, field):
    with pytest.raises(ValueError, match=f"EvalRun.{field} must be at least 1"):
        EvalRun("r", "hotpotqa", ("rag",), tmp_path, **{field: 0})


def test_a_reader_bug_is_not_recorded_as_an_error_row(tmp_path, encoder):
    class BuggyReader(FakeReader):
        def read(self, prompt):
            raise ValueError("a bug, not a reader failure")

    evalset = DATASETS["hotpotqa"](write_distinct_hotpot(tmp_path, n=1), limit=1)
    ledger = Ledger(tmp_path / "eval.duckdb")
    run = EvalRun("bug", "hotpotqa", ("rag",), tmp_path / "work")
    with pytest.raises(ValueError, match="a bug"):
        run_evaluation(evalset, run, Session(config_from_dict({}), encoder=encoder, reader=BuggyReader(), attention=None, ledger=ledger), budget=400)
    assert ledger.count("bug") == 0
