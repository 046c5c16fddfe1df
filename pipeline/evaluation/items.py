"""Evaluation questions and the corpora they are asked over.

A data set becomes ``EvalItem``s (a question, its gold answers, the key of its
corpus) and ``CorpusSpec``s (the documents of each corpus). Each question carries
what its data set knows of it as data: the kind of its answers (``answer_kind``) and,
in sweeps, where its evidence was put (``evidence_position``); the ledger records
both as columns, so the report and the verdict never read them from the id. Sweep
ids still name the slot (``@pos3``): they must be unique per variant.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from lcrag.core.errors import LcragError
from lcrag.core.types import Document, Section
from lcrag.pipeline.evaluation.longdoc import load_longdoc
from lcrag.pipeline.ingest.loaders import read_bytes, read_json
from lcrag.pipeline.ingest.loaders.hotpotqa import hotpotqa_from_payload
from lcrag.pipeline.ingest.loaders.jsonl import iter_json_lines
from lcrag.pipeline.ingest.loaders.squad import squad_from_payload
from lcrag.pipeline.ledger.rows import EXACT, FREE_TEXT, MULTIPLE_CHOICE
from lcrag.pipeline.scoring.choices import parse_gold
from lcrag.pipeline.strategies import Evidence, Question


class EvalDataError(LcragError, ValueError):
    """An evaluation file or option is unusable; the message names the file, line or option."""


@dataclass(frozen=True)
class EvalItem:
    question: Question
    golds: tuple[str, ...]
    corpus: str  # key of the CorpusSpec it is asked over
    answerable: bool = True


@dataclass(frozen=True)
class CorpusSpec:
    key: str
    documents: tuple[Document, ...]


@dataclass(frozen=True)
class EvalSet:
    name: str
    items: tuple[EvalItem, ...]
    corpora: dict[str, CorpusSpec]
    may_abstain: bool = False  # some questions have no answer: every strategy may say so
    skipped: tuple[str, ...] = ()  # lines of the source that could not be used, with the reason
    # reply tokens a full answer needs here (0 = the reader's setting suffices); the
    # evaluation raises reader.max_tokens to it, or every long answer is cut short
    reply_tokens: int = 0


# prose runs about 1.3 reader tokens a word: 2 a word leaves room for a reply that restates
# part of the question first; never more than a paragraph
TOKENS_PER_ANSWER_WORD = 2
MAX_REPLY_TOKENS = 512


def changed_questions(asked: Mapping[str, str], items: Sequence[EvalItem]) -> list[tuple[str, str, str]]:
    """(question id, recorded text, current text) for each question a run's ledger rows
    asked in other words than its data set does now (pure). A run resumed over an edited
    question file would otherwise mix answers to two question sets under one id."""
    return [(i.question.qid, asked[i.question.qid], i.question.text) for i in items
            if i.question.qid in asked and asked[i.question.qid] != i.question.text]


def reply_tokens_needed(evalset: EvalSet) -> int:
    """Reply tokens this set's answers need: what its loader declares (kv's UUIDs
    tokenise far worse than prose), else room for its longest gold answer. One length
    for the whole set, as LongBench sets one per task: a reply cut short scores as wrong
    whatever the strategy, which hides the comparison."""
    words = max((len(gold.split()) for item in evalset.items for gold in item.golds), default=0)
    from_golds = min(MAX_REPLY_TOKENS, math.ceil(words * TOKENS_PER_ANSWER_WORD))
    return max(evalset.reply_tokens, from_golds)


def sample(records: Sequence, limit: int | None, seed: int) -> list:
    """A seeded sample that is a prefix of every larger sample with the same seed,
    so growing --limit adds questions and keeps the ones already answered."""
    order = list(records)
    random.Random(seed).shuffle(order)
    return order if limit is None else order[:limit]


def move_gold(record: dict, slot: int) -> dict:
    """A copy of a HotpotQA record whose gold paragraphs start at ``slot`` of the
    context (the others keep their relative order): the position sweep."""
    gold_titles = {title for title, _ in record["supporting_facts"]}
    golds = [p for p in record["context"] if p[0] in gold_titles]
    others = [p for p in record["context"] if p[0] not in gold_titles]
    slot = max(0, min(slot, len(others)))
    return {**record, "context": others[:slot] + golds + others[slot:]}


def supporting_evidence(record: dict, documents: Sequence[Document]) -> tuple[Evidence, ...]:
    """A HotpotQA record's gold evidence: the sentences its ``supporting_facts`` name
    ([paragraph title, sentence index]), each with its paragraph's document and offsets
    there, in the record's order. A fact naming a paragraph or sentence the context
    lacks (the official files have a few) is left out."""
    by_title: dict[str, Document] = {}
    for doc in documents:
        by_title.setdefault(doc.title, doc)
    out: list[Evidence] = []
    for fact in record.get("supporting_facts") or ():
        if not isinstance(fact, (list, tuple)) or len(fact) != 2:
            continue
        title, index = fact
        doc = by_title.get(title) if isinstance(title, str) else None
        if doc is None or isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(doc.sections):
            continue
        section = doc.sections[index]
        if section.end > section.start:
            out.append(Evidence(doc.doc_id, doc.text[section.start:section.end], section.start, section.end, title))
    return tuple(dict.fromkeys(out))


def hotpotqa(path: Path, limit: int | None = None, seed: int = 0, positions: Sequence[int] = ()) -> EvalSet:
    """Distractor setting: each question's 10 paragraphs are its own corpus (in the
    data set's order, or with the gold paragraphs moved to each of ``positions``); its
    evidence is the supporting sentences."""
    records = sample(read_json(path), limit, seed)
    items, corpora = [], {}
    for record in records:
        variants = [(record["_id"], None, record)] if not positions else [
            (f"{record['_id']}@pos{slot}", slot, move_gold(record, slot)) for slot in positions
        ]
        for key, slot, variant in variants:
            loaded = hotpotqa_from_payload([variant], path)
            corpora[key] = CorpusSpec(key, loaded.documents)
            scope = tuple(d.doc_id for d in loaded.documents)
            evidence = supporting_evidence(variant, loaded.documents)
            question = Question(key, record["question"], scope, evidence=evidence, answer_kind=FREE_TEXT,
                                evidence_position=slot)
            items.append(EvalItem(question, (record["answer"],), key))
    # a sweep is its own data set: its rows must not pool with unmoved questions in a report
    return EvalSet("hotpotqa-positions" if positions else "hotpotqa", tuple(items), corpora)


def hotpotqa_pooled(path: Path, limit: int | None = None, seed: int = 0) -> EvalSet:
    """All paragraphs of the sampled questions in one corpus: a real retrieval problem."""
    per_question = hotpotqa(path, limit, seed)
    documents: dict[str, Document] = {}
    for spec in per_question.corpora.values():
        for doc in spec.documents:
            documents.setdefault(doc.doc_id, doc)
    items = tuple(EvalItem(replace(i.question, doc_scope=()), i.golds, "pooled") for i in per_question.items)
    return EvalSet("hotpotqa-pooled", items, {"pooled": CorpusSpec("pooled", tuple(documents.values()))})


def squad2(path: Path, limit: int | None = None, seed: int = 0) -> EvalSet:
    """SQuAD 2.0: the articles are long documents in one corpus; each question is
    about its article (lc reads that article); unanswerable questions have no gold.
    A question's evidence is its own paragraph (an unanswerable one's too: the
    paragraph it was written against, which does not answer it)."""
    payload = read_json(path)
    loaded = squad_from_payload(payload, path)
    documents = {doc.doc_id: doc for doc in loaded.documents}
    questions = []
    for article in payload["data"]:
        doc = documents.get(article["title"])
        for number, paragraph in enumerate(article["paragraphs"]):
            evidence = (paragraph_evidence(article["title"], paragraph["context"], doc, number),)
            for qa in paragraph["qas"]:
                golds = tuple(dict.fromkeys(a["text"] for a in qa.get("answers", [])))
                questions.append((article["title"], qa["id"], qa["question"], golds, not qa.get("is_impossible", False),
                                  evidence))
    items = tuple(
        EvalItem(Question(qid, text, (title,), evidence=evidence, answer_kind=FREE_TEXT), golds, "squad2", answerable)
        # article order: questions on one article share its prompt prefix (the server's prefix cache)
        for title, qid, text, golds, answerable, evidence in sorted(sample(questions, limit, seed), key=lambda q: q[0])
    )
    return EvalSet("squad2", items, {"squad2": CorpusSpec("squad2", loaded.documents)}, may_abstain=True)


def paragraph_evidence(title: str, context: str, doc: Document | None, number: int) -> Evidence:
    """Paragraph ``number`` of a SQuAD article as evidence, at its offsets in the
    article's document (where the document holds it as that section)."""
    if doc is not None and number < len(doc.sections):
        section = doc.sections[number]
        if doc.text[section.start:section.end] == context:
            return Evidence(doc.doc_id, context, section.start, section.end, doc.title)
    return Evidence(title, context, title=title.replace("_", " "))


MISSING_QUESTION = "no 'question' field"
BAD_EVIDENCE = ("'evidence' must be a passage text or document id, an object with 'doc_id' and/or 'text' "
                "(optional 'start', 'end', 'title'), or a list of those")


def parse_evidence(value) -> tuple[Evidence, ...]:
    """A qa-jsonl line's optional ``evidence``: a string or an object, or a list of
    them. A string is a passage's text, or the id of a document of the index (the
    oracle reads that document whole when the index has one by that id); an object
    names a document (``doc_id``: alone, read whole) and/or a passage (``text``, with
    ``start``/``end`` offsets in it), as ``synth`` writes it. ``ValueError`` (the
    message says what is accepted) for anything else."""
    if value is None:
        return ()
    out = []
    for entry in value if isinstance(value, list) else [value]:
        if isinstance(entry, str):
            if entry.strip():
                out.append(Evidence(text=entry))
            continue
        if not isinstance(entry, dict):
            raise ValueError(BAD_EVIDENCE)
        doc_id, text, title = entry.get("doc_id", ""), entry.get("text", ""), entry.get("title", "")
        start, end = entry.get("start"), entry.get("end")
        offsets_ok = all(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0) for v in (start, end))
        if not (isinstance(doc_id, str) and isinstance(text, str) and isinstance(title, str) and offsets_ok):
            raise ValueError(BAD_EVIDENCE)
        if not doc_id and not text.strip():
            raise ValueError(BAD_EVIDENCE)
        out.append(Evidence(doc_id, text, start if text.strip() else None, end if text.strip() else None, title))
    return tuple(dict.fromkeys(out))
SYNTHETIC = "synthetic"  # a qa-jsonl file whose every line says "synthetic": true (lcrag eval --dataset synth:N)


def qa_jsonl(path: Path, limit: int | None = None, seed: int = 0) -> EvalSet:
    """A user's own ``question, answers[]`` file, asked over an index they built
    (corpus key ``existing``: the runner uses the given index as it is). A line
    with ``"answerable": false`` marks a question the index cannot answer; with
    any such line every strategy may abstain and abstention is scored. An optional
    ``evidence`` (``parse_evidence``) is what the oracle control reads."""
    rows = []
    synthetic = True
    for number, record, error in iter_json_lines(read_bytes(path)):
        if error or not isinstance(record, dict) or "question" not in record:
            raise EvalDataError(f"{path}:{number}: {error or MISSING_QUESTION}")
        answerable = record.get("answerable", True)
        if not isinstance(answerable, bool):
            raise EvalDataError(f"{path}:{number}: 'answerable' must be true or false, got {answerable!r}")
        qid = str(record.get("id", record.get("_id", number)))
        synthetic = synthetic and record.get(SYNTHETIC) is True
        try:
            evidence = parse_evidence(record.get("evidence"))
        except ValueError as err:
            raise EvalDataError(f"{path}:{number}: {err}") from None
        options = tuple(str(o) for o in record.get("options") or ())
        golds = tuple(record.get("answers", []))
        if options:  # multiple choice: the gold is a letter, letters or an option's text
            letters = parse_gold(record.get("answer", golds), options)
            if letters is None:
                raise EvalDataError(f"{path}:{number}: 'answer' must name one of the {len(options)} options (a letter or its text)")
            golds = (letters,)
        rows.append((Question(qid, record["question"], options=options, multi_answer=len(golds[0]) > 1 if options else False,
                              evidence=evidence, answer_kind=MULTIPLE_CHOICE if options else FREE_TEXT),
                     golds, answerable))
    items = tuple(EvalItem(question, golds, "existing", answerable) for question, golds, answerable in sample(rows, limit, seed))
    name = SYNTHETIC if synthetic and rows else "qa-jsonl"  # reports label written questions as such
    return EvalSet(name, items, {}, may_abstain=not all(i.answerable for i in items))


def longdoc(path: Path, limit: int | None = None, seed: int = 0, fields: str | None = None) -> EvalSet:
    """Long-document benchmark files (LongBench v1/v2, L-Eval, BAMBOO, or ``fields``
    mapping others): each document is its own corpus, ingested once and reused across
    questions and runs (its key is a hash of its text). Questions come in document
    order, so prompts on one document share their prefix in the reader's cache."""
    loaded = load_longdoc(path, fields)
    pairs = [(position, record, question) for position, record in enumerate(loaded.records) for question in record.questions]
    chosen = sorted(sample(pairs, limit, seed), key=lambda p: (p[0], p[2].qid))
    items, corpora = [], {}
    for _, record, q in chosen:
        corpora[record.doc_id] = CorpusSpec(record.doc_id, (
            Document(record.doc_id, record.document, title=record.title, source=f"longdoc:{Path(path).name}"),
        ))
        golds = (q.letters,) if q.kind == "mc" else tuple(q.answers)
        evidence = tuple(located_evidence(record.doc_id, record.document, text, record.title) for text in q.evidence)
        question = Question(q.qid, q.question, (record.doc_id,), options=q.options, multi_answer=q.multi,
                            evidence=evidence, answer_kind=MULTIPLE_CHOICE if q.kind == "mc" else FREE_TEXT)
        items.append(EvalItem(question, golds, record.doc_id))
    stem = Path(path).name.split(".")[0]
    skipped = tuple(f"line {line}: {reason}" for line, reason in loaded.skipped)
    return EvalSet(f"longdoc/{stem}", tuple(items), corpora, skipped=skipped)


def located_evidence(doc_id: str, document: str, text: str, title: str = "") -> Evidence:
    """Evidence text from a document, with its offsets where it appears there verbatim
    (surrounding white space aside); else the text alone (BAMBOO's evidence is at times
    abridged)."""
    core = text.strip()
    start = document.find(core)
    if start < 0:
        return Evidence(doc_id, core, title=title)
    return Evidence(doc_id, core, start, start + len(core), title)


# A UUID value is 34 tokens for Qwen2.5's tokenizer: the default 32-token reply cut every
# value short, so every kv answer scored 0 whatever the strategy. Room for the value twice.
KV_REPLY_TOKENS = 64


def kv_retrieval(path: Path, limit: int | None = None, seed: int = 0) -> EvalSet:
    """Key-value retrieval ("Lost in the Middle"): each example's UUID pairs are one
    document, a pair per line, in the data set's order; the question asks for one
    key's value and records the gold pair's index as its evidence position (its id
    too: ``@posN``)."""
    records = []
    for _, record, error in iter_json_lines(read_bytes(path)):
        if error:  # evaluation data must not shrink silently
            raise EvalDataError(f"{path}: {error}")
        records.append(record)
    items, corpora = [], {}
    for number, record in sample(list(enumerate(records)), limit, seed):
        pairs = record["ordered_kv_records"]
        gold = next(i for i, (key, _) in enumerate(pairs) if key == record["key"])
        lines = [f'"{key}": "{value}"' for key, value in pairs]
        text = "\n".join(lines)
        sections, cursor = [], 0
        for line in lines:
            sections.append(Section(cursor, cursor + len(line)))
            cursor += len(line) + 1
        key = f"kv{number}"
        doc = Document(key, text, title="JSON key-value pairs", source=f"kv:{path.name}", sections=tuple(sections))
        corpora[key] = CorpusSpec(key, (doc,))
        question = f'What is the value of the key "{record["key"]}" in the JSON key-value pairs?'
        gold_line = sections[gold]
        evidence = (Evidence(key, text[gold_line.start:gold_line.end], gold_line.start, gold_line.end, doc.title),)
        items.append(EvalItem(Question(f"{key}@pos{gold}", question, (key,), evidence=evidence, answer_kind=EXACT,
                                       evidence_position=gold), (record["value"],), key))
    return EvalSet("kv", tuple(items), corpora, reply_tokens=KV_REPLY_TOKENS)
