"""Ingestion as a Prefect flow: the same steps as ``lcrag ingest``, as thin tasks.

Embedding and publishing retry on failure: both are resumable by design (pending
units are re-embedded, vectors are overwritten by id), so a retry after a
transient fault (a remote Qdrant hiccup, memory pressure) finishes the same
index. Loading does not retry: a bad file is reported and skipped, not retried.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from lcrag.pipeline.config import load_config
from lcrag.pipeline.index.generations import (
    is_generational,
    live_name,
    start_generation,
)
from lcrag.pipeline.ingest.encoder import make_encoder
from lcrag.pipeline.ingest.ingestion import (
    IndexWriter,
    default_source_name,
    embed_pending,
    finish_generation,
    index_changed,
    load_options,
    plan,
    publish,
)
from lcrag.pipeline.ingest.loaders import LoadOptions, LoadResult, load_source


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


@task(name="embed pending units", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def embed_task(writer: IndexWriter):
    report = embed_pending(writer)
    get_run_logger().info("embedded %d units, %d chunks, %d tokens in %.1f s", report.units, report.chunks, report.tokens, report.seconds)
    return report


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
    generations: bool = False,
) -> dict[str, Any]:
    """Ingest SOURCE into the index folder INDEX; returns the run's summary. With
    ``generations`` (implied when INDEX already holds them) the run writes a new
    generation and publishes it at the end, so a running server switches to it."""
    config = load_config(config_file)
    loaded = load_task(source, fmt, load_options(config))
    root = Path(index)
    use_generations = generations or is_generational(root)
    live_before = live_name(root) if use_generations else None
    target = start_generation(root) if use_generations else root
    with IndexWriter(target, config, make_encoder(config.encoder)) as writer:
        plan_report = plan_task(writer, loaded, name or default_source_name(Path(source)))
        embed_report = embed_task(writer)
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
        "skipped": [(s.path, s.reason) for s in plan_report.skipped],
    }
