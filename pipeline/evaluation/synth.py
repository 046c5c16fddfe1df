"""Questions for a corpus that has no gold answers: the reader writes them.

``synth:N`` samples passages from an index, spread over its documents (round
robin over documents in a seeded order, one random chunk each), and asks the
reader for one question and its short answer per passage. A question is kept
only when it survives the round trip: asked again with that passage alone, the
reader's answer contains the written answer (or overlaps it by F1 >= 0.5). That
filter drops questions the passage does not answer and answers the reader made
up; the acceptance rate says how much of what it wrote held up.

Sampling continues until N questions are kept or ``MAX_ATTEMPTS_PER_QUESTION``
passages per wanted question were tried. The kept set is written as ``qa-jsonl``
with ``"synthetic": true`` and the passage as evidence (what the ``oracle`` control
reads), for a user to review, edit and rerun; reports label such a set "synthetic".
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lcrag.core.files import write_text_atomic
from lcrag.core.types import Chunk, Document
from lcrag.pipeline.evaluation.items import SYNTHETIC
from lcrag.pipeline.scoring.metrics import answer_recall, token_f1
from lcrag.readers.base import WRITE_QUESTION, Passage, Prompt, Reader

MAX_ATTEMPTS_PER_QUESTION = 5  # Qwen2.5-Coder-0.5B kept 8 of 24 on SQuAD's articles: a third, with room
MIN_PASSAGE_WORDS = 25  # shorter chunks (headings, tables of contents) rarely answer a question
MAX_ANSWER_WORDS = 12
WRITE_TOKENS = 96  # room for a question line and an answer line

_QUESTION = re.compile(r"question\s*[:\-]\s*(.+)", re.IGNORECASE)
_ANSWER = re.compile(r"answer\s*[:\-]\s*(.+)", re.IGNORECASE)


@dataclass(frozen=True)
class SynthQuestion:
    qid: str
    question: str
    answer: str
    passage: Passage


@dataclass(frozen=True)
class SynthResult:
    kept: tuple[SynthQuestion, ...]
    attempted: int  # passages the reader wrote a question for
    unparsed: int  # replies with no question and answer in them

    @property
    def acceptance(self) -> float:
        return len(self.kept) / self.attempted if self.attempted else 0.0


def parse_written(reply: str) -> tuple[str, str] | None:
    """(question, answer) from a JSON object with "question" and "answer" (what the
    prompt asks for), or from a "Question: ... / Answer: ..." reply (either order,
    other lines ignored), or a bare question line ending in "?" followed by an
    answer line. None when either is missing, the question does not end in "?",
    or the answer is long or repeats the question."""
    question, answer = _json_pair(reply)
    if question is None:
        lines = [line.strip().strip("*").strip() for line in reply.strip().splitlines() if line.strip()]
        for line in lines:
            if question is None and (m := _QUESTION.match(line)):
                question = m.group(1).strip(" *")
            elif answer is None and (m := _ANSWER.match(line)):
                answer = m.group(1).strip(" *")
        if question is None and len(lines) >= 2 and lines[0].endswith("?"):
            question, answer = lines[0], answer or lines[1]
    if not question or not answer:
        return None
    answer = answer.strip().rstrip(".").strip()
    if not question.endswith("?") or len(question.split()) < 3 or not answer or len(answer.split()) > MAX_ANSWER_WORDS:
        return None
    if answer.lower() in question.lower():
        return None
    return question, answer


def _json_pair(reply: str) -> tuple[str | None, str | None]:
    """The "question" and "answer" of the first JSON object in a reply (code fences and
    text around it allowed); (None, None) when there is none."""
    start = reply.find("{")
    while start != -1:
        try:
            data, _ = json.JSONDecoder().raw_decode(reply, start)
        except ValueError:
            start = reply.find("{", start + 1)
            continue
        if isinstance(data, dict) and isinstance(data.get("question"), str) and data.get("answer") is not None:
            return data["question"].strip(), str(data["answer"]).strip()
        return None, None
    return None, None


def round_trip_ok(reply: str, answer: str) -> bool:
    """The reader, given the passage alone, said what the written answer says."""
    return answer_recall(reply, answer) == 1.0 or token_f1(reply, answer) >= 0.5


def sample_passages(chunks: Sequence[Chunk], documents: dict[str, Document], n: int, seed: int = 0) -> list[Passage]:
    """Up to ``n`` passages, spread over documents: documents in a seeded order, one
    random unused chunk of at least ``MIN_PASSAGE_WORDS`` words from each per round."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = random.Random(seed)
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in sorted(chunks, key=lambda c: (c.doc_id, c.start, c.chunk_id)):
        doc = documents.get(chunk.doc_id)
        if doc is not None and len(doc.text[chunk.start:chunk.end].split()) >= MIN_PASSAGE_WORDS:
            by_doc.setdefault(chunk.doc_id, []).append(chunk)
    for pool in by_doc.values():
        rng.shuffle(pool)
    order = sorted(by_doc)
    rng.shuffle(order)
    picked: list[Passage] = []
    while len(picked) < n and any(by_doc[d] for d in order):
        for doc_id in order:
            if by_doc[doc_id] and len(picked) < n:
                chunk, doc = by_doc[doc_id].pop(), documents[doc_id]
                picked.append(Passage(chunk.chunk_id, doc_id, chunk.start, chunk.end, doc.text[chunk.start:chunk.end], doc.title))
    return picked


def generate(passages: Sequence[Passage], reader: Reader, wanted: int,
             progress: Callable[[int], None] = lambda n: None) -> SynthResult:
    """Write a question per passage, in batches, until ``wanted`` survive the round trip
    (see the module doc) or the passages run out."""
    kept: list[SynthQuestion] = []
    attempted = unparsed = 0
    batch = max(4, wanted)
    for start in range(0, len(passages), batch):
        if len(kept) >= wanted:
            break
        group = list(passages[start:start + batch])
        written = reader.read_many([Prompt("", (p,), task=WRITE_QUESTION, max_tokens=WRITE_TOKENS) for p in group])
        attempted += len(group)
        parsed = [(p, parse_written(w.text)) for p, w in zip(group, written)]
        unparsed += sum(1 for _, qa in parsed if qa is None)
        candidates = [(p, qa) for p, qa in parsed if qa is not None]
        replies = reader.read_many([Prompt(qa[0], (p,)) for p, qa in candidates])
        for (passage, (question, answer)), reply in zip(candidates, replies):
            if round_trip_ok(reply.text, answer) and len(kept) < wanted:
                kept.append(SynthQuestion(f"synth-{len(kept) + 1:04d}", question, answer, passage))
        progress(len(group))
    return SynthResult(tuple(kept), attempted, unparsed)


def to_qa_jsonl(result: SynthResult, path: Path) -> Path:
    """The kept questions as ``qa-jsonl`` lines (atomically written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({
        "id": q.qid, "question": q.question, "answers": [q.answer], SYNTHETIC: True,
        "evidence": {"doc_id": q.passage.doc_id, "chunk_id": q.passage.passage_id, "start": q.passage.start,
                     "end": q.passage.end, "text": q.passage.text, "title": q.passage.title},
    }, ensure_ascii=False) for q in result.kept]
    return write_text_atomic(path, "".join(line + "\n" for line in lines))
