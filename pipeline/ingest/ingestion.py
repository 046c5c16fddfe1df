"""Incremental, crash-safe ingestion: load -> plan -> embed pending units -> publish.

Safety comes from three rules:
- Units are content-addressed (ids hash their spans and document versions), and
  a unit is kept as long as every document it was built from is unchanged. Only
  documents outside kept units are regrouped, so an unchanged source costs
  nothing and a changed document re-embeds only its unit.
- The plan is stored before any embedding (units ``pending``); a unit turns
  ``done`` in the same catalog transaction that records its chunks, after its
  vectors are in Qdrant under ids derived from chunk ids. A killed run resumes
  the stored plan, and re-writing a vector overwrites it.
- The manifest is written last; until then the folder says "in progress".
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lcrag.core.types import Document
from lcrag.pipeline.config import Config
from lcrag.pipeline.index.catalog import Catalog
from lcrag.pipeline.index.folder import (
    FORMAT_VERSION,
    IndexPaths,
    IndexStateError,
    Manifest,
    WriterLock,
    built_backend,
    clear_in_progress,
    generation_path,
    is_generational,
    kept_backend,
    live_name,
    mark_in_progress,
    open_vectors,
    read_manifest,
    remove_stale_bm25,
    write_manifest,
)
from lcrag.pipeline.index.generations import DEFAULT_GRACE_S, cleanup_generations, publish_generation, start_generation
from lcrag.pipeline.ingest.embedding import embed_units, render_span
from lcrag.pipeline.ingest.loaders import LoadOptions, LoadResult, Skipped
from lcrag.pipeline.ingest.loaders.base import MIB
from lcrag.pipeline.ingest.units import build_units
from lcrag.retrievers.bm25 import Analyzer
from lcrag.retrievers.bm25.publish import Analyse, AnalysedChunks, is_published, publish_bm25
from lcrag.retrievers.encoders.runtimes import AUTO, RUNTIMES
from lcrag.retrievers.stores import ChunkVectorStore

log = logging.getLogger(__name__)

Progress = Callable[[int], None]  # called with tokens just embedded


class InjectedFault(RuntimeError):
    """Raised by ``embed_pending(..., fail_after_batches=N)`` right after its Nth
    committed batch: a deterministic stand-in for a crash, for tests of resumption."""


@dataclass(frozen=True)
class Notice:
    """Something worth knowing about a document that was loaded anyway (not a skip)."""

    path: str
    message: str


def load_options(config: Config, follow_symlinks: bool | None = None) -> LoadOptions:
    """The loader limits of ``config.ingest``; ``follow_symlinks`` (the command-line
    flag) overrides the configured value when given."""
    ingest_config = config.ingest
    follow = ingest_config.follow_symlinks if follow_symlinks is None else follow_symlinks
    return LoadOptions(max_file_bytes=ingest_config.max_file_mib * MIB, follow_symlinks=follow)


def large_document_notices(
    docs: Sequence[Document], n_tokens: Sequence[int], limit: int, unit_tokens: int
) -> tuple[Notice, ...]:
    """A notice per document over ``limit`` tokens: embedding it takes long, and a
    document with no paragraph or sentence breaks may not be what was meant."""
    return tuple(
        Notice(
            doc.doc_id,
            f"large document: {n:,} tokens (over ingest.large_document_tokens = {limit:,}), "
            f"about {-(-n // unit_tokens):,} units to embed; it is loaded, but embedding it takes long",
        )
        for doc, n in zip(docs, n_tokens)
        if n > limit
    )


@dataclass(frozen=True)
class PlanReport:
    source_name: str
    documents_seen: int
    added: int
    changed: int
    removed: int
    unchanged: int
    units_dropped: int
    units_planned: int
    skipped: tuple[Skipped, ...]
    warnings: tuple[Notice, ...] = ()


@dataclass(frozen=True)
class EmbedReport:
    units: int
    chunks: int
    tokens: int
    seconds: float


@dataclass(frozen=True)
class IngestReport:
    plan: PlanReport
    embed: EmbedReport
    manifest: Manifest
    seconds: float
    published: bool = True
    notes: tuple[str, ...] = field(default=())


class IndexWriter:
    """The one writing process of an index: holds its lock and its stores."""

    def __init__(self, root: Path, config: Config, encoder) -> None:
        self.root = Path(root)
        self.paths = IndexPaths(self.root)
        self.config = with_encoder_runtime(config, encoder)  # what the index records: the runtime that builds it
        self.encoder = encoder
        self._lock = WriterLock(self.root)
        self.catalog: Catalog | None = None
        self.vectors: ChunkVectorStore | None = None
        self.resumed = False  # an earlier run stopped before publishing: publish must run again
        self.notes: list[str] = []  # said to the user with the report
        if getattr(encoder, "runtime_note", None):  # the encoder runs float32 instead of the runtime asked for
            self.notes.append(encoder.runtime_note)

    def __enter__(self) -> IndexWriter:
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock.__enter__()
        try:
            self.resumed = self.paths.marker.exists()
            existing = read_manifest(self.root)
            self.catalog = Catalog(self.paths.catalog)
            # the manifest's fingerprint, or (first run interrupted) the catalog's
            recorded = existing.fingerprint if existing else self.catalog.get_meta("fingerprint") or None
            if recorded is not None and recorded != self.config.index_fingerprint():
                raise IndexStateError(self._runtime_mismatch(recorded) or (
                    f"index {self.root} was built with different encoder/unit/chunking/BM25 settings; "
                    "ingest into a new --index, or delete the folder to rebuild it with these settings"
                ))
            self.catalog.set_meta("fingerprint", self.config.index_fingerprint())
            self._keep_built_backend()
            self.vectors = open_vectors(self.root, self.config.store)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _runtime_mismatch(self, recorded: str) -> str | None:
        """The refusal when only the encoder runtime differs from the one the index was
        built with (vectors of two runtimes never mix in one index); None otherwise."""
        for built in RUNTIMES:
            if built != self.config.encoder.runtime and recorded == with_runtime(self.config, built).index_fingerprint():
                note = getattr(self.encoder, "runtime_note", None)  # it fell back: the note names the fix
                fix = f"make {built} available here" if note else f"set encoder.runtime: {built}"
                return (f"index {self.root} was built with encoder runtime {built}, and this encoder runs "
                        f"{self.config.encoder.runtime}{f' ({note})' if note else ''}; vectors of two runtimes never "
                        f"mix in one index: {fix} to update it, or ingest into a new --index")
        return None

    def _keep_built_backend(self) -> None:
        configured = self.config.store.backend
        built = built_backend(self.root)
        backend = kept_backend(built, configured)
        if backend != configured:
            note = (f"index {self.root} keeps its {built} store (store.backend {configured} applies to new "
                    "indexes; to move this one, ingest into a new --index)")
            log.warning(note)
            self.notes.append(note)
            self.config = dataclasses.replace(self.config, store=dataclasses.replace(self.config.store, backend=backend))

    def close(self) -> None:
        if self.vectors is not None:
            self.vectors.close()
            self.vectors = None
        if self.catalog is not None:
            self.catalog.close()
            self.catalog = None
        self._lock.__exit__()


def with_runtime(config: Config, runtime: str) -> Config:
    return dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, runtime=runtime))


def runtime_for_index(config: Config, root: Path) -> Config:
    """``config`` as it ingests into ``root``: ``encoder.runtime: auto`` is this machine's
    default for a new index, but an existing index keeps the runtime it was built with
    (vectors of two runtimes never mix, and moving means rebuilding), as it keeps its store
    backend. A runtime named in the config is left as it is: the writer refuses a mismatch."""
    if config.encoder.runtime != AUTO:
        return config
    root = Path(root)
    name = live_name(root) if is_generational(root) else None
    built = read_manifest(generation_path(root, name) if name else root)
    if built is None:
        return config
    return with_runtime(config, built.build_config().encoder.runtime)


def with_encoder_runtime(config: Config, encoder) -> Config:
    """``config`` with the runtime ``encoder`` really runs (``auto`` resolved, or torch-fp32
    after a fallback), so an index records what built it. An encoder that names no
    runtime (a test double) leaves the config as it is."""
    runtime = getattr(encoder, "runtime", None)
    return config if runtime is None or runtime == config.encoder.runtime else with_runtime(config, runtime)


def default_source_name(source: Path) -> str:
    name = source.resolve().name
    for suffix in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(suffix)
    return name or "source"


def plan(writer: IndexWriter, loaded: LoadResult, source_name: str) -> PlanReport:
    """Compare the source with the catalog, drop stale units, store new documents
    and the pending units that will hold them."""
    catalog, vectors = writer.catalog, writer.vectors
    mark_in_progress(writer.root, {"source": source_name})
    skipped = list(loaded.skipped)
    owners = catalog.document_sources(d.doc_id for d in loaded.documents)
    docs: list[Document] = []
    for doc in loaded.documents:
        owner = owners.get(doc.doc_id)
        if owner is not None and owner != source_name:
            skipped.append(Skipped(doc.doc_id, f"document id already belongs to source {owner!r}; not replaced"))
        else:
            docs.append(doc)

    current = {d.doc_id: d.content_hash for d in docs}
    stored = catalog.document_hashes(source_name)
    added = [d for d in docs if d.doc_id not in stored]
    changed = [d for d in docs if d.doc_id in stored and stored[d.doc_id] != d.content_hash]
    removed = [d for d in stored if d not in current]

    keep: list[Any] = []
    drop: list[Any] = []
    for record in catalog.unit_records():
        if record.source_name != source_name:
            continue
        valid = all(current.get(doc_id) == chash for doc_id, chash in record.member_hashes)
        (keep if valid else drop).append(record)
    drop_ids = [r.unit.unit_id for r in drop]
    vectors.delete_units(drop_ids)  # vectors first: a crash here leaves rows that the next run drops again
    catalog.delete_units(drop_ids)
    catalog.delete_documents(removed)
    catalog.put_documents(added + changed, source_name)

    covered = {doc_id for r in keep for doc_id, _ in r.member_hashes}
    uncovered = [d for d in docs if d.doc_id not in covered]
    units = []
    warnings: tuple[Notice, ...] = ()
    if uncovered:
        offsets = writer.encoder.token_offsets([d.text for d in uncovered])
        warnings = large_document_notices(
            uncovered, [len(o) for o in offsets], writer.config.ingest.large_document_tokens, writer.config.units.max_tokens
        )
        title_offsets = writer.encoder.token_offsets([d.title for d in uncovered])
        units = build_units(
            uncovered,
            offsets,
            [len(t) for t in title_offsets],
            writer.config.units.max_tokens,
            writer.config.units.group_by,
            writer.config.units.neighbours,
        )
        catalog.add_pending_units(units, source_name, current)
    return PlanReport(
        source_name=source_name,
        documents_seen=len(loaded.documents),
        added=len(added),
        changed=len(changed),
        removed=len(removed),
        unchanged=len(docs) - len(added) - len(changed),
        units_dropped=len(drop_ids),
        units_planned=len(units),
        skipped=tuple(skipped),
        warnings=warnings,
    )


def pending_tokens(writer: IndexWriter) -> int:
    return sum(r.unit.n_tokens for r in writer.catalog.unit_records("pending"))


def embed_pending(
    writer: IndexWriter, progress: Progress | None = None, *, fail_after_batches: int | None = None
) -> EmbedReport:
    """Embed every pending unit, a batch of units at a time; each batch is stored
    and committed before the next starts. ``fail_after_batches=N`` (tests) raises
    ``InjectedFault`` once N batches are committed, as a crash at that point would."""
    if fail_after_batches is not None and fail_after_batches < 0:
        raise ValueError(f"fail_after_batches must be >= 0, got {fail_after_batches}")
    started = time.perf_counter()
    pending = [r.unit for r in writer.catalog.unit_records("pending")]
    if pending:
        writer.vectors.ensure_collection(writer.encoder.warm_up().dim)
    units_done = chunks_done = tokens_done = 0
    if fail_after_batches == 0:
        raise InjectedFault("stopped before the first batch, as asked")
    carried: dict[str, tuple[Document, np.ndarray]] = {}
    for batches, batch in enumerate(_unit_batches(pending, writer.config.ingest.commit_tokens), start=1):
        carried = _batch_documents(writer, batch, carried)
        docs = {doc_id: doc for doc_id, (doc, _) in carried.items()}
        offsets = {doc_id: offs for doc_id, (_, offs) in carried.items()}
        chunks, vectors = embed_units(batch, docs, offsets, writer.encoder, writer.config.chunking)
        commit_batch(writer, batch, chunks, vectors)
        tokens = sum(u.n_tokens for u in batch)
        units_done, chunks_done, tokens_done = units_done + len(batch), chunks_done + len(chunks), tokens_done + tokens
        if progress is not None:
            progress(tokens)
        if batches == fail_after_batches:
            raise InjectedFault(f"stopped after {batches} committed batch(es), as asked")
    return EmbedReport(units_done, chunks_done, tokens_done, time.perf_counter() - started)


def commit_batch(writer: IndexWriter, units: Sequence, chunks: Sequence, vectors: np.ndarray) -> None:
    """Store a batch's vectors, then mark its units done: a crash between the two
    leaves stray points that ``reconcile`` removes, never a done unit without vectors."""
    writer.vectors.upsert(chunks, vectors)
    writer.catalog.complete_units(chunks, [u.unit_id for u in units])


def batch_documents(writer: IndexWriter, batch: Sequence, carried: Mapping[str, Document]) -> dict[str, Document]:
    """The documents of a batch's units; those of the previous batch are reused (a long
    document's units come one after another)."""
    wanted = list(dict.fromkeys(doc_id for unit in batch for doc_id in unit.doc_ids))
    missing = [doc_id for doc_id in wanted if doc_id not in carried]
    fetched = writer.catalog.documents(missing) if missing else {}
    return {doc_id: carried[doc_id] if doc_id in carried else fetched[doc_id]
            for doc_id in wanted if doc_id in carried or doc_id in fetched}


def _batch_documents(
    writer: IndexWriter, batch: Sequence, carried: dict[str, tuple[Document, np.ndarray]]
) -> dict[str, tuple[Document, np.ndarray]]:
    """``batch_documents`` with token offsets. Re-reading and re-tokenizing a long
    document for every batch made its cost quadratic, so carried offsets are reused."""
    docs = batch_documents(writer, batch, {doc_id: doc for doc_id, (doc, _) in carried.items()})
    fresh_ids = [doc_id for doc_id in docs if doc_id not in carried]
    fresh = dict(zip(fresh_ids, writer.encoder.token_offsets([docs[i].text for i in fresh_ids])))
    return {doc_id: carried[doc_id] if doc_id in carried else (doc, fresh[doc_id]) for doc_id, doc in docs.items()}


def _unit_batches(units: Sequence, batch_tokens: int):
    batch, used = [], 0
    for unit in units:
        batch.append(unit)
        used += unit.n_tokens
        if used >= batch_tokens:
            yield batch
            batch, used = [], 0
    if batch:
        yield batch


def reconcile(writer: IndexWriter) -> int:
    """Make the vector store hold exactly the done units' points. Returns how many
    stray units were removed (left by a crash between two stores' writes)."""
    done = {r.unit.unit_id for r in writer.catalog.unit_records("done")}
    stray = writer.vectors.unit_ids() - done
    writer.vectors.delete_units(stray)
    return len(stray)


def bm25_tokens(analyzer: Analyzer, doc: Document, start: int, end: int, include_title: bool) -> list[str]:
    text = render_span(doc, start, end)[0] if include_title else doc.text[start:end]
    return analyzer.tokens(text)


def publish(writer: IndexWriter, changed: bool) -> Manifest:
    """Publish BM25 and write the manifest (the commit point), then clean up.

    BM25 grows by segments (``lcrag.retrievers.bm25.publish``): only the chunks of
    units no live segment holds yet are analysed; rows of units gone from the
    catalog are tombstoned. An index whose BM25 folder has the first format is
    analysed in full once, at its first publish that changes something."""
    previous = read_manifest(writer.root)
    stray = reconcile(writer)
    previous_bm25 = writer.paths.bm25(previous) if previous is not None else None
    if previous is not None and not changed and not stray and not writer.resumed and is_published(previous_bm25):
        clear_in_progress(writer.root)
        return previous
    catalog, config = writer.catalog, writer.config
    generation = (previous.generation if previous else 0) + 1
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        fingerprint=config.index_fingerprint(),
        config=config.to_dict(),
        generation=generation,
        documents=catalog.count("documents"),
        units=catalog.count("units"),
        chunks=catalog.count("chunks"),
        tokens=catalog.total_chunk_tokens(),
        dim=writer.encoder.dim or (previous.dim if previous else 0),
        updated_at=time.time(),
    )
    report = publish_bm25(
        previous_bm25, writer.paths.bm25(manifest), catalog.done_unit_ids(), bm25_analysis(catalog, config),
        config.bm25, expected_rows=manifest.chunks,
    )
    manifest = dataclasses.replace(manifest, chunks=report.rows)
    write_manifest(writer.root, manifest)
    clear_in_progress(writer.root)
    remove_stale_bm25(writer.root, manifest.bm25_folder)
    return manifest


def bm25_analysis(catalog: Catalog, config: Config, batch_units: int = 1000) -> Analyse:
    """Analyse the chunks of given units for BM25, a batch of units at a time (a
    full rebuild never holds every token list at once)."""
    analyzer = Analyzer(stem=config.bm25.stem, stopwords=config.bm25.stopwords)

    def analyse(unit_ids: Sequence[str]) -> Iterator[AnalysedChunks]:
        for i in range(0, len(unit_ids), batch_units):
            chunks = catalog.chunks_of_units(unit_ids[i : i + batch_units])
            docs = catalog.documents(c.doc_id for c in chunks)
            yield AnalysedChunks(
                [c.chunk_id for c in chunks],
                [c.unit_id for c in chunks],
                [bm25_tokens(analyzer, docs[c.doc_id], c.start, c.end, config.bm25.include_title) for c in chunks],
            )

    return analyse


def index_changed(plan_report: PlanReport, embed_report: EmbedReport) -> bool:
    """Whether this run altered the index (and so needs a new BM25 and manifest)."""
    return bool(plan_report.units_dropped or plan_report.units_planned or embed_report.units or plan_report.removed)


def ingest(
    loaded: LoadResult,
    root: Path,
    config: Config,
    encoder,
    source_name: str,
    progress_factory: Callable[[int], Progress] | None = None,
    *,
    fail_after_batches: int | None = None,
) -> IngestReport:
    """The whole ingestion in one call (the CLI's path; the Prefect flow runs the
    same steps as tasks). ``fail_after_batches``: see ``embed_pending`` (tests)."""
    started = time.perf_counter()
    with IndexWriter(root, config, encoder) as writer:
        plan_report = plan(writer, loaded, source_name)
        total = pending_tokens(writer)
        progress = progress_factory(total) if (progress_factory and total) else None
        embed_report = embed_pending(writer, progress, fail_after_batches=fail_after_batches)
        manifest = publish(writer, index_changed(plan_report, embed_report))
    return IngestReport(plan_report, embed_report, manifest, time.perf_counter() - started, notes=tuple(writer.notes))


def ingest_generation(
    loaded: LoadResult,
    root: Path,
    config: Config,
    encoder,
    source_name: str,
    progress_factory: Callable[[int], Progress] | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    *,
    fail_after_batches: int | None = None,
) -> tuple[IngestReport, str]:
    """Ingest into a new generation of ROOT and publish it when finished (see
    ``pipeline.generations``); returns the report and the live generation's name.
    A run that changes nothing publishes nothing: its copy is discarded."""
    live_before = live_name(root)
    folder = start_generation(root)
    report = ingest(loaded, folder, config, encoder, source_name, progress_factory, fail_after_batches=fail_after_batches)
    return report, finish_generation(root, folder, live_before, grace_s)


def finish_generation(root: Path, folder: Path, live_before: str | None, grace_s: float = DEFAULT_GRACE_S) -> str:
    """Publish FOLDER unless it is an unchanged copy of the live generation; clean up."""
    live_manifest = read_manifest(generation_path(root, live_before)) if live_before else None
    manifest = read_manifest(folder)
    if live_manifest is not None and manifest == live_manifest and folder.name != live_before:
        shutil.rmtree(folder, ignore_errors=True)
        name = live_before
    else:
        name = publish_generation(root, folder)
    cleanup_generations(root, grace_s)
    return name
