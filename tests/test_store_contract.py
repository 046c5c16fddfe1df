"""Every vector store backend keeps the ChunkVectorStore contract that ingestion and
search rely on (``VectorStoreContract``, from ``lcrag.testing`` where a store plugin's
tests find it too): one point per chunk (a rewrite replaces it), cosine ranking, deletion
by unit, exact counts, everything kept across close and reopen, and acknowledged writes
kept across a SIGKILL. qdrant-server runs when LCRAG_TEST_QDRANT_URL names a server.
Then: Qdrant Edge's HNSW against exact search, and whole ingestions on a backend."""

from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pytest

from lcrag.core.errors import ConfigError
from lcrag.pipeline.config import config_from_dict
from lcrag.pipeline.index.folder import IndexPaths, IndexStateError, open_vectors
from lcrag.pipeline.index.search import IndexReader
from lcrag.pipeline.ingest.ingestion import ingest
from lcrag.pipeline.ingest.loaders import load_source
from lcrag.retrievers.config import StoreConfig
from lcrag.retrievers.dense import QdrantChunkStore, VectorStoreError, point_id
from lcrag.retrievers.registry import store_backends
from lcrag.retrievers.stores import open_store
from lcrag.retrievers.stores.edge import EdgeChunkStore, EdgeTuning
from lcrag.testing import VectorStoreContract
from lcrag.testing.contracts import chunks_of, unit_rows
from tests.helpers import small_config

SERVER_URL = os.environ.get("LCRAG_TEST_QDRANT_URL", "")


# ------------------------------------------------------------------ backends


@pytest.fixture(
    params=[
        "qdrant-local",
        "qdrant-edge",
        pytest.param(
            "qdrant-server",
            marks=pytest.mark.skipif(not SERVER_URL, reason="set LCRAG_TEST_QDRANT_URL to a Qdrant server to run these"),
        ),
    ]
)
def store_config(request) -> StoreConfig:
    if request.param != "qdrant-server":
        yield StoreConfig(backend=request.param)
        return
    config = StoreConfig(qdrant_url=SERVER_URL, collection=f"lcrag_test_{uuid.uuid4().hex[:12]}")
    yield config
    from qdrant_client import QdrantClient

    client = QdrantClient(url=SERVER_URL)
    client.delete_collection(config.collection)
    client.close()


def test_every_backend_of_the_group_opens_a_store(tmp_path):
    """lcrag's own backends are the lcrag.stores entry points; each opens (a server's client lazily)."""
    assert {"qdrant-local", "qdrant-server", "qdrant-edge"} <= set(store_backends())
    for backend in ("qdrant-local", "qdrant-edge"):
        store = open_store(StoreConfig(backend=backend), tmp_path / backend)
        assert store.count() == 0
        store.close()


def test_an_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"store": {"backend": "faiss"}})
    assert "store.backend" in str(err.value) and all(name in str(err.value) for name in store_backends())


def test_a_url_means_the_server_and_needs_it():
    assert config_from_dict({"store": {"qdrant_url": "http://localhost:6333"}}).store.backend == "qdrant-server"
    with pytest.raises(ConfigError, match=r"needs store.qdrant_url"):
        StoreConfig(backend="qdrant-server")
    with pytest.raises(ConfigError, match=r"store.qdrant_url is for store.backend qdrant-server"):
        StoreConfig(backend="qdrant-local", qdrant_url="http://localhost:6333")


def test_the_old_names_still_import():
    assert QdrantChunkStore.__name__ == "QdrantChunkStore" and issubclass(VectorStoreError, RuntimeError)
    assert point_id("c1") == point_id("c1") != point_id("c2")


# ------------------------------------------------------------------ the contract


class TestVectorStores(VectorStoreContract):
    """Every backend above (the ``store_config`` fixture) against the shared contract."""


# ------------------------------------------------------------------ Qdrant Edge's index


def test_edge_hnsw_recall_against_exact_search(tmp_path):
    """A low indexing threshold makes these few thousand points an HNSW segment (the
    default scans segments this small exactly). Close builds the graph."""
    n, dim = 4000, 64
    vectors = unit_rows(n, dim, 10)
    ids = [f"c{i}" for i in range(n)]
    tuning = EdgeTuning(indexing_threshold_kb=10)
    store = EdgeChunkStore(StoreConfig(backend="qdrant-edge"), tmp_path, tuning)
    store.ensure_collection(dim)
    store.upsert(chunks_of(ids, unit_of=lambda cid: f"u{int(cid[1:]) // 10}"), vectors)
    store.close()
    store = EdgeChunkStore(StoreConfig(backend="qdrant-edge"), tmp_path, tuning)
    try:
        assert store.indexed_count() >= n  # the graph exists: HNSW is what is measured
        found = 0
        queries = unit_rows(50, dim, 11)
        for query in queries:
            cosine = vectors @ query
            truth = [ids[i] for i in np.argsort(-cosine)[:10]]
            found += len({h.chunk_id for h in store.search(query, 10)} & set(truth))
            exact = store.search(query, 10, exact=True)
            assert [h.chunk_id for h in exact] == truth
            np.testing.assert_allclose([h.score for h in exact], np.sort(cosine)[::-1][:10], atol=1e-5)
        assert found / (10 * len(queries)) >= 0.95
    finally:
        store.close()


def test_edge_small_publish_keeps_the_graph(tmp_path):
    """A publish smaller than the indexing threshold builds no graph: the re-embedded
    points go to a segment of their own, scanned exactly, and the indexed segment (and
    its graph) stays as it was, deleted points masked. With a threshold below the
    publish, close would build a graph for it (Qdrant merges it into the big segment)."""
    dim, n = 16, 3000  # 64 bytes a vector: 3000 fill ~188 KB, the 300 new ones ~19 KB
    tuning = EdgeTuning(indexing_threshold_kb=100)
    vectors = unit_rows(n, dim, 12)
    ids = [f"c{i}" for i in range(n)]
    unit_of = lambda cid: f"u{int(cid.split('-')[-1].lstrip('c')) // 100}"  # noqa: E731
    segments = tmp_path / "lcrag_chunks" / "segments"

    def indexed_segments() -> set[str]:
        return {s.name for s in segments.iterdir() if (s / "vector_index").exists()}

    store = EdgeChunkStore(StoreConfig(backend="qdrant-edge"), tmp_path, tuning)
    store.ensure_collection(dim)
    store.upsert(chunks_of(ids, unit_of), vectors)
    store.close()
    built = indexed_segments()
    assert len(built) == 1

    store = EdgeChunkStore(StoreConfig(backend="qdrant-edge"), tmp_path, tuning)
    try:
        assert store.indexed_count() >= n
        store.delete_units(["u0", "u1", "u2"])  # the 300 points of three units, re-embedded:
        fresh = unit_rows(300, dim, 13)
        store.upsert(chunks_of([f"new-c{i}" for i in range(300)], unit_of), fresh)
        store.close()
        assert indexed_segments() == built  # no graph built or rebuilt at close
        store = EdgeChunkStore(StoreConfig(backend="qdrant-edge"), tmp_path, tuning)
        assert store.count() == n
        assert store.search(fresh[7], 1)[0].chunk_id == "new-c7"  # the new points are found
        assert store.search(vectors[5], 1)[0].chunk_id != "c5"  # and the deleted ones are not
        assert store.search(vectors[500], 1)[0].chunk_id == "c500"
    finally:
        store.close()


# ------------------------------------------------------------------ whole ingestions


def test_ingest_and_search_on_qdrant_edge(topic_corpus, tmp_path, encoder):
    index = tmp_path / "index"
    config = small_config(store={"backend": "qdrant-edge"})
    report = ingest(load_source(topic_corpus), index, config, encoder, "corpus")
    assert IndexPaths(index).qdrant_edge.is_dir() and not IndexPaths(index).qdrant.exists()
    with IndexReader(index, lambda c: encoder) as reader:
        assert reader.config.store.backend == "qdrant-edge"
        assert reader.vectors.count() == report.manifest.chunks > 0
        hits = reader.search("Which defence answers e4 with c5?", k=3, mode="dense", level="doc")
        assert hits[0].doc_id == "guide/chess.html"
    again = ingest(load_source(topic_corpus), index, config, encoder, "corpus")  # unchanged: nothing to do
    assert again.embed.units == 0
    # asking for another folder backend keeps the built one, and says so (moving means rebuilding)
    kept = ingest(load_source(topic_corpus), index, small_config(store={"backend": "qdrant-local"}), encoder, "corpus")
    assert kept.manifest.build_config().store.backend == "qdrant-edge"
    assert len(kept.notes) == 1 and "keeps its qdrant-edge store" in kept.notes[0] and "new --index" in kept.notes[0]


@pytest.mark.parametrize(
    "built, configured, expected",
    [
        (None, "qdrant-edge", "qdrant-edge"),  # a new index takes the configured backend
        (None, "qdrant-server", "qdrant-server"),
        ("qdrant-local", "qdrant-local", "qdrant-local"),
        ("qdrant-local", "qdrant-edge", "qdrant-local"),  # built before the default changed: keeps ingesting
        ("qdrant-edge", "qdrant-local", "qdrant-edge"),
        ("qdrant-local", "qdrant-server", "qdrant-server"),  # server vs folder: left to open_vectors to refuse
        ("qdrant-server", "qdrant-edge", "qdrant-edge"),
    ],
)
def test_kept_backend(built, configured, expected):
    from lcrag.pipeline.index.folder import kept_backend

    assert kept_backend(built, configured) == expected


def test_an_index_from_before_backends_opens_as_qdrant_local(topic_corpus, tmp_path, encoder):
    index = tmp_path / "index"
    ingest(load_source(topic_corpus), index, small_config(store={"backend": "qdrant-local"}), encoder, "corpus")
    manifest = IndexPaths(index).manifest
    data = json.loads(manifest.read_text(encoding="utf-8"))
    for key in ("backend", "hnsw_ef"):  # as written before these settings existed
        del data["config"]["store"][key]
    manifest.write_text(json.dumps(data), encoding="utf-8")
    with IndexReader(index, lambda c: encoder) as reader:
        assert reader.config.store.backend == "qdrant-local"
        assert reader.search("purring cats", k=1, mode="dense", level="doc")[0].doc_id == "cats.md"
    # today's default (qdrant-edge) keeps ingesting into it, as qdrant-local
    (topic_corpus / "new.md").write_text("Goldfish remember for months, not seconds.", encoding="utf-8")
    report = ingest(load_source(topic_corpus), index, small_config(store={"backend": "qdrant-edge"}), encoder, "corpus")
    assert report.plan.added == 1 and report.notes
    with IndexReader(index, lambda c: encoder) as reader:
        assert reader.config.store.backend == "qdrant-local"
        assert reader.vectors.count() == report.manifest.chunks
        assert reader.search("goldfish memory", k=1, mode="dense", level="doc")[0].doc_id == "new.md"
    # a server store cannot stand in for the folder's: refused, naming the fix
    with pytest.raises(IndexStateError, match=r"holds its vectors in the qdrant-local store.*new --index"):
        open_vectors(index, StoreConfig(backend="qdrant-server", qdrant_url="http://127.0.0.1:9"))


def test_a_first_ingestion_cut_short_keeps_its_backend(topic_corpus, tmp_path, encoder):
    """No manifest yet: the store folder present tells which backend wrote it."""
    from lcrag.pipeline.ingest.ingestion import InjectedFault

    index = tmp_path / "index"
    with pytest.raises(InjectedFault):
        ingest(load_source(topic_corpus), index, small_config(store={"backend": "qdrant-edge"}), encoder, "corpus",
               fail_after_batches=1)
    report = ingest(load_source(topic_corpus), index, small_config(store={"backend": "qdrant-local"}), encoder, "corpus")
    assert report.manifest.build_config().store.backend == "qdrant-edge" and report.notes
    with IndexReader(index, lambda c: encoder) as reader:
        assert reader.vectors.count() == report.manifest.chunks


@pytest.mark.parametrize(
    "store, backend",
    [
        ({"collection": "c"}, "qdrant-local"),  # written before store.backend existed
        ({"collection": "c", "qdrant_url": "http://q:6333"}, "qdrant-server"),
        ({"collection": "c", "backend": "qdrant-edge"}, "qdrant-edge"),
        ({"collection": "c", "backend": "qdrant-local"}, "qdrant-local"),
    ],
)
def test_a_manifest_without_a_backend_means_the_one_it_was_built_with(store, backend):
    from lcrag.pipeline.index.folder import with_legacy_backend

    assert with_legacy_backend({"store": store, "encoder": {}})["store"]["backend"] == backend


def test_new_configs_default_to_the_engine_in_process():
    assert StoreConfig().backend == "qdrant-edge"
    assert StoreConfig(qdrant_url="http://q:6333").backend == "qdrant-server"
