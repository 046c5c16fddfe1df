"""Helpers shared by several test modules (fixtures stay in conftest.py): ledger
rows, whitespace tokens and paragraphs for the segmenters, and small ingestion
settings with a comparable snapshot of everything an index holds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lcrag.pipeline.config import config_from_dict
from lcrag.pipeline.index.catalog import Catalog
from lcrag.pipeline.index.folder import IndexPaths, open_vectors, read_manifest
from lcrag.pipeline.ledger import LedgerRow
from lcrag.pipeline.ledger.migrations import legacy_structure
from lcrag.retrievers.bm25 import BM25Index

# ------------------------------------------------------------------ ledger


def make_row(**overrides) -> LedgerRow:
    """A valid ledger row; OVERRIDES replace any field. The columns m009 added (evidence
    placement, answer kind, route steps) default to what m009 fills a stored row with
    from its id, gold answers and route, so a row written as ``q3@pos2`` with route
    ``rag->lc`` is the row a migrated ledger holds."""
    values = dict(
        run_id="run1",
        question_id="q1",
        question="Who wrote it?",
        strategy="rag",
        route="rag",
        answer="Someone",
        index_id="scifact@3",
        config_hash="abc123",
        model="tiny-llm",
        retrieved_ids=("d1", "d2", "d3"),
        used_ids=("d1",),
        context_tokens=120,
        prompt_tokens=150,
        completion_tokens=12,
        retrieval_ms=3.5,
        reading_ms=250.0,
        context_cut=False,
    )
    values.update(overrides)
    filled = legacy_structure(values["question_id"], values["strategy"], values["route"], values.get("gold_answers"))
    return LedgerRow(**(filled | values))


# ------------------------------------------------------------ segmenting


def ws_offsets(text: str) -> np.ndarray:
    """Whitespace tokens: one row per maximal run of non-space characters."""
    rows = [[m.start(), m.end()] for m in re.finditer(r"\S+", text)]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def paragraphs(text: str) -> list[tuple[int, int]]:
    """Blank-line separated paragraphs, as a loader would mark sections."""
    return [(m.start(), m.end()) for m in re.finditer(r"\S(?:.*?\S)?(?=\n\s*\n|\s*$)", text, re.S)]


# ------------------------------------------------------------- ingestion

SMALL = {
    "units": {"max_tokens": 96, "group_by": "neighbours"},
    "chunking": {"target_tokens": 24},
    "ingest": {"commit_tokens": 40},
}


def small_config(**overrides):
    data = {key: dict(value) for key, value in SMALL.items()}
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data)


def unit_counts(index: Path) -> dict[str, int]:
    """How many units of the index are pending and done."""
    catalog = Catalog(IndexPaths(index).catalog, read_only=True)
    try:
        statuses = [r.status for r in catalog.unit_records()]
    finally:
        catalog.close()
    return {status: statuses.count(status) for status in ("pending", "done")}


QUERIES = ("volcano lava magma", "sourdough bread yeast", "rocket fuel orbit", "green tea caffeine", "chess gambit")


def assert_same_index(a: dict, b: dict, queries=QUERIES) -> None:
    """Two snapshots hold the same units, chunks, documents, vectors and BM25 index."""
    assert a["units"] == b["units"] and a["chunks"] == b["chunks"] and a["docs"] == b["docs"]
    assert set(a["vectors"]) == set(b["vectors"])
    for chunk_id in a["vectors"]:
        np.testing.assert_allclose(a["vectors"][chunk_id], b["vectors"][chunk_id], atol=1e-5)
    assert a["bm25"].chunk_ids == b["bm25"].chunk_ids and a["bm25"].terms == b["bm25"].terms
    for query in queries:
        tokens = a["bm25"].analyzer.tokens(query)
        np.testing.assert_allclose(a["bm25"].scores(tokens), b["bm25"].scores(tokens), rtol=1e-12)
        assert a["bm25"].search(query, 5) == b["bm25"].search(query, 5)


def snapshot(index: Path, config=None) -> dict:
    """Everything an index holds, in comparable form: units, chunks, vectors, BM25 rows."""
    config = config or small_config()
    paths = IndexPaths(index)
    catalog = Catalog(paths.catalog, read_only=True)
    try:
        units = {r.unit.unit_id: (r.status, r.unit.spans) for r in catalog.unit_records()}
        chunks = {c.chunk_id: (c.unit_id, c.doc_id, c.start, c.end) for c in catalog.iter_chunks()}
        docs = catalog.document_hashes()
    finally:
        catalog.close()
    store = open_vectors(index, config.store)
    try:
        vectors = dict(store.iter_vectors())
    finally:
        store.close()
    manifest = read_manifest(index)
    bm25 = BM25Index.load(paths.bm25(manifest)) if manifest else None
    return {"units": units, "chunks": chunks, "docs": docs, "vectors": vectors, "bm25": bm25}


def generated_corpus(folder: Path, n_docs: int = 40) -> Path:
    """N_DOCS documents of random sentences from a small vocabulary (seeded: the same every run)."""
    rng = np.random.default_rng(7)
    words = ["alpha", "beta", "gamma", "delta", "river", "mountain", "forest", "engine", "signal", "protein", "market", "harbor", "lantern", "orbit"]
    for i in range(n_docs):
        sentences = [" ".join(rng.choice(words, size=12)).capitalize() + "." for _ in range(10)]
        (folder / f"doc{i:03d}.txt").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"doc{i:03d}.txt").write_text(f"Document {i}. " + " ".join(sentences), encoding="utf-8")
    return folder


def load_bench_script(name: str):
    """A script of bench/ (not a package) imported by its path, as its tests need it."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_script(name: str):
    """A set-up script of scripts/ (not installed, not a package) imported by its path.

    Registered in ``sys.modules`` under ``scripts_<name>`` before it runs, as dataclasses
    (and pickling) need a module's own entry; loading it again returns the same module."""
    import importlib.util
    import sys

    module_name = f"scripts_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
