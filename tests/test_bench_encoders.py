"""bench/encoders.py: which configurations are compared pairwise, the paired rows read
from a ledger, and a tiny real run whose records carry the keys the results file promises."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import load_bench_script

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "scifact"
RECORD_KEYS = {"encoder", "chunking", "context", "mode", "ndcg_at_10", "recall_at_100", "tokens_per_s"}


encoders = load_bench_script("encoders")


def record(encoder: str, chunking: str, context: str, mode: str) -> dict:
    return {"encoder": encoder, "chunking": chunking, "context": context, "mode": mode,
            "run_id": f"{encoder}-{chunking}-{context}"}


def keys(pairs) -> list[tuple]:
    return [tuple((r["encoder"], r["chunking"], r["context"], r["mode"]) for r in pair) for pair in pairs]


@pytest.mark.parametrize("records, expected", [
    ([], []),
    # late against naive of the same encoder and mode only
    ([record("MiniLM", "naive", "none", "dense"), record("MiniLM", "late", "document", "dense"),
      record("MiniLM", "late", "unit", "hybrid")],
     [(("MiniLM", "late", "document", "dense"), ("MiniLM", "naive", "none", "dense"))]),
    # nomic against the same configuration of MiniLM, never the other way round
    ([record("MiniLM", "naive", "none", "dense"), record("nomic", "naive", "none", "dense")],
     [(("nomic", "naive", "none", "dense"), ("MiniLM", "naive", "none", "dense"))]),
    ([record("nomic", "late", "unit", "hybrid"), record("nomic", "naive", "none", "hybrid"),
      record("MiniLM", "late", "unit", "hybrid")],
     [(("nomic", "late", "unit", "hybrid"), ("nomic", "naive", "none", "hybrid")),
      (("nomic", "late", "unit", "hybrid"), ("MiniLM", "late", "unit", "hybrid"))]),
])
def test_comparisons(records, expected):
    assert keys(encoders.comparisons(records)) == expected


class ScoresLedger:
    """Answers the per-query query of ``per_query_ndcg`` from a dict of run id -> scores."""

    def __init__(self, scores: dict[str, dict[str, float]]):
        self.scores = scores
        self.asked: list[list] = []

    def query(self, sql: str, params):
        self.asked.append(list(params))
        run_id, method, k = params
        assert method in ("dense/doc", "hybrid/doc") and k == encoders.K
        return [{"query_id": q, "ndcg_at_10": v} for q, v in self.scores[run_id].items()]


def test_paired_rows_pair_queries_and_count_wins():
    ledger = ScoresLedger({
        "MiniLM-naive-none": {"q1": 0.5, "q2": 0.5, "q3": 1.0},
        "MiniLM-late-document": {"q1": 1.0, "q2": 0.5, "q3": 0.0, "q4": 1.0},  # q4 has no pair
    })
    (row,) = encoders.paired_rows(ledger, [record("MiniLM", "naive", "none", "dense"),
                                           record("MiniLM", "late", "document", "dense")])
    assert (row["a"], row["b"], row["mode"]) == ("MiniLM late/document", "MiniLM naive", "dense")
    assert row["ndcg_at_10_difference"] == pytest.approx((0.5 + 0.0 - 1.0) / 3, abs=1e-4)
    assert (row["wins"], row["losses"], row["queries"]) == (1, 1, 3)
    assert row["ci95"][0] <= row["ndcg_at_10_difference"] <= row["ci95"][1]


@pytest.mark.slow
def test_a_tiny_run_writes_records_with_the_promised_keys_and_resumes(tmp_path, monkeypatch):
    if not (DATA / "corpus.jsonl").is_file():
        pytest.fail(f"SciFact is missing from {DATA} (the shared data folder)")
    argv = ["encoders.py", "--data", str(DATA), "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"),
            "--encoders", "MiniLM", "--chunkings", "naive,late-document", "--limit-docs", "40", "--limit-queries", "6"]
    monkeypatch.setattr(sys, "argv", argv)
    encoders.main()
    (results,) = (tmp_path / "out").glob("encoders-d*-q6.json")
    records = json.loads(results.read_text())
    assert sorted((r["chunking"], r["context"], r["mode"]) for r in records) == [
        ("late", "document", "dense"), ("late", "document", "hybrid"), ("naive", "none", "dense"), ("naive", "none", "hybrid")]
    for r in records:
        assert RECORD_KEYS <= set(r)
        assert 0.0 <= r["ndcg_at_10"] <= 1.0 and 0.0 <= r["recall_at_100"] <= 1.0 and r["tokens_per_s"] > 0
        assert r["queries"] == 6
    paired = json.loads(results.with_name(results.stem + "-paired.json").read_text())
    assert {(p["a"], p["b"], p["mode"]) for p in paired} == {
        ("MiniLM late/document", "MiniLM naive", "dense"), ("MiniLM late/document", "MiniLM naive", "hybrid")}
    assert all(p["queries"] == 6 for p in paired)
    # a second run finds every configuration done and changes nothing
    before = results.read_text()
    encoders.main()
    assert results.read_text() == before
