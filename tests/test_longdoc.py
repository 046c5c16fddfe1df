"""Long-document question files: the four benchmark layouts, a field mapping, and
lines that are reported and skipped while the rest of the file is read."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from lcrag.pipeline.evaluation.longdoc import (
    FieldMap,
    LongDocError,
    load_longdoc,
    split_options,
)

DOC = "The lighthouse keeper lit the lamp every evening at dusk. " * 20


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def one(tmp_path: Path, line: dict, fields=None):
    loaded = load_longdoc(write_lines(tmp_path / "data.jsonl", [line]), fields)
    assert loaded.skipped == ()
    assert len(loaded.records) == 1
    return loaded, loaded.records[0]


def test_longbench_v1(tmp_path: Path) -> None:
    line = {"input": "When was the lamp lit?", "context": DOC, "answers": ["at dusk", "every evening"],
            "length": 240, "dataset": "narrativeqa", "language": "en", "all_classes": None, "_id": "lb1-7"}
    loaded, record = one(tmp_path, line)
    assert record.layout == "longbench_v1" and loaded.layout_counts == {"longbench_v1": 1}
    assert record.document == DOC and record.doc_id.startswith("ld-")
    (q,) = record.questions
    assert (q.qid, q.question, q.answers, q.kind, q.options, q.correct) == (
        "lb1-7", "When was the lamp lit?", ("at dusk", "every evening"), "free", (), ())
    assert dict(q.meta)["dataset"] == "narrativeqa"


def test_longbench_v2(tmp_path: Path) -> None:
    line = {"_id": "66f36490", "domain": "Single-Document QA", "sub_domain": "Literary", "difficulty": "hard", "length": "short",
            "question": "When was the lamp lit?", "choice_A": "At noon", "choice_B": "At dusk", "choice_C": "At dawn",
            "choice_D": "Never", "answer": "B", "context": DOC}
    _, record = one(tmp_path, line)
    assert record.layout == "longbench_v2"
    (q,) = record.questions
    assert q.kind == "mc" and q.qid == "66f36490"
    assert q.options == ("At noon", "At dusk", "At dawn", "Never")
    assert q.correct == ("B",) and q.letters == "B" and q.answers == ("At dusk",) and not q.multi
    assert dict(q.meta)["difficulty"] == "hard"


def test_leval_splits_embedded_options(tmp_path: Path) -> None:
    line = {
        "input": DOC,
        "instructions": [
            "When was the lamp lit?\nA. At noon\nB. At dusk\nC. At dawn\nD. Never",
            "Question 2. Which are true?\n\n(A) a lamp\n(B) a keeper\n(C) a ship\n(D) a storm\n",
            "Who lit the lamp?",
        ],
        "outputs": ["B", "AB", "The keeper."],
        "source": "toefl_tpo",
        "evaluation": "exam",
    }
    loaded, record = one(tmp_path, line)
    assert record.layout == "leval" and loaded.layout_counts == {"leval": 1}
    first, second, third = record.questions
    assert (first.question, first.options, first.correct, first.kind) == (
        "When was the lamp lit?", ("At noon", "At dusk", "At dawn", "Never"), ("B",), "mc")
    assert second.question == "Question 2. Which are true?" and second.letters == "AB" and second.multi
    assert second.answers == ("a lamp", "a keeper")
    assert (third.kind, third.answers, third.options) == ("free", ("The keeper.",), ())
    assert [q.qid for q in record.questions] == [f"{record.doc_id}:q{i}" for i in range(3)]


def test_bamboo(tmp_path: Path) -> None:
    mc = {"content": DOC, "question": "When was the lamp lit?", "options": ["A. At noon", "B. At dusk", "C. At dawn", "D. Never"], "answer": "B"}
    _, record = one(tmp_path, mc)
    (q,) = record.questions
    assert record.layout == "bamboo" and q.options == ("At noon", "At dusk", "At dawn", "Never") and q.correct == ("B",)
    by_text = {**mc, "answer": "At dawn", "content": DOC + " Another."}
    assert one(tmp_path, by_text)[1].questions[0].correct == ("C",)
    free = {"content": [DOC, "And a second part."], "question": "Who lit it?", "answer": "The keeper"}
    _, record = one(tmp_path, free)
    assert record.document == DOC + "\n\nAnd a second part." and record.questions[0].kind == "free"


def test_field_mapping(tmp_path: Path) -> None:
    fields = FieldMap.parse("document=text,question=q,answers=a")
    assert fields == FieldMap(document="text", question="q", answers="a", options=None)
    line = {"text": DOC, "q": "When was the lamp lit?", "a": ["at dusk"], "title": "Lighthouse"}
    _, record = one(tmp_path, line, "document=text,question=q,answers=a,title=title")
    assert record.layout == "mapped" and record.title == "Lighthouse" and record.questions[0].answers == ("at dusk",)
    _, record = one(tmp_path, {**line, "n": "x1"}, "document=text,question=q,answers=a,id=n")
    assert record.questions[0].qid == "x1"
    # The same line is no known layout without the mapping.
    unmapped = load_longdoc(tmp_path / "data.jsonl")
    assert unmapped.records == () and unmapped.skipped[0][0] == 1
    mc = {"text": DOC, "q": "When?", "opts": ["noon", "dusk"], "gold": "dusk", "key": 9}
    _, record = one(tmp_path, mc, FieldMap(document="text", question="q", answers="gold", options="opts", id="key"))
    assert record.questions[0].correct == ("B",) and record.questions[0].qid == "9"


@pytest.mark.parametrize(
    "spec",
    ["question=q,answers=a", "document=text", "document=text,question=q", "document=text,question=q,colour=red",
     "document=text,question", "document=a,document=b,question=q"],
)
def test_bad_field_mappings(spec: str) -> None:
    with pytest.raises(LongDocError):
        FieldMap.parse(spec)


def test_bad_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    good = {"input": "When was the lamp lit?", "context": DOC, "answers": ["at dusk"]}
    lines = [
        good,
        '{"input": "broken", "context": ',  # line 2: not JSON
        {"context": DOC, "input": "Where?"},  # line 3: no answers
        "",  # blank lines are not lines of data
        {"something": "else"},  # line 5
        [1, 2],  # line 6: not an object
        {"context": "   ", "input": "Q?", "answers": ["a"]},  # line 7: empty document
        {"input": DOC, "instructions": ["Q?\nA. x\nB. y"], "outputs": ["Z"]},  # line 8: answer is no option
        {**good, "input": "Who lit it?", "answers": ["the keeper"]},  # line 9: the same document again
    ]
    loaded = load_longdoc(write_lines(tmp_path / "mixed.jsonl", lines))
    reasons = dict(loaded.skipped)
    assert sorted(reasons) == [2, 3, 5, 6, 7, 8]
    assert "invalid JSON" in reasons[2]
    assert "closest longbench_v1" in reasons[3] and "'answers'" in reasons[3] and "line 3" in reasons[3]
    assert "fits no layout" in reasons[5]
    assert "not a JSON object" in reasons[6]
    assert "empty 'context'" in reasons[7]
    assert "'Z'" in reasons[8]
    # Lines 1 and 9 share a document: one record, both questions.
    (record,) = loaded.records
    assert record.lines == (1, 9) and [q.question for q in record.questions] == ["When was the lamp lit?", "Who lit it?"]
    assert loaded.layout_counts == {"longbench_v1": 2}


def test_document_ids_are_stable_hashes(tmp_path: Path) -> None:
    line = {"input": "Q?", "context": DOC, "answers": ["a"]}
    first = load_longdoc(write_lines(tmp_path / "a.jsonl", [line])).records[0].doc_id
    plain = write_lines(tmp_path / "b.jsonl", [{"content": DOC, "question": "Other?", "answer": "b"}])
    zipped = tmp_path / "b.jsonl.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    assert load_longdoc(zipped).records[0].doc_id == first
    assert load_longdoc(write_lines(tmp_path / "c.jsonl", [{**line, "context": DOC + "!"}])).records[0].doc_id != first


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LongDocError, match="does not exist"):
        load_longdoc(tmp_path / "absent.jsonl")


@pytest.mark.parametrize(
    "text, stem, options",
    [
        ("Q?\nA. one\nB. two", "Q?", ("one", "two")),
        ("Q?\n(A) one\n(B) two\n(C) three", "Q?", ("one", "two", "three")),
        ("Q?\nA) one\nB) two", "Q?", ("one", "two")),
        ("Q? (A) one (B) two (C) three", "Q?", ("one", "two", "three")),
        ("Q?\nA. one that\nwraps\nB. two", "Q?", ("one that wraps", "two")),
        ("Q?\nA. only one", "Q?\nA. only one", ()),
        ("Q?\nB. starts late\nC. no", "Q?\nB. starts late\nC. no", ()),
        ("A free question", "A free question", ()),
    ],
)
def test_split_options(text: str, stem: str, options: tuple) -> None:
    assert split_options(text) == (stem, options)


def test_leval_tpo(shared_data: Path) -> None:
    loaded = load_longdoc(shared_data / "leval_mc" / "tpo.jsonl")
    questions = loaded.questions
    assert loaded.skipped == () and loaded.layout_counts == {"leval": 15}
    assert len(loaded.records) == 15 and len(questions) == 269
    assert all(q.kind == "mc" and len(q.options) == 4 and len(q.correct) == 1 for q in questions)
    assert {q.letters for q in questions} == {"A", "B", "C", "D"}
    first = questions[0]
    assert first.question == "why did frantzen go to the sales barn"
    assert first.options[0] == "to study human form and movement" and first.correct == ("A",)
    assert len({q.qid for q in questions}) == 269


def test_leval_coursera(shared_data: Path) -> None:
    loaded = load_longdoc(shared_data / "leval_mc" / "coursera.jsonl")
    questions = loaded.questions
    assert loaded.skipped == () and len(loaded.records) == 15 and len(questions) == 172
    assert all(q.kind == "mc" and len(q.options) == 4 for q in questions)
    assert sum(q.multi for q in questions) == 85
    assert max(len(q.correct) for q in questions) == 4
    assert all(not q.question.endswith(("A.", "\n")) and not any(o.startswith(("A.", "B.")) for o in q.options) for q in questions)
