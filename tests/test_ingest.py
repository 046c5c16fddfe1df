"""Ingestion against real stores (Qdrant local mode, SQLite catalog, BM25 folder)
with the real offline encoder: incremental runs, changed and removed documents,
skipped files, and crash/resume equivalence."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from lcrag.pipeline.index.catalog import Catalog
from lcrag.pipeline.index.folder import (
    IndexPaths,
    IndexStateError,
    read_manifest,
    require_finished,
)
from lcrag.pipeline.index.search import IndexReader
from lcrag.pipeline.ingest.ingestion import IndexWriter, InjectedFault, embed_pending, ingest
from lcrag.pipeline.ingest.loaders import load_source
from tests.helpers import (
    QUERIES,
    SMALL,
    assert_same_index,
    generated_corpus,
    small_config,
    snapshot,
    unit_counts,
)


def run(corpus: Path, index: Path, encoder, config=None, name: str = "corpus", progress_factory=None,
        fail_after_batches=None):
    return ingest(load_source(corpus), index, config or small_config(), encoder, name, progress_factory,
                  fail_after_batches=fail_after_batches)


def test_first_ingest_fills_every_store_consistently(topic_corpus, tmp_path, encoder):
    report = run(topic_corpus, tmp_path / "index", encoder)
    snap = snapshot(tmp_path / "index")
    assert report.plan.added == 6 and report.manifest.documents == 6
    assert set(snap["docs"]) == {"cats.md", "volcanoes.txt", "bread.md", "rockets.txt", "guide/chess.html", "guide/tea.txt"}
    assert all(status == "done" for status, _ in snap["units"].values())
    assert set(snap["vectors"]) == set(snap["chunks"])  # one point per chunk, nothing else
    assert sorted(snap["bm25"].chunk_ids) == sorted(snap["chunks"])
    assert report.manifest.chunks == len(snap["chunks"]) > 6  # small target: several chunks per document
    assert not IndexPaths(tmp_path / "index").marker.exists()
    for vector in snap["vectors"].values():
        assert abs(np.linalg.norm(vector) - 1) < 1e-3


def test_unreadable_files_are_reported_and_skipped(topic_corpus, tmp_path, encoder):
    report = run(topic_corpus, tmp_path / "index", encoder)
    reasons = {s.path: s.reason for s in report.plan.skipped}
    assert set(reasons) == {"broken.pdf", "blob.txt", "empty.md", "latin1.txt"}
    assert "binary" in reasons["blob.txt"] and "empty" in reasons["empty.md"] and "UTF-8" in reasons["latin1.txt"]
    assert report.manifest.documents == 6


def test_same_source_again_does_no_embedding_and_adds_nothing(topic_corpus, tmp_path, encoder):
    first = run(topic_corpus, tmp_path / "index", encoder)
    before = snapshot(tmp_path / "index")
    second = run(topic_corpus, tmp_path / "index", encoder)
    after = snapshot(tmp_path / "index")
    assert second.embed.units == 0 and second.embed.tokens == 0
    assert second.plan.unchanged == 6 and second.plan.units_planned == 0
    assert second.manifest.generation == first.manifest.generation
    assert after["chunks"] == before["chunks"] and set(after["vectors"]) == set(before["vectors"])


def test_changed_document_reembeds_only_its_units(topic_corpus, tmp_path, encoder):
    index = tmp_path / "index"
    run(topic_corpus, index, encoder)
    before = snapshot(index)
    owning = {u for u, (_, spans) in before["units"].items() if any(s.doc_id == "bread.md" for s in spans)}
    (topic_corpus / "bread.md").write_text("# Baking bread\n\nRye bread is dense and dark. It keeps for a week.\n")
    report = run(topic_corpus, index, encoder)
    after = snapshot(index)
    assert report.plan.changed == 1 and report.plan.units_dropped == len(owning)
    untouched = set(before["units"]) - owning
    assert untouched <= set(after["units"])  # every other unit survives with its id
    new_units = set(after["units"]) - set(before["units"])
    assert report.embed.units == len(new_units) >= 1
    for chunk_id, (unit_id, *_rest) in before["chunks"].items():
        if unit_id in untouched:
            np.testing.assert_allclose(after["vectors"][chunk_id], before["vectors"][chunk_id], atol=1e-6)
    assert report.manifest.generation == 2


def test_removed_document_disappears_from_every_store(topic_corpus, tmp_path, encoder):
    index = tmp_path / "index"
    run(topic_corpus, index, encoder)
    (topic_corpus / "volcanoes.txt").unlink()
    report = run(topic_corpus, index, encoder)
    snap = snapshot(index)
    assert report.plan.removed == 1
    assert "volcanoes.txt" not in snap["docs"]
    assert all(doc != "volcanoes.txt" for _, doc, _, _ in snap["chunks"].values())
    assert set(snap["vectors"]) == set(snap["chunks"]) and sorted(snap["bm25"].chunk_ids) == sorted(snap["chunks"])
    with IndexReader(index, lambda c: encoder) as reader:
        hits = reader.search("lava magma eruption Etna", k=10, level="doc")
    assert "volcanoes.txt" not in {h.doc_id for h in hits}


class Killed(Exception):
    pass


def test_crash_mid_embedding_then_resume_equals_uninterrupted_run(topic_corpus, tmp_path, encoder):
    reference = tmp_path / "reference"
    run(topic_corpus, reference, encoder)

    crashed = tmp_path / "crashed"
    calls = []

    def crash_after_first_commit(total):
        def progress(tokens):
            calls.append(tokens)
            raise Killed

        return progress

    with pytest.raises(Killed):
        run(topic_corpus, crashed, encoder, progress_factory=crash_after_first_commit)
    with pytest.raises(IndexStateError, match="interrupted"):
        require_finished(crashed)
    catalog = Catalog(IndexPaths(crashed).catalog, read_only=True)
    statuses = [r.status for r in catalog.unit_records()]
    catalog.close()
    assert "done" in statuses and "pending" in statuses  # genuinely half way

    resumed = run(topic_corpus, crashed, encoder)
    assert resumed.plan.units_planned == 0  # the stored plan is resumed, not replanned
    a, b = snapshot(reference), snapshot(crashed)
    assert a["units"] == b["units"] and a["chunks"] == b["chunks"] and a["docs"] == b["docs"]
    assert set(a["vectors"]) == set(b["vectors"])
    for chunk_id in a["vectors"]:
        np.testing.assert_allclose(a["vectors"][chunk_id], b["vectors"][chunk_id], atol=1e-5)
    assert a["bm25"].chunk_ids == b["bm25"].chunk_ids


# 0 and test_crash_mid_embedding_... (a crash after the first commit) are the fast tier's
@pytest.mark.parametrize("fail_after", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_injected_fault_leaves_the_index_in_progress_and_the_rerun_resumes(topic_corpus, tmp_path, encoder, fail_after):
    """A deterministic crash after FAIL_AFTER committed batches: never searchable as
    finished; the rerun embeds only what was left and ends with the uninterrupted index."""
    reference = tmp_path / "reference"
    full = run(topic_corpus, reference, encoder)
    total = full.embed.units
    assert total > fail_after + 1  # work is left after the fault

    crashed = tmp_path / "crashed"
    with pytest.raises(InjectedFault):
        run(topic_corpus, crashed, encoder, fail_after_batches=fail_after)
    assert read_manifest(crashed) is None
    with pytest.raises(IndexStateError, match="interrupted"):
        require_finished(crashed)
    with pytest.raises(IndexStateError, match="interrupted"):
        IndexReader(crashed, lambda c: encoder)
    counts = unit_counts(crashed)
    assert counts["done"] + counts["pending"] == total
    assert counts["pending"] >= 1 and (counts["done"] >= fail_after if fail_after else counts["done"] == 0)

    resumed = run(topic_corpus, crashed, encoder)
    assert resumed.plan.units_planned == 0  # the stored plan is resumed, not replanned
    assert resumed.embed.units == counts["pending"] == total - counts["done"]  # only what was left
    assert resumed.manifest.chunks == full.manifest.chunks and resumed.manifest.generation == 1
    assert unit_counts(crashed) == {"pending": 0, "done": total}
    assert_same_index(snapshot(reference), snapshot(crashed))
    with IndexReader(reference, lambda c: encoder) as a, IndexReader(crashed, lambda c: encoder) as b:
        for query in QUERIES:
            assert [(h.chunk_id, round(h.score, 4)) for h in a.search(query, k=5)] == \
                   [(h.chunk_id, round(h.score, 4)) for h in b.search(query, k=5)]


def test_injected_fault_during_an_update_keeps_the_previous_manifest_but_not_finished(topic_corpus, tmp_path, encoder):
    """An incremental run that dies half way: the folder says in progress (the old
    manifest is not served as finished), and the rerun ends where an uninterrupted update would."""
    index, reference = tmp_path / "index", tmp_path / "reference"
    first = run(topic_corpus, index, encoder)
    run(topic_corpus, reference, encoder)
    (topic_corpus / "bread.md").write_text(
        "# Baking bread\n\nRye bread is dense and dark. It keeps for a week.\n\n"
        "Spelt flour gives a nutty loaf. Proof the dough overnight in a cool room.\n\n"
        "Flatbreads cook in minutes on a hot stone. Naan is baked against the wall of a tandoor.\n"
    )
    updated = run(topic_corpus, reference, encoder)
    assert updated.embed.units >= 2  # enough batches for a fault after the first
    with pytest.raises(InjectedFault):
        run(topic_corpus, index, encoder, fail_after_batches=1)
    assert read_manifest(index).generation == first.manifest.generation  # the old commit point, untouched
    with pytest.raises(IndexStateError, match="interrupted"):
        require_finished(index)
    counts = unit_counts(index)
    resumed = run(topic_corpus, index, encoder)
    assert 1 <= counts["pending"] < updated.embed.units  # the first batch of the update was committed
    assert resumed.plan.units_planned == 0 and resumed.embed.units == counts["pending"]
    assert resumed.manifest.generation == first.manifest.generation + 1
    assert_same_index(snapshot(reference), snapshot(index))


def test_fault_point_is_off_by_default_and_checked(topic_corpus, tmp_path, encoder):
    config = small_config()
    with IndexWriter(tmp_path / "index", config, encoder) as writer, pytest.raises(ValueError, match="fail_after_batches"):
        embed_pending(writer, fail_after_batches=-1)
    report = run(topic_corpus, tmp_path / "index", encoder, fail_after_batches=10_000)  # more than there are
    assert report.embed.units >= 1 and require_finished(tmp_path / "index") == report.manifest


@pytest.mark.slow  # CLI subprocesses (the in-process version: test_injected_fault_...)
def test_sigkilled_cli_ingest_resumes_to_the_same_index(tmp_path, encoder):
    corpus = generated_corpus(tmp_path / "gen")
    config = small_config(ingest={"commit_tokens": 150})
    config_file = tmp_path / "small.yaml"
    config_file.write_text(yaml.safe_dump({**SMALL, "ingest": {"commit_tokens": 150}}))
    reference = tmp_path / "reference"
    run(corpus, reference, encoder, config=config, name="gen")

    target = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lcrag.app.cli.app", "ingest", str(corpus), "--index", str(target), "--config", str(config_file)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    killed_mid_way = False
    deadline = time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            db = IndexPaths(target).catalog
            if db.exists():
                try:
                    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                        counts = dict(conn.execute("SELECT status, COUNT(*) FROM units GROUP BY status").fetchall())
                except sqlite3.Error:
                    counts = {}
                if counts.get("done", 0) >= 1 and counts.get("pending", 0) >= 1:
                    proc.send_signal(signal.SIGKILL)
                    killed_mid_way = True
                    break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if killed_mid_way:
        with pytest.raises(IndexStateError):
            require_finished(target)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        # lost the race (the deterministic version is test_injected_fault_...): the run
        # finished on its own, so it must have finished well
        assert proc.returncode == 0, f"the ingestion neither finished nor was killed mid-way: exit {proc.returncode}"
    require_finished(target)
    a, b = snapshot(reference, config), snapshot(target, config)
    assert a["units"] == b["units"] and a["chunks"] == b["chunks"]
    assert set(a["vectors"]) == set(b["vectors"])
    for chunk_id in a["vectors"]:
        np.testing.assert_allclose(a["vectors"][chunk_id], b["vectors"][chunk_id], atol=1e-5)
    assert_same_index(a, b, queries=("alpha river", "protein market signal", "Document 7"))


def test_second_writer_is_refused_while_one_holds_the_index(topic_corpus, tmp_path, encoder):
    config = small_config()
    with IndexWriter(tmp_path / "index", config, encoder), pytest.raises(IndexStateError, match="another process"):
        IndexWriter(tmp_path / "index", config, encoder).__enter__()


def test_different_index_settings_are_refused(topic_corpus, tmp_path, encoder):
    run(topic_corpus, tmp_path / "index", encoder)
    with pytest.raises(IndexStateError, match="different"):
        run(topic_corpus, tmp_path / "index", encoder, config=small_config(chunking={"method": "naive"}))


def test_document_ids_of_another_source_are_not_replaced(topic_corpus, tmp_path, encoder):
    index = tmp_path / "index"
    run(topic_corpus, index, encoder, name="first")
    report = run(topic_corpus, index, encoder, name="second")
    assert report.plan.added == 0 and report.embed.units == 0
    assert all("already belongs to source 'first'" in s.reason for s in report.plan.skipped if s.path in ("cats.md", "bread.md"))
    assert report.manifest.documents == 6


@pytest.mark.parametrize(
    "chunking",
    [{"method": "late", "context": "document"}, {"method": "late", "context": "unit"}, {"method": "naive"}],
)
def test_every_embedding_method_finds_the_topical_document(topic_corpus, tmp_path, encoder, chunking):
    index = tmp_path / "index"
    config = small_config(chunking=chunking)
    run(topic_corpus, index, encoder, config=config)
    with IndexReader(index, lambda c: encoder) as reader:
        hits = reader.search("how do you bake sourdough loaves", k=3, mode="dense", level="doc")
    assert hits[0].doc_id == "bread.md"
