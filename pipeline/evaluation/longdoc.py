"""Long-document question files: one long document per JSON line, with one question
or a list of them, free-form or multiple-choice.

The field layouts of four benchmarks are recognised line by line, without flags:

- ``longbench_v1``: ``context``, ``input`` (the question), ``answers`` (list);
  optional ``_id``, ``dataset``, ``all_classes``, ``length``.
- ``longbench_v2``: ``context``, ``question``, ``choice_A``..``choice_D``, ``answer``
  (a letter); optional ``_id``, ``domain``, ``sub_domain``, ``difficulty``, ``length``.
- ``leval``: ``input`` (the document), ``instructions`` (questions), ``outputs``
  (answers, paired with the questions); optional ``source``, ``evaluation``. A
  multiple-choice question carries its options as lines ``A. ...`` / ``(A) ...``
  inside the question text; they are split into the stem and the options, and the
  output (``"C"``, ``"BD"``, ``"(B) text"``) becomes the right letters.
- ``bamboo``: ``content`` (text or list of texts), ``question``, ``answer`` (letter or
  text), optional ``options`` (list, ``"A. ..."`` prefixes dropped) and ``evidence``
  (the passage that answers it: a text or a list of texts; anything else is ignored).

Any other layout is named by a ``FieldMap`` (``document=text,question=q,answers=a``;
``evidence=FIELD`` adds a line's gold evidence when the line holds one question).

A line that fits no layout, or whose values are unusable, or that is not JSON, is
reported in ``LongDocFile.skipped`` with its line number and skipped; the rest of
the file is still read. A document's id is a hash of its text, so the same document
on several lines is one record (its questions gathered) and one corpus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any, Literal

from lcrag.core.errors import LcragError
from lcrag.core.types import content_hash
from lcrag.pipeline.ingest.loaders import read_bytes
from lcrag.pipeline.ingest.loaders.jsonl import iter_json_lines
from lcrag.pipeline.scoring.choices import LETTERS, parse_gold, strip_option_letter

Kind = Literal["mc", "free"]


class LongDocError(LcragError, ValueError):
    """A long-document file or field mapping is unusable; the message says which and why."""


@dataclass(frozen=True)
class LongDocQuestion:
    qid: str
    question: str  # the stem: without the options of a multiple-choice question
    answers: tuple[str, ...]  # free: the accepted answers; mc: the right options' texts
    options: tuple[str, ...] = ()  # option texts without their letters, in letter order
    correct: tuple[str, ...] = ()  # mc: the right letters, sorted ("B", "D")
    kind: Kind = "free"
    line: int = 0  # 1-based line of the file it came from
    meta: tuple[tuple[str, str], ...] = ()  # the line's other fields (dataset, difficulty, ...)
    evidence: tuple[str, ...] = ()  # the gold evidence passages, where the data set marks them (BAMBOO)

    @property
    def letters(self) -> str:
        """The right letters as one string ("BD"), what ``score_choice`` compares with."""
        return "".join(self.correct)

    @property
    def multi(self) -> bool:
        return len(self.correct) > 1


@dataclass(frozen=True)
class LongDocRecord:
    doc_id: str  # "ld-" + a hash of the document text
    document: str
    title: str
    questions: tuple[LongDocQuestion, ...]
    layout: str
    lines: tuple[int, ...] = ()  # every line the document appeared on


@dataclass(frozen=True)
class LongDocFile:
    records: tuple[LongDocRecord, ...]
    skipped: tuple[tuple[int, str], ...]  # (line, reason); reasons of a skipped question name it
    layout_counts: Mapping[str, int] = field(default_factory=dict)  # lines read per layout

    @property
    def questions(self) -> tuple[LongDocQuestion, ...]:
        return tuple(q for record in self.records for q in record.questions)


# -- field mappings -------------------------------------------------------------------


@dataclass(frozen=True)
class FieldMap:
    """Which fields of a line hold what. ``question`` may hold one question or a list
    (then ``answers`` holds a list paired with it). With ``options`` a question is
    multiple-choice and ``answers`` holds its right letter(s) or option text."""

    document: str
    question: str
    answers: str | None = None
    options: str | None = None
    title: str | None = None
    id: str | None = None
    evidence: str | None = None  # a line's gold evidence (text or list of texts), for a line of one question

    @classmethod
    def parse(cls, spec: str) -> FieldMap:
        """``"document=text,question=q,answers=a"`` -> FieldMap (the CLI form)."""
        keys = [f.name for f in dataclass_fields(cls)]
        values: dict[str, str] = {}
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            key, sep, value = (s.strip() for s in part.partition("="))
            if not sep or not value:
                raise LongDocError(f"field mapping {spec!r}: {part!r} is not key=field")
            if key not in keys:
                raise LongDocError(f"field mapping {spec!r}: unknown key {key!r} (known: {', '.join(keys)})")
            if key in values:
                raise LongDocError(f"field mapping {spec!r}: {key!r} is given twice")
            values[key] = value
        missing = [key for key in ("document", "question", "answers") if key not in values]
        if missing:
            raise LongDocError(f"field mapping {spec!r}: needs {', '.join(missing)} (e.g. document=text,question=q,answers=a)")
        return cls(**values)

    def required(self) -> tuple[str, ...]:
        return tuple(name for name in (self.document, self.question, self.answers) if name)


# -- layouts ---------------------------------------------------------------------------


class _Unusable(ValueError):
    """A line fits a layout but a value is unusable (the message says which)."""


@dataclass(frozen=True)
class _Draft:
    """One question as read from a line, before ids are given."""

    question: str
    answers: tuple[str, ...]
    options: tuple[str, ...] = ()
    gold: Any = None  # mc: the data set's right answer, read into letters later
    qid: str = ""
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Layout:
    name: str
    required: tuple[str, ...]

    def read(self, line: dict) -> tuple[str, str, list[_Draft | str], dict[str, str]]:
        raise NotImplementedError


_META_KEYS = (
    "dataset", "language", "all_classes", "length", "domain", "sub_domain", "difficulty",
    "source", "evaluation", "type",
)


def _meta(line: dict, keys: Iterable[str] = _META_KEYS) -> dict[str, str]:
    out = {}
    for key in keys:
        value = line.get(key)
        if value is None or value == "":
            continue
        out[key] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return out


def _text(line: dict, key: str) -> str:
    value = line.get(key)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = "\n\n".join(value)
    if not isinstance(value, str):
        raise _Unusable(f"{key!r} is not text ({type(value).__name__})")
    if not value.strip():
        raise _Unusable(f"empty {key!r}")
    return value


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [str(value)]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        raise _Unusable(f"{key!r} is not a text or a list of texts")
    out = tuple(str(v).strip() for v in value if str(v).strip())
    if not out:
        raise _Unusable(f"empty {key!r}")
    return out


def _evidence(value: Any) -> tuple[str, ...]:
    """Evidence passages from a text or a list of texts (blank ones dropped); any other
    value gives none, so the question is still asked (only the oracle skips it)."""
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(dict.fromkeys(v.strip() for v in values if isinstance(v, str) and v.strip()))


def _line_id(line: dict, key: str) -> str:
    value = line.get(key)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return ""
    return str(value).strip()


def _options(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Unusable(f"{key!r} is not a list of option texts")
    options = tuple(strip_option_letter(v, LETTERS[i]) for i, v in enumerate(value[: len(LETTERS)]))
    if len(options) < 2 or not all(options):
        raise _Unusable(f"{key!r} needs at least two non-empty options")
    return options


_OPTION_LINE = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.)])\s+(\S.*)$")
_INLINE_OPTION = re.compile(r"\(([A-Z])\)\s*")


def split_options(text: str) -> tuple[str, tuple[str, ...]]:
    """(stem, option texts) of a question that lists its options inside its text, as
    lines ``A. ...`` / ``A) ...`` / ``(A) ...`` (or inline ``(A) ... (B) ...``),
    letters from A in order; (text, ()) when it lists fewer than two."""
    lines = text.split("\n")
    for start, line in enumerate(lines):
        match = _OPTION_LINE.match(line)
        if not match or (match.group(1) or match.group(2)) != "A":
            continue
        options: list[str] = [match.group(3).strip()]
        tail: list[str] = []
        for later in lines[start + 1:]:
            nxt = _OPTION_LINE.match(later)
            if not tail and nxt and (nxt.group(1) or nxt.group(2)) == LETTERS[len(options)]:
                options.append(nxt.group(3).strip())
            elif not tail and later.strip() and not nxt:
                options[-1] = f"{options[-1]} {later.strip()}"  # an option wrapped onto the next line
            else:
                tail.append(later)  # a blank line, or a line out of order, ends the options
        if len(options) >= 2:
            stem = "\n".join(lines[:start] + [t for t in tail if t.strip()]).strip()
            return stem, tuple(options)
    # Inline "(A) ... (B) ..." on one line.
    marks = list(_INLINE_OPTION.finditer(text))
    for i, mark in enumerate(marks):
        if mark.group(1) != "A":
            continue
        run = [mark]
        for later_mark in marks[i + 1:]:
            if later_mark.group(1) == LETTERS[len(run)]:
                run.append(later_mark)
        if len(run) >= 2:
            bounds = [m.start() for m in run[1:]] + [len(text)]
            inline = tuple(text[m.end():end].strip() for m, end in zip(run, bounds))
            if all(inline):
                return text[: run[0].start()].strip(), inline
    return text.strip(), ()


class _LongBenchV1(_Layout):
    def read(self, line):
        document = _text(line, "context")
        question = line.get("input")
        if not isinstance(question, str) or not question.strip():
            raise _Unusable("empty 'input' (a task without a question, such as summarisation, is not asked)")
        return document, "", [_Draft(question.strip(), _strings(line.get("answers"), "answers"), qid=_line_id(line, "_id"))], _meta(line)


class _LongBenchV2(_Layout):
    def read(self, line):
        document = _text(line, "context")
        question = _text(line, "question").strip()
        options = []
        for letter in LETTERS:
            value = line.get(f"choice_{letter}")
            if value is None:
                break
            if not isinstance(value, (str, int, float)) or isinstance(value, bool) or not str(value).strip():
                raise _Unusable(f"'choice_{letter}' is empty or not text")
            options.append(str(value).strip())
        if len(options) < 2:
            raise _Unusable("needs at least 'choice_A' and 'choice_B'")
        draft = _Draft(question, (), tuple(options), gold=line.get("answer"), qid=_line_id(line, "_id"))
        return document, "", [draft], _meta(line)


class _LEval(_Layout):
    def read(self, line):
        document = _text(line, "input")
        questions, outputs = line.get("instructions"), line.get("outputs")
        questions = [questions] if isinstance(questions, str) else questions
        outputs = [outputs] if isinstance(outputs, str) else outputs
        if not isinstance(questions, list) or not isinstance(outputs, list):
            raise _Unusable("'instructions' and 'outputs' must be lists")
        if len(questions) != len(outputs):
            raise _Unusable(f"{len(questions)} instructions but {len(outputs)} outputs")
        if not questions:
            raise _Unusable("no instructions")
        return document, _title(line), [_free_or_embedded(q, a, i) for i, (q, a) in enumerate(zip(questions, outputs))], _meta(line)


class _Bamboo(_Layout):
    def read(self, line):
        document = _text(line, "content")
        question = _text(line, "question").strip()
        evidence = _evidence(line.get("evidence"))
        if line.get("options") not in (None, []):
            draft = _Draft(question, (), _options(line["options"], "options"), gold=line.get("answer"), qid=_line_id(line, "id"),
                           evidence=evidence)
        else:
            draft = _Draft(question, _strings(line.get("answer"), "answer"), qid=_line_id(line, "id"), evidence=evidence)
        return document, _title(line), [draft], _meta(line)


class _Mapped(_Layout):
    def __init__(self, fields: FieldMap) -> None:
        super().__init__("mapped", fields.required())
        object.__setattr__(self, "fields", fields)

    def read(self, line):
        fm: FieldMap = self.fields
        document = _text(line, fm.document)
        title = line.get(fm.title) if fm.title else ""
        title = title.strip() if isinstance(title, str) else ""
        questions = line.get(fm.question)
        answers = line.get(fm.answers) if fm.answers else None
        if isinstance(questions, list):
            if not isinstance(answers, list) or len(answers) != len(questions):
                raise _Unusable(f"{fm.question!r} is a list: {fm.answers!r} must be a list of the same length")
            pairs = list(zip(questions, answers))
        else:
            pairs = [(questions, answers)]
        drafts: list[_Draft | str] = []
        qid = _line_id(line, fm.id) if fm.id else ""
        for i, (question, answer) in enumerate(pairs):
            if fm.options:
                if not isinstance(question, str) or not question.strip():
                    raise _Unusable(f"empty {fm.question!r}")
                drafts.append(_Draft(question.strip(), (), _options(line.get(fm.options), fm.options), gold=answer))
            elif answer is None:
                raise _Unusable(f"no {fm.answers!r}" if fm.answers else "no answers field mapped")
            else:
                drafts.append(_free_or_embedded(question, answer, i))
        if qid and len(drafts) == 1 and isinstance(drafts[0], _Draft):
            drafts[0] = replace(drafts[0], qid=qid)
        if fm.evidence and len(drafts) == 1 and isinstance(drafts[0], _Draft):
            drafts[0] = replace(drafts[0], evidence=_evidence(line.get(fm.evidence)))
        keys = [k for k in _META_KEYS if k not in (fm.document, fm.question, fm.answers, fm.options)]
        return document, title, drafts, _meta(line, keys)


def _title(line: dict) -> str:
    title = line.get("title")
    return title.strip() if isinstance(title, str) else ""


def _free_or_embedded(question: Any, answer: Any, index: int) -> _Draft | str:
    """A question that may list its options in its text (L-Eval); a string names why
    the question is skipped."""
    if not isinstance(question, str) or not question.strip():
        return f"question {index + 1}: empty or not text"
    stem, options = split_options(question)
    if options:
        return _Draft(stem or question.strip(), (), options, gold=answer)
    try:
        return _Draft(question.strip(), _strings(answer, "output"))
    except _Unusable as exc:
        return f"question {index + 1}: {exc}"


_LAYOUTS: tuple[_Layout, ...] = (
    _LongBenchV2("longbench_v2", ("context", "question", "choice_A", "choice_B", "answer")),
    _LongBenchV1("longbench_v1", ("context", "input", "answers")),
    _LEval("leval", ("input", "instructions", "outputs")),
    _Bamboo("bamboo", ("content", "question", "answer")),
)
LAYOUTS = (*tuple(layout.name for layout in _LAYOUTS), "mapped")


def _choose(line: dict, layouts: Sequence[_Layout]) -> tuple[_Layout | None, str]:
    for layout in layouts:
        if all(key in line for key in layout.required):
            return layout, ""
    scored = [(sum(key in line for key in layout.required) / len(layout.required), -i, layout) for i, layout in enumerate(layouts)]
    _, _, closest = max(scored, key=lambda s: (s[0], s[1]))
    missing = ", ".join(repr(key) for key in closest.required if key not in line)
    return None, f"fits no layout (closest {closest.name}: missing {missing})"


# -- reading a file ----------------------------------------------------------------------


def parse_longdoc(lines: Iterable[tuple[int, Any, str]], fields: FieldMap | str | None = None) -> LongDocFile:
    """Records from (line number, parsed object, error) triples, as ``iter_json_lines``
    yields them. With ``fields``, only that mapping is tried."""
    if isinstance(fields, str):
        fields = FieldMap.parse(fields)
    layouts: Sequence[_Layout] = (_Mapped(fields),) if fields else _LAYOUTS
    skipped: list[tuple[int, str]] = []
    counts: dict[str, int] = {}
    docs: dict[str, dict] = {}
    seen_qids: dict[str, int] = {}
    for line_no, obj, error in lines:
        if error:
            skipped.append((line_no, error))
            continue
        if not isinstance(obj, dict):
            skipped.append((line_no, f"line {line_no}: not a JSON object ({type(obj).__name__})"))
            continue
        layout, why = _choose(obj, layouts)
        if layout is None:
            skipped.append((line_no, f"line {line_no}: {why}"))
            continue
        try:
            document, title, drafts, meta = layout.read(obj)
        except _Unusable as exc:
            skipped.append((line_no, f"line {line_no} ({layout.name}): {exc}"))
            continue
        doc_id = "ld-" + content_hash(document)[:16]
        entry = docs.get(doc_id) or {"document": document, "title": title, "layout": layout.name, "questions": [], "lines": []}
        kept: list[LongDocQuestion] = []
        for index, draft in enumerate(drafts):
            if isinstance(draft, str):
                skipped.append((line_no, f"line {line_no} ({layout.name}) {draft}"))
                continue
            question = _finish(draft, doc_id, len(entry["questions"]) + len(kept), line_no, meta, seen_qids)
            if isinstance(question, str):
                skipped.append((line_no, f"line {line_no} ({layout.name}) question {index + 1}: {question}"))
                continue
            kept.append(question)
        if kept:
            entry["questions"].extend(kept)
            entry["lines"].append(line_no)
            docs.setdefault(doc_id, entry)
            counts[layout.name] = counts.get(layout.name, 0) + 1
    records = tuple(
        LongDocRecord(doc_id, e["document"], e["title"], tuple(e["questions"]), e["layout"], tuple(e["lines"]))
        for doc_id, e in docs.items()
    )
    return LongDocFile(records, tuple(skipped), counts)


def _finish(draft: _Draft, doc_id: str, position: int, line_no: int, meta: dict[str, str], seen: dict[str, int]) -> LongDocQuestion | str:
    qid = draft.qid or f"{doc_id}:q{position}"
    seen[qid] = seen.get(qid, 0) + 1
    if seen[qid] > 1:
        qid = f"{qid}~{seen[qid]}"
    common: dict[str, Any] = {"qid": qid, "question": draft.question, "line": line_no, "meta": tuple(sorted(meta.items())),
              "evidence": draft.evidence}
    if not draft.options:
        return LongDocQuestion(answers=draft.answers, kind="free", **common)
    letters = parse_gold(draft.gold, draft.options) if isinstance(draft.gold, (str, list)) else None
    if letters is None:
        return f"right answer {draft.gold!r} names none of the {len(draft.options)} options"
    answers = tuple(draft.options[LETTERS.index(letter)] for letter in letters)
    return LongDocQuestion(answers=answers, options=draft.options, correct=tuple(letters), kind="mc", **common)


def load_longdoc(path: Path, fields: FieldMap | str | None = None) -> LongDocFile:
    """Read a .jsonl (or .jsonl.gz) long-document question file (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise LongDocError(f"long-document file {path} does not exist")
    return parse_longdoc(iter_json_lines(read_bytes(path)), fields)
