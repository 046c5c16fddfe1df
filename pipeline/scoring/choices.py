"""Multiple-choice questions: show the options, read the letter a reader chose, score it.

Pure functions on strings (nothing but ``lcrag.core`` is imported). A reply that
names no option, or names two different options where one is asked for, parses to
``None``: it is recorded as unparseable, never as a wrong letter, and
``score_choice`` gives it no score.

What ``parse_choice`` reads, in this order (the first step that decides, decides):

1. the whole reply is one option's text (case, punctuation and spacing ignored);
2. the whole reply is a letter or letters: ``B``, ``b``, ``B.``, ``(B)``, ``B)``,
   ``B, D``, ``B and D``, ``BD``;
3. answer phrases anywhere: ``Answer: B``, ``The correct answer is (B) ...``,
   ``Answers: B, D``; ``B. text`` / ``(B) text`` at the start of the reply;
4. marked letters anywhere: ``(C)``, ``C)``, ``option C``, ``C.`` at a line start;
5. the reply (after an answer phrase) contained in exactly one option, or exactly
   one option's text contained in the reply (whole words).

Several letters are an answer only when ``multi=True`` (returned sorted, ``"BD"``);
otherwise two different letters are ambiguous and give ``None``. A letter past the
last option is not an answer either.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence

from lcrag.core.errors import LcragError
from lcrag.readers import prompts

LETTERS = string.ascii_uppercase


class ChoiceError(LcragError, ValueError):
    """Options that cannot be lettered (more than 26, or none)."""


def letter_of(index: int) -> str:
    """The letter of the option at ``index`` (0 -> "A")."""
    if not 0 <= index < len(LETTERS):
        raise ChoiceError(f"option {index + 1} has no letter: at most {len(LETTERS)} options can be lettered")
    return LETTERS[index]


_OPTION_PREFIX = re.compile(r"^\s*(?:\(([A-Za-z])\)|([A-Za-z])[.)](?=\s|$))\s*")


def strip_option_letter(text: str, letter: str | None = None) -> str:
    """An option's text without a leading ``A.`` / ``A)`` / ``(A)`` (only that
    letter when ``letter`` is given): ``"B. to earn money"`` -> ``"to earn money"``."""
    match = _OPTION_PREFIX.match(text)
    if match and (letter is None or (match.group(1) or match.group(2)).upper() == letter.upper()):
        return text[match.end():].strip()
    return text.strip()


def render_options(options: Sequence[str]) -> str:
    """``"A. first\\nB. second"``: the options as a reader is shown them."""
    if not options:
        raise ChoiceError("a multiple-choice question needs at least one option")
    if len(options) > len(LETTERS):
        letter_of(len(options) - 1)  # raises: more options than letters
    return prompts.render_options(options)


def normalise(text: str) -> str:
    """Lower case, punctuation as spaces, spacing collapsed (for comparing option texts)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(ch).startswith(("P", "S")) else ch for ch in text)
    return " ".join(text.split())


# -- reading a reply -----------------------------------------------------------------

_MARKUP = re.compile(r"[*_`#]+")
_LIST_SEPARATOR = re.compile(r"\s*(?:,|;|/|&|\+|\band\b)\s*")
_ONE_LETTER = re.compile(r"\(([A-Z])\)|([A-Z])(?![A-Za-z0-9])")
_RUN = re.compile(r"([A-Z]{2,26})(?![A-Za-z0-9])")  # "BD"
_WHOLE_LETTERS = re.compile(r"^(?:\(?[A-Z]\)?(?:\s*(?:,|;|/|&|\+|\band\b)?\s*\(?[A-Z]\)?)*|\(?[a-z]\)?)[.):]?$")
_ANSWER_PHRASE = re.compile(
    r"(?i:\b(?:the\s+)?(?:(?:correct|right|best|final|most\s+likely)\s+)?"
    r"(?:answer|option|choice)s?(?:\s+(?:is|are|would\s+be|will\s+be|should\s+be))?)"
    r"\s*(?:[:=\-]\s*)?"
)
# "A" and "I" followed by a lower-case word are the article and the pronoun.
_WORD_NEXT = re.compile(r"\s+[a-z]")
_ARTICLE_FOLLOWERS = ("because", "since", "as", "which", "is", "was")


def _clean(reply: str) -> str:
    text = _MARKUP.sub("", unicodedata.normalize("NFKC", reply)).strip()
    return text.strip("\"'“”‘’ \t\n")


def _letters(chunk: str) -> list[str]:
    return re.findall(r"[A-Z]", chunk)


def _scan_letters(text: str) -> tuple[list[str], int, bool]:
    """The letter list at the start of ``text`` ("B", "(B)", "B, D", "B and (D)", "BD"):
    (letters, end offset, whether the first letter was in parentheses)."""
    run = _RUN.match(text)
    if run:
        return list(run.group(1)), run.end(), False
    first = _ONE_LETTER.match(text)
    if first is None:
        return [], 0, False
    letters, end = [first.group(1) or first.group(2)], first.end()
    while True:
        sep = _LIST_SEPARATOR.match(text, end)
        if sep is None:
            break
        nxt = _ONE_LETTER.match(text, sep.end())
        if nxt is None:
            break
        letter = nxt.group(1) or nxt.group(2)
        if nxt.group(2) and letter in "AI" and _WORD_NEXT.match(text, nxt.end()):
            break
        letters.append(letter)
        end = nxt.end()
    return letters, end, bool(first.group(1))


def _decide(found: Sequence[str], valid: str, multi: bool) -> str | None:
    letters = sorted(set(found))
    if not letters or any(letter not in valid for letter in letters):
        return None
    if len(letters) > 1 and not multi:
        return None
    return "".join(letters)


def _exact_text(text: str, options: Sequence[str]) -> str | None:
    norm = normalise(text)
    if not norm:
        return None
    hits = [i for i, option in enumerate(options) if normalise(option) == norm]
    return letter_of(hits[0]) if len(hits) == 1 else None


def _after_phrase(text: str, start: int, valid: str, options: Sequence[str]) -> list[str] | None:
    """The letters right after an answer phrase ending at ``start`` (None: no letter
    there; an empty list: letters that contradict themselves)."""
    rest = text[start:]
    letters, end, in_parens = _scan_letters(rest)
    if not letters:
        lower = re.match(r"\(?([a-z])\)?[.):]?\s*$", rest)  # "answer: b"
        return [lower.group(1).upper()] if lower else None
    tail = rest[end:]
    if len(letters) == 1 and letters[0] in "AI" and not in_parens and _WORD_NEXT.match(tail):
        # "The answer is A because ..." vs "The answer is a dog": the article reading
        # loses only when the words after it are option A's or a reason.
        words = normalise(tail)
        option_a = normalise(options[0]) if options else ""
        if letters[0] == "I" or not (
            words.split(" ", 1)[0] in _ARTICLE_FOLLOWERS or (option_a and words.startswith(option_a))
        ):
            return None
    if len(letters) == 1 and letters[0] in valid:
        # "B) <text of another option>" contradicts itself.
        body = re.sub(r"^[.):\-\s]+", "", tail)
        other = _exact_text(body, options) if body else None
        if other is not None and other != letters[0]:
            return []
    return letters


def _phrase_letters(text: str, valid: str, options: Sequence[str]) -> list[str] | None:
    """Letters named by answer phrases (strong ones first: "answer" over "option")."""
    strong: list[str] = []
    weak: list[str] = []
    matched = False
    for phrase in _ANSWER_PHRASE.finditer(text):
        found = _after_phrase(text, phrase.end(), valid, options)
        if found is None:
            continue
        matched = True
        (strong if "answer" in phrase.group(0).lower() else weak).extend(found)
    lead = re.match(r"^(\(?[A-Z](?:\)|[.):](?=\s)))", text)  # "B. text", "(B) text"
    if lead:
        found = _after_phrase(text, 0, valid, options)
        if found is not None:
            matched = True
            strong.extend(found)
    if strong:
        return strong
    if weak:
        return weak
    return [] if matched else None


_MARKED = re.compile(
    r"\(([A-Z])\)"  # (C)
    r"|(?<![A-Za-z0-9(])([A-Z])\)"  # C)
    r"|(?:^|\n)\s*([A-Z])[.:](?=\s)"  # C. at a line start
)


def _marked_letters(text: str) -> list[str]:
    return [next(group for group in match.groups() if group) for match in _MARKED.finditer(text)]


def _strip_phrase(text: str) -> str:
    match = _ANSWER_PHRASE.match(text)
    return text[match.end():].strip() if match and match.end() > 0 else text


def _contained(text: str, options: Sequence[str]) -> str | None:
    body = f" {normalise(_strip_phrase(text))} "
    if not body.strip():
        return None
    norms = [f" {normalise(option)} " for option in options]
    inside = [i for i, norm in enumerate(norms) if norm.strip() and body in norm]
    if len(inside) == 1:
        return letter_of(inside[0])
    if inside:
        return None
    named = [i for i, norm in enumerate(norms) if norm.strip() and norm in body]
    # An option named only as part of a longer named option ("error" in "if error") does not count.
    named = [i for i in named if not any(j != i and norms[i] in norms[j] and norms[i] != norms[j] for j in named)]
    return letter_of(named[0]) if len(named) == 1 else None


def parse_choice(reply: str, options: Sequence[str], *, multi: bool = False) -> str | None:
    """The letter (``multi``: the sorted letters) a reply chose among ``options``, or
    None when it chose none, chose ambiguously, or named a letter past the last option."""
    if not isinstance(reply, str) or not options:
        return None
    valid = LETTERS[: min(len(options), len(LETTERS))]
    text = _clean(reply)
    if not text:
        return None
    exact = _exact_text(text, options)
    if exact is not None:
        return exact
    first_line = text.splitlines()[0].strip()
    for candidate in (text, first_line):
        if _WHOLE_LETTERS.match(candidate):
            return _decide(_letters(candidate) or _letters(candidate.upper()), valid, multi)
    phrased = _phrase_letters(text, valid, options)
    if phrased is not None:
        return _decide(phrased, valid, multi)
    marked = _marked_letters(text)
    if marked:
        return _decide(marked, valid, multi)
    return _contained(text, options)


def parse_gold(value: str | Sequence[str], options: Sequence[str]) -> str | None:
    """A data set's right answer as sorted letters (``"BD"``), or None: a letter or
    letters (``"B"``, ``"BD"``, ``"B, D"``, ``"(B)"``), a letter with its text
    (``"B. to earn money"``), an option's exact text, or a list of these."""
    if not options:
        return None
    valid = LETTERS[: min(len(options), len(LETTERS))]
    values = [value] if isinstance(value, str) else list(value)
    found: list[str] = []
    for item in values:
        if not isinstance(item, str):
            return None
        text = _clean(item)
        if _WHOLE_LETTERS.match(text):  # letters first: data sets give letters
            found.extend(_letters(text) or _letters(text.upper()))
            continue
        exact = _exact_text(text, options)
        if exact is not None:
            found.append(exact)
            continue
        lead = re.match(r"^(?:\(([A-Z])\)|([A-Z])[.)])\s+\S", text)
        if lead:
            found.append(lead.group(1) or lead.group(2))
            continue
        phrase = re.match(r"(?i:(?:the\s+)?(?:correct\s+)?answers?(?:\s+is|\s+are)?)\s*:?\s*", text)
        letters = _scan_letters(text[phrase.end():])[0] if phrase else []
        if not letters:
            return None
        found.extend(letters)
    return _decide(found, valid, multi=True)


def score_choice(chosen: str | None, correct: str) -> float | None:
    """1.0 when the chosen letters are exactly the right ones (as a set), 0.0 when not,
    None when the reply was unparseable (``chosen`` is None)."""
    if chosen is None:
        return None
    return 1.0 if set(_letters(chosen.upper())) == set(_letters(correct.upper())) else 0.0
