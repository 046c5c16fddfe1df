"""Synthetic questions (``synth:N``): parsing what the reader wrote, and the round-trip
filter that keeps only questions the reader answers from their passage alone."""

from __future__ import annotations

import json

import pytest

from lcrag.pipeline.evaluation.synth import generate, parse_written, round_trip_ok
from lcrag.readers.base import WRITE_QUESTION, Answer, Passage, Prompt
from lcrag.readers.prompts import messages


@pytest.mark.parametrize("reply, expected", [
    # replies Qwen2.5-Coder-0.5B-Instruct wrote to the JSON request
    ('{"question": "What was the name of BSkyB\'s digital service?", "answer": "Sky Digital"}',
     ("What was the name of BSkyB's digital service?", "Sky Digital")),
    ('{\n  "question": "What was the name of the country most dependent on Arab oil?",\n  "answer": "Japan."\n}',
     ("What was the name of the country most dependent on Arab oil?", "Japan")),
    ('```json\n{"question": "In which year did CSNET begin operation?", "answer": 1981}\n```',
     ("In which year did CSNET begin operation?", "1981")),
    # the line forms other readers follow
    ("Question: Who founded the city?\nAnswer: Pedro Menéndez", ("Who founded the city?", "Pedro Menéndez")),
    ("**Answer:** 1565\n**Question:** When was the city founded?", ("When was the city founded?", "1565")),
    ("When was the city founded?\n1565", ("When was the city founded?", "1565")),
    # refused: the question alone (what the two-line request got for 145 of 150 passages) ...
    ("Which dynasty was Yuan's first emperor to actively support Chinese culture?", None),
    # ... an answer that repeats the question, a long answer, a question without "?", JSON without the keys
    ('{"question": "What was the name of the Royal University of Warsaw?", "answer": "Warsaw"}', None),
    ('{"question": "What is the main idea of the passage?", "answer": "The passage discusses the concept of '
     'economic inequality and its implications for the society as a whole"}', None),
    ('{"question": "Name the treaty", "answer": "Treaty of Paris"}', None),
    ('{"q": "Who?", "a": "him"}', None),
    ("{not json at all", None),
    ("", None),
])
def test_parse_written(reply, expected):
    assert parse_written(reply) == expected


@pytest.mark.parametrize("reply, answer, ok", [
    ("Sky Digital", "Sky Digital", True),
    ("It was Sky Digital.", "Sky Digital", True),     # contains the written answer
    ("Sky", "Sky Digital", True),                     # F1 2/3 >= 0.5
    ("Digital Satellite", "Sky Digital", True),       # F1 1/2 = 0.5, at the edge
    ("ONdigital", "Sky Digital", False),
    ("unanswerable", "1981", False),
])
def test_round_trip_ok(reply, answer, ok):
    assert round_trip_ok(reply, answer) is ok


class ScriptedReader:
    """Writes a scripted reply per passage, then answers a question with a scripted reply."""

    model = "scripted"

    def __init__(self, written: dict[str, str], answers: dict[str, str]) -> None:
        self.written, self.answers, self.calls = written, answers, []

    def read_many(self, prompts):
        self.calls.append(prompts)
        return [self._read(p) for p in prompts]

    def _read(self, prompt: Prompt) -> Answer:
        passage = prompt.passages[0].passage_id
        text = self.written[passage] if prompt.task == WRITE_QUESTION else self.answers[passage]
        return Answer(text, 10, 5, 0.0, self.model)


def qa(question: str, answer: str) -> str:
    return json.dumps({"question": question, "answer": answer})


def passages(n: int) -> list[Passage]:
    return [Passage(f"p{i}", f"d{i}", 0, 40, f"Passage {i} text about a town.", f"Doc {i}") for i in range(n)]


def test_generate_keeps_what_survives_the_round_trip_and_counts_the_rest():
    written = {"p0": qa("Who founded the town?", "Pedro"), "p1": "What is the town?",  # unparsed
               "p2": qa("When was it founded?", "1565"), "p3": qa("Which river runs by it?", "the Matanzas")}
    answers = {"p0": "Pedro", "p2": "in 1600", "p3": "Matanzas River"}  # p2's reply disagrees: dropped
    reader = ScriptedReader(written, answers)
    result = generate(passages(4), reader, wanted=10)
    assert [(q.question, q.answer, q.passage.passage_id) for q in result.kept] == [
        ("Who founded the town?", "Pedro", "p0"), ("Which river runs by it?", "the Matanzas", "p3")]
    assert (result.attempted, result.unparsed, result.acceptance) == (4, 1, 0.5)
    asked_back = reader.calls[1]  # the round trip asks each parsed question with its passage alone
    assert [(p.question, p.task, [x.passage_id for x in p.passages]) for p in asked_back] == [
        ("Who founded the town?", "answer", ["p0"]), ("When was it founded?", "answer", ["p2"]),
        ("Which river runs by it?", "answer", ["p3"])]
    assert [q.qid for q in result.kept] == ["synth-0001", "synth-0002"]


def test_generate_stops_once_enough_are_kept():
    written = {f"p{i}": qa(f"Who founded town {i}?", f"Founder {i}") for i in range(12)}
    answers = {f"p{i}": f"Founder {i}" for i in range(12)}
    reader = ScriptedReader(written, answers)
    result = generate(passages(12), reader, wanted=4)  # batches of max(4, wanted) passages
    assert len(result.kept) == 4 and result.attempted == 4 and len(reader.calls) == 2


def test_the_write_request_asks_for_json_with_both_keys():
    prompt = Prompt("", (passages(1)[0],), task=WRITE_QUESTION)
    user = messages(prompt)[-1]["content"]
    assert user.startswith("Passage:\n[1] Doc 0\nPassage 0 text") and '{"question": "...", "answer": "..."}' in user
