"""Where quality is lost: the four-condition protocol read off ledger rows.

On one data set, the questions that the ``oracle`` control (the gold evidence alone),
``rag`` (retrieved passages) and full reading (``lc`` and/or ``coa``) all answered
(a pair is a question in one run, as in the verdict):

- **retrieval loss** = oracle - rag: what the reader would gain if retrieval found
  the evidence (paired mean difference, 95% interval);
- **full-reading recovery** = best full reader - rag, the full reader being whichever
  of lc and coa scores higher on these questions (named in ``full_reader``);
- **reader limit** = 1 - oracle: what the reader misses even from the gold evidence
  (95% Wilson interval of the oracle's accuracy; a bootstrap where scores are not 0/1).

Paired intervals are ``paired_tests.paired_non_inferiority`` at margin 0 and alpha
0.025 per side (Tango's score interval for 0/1 scores on independent questions, else
a bootstrap that resamples whole documents when several questions share one). A
difference is *shown* when its interval excludes 0 -- and its questions are not
spread over too few documents (under ``MIN_CLUSTERS``) to trust a cluster bootstrap.

The sentence follows the first rule that holds:

1. ``long_context_pays``: recovery shown > 0 -- reading whole documents beats rag;
2. ``retrieval_bottleneck``: retrieval loss shown > 0 (and full reading does not
   recover it, else rule 1) -- fix retrieval;
3. ``bigger_reader``: the reader limit's lower bound is above ``READER_LIMIT`` (0.5:
   even from the gold evidence the reader is wrong more often than right) and the
   retrieval loss is not shown -- a stronger reader is what would help;
4. ``rag_is_enough``: retrieval loss or recovery shown < 0, neither shown > 0 --
   nothing beats rag's passages here;
5. ``cannot_tell``: no difference excludes 0 on these N questions.

A data set whose rows lack rag, a full reader, or any question all three answered
gets ``incomplete``; one without oracle rows gets no diagnosis at all. The primary
metric is the verdict's (``verdict.metric_for``, ``score_of``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lcrag.pipeline.ledger import LedgerRow
from lcrag.pipeline.statistics.paired_tests import paired_non_inferiority, too_few_clusters, wilson_lower
from lcrag.pipeline.statistics.verdict import UNLABELLED, metric_for, score_of

ORACLE = "oracle"
RAG = "rag"
FULL_READERS = ("lc", "coa")  # reading the question's whole scope; the better one on the questions is used
ALPHA = 0.025  # per side: 95% intervals
READER_LIMIT = 0.5  # reader limit's lower bound above this: the reader, not retrieval, is the bottleneck

LONG_CONTEXT_PAYS = "long_context_pays"
RETRIEVAL_BOTTLENECK = "retrieval_bottleneck"
BIGGER_READER = "bigger_reader"
RAG_IS_ENOUGH = "rag_is_enough"
CANNOT_TELL = "cannot_tell"
INCOMPLETE = "incomplete"
FINDINGS = (LONG_CONTEXT_PAYS, RETRIEVAL_BOTTLENECK, BIGGER_READER, RAG_IS_ENOUGH, CANNOT_TELL, INCOMPLETE)

PairKey = tuple[str, str]  # (run_id, question_id)


@dataclass(frozen=True)
class Interval:
    """A mean (a difference or a share) with its 95% interval. ``trusted`` is False when
    the interval is a cluster bootstrap over too few documents: then nothing is shown."""

    mean: float
    low: float
    high: float
    method: str = ""
    trusted: bool = True

    @property
    def above_zero(self) -> bool:
        return self.trusted and self.low > 0.0

    @property
    def below_zero(self) -> bool:
        return self.trusted and self.high < 0.0

    def as_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "method": self.method, "trusted": self.trusted}


@dataclass(frozen=True)
class Diagnosis:
    """One data set's diagnosis: the three quantities on the ``n`` questions all of
    oracle, rag and the full reader(s) answered, the finding (``FINDINGS``) and the
    sentence that says what to do. ``without_oracle``: questions rag answered that the
    oracle was not asked (no gold evidence), outside the diagnosis."""

    dataset: str
    metric: str
    n: int
    finding: str
    sentence: str
    full_reader: str | None = None
    oracle: float | None = None  # mean scores on the n questions
    rag: float | None = None
    full: float | None = None
    retrieval_loss: Interval | None = None  # oracle - rag
    recovery: Interval | None = None  # full reader - rag
    reader_limit: Interval | None = None  # 1 - oracle
    missing: tuple[str, ...] = ()
    without_oracle: int = 0

    def as_dict(self) -> dict:
        def iv(value: Interval | None) -> dict | None:
            return None if value is None else value.as_dict()

        return {
            "dataset": self.dataset, "metric": self.metric, "n_questions": self.n, "finding": self.finding,
            "sentence": self.sentence, "full_reader": self.full_reader,
            "means": {"oracle": self.oracle, "rag": self.rag, "full": self.full},
            "retrieval_loss": iv(self.retrieval_loss), "recovery": iv(self.recovery), "reader_limit": iv(self.reader_limit),
            "missing": list(self.missing), "without_oracle": self.without_oracle,
        }


# ------------------------------------------------------------------ intervals


def paired_interval(a: Sequence[float], b: Sequence[float], clusters: Sequence[str] | None = None) -> Interval:
    """a - b per question, paired, with its 95% interval; ``clusters`` (the document
    each question was asked over) are used when some holds several questions."""
    test = paired_non_inferiority(list(a), list(b), margin=0.0, alpha=ALPHA,
                                  clusters=None if clusters is None else list(clusters))
    trusted = not too_few_clusters(test.clusters)
    return Interval(test.mean_diff, test.low, test.high, test.method, trusted)


def wilson_upper(hits: int, n: int, alpha: float = ALPHA) -> float:
    """One-sided (1 - alpha) Wilson upper bound: the lower bound of the misses, mirrored."""
    return 1.0 - wilson_lower(n - hits, n, alpha)


def miss_share(scores: Sequence[float]) -> Interval:
    """1 - mean score with its 95% interval: Wilson's for 0/1 scores, else a bootstrap."""
    values = [float(v) for v in scores]
    if all(v in (0.0, 1.0) for v in values):
        hits, n = int(sum(values)), len(values)
        return Interval(1.0 - hits / n, 1.0 - wilson_upper(hits, n), 1.0 - wilson_lower(hits, n), "wilson")
    from lcrag.pipeline.statistics.intervals import bootstrap_mean

    boot = bootstrap_mean([1.0 - v for v in values], level=1.0 - 2 * ALPHA)
    return Interval(boot.mean, boot.low, boot.high, "bootstrap")


# ------------------------------------------------------------------ the rule


def _signed(iv: Interval) -> str:
    return f"{iv.mean:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]"


def _share(iv: Interval) -> str:
    return f"{iv.mean:.0%} [{iv.low:.0%}, {iv.high:.0%}]"


def _questions(n: int) -> str:
    return f"{n} question" + ("" if n == 1 else "s")


def choose(loss: Interval, recovery: Interval, limit: Interval) -> str:
    """The finding the module docstring's rule picks from the three intervals."""
    if recovery.above_zero:
        return LONG_CONTEXT_PAYS
    if loss.above_zero:
        return RETRIEVAL_BOTTLENECK
    if limit.trusted and limit.low > READER_LIMIT:
        return BIGGER_READER
    if loss.below_zero or recovery.below_zero:
        return RAG_IS_ENOUGH
    return CANNOT_TELL


def sentence(finding: str, n: int, full: str, loss: Interval, recovery: Interval, limit: Interval) -> str:
    """One sentence a user can act on, with the numbers it rests on."""
    numbers = (f"oracle - rag {_signed(loss)}, {full} - rag {_signed(recovery)}; the reader misses {_share(limit)} "
               f"even from the gold evidence")
    if finding == LONG_CONTEXT_PAYS:
        return (f"long context pays: reading whole documents with {full} beats rag by {_signed(recovery)} on "
                f"{_questions(n)}; use {full} where its cost is acceptable ({numbers})")
    if finding == RETRIEVAL_BOTTLENECK:
        return (f"retrieval is the bottleneck: from the gold evidence the reader scores {_signed(loss)} above rag's "
                f"passages on {_questions(n)}, and full reading does not recover it ({full} - rag {_signed(recovery)}); "
                f"improve retrieval (more or longer passages, hybrid search, chunking) before anything else")
    if finding == BIGGER_READER:
        return (f"a bigger reader is what would help: even from the gold evidence it misses {_share(limit)} of "
                f"{_questions(n)}, and retrieval loses nothing shown (oracle - rag {_signed(loss)}); "
                f"better retrieval cannot fix that")
    if finding == RAG_IS_ENOUGH:
        return (f"rag is enough: nothing beats rag's passages on {_questions(n)} ({numbers}); keep rag")
    few = "" if loss.trusted and recovery.trusted else "; the questions sit on too few documents to trust the intervals"
    return f"cannot tell on {_questions(n)}: no difference excludes 0 ({numbers}{few}); answer more questions"


# ------------------------------------------------------------------ from rows


def _scores(rows: Iterable[LedgerRow], metric: str) -> tuple[dict[str, dict[PairKey, float]], dict[PairKey, str]]:
    scores: dict[str, dict[PairKey, float]] = {}
    clusters: dict[PairKey, str] = {}
    for row in rows:
        value = score_of(row, metric) if row.error is None else None
        if value is None:
            continue
        key = (row.run_id, row.question_id)
        scores.setdefault(row.strategy, {}).setdefault(key, value)
        clusters.setdefault(key, row.index_id)
    return scores, clusters


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items)


def diagnose(rows: Sequence[LedgerRow], dataset: str, metric: str | None = None) -> Diagnosis | None:
    """The diagnosis of one data set from its rows (rows of other data sets are
    ignored); None when the oracle has no row there."""
    group = [r for r in rows if (r.dataset or UNLABELLED) == dataset]
    if not any(r.strategy == ORACLE for r in group):
        return None
    metric = metric or metric_for(dataset, group)
    scores, clusters = _scores(group, metric)
    fulls = [s for s in FULL_READERS if scores.get(s)]
    missing = tuple(name for name, present in ((ORACLE, bool(scores.get(ORACLE))), (RAG, bool(scores.get(RAG))),
                                               (" or ".join(FULL_READERS), bool(fulls))) if not present)
    without = len(set(scores.get(RAG, {})) - set(scores.get(ORACLE, {})))
    if missing:
        return Diagnosis(dataset, metric, 0, INCOMPLETE,
                         f"cannot diagnose: needs oracle, rag and {' or '.join(FULL_READERS)} answered on the same "
                         f"questions; no scored answer here from {', '.join(missing)}", missing=missing,
                         without_oracle=without)
    keys = sorted(set(scores[ORACLE]).intersection(scores[RAG], *(scores[s] for s in fulls)))
    if not keys:
        return Diagnosis(dataset, metric, 0, INCOMPLETE,
                         f"cannot diagnose: no question was answered by oracle, rag and {' and '.join(fulls)} alike",
                         without_oracle=without)
    full = max(fulls, key=lambda s: (_mean(scores[s][k] for k in keys), -FULL_READERS.index(s)))
    oracle, rag, best = ([scores[s][k] for k in keys] for s in (ORACLE, RAG, full))
    docs = [clusters[k] for k in keys]
    loss, recovery, limit = paired_interval(oracle, rag, docs), paired_interval(best, rag, docs), miss_share(oracle)
    finding = choose(loss, recovery, limit)
    return Diagnosis(dataset, metric, len(keys), finding, sentence(finding, len(keys), full, loss, recovery, limit),
                     full, _mean(oracle), _mean(rag), _mean(best), loss, recovery, limit, without_oracle=without)


def diagnoses(rows: Sequence[LedgerRow], datasets: Sequence[str] | None = None,
              metrics: Mapping[str, str] | None = None) -> tuple[Diagnosis, ...]:
    """A diagnosis for every data set (of ``datasets``, else all in ``rows``) that has oracle rows."""
    rows = list(rows)
    names = datasets if datasets is not None else sorted({r.dataset or UNLABELLED for r in rows})
    found = (diagnose(rows, name, (metrics or {}).get(name)) for name in names)
    return tuple(d for d in found if d is not None)
