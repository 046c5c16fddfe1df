"""Prompt templates shared by every reader, so strategies differ only in context."""

from __future__ import annotations

import re

from lcrag.readers.base import TAKE_NOTES, WRITE_QUESTION, Passage, Prompt

UNANSWERABLE = "unanswerable"

SYSTEM = (
    "You answer questions using only the given passages. "
    "Reply with the shortest possible answer: a few words, no explanation."
)
MAY_ABSTAIN = f"If the passages do not contain the answer, reply exactly: {UNANSWERABLE}"
SYSTEM_CLOSED_BOOK = "Answer the question with the shortest possible answer: a few words, no explanation."
CHOOSE_ONE = "The question lists options A, B, C, ...: reply with the letter of the correct option only."
CHOOSE_ALL = "The question lists options A, B, C, ...: reply with the letters of every correct option only (for example: B, D)."
SYSTEM_WRITE_QUESTION = "You write short factual quiz questions about a passage, each with its answer."
# JSON, because small readers drop a second reply line: asked for "Question: ... / Answer: ...",
# Qwen2.5-Coder-0.5B wrote the question alone for 145 of 150 passages, but filled both keys of
# the JSON object for 24 of 24 (synth.parse_written reads either form).
WRITE_QUESTION_REQUEST = (
    "Write one short factual question that the passage above answers, and its answer: a name, number, date or "
    'place of at most five words, copied from the passage. Reply with JSON only: {"question": "...", "answer": "..."}'
)
OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Chain of Agents (Zhang et al. 2024): workers read the text part by part, each handing its
# notes to the next; the manager answers from the last notes alone.
SYSTEM_WORKER = "You read one part of a long text and keep notes for answering a question about the whole text."
WORKER_REQUEST = (
    "Rewrite the notes so far, adding the evidence in these passages that is relevant to the question. "
    "Keep earlier evidence. Do not answer yet. Reply with the notes only."
)
NO_NOTES = "(none yet)"
SYSTEM_MANAGER = (
    "You answer questions using only the given notes, taken by readers of a text too long to read at once. "
    "Reply with the shortest possible answer: a few words, no explanation."
)
MAY_ABSTAIN_NOTES = f"If the notes do not contain the answer, reply exactly: {UNANSWERABLE}"


def render_passage(number: int, passage: Passage) -> str:
    header = f"[{number}] {passage.title}".rstrip()
    return f"{header}\n{passage.text}"


def render_passages(passages: tuple[Passage, ...]) -> str:
    return "\n\n".join(render_passage(i, p) for i, p in enumerate(passages, 1))


def render_question(prompt: Prompt) -> str:
    """The question, with its options listed as "A. ..." lines when it has any."""
    if not prompt.options:
        return f"Question: {prompt.question}"
    return f"Question: {prompt.question}\nOptions:\n{render_options(prompt.options)}"


def render_options(options) -> str:
    """``"A. first\nB. second"``: options lettered in order, each on one line."""
    return "\n".join(f"{OPTION_LETTERS[i]}. {' '.join(str(text).split())}" for i, text in enumerate(options))


def messages(prompt: Prompt) -> list[dict[str, str]]:
    """Chat messages for a prompt (system + user). The passages come first and
    everything that varies with the question last (the question, its options, and
    self-route's leave to decline), so prompts over the same passages share a prefix
    the server's prefix cache serves once: repeated questions on one document, and
    self-route's first pass after ``rag`` read the same passages."""
    if prompt.task == WRITE_QUESTION:
        user = f"Passage:\n{render_passages(prompt.passages)}\n\n{WRITE_QUESTION_REQUEST}"
        return [{"role": "system", "content": SYSTEM_WRITE_QUESTION}, {"role": "user", "content": user}]
    if prompt.task == TAKE_NOTES:  # a coa worker: the passages, then the notes handed on and the question
        user = (f"Passages:\n{render_passages(prompt.passages)}\n\nNotes so far:\n{prompt.notes or NO_NOTES}\n\n"
                f"{render_question(prompt)}\n{WORKER_REQUEST}")
        return [{"role": "system", "content": SYSTEM_WORKER}, {"role": "user", "content": user}]
    choose = (CHOOSE_ALL if prompt.multi_answer else CHOOSE_ONE) if prompt.options else ""
    if prompt.notes is not None and not prompt.passages:  # the coa manager: the notes alone, then the question
        system = " ".join(filter(None, (SYSTEM_MANAGER, choose)))
        abstain = f"{MAY_ABSTAIN_NOTES}\n" if prompt.allow_unanswerable else ""
        user = f"Notes:\n{prompt.notes or NO_NOTES}\n\n{abstain}{render_question(prompt)}\nAnswer:"
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]
    if not prompt.passages:
        system = " ".join(filter(None, (SYSTEM_CLOSED_BOOK, choose)))
        return [{"role": "system", "content": system}, {"role": "user", "content": f"{render_question(prompt)}\nAnswer:"}]
    system = " ".join(filter(None, (SYSTEM, choose)))
    abstain = f"{MAY_ABSTAIN}\n" if prompt.allow_unanswerable else ""
    user = f"Passages:\n{render_passages(prompt.passages)}\n\n{abstain}{render_question(prompt)}\nAnswer:"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


DECLINE_OPENINGS = ("not answerable ", "cannot be answered ", "no answer ")


def is_unanswerable(text: str) -> bool:
    """Whether a reply declines to answer (self-route's signal to fall back)."""
    words = re.sub(r"[^a-z ]", " ", text.lower()).split()
    opening = " ".join(words[:4]) + " "
    return UNANSWERABLE in words[:6] or opening.startswith(DECLINE_OPENINGS)
