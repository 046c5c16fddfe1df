"""bench/chat_load.py at a tiny size, over the small topic index: a streamed
reply's first token comes before the reader has finished, and above the caps
(one question at a time, none queued, two connections), all at once and
spread over 0.2 s, clients are refused at once with 429 or 503, none hangs and no other 5xx appears; then the Markdown
table is written."""

from __future__ import annotations

import json

import pytest

from tests.helpers import load_bench_script

QUESTIONS = ["Which volcano in Sicily is very active?", "What is Mount Etna?"]
READ_S = 0.2
PIECE_S, WORDS = 0.05, 8  # the fake reader streams WORDS words, PIECE_S apart


@pytest.mark.slow  # a benchmark's bursts against a live server
def test_tiny_chat_load(live, tmp_path):
    pytest.importorskip("openai")
    bench = load_bench_script("chat_load")
    result = bench.run_bench(
        live, QUESTIONS, tmp_path / "ledger.duckdb", models=("lcrag-rag", "lcrag-lc"), clients=(2, 8), spreads=(0.0, 0.2),
        read_delay_s=READ_S, piece_delay_s=PIECE_S, answer_words=WORDS, max_in_flight=1, max_queued=0,
        max_connections=2, retry_after_s=3, timeout_s=20, log=lambda line: None,
    )
    for row in result["ttft"]:
        assert row["stream_content_chunks"] >= 3, row
        assert row["stream_ttft_ms"] < row["stream_total_ms"], row
        # several words came after the first: the reader still had WORDS - 1 pauses (350 ms) to make;
        # one of them is asked, leaving 300 ms for a slow client. A reply held back to its end has none.
        assert row["stream_total_ms"] - row["stream_ttft_ms"] >= PIECE_S * 1000, row
        assert row["same_reply"], row

    rows = {(row["clients"], row["spread_ms"]): row for row in result["load"]}
    assert set(rows) == {(2, 0), (8, 0), (2, 200), (8, 200)}
    for row in result["load"]:
        assert row["timeouts"] == 0 and row["no_answer"] == 0, row
        assert row["unexpected_5xx"] == 0 and row["other_statuses"] == 0, row
        assert row["streamed_incomplete"] == 0, row
        assert sum(row["statuses"].values()) == row["clients"]
        if row["refused"]:
            assert row["refused_without_retry_after"] == 0, row
            # refused at once, while the question answered in the same burst was still being read
            # (it takes a read and more), not after it: its latency bounds theirs on any machine
            answered = row["latency_by_status"].get("200")
            if answered:
                assert row["refused_max_ms"] < answered["max_ms"], row
    for _key, row in rows.items():
        assert row["refused"] >= 1, row  # 2 or 8 at once over a cap of 1 in flight
    assert rows[(2, 0)]["statuses"] == {"200": 1, "429": 1}, rows[(2, 0)]  # within the connection cap: one answered

    result["settings"]["docs"] = 6
    result["machine"] = "test"
    bench.write_results(tmp_path / "out", result)
    table = (tmp_path / "out" / "chat_load.md").read_text()
    assert "| lcrag-rag |" in table and "\n| 8 |" in table
    assert json.loads((tmp_path / "out" / "chat_load.json").read_text())["load"][1]["clients"] == 8
