"""Embedding pending units in other processes (a Dask cluster, any executor) while
the writer stays the one process that writes the index.

The work splits in two halves that share nothing but plain data:

- ``embed_batch`` (the worker's half) is pure: a ``BatchJob`` -- a batch's units,
  the documents they read from, the encoder and chunking settings, all frozen
  dataclasses -- goes in, the batch's chunks and vectors come out. It tokenizes
  the documents itself, and a process builds the encoder for a given
  ``EncoderConfig`` once and keeps it (``worker_encoder``), so a worker process
  loads the model once, not once per batch.
- ``embed_pending_distributed`` (the writer's half) reads the pending units, cuts
  them into the same batches as ``embed_pending``, keeps up to ``ahead`` of them
  submitted, and commits the results in batch order exactly as ``embed_pending``
  does: vectors upserted, then the units marked done in one catalog transaction.
  A crash or a failed batch therefore leaves a prefix of the plan done and the
  rest pending, and the next run resumes it.

``submit`` is any callable that starts ``embed_batch`` on a job and returns an
object with ``result()``: ``functools.partial(executor.submit, embed_batch)`` for
a ``concurrent.futures`` executor, ``partial(client.submit, embed_batch, pure=False)``
for a ``dask.distributed`` client, or a Prefect task runner's ``submit`` (the
ingest flow does that: one Prefect task run per batch on a ``DaskTaskRunner``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lcrag.core.types import Chunk, Document, Unit
from lcrag.pipeline.config import ChunkConfig, EncoderConfig
from lcrag.pipeline.ingest.embedding import embed_units
from lcrag.pipeline.ingest.ingestion import (
    EmbedReport,
    IndexWriter,
    Progress,
    _unit_batches,
    batch_documents,
    commit_batch,
)
from lcrag.retrievers.encoders.encoder import EncoderError, make_encoder
from lcrag.retrievers.encoders.runtimes import resolve_runtime

# -- the worker's half ---------------------------------------------------------------


@dataclass(frozen=True)
class BatchJob:
    """One batch of pending units with everything a worker needs to embed it."""

    index: int  # the batch's place in the plan, from 1
    units: tuple[Unit, ...]
    documents: tuple[Document, ...]  # every document the units read from
    encoder: EncoderConfig
    chunking: ChunkConfig

    @property
    def tokens(self) -> int:
        return sum(u.n_tokens for u in self.units)

    def describe(self) -> str:
        return f"batch {self.index} ({len(self.units)} units, {self.tokens:,} tokens, first unit {self.units[0].unit_id})"


@dataclass(frozen=True, eq=False)
class BatchResult:
    """A batch's chunks (in ``embed_units`` order) and one vector per chunk."""

    index: int
    chunks: tuple[Chunk, ...]
    vectors: np.ndarray
    worker: str  # host:pid of the process that embedded it
    seconds: float


_ENCODERS: dict[EncoderConfig, object] = {}
_ENCODERS_LOCK = threading.Lock()
# Token offsets of the last few documents a process tokenized: a long document's
# consecutive batches that land on the same worker tokenize it once.
_OFFSETS: OrderedDict[tuple[EncoderConfig, str, str], np.ndarray] = OrderedDict()
_OFFSETS_KEPT = 4


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_encoder(config: EncoderConfig):
    """This process's encoder for CONFIG, built and warmed up on first use.

    A cache of this process (a Dask worker keeps its model between batches), keyed
    by the whole config, so a batch never runs with another model's settings."""
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(config)
        if encoder is None:
            encoder = make_encoder(config)
            runtime = getattr(encoder, "runtime", None)
            if runtime is not None and runtime != resolve_runtime(config.runtime):
                # the index records the writer's runtime: another one's vectors must not join it
                raise EncoderError(f"worker {worker_name()} cannot run the index's encoder runtime "
                                   f"{config.runtime}: {encoder.runtime_note}")
            encoder = _ENCODERS[config] = encoder.warm_up()
    return encoder


def _token_offsets(encoder, config: EncoderConfig, docs: Sequence[Document]) -> dict[str, np.ndarray]:
    with _ENCODERS_LOCK:
        found = {d.doc_id: _OFFSETS.get((config, d.doc_id, d.content_hash)) for d in docs}
    missing = [d for d in docs if found[d.doc_id] is None]
    fresh = encoder.token_offsets([d.text for d in missing]) if missing else []
    with _ENCODERS_LOCK:
        for doc, offsets in zip(missing, fresh):
            found[doc.doc_id] = offsets
            _OFFSETS[(config, doc.doc_id, doc.content_hash)] = offsets
        while len(_OFFSETS) > _OFFSETS_KEPT:
            _OFFSETS.popitem(last=False)
    return found


def embed_batch(job: BatchJob) -> BatchResult:
    """Embed one batch (the function workers run). Pure but for the process's caches."""
    started = time.perf_counter()
    encoder = worker_encoder(job.encoder)
    docs = {d.doc_id: d for d in job.documents}
    offsets = _token_offsets(encoder, job.encoder, job.documents)
    chunks, vectors = embed_units(job.units, docs, offsets, encoder, job.chunking)
    return BatchResult(job.index, tuple(chunks), np.asarray(vectors, dtype=np.float32), worker_name(),
                       time.perf_counter() - started)


# -- the writer's half ---------------------------------------------------------------


class BatchFuture(Protocol):
    def result(self, timeout: float | None = None) -> BatchResult: ...


Submit = Callable[[BatchJob], BatchFuture]


class BatchEmbedError(RuntimeError):
    """A batch failed in its worker (after its retries). The batches before it are
    committed, it and the rest stay pending: running the ingestion again resumes."""

    def __init__(self, job: BatchJob, committed: int, cause: BaseException) -> None:
        super().__init__(
            f"{job.describe()} failed: {type(cause).__name__}: {cause}; {committed} batch(es) before it are "
            "committed and the rest stay pending, so running the ingestion again resumes"
        )
        self.batch = job.index
        self.committed = committed


@dataclass
class _Sent:
    job: BatchJob
    future: BatchFuture
    attempts: int = 1


def embed_pending_distributed(
    writer: IndexWriter,
    submit: Submit,
    *,
    ahead: int = 2,
    encoder: EncoderConfig | None = None,
    retries: int = 0,
    progress: Progress | None = None,
    on_commit: Callable[[BatchResult], None] | None = None,
) -> EmbedReport:
    """Embed every pending unit through SUBMIT, committing batch by batch in plan order.

    ``ahead`` bounds the batches submitted and not yet committed (their texts and
    vectors are what this process holds). A batch whose future raises is
    submitted again up to ``retries`` times, then ``BatchEmbedError`` is raised;
    batches still in flight are cancelled. ``encoder`` is the config the workers
    build their encoder from (default: the index's); only ``threads`` may differ
    from the index's, anything else would put another model's vectors in it.
    ``on_commit`` sees each committed batch's result (``worker`` says where it ran)."""
    if ahead < 1:
        raise ValueError(f"ahead must be >= 1, got {ahead}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    worker_config = encoder or writer.config.encoder
    if dataclasses.replace(worker_config, threads=0) != dataclasses.replace(writer.config.encoder, threads=0):
        raise ValueError("workers must embed with the index's encoder settings (only encoder.threads may differ)")
    started = time.perf_counter()
    pending = [r.unit for r in writer.catalog.unit_records("pending")]
    if not pending:
        return EmbedReport(0, 0, 0, time.perf_counter() - started)
    dim = writer.encoder.warm_up().dim
    writer.vectors.ensure_collection(dim)
    totals = {"batches": 0, "units": 0, "chunks": 0, "tokens": 0}

    def commit(sent: _Sent) -> None:
        result = _await(sent, submit, retries, totals["batches"])
        _check_result(sent.job, result, dim)
        chunks = list(result.chunks)
        commit_batch(writer, sent.job.units, chunks, result.vectors)
        totals["batches"] += 1
        totals["units"] += len(sent.job.units)
        totals["chunks"] += len(chunks)
        totals["tokens"] += sent.job.tokens
        if progress is not None:
            progress(sent.job.tokens)
        if on_commit is not None:
            on_commit(result)

    in_flight: deque[_Sent] = deque()
    carried: dict[str, Document] = {}
    try:
        for index, batch in enumerate(_unit_batches(pending, writer.config.ingest.commit_tokens), start=1):
            carried = batch_documents(writer, batch, carried)
            job = BatchJob(index, tuple(batch), tuple(carried.values()), worker_config, writer.config.chunking)
            in_flight.append(_Sent(job, submit(job)))
            if len(in_flight) >= ahead:
                commit(in_flight.popleft())
        while in_flight:
            commit(in_flight.popleft())
    finally:
        _cancel(sent.future for sent in in_flight)
    return EmbedReport(totals["units"], totals["chunks"], totals["tokens"], time.perf_counter() - started)


def _await(sent: _Sent, submit: Submit, retries: int, committed: int) -> BatchResult:
    while True:
        try:
            return sent.future.result()
        except Exception as exc:
            if sent.attempts > retries:
                raise BatchEmbedError(sent.job, committed, exc) from exc
            sent.attempts += 1
            sent.future = submit(sent.job)


def _check_result(job: BatchJob, result: BatchResult, dim: int) -> None:
    unit_ids = {u.unit_id for u in job.units}
    problem = None
    if result.index != job.index:
        problem = f"the result of batch {result.index} came back for it"
    elif result.vectors.shape != (len(result.chunks), dim):
        problem = f"{result.vectors.shape} vectors for {len(result.chunks)} chunks of dimension {dim}"
    elif any(c.unit_id not in unit_ids for c in result.chunks):
        problem = "chunks of units outside the batch"
    if problem:
        raise BatchEmbedError(job, job.index - 1, RuntimeError(problem))


def _cancel(futures: Iterable[BatchFuture]) -> None:
    for future in futures:
        # a Prefect future has no cancel(); the executor's future it wraps has
        cancel = getattr(future, "cancel", None) or getattr(getattr(future, "wrapped_future", None), "cancel", None)
        if cancel is not None:
            with contextlib.suppress(Exception):  # best effort: the work is discarded either way
                cancel()
