"""An index is a folder a user can name, move and delete.

    DIR/manifest.json          written last, atomically: the index is finished
    DIR/ingest-in-progress     present while an ingestion is under way (or was killed)
    DIR/catalog.sqlite         documents, units, chunks (pipeline.catalog)
    DIR/qdrant/                chunk vectors (store.backend qdrant-local)
    DIR/qdrant-edge/           chunk vectors (store.backend qdrant-edge)
    DIR/bm25-<generation>/     BM25 of that generation: live segments, tombstones, IDF
    DIR/bm25-segments/<id>/    immutable BM25 segments (term frequencies) that bm25-<generation> names
    DIR/write.lock             held by the one process writing

A folder without a manifest, or with the in-progress marker, is never searched:
the user is told to run the ingestion again, which resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lcrag.core.errors import LcragError
from lcrag.core.files import write_json_atomic
from lcrag.pipeline.config import Config, config_from_dict
from lcrag.retrievers.bm25.publish import remove_unreferenced
from lcrag.retrievers.bm25.state import SHARED_STORE
from lcrag.retrievers.config import StoreConfig
from lcrag.retrievers.stores import ChunkVectorStore, open_store

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
IN_PROGRESS = "ingest-in-progress"
LOCK = "write.lock"


class IndexStateError(LcragError, RuntimeError):
    """The index folder is missing, unfinished, busy or built differently; the message names the fix."""


@dataclass(frozen=True)
class Manifest:
    format_version: int
    fingerprint: str
    config: dict[str, Any]
    generation: int
    documents: int
    units: int
    chunks: int
    tokens: int
    dim: int
    updated_at: float

    @property
    def bm25_folder(self) -> str:
        return f"bm25-{self.generation:06d}"

    def build_config(self) -> Config:
        return config_from_dict(with_legacy_runtime(with_legacy_backend(self.config)))


def with_legacy_runtime(config: dict[str, Any]) -> dict[str, Any]:
    """A manifest written before ``encoder.runtime`` existed was built with PyTorch float32,
    whatever today's default is."""
    encoder = config.get("encoder")
    if isinstance(encoder, dict) and "runtime" not in encoder:
        return {**config, "encoder": {**encoder, "runtime": "torch-fp32"}}
    return config


def with_legacy_backend(config: dict[str, Any]) -> dict[str, Any]:
    """A manifest written before ``store.backend`` existed was built with Qdrant local mode,
    whatever today's default is."""
    store = config.get("store")
    if isinstance(store, dict) and "backend" not in store:
        return {**config, "store": {**store, "backend": "qdrant-server" if store.get("qdrant_url") else "qdrant-local"}}
    return config


@dataclass(frozen=True)
class IndexPaths:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def marker(self) -> Path:
        return self.root / IN_PROGRESS

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.sqlite"

    @property
    def qdrant(self) -> Path:
        return self.root / "qdrant"

    @property
    def qdrant_edge(self) -> Path:
        return self.root / "qdrant-edge"

    def vectors(self, backend: str) -> Path:
        """The folder of a store backend's files (a server backend keeps none here)."""
        return self.qdrant_edge if backend == "qdrant-edge" else self.qdrant

    def bm25(self, manifest: Manifest) -> Path:
        return self.root / manifest.bm25_folder


def read_manifest(root: Path) -> Manifest | None:
    path = IndexPaths(root).manifest
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format_version") != FORMAT_VERSION:
        raise IndexStateError(
            f"index {root} has format {data.get('format_version')}, this lcrag reads {FORMAT_VERSION}; re-ingest into a new --index"
        )
    return Manifest(**data)


def require_finished(root: Path) -> Manifest:
    """The manifest of a finished index, or an error that says what to do."""
    paths = IndexPaths(root)
    if not root.exists():
        raise IndexStateError(f"no index at {root}; create one with: lcrag ingest SOURCE --index {root}")
    manifest = read_manifest(root)
    if paths.marker.exists():
        raise IndexStateError(
            f"an ingestion into {root} is running or was interrupted; run the same `lcrag ingest` again to finish it"
        )
    if manifest is None:
        raise IndexStateError(f"{root} is not a finished lcrag index (no {MANIFEST}); run `lcrag ingest SOURCE --index {root}`")
    return manifest


def built_backend(root: Path) -> str | None:
    """The store backend an index's vectors were written with: its manifest's (one written
    before the setting existed means qdrant-local), else (a first ingestion that stopped
    early) the store folder present; None for a new index."""
    manifest = read_manifest(root)
    if manifest is not None:
        return manifest.build_config().store.backend
    paths = IndexPaths(root)
    for backend in ("qdrant-edge", "qdrant-local"):
        folder = paths.vectors(backend)
        if folder.is_dir() and any(folder.iterdir()):
            return backend
    return None


FOLDER_BACKENDS = frozenset({"qdrant-edge", "qdrant-local"})


def kept_backend(built: str | None, configured: str) -> str:
    """The store backend an ingestion writes with (pure). A new index takes the configured
    one. An existing index keeps the one it was built with when both keep their vectors in
    the index folder: moving means rebuilding, and an index from before the default changed
    must keep ingesting. A server/folder mismatch is left to ``open_vectors`` to refuse."""
    if built is None or built == configured or not {built, configured} <= FOLDER_BACKENDS:
        return configured
    return built


def open_vectors(root: Path, store: StoreConfig) -> ChunkVectorStore:
    """The index's vector store. Backends keep vectors in formats the others cannot read,
    so an index opens only with the backend it was built with."""
    built = built_backend(root)
    if built is not None and built != store.backend:
        raise IndexStateError(
            f"index {root} holds its vectors in the {built} store and the config asks for store.backend {store.backend}; "
            f"an index keeps the backend it was built with: ingest into a new --index (or set store.backend: {built})"
        )
    return open_store(store, IndexPaths(root).vectors(store.backend))


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Atomic: a reader sees the old manifest or the new one, never a torn file."""
    write_json_atomic(IndexPaths(root).manifest, dataclasses.asdict(manifest), newline=False, indent=2)


class WriterLock:
    """An exclusive advisory lock: one writing process per index (or, with another
    ``file_name``, one process per other role, e.g. the scheduler of an index root).
    The kernel drops it when the holder dies, so a killed holder never blocks the next."""

    def __init__(self, root: Path, file_name: str = LOCK, role: str = "writing") -> None:
        self.path = Path(root) / file_name
        self.role = role
        self._handle: IO[str] | None = None

    def __enter__(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.path.read_text(encoding="utf-8").strip() or "?"
            handle.close()
            raise IndexStateError(
                f"another process (pid {holder}) is {self.role} {self.path.parent}; wait for it to finish or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()


def mark_in_progress(root: Path, note: dict[str, Any]) -> None:
    IndexPaths(root).marker.write_text(json.dumps({"started_at": time.time(), **note}), encoding="utf-8")


def clear_in_progress(root: Path) -> None:
    IndexPaths(root).marker.unlink(missing_ok=True)


def remove_stale_bm25(root: Path, keep: str) -> None:
    """Once the manifest names KEEP: delete every other BM25 generation folder (and
    staging leftovers), then the segments KEEP does not use."""
    for folder in root.glob("bm25-*"):
        if folder.name not in (keep, SHARED_STORE) and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
    remove_unreferenced(root / keep)


# ----------------------------------------------------------------- generations (index/generations.py writes them)

LIVE = "LIVE"  # ROOT/LIVE: the live generation's name
GENERATIONS = "generations"  # ROOT/generations/NAME/: one complete index folder each


def is_generational(root: Path) -> bool:
    root = Path(root)
    return (root / LIVE).is_file() or (root / GENERATIONS).is_dir()


def live_name(root: Path) -> str | None:
    try:
        name = (Path(root) / LIVE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def generation_path(root: Path, name: str) -> Path:
    return Path(root) / GENERATIONS / name


def live_path(root: Path) -> tuple[str, Path]:
    """(name, folder) of the index to search: the live generation, or a plain
    index folder itself (a single static generation named after its manifest)."""
    root = Path(root)
    if not is_generational(root):
        manifest = require_finished(root)
        return f"static-{manifest.generation:06d}", root
    name = live_name(root)
    if name is None:
        raise IndexStateError(
            f"no generation of {root} has been published yet; run `lcrag ingest SOURCE --index {root} --generations`"
        )
    folder = generation_path(root, name)
    require_finished(folder)
    return name, folder


def live_root(root: Path) -> Path:
    """The folder to read: a root's live generation, or a plain index folder itself."""
    return live_path(root)[1] if is_generational(root) else Path(root)
