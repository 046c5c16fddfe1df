"""Ingestion as a Prefect flow: the same steps as ``lcrag ingest``, as thin tasks.

Embedding and publishing retry on failure: both are resumable by design (pending
units are re-embedded, vectors are overwritten by id), so a retry after a
transient fault (a remote Qdrant hiccup, memory pressure) finishes the same
index. Loading does not retry: a bad file is reported and skipped, not retried.

Where embedding runs is a parameter of the run, not a config key: it does not
change what the index holds (the same config file serves a laptop and a
cluster), and a deployment sets it per schedule. ``embed_runner="local"`` (the
default) embeds in the writer's process. ``embed_runner="dask"`` sends each batch
of pending units to a Dask cluster as one Prefect task run, through a
``prefect_dask.DaskTaskRunner`` opened for the embed step only (the optional
``distributed`` extra): a local cluster of ``embed_workers`` processes, or the
existing cluster whose scheduler is at ``dask_address``. Loading, planning,
committing and publishing stay in the flow's process, the index's one writer
(``lcrag.pipeline.ingest.distributed``). Workers of an existing cluster need lcrag
and the encoder's model installed. Ray (``prefect-ray``'s ``RayTaskRunner``) would
plug in the same way: only the task runner differs.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lcrag.core.errors import ConfigError
from lcrag.pipeline.config import EncoderConfig, load_config
from lcrag.pipeline.index.folder import is_generational, live_name
from lcrag.pipeline.index.generations import start_generation
from lcrag.pipeline.ingest.distributed import (
    BatchJob,
    BatchResult,
    embed_batch,
    embed_pending_distributed,
    worker_name,
)
from lcrag.pipeline.ingest.ingestion import (
    EmbedReport,
    IndexWriter,
    default_source_name,
    embed_pending,
    finish_generation,
    index_changed,
    load_options,
    pending_tokens,
    plan,
    publish,
    runtime_for_index,
)
from lcrag.pipeline.ingest.loaders import LoadOptions, LoadResult, load_source
from lcrag.pipeline.session import Session


@task(name="load documents", cache_policy=NO_CACHE)
def load_task(source: str, fmt: str, options: LoadOptions) -> LoadResult:
    loaded = load_source(source, fmt, options)
    logger = get_run_logger()
    logger.info("loaded %d documents (%s), skipped %d", len(loaded.documents), loaded.format, len(loaded.skipped))
    for skipped in loaded.skipped:
        logger.warning("skipped %s: %s", skipped.path, skipped.reason)
    return loaded


@task(name="plan units", cache_policy=NO_CACHE)
def plan_task(writer: IndexWriter, loaded: LoadResult, source_name: str):
    report = plan(writer, loaded, source_name)
    get_run_logger().info(
        "added %d, changed %d, removed %d, unchanged %d; %d units dropped, %d planned",
        report.added, report.changed, report.removed, report.unchanged, report.units_dropped, report.units_planned,
    )
    return report


EMBED_RUNNERS = ("local", "dask")


@dataclass(frozen=True)
class EmbedWorkers:
    """Where the embed step runs (the flow's ``embed_*`` and ``dask_address`` parameters)."""

    runner: str = "local"  # local: in the writer's process | dask: one task run per batch on a Dask cluster
    workers: int = 2  # processes of the local Dask cluster (one thread each)
    address: str | None = None  # an existing cluster's scheduler ("tcp://host:8786"); no local cluster then
    ahead: int = 0  # batches submitted and not yet committed; 0 = two per worker

    def __post_init__(self) -> None:
        if self.runner not in EMBED_RUNNERS:
            raise ConfigError(f"embed_runner must be one of {', '.join(EMBED_RUNNERS)}, got {self.runner!r}")
        if self.workers < 1:
            raise ConfigError(f"embed_workers must be >= 1, got {self.workers}")
        if self.ahead < 0:
            raise ConfigError(f"embed_ahead must be >= 0, got {self.ahead}")

    @property
    def in_flight(self) -> int:
        return self.ahead or 2 * self.workers

    def encoder_config(self, config: EncoderConfig) -> EncoderConfig:
        """The workers' encoder settings: on a local cluster, ``threads: 0`` (every
        core) becomes the cores divided among the worker processes."""
        if self.address or config.threads:
            return config
        return dataclasses.replace(config, threads=max(1, (os.cpu_count() or 1) // self.workers))

    def task_runner(self):
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:
            raise ConfigError(
                "embed_runner 'dask' needs prefect-dask: install lcrag with its 'distributed' extra "
                "(pip install 'lcrag[distributed]')"
            ) from exc
        if self.address:
            return DaskTaskRunner(address=self.address)
        cluster = {"n_workers": self.workers, "processes": True, "threads_per_worker": 1, "dashboard_address": None}
        return DaskTaskRunner(cluster_kwargs=cluster)


@task(name="embed batch", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def embed_batch_task(job: BatchJob) -> BatchResult:
    """One batch of pending units, embedded wherever the task runner puts it."""
    return embed_batch(job)


@task(name="embed pending units", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def embed_task(writer: IndexWriter) -> tuple[EmbedReport, tuple[str, ...]]:
    """Embed the pending units in this process; returns the report and where it ran (host:pid)."""
    report = embed_pending(writer)
    get_run_logger().info("embedded %d units, %d chunks, %d tokens in %.1f s", report.units, report.chunks, report.tokens, report.seconds)
    return report, (worker_name(),) if report.units else ()


def embed_on_workers(writer: IndexWriter, workers: EmbedWorkers) -> tuple[EmbedReport, tuple[str, ...]]:
    """Embed the pending units as one ``embed batch`` task run per batch on the Dask
    cluster; this process commits them in order. Returns the report and the worker
    processes (host:pid) that embedded.

    It runs in the flow's body, not inside a task: a task run submitted from a task
    carries its parent's parameters to the worker, and the writer (open stores and a
    lock) cannot travel. A failed batch is retried by its task run, then submitted
    once more; after that the step fails with the plan's remainder still pending."""
    seen: dict[str, None] = {}
    with workers.task_runner() as runner:
        report = embed_pending_distributed(
            writer,
            lambda job: runner.submit(embed_batch_task, {"job": job}),
            ahead=workers.in_flight,
            encoder=workers.encoder_config(writer.config.encoder),
            retries=1,
            on_commit=lambda result: seen.setdefault(result.worker),
        )
    get_run_logger().info("embedded %d units, %d chunks, %d tokens in %.1f s on %d Dask worker process(es)",
                          report.units, report.chunks, report.tokens, report.seconds, len(seen))
    return report, tuple(seen)


@task(name="publish index", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def publish_task(writer: IndexWriter, changed: bool):
    return publish(writer, changed)


@task(name="publish generation", cache_policy=NO_CACHE)
def publish_generation_task(root: Path, folder: Path, live_before: str | None) -> str:
    live = finish_generation(root, folder, live_before)
    get_run_logger().info("live generation: %s", live)
    return live


@flow(name="lcrag-ingest", log_prints=True)
def ingest_flow(
    source: str, index: str, fmt: str = "auto", config_file: str | None = None, name: str | None = None,
    generations: bool = False, embed_runner: str = "local", embed_workers: int = 2, dask_address: str | None = None,
    embed_ahead: int = 0,
) -> dict[str, Any]:
    """Ingest SOURCE into the index folder INDEX; returns the run's summary. With
    ``generations`` (implied when INDEX already holds them) the run writes a new
    generation and publishes it at the end, so a running server switches to it.
    ``embed_runner="dask"`` embeds the pending units on a Dask cluster: a local one
    of ``embed_workers`` processes, or the one whose scheduler is ``dask_address``;
    ``embed_ahead`` batches are in flight (0: two per worker). See the module doc."""
    workers = EmbedWorkers(embed_runner, embed_workers, dask_address, embed_ahead)
    root = Path(index)
    config = runtime_for_index(load_config(config_file), root)  # encoder.runtime auto: an index keeps its own
    loaded = load_task(source, fmt, load_options(config))
    use_generations = generations or is_generational(root)
    live_before = live_name(root) if use_generations else None
    target = start_generation(root) if use_generations else root
    with IndexWriter(target, config, Session(config).encoder) as writer:
        plan_report = plan_task(writer, loaded, name or default_source_name(Path(source)))
        if workers.runner == "dask" and pending_tokens(writer):
            embed_report, embedded_by = embed_on_workers(writer, workers)
        else:  # in this process; also when nothing is pending (no cluster is started for nothing)
            embed_report, embedded_by = embed_task(writer)
        manifest = publish_task(writer, index_changed(plan_report, embed_report))
    live = publish_generation_task(root, target, live_before) if use_generations else None
    return {
        "documents": manifest.documents,
        "units": manifest.units,
        "chunks": manifest.chunks,
        "tokens": manifest.tokens,
        "generation": manifest.generation,
        "live_generation": live,
        "embedded_units": embed_report.units,
        "embedded_by": list(embedded_by),  # host:pid of each process that embedded
        "skipped": [(s.path, s.reason) for s in plan_report.skipped],
        "notes": list(writer.notes),
    }
