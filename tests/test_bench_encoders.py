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
        assert set(r) >= RECORD_KEYS
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


def runtime_record(runtime: str, mode: str, ingest: int, forward: int) -> dict:
    return {"encoder": "MiniLM", "runtime": runtime, "chunking": "late", "context": "document", "mode": mode,
            "run_id": f"MiniLM-{runtime}", "ndcg_at_10": 0.5, "ingest_tokens_per_s": ingest, "forward_tokens_per_s": forward,
            "query_embed_p50_ms": 5.0, "peak_rss_mib": 700}


def test_runtime_rows_pair_each_runtime_with_float32_and_the_baselines(tmp_path):
    ledger = ScoresLedger({"MiniLM-torch-fp32": {"q1": 0.5, "q2": 1.0, "q3": 0.0},
                           "MiniLM-onnx-int8": {"q1": 0.5, "q2": 0.0, "q3": 0.0}})
    result = {"records": [runtime_record("torch-fp32", "dense", 900, 1000), runtime_record("onnx-int8", "dense", 2000, 2100)],
              "llamaindex": {"MiniLM": {"tokens_per_second": 800, "peak_rss_mib": 900, "encoder": "MiniLM"}},
              "unavailable": [{"encoder": "MiniLM", "runtime": "torch-bf16", "reason": "no native bfloat16"}],
              "machine": {"cpu": "test CPU", "cores": 2, "features": ["avx2"], "native_bf16": False,
                          "load_average_at_start": [0.1, 0.2, 0.3]},
              "queries": 3, "documents": 10, "chunking": "late-document"}
    fp32, int8 = encoders.runtime_rows(result, ledger)
    assert (fp32["ratio_to_fp32_forward"], fp32["ratio_to_llamaindex"], fp32["ndcg_delta_vs_fp32"]) == (0.9, 1.125, 0.0)
    assert (int8["ratio_to_fp32_forward"], int8["ratio_to_llamaindex"]) == (2.0, 2.5)
    assert int8["ndcg_delta_vs_fp32"] == pytest.approx(-1 / 3, abs=1e-4) and int8["wins_losses_vs_fp32"] == [0, 1]
    assert int8["ndcg_delta_ci95"][0] <= int8["ndcg_delta_vs_fp32"] <= int8["ndcg_delta_ci95"][1]
    assert int8["within_gate"] is False and fp32["within_gate"] is True
    md = tmp_path / "runtimes.md"
    encoders.write_runtimes_markdown(md, result)
    text = md.read_text()
    assert "CPU features: avx2 (native bfloat16: no)" in text
    assert "| MiniLM | onnx-int8 | 2000 | 2.0 | 2.5 |" in text and "(reference)" in text
    assert "| MiniLM | torch-bf16 | unavailable here: no native bfloat16 |" in text
    assert len({line.count("|") for line in text.splitlines() if line.startswith("| MiniLM")}) == 1  # same columns
