"""What each strategy cost on a data set, counted as the reader's server pays it, and
what it would cost on a workload with more (or fewer) questions per document.

Prompt tokens are the report's default cost: the same count on any machine and in
any cache state. A local server's real cost is prefill, and with prefix caching a
document read a second time is nearly free: the ledger's ``cached_tokens`` (prompt
tokens the server served from its prefix cache; None when it did not say) gives
prefill = prompt - cached (None counts as 0 cached). This module reports both, per
data set and strategy, on the rows the report compares there (``comparable_rows``:
the questions every compared strategy answered; error rows left out, as the
verdict's cost leaves them out), and projects prefill to Q questions per document.

The projection is a deliberately simple model, stated in the report:

* A row *reads the document* when its context is the whole document: the last of its
  ``route_steps`` is ``lc``, ``coa`` or ``longrag`` (a routed strategy's reads that
  ended there too, such as auto's ``rule:lc`` or self-route's ``rag->lc``). Its document is a prefix every question on that
  document shares, so the first question pays it cold and later ones pay only the
  uncached tail (question, instructions, any earlier cheap read).
* Cold rows are each strategy's first document read per (run, index_id) in
  ``created_at`` order, over all its answered rows (so a question left out of the
  comparison can still have warmed the cache); warm rows are the rest. ``cold`` and
  ``warm`` are the mean prefill of each; the shared prefix is ``cold - warm`` (at
  least 0) and the tail is ``warm``.
* Other rows (rag, op-rag, reorder, attention-sort, closed-book, a self-route
  answer that stayed with rag) read different chunks for each question: their
  prefill per question is their mean prefill and does not fall with Q.
* A strategy whose share ``p`` of rows read the document pays, per question at Q
  questions per document, ``(1-p) * other + p * warm + (1 - (1-p)**Q) / Q * prefix``:
  the prefix once per document that gets at least one such read. For lc (p = 1)
  that is ``warm + (cold - warm) / Q``.
* Assumed: the cache keeps a document between its questions (no eviction), and the
  run's first reads were cold (when they were mostly cached already the break-even
  sentence says so: the cold cost, and so the break-even, are understated). When no
  row of a strategy reports cached tokens its prefill is every prompt token and
  does not fall with Q.

Q observed is the compared questions per document: distinct (run, question) over
distinct (run, index_id), one corpus per document on long-document sets.
The break-even is the smallest whole Q at which lc's projected prefill per question
is at most rag's; None when it never is, when lc or rag is missing, or when no
document had a second lc question to measure the warm cost on.

Pure: frozen records from ledger rows, and their text, Markdown, HTML and JSON
forms (laid out by ``templates/cost.*.j2``, escaped by ``markup``, as every section).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lcrag.pipeline.ledger import LedgerRow
from lcrag.pipeline.report.markup import md_lines, render

LC = "lc"
RAG = "rag"
DOCUMENT_ROUTES = frozenset({"lc", "coa", "longrag"})  # reads whose context is the whole document
WARM_CACHED = 0.5  # cold reads at least this share cached: the cache was warm before the run


# ------------------------------------------------------------------ records


@dataclass(frozen=True)
class DocumentReads:
    """A strategy's reads of whole documents: mean prefill of each document's first
    read (``cold``) and of the later ones (``warm``, None when no document was read
    twice). ``cache_reported`` is False when no such row said what was cached: then
    cold and warm are both the plain mean and nothing is shared."""

    n_cold: int
    n_warm: int
    cold_prefill: float
    warm_prefill: float | None
    cold_cached_share: float | None  # cached / prompt tokens on the cold reads that report it
    cache_reported: bool = True

    @property
    def doc_prefix(self) -> float | None:
        """The prefill the first question on a document pays over the later ones."""
        if self.warm_prefill is None:
            return None
        return max(0.0, self.cold_prefill - self.warm_prefill)

    @property
    def cold_was_cached(self) -> bool:
        return self.cold_cached_share is not None and self.cold_cached_share >= WARM_CACHED


@dataclass(frozen=True)
class StrategyCost:
    """One strategy's cost on one data set, means over its compared answered rows.
    ``document_share`` is the share of rows that read the whole document,
    ``other_prefill`` the mean prefill of the rest (0 when none)."""

    strategy: str
    n: int
    prompt_tokens: float
    prefill_tokens: float
    cached_share: float | None  # cached / prompt over the rows that report cached tokens; None when none do
    reading_s: float
    calls: float
    document_share: float = 0.0
    other_prefill: float = 0.0
    document: DocumentReads | None = None
    context_tokens: float = 0.0  # mean tokens of context read (the document, for lc)

    def projected(self, q: float) -> float | None:
        """Expected prefill per question at ``q`` questions per document (the module's
        model); None when it needs a warm cost this run did not measure (q > 1, no
        document read twice)."""
        p, d = self.document_share, self.document
        other = (1.0 - p) * self.other_prefill
        if d is None or p == 0:
            return self.other_prefill
        if d.warm_prefill is None:
            return other + p * d.cold_prefill if q == 1 else None
        return other + p * d.warm_prefill + (1.0 - (1.0 - p) ** q) / q * d.doc_prefix

    def floor(self) -> float | None:
        """What a question costs once Q is large: the projection's limit."""
        if self.document is None or self.document_share == 0:
            return self.other_prefill
        if self.document.warm_prefill is None:
            return None
        return (1.0 - self.document_share) * self.other_prefill + self.document_share * self.document.warm_prefill


@dataclass(frozen=True)
class BreakEven:
    """The smallest Q at which lc's projected prefill per question is at most rag's
    (None: never, or not measurable), and the arithmetic in one sentence."""

    questions_per_document: int | None
    sentence: str


@dataclass(frozen=True)
class CostSection:
    """One data set's cost table, its observed questions per document and the
    projection at ``q`` (the workload asked for, else the observed one)."""

    dataset: str
    strategies: tuple[StrategyCost, ...]
    n_questions: int
    n_documents: int
    observed_q: float
    q: float
    q_given: bool  # q came from --questions-per-document
    break_even: BreakEven

    def strategy(self, name: str) -> StrategyCost | None:
        return next((s for s in self.strategies if s.strategy == name), None)


# ------------------------------------------------------------------ building

def reads_document(route_steps: Sequence[str] | None) -> bool:
    """Did the read that answered end on the whole document? The last of the row's
    ``route_steps`` (auto, self-route, rag, lc -> ``lc``; a top-k variant ``longrag@k4``
    -> ``longrag``); a row that passed through none (an error) did not."""
    return bool(route_steps) and route_steps[-1].split("@")[0] in DOCUMENT_ROUTES


def prefill(row: LedgerRow) -> int:
    """Prompt tokens the server computed (``LedgerRow.prefill_tokens``)."""
    return row.prefill_tokens


def cached_share(rows: Iterable[LedgerRow]) -> float | None:
    """Cached over prompt tokens on the rows that report cached tokens; None when none do."""
    reported = [r for r in rows if r.cached_tokens is not None]
    if not reported:
        return None
    prompt = sum(r.prompt_tokens for r in reported)
    return sum(min(r.cached_tokens, r.prompt_tokens) for r in reported) / prompt if prompt else 0.0


def first_reads(rows: Iterable[LedgerRow]) -> frozenset[str]:
    """``read_key``s of the cold reads: per (strategy, run, index_id) the first answered
    row that read the whole document, in ``created_at`` order (ties by question id)."""
    first: dict[tuple[str, str, str], LedgerRow] = {}
    for row in sorted((r for r in rows if r.error is None and reads_document(r.route_steps)),
                      key=lambda r: (r.created_at, r.question_id, r.row_id)):
        first.setdefault((row.strategy, row.run_id, row.index_id), row)
    return frozenset(read_key(r) for r in first.values())


def read_key(row: LedgerRow) -> str:
    """One answer's identity (rows not yet recorded have no row id): run, strategy, data
    set, corpus and question (question ids repeat across data sets)."""
    return "\x1f".join((row.run_id, row.strategy, row.dataset or "", row.index_id, row.question_id))


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def document_reads(rows: Sequence[LedgerRow], cold_ids: frozenset[str]) -> DocumentReads | None:
    """Cold and warm prefill of a strategy's whole-document rows (None when it has none)."""
    if not rows:
        return None
    cold = [r for r in rows if read_key(r) in cold_ids]
    warm = [r for r in rows if read_key(r) not in cold_ids]
    if all(r.cached_tokens is None for r in rows):
        flat = _mean(prefill(r) for r in rows)
        return DocumentReads(len(cold), len(warm), flat, flat, None, cache_reported=False)
    cold_mean = _mean(prefill(r) for r in cold) if cold else None
    warm_mean = _mean(prefill(r) for r in warm) if warm else None
    if cold_mean is None:  # every first read fell outside the rows given: take a cold read to pay every prompt token
        return DocumentReads(0, len(warm), _mean(r.prompt_tokens for r in warm), warm_mean, None)
    return DocumentReads(len(cold), len(warm), cold_mean, warm_mean, cached_share(cold))


def strategy_cost(strategy: str, rows: Sequence[LedgerRow], cold_ids: frozenset[str] = frozenset()) -> StrategyCost:
    """One table row from a strategy's answered rows on a data set's compared questions."""
    docs = [r for r in rows if reads_document(r.route_steps)]
    others = [r for r in rows if not reads_document(r.route_steps)]
    return StrategyCost(
        strategy=strategy,
        n=len(rows),
        prompt_tokens=_mean(r.prompt_tokens for r in rows),
        prefill_tokens=_mean(prefill(r) for r in rows),
        cached_share=cached_share(rows),
        reading_s=_mean(r.reading_ms / 1000.0 for r in rows),
        calls=_mean(r.calls for r in rows),
        document_share=len(docs) / len(rows) if rows else 0.0,
        other_prefill=_mean(prefill(r) for r in others),
        document=document_reads(docs, cold_ids),
        context_tokens=_mean(r.context_tokens for r in rows),
    )


def check_questions_per_document(q: float | None) -> float | None:
    """A workload's questions per document: a finite number of at least 1 (or None)."""
    if q is None:
        return None
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not math.isfinite(q) or q < 1:
        raise ValueError(f"questions per document must be a number of at least 1, got {q!r}")
    return float(q)


def cost_section(dataset: str, rows: Sequence[LedgerRow], *, cold_ids: frozenset[str] | None = None,
                 questions_per_document: float | None = None) -> CostSection | None:
    """One data set's cost from the rows the report compares there (errors left out);
    ``cold_ids`` from ``first_reads`` over every row (default: these rows). None when
    no row answered."""
    q_given = check_questions_per_document(questions_per_document)
    answered = [r for r in rows if r.error is None]
    if not answered:
        return None
    cold_ids = first_reads(answered) if cold_ids is None else cold_ids
    groups: dict[str, list[LedgerRow]] = defaultdict(list)
    for row in answered:
        groups[row.strategy].append(row)
    strategies = tuple(strategy_cost(name, groups[name], cold_ids) for name in sorted(groups))
    questions = {(r.run_id, r.question_id) for r in answered}
    documents = {(r.run_id, r.index_id) for r in answered}
    observed = len(questions) / len(documents)
    by_name = {s.strategy: s for s in strategies}
    return CostSection(dataset, strategies, len(questions), len(documents), observed,
                       q_given if q_given is not None else observed, q_given is not None,
                       break_even(by_name.get(LC), by_name.get(RAG)))


def cost_sections(by_dataset: Mapping[str, Sequence[LedgerRow]], every_row: Iterable[LedgerRow] = (),
                  questions_per_document: float | None = None) -> tuple[CostSection, ...]:
    """A section per data set (sorted by name) from the rows the report compares there;
    ``every_row`` (all answered rows of the report) decides which reads were first."""
    everything = list(every_row)
    cold_ids = first_reads(everything or [r for rows in by_dataset.values() for r in rows])
    out = []
    for name in sorted(by_dataset):
        section = cost_section(name, by_dataset[name], cold_ids=cold_ids, questions_per_document=questions_per_document)
        if section is not None:
            out.append(section)
    return tuple(out)


# ---------------------------------------------------------------- break-even


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _first_at_most(lc: StrategyCost, rag: StrategyCost) -> int:
    """Smallest whole Q with lc's projection at most rag's; lc's floor is below rag's,
    and lc's projection falls with Q, so doubling then halving finds it."""
    def fits(q: int) -> bool:
        a, b = lc.projected(q), rag.projected(q)
        return a is not None and b is not None and a <= b + 1e-9 * max(1.0, abs(b))

    high = 1
    while not fits(high):
        high *= 2
        if high > 2 ** 50:
            raise ArithmeticError("no break-even found")  # cannot happen when lc's floor is below rag's
    low = high // 2 + 1 if high > 1 else 1
    while low < high:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid + 1
    return high


def break_even(lc: StrategyCost | None, rag: StrategyCost | None) -> BreakEven:
    """Where lc starts to cost at most rag per question in prefill, with the arithmetic."""
    missing = [name for name, s in ((LC, lc), (RAG, rag)) if s is None]
    if missing:
        return BreakEven(None, f"No break-even: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                               "not compared on this data set.")
    rag_cost = rag.projected(1)
    d = lc.document
    if d is None or lc.document_share == 0:
        cheaper = lc.other_prefill <= rag_cost
        return BreakEven(1 if cheaper else None,
                         f"lc never read a whole document here; it pays {_n(lc.other_prefill)} prefill tokens per "
                         f"question, rag {_n(rag_cost)}: lc is {'cheaper from Q = 1' if cheaper else 'never cheaper'}.")
    if not d.cache_reported:
        cheaper = lc.prefill_tokens <= rag_cost
        return BreakEven(1 if cheaper else None,
                         f"The server reported no cached tokens for lc, so lc's prefill is every prompt token "
                         f"({_n(lc.prefill_tokens)} per question) and does not fall with Q; rag pays {_n(rag_cost)}: "
                         f"lc is {'cheaper per question from Q = 1' if cheaper else 'never cheaper per question'}.")
    caveat = (f" lc's first reads were already {d.cold_cached_share:.0%} cached (an earlier run or strategy had read "
              "these documents), so its cold cost and this break-even are understated." if d.cold_was_cached else "")
    first = lc.projected(1)
    if d.warm_prefill is None:
        if first is not None and first <= rag_cost:
            return BreakEven(1, f"lc pays {_n(d.cold_prefill)} prefill tokens on a document's first question, rag "
                                f"{_n(rag_cost)} per question: lc is cheaper per question from Q = 1.{caveat}")
        return BreakEven(None, "No break-even: no document had a second lc question in this run, so lc's warm cost "
                               f"is unmeasured (lc pays {_n(d.cold_prefill)} prefill tokens on a first question, rag "
                               f"{_n(rag_cost)}).")
    size = f" of a {_n(lc.context_tokens)}-token document (mean)" if lc.context_tokens else ""
    start = (f"lc pays {_n(d.cold_prefill)} prefill tokens on the first question{size} and {_n(d.warm_prefill)} "
             f"on each later one; rag pays {_n(rag_cost)} per question")
    if lc.document_share < 1:
        start += f" (lc read the whole document on {lc.document_share:.0%} of its questions)"
    if first is not None and first <= rag_cost:
        return BreakEven(1, f"{start}: lc is cheaper per question from Q = 1.{caveat}")
    if lc.floor() >= rag_cost:
        return BreakEven(None, f"{start}: lc's later questions alone cost at least rag's, so lc is never cheaper "
                               f"per question.{caveat}")
    q = _first_at_most(lc, rag)
    formula = (f", {_n(d.warm_prefill)} + {_n(d.doc_prefix)} / Q," if lc.document_share == 1 else "")
    return BreakEven(q, f"{start}: lc's expected prefill per question{formula} is at most rag's from Q = {q} "
                        f"questions per document.{caveat}")


# ------------------------------------------------------------------ text

HEADERS = ("Strategy", "n", "Prompt tokens", "Prefill tokens", "Cached share", "Reading (s)", "Calls")

MODEL_NOTE = (
    "Prefill tokens are the prompt tokens the server computed: prompt minus those it served from its prefix cache "
    "(a row without a cached count pays every prompt token). Cached share: cached over prompt tokens on the rows that "
    "report it. Means over the questions every compared strategy answered (errors left out). Projection, a simple "
    "model: a read whose context is the whole document (lc, coa, longrag, and a routed strategy when it read lc) "
    "shares the document as a cacheable prefix, so a document's first question pays it cold and later ones pay only "
    "the uncached rest; cold is the mean prefill of each document's first such read in the run (in the order the "
    "answers were recorded), warm the mean of the later ones, so at Q questions per document lc pays "
    "warm + (cold - warm) / Q per question. Retrieval strategies (rag, op-rag, reorder, ...) read different chunks "
    "for each question: their prefill per question does not fall with Q. A routed strategy mixes the two by the "
    "share p of its questions that read the document (the prefix paid once per document that gets such a read: "
    "(1 - (1 - p)^Q) / Q per question). Assumes the cache keeps a document between its questions (no eviction) and "
    "that the run's first reads were cold.")

AXES = {"tokens": "prompt tokens", "prefill": "prefill tokens (prompt tokens not served from the prefix cache)",
        "seconds": "reading seconds on this machine"}


def axis_note(axis: str) -> str:
    """Which cost the verdict ranked strategies by, and why tokens is the default."""
    return (f"The verdict ranks strategies by {AXES.get(axis, axis)} (--cost {axis}"
            f"{', the default' if axis == 'tokens' else ''}). Tokens is the default because it is the same count on "
            "any machine and in any cache state; prefill depends on what the server's cache held during the run, and "
            "seconds on this machine and its load.")


def _q(x: float) -> str:
    """A questions-per-document figure: 4, 2.5, 12.3, 1,000."""
    return f"{x:,.1f}".removesuffix(".0")


def projection_header(section: CostSection) -> str:
    return f"Projected prefill / question at Q = {_q(section.q)}"


def section_line(section: CostSection) -> str:
    """Questions, documents and the Q the projection uses."""
    where = ("--questions-per-document" if section.q_given else "as observed")
    return (f"{section.n_questions} question(s) on {section.n_documents} document(s): Q observed = "
            f"{_q(section.observed_q)} per document; projected at Q = {_q(section.q)} ({where}).")


def _share(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def cost_cells(s: StrategyCost, q: float) -> tuple[str, ...]:
    projected = s.projected(q)
    return (s.strategy, str(s.n), _n(s.prompt_tokens), _n(s.prefill_tokens), _share(s.cached_share),
            f"{s.reading_s:.2f}", f"{s.calls:.2f}", "–" if projected is None else _n(projected))


def cost_view(sections: Sequence[CostSection], axis: str) -> dict:
    """What both Cost templates show, as plain text: the two notes, then per data set its
    heading, the Q line, the table (with the projection's column) and the break-even."""
    return {"axis_note": axis_note(axis), "model_note": MODEL_NOTE, "sections": [
        {"dataset": section.dataset, "line": section_line(section), "headers": (*HEADERS, projection_header(section)),
         "rows": [cost_cells(s, section.q) for s in section.strategies], "break_even": section.break_even.sentence}
        for section in sections]}


def cost_markdown(sections: Sequence[CostSection], axis: str) -> list[str]:
    """The Cost section as Markdown lines (a ``## Cost`` heading first)."""
    return md_lines(render("cost.md.j2", cost=cost_view(sections, axis)))


def cost_html(sections: Sequence[CostSection], axis: str) -> str:
    """The same as ``cost_markdown``: a ``<section id="cost">``, every text escaped."""
    return render("cost.html.j2", cost=cost_view(sections, axis))


def cost_json(section: CostSection | None, axis: str = "tokens") -> dict:
    """One data set's cost as data (``lcrag report --json``, key ``cost``): ``axis`` the
    cost the verdict ranked by, then the table, the projection and the break-even
    (only ``axis`` when the data set has no answered row)."""
    if section is None:
        return {"axis": axis}
    def strategy(s: StrategyCost) -> dict:
        d = s.document
        return {"strategy": s.strategy, "n": s.n, "prompt_tokens": s.prompt_tokens, "prefill_tokens": s.prefill_tokens,
                "cached_share": s.cached_share, "reading_s": s.reading_s, "calls": s.calls,
                "document_share": s.document_share,
                "cold_prefill": None if d is None else d.cold_prefill,
                "warm_prefill": None if d is None else d.warm_prefill,
                "projected_prefill": s.projected(section.q)}
    return {"axis": axis, "questions": section.n_questions, "documents": section.n_documents,
            "questions_per_document_observed": section.observed_q, "projected_at": section.q,
            "strategies": [strategy(s) for s in section.strategies],
            "break_even": {"questions_per_document": section.break_even.questions_per_document,
                           "sentence": section.break_even.sentence}}
