"""``lc``: long-context reading. The whole document(s) the question is about, or
the whole corpus when it fits, in original order; past the budget, keep the head
and the tail and cut the middle, and say so."""

from __future__ import annotations

from dataclasses import replace

from lcrag.core.errors import LcragError
from lcrag.pipeline.strategies.base import Context, ContextStrategy, Evidence, Question, Toolkit
from lcrag.readers.base import Passage


def scope_tokens(question: Question, tools: Toolkit) -> int:
    """Tokens of everything the question could be about: its documents when the
    question names them, else the whole corpus."""
    if question.doc_scope:
        docs = tools.corpus.documents(list(question.doc_scope))
        return sum(tools.passage_tokens(whole_document(d)) for d in docs.values())
    return tools.corpus.corpus_tokens


def lc_scope(question: Question, tools: Toolkit) -> list[str]:
    """Which documents to read, in corpus order."""
    if question.doc_scope:
        chosen = list(question.doc_scope)
    elif tools.corpus.corpus_tokens <= tools.budget:
        return tools.corpus.doc_ids()
    else:
        hits = tools.corpus.search(question.text, k=20, mode=tools.config.retrieval_mode, level="doc")
        docs = tools.corpus.documents([h.doc_id for h in hits])
        chosen, used = [], 0
        for hit in hits:  # best documents until the budget is full (at least one)
            if chosen and used >= tools.budget:
                break
            chosen.append(hit.doc_id)
            used += tools.passage_tokens(whole_document(docs[hit.doc_id]))
    return sorted(dict.fromkeys(chosen), key=tools.corpus.doc_position)


def whole_document(doc) -> Passage:
    return Passage(doc.doc_id, doc.doc_id, 0, len(doc.text), doc.text, doc.title)


def keep_within(passage: Passage, budget: int, tools: Toolkit, from_end: bool) -> Passage | None:
    """The longest head (or tail) of a passage that fits ``budget`` tokens."""
    overhead = tools.passage_tokens(replace(passage, text="", passage_id=passage.passage_id + "#0", end=passage.start))
    room = budget - overhead
    if room <= 0:
        return None
    n = tools.fitting_length(passage, room, from_end)
    if n == 0:
        return None
    if from_end:
        start = passage.end - n
        return Passage(f"{passage.passage_id}@{start}", passage.doc_id, start, passage.end, passage.text[-n:], passage.title, passage.score)
    return Passage(f"{passage.passage_id}@{passage.start}", passage.doc_id, passage.start, passage.start + n, passage.text[:n],
                   passage.title, passage.score)


def share_read(kept: list[Passage], scope: list[Passage]) -> float:
    """Characters of the scope the kept passages hold, as a share (1.0 for an empty scope)."""
    total = sum(p.end - p.start for p in scope)
    return min(1.0, sum(p.end - p.start for p in kept) / total) if total else 1.0


def cut_middle_passages(passages: list[Passage], budget: int, tools: Toolkit) -> tuple[list[Passage], bool]:
    """Keep whole passages from the front (half the budget) and from the back (the
    rest), trimming the passage where each side runs out; drop the middle."""
    if sum(tools.passage_tokens(p) for p in passages) <= budget:
        return passages, False
    head: list[Passage] = []
    tail: list[Passage] = []
    room = budget // 2
    front = 0
    while front < len(passages):
        cost = tools.passage_tokens(passages[front])
        if cost > room:
            part = keep_within(passages[front], room, tools, from_end=False)
            if part is not None:
                head.append(part)
                room -= tools.passage_tokens(part)
            break
        head.append(passages[front])
        room -= cost
        front += 1
    room += budget - budget // 2
    back = len(passages) - 1
    while back > front:
        cost = tools.passage_tokens(passages[back])
        if cost > room:
            break
        tail.insert(0, passages[back])
        room -= cost
        back -= 1
    if back >= front and room > 0:
        part = keep_within(passages[back], room, tools, from_end=True)
        if part is not None and (not head or part.start >= head[-1].end or part.doc_id != head[-1].doc_id):
            tail.insert(0, part)
    return head + tail, True


class LongContextStrategy(ContextStrategy):
    name = "lc"
    rank = 30  # place in "all" and the reports (registry order)

    def build_context(self, question: Question, tools: Toolkit) -> Context:
        doc_ids = lc_scope(question, tools)
        docs = tools.corpus.documents(doc_ids)
        passages = [whole_document(docs[d]) for d in doc_ids]
        kept, cut = cut_middle_passages(passages, tools.budget_for(question), tools)
        return Context(tuple(kept), sum(tools.passage_tokens(p) for p in kept), cut, tuple(doc_ids),
                       scope_read=share_read(kept, passages))


class ClosedBookStrategy(ContextStrategy):
    """No context at all: flags questions the model answers from its own weights,
    which no retrieval or long-context result should get credit for."""

    name = "closed-book"
    rank = 100  # place in "all" and the reports (registry order)
    control = True  # asked for by name, never part of "all"

    def build_context(self, question: Question, tools: Toolkit) -> Context:
        return Context((), 0, False, ())


class NoEvidenceError(LcragError, ValueError):
    """The oracle was asked a question without gold evidence, or evidence it cannot find."""


MAX_ID_CHARS = 300  # a qa-jsonl evidence string this short may name a document of the index


def evidence_passages(question: Question, tools: Toolkit) -> list[Passage]:
    """The question's gold evidence as passages, in the data set's order: a passage as
    given; a document id read whole from the index. A bare evidence string (no document
    named, as qa-jsonl lines may give) that is the id of a document in the index is that
    document, read whole; otherwise it is the passage's text."""
    maybe_ids = [e.text.strip() for e in question.evidence if not e.doc_id and len(e.text.strip()) <= MAX_ID_CHARS]
    named = [e.doc_id for e in question.evidence if e.whole_document]
    wanted = list(dict.fromkeys(named + maybe_ids))
    docs = tools.corpus.documents(wanted) if wanted else {}
    passages: dict[tuple, Passage] = {}
    for number, evidence in enumerate(question.evidence):
        if evidence.whole_document or (not evidence.doc_id and evidence.text.strip() in docs):
            doc_id = evidence.doc_id or evidence.text.strip()
            if doc_id not in docs:
                raise NoEvidenceError(f"question {question.qid}: its evidence names document {doc_id!r}, which is not "
                                      "in the index; correct the evidence or drop it")
            passage = whole_document(docs[doc_id])
        else:
            passage = _passage(evidence, number)
        passages.setdefault((passage.doc_id, passage.start, passage.end, passage.text), passage)
    return list(passages.values())


def _passage(evidence: Evidence, number: int) -> Passage:
    text = evidence.text
    if evidence.doc_id and evidence.start is not None:
        passage_id = f"{evidence.doc_id}@{evidence.start}"
    else:
        passage_id = f"{evidence.doc_id}#evidence{number}" if evidence.doc_id else f"evidence{number}"
    start = evidence.start if evidence.start is not None else 0
    end = evidence.end if evidence.end is not None else start + len(text)
    return Passage(passage_id, evidence.doc_id, start, end, text, evidence.title)


class OracleStrategy(ContextStrategy):
    """Only the question's gold evidence: a control, the ceiling of every strategy
    with this reader. Against rag it measures what retrieval loses; what it still gets
    wrong is the reader's limit. Asked only of questions whose data set marks evidence
    (``needs_evidence``): the evaluation skips the others rather than score them 0."""

    name = "oracle"
    rank = 110  # place in "all" and the reports (registry order)
    control = True
    needs_evidence = True

    def build_context(self, question: Question, tools: Toolkit) -> Context:
        if not question.evidence:
            raise NoEvidenceError(f"question {question.qid} carries no gold evidence: the oracle reads only a question's "
                                  "gold evidence: ask it in `lcrag eval` on a data set that marks evidence, or give "
                                  "the evidence (`lcrag ask --evidence`, the API's `evidence` field)")
        passages = evidence_passages(question, tools)
        kept, cut = cut_middle_passages(passages, tools.budget_for(question), tools)
        return Context(tuple(kept), sum(tools.passage_tokens(p) for p in kept), cut, tuple(p.passage_id for p in passages))
