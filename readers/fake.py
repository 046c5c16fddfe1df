"""A deterministic reader for unit tests above the reader (never for integration
tests or the demo). It answers with the first passage's first words, or
"unanswerable" when allowed and no passage contains a word of the question."""

from __future__ import annotations

import re
from typing import Sequence

from lcrag.readers.base import Answer, Prompt
from lcrag.readers.prompts import UNANSWERABLE, messages

_WORD = re.compile(r"\w+")


class FakeReader:
    model = "fake-reader"

    def __init__(self, answer_words: int = 3) -> None:
        self.answer_words = answer_words
        self.calls: list[Prompt] = []

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))

    def read(self, prompt: Prompt) -> Answer:
        self.calls.append(prompt)
        asked = {w.lower() for w in _WORD.findall(prompt.question) if len(w) > 3}
        supporting = [p for p in prompt.passages if asked & {w.lower() for w in _WORD.findall(p.text)}]
        if prompt.allow_unanswerable and not supporting:
            text = UNANSWERABLE
        elif prompt.passages:
            text = " ".join(_WORD.findall((supporting or list(prompt.passages))[0].text)[: self.answer_words])
        else:
            text = "unknown"
        prompt_tokens = sum(self.count_tokens(m["content"]) for m in messages(prompt))
        return Answer(text, prompt_tokens, self.count_tokens(text), 0.0, self.model, text == UNANSWERABLE)

    def read_many(self, prompts: Sequence[Prompt]) -> list[Answer]:
        return [self.read(p) for p in prompts]

    def healthy(self) -> bool:
        return True

    def close(self) -> None:
        pass
