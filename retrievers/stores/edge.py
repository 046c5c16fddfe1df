"""Chunk vectors in Qdrant Edge: Qdrant's storage engine inside this process (segments,
HNSW, payload indexes, a write-ahead log) with no server to run.

Every update is in the WAL when it returns, so a killed process loses nothing it was
told was written (``load`` replays the log); ``upsert`` also flushes to disk before it
returns, since the catalog then marks the units done. Edge has no background optimizer:
HNSW graphs are built by ``optimize``, which ``close`` runs after writes. Until then new
points are searched by an exact scan, as are segments below the indexing threshold.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lcrag.core.files import replace_dir_atomic
from lcrag.core.types import Chunk
from lcrag.retrievers.base import ScoredChunk
from lcrag.retrievers.config import StoreConfig
from lcrag.retrievers.stores.base import VectorStoreError, check_batch, chunk_payload, point_id

CONFIG_FILE = "edge_config.json"  # written by the engine when a shard is created
UPSERT_BATCH = 1024
DELETE_BATCH = 256
SCROLL_PAGE = 2048


@dataclass(frozen=True)
class EdgeTuning:
    """How a new shard builds its index, fixed at creation (the search beam is
    ``store.hnsw_ef``). m 16 and ef_construct 128: on 1M clustered 384-d vectors
    (``bench/scale.py``) search ef 128 found 94.8% of the exact top 10, ef 256 98.3%.

    Segments under ``indexing_threshold_kb`` of vectors (about 100,000 at 384-d, 50,000
    at 768-d) get no graph and are scanned exactly (~10 ms at that size). The threshold
    is what keeps a small publish cheap: its re-embedded chunks go to a segment of their
    own, scanned exactly, instead of a graph being built for them at close (Qdrant's
    10 MB default indexed 77K re-embedded chunks at a 1% publish of 1M, 40% of that
    publish's time; at 100K it merged them into the big segment and rebuilt its graph).
    Once those segments outgrow the threshold they get a graph of their own, and a
    segment with 20% of its points deleted is rebuilt (Qdrant's vacuum)."""

    m: int = 16
    ef_construct: int = 128
    indexing_threshold_kb: int = 150_000
    full_scan_threshold_kb: int = 10_000  # a filtered search matching fewer vectors scans them


DEFAULT_TUNING = EdgeTuning()


class EdgeChunkStore:
    """One Edge shard per collection, in ``folder/<collection>``."""

    def __init__(self, config: StoreConfig, folder: Path, tuning: EdgeTuning = DEFAULT_TUNING) -> None:
        self.path = Path(folder) / config.collection
        self.hnsw_ef = config.hnsw_ef
        self.tuning = tuning
        self._written = False
        self._shard = self._load() if self.path.exists() else None

    # -- lifecycle ----------------------------------------------------------------------
    def _load(self):
        from qdrant_edge import EdgeShard

        try:
            return EdgeShard.load(str(self.path))
        except Exception as err:  # noqa: BLE001 - the bindings raise a bare Exception
            if "WouldBlock" in str(err):
                raise VectorStoreError(
                    f"the vectors in {self.path} are open elsewhere (Qdrant Edge allows one open shard per folder: "
                    "another lcrag process, or another store in this one); stop it or wait for it to finish"
                ) from None
            raise VectorStoreError(f"cannot open the Qdrant Edge shard {self.path}: {err}") from None

    def _create(self, dim: int) -> None:
        """Build the shard beside its final place and rename it there, so an existing
        folder is always a whole shard (a crash mid-creation leaves only the staging folder)."""
        from qdrant_edge import (
            Distance,
            EdgeConfig,
            EdgeOptimizersConfig,
            EdgeShard,
            EdgeVectorParams,
            HnswIndexConfig,
            PayloadSchemaType,
            UpdateOperation,
        )

        t = self.tuning
        config = EdgeConfig(
            vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine),
            hnsw_config=HnswIndexConfig(m=t.m, ef_construct=t.ef_construct, full_scan_threshold=t.full_scan_threshold_kb),
            optimizers=EdgeOptimizersConfig(indexing_threshold=t.indexing_threshold_kb),
        )
        staging = self.path.with_name(self.path.name + ".creating")
        shutil.rmtree(staging, ignore_errors=True)
        staging.parent.mkdir(parents=True, exist_ok=True)
        shard = EdgeShard.create(str(staging), config)
        try:  # deletion by unit filters on this field
            shard.update(UpdateOperation.create_field_index("unit_id", PayloadSchemaType.Keyword))
        finally:
            shard.close()
        replace_dir_atomic(staging, self.path)
        self._shard = self._load()

    def flush(self) -> None:
        if self._shard is not None:
            self._shard.flush()

    def optimize(self) -> bool:
        """Merge segments and build HNSW graphs (blocks; also run by ``close`` after writes)."""
        return bool(self._shard is not None and self._shard.optimize())

    def indexed_count(self) -> int:
        """How many vectors HNSW graphs hold (the rest are scanned exactly)."""
        return 0 if self._shard is None else int(self._shard.info().indexed_vectors_count)

    def close(self) -> None:
        shard, self._shard = self._shard, None
        if shard is None:
            return
        try:
            if self._written:
                shard.optimize()
        finally:
            shard.close()  # flushes

    # -- the ChunkVectorStore protocol -------------------------------------------------------
    def ensure_collection(self, dim: int) -> None:
        if self._shard is None:
            self._create(dim)
            return
        size = self._stored_dim()
        if size is not None and size != dim:
            raise VectorStoreError(f"the vectors in {self.path} are {size}-d, the encoder makes {dim}-d")

    def _stored_dim(self) -> int | None:
        try:
            vectors = json.loads((self.path / CONFIG_FILE).read_text(encoding="utf-8"))["vectors"]
            return int(vectors[""]["size"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # an engine that keeps its config elsewhere: the engine checks each vector

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        from qdrant_edge import Point, UpdateOperation

        check_batch(chunks, vectors)
        if not len(chunks):
            return
        if self._shard is None:
            raise VectorStoreError(f"no vectors in {self.path} yet: call ensure_collection(dim) before upsert")
        self._written = True
        for i in range(0, len(chunks), UPSERT_BATCH):
            points = [
                Point(point_id(c.chunk_id), v.tolist(), chunk_payload(c))
                for c, v in zip(chunks[i : i + UPSERT_BATCH], vectors[i : i + UPSERT_BATCH])
            ]
            self._shard.update(UpdateOperation.upsert_points(points))
        self._shard.flush()  # tens of ms: small beside embedding the batch

    def delete_units(self, unit_ids: Iterable[str]) -> None:
        from qdrant_edge import FieldCondition, Filter, MatchAny, UpdateOperation

        ids = list(unit_ids)
        if not ids or self._shard is None:
            return
        self._written = True
        for i in range(0, len(ids), DELETE_BATCH):
            units = Filter(must=[FieldCondition(key="unit_id", match=MatchAny(any=ids[i : i + DELETE_BATCH]))])
            self._shard.update(UpdateOperation.delete_points_by_filter(units))

    def unit_ids(self) -> set[str]:
        from qdrant_edge import ScrollRequest

        seen: set[str] = set()
        if self._shard is None:
            return seen
        offset = None
        while True:
            records, offset = self._shard.scroll(
                ScrollRequest(offset=offset, limit=SCROLL_PAGE, with_payload=["unit_id"], with_vector=False)
            )
            seen.update(r.payload["unit_id"] for r in records if r.payload)
            if offset is None:
                return seen

    def iter_vectors(self) -> Iterator[tuple[str, np.ndarray]]:
        from qdrant_edge import ScrollRequest

        if self._shard is None:
            return
        offset = None
        while True:
            records, offset = self._shard.scroll(
                ScrollRequest(offset=offset, limit=SCROLL_PAGE, with_payload=["chunk_id"], with_vector=True)
            )
            for r in records:
                if r.payload:
                    yield r.payload["chunk_id"], _dense(r.vector)
            if offset is None:
                return

    def count(self) -> int:
        from qdrant_edge import CountRequest

        return 0 if self._shard is None else int(self._shard.count(CountRequest(exact=True)))

    def search(self, vector: np.ndarray, k: int, *, exact: bool = False) -> list[ScoredChunk]:
        from qdrant_edge import Query, QueryRequest, SearchParams

        if self._shard is None or k < 1:
            return []
        request = QueryRequest(
            limit=k,
            query=Query.Nearest(np.asarray(vector, dtype=np.float32).tolist()),
            with_payload=["chunk_id"],
            params=SearchParams(hnsw_ef=max(self.hnsw_ef, k), exact=exact),
        )
        return [ScoredChunk(p.payload["chunk_id"], float(p.score)) for p in self._shard.query(request) if p.payload]


def _dense(vector) -> np.ndarray:
    """A record's one unnamed dense vector (the engine returns a list; a dict names vectors)."""
    if isinstance(vector, dict):
        (vector,) = vector.values()
    return np.asarray(vector, dtype=np.float32)
