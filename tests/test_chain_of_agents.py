"""coa, Chain of Agents (Zhang et al. 2024), above the fake reader: the scope is
read whole in window-sized pieces in document order, each worker hands its notes
to the next, the manager answers from the notes alone, and the ledger is charged
for every call. An in-memory corpus stands in for an index (no encoder needed)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lcrag.core.types import Document
from lcrag.pipeline.config import StrategyConfig
from lcrag.pipeline.recording import RunLabels, ledger_row
from lcrag.pipeline.strategies import ALL, Question, Toolkit, get_strategy
from lcrag.pipeline.strategies.chain_of_agents import boundary_before, cut_pieces, notes_allowance, piece_room
from lcrag.readers.base import ANSWER, TAKE_NOTES, Passage
from lcrag.readers.fake import FakeReader
from lcrag.readers.prompts import CHOOSE_ONE, messages

BUDGET = 300
QUESTION = Question("q-lamp", "Which lighthouse keeper lit the lamp?", doc_scope=("harbour",))


def paragraph(i: int) -> str:
    return (f"Paragraph {i} tells of the harbour town and its keeper number {i}. " * 4).strip()


class StubCorpus:
    """What strategies need of an index, over documents held in memory (in corpus order)."""

    def __init__(self, docs: dict[str, str]) -> None:
        self.docs = {d: Document(d, text, title=d.title()) for d, text in docs.items()}
        self.corpus_tokens = sum(len(t.split()) for t in docs.values())

    def search(self, query, k=10, mode=None, level="chunk"):
        raise AssertionError("coa with a doc scope (or a corpus that fits) needs no search")

    def documents(self, doc_ids):
        return {d: self.docs[d] for d in doc_ids}

    def units(self, unit_ids):
        return {}

    def doc_ids(self):
        return list(self.docs)

    def doc_position(self, doc_id):
        return list(self.docs).index(doc_id)


class RecordingReader(FakeReader):
    """The fake reader, keeping its replies; it charges a latency and reports cached
    prompt tokens, and the manager of a multiple-choice question answers a letter."""

    def __init__(self, letter: str = "") -> None:
        super().__init__()
        self.replies = []
        self.letter = letter

    def read(self, prompt):
        answer = super().read(prompt)
        if self.letter and prompt.task == ANSWER:
            answer = replace(answer, text=self.letter, token_logprobs=())
        answer = replace(answer, latency_ms=1.5, cached_prompt_tokens=answer.prompt_tokens // 3)
        self.replies.append(answer)
        return answer


def long_document(paragraphs: int = 30) -> str:
    return "\n\n".join(paragraph(i) for i in range(paragraphs))


def run(docs: dict[str, str], question=QUESTION, budget=BUDGET, reader=None, **config):
    reader = reader or RecordingReader()
    tools = Toolkit(StubCorpus(docs), reader, StrategyConfig(**config), budget)
    return get_strategy("coa").run_batch([question], tools)[0], tools, reader


def test_coa_is_registered_and_among_all():
    assert "coa" in ALL and get_strategy("coa").name == "coa"


def test_a_document_three_budgets_long_is_read_whole_in_order_in_window_sized_pieces():
    text = long_document()
    tools_probe = Toolkit(StubCorpus({"harbour": text}), FakeReader(), StrategyConfig(), BUDGET)
    assert tools_probe.passage_tokens(Passage("harbour", "harbour", 0, len(text), text, "Harbour")) >= 3 * BUDGET

    outcome, tools, reader = run({"harbour": text})
    workers = [c for c in reader.calls if c.task == TAKE_NOTES]
    assert len(workers) >= 3 and outcome.calls == len(workers) + 1 == len(reader.calls)
    assert not outcome.context.cut
    passages = outcome.context.passages
    assert "".join(p.text for p in passages) == text  # nothing dropped, nothing repeated
    assert [p.start for p in passages] == [0, *(p.end for p in passages[:-1])]  # in document order
    assert passages == tuple(p for w in workers for p in w.passages)  # the workers read them in that order
    for p in passages:
        assert text[p.start : p.end] == p.text
        assert p.start == 0 or text[p.start - 2 : p.start] == "\n\n"  # split at paragraph breaks
    for _worker, reply in zip(workers, reader.replies):
        assert reply.prompt_tokens <= BUDGET  # the whole worker prompt fits the window
    assert outcome.context.tokens == sum(tools.passage_tokens(p) for p in passages)


def test_each_worker_is_handed_the_previous_workers_notes():
    _outcome, _, reader = run({"harbour": long_document()})
    workers = [c for c in reader.calls if c.task == TAKE_NOTES]
    assert workers[0].notes == ""
    for i in range(1, len(workers)):
        handed = reader.replies[i - 1].text
        assert handed and workers[i].notes == handed
        assert handed in messages(workers[i])[1]["content"]
    assert all(w.max_tokens == notes_allowance(Toolkit(None, FakeReader(), StrategyConfig(), BUDGET)) for w in workers)


def test_outcome_and_ledger_row_charge_the_sum_over_every_call():
    outcome, _tools, reader = run({"harbour": long_document()})
    replies = reader.replies
    assert outcome.calls == len(replies) >= 4
    assert outcome.prompt_tokens == sum(a.prompt_tokens for a in replies)
    assert outcome.completion_tokens == sum(a.completion_tokens for a in replies)
    assert outcome.reading_ms == pytest.approx(1.5 * len(replies))
    row = ledger_row(outcome, RunLabels("r", "i", "c", "fake-reader"))
    assert (row.calls, row.prompt_tokens, row.completion_tokens) == (outcome.calls, outcome.prompt_tokens, outcome.completion_tokens)
    assert row.cached_tokens == sum(a.cached_prompt_tokens for a in replies)
    assert row.context_cut is False and row.scope_read == 1.0  # every character of the scope was read
    assert row.used_ids == tuple(p.passage_id for p in outcome.context.passages)
    assert row.answer == replies[-1].text


def test_the_manager_reads_the_notes_and_the_question_but_not_the_document():
    text = long_document().replace("keeper number 13.", "keeper number 13. Zanzibar marmalade.", 1)
    outcome, _, reader = run({"harbour": text})
    manager = reader.calls[-1]
    assert manager.task == ANSWER and manager.passages == ()
    notes = reader.replies[-2].text
    assert manager.notes == notes
    chat = "\n".join(m["content"] for m in messages(manager))
    assert notes in chat and QUESTION.text in chat and chat.rstrip().endswith("Answer:")
    assert "Zanzibar" not in chat and "Zanzibar" in text
    assert not any(paragraph(i) in chat for i in range(30))
    assert outcome.answer.text == reader.replies[-1].text


def test_a_scope_that_fits_one_window_takes_two_calls():
    outcome, _, reader = run({"harbour": paragraph(1), "other": paragraph(2)}, question=replace(QUESTION, doc_scope=()))
    assert outcome.calls == 2 and [c.task for c in reader.calls] == [TAKE_NOTES, ANSWER]
    assert [p.passage_id for p in reader.calls[0].passages] == ["harbour", "other"]  # whole documents, corpus order
    assert outcome.context.retrieved_ids == ("harbour", "other") and not outcome.context.cut


def test_multiple_choice_keeps_the_options_and_the_letter_format_in_the_manager_prompt():
    options = ("the harbour keeper", "the baker", "nobody")
    question = replace(QUESTION, options=options)
    outcome, _, reader = run({"harbour": long_document(12)}, question=question, reader=RecordingReader(letter="A"))
    system, user = (m["content"] for m in messages(reader.calls[-1]))
    assert CHOOSE_ONE in system
    assert "Options:\nA. the harbour keeper\nB. the baker\nC. nobody" in user
    assert all(c.options == options for c in reader.calls)  # workers know what is asked too
    row = ledger_row(outcome, RunLabels("r", "i", "c", "fake-reader"), golds=("A",))
    assert row.choice == "A" and row.em == 1.0


def test_may_abstain_reaches_the_manager():
    tools = Toolkit(StubCorpus({"harbour": paragraph(1)}), FakeReader(), StrategyConfig(), BUDGET, may_abstain=True)
    off = Question("q-off", "Who composed the Brandenburg concertos?", doc_scope=("harbour",))
    outcome = get_strategy("coa").run_batch([off], tools)[0]
    assert all(c.allow_unanswerable for c in tools.reader.calls)
    assert outcome.answer.text == "unanswerable"


def test_several_questions_are_batched_worker_by_worker():
    class Batching(RecordingReader):
        def __init__(self):
            super().__init__()
            self.batches: list[int] = []

        def read_many(self, prompts):
            self.batches.append(len(prompts))
            return super().read_many(prompts)

    reader = Batching()
    tools = Toolkit(StubCorpus({"harbour": long_document(), "small": paragraph(2)}), reader, StrategyConfig(), BUDGET)
    long_q, short_q = QUESTION, replace(QUESTION, qid="q-small", doc_scope=("small",))
    outcomes = get_strategy("coa").run_batch([long_q, short_q], tools)
    assert [o.question.qid for o in outcomes] == ["q-lamp", "q-small"]
    assert outcomes[1].calls == 2 and reader.batches[0] == 2 and reader.batches[-1] == 2
    assert sum(reader.batches) == outcomes[0].calls + outcomes[1].calls


def test_a_paragraph_larger_than_a_window_is_split_at_sentences_never_dropping_text():
    text = " ".join(f"Sentence {i} about the lamp and the harbour keeper." for i in range(80))
    doc = Passage("d", "d", 0, len(text), text, "D")
    tools = Toolkit(None, FakeReader(), StrategyConfig(), BUDGET)
    pieces = cut_pieces([doc], 60, tools)
    flat = [p for piece in pieces for p in piece]
    assert "".join(p.text for p in flat) == text and len(pieces) >= 10
    assert all(sum(tools.passage_tokens(p) for p in piece) <= 60 for piece in pieces)
    assert all(p.text.rstrip().endswith(".") for p in flat)  # sentence ends, not mid-sentence


def test_whole_documents_are_packed_and_only_oversized_ones_split():
    tools = Toolkit(None, FakeReader(), StrategyConfig(), BUDGET)
    small = [Passage(d, d, 0, len(paragraph(i)), paragraph(i), d) for i, d in enumerate(["a", "b", "c"])]
    pieces = cut_pieces(small, 2 * tools.passage_tokens(small[0]) + 2, tools)
    assert [[p.passage_id for p in piece] for piece in pieces] == [["a", "b"], ["c"]]


@pytest.mark.parametrize("limit, expected", [(12, 11), (25, 23), (40, 23), (3, 3), (100, 45)])
def test_boundary_before_prefers_paragraphs_then_sentences_then_spaces(limit, expected):
    text = "Alpha bet\n\nGamma delt. Epsilon zeta eta theta"
    # 11: after the paragraph break; 23: after "delt. " (the break would keep under half);
    # 3: no boundary at all within it; 45: all of it
    assert boundary_before(text, limit) == expected


def test_tiny_budgets_still_give_each_piece_half_the_budget():
    tools = Toolkit(None, FakeReader(), StrategyConfig(), 40)
    assert piece_room(QUESTION, tools) == 20
    roomy = Toolkit(None, FakeReader(), StrategyConfig(), 4000)
    assert 4000 - 96 - 100 < piece_room(QUESTION, roomy) <= 4000 - 96
