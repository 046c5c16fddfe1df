"""The reader contract: every Reader backend passes the same behaviour tests.
A backend's test class inherits ``ReaderContract`` and provides one fixture,
``reader`` (Haystack's document-store test pattern)."""

from __future__ import annotations

import pytest

from lcrag.readers.base import Answer, Passage, Prompt
from lcrag.readers.fake import FakeReader

PASSAGE = Passage("c1", "etna.txt", 0, 88, "Mount Etna in Sicily is one of the most active volcanoes in the world.", "Etna")
QUESTION = "Which volcano in Sicily is very active?"


class ReaderContract:
    def test_answers_carry_text_tokens_latency_and_model(self, reader):
        answer = reader.read(Prompt(QUESTION, (PASSAGE,)))
        assert isinstance(answer, Answer)
        assert answer.text.strip()
        assert answer.prompt_tokens >= reader.count_tokens(PASSAGE.text)  # the passage is inside the prompt
        assert answer.completion_tokens >= 1 and answer.latency_ms >= 0
        assert answer.model == reader.model

    def test_more_context_costs_more_prompt_tokens(self, reader):
        short = reader.read(Prompt(QUESTION, (PASSAGE,)))
        longer = reader.read(Prompt(QUESTION, (PASSAGE, Passage("c2", "x.txt", 0, 40, "Lava flows can bury whole towns. " * 5, "Lava"))))
        assert longer.prompt_tokens > short.prompt_tokens

    def test_closed_book_prompt_is_answered(self, reader):
        answer = reader.read(Prompt("What is the capital of France?"))
        assert answer.prompt_tokens > 0 and answer.completion_tokens >= 1

    def test_read_many_keeps_order_and_length(self, reader):
        prompts = [Prompt(f"Question number {i}: what is {i} plus one?", (PASSAGE,)) for i in range(4)]
        answers = reader.read_many(prompts)
        assert len(answers) == 4
        singles = [reader.read(p) for p in prompts]
        assert [a.prompt_tokens for a in answers] == [s.prompt_tokens for s in singles]  # same prompts, same order

    def test_unanswerable_is_only_reported_when_allowed(self, reader):
        allowed = reader.read(Prompt("Who composed the Brandenburg concertos?", (PASSAGE,), allow_unanswerable=True))
        forbidden = reader.read(Prompt("Who composed the Brandenburg concertos?", (PASSAGE,), allow_unanswerable=False))
        assert isinstance(allowed.unanswerable, bool)
        assert forbidden.unanswerable is False

    def test_stream_hands_over_the_answer_in_pieces(self, reader):
        prompt = Prompt(QUESTION, (PASSAGE,))
        with reader.stream(prompt) as pieces:
            got = list(pieces)
        answer = pieces.answer
        assert isinstance(answer, Answer) and answer.text.strip()
        assert "".join(got) == answer.text  # the pieces are the answer, shaped as read shapes it
        assert answer.prompt_tokens == reader.read(prompt).prompt_tokens  # the same request
        assert answer.completion_tokens >= 1 and answer.model == reader.model

    def test_a_stream_closed_early_gives_no_answer_and_can_be_closed_again(self, reader):
        stream = reader.stream(Prompt(QUESTION, (PASSAGE,)))
        next(stream)
        stream.close()
        stream.close()
        assert stream.answer is None
        assert reader.read(Prompt(QUESTION, (PASSAGE,))).text  # the reader is free for the next read

    @pytest.mark.parametrize("text", ["", "word", "a longer sentence with several words in it."])
    def test_count_tokens_is_monotone(self, reader, text):
        assert reader.count_tokens(text) <= reader.count_tokens(text + " and more words")
        assert reader.count_tokens("") == 0


class TestFakeReader(ReaderContract):
    @pytest.fixture
    def reader(self):
        return FakeReader()


@pytest.mark.reader
class TestVLLMReader(ReaderContract):
    @pytest.fixture(scope="class")
    def reader(self, live_reader):
        from lcrag.readers.vllm import VLLMReader
        from tests.conftest import STATE

        client = VLLMReader(live_reader, home=STATE)
        yield client
        client.close()
