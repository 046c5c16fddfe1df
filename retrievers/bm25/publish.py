"""Publishing a new BM25 generation without analysing unchanged chunks again.

The previous generation's segments are reused as they are: rows of units that
are no longer live become tombstones, units not yet in a live row are analysed
into one new segment, and the corpus statistics are derived again from the
segments. Too many segments, or too many tombstones, are merged into one by
concatenation. Everything is written under new names (segments) or a folder
the manifest does not name yet (the generation), so until the manifest is
replaced the previous generation stays whole, and a killed publish leaves only
unreferenced folders that ``remove_unreferenced`` deletes after the next one.

A previous folder of the first format (or an unreadable one) is not reused: all
live units are analysed into one segment.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import numpy as np

from lcrag.retrievers.bm25.errors import BM25FormatError
from lcrag.retrievers.bm25.legacy import is_legacy_folder
from lcrag.retrievers.bm25.live import LiveSegment
from lcrag.retrievers.bm25.merge import merge_segments
from lcrag.retrievers.bm25.segment import SegmentBuilder, write_segment
from lcrag.retrievers.bm25.state import (
    SHARED_STORE,
    Generation,
    Settings,
    is_complete,
    read_generation,
    segment_names,
    write_generation,
)
from lcrag.retrievers.bm25.stats import corpus_stats
from lcrag.retrievers.config import BM25Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalysedChunks:
    """Chunks of some units with their analysed tokens, in row order."""

    chunk_ids: Sequence[str]
    unit_ids: Sequence[str]
    token_lists: Sequence[Sequence[str]]


Analyse = Callable[[Sequence[str]], Iterable[AnalysedChunks]]  # unit ids (in order) -> their chunks, analysed


@dataclass(frozen=True)
class MergePolicy:
    max_segments: int = 8
    max_deleted_fraction: float = 0.25

    def should_merge(self, parts: Sequence[LiveSegment]) -> bool:
        rows = sum(p.segment.n_rows for p in parts)
        deleted = sum(len(p.deleted) for p in parts)
        return len(parts) > self.max_segments or (rows > 0 and deleted / rows > self.max_deleted_fraction)


@dataclass(frozen=True)
class PublishReport:
    rows: int  # live chunks
    segments: int
    analysed_units: int
    analysed_rows: int
    tombstoned_rows: int  # rows newly tombstoned by this publish
    merged: bool
    rebuilt: bool  # the previous generation was not reused (none, first format, unreadable, inconsistent)


def publish_bm25(
    previous: Path | None,
    target: Path,
    live_units: Sequence[str],
    analyse: Analyse,
    config: BM25Config,
    *,
    expected_rows: int | None = None,
    policy: MergePolicy = MergePolicy(),
) -> PublishReport:
    """Write the generation folder TARGET for LIVE_UNITS (in row order), reusing
    PREVIOUS's segments; segments go to the store beside TARGET. EXPECTED_ROWS
    (the catalog's chunk count) guards the reuse: a mismatch rebuilds everything."""
    settings = Settings.from_config(config)
    reusable = _reusable_parts(previous, settings)
    reused = reusable or []
    parts, tombstoned, new_units = _plan(reused, live_units)
    builder = _analyse(new_units, analyse)
    rebuilt = reusable is None
    if reused and expected_rows is not None and sum(p.n_live for p in parts) + builder.n_rows != expected_rows:
        log.warning("BM25 segments disagree with the catalog (%d rows expected); analysing every chunk again", expected_rows)
        parts, tombstoned, rebuilt, new_units = [], 0, True, list(live_units)
        builder = _analyse(new_units, analyse)
    if builder.n_rows:
        parts.append(LiveSegment(_new_name(), builder.finish()))
    written = {p.name for p in parts} - {p.name for p in reused}
    merged = bool(parts) and policy.should_merge(parts)  # also one segment with many tombstones
    if merged:
        parts = [LiveSegment(_new_name(), merge_segments(parts))]
        written = {parts[0].name}
    store = target.parent / SHARED_STORE
    store.mkdir(parents=True, exist_ok=True)
    for part in parts:
        if part.name in written:
            write_segment(part.segment, store / part.name)
    stats = corpus_stats(parts, config.epsilon)
    write_generation(target, Generation(settings, tuple(parts), stats, shared=True))
    return PublishReport(stats.n_docs, len(parts), len(new_units), builder.n_rows, tombstoned, merged, rebuilt)


def _reusable_parts(previous: Path | None, settings: Settings) -> list[LiveSegment] | None:
    """The live segments of PREVIOUS, or None when it cannot be reused."""
    if previous is None or not previous.is_dir() or is_legacy_folder(previous):
        return None
    try:
        generation = read_generation(previous)
    except BM25FormatError as error:
        log.warning("previous BM25 generation not reused: %s", error)
        return None
    if not generation.shared or (generation.settings.stem, generation.settings.stopwords) != (settings.stem, settings.stopwords):
        return None  # other analysis: the stored terms would not match the queries'
    return list(generation.parts)


def _plan(reused: Sequence[LiveSegment], live_units: Sequence[str]) -> tuple[list[LiveSegment], int, list[str]]:
    """(parts with rows of dead units tombstoned and empty parts dropped, rows newly
    tombstoned, live units that no live row holds yet, in the given order)."""
    live = set(live_units)
    covered: set[str] = set()
    parts, tombstoned = [], 0
    for part in reused:
        units = part.segment.units.to_list()
        dead_unit = np.fromiter((u not in live for u in units), dtype=bool, count=len(units))
        dead_rows = np.flatnonzero(dead_unit[np.asarray(part.segment.row_unit, dtype=np.int64)] & part.alive)
        if len(dead_rows):
            part = part.tombstone(dead_rows)
            tombstoned += len(dead_rows)
        if part.n_live:
            parts.append(part)
            covered.update(u for u, alive in zip(units, part.live_unit_mask().tolist()) if alive)
    return parts, tombstoned, [u for u in live_units if u not in covered]


def _analyse(units: Sequence[str], analyse: Analyse) -> SegmentBuilder:
    builder = SegmentBuilder()
    if units:
        for batch in analyse(units):
            builder.add(batch.chunk_ids, batch.unit_ids, batch.token_lists)
    return builder


def _new_name() -> str:
    return f"s{uuid4().hex[:16]}"


def remove_unreferenced(kept: Path) -> list[str]:
    """Delete the segments of the store beside KEPT (the generation the manifest
    names) that it does not use, and leftovers of killed writes; returns their names.
    Nothing is deleted when KEPT cannot be read."""
    store = kept.parent / SHARED_STORE
    if not store.is_dir():
        return []
    if is_legacy_folder(kept):
        used: set[str] = set()
    else:
        try:
            names, shared = segment_names(kept)
        except BM25FormatError:
            return []
        used = set(names) if shared else set()
    removed = []
    for entry in sorted(store.iterdir()):
        if entry.name not in used:  # staging leftovers (``*.partial``) included
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def is_published(folder: Path) -> bool:
    """Whether FOLDER is a readable generation (either format) with all its segments."""
    return is_legacy_folder(folder) or is_complete(folder)

