"""``coa``: Chain of Agents (Zhang et al., NeurIPS 2024).

The scope ``lc`` would read (``lc_scope``), whole and in corpus order, is split
into window-sized pieces. Workers read the pieces in order, one reader call each:
a worker sees its piece, the question and the notes the previous worker handed on,
and replies with the notes updated (the evidence relevant to the question so far).
A manager call then answers the question from the final notes alone. Nothing is
cut: every character of the scope is read by some worker.

Pieces: each worker prompt (instructions + question + notes allowance + piece)
fits ``tools.budget``, counted with the toolkit's own token arithmetic. Whole
documents are packed while they fit; a document larger than a window is split at
the last paragraph break that fits, else a line break, a sentence end, a space,
and only as a last resort inside a word. On toy budgets, where the fixed part
alone would leave less than half the budget, a piece gets half the budget (the
instructions then ride in the prompt overhead the budget already excludes, as
in every other strategy's prompt).

The outcome is charged for every call (pieces + 1): prompt, cached and completion
tokens and reading time summed; its context is every passage read."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import replace

from lcrag.pipeline.strategies.base import Context, Outcome, Question, Toolkit
from lcrag.pipeline.strategies.long_context import lc_scope, share_read, whole_document
from lcrag.pipeline.strategies.ordering import longest_prefix
from lcrag.readers.base import TAKE_NOTES, Answer, Passage, Prompt
from lcrag.readers.prompts import messages

# Where a piece may end, best first: a paragraph break, a line break, a sentence end, a space.
BOUNDARIES = (re.compile(r"\n[ \t]*\n\s*"), re.compile(r"\n\s*"), re.compile(r"(?<=[.!?])\s+"), re.compile(r"\s+"))


def notes_allowance(tools: Toolkit) -> int:
    """Tokens the notes may take: configured, at most a quarter of the budget."""
    return max(1, min(tools.config.coa_notes_tokens, tools.budget // 4))


def worker_prompt(question: Question, piece: Sequence[Passage], notes: str, tools: Toolkit) -> Prompt:
    return Prompt(question.text, tuple(piece), tools.may_abstain, options=question.options,
                  multi_answer=question.multi_answer, task=TAKE_NOTES, max_tokens=notes_allowance(tools), notes=notes)


def manager_prompt(question: Question, notes: str, tools: Toolkit) -> Prompt:
    return replace(question.prompt((), tools.may_abstain), notes=notes)


def piece_room(question: Question, tools: Toolkit) -> int:
    """Tokens of passages one worker prompt has room for."""
    fixed = sum(tools.reader.count_tokens(m["content"]) for m in messages(worker_prompt(question, (), "", tools)))
    return max(tools.budget - fixed - notes_allowance(tools), tools.budget // 2, 1)


def boundary_before(text: str, limit: int, fallback_only: bool = False) -> int:
    """Where to end a head of at most ``limit`` characters: after the last paragraph
    break within it, else the last line break, sentence end or space (each only if
    it keeps at least half of ``limit``; a space at any length), else ``limit``."""
    if limit >= len(text):
        return len(text)
    levels = BOUNDARIES[:1] if fallback_only else BOUNDARIES
    for i, pattern in enumerate(levels):
        ends = [m.end() for m in pattern.finditer(text, 0, limit + 1) if 0 < m.end() <= limit]
        last_level = i == len(BOUNDARIES) - 1
        if ends and (ends[-1] * 2 >= limit or last_level or fallback_only):
            return ends[-1]
    return 0 if fallback_only else limit


def part(passage: Passage, start: int, end: int) -> Passage:
    """The characters [start, end) of a document passage, citable by offsets."""
    if start == passage.start and end == passage.end:
        return passage
    offset = start - passage.start
    return Passage(f"{passage.doc_id}@{start}", passage.doc_id, start, end,
                   passage.text[offset : offset + end - start], passage.title, passage.score)


def fitting_head(passage: Passage, room: int, tools: Toolkit, paragraphs_only: bool = False) -> Passage | None:
    """The longest head of ``passage`` ending at a good boundary whose rendered cost
    fits ``room`` tokens; None when none does (or, with ``paragraphs_only``, when
    no paragraph break does)."""
    overhead = tools.passage_tokens(replace(passage, text="", passage_id=passage.passage_id + "#0", end=passage.start))
    slack = 0
    while room - overhead - slack > 0:
        n = tools.fitting_length(passage, room - overhead - slack, from_end=False)
        cut = boundary_before(passage.text, n, paragraphs_only) if n else 0
        if cut == 0:
            return None
        head = part(passage, passage.start, passage.start + cut)
        excess = tools.passage_tokens(head) - room
        if excess <= 0:
            return head
        slack += excess  # rendering the title and number cost more than counted apart
    return None


def cut_pieces(passages: Sequence[Passage], room: int, tools: Toolkit) -> list[list[Passage]]:
    """The passages, in order and without a character dropped, as pieces of at most
    ``room`` tokens each (see the module docstring for where pieces end)."""
    pieces: list[list[Passage]] = []
    current: list[Passage] = []
    used = 0
    queue = list(passages)
    while queue:
        passage = queue.pop(0)
        cost = tools.passage_tokens(passage)
        if used + cost <= room:
            current.append(passage)
            used += cost
            continue
        head = None
        if cost > room:  # too large for any window: split it, filling this piece first at a paragraph break
            if current:
                head = fitting_head(passage, room - used, tools, paragraphs_only=True)
            if head is None:
                if current:
                    pieces.append(current)
                    current, used = [], 0
                head = fitting_head(passage, room, tools)
            if head is None:  # not even a word fits: take one character and move on
                head = part(passage, passage.start, passage.start + 1)
            current.append(head)
            queue.insert(0, part(passage, head.end, passage.end))
        else:  # fits a fresh window whole: keep it whole
            queue.insert(0, passage)
        pieces.append(current)
        current, used = [], 0
    if current:
        pieces.append(current)
    return pieces


def within_allowance(answer: Answer, tools: Toolkit) -> str:
    """The worker's notes, cut to the allowance where the reply ran past it."""
    notes, allowance = answer.text.strip(), notes_allowance(tools)
    if answer.completion_tokens > allowance and tools.reader.count_tokens(notes) > allowance:
        notes = notes[: longest_prefix(notes, allowance, tools.reader.count_tokens)].rstrip()
    return notes


def summed_cached(answers: Sequence[Answer]) -> int | None:
    known = [a.cached_prompt_tokens for a in answers if a.cached_prompt_tokens is not None]
    return sum(known) if known else None


class ChainOfAgentsStrategy:
    """Chain of agents: lc's scope read whole, window by window, answered from the notes."""

    name = "coa"
    rank = 90  # place in "all" and the reports (registry order)

    def run_batch(self, questions: Sequence[Question], tools: Toolkit) -> list[Outcome]:
        """Worker i of every question is read in one batch, then every manager."""
        plans, contexts = [], []
        for question in questions:
            started = time.perf_counter()
            doc_ids = lc_scope(question, tools)
            docs = tools.corpus.documents(doc_ids)
            scope = [whole_document(docs[d]) for d in doc_ids]
            pieces = cut_pieces(scope, piece_room(question, tools), tools)
            passages = tuple(p for piece in pieces for p in piece)
            plans.append(pieces)
            contexts.append(Context(passages, sum(tools.passage_tokens(p) for p in passages), False, tuple(doc_ids),
                                    (time.perf_counter() - started) * 1000, scope_read=share_read(list(passages), scope)))
        notes = [""] * len(questions)
        answers: list[list[Answer]] = [[] for _ in questions]
        for step in range(max((len(p) for p in plans), default=0)):
            active = [i for i, pieces in enumerate(plans) if step < len(pieces)]
            replies = tools.reader.read_many(
                [worker_prompt(questions[i], plans[i][step], notes[i], tools) for i in active])
            for i, reply in zip(active, replies):
                answers[i].append(reply)
                notes[i] = within_allowance(reply, tools)
        finals = tools.reader.read_many([manager_prompt(q, n, tools) for q, n in zip(questions, notes)])
        outcomes = []
        for question, context, calls, final in zip(questions, contexts, answers, finals):
            every = [*calls, final]
            outcomes.append(Outcome(
                question=question,
                strategy=self.name,
                route=self.name,
                answer=replace(final, cached_prompt_tokens=summed_cached(every)),  # the ledger reads cached tokens here
                context=context,
                prompt_tokens=sum(a.prompt_tokens for a in every),
                completion_tokens=sum(a.completion_tokens for a in every),
                reading_ms=sum(a.latency_ms for a in every),
                retrieval_ms=context.retrieval_ms,
                calls=len(every),
                route_steps=(self.name,),
            ))
        return outcomes
