"""The reader role: read a question with a context, answer, and say what it cost.

Token counts come from the reader itself (the server's ``usage``), latency is
measured around the call, so every strategy is charged by the same meter.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from lcrag.core.errors import LcragError


@dataclass(frozen=True)
class Passage:
    """A piece of the corpus placed in a prompt, citable by document and offsets."""

    passage_id: str  # chunk id, unit id or document id
    doc_id: str
    start: int
    end: int
    text: str
    title: str = ""
    score: float = 0.0


ANSWER, WRITE_QUESTION, TAKE_NOTES = "answer", "write-question", "take-notes"
TASKS = (ANSWER, WRITE_QUESTION, TAKE_NOTES)


@dataclass(frozen=True)
class Prompt:
    """What the reader is asked: the question, the passages in reading order, and
    whether "unanswerable" is an allowed reply (self-route's first pass)."""

    question: str
    passages: tuple[Passage, ...] = ()
    allow_unanswerable: bool = False
    note: str = ""  # e.g. "[... middle cut ...]" markers are inside passages; this is free text for logs
    options: tuple[str, ...] = ()  # multiple choice: the option texts, listed as A., B., ... after the question
    multi_answer: bool = False  # multiple choice with possibly several right options
    task: str = "answer"  # "answer" the question, or "write-question": write a question and its answer about the passages
    max_tokens: int = 0  # reply tokens; 0 = the reader's configured answer length
    # Chain of Agents (coa): the notes handed on by the previous reader. With task
    # "take-notes" the reply is the notes updated with the passages (a worker); with
    # task "answer" and no passages the question is answered from the notes alone (the
    # manager). None: no notes in play (every other prompt).
    notes: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {self.max_tokens}")


@dataclass(frozen=True)
class Answer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    model: str
    unanswerable: bool = False
    # Where the server reports them: the log-probability of each answer token, the
    # first answer token's most likely alternatives (token, logprob), and the prompt
    # tokens served from the prefix cache.
    token_logprobs: tuple[float, ...] = ()
    first_token_top: tuple[tuple[str, float], ...] = ()
    cached_prompt_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.prompt_tokens < 0 or self.completion_tokens < 0:
            raise ValueError(f"token counts must be >= 0, got {self.prompt_tokens}/{self.completion_tokens}")

    @property
    def confidence(self) -> float | None:
        """How sure the reader was of this reply (see ``mean_token_probability``);
        None when the server gave no logprobs."""
        return mean_token_probability(self.token_logprobs)


def mean_token_probability(logprobs: Sequence[float]) -> float | None:
    """The reply's confidence: the geometric mean of its tokens' probabilities,
    exp(mean logprob), in [0, 1]; None without logprobs.

    Why the mean and not the minimum: it is length-normalised, so a one-token
    answer and a sentence are on one scale, and one odd token (a comma, a
    capital) in a long reply does not decide it alone."""
    values = [float(v) for v in logprobs]
    if not values:
        return None
    if any(math.isnan(v) or v > 1e-6 for v in values):
        raise ValueError(f"logprobs must be <= 0 and not NaN, got {values}")
    return min(1.0, math.exp(sum(values) / len(values)))


class ReaderError(LcragError, RuntimeError):
    """The reader cannot be reached or refused the request; the message names the fix."""


class Reader(Protocol):
    """Answers prompts. ``read_many`` keeps several in flight for batch work."""

    model: str

    def count_tokens(self, text: str) -> int: ...

    def read(self, prompt: Prompt) -> Answer: ...

    def read_many(self, prompts: Sequence[Prompt]) -> list[Answer]: ...


class ReadStream:
    """One read as the reader produces it: iterate for the answer's text in pieces
    (joined, they are ``answer.text``), then ``answer`` holds the whole ``Answer``
    with the server's token counts. ``close`` stops early and ends the request
    upstream (the server aborts it); it must be called from the thread that
    iterates, and is safe to call twice or after the end. Use it in ``with``."""

    def __init__(self, pieces: Generator[str, None, Answer]) -> None:
        self._pieces = pieces
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration as done:
            self.answer = done.value
            raise StopIteration from None

    def close(self) -> None:
        self._pieces.close()

    def __enter__(self) -> ReadStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StreamingReader(Reader, Protocol):
    """A reader that can also hand its answer over as it is produced (the
    OpenAI-compatible endpoint relays it to chat clients). Whatever the strategy
    does with the ``Answer`` is the same as after ``read``."""

    def stream(self, prompt: Prompt) -> ReadStream: ...
