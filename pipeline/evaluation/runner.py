"""Run every strategy over an evaluation set and record scored ledger rows.

Each corpus is ingested into its own index under the work folder (incremental:
a rerun costs nothing), questions of one corpus are answered in windows of
``EvalRun.batch_size``, every strategy on one window before the next window
(the server batches a window's questions; each call's rows are recorded before
the next starts, so a stopped run loses at most one call per corpus, not a whole
strategy's hours on a one-corpus data set; and the strategies that read the same
document in one window, such as lc, auto and self-route's fall-back, find its
prefix still in the server's cache), and (question, strategy) pairs already in
the ledger for this run id are skipped, so an interrupted run resumes where it
stopped.

A question the reader fails on (``ReaderError``: refused, timed out, HTTP
error) does not end the run: it is recorded as an error row and the other
questions are answered. Only when ``EvalRun.max_consecutive_failures`` questions
fail in a row (the reader looks down) does the run stop, after recording them,
with a ``ReaderError`` saying so. Error rows are not "done", so rerunning the same
run id retries exactly the failed pairs; a retried success replaces its error row
(``Ledger.record``). Rows carry the fingerprint of the index that answered.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from lcrag.core.errors import LcragError
from lcrag.pipeline.evaluation.items import EvalDataError, EvalItem, EvalSet, changed_questions
from lcrag.pipeline.ingest.ingestion import ingest, runtime_for_index
from lcrag.pipeline.ingest.loaders import LoadResult
from lcrag.pipeline.ledger import FeatureRow
from lcrag.pipeline.recording import ReaderFailures, RunLabels, answer_and_record
from lcrag.pipeline.routing.features import pre_read_features
from lcrag.pipeline.routing.router import load_router, router_path
from lcrag.pipeline.session import Session
from lcrag.pipeline.strategies import Question, Toolkit, asks

log = logging.getLogger(__name__)

Progress = Callable[[int], None]  # called with the number of (question, strategy) pairs just finished


@dataclass(frozen=True)
class EvalRun:
    run_id: str
    dataset: str
    strategies: tuple[str, ...]
    work_dir: Path
    existing_index: Path | None = None  # for qa-jsonl: the user's own index
    workers: int = 4  # corpora answered concurrently
    max_consecutive_failures: int = 8  # reader failures in a row that stop the run (the reader looks down)
    router: Path | None = None  # a fitted router file for every corpus (auto, self-route's threshold); else an existing index's own
    batch_size: int = 16  # questions per window: every strategy answers a window (one call each, recorded) before the next

    def __post_init__(self) -> None:
        for name in ("workers", "max_consecutive_failures", "batch_size"):
            if getattr(self, name) < 1:
                raise EvalDataError(f"EvalRun.{name} must be at least 1, got {getattr(self, name)}")


def index_folder(work_dir: Path, key: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)[:60]
    return work_dir / "indexes" / f"{safe}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def pending_pairs(items: Sequence[EvalItem], strategies: Sequence[str], done: set[tuple[str, str]]) -> int:
    """(question, strategy) pairs still to answer: not recorded yet, and asked at all (the
    oracle is not asked questions without gold evidence, ``answer.asks``)."""
    return sum(1 for i in items for s in strategies if (i.question.qid, s) not in done and asks(s, i.question))


def not_asked(items: Sequence[EvalItem], strategies: Sequence[str]) -> dict[str, int]:
    """Per strategy that skips some questions (the oracle, on those without gold
    evidence), how many of ``items`` it is not asked; strategies asked everything are absent."""
    counts = {s: sum(1 for i in items if not asks(s, i.question)) for s in strategies}
    return {s: n for s, n in counts.items() if n}


def feature_rows(questions: Sequence[Question], tools: Toolkit, labels: RunLabels) -> list[FeatureRow]:
    """Each question's pre-read routing features (``answer.features``), for ``route
    fit``; a question whose features cannot be computed is left without them."""
    rows = []
    for question in questions:
        try:
            values = pre_read_features(question, tools)
        except LcragError as err:
            log.warning("no routing features for question %s: %s", question.qid, err)
            continue
        rows.append(FeatureRow(labels.run_id, question.qid, labels.dataset, labels.index_id, json.dumps(values)))
    return rows


def run_evaluation(
    evalset: EvalSet,
    run: EvalRun,
    session: Session,
    budget: int,
    progress: Progress | None = None,
) -> int:
    """Answer every pending (question, strategy) pair with the session's reader, encoder
    and ledger; returns how many were answered (pairs the reader failed on are recorded
    as errors and not counted). Raises ``ReaderError`` when the reader fails
    ``run.max_consecutive_failures`` times in a row."""
    config, reader, ledger = session.config, session.reader, session.ledger
    done = ledger.done_keys(run.run_id)
    changed = changed_questions(ledger.asked_questions(run.run_id), evalset.items)
    if changed:
        qid, before, now = changed[0]
        raise EvalDataError(
            f"run {run.run_id} already answered {len(changed)} question(s) that read differently now "
            f"(first: {qid}: {before!r} -> {now!r}); resuming would mix two question sets under one run id. "
            "Pass a new --run-id, or restore the questions the run started with"
        )
    featured = {row.question_id for row in ledger.feature_rows(run.run_id)}
    fixed_router = load_router(run.router) if run.router else None
    if run.router and fixed_router is None:
        raise EvalDataError(f"no router file at {run.router}; fit one with `lcrag route fit --run-id RUN --out {run.router}`")
    failures = ReaderFailures(run.max_consecutive_failures)
    by_corpus: dict[str, list[EvalItem]] = {}
    for item in evalset.items:
        by_corpus.setdefault(item.corpus, []).append(item)
    ingest_lock = threading.Lock()
    stopping = threading.Event()  # set when the run is being stopped: corpora return at their next strategy
    answered = 0
    answered_lock = threading.Lock()

    def one_corpus(key: str) -> None:
        nonlocal answered
        items = by_corpus[key]
        unfeatured = [i for i in items if i.question.qid not in featured]
        if failures.tripped or stopping.is_set() or not (pending_pairs(items, run.strategies, done) or unfeatured):
            return
        if key == "existing":
            if run.existing_index is None:
                raise EvalDataError("this data set asks questions over an existing index: pass --index")
            index = run.existing_index
        else:
            index = index_folder(run.work_dir, key)
            built = runtime_for_index(config, index)  # encoder.runtime auto: an index keeps its own
            with ingest_lock:  # one encoder, one ingestion at a time
                ingest(LoadResult("eval", evalset.corpora[key].documents, ()), index, built,
                       session.encoder_for(built.encoder), "eval")
        router = fixed_router if run.router else (
            load_router(router_path(run.existing_index)) if key == "existing" and run.existing_index else None)
        with session.open_index(index) as corpus:
            tools = session.toolkit(corpus, budget=budget, may_abstain=evalset.may_abstain, router=router)
            labels = RunLabels.for_corpus(corpus, run.run_id, reader.model, evalset.name, index_id=f"{evalset.name}:{key}")
            ledger.record_features(feature_rows([i.question for i in unfeatured], tools, labels))
            for start in range(0, len(items), run.batch_size):
                window = items[start:start + run.batch_size]
                for name in run.strategies:
                    batch = [i for i in window if (i.question.qid, name) not in done and asks(name, i.question)]
                    if not batch:
                        continue
                    if failures.tripped or stopping.is_set():
                        return
                    golds = {i.question.qid: i.golds for i in batch if i.golds}
                    answerable = {i.question.qid: i.answerable for i in batch} if evalset.may_abstain else None
                    results = answer_and_record([i.question for i in batch], [name], tools, ledger, labels, golds=golds,
                                                answerable=answerable, failures=failures)
                    with answered_lock:
                        answered += len(results[name])
                    if progress is not None:
                        progress(len(batch))

    def guarded(key: str) -> None:
        try:
            one_corpus(key)
        except BaseException:
            stopping.set()  # before this worker takes the next corpus
            raise

    pool = ThreadPoolExecutor(max_workers=max(1, run.workers))
    try:
        futures = [pool.submit(guarded, key) for key in by_corpus]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.result()
    except BaseException:
        # Ctrl-C or a failed corpus: corpora not begun are dropped and the running ones stop
        # after the call in hand (its rows are recorded), so the run ends in seconds to
        # a minute, not after every queued corpus; the same run id resumes it.
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return answered

