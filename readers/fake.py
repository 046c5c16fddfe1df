"""A deterministic reader for unit tests above the reader (never for integration
tests or the demo). It answers with the first passage's first words, or
"unanswerable" when allowed and no passage contains a word of the question.
Its logprobs make a supported answer confident (0.95 per token) and an
unsupported one not (0.2), so confidence-based routing has something to read.
Asked to write a question, it asks about the passage's title and answers with
its first words. As a Chain-of-Agents worker it hands on the notes so far plus the
first words of the piece's first supporting (else first) passage; as the manager
(notes, no passages) it answers from the notes as from one passage. Streamed
(``stream``), the same reply comes word by word, ``piece_delay_s`` apart."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Generator, Sequence

from lcrag.readers.base import TAKE_NOTES, WRITE_QUESTION, Answer, Passage, Prompt, ReadStream
from lcrag.readers.prompts import UNANSWERABLE, messages

_WORD = re.compile(r"\w+")
_PIECE = re.compile(r"\s*\S+\s*$|\s*\S+")  # a word with the blanks before it (and after the last)


class FakeReader:
    model = "fake-reader"

    @classmethod
    def from_config(cls, config: object, home: object) -> FakeReader:
        """The ``fake`` backend (``reader.backend: fake``): tests above the reader only."""
        return cls()

    def __init__(self, answer_words: int = 3, piece_delay_s: float = 0.0) -> None:
        self.answer_words = answer_words
        self.piece_delay_s = piece_delay_s
        self.calls: list[Prompt] = []

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))

    def read(self, prompt: Prompt) -> Answer:
        self.calls.append(prompt)
        prompt_tokens = sum(self.count_tokens(m["content"]) for m in messages(prompt))
        if prompt.task == WRITE_QUESTION:
            first = prompt.passages[0]
            words = _WORD.findall(first.text)[: self.answer_words]
            text = json.dumps({"question": f"What does the passage on {first.title or first.doc_id} begin with?",
                               "answer": " ".join(words)})
            return Answer(text, prompt_tokens, self.count_tokens(text), 0.0, self.model)
        asked = {w.lower() for w in _WORD.findall(prompt.question) if len(w) > 3}
        passages = prompt.passages
        if prompt.notes is not None and not passages and prompt.task != TAKE_NOTES:  # the coa manager
            passages = (Passage("notes", "notes", 0, len(prompt.notes), prompt.notes),)
        supporting = [p for p in passages if asked & {w.lower() for w in _WORD.findall(p.text)}]
        if prompt.task == TAKE_NOTES:
            picked = (supporting or list(passages))[:1]
            words = _WORD.findall(picked[0].text)[: self.answer_words] if picked else []
            text = " ".join([prompt.notes or "", *words]).strip()
            return Answer(text, prompt_tokens, self.count_tokens(text), 0.0, self.model)
        if prompt.allow_unanswerable and not supporting:
            text = UNANSWERABLE
        elif passages:
            text = " ".join(_WORD.findall((supporting or list(passages))[0].text)[: self.answer_words])
        else:
            text = "unknown"
        per_token = math.log(0.95 if supporting or text == UNANSWERABLE else 0.2)
        logprobs = tuple(per_token for _ in range(max(1, self.count_tokens(text))))
        return Answer(text, prompt_tokens, self.count_tokens(text), 0.0, self.model, text == UNANSWERABLE,
                      token_logprobs=logprobs)

    def read_many(self, prompts: Sequence[Prompt]) -> list[Answer]:
        return [self.read(p) for p in prompts]

    def stream(self, prompt: Prompt) -> ReadStream:
        return ReadStream(self._pieces(prompt))

    def _pieces(self, prompt: Prompt) -> Generator[str, None, Answer]:
        answer = self.read(prompt)
        for piece in _PIECE.findall(answer.text):
            if self.piece_delay_s:
                time.sleep(self.piece_delay_s)
            yield piece
        return answer

    def healthy(self) -> bool:
        return True

    def close(self) -> None:
        pass
