"""Embedding pending units in other processes (``lcrag.pipeline.ingest.distributed``):
the writer commits batches in plan order whatever order workers finish in, a failed
batch leaves a resumable index, and the Prefect ingest flow on a local Dask cluster of
worker processes builds the same index as the in-process path."""

from __future__ import annotations

import os
import socket
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from lcrag.pipeline.index.catalog import Catalog
from lcrag.pipeline.index.folder import IndexPaths, IndexStateError, require_finished
from lcrag.pipeline.index.search import IndexReader
from lcrag.pipeline.ingest import distributed
from lcrag.pipeline.ingest.distributed import (
    BatchEmbedError,
    BatchJob,
    BatchResult,
    embed_batch,
    embed_pending_distributed,
)
from lcrag.pipeline.ingest.ingestion import IndexWriter, index_changed, ingest, plan, publish
from lcrag.pipeline.ingest.loaders import load_source
from tests.helpers import QUERIES, assert_same_index, small_config, snapshot, unit_counts


@pytest.fixture
def shared_encoder(encoder, monkeypatch):
    """In-process workers use the session's encoder (it is the one their config builds)."""
    monkeypatch.setitem(distributed._ENCODERS, small_config().encoder, encoder)
    return encoder


def reference_index(corpus: Path, index: Path, encoder):
    return ingest(load_source(corpus), index, small_config(), encoder, "corpus")


def distributed_run(corpus: Path, index: Path, encoder, submit, **options):
    """plan -> embed through SUBMIT -> publish, as the flow's steps do."""
    with IndexWriter(index, small_config(), encoder) as writer:
        plan_report = plan(writer, load_source(corpus), "corpus")
        report = embed_pending_distributed(writer, submit, **options)
        publish(writer, index_changed(plan_report, report))
    return report


def search_results(index: Path, encoder):
    with IndexReader(index, lambda c: encoder) as reader:
        return [[(h.chunk_id, round(h.score, 4)) for h in reader.search(q, k=5)] for q in QUERIES]


def done_units(writer: IndexWriter) -> set[str]:
    return {r.unit.unit_id for r in writer.catalog.unit_records("done")}


def test_threads_as_workers_build_the_same_index(topic_corpus, tmp_path, shared_encoder):
    reference = reference_index(topic_corpus, tmp_path / "reference", shared_encoder)
    workers: set[str] = set()
    with ThreadPoolExecutor(max_workers=2) as pool:
        report = distributed_run(topic_corpus, tmp_path / "threads", shared_encoder, partial(pool.submit, embed_batch),
                                 ahead=3, on_commit=lambda r: workers.add(r.worker))
    assert (report.units, report.chunks, report.tokens) == (reference.embed.units, reference.embed.chunks, reference.embed.tokens)
    assert workers == {f"{socket.gethostname()}:{os.getpid()}"}
    assert_same_index(snapshot(tmp_path / "reference"), snapshot(tmp_path / "threads"))
    assert search_results(tmp_path / "reference", shared_encoder) == search_results(tmp_path / "threads", shared_encoder)


class ReverseCompletion:
    """A submit whose futures finish newest first: asked for any result, it completes
    every submitted batch in reverse order of submission."""

    def __init__(self) -> None:
        self.waiting: list[tuple[BatchJob, Future]] = []
        self.completed: list[int] = []
        self.in_flight_max = 0
        self.committed = 0

    def __call__(self, job: BatchJob) -> ReverseCompletion.Pending:
        future: Future = Future()
        self.waiting.append((job, future))
        self.in_flight_max = max(self.in_flight_max, job.index - self.committed)
        return self.Pending(self, future)

    def finish_all(self) -> None:
        for job, future in reversed(self.waiting):
            future.set_result(embed_batch(job))
            self.completed.append(job.index)
        self.waiting.clear()

    class Pending:
        def __init__(self, owner: ReverseCompletion, future: Future) -> None:
            self.owner, self.future = owner, future

        def result(self, timeout=None) -> BatchResult:
            if not self.future.done():
                self.owner.finish_all()
            return self.future.result()


def test_out_of_order_completion_still_commits_in_plan_order(topic_corpus, tmp_path, shared_encoder):
    reference_index(topic_corpus, tmp_path / "reference", shared_encoder)
    submit = ReverseCompletion()
    committed: list[int] = []
    batches: dict[int, set[str]] = {}
    index = tmp_path / "reversed"
    with IndexWriter(index, small_config(), shared_encoder) as writer:
        plan(writer, load_source(topic_corpus), "corpus")
        original = submit.__call__

        def remember(job):
            batches[job.index] = {u.unit_id for u in job.units}
            return original(job)

        def on_commit(result: BatchResult) -> None:
            committed.append(result.index)
            submit.committed = result.index
            # what is done is exactly the batches up to this one: a prefix of the plan
            assert done_units(writer) == set().union(*(batches[i] for i in range(1, result.index + 1)))

        report = embed_pending_distributed(writer, remember, ahead=3, on_commit=on_commit)
        publish(writer, True)
    assert len(committed) >= 4 and committed == sorted(committed) == list(range(1, len(committed) + 1))
    assert submit.completed[:3] == [3, 2, 1]  # the workers really did finish out of order
    assert submit.in_flight_max == 3  # never more than `ahead` batches out
    assert report.units == sum(len(b) for b in batches.values())
    assert_same_index(snapshot(tmp_path / "reference"), snapshot(index))


def test_a_failed_batch_leaves_a_resumable_index(topic_corpus, tmp_path, shared_encoder):
    reference_index(topic_corpus, tmp_path / "reference", shared_encoder)
    index = tmp_path / "failed"
    attempts: dict[int, int] = {}
    lock = threading.Lock()

    def flaky(job: BatchJob, fail: int, times: int) -> BatchResult:
        with lock:
            attempts[job.index] = attempts.get(job.index, 0) + 1
            tries = attempts[job.index]
        if job.index == fail and tries <= times:
            raise OSError(f"worker lost while embedding batch {job.index}")
        return embed_batch(job)

    failure = r"batch 3 .*OSError: worker lost.*2 batch\(es\) before it are committed"
    with ThreadPoolExecutor(max_workers=2) as pool, pytest.raises(BatchEmbedError, match=failure) as err:
        distributed_run(topic_corpus, index, shared_encoder, lambda job: pool.submit(flaky, job, 3, 10), ahead=2)
    assert err.value.batch == 3 and err.value.committed == 2
    counts = unit_counts(index)
    assert counts["done"] >= 2 and counts["pending"] >= 1
    with pytest.raises(IndexStateError, match="interrupted"):
        require_finished(index)

    # the next run resumes the stored plan; a batch failing once is submitted again
    attempts.clear()
    with ThreadPoolExecutor(max_workers=2) as pool:
        resumed = distributed_run(topic_corpus, index, shared_encoder, lambda job: pool.submit(flaky, job, 1, 1),
                                  ahead=2, retries=1)
    assert attempts[1] == 2
    assert resumed.units == counts["pending"]
    assert unit_counts(index) == {"pending": 0, "done": counts["done"] + counts["pending"]}
    assert_same_index(snapshot(tmp_path / "reference"), snapshot(index))
    assert search_results(tmp_path / "reference", shared_encoder) == search_results(index, shared_encoder)


def test_workers_must_use_the_index_encoder(topic_corpus, tmp_path, shared_encoder):
    config = small_config()
    with IndexWriter(tmp_path / "index", config, shared_encoder) as writer:
        with pytest.raises(ValueError, match="encoder settings"):
            embed_pending_distributed(writer, embed_batch, encoder=type(config.encoder)(window=256))
        with pytest.raises(ValueError, match="ahead"):
            embed_pending_distributed(writer, embed_batch, ahead=0)
        # nothing pending: nothing submitted
        assert embed_pending_distributed(writer, lambda job: pytest.fail("submitted")).units == 0


SMALL_YAML = """\
units: {max_tokens: 96, group_by: neighbours}
chunking: {target_tokens: 24}
ingest: {commit_tokens: 40}
"""


@pytest.mark.slow
def test_ingest_flow_on_a_local_dask_cluster_of_processes(prefect_harness, topic_corpus, tmp_path, encoder):
    pytest.importorskip("prefect_dask")
    from lcrag.flows.ingest import ingest_flow

    reference_index(topic_corpus, tmp_path / "reference", encoder)
    config = tmp_path / "config.yaml"
    config.write_text(SMALL_YAML)
    index = tmp_path / "dask"
    summary = ingest_flow(str(topic_corpus), str(index), config_file=str(config),
                          embed_runner="dask", embed_workers=2, embed_ahead=4)
    assert summary["embedded_units"] == summary["units"] >= 4
    here = f"{socket.gethostname()}:{os.getpid()}"
    assert summary["embedded_by"] and here not in summary["embedded_by"]  # batches ran in worker processes
    assert_same_index(snapshot(tmp_path / "reference"), snapshot(index))
    catalog = Catalog(IndexPaths(index).catalog, read_only=True)
    try:
        assert catalog.count("chunks") == summary["chunks"]
    finally:
        catalog.close()
    assert search_results(tmp_path / "reference", encoder) == search_results(index, encoder)

    again = ingest_flow(str(topic_corpus), str(index), config_file=str(config), embed_runner="dask")
    assert again["embedded_units"] == 0 and again["embedded_by"] == []  # nothing pending: no cluster started


def test_embed_runner_is_checked():
    from lcrag.core.errors import ConfigError
    from lcrag.flows.ingest import EmbedWorkers

    with pytest.raises(ConfigError, match="embed_runner"):
        EmbedWorkers("spark")
    with pytest.raises(ConfigError, match="embed_workers"):
        EmbedWorkers("dask", 0)
    spec = EmbedWorkers("dask", 2)
    assert spec.in_flight == 4
    from lcrag.pipeline.config import EncoderConfig

    assert spec.encoder_config(EncoderConfig()).threads == max(1, (os.cpu_count() or 1) // 2)
    assert spec.encoder_config(EncoderConfig(threads=3)).threads == 3
    assert EmbedWorkers("dask", address="tcp://scheduler:8786").encoder_config(EncoderConfig()).threads == 0
