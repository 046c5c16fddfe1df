"""The per-generation BM25 folder: which segments are live, their tombstones, and
the corpus statistics derived from them. Small next to the segments, and written
whole (staged, then renamed) before the index's manifest names it.

    GEN/state.json                       settings, segment names in row order, N, avgdl
    GEN/terms.{blob,offsets}.npy         every live term, sorted
    GEN/df.npy, GEN/idf.npy              per term (int64, float64)
    GEN/deleted-<segment>.npy            tombstoned rows of a segment (int32, sorted), when it has some

Segments live in a store shared by the generations of an index folder
(``bm25-segments`` beside ``bm25-<generation>``), or, for a folder saved on its
own (``BM25Index.save``), in ``GEN/segments``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lcrag.retrievers.bm25.errors import BM25FormatError, rebuild_hint
from lcrag.retrievers.bm25.files import load_array, load_json, move_into_place, save_array, save_json, staging_folder
from lcrag.retrievers.bm25.live import LiveSegment
from lcrag.retrievers.bm25.segment import read_segment, write_segment
from lcrag.retrievers.bm25.stats import CorpusStats
from lcrag.retrievers.bm25.strings import StringTable
from lcrag.retrievers.config import BM25Config

STATE = "state.json"
STATE_FORMAT = "lcrag-bm25-segments"
STATE_VERSION = 1
SHARED_STORE = "bm25-segments"
INSIDE_STORE = "segments"
_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class Settings:
    """What a generation was built with: the formula's parameters and the analysis."""

    k1: float
    b: float
    epsilon: float
    stem: bool
    stopwords: bool

    @classmethod
    def from_config(cls, config: BM25Config) -> Settings:
        return cls(config.k1, config.b, config.epsilon, config.stem, config.stopwords)


@dataclass(frozen=True, eq=False)
class Generation:
    settings: Settings
    parts: tuple[LiveSegment, ...]
    stats: CorpusStats
    shared: bool  # segments in the index folder's shared store (else inside the folder)


def is_state_folder(folder: Path) -> bool:
    return (folder / STATE).is_file()


def segment_store(folder: Path, shared: bool) -> Path:
    return folder.parent / SHARED_STORE if shared else folder / INSIDE_STORE


def write_generation(folder: Path, generation: Generation) -> None:
    """Write GENERATION as FOLDER. Shared segments must already be in their store;
    those of a self-contained folder are written into it."""
    staging = staging_folder(folder)
    if not generation.shared:
        (staging / INSIDE_STORE).mkdir()
        for part in generation.parts:
            write_segment(part.segment, staging / INSIDE_STORE / part.name)
    for part in generation.parts:
        if len(part.deleted):
            save_array(staging, f"deleted-{part.name}", np.asarray(part.deleted, dtype=np.int32))
    stats = generation.stats
    stats.terms.save(staging, "terms")
    save_array(staging, "df", stats.df)
    save_array(staging, "idf", stats.idf)
    save_json(staging, STATE, {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "store": SHARED_STORE if generation.shared else INSIDE_STORE,
        "segments": [p.name for p in generation.parts],
        "settings": dataclasses.asdict(generation.settings),
        "documents": stats.n_docs,
        "avgdl": stats.avgdl,
        "average_idf": stats.average_idf,
    })
    move_into_place(staging, folder)


def _state(folder: Path) -> dict:
    state = load_json(folder, STATE)
    if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise BM25FormatError(f"{rebuild_hint(folder)} (format {state.get('format')} {state.get('version')})")
    names = state.get("segments")
    if not isinstance(names, list) or not all(isinstance(n, str) and _NAME.match(n) for n in names):
        raise BM25FormatError(f"{rebuild_hint(folder)} (bad segment list)")
    return state


def segment_names(folder: Path) -> tuple[list[str], bool]:
    """(names of the segments FOLDER uses, whether they are in the shared store)."""
    state = _state(folder)
    return state["segments"], state.get("store") == SHARED_STORE


def read_generation(folder: Path) -> Generation:
    """A written generation with its segments, memory-mapped."""
    state = _state(folder)
    try:
        settings = Settings(**state["settings"])
        n_docs, avgdl, average_idf = int(state["documents"]), float(state["avgdl"]), float(state["average_idf"])
    except (KeyError, TypeError, ValueError) as error:
        raise BM25FormatError(f"{rebuild_hint(folder)} (state.json: {error!r})") from error
    names, store = state["segments"], segment_store(folder, state.get("store") == SHARED_STORE)
    parts = []
    for name in names:
        if not (store / name).is_dir():
            raise BM25FormatError(f"{rebuild_hint(folder)} (segment {name} is missing)")
        deleted = load_array(folder, f"deleted-{name}") if (folder / f"deleted-{name}.npy").is_file() else np.zeros(0, np.int32)
        parts.append(LiveSegment(name, read_segment(store / name), deleted))
    stats = CorpusStats(
        n_docs=n_docs,
        avgdl=avgdl,
        terms=StringTable.load(folder, "terms"),
        df=load_array(folder, "df"),
        idf=load_array(folder, "idf"),
        average_idf=average_idf,
    )
    if stats.n_docs != sum(p.n_live for p in parts) or len(stats.terms) != len(stats.idf):
        raise BM25FormatError(f"{rebuild_hint(folder)} (statistics do not match the segments)")
    return Generation(settings, tuple(parts), stats, state.get("store") == SHARED_STORE)


def is_complete(folder: Path) -> bool:
    """Whether FOLDER is a generation whose segments are all present."""
    try:
        names, shared = segment_names(folder)
    except BM25FormatError:
        return False
    store = segment_store(folder, shared)
    return all((store / n / "segment.json").is_file() for n in names)
