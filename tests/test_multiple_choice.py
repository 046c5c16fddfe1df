"""Multiple choice end to end: options reach the prompt, the reply's letter is parsed
and scored as accuracy (an unparseable reply is recorded as such), the choice's
probability comes from the reader's logprobs, and long-document files become one
corpus per document."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lcrag.pipeline.config import config_from_dict
from lcrag.pipeline.evaluation import DATASETS
from lcrag.pipeline.evaluation.items import EvalDataError
from lcrag.pipeline.evaluation.job import EvalRequest, evaluate
from lcrag.pipeline.ledger import Ledger
from lcrag.pipeline.recording import RunLabels, ledger_row
from lcrag.pipeline.strategies import Context, Outcome, Question
from lcrag.readers.base import Answer, Prompt
from lcrag.readers.prompts import CHOOSE_ALL, CHOOSE_ONE, messages
from lcrag.readers.vllm import answer_logprobs, cached_tokens

FIXTURES = Path(__file__).parent / "fixtures"
OPTIONS = ("a volcano", "a glacier", "a river", "a desert")
LABELS = RunLabels("r", "idx", "cfg", "m", dataset="mc")


def outcome(text: str, options=OPTIONS, multi=False, top=()) -> Outcome:
    answer = Answer(text, 10, 1, 1.0, "m", first_token_top=top)
    question = Question("q1", "What is Etna?", options=options, multi_answer=multi)
    return Outcome(question, "rag", "rag", answer, Context((), 0), 10, 1, 1.0, 1.0)


@pytest.mark.parametrize(
    "reply, gold, choice, score",
    [
        ("A", "A", "A", 1.0),
        ("(B)", "A", "B", 0.0),
        ("a volcano", "A", "A", 1.0),
        ("The answer is A.", "A", "A", 1.0),
        ("I am not sure", "A", None, 0.0),  # unparseable: no letter recorded, and not a right answer
    ],
)
def test_a_multiple_choice_row_records_the_parsed_letter_and_accuracy(reply, gold, choice, score):
    row = ledger_row(outcome(reply), LABELS, golds=(gold,))
    assert row.choice == choice and row.em == score and row.f1 == score and row.recall == score
    assert row.gold_answers == (gold,)


def test_several_right_options_score_only_as_a_set():
    assert ledger_row(outcome("B, D", multi=True), LABELS, golds=("BD",)).em == 1.0
    assert ledger_row(outcome("B", multi=True), LABELS, golds=("BD",)).em == 0.0


@pytest.mark.parametrize(
    "top, reply, expected",
    [
        ((("A", math.log(0.6)), ("B", math.log(0.3))), "A", 0.6),
        ((("A", math.log(0.6)), (" A", math.log(0.1))), "A", 0.7),  # the same letter under two tokenisations
        ((("B", math.log(0.9)),), "A", None),  # the chosen letter is not among the alternatives
        ((), "A", None),  # no logprobs from the reader
    ],
)
def test_the_choice_probability_comes_from_the_first_tokens_alternatives(top, reply, expected):
    row = ledger_row(outcome(reply, top=top), LABELS, golds=("A",))
    assert row.choice_prob == (pytest.approx(expected) if expected is not None else None)


def test_options_are_listed_after_the_question_and_the_instruction_says_how_to_reply():
    system, user = messages(Prompt("What is Etna?", options=OPTIONS))
    assert CHOOSE_ONE in system["content"]
    assert user["content"].endswith("Options:\nA. a volcano\nB. a glacier\nC. a river\nD. a desert\nAnswer:")
    assert CHOOSE_ALL in messages(Prompt("q", options=OPTIONS, multi_answer=True))[0]["content"]
    assert "Options" not in messages(Prompt("What is Etna?"))[1]["content"]


def test_logprobs_and_cached_tokens_are_read_from_a_recorded_server_response():
    recorded = json.loads((FIXTURES / "vllm_chat_completion_logprobs.json").read_text())
    logprobs, top = answer_logprobs(recorded["choices"][0])
    content = recorded["choices"][0]["logprobs"]["content"]
    assert len(content) == recorded["usage"]["completion_tokens"]
    assert logprobs == (content[0]["logprob"],)  # the answer "A"; the end-of-turn token is not the answer's
    assert all(lp <= 0 for lp in logprobs) and top and top[0][0] == content[0]["token"]
    assert cached_tokens(recorded["usage"]) == recorded["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert answer_logprobs({"message": {"content": "x"}}) == ((), ())
    assert cached_tokens({"prompt_tokens": 5}) is None


def test_qa_jsonl_accepts_options(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"id": "1", "question": "What is Etna?", "options": list(OPTIONS), "answer": "a volcano"}) + "\n")
    item = DATASETS["qa-jsonl"](path).items[0]
    assert item.question.options == OPTIONS and item.golds == ("A",)
    path.write_text(json.dumps({"id": "1", "question": "What is Etna?", "options": list(OPTIONS), "answer": "a mountain"}) + "\n")
    with pytest.raises(EvalDataError, match="must name one of the 4 options"):
        DATASETS["qa-jsonl"](path)


def write_longdoc(path: Path) -> Path:
    document = ("Mount Etna is an active volcano on the east coast of Sicily. " * 5).strip()
    lines = [
        {"input": document, "instructions": ["What is Etna?\nA. a volcano\nB. a glacier\nC. a river\nD. a desert",
                                             "Where is Etna?\nA. Sicily\nB. Iceland\nC. Chile\nD. Japan"],
         "outputs": ["A", "A"], "source": "demo", "evaluation": "exam"},
        {"context": "Reykjavik is the capital of Iceland. " * 4, "input": "What is the capital of Iceland?",
         "answers": ["Reykjavik"]},
        {"nothing": "useful"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_a_long_document_file_is_one_corpus_per_document_with_its_skipped_lines(tmp_path):
    evalset = DATASETS["longdoc"](write_longdoc(tmp_path / "mixed.jsonl"))
    assert evalset.name == "longdoc/mixed" and len(evalset.corpora) == 2 and len(evalset.items) == 3
    mc = [i for i in evalset.items if i.question.options]
    assert len(mc) == 2 and all(i.golds == ("A",) for i in mc) and len({i.corpus for i in mc}) == 1
    assert [i.golds for i in evalset.items if not i.question.options] == [("Reykjavik",)]
    assert len(evalset.skipped) == 1 and evalset.skipped[0].startswith("line 3:")


def test_lcrag_eval_longdoc_records_choices_with_the_fake_reader(tmp_path):
    config = config_from_dict({"reader": {"backend": "fake"}, "chunking": {"target_tokens": 16}})
    request = EvalRequest(f"longdoc:{write_longdoc(tmp_path / 'mixed.jsonl')}", "rag,lc", run_id="ld",
                          ledger=tmp_path / "l.duckdb", work=tmp_path / "w")
    said: list[str] = []
    outcome_ = evaluate(request, config, announce=said.append)
    assert outcome_.done == 6 and any(line.startswith("skipped line 3") for line in said)
    rows = Ledger(tmp_path / "l.duckdb").rows("ld")
    mc_rows = [r for r in rows if r.gold_answers == ("A",)]
    assert len(mc_rows) == 4 and all(r.dataset == "longdoc/mixed" for r in rows)
    # the fake reader echoes passage words, which name no option: recorded as unparseable, scored 0
    assert all(r.choice is None and r.em == 0.0 for r in mc_rows)


def test_fields_apply_to_longdoc_only(tmp_path):
    with pytest.raises(EvalDataError, match="--fields applies to --dataset longdoc only"):
        EvalRequest(f"squad2:{tmp_path}", fields="document=text,question=q")
