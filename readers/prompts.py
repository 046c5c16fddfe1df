"""Prompt templates shared by every reader, so strategies differ only in context."""

from __future__ import annotations

import re

from lcrag.readers.base import Passage, Prompt

UNANSWERABLE = "unanswerable"

SYSTEM = (
    "You answer questions using only the given passages. "
    "Reply with the shortest possible answer: a few words, no explanation."
)
SYSTEM_MAY_ABSTAIN = SYSTEM + f" If the passages do not contain the answer, reply exactly: {UNANSWERABLE}"
SYSTEM_CLOSED_BOOK = "Answer the question with the shortest possible answer: a few words, no explanation."


def render_passage(number: int, passage: Passage) -> str:
    header = f"[{number}] {passage.title}".rstrip()
    return f"{header}\n{passage.text}"


def render_passages(passages: tuple[Passage, ...]) -> str:
    return "\n\n".join(render_passage(i, p) for i, p in enumerate(passages, 1))


def messages(prompt: Prompt) -> list[dict[str, str]]:
    """Chat messages for a prompt (system + user)."""
    if not prompt.passages:
        return [{"role": "system", "content": SYSTEM_CLOSED_BOOK}, {"role": "user", "content": f"Question: {prompt.question}\nAnswer:"}]
    system = SYSTEM_MAY_ABSTAIN if prompt.allow_unanswerable else SYSTEM
    user = f"Passages:\n{render_passages(prompt.passages)}\n\nQuestion: {prompt.question}\nAnswer:"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def is_unanswerable(text: str) -> bool:
    """Whether a reply declines to answer (self-route's signal to fall back)."""
    words = re.sub(r"[^a-z ]", " ", text.lower()).split()
    return UNANSWERABLE in words[:6] or " ".join(words[:4]) in ("not answerable", "cannot be answered", "no answer")
