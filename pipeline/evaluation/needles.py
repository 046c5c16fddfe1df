"""Needle in a haystack: made-up facts hidden at chosen depths of filler text.

One needle gives one question per (depth, length) cell: 15 with the default grid, too
few for a paired verdict. Several needles, each in its own stretch of the filler, give
the grid many independent questions; the ids (``niah{n}@d{depth}@L{length}``) keep the
cell, so the report still draws the depth x length heat map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lcrag.core.types import Document
from lcrag.pipeline.answer import Evidence, Question
from lcrag.pipeline.answer.scoring import normalize_answer
from lcrag.pipeline.evaluation.items import CorpusSpec, EvalDataError, EvalItem, EvalSet


@dataclass(frozen=True)
class Needle:
    """A made-up fact to hide, the question asking for it, and the short answer that
    exact match expects (invented names, so no reader knows it unaided)."""

    sentence: str
    question: str
    answer: str

    def __post_init__(self) -> None:
        if not (self.sentence.strip() and self.question.strip() and self.answer.strip()):
            raise EvalDataError("a needle needs a sentence, a question and an answer")
        if f" {normalize_answer(self.answer)} " not in f" {normalize_answer(self.sentence)} ":
            raise EvalDataError(f"needle answer {self.answer!r} is not in its sentence {self.sentence!r}")


NEEDLES: tuple[Needle, ...] = (
    # the usual first needle of needle-in-a-haystack tests
    Needle("The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.",
           "What is the best thing to do in San Francisco?",
           "eat a sandwich and sit in Dolores Park on a sunny day"),
    Needle("The password to the lighthouse on Karrow Island is bluefinch.",
           "What is the password to the lighthouse on Karrow Island?", "bluefinch"),
    Needle("The goat that the village of Orsk elected as its honorary mayor is called Pepper.",
           "What is the goat that the village of Orsk elected as its honorary mayor called?", "Pepper"),
    Needle("Captain Ruel Abernathy named his sailboat the Quiet Heron.",
           "What did Captain Ruel Abernathy name his sailboat?", "Quiet Heron"),
    Needle("The code to the storage room of the Fenwick Library is 4817.",
           "What is the code to the storage room of the Fenwick Library?", "4817"),
    Needle("The mascot of the Brightwater chess club is a purple owl named Juniper.",
           "What is the name of the Brightwater chess club's mascot?", "Juniper"),
    Needle("The secret ingredient in Marta Quill's lemon cake is cardamom.",
           "What is the secret ingredient in Marta Quill's lemon cake?", "cardamom"),
    Needle("The first dog to cross the Selwyn Glacier was a husky called Tamsin.",
           "What was the first dog to cross the Selwyn Glacier called?", "Tamsin"),
)


def insert_at_depth(words: Sequence[str], depth: int, sentence: str) -> str:
    """The haystack with ``sentence`` placed at the sentence end nearest to ``depth``
    percent of it (the earlier one on a tie; the very start for 0)."""
    if depth <= 0:
        return " ".join([sentence, *words])
    target = min(len(words), round(len(words) * depth / 100))
    ends = [i + 1 for i, word in enumerate(words) if word.endswith((".", "!", "?"))] or [target]
    cut = min(ends, key=lambda end: (abs(end - target), end))
    return " ".join([*words[:cut], sentence, *words[cut:]])


def haystack(words: Sequence[str], start: int, length: int) -> list[str]:
    """``length`` filler words from ``start``, wrapping round the end of the filler."""
    if not words:
        raise EvalDataError("the filler text has no words")
    return [words[(start + i) % len(words)] for i in range(length)]


def niah(folder: Path, limit: int | None = None, seed: int = 0,
         lengths: Sequence[int] = (500, 1000, 2000), depths: Sequence[int] = (0, 25, 50, 75, 100),
         needles: Sequence[Needle] = NEEDLES) -> EvalSet:
    """Every needle at every depth of every length (in words) of filler; one document
    and one question per cell. Needle ``n`` sits in its own stretch of the filler
    (from word ``n x max(lengths)``). Cells come needle by needle, so ``limit`` keeps
    whole grids of the first needles."""
    files = sorted(Path(folder).glob("*.txt"))
    if not files:
        raise EvalDataError(f"no .txt essays in {folder}; pass the folder of filler texts")
    if not needles:
        raise EvalDataError("niah needs at least one needle")
    words = " ".join(f.read_text(encoding="utf-8", errors="replace") for f in files).split()
    stride = max(lengths)
    cells = [(n, depth, length) for n in range(len(needles)) for length in lengths for depth in depths]
    items, corpora = [], {}
    for n, depth, length in cells[:limit] if limit else cells:
        needle = needles[n]
        key = f"niah{n}@d{depth}@L{length}"
        text = insert_at_depth(haystack(words, n * stride, length), depth, needle.sentence)
        corpora[key] = CorpusSpec(key, (Document(key, text, title="Essays", source=f"niah:{Path(folder).name}"),))
        at = text.find(needle.sentence)  # the evidence: the needle sentence where it was hidden
        evidence = (Evidence(key, needle.sentence, at, at + len(needle.sentence), "Essays"),)
        items.append(EvalItem(Question(key, needle.question, (key,), evidence=evidence), (needle.answer,), key))
    return EvalSet("niah", tuple(items), corpora)
