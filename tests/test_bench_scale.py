"""bench/scale.py at a tiny size: one qdrant-edge record with every key and sane values,
then resumption (a record in scale.json is skipped, a finished index is reused), and
the stand-in encoder's contract (whitespace tokens, deterministic unit vectors)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import load_bench_script

ROOT = Path(__file__).resolve().parents[1]
KEYS = {
    "backend", "chunks", "build_s", "publish_1pct_s", "open_s", "peak_rss_mb", "hybrid_p50_ms", "hybrid_p95_ms",
    "dense_p50_ms", "bm25_p50_ms", "dense_recall_at_10", "vectors", "hnsw_ef", "machine",
}


@pytest.fixture(scope="module")
def scale():
    return load_bench_script("scale")


@pytest.mark.slow  # a benchmark's build, publish and queries at 2,000 chunks
def test_tiny_run_then_resume(scale, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["--sizes", "2000", "--backends", "qdrant-edge", "--queries", "20", "--warmup", "2",
            "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")]
    records = scale.main(argv)
    assert len(records) == 1
    record = records[0]
    assert set(record) >= KEYS
    assert (record["backend"], record["chunks"], record["indexed_chunks"]) == ("qdrant-edge", 2000, 2000)
    assert record["vectors"] == "clustered"
    assert 0.0 <= record["dense_recall_at_10"] <= 1.0
    assert record["hybrid_p95_ms"] >= record["hybrid_p50_ms"] > 0
    assert record["dense_p50_ms"] > 0 and record["bm25_p50_ms"] > 0
    assert record["build_s"] > 0 and record["publish_1pct_s"] > 0 and record["open_s"] > 0
    assert 0 < record["peak_rss_mb"] < 4096
    assert record["changed_documents"] > 0 and 0 < record["reembedded_chunks"] < 2000
    stored = json.loads((tmp_path / "out" / "scale.json").read_text())
    assert stored == records
    markdown = (tmp_path / "out" / "scale.md").read_text()
    assert "| qdrant-edge | 2,000 |" in markdown and "Targets" in markdown

    def fail(*_args, **_kwargs):
        raise AssertionError("a recorded configuration was measured again")

    monkeypatch.setattr(scale, "run_record", fail)
    assert scale.main(argv) == records  # already in scale.json: skipped
    assert json.loads((tmp_path / "out" / "scale.json").read_text()) == records

    # --force measures again, but a finished index is reused, not rebuilt
    monkeypatch.setattr(scale, "timed_ingest", fail)
    args = scale.parse_args([*argv, "--force"])
    index, state = scale.prepare_index(args, "qdrant-edge", 2000, scale.Log("test"))
    assert state["build"]["seconds"] == record["build_s"] and state["publish_1pct"]["seconds"] == record["publish_1pct_s"]
    assert (index / "manifest.json").is_file()


def test_stand_in_encoder() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from scale_fixtures import Corpus, ScaleEncoder, make_queries, vocabulary, whitespace_offsets
    finally:
        sys.path.remove(str(ROOT / "bench"))
    for text in ("two  words\nand\ta tab. ", "café au\u00a0lait  é", "", "   "):
        expected = [[m.start(), m.end()] for m in re.finditer(r"\S+", text)]
        assert whitespace_offsets(text).tolist() == expected
    encoder = ScaleEncoder().warm_up()
    queries = make_queries(vocabulary(), 5)
    vectors = encoder.embed(queries)
    assert vectors.shape == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors, encoder.embed(queries))  # deterministic
    corpus = Corpus(30, vocabulary())
    doc = corpus.document(0)
    assert corpus.document(0) == doc and corpus.document(0, 1).text != doc.text
    assert sum(corpus.chunk_counts) == 30
    [embedded] = encoder.token_embeddings([doc.text])
    assert embedded.vectors.shape == (len(encoder.token_offsets([doc.text])[0]), 384)
