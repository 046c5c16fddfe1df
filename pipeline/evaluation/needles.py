"""Needle in a haystack: made-up facts hidden at chosen depths of filler text.

``niah``: one needle gives one question per (depth, length) cell: 15 with the default
grid, too few for a paired verdict. Several needles, each in its own stretch of the
filler, give the grid many independent questions; each question carries its cell (needle
depth and haystack length, recorded as ledger columns), so the report still draws the
depth x length heat map. Ids name the cell too (``niah{n}@d{depth}@L{length}``): one a cell.

``niah-agg``: aggregation questions. Each question hides two (or more) made-up facts of
one kind at different depths of one haystack ("The barge Arabrin of the Quorvell fleet
carries 14 crates of salt." at 10 %, "The barge Belethorn ..." at 60 %) and asks what
only both together answer: which carries more (the answer is a name, so a reader that
saw one fact is right by chance only), or how many together (a number none of the facts
states). Ids are ``niahagg{n}@d{d1}@L{length}@d{d2}``; each question carries its facts'
depths in the order it names them: the report's heat map places it at the first.

Lengths are words of filler; ``parse_lengths`` also takes thousands of reader tokens
(``8k``), converted at ``WORDS_PER_TOKEN`` (approximate: English prose runs about 1.3
reader tokens a word; Qwen2.5's tokenizer gives 1.22-1.26 on the essays).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lcrag.core.types import Document
from lcrag.pipeline.evaluation.items import CorpusSpec, EvalDataError, EvalItem, EvalSet
from lcrag.pipeline.ledger.rows import EXACT
from lcrag.pipeline.scoring.metrics import normalize_answer
from lcrag.pipeline.strategies import Evidence, Question


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

# ------------------------------------------------------------------ lengths

WORDS_PER_TOKEN = 0.75
"""Words of English prose per reader token, to turn a ``k`` length into words: an
approximation (prose runs about 1.3 tokens a word; Qwen2.5's tokenizer counts 1.22-1.26
on the Paul Graham essays, so a ``32k`` haystack is about 30,000 tokens)."""
TOKENS_PER_K = 1000  # "8k" = 8,000 reader tokens (not 8,192: the haystack must leave room for the prompt)
_LENGTH = re.compile(r"^(\d+(?:\.\d+)?)(k?)$")


def length_in_words(spec: str | int) -> int:
    """A haystack length in words: a whole number of words (``6000``) or thousands of
    reader tokens (``8k`` -> 6,000 words at ``WORDS_PER_TOKEN``; approximate)."""
    if isinstance(spec, bool):
        raise EvalDataError(f"a haystack length must be words (6000) or thousands of tokens (8k), got {spec!r}")
    if isinstance(spec, int):
        words = spec
    else:
        found = _LENGTH.match(str(spec).strip().lower())
        if not found or (not found.group(2) and "." in found.group(1)):
            raise EvalDataError(f"a haystack length must be words (6000) or thousands of tokens (8k), got {spec!r}")
        number = float(found.group(1))
        words = round(number * TOKENS_PER_K * WORDS_PER_TOKEN) if found.group(2) else int(number)
    if words < 1:
        raise EvalDataError(f"a haystack length must be at least one word, got {spec!r}")
    return words


def parse_lengths(spec: str | Sequence[str | int]) -> tuple[int, ...]:
    """Haystack lengths in words from ``"500,1000,2000"`` (words), ``"8k,16k,32k"``
    (thousands of reader tokens, approximate: see ``length_in_words``) or a sequence
    of either; distinct, in the order given."""
    parts = [p for p in spec.split(",") if p.strip()] if isinstance(spec, str) else list(spec)
    if not parts:
        raise EvalDataError(f"no haystack lengths in {spec!r}; give e.g. 8k,16k,32k or 500,1000")
    lengths = tuple(length_in_words(p) for p in parts)
    if len(set(lengths)) != len(lengths):
        raise EvalDataError(f"haystack lengths repeat in {spec!r} (in words: {', '.join(map(str, lengths))})")
    return lengths


# ------------------------------------------------------------------ haystacks


def _cut(words: Sequence[str], depth: int) -> int:
    """The word index a sentence placed at ``depth`` percent goes before: the sentence end
    nearest to that depth (the earlier one on a tie; the very start for 0)."""
    if depth <= 0:
        return 0
    target = min(len(words), round(len(words) * depth / 100))
    ends = [i + 1 for i, word in enumerate(words) if word.endswith((".", "!", "?"))] or [target]
    return min(ends, key=lambda end: (abs(end - target), end))


def insert_at_depth(words: Sequence[str], depth: int, sentence: str) -> str:
    """The haystack with ``sentence`` placed at the sentence end nearest to ``depth``
    percent of it (the earlier one on a tie; the very start for 0)."""
    cut = _cut(words, depth)
    return " ".join([*words[:cut], sentence, *words[cut:]])


def insert_all(words: Sequence[str], placed: Sequence[tuple[int, str]]) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The haystack with each ``(depth, sentence)`` placed as ``insert_at_depth`` places
    one (depths measured on the filler alone), and each sentence's character offsets
    in it, in the order given. Sentences at the same cut keep the order given."""
    cuts = [_cut(words, depth) for depth, _ in placed]
    order = sorted(range(len(placed)), key=lambda i: (cuts[i], i))
    pieces: list[str] = []
    at: dict[int, int] = {}  # piece index of each sentence
    previous = 0
    for i in order:
        pieces.extend(words[previous:cuts[i]])
        at[len(pieces)] = i
        pieces.append(placed[i][1])
        previous = cuts[i]
    pieces.extend(words[previous:])
    spans: list[tuple[int, int]] = [(0, 0)] * len(placed)
    offset = 0
    for number, piece in enumerate(pieces):
        if number in at:
            spans[at[number]] = (offset, offset + len(piece))
        offset += len(piece) + 1
    return " ".join(pieces), tuple(spans)


def haystack(words: Sequence[str], start: int, length: int) -> list[str]:
    """``length`` filler words from ``start``, wrapping round the end of the filler."""
    if not words:
        raise EvalDataError("the filler text has no words")
    return [words[(start + i) % len(words)] for i in range(length)]


def filler_words(folder: Path) -> list[str]:
    """The words of every ``.txt`` essay in ``folder``, in name order."""
    files = sorted(Path(folder).glob("*.txt"))
    if not files:
        raise EvalDataError(f"no .txt essays in {folder}; pass the folder of filler texts")
    return " ".join(f.read_text(encoding="utf-8", errors="replace") for f in files).split()


def niah(folder: Path, limit: int | None = None, seed: int = 0,
         lengths: Sequence[int | str] = (500, 1000, 2000), depths: Sequence[int] = (0, 25, 50, 75, 100),
         needles: Sequence[Needle] = NEEDLES, questions: int | None = None) -> EvalSet:
    """Every needle at every depth of every length (in words, or ``8k`` tokens: see
    ``parse_lengths``) of filler; one document and one question per cell. ``questions``
    keeps the first needles only. Needle ``n`` sits in its own stretch of the filler
    (from word ``n x max(lengths)``). Cells come needle by needle, so ``limit`` keeps
    whole grids of the first needles."""
    lengths = parse_lengths(lengths)
    if questions is not None:
        if not 1 <= questions <= len(needles):
            raise EvalDataError(f"niah has {len(needles)} needles, so 1 to {len(needles)} questions per cell; got "
                                f"{questions} (niah-agg makes as many as asked)")
        needles = needles[:questions]
    if not needles:
        raise EvalDataError("niah needs at least one needle")
    words = filler_words(folder)
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
        question = Question(key, needle.question, (key,), evidence=evidence, answer_kind=EXACT,
                            needle_depths=(int(depth),), haystack_length=length)
        items.append(EvalItem(question, (needle.answer,), key))
    return EvalSet("niah", tuple(items), corpora)


# ------------------------------------------------------------------ aggregation

COMPARE, TOTAL = "compare", "total"
AGG_KINDS = (COMPARE, TOTAL)


@dataclass(frozen=True)
class Theme:
    """One kind of made-up fact. ``fact`` takes ``{name}``, ``{group}`` and ``{value}``;
    ``option`` is how a question names one member; ``compare`` takes ``{group}``,
    ``{more}`` ("more", or "the most" over three or more) and ``{options}`` ("the A or
    the B"); ``total`` takes ``{group}`` and ``{all}`` ("the A and the B"); ``unit``
    follows a total in its longer gold form; ``aliases`` are further forms of a name
    that exact match accepts ("Arabrin tower")."""

    fact: str
    option: str
    compare: str
    total: str
    unit: str
    aliases: tuple[str, ...] = ()


THEMES: tuple[Theme, ...] = (
    Theme("The barge {name} of the {group} fleet carries {value} crates of salt.", "the {name}",
          "Which barge of the {group} fleet carries {more} crates of salt: {options}?",
          "How many crates of salt do {all} of the {group} fleet carry together?", "crates"),
    Theme("Farmer {name} of the {group} valley grows {value} pear trees.", "{name}",
          "Which farmer of the {group} valley grows {more} pear trees: {options}?",
          "How many pear trees do the farmers {all} of the {group} valley grow together?", "pear trees",
          ("Farmer {name}",)),
    Theme("The {name} tower of the city of {group} holds {value} bronze bells.", "the {name} tower",
          "Which tower of the city of {group} holds {more} bronze bells: {options}?",
          "How many bronze bells do {all} of the city of {group} hold together?", "bells", ("{name} tower",)),
    Theme("The beekeeper {name} of {group} tends {value} hives.", "{name}",
          "Which beekeeper of {group} tends {more} hives: {options}?",
          "How many hives do the beekeepers {all} of {group} tend together?", "hives"),
    Theme("The {name} mine in the {group} hills sent out {value} wagons of copper last winter.", "the {name} mine",
          "Which mine in the {group} hills sent out {more} wagons of copper last winter: {options}?",
          "How many wagons of copper did {all} in the {group} hills send out last winter together?", "wagons",
          ("{name} mine",)),
    Theme("The {name} choir of {group} has {value} singers.", "the {name} choir",
          "Which choir of {group} has {more} singers: {options}?",
          "How many singers do {all} of {group} have together?", "singers", ("{name} choir",)),
)

# invented names: a head and a tail no dictionary pairs (any that the filler uses are skipped)
_HEADS = ("Ar", "Bel", "Cor", "Dask", "Ell", "Fen", "Gor", "Hesk", "Ith", "Jor", "Kel", "Lom", "Marv", "Nesk",
          "Orr", "Pell", "Quor", "Rav", "Sull", "Tamm", "Ulv", "Vess", "Wend", "Yor", "Zan")
_TAILS = ("abrin", "acote", "adane", "eloth", "emere", "ethorn", "ibrand", "ickam", "idor", "olline", "omar",
          "orvin", "ovask", "ubrey", "ulmet", "yske")
AGG_VALUES = range(3, 100)  # the made-up counts

AGG_LENGTHS = ("8k", "16k", "32k")
# (depth of the first named fact, depth of the second): the heat map's depth is the first;
# each pair 50 points apart, the first fact earlier in some and later in others
AGG_DEPTHS: tuple[tuple[int, ...], ...] = ((10, 60), (30, 80), (50, 0), (70, 20), (90, 40))
AGG_QUESTIONS = 8
_GOLDEN = 0.6180339887498949  # question n's filler starts at frac(n x this) of the filler: spread for any count


@dataclass(frozen=True)
class AggQuestion:
    """Made-up facts of one kind and a question only all of them answer. ``facts`` come
    in the order the question names them (and the depth sets list depths)."""

    kind: str
    names: tuple[str, ...]
    values: tuple[int, ...]
    facts: tuple[str, ...]
    question: str
    golds: tuple[str, ...]


def agg_answer(kind: str, names: Sequence[str], values: Sequence[int]) -> str:
    """The answer the facts give together: the name with the largest count (compare),
    or the counts' sum (total)."""
    if kind == COMPARE:
        best = max(values)
        if list(values).count(best) != 1:
            raise EvalDataError(f"a comparison needs one largest count, got {list(values)}")
        return names[list(values).index(best)]
    if kind == TOTAL:
        return str(sum(values))
    raise EvalDataError(f"unknown aggregation kind {kind!r}; valid: {', '.join(AGG_KINDS)}")


def _listing(parts: Sequence[str], last: str) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} {last} {parts[-1]}"


def _vocabulary(words: Sequence[str]) -> frozenset[str]:
    return frozenset(w.strip(".,;:!?\"'()[]").lower() for w in words)


def _names(rng: random.Random, count: int, avoid: frozenset[str]) -> list[str]:
    """``count`` invented names, no two sharing a head or a tail (so none reads like
    another), none a word of ``avoid``."""
    if count > min(len(_HEADS), len(_TAILS)):
        raise EvalDataError(f"at most {min(len(_HEADS), len(_TAILS)) - 1} facts a question")
    for _ in range(1000):
        names = [h + t for h, t in zip(rng.sample(_HEADS, count), rng.sample(_TAILS, count))]
        if not any(name.lower() in avoid for name in names):
            return names
    raise EvalDataError("the filler uses too many of the invented names")


def agg_question(n: int, seed: int = 0, facts: int = 2, kinds: Sequence[str] = (COMPARE,),
                 avoid: frozenset[str] = frozenset()) -> AggQuestion:
    """Question ``n``: its kind cycles through ``kinds``, its theme through ``THEMES``;
    names and counts are drawn from ``seed`` (deterministic), never a word of ``avoid``
    (the filler's words, lowercased). In a comparison the largest count goes to fact
    ``(q + q // len(THEMES)) % facts`` (q = n // len(kinds)): each position, and so each
    depth, holds the answer equally often, and a reader that saw one fact is right by
    chance only."""
    if facts < 2:
        raise EvalDataError(f"an aggregation question needs at least two facts, got {facts}")
    if not kinds:
        raise EvalDataError("niah-agg needs at least one question kind")
    kind = kinds[n % len(kinds)]
    if kind not in AGG_KINDS:
        raise EvalDataError(f"unknown aggregation kind {kind!r}; valid: {', '.join(AGG_KINDS)}")
    q = n // len(kinds)
    theme = THEMES[q % len(THEMES)]
    rng = random.Random(f"niah-agg:{seed}:{n}")
    group, *names = _names(rng, facts + 1, avoid)
    counts = sorted(rng.sample(AGG_VALUES, facts), reverse=True)
    rest = counts[1:]
    rng.shuffle(rest)
    winner = (q + q // len(THEMES)) % facts
    values = [*rest[:winner], counts[0], *rest[winner:]]
    sentences = tuple(theme.fact.format(name=name, group=group, value=value) for name, value in zip(names, values))
    options = [theme.option.format(name=name) for name in names]
    answer = agg_answer(kind, names, values)
    if kind == COMPARE:
        text = theme.compare.format(group=group, more="more" if facts == 2 else "the most", options=_listing(options, "or"))
        forms = [answer, *(a.format(name=answer) for a in theme.aliases), theme.option.format(name=answer)]
    else:
        text = theme.total.format(group=group, all=_listing(options, "and"))
        forms = [answer, f"{answer} {theme.unit}"]
    golds: list[str] = []
    for form in forms:  # one of each normalised form, the bare answer first
        if normalize_answer(form) not in {normalize_answer(g) for g in golds}:
            golds.append(form)
    return AggQuestion(kind, tuple(names), tuple(values), sentences, text, tuple(golds))


def _start(words: Sequence[str], n: int) -> int:
    """Where question ``n``'s filler starts: frac(n x golden ratio) of the way in, moved
    on to the next sentence start. Independent of the grid, so question ``n`` reads the
    same filler at every length (a shorter haystack is a prefix of a longer one)."""
    start = int((n * _GOLDEN) % 1 * len(words))
    for i in range(start, min(start + 200, len(words))):
        if i == 0 or words[i - 1].endswith((".", "!", "?")):
            return i
    return start


def niah_agg(folder: Path, limit: int | None = None, seed: int = 0,
             lengths: Sequence[int | str] = AGG_LENGTHS, depths: Sequence[Sequence[int]] = AGG_DEPTHS,
             questions: int | None = None, kinds: Sequence[str] = (COMPARE,)) -> EvalSet:
    """Aggregation needles: ``questions`` questions (``agg_question``), each at every depth
    set of every length (words, or ``8k`` tokens: ``parse_lengths``) of filler; one
    document and one question per cell, the question's facts placed at the set's depths
    (one depth per fact, in the order the question names them). Every fact sentence is
    the question's evidence, in reading order. Cells come question by question, so
    ``limit`` keeps whole grids of the first questions."""
    lengths = parse_lengths(lengths)
    questions = AGG_QUESTIONS if questions is None else questions
    if questions < 1:
        raise EvalDataError(f"niah-agg needs at least one question per cell, got {questions}")
    depth_sets = [tuple(int(d) for d in ds) for ds in depths]
    if not depth_sets:
        raise EvalDataError("niah-agg needs at least one depth set")
    facts = len(depth_sets[0])
    for ds in depth_sets:
        if len(ds) != facts or facts < 2 or len(set(ds)) != facts or not all(0 <= d <= 100 for d in ds):
            raise EvalDataError(f"each niah-agg depth set needs {max(facts, 2)} distinct depths from 0 to 100 "
                                f"(one per fact, all sets alike); got {ds}")
    if len(set(depth_sets)) != len(depth_sets):
        raise EvalDataError(f"niah-agg depth sets repeat: {depth_sets}")
    words = filler_words(folder)
    avoid = _vocabulary(words)
    cells = [(n, length, ds) for n in range(questions) for length in lengths for ds in depth_sets]
    items, corpora, asked = [], {}, {}
    for n, length, ds in cells[:limit] if limit else cells:
        if n not in asked:
            asked[n] = agg_question(n, seed, facts, kinds, avoid)
        question = asked[n]
        key = f"niahagg{n}@d{ds[0]}@L{length}" + "".join(f"@d{d}" for d in ds[1:])
        text, spans = insert_all(haystack(words, _start(words, n), length), list(zip(ds, question.facts)))
        corpora[key] = CorpusSpec(key, (Document(key, text, title="Essays", source=f"niah-agg:{Path(folder).name}"),))
        evidence = tuple(Evidence(key, fact, start, end, "Essays")
                         for (start, end), fact in sorted(zip(spans, question.facts)))
        asked_here = Question(key, question.question, (key,), evidence=evidence, answer_kind=EXACT,
                              needle_depths=ds, haystack_length=length)
        items.append(EvalItem(asked_here, question.golds, key))
    return EvalSet("niah-agg", tuple(items), corpora)
