"""HotpotQA distractor answering: every strategy on N questions, each question's
10 paragraphs (2 gold + 8 hard negatives) as its own corpus, read by the real
vLLM server, scored (EM, F1, answer recall with the SQuAD normalisation) and
recorded in the DuckDB ledger. A rerun with the same --run-id skips what is done.

    python bench/hotpotqa_answering.py [--limit 50] [--run-id hotpot50] [--strategies all]

Prints the per-strategy summary computed by SQL from the ledger.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lcrag.core.paths import state_home  # noqa: E402

SUMMARY_SQL = """
select strategy,
       count(*)                         as n,
       round(avg(em), 3)                as em,
       round(avg(f1), 3)                as f1,
       round(avg(recall), 3)            as answer_recall,
       round(avg(prompt_tokens), 0)     as mean_prompt_tokens,
       round(avg(completion_tokens), 1) as mean_completion_tokens,
       round(avg(retrieval_ms + reading_ms) / 1000, 2) as mean_latency_s,
       round(avg(case when fell_back then 1 else 0 end), 2) as fell_back_share,
       round(avg(case when context_cut then 1 else 0 end), 2) as cut_share
from ledger where run_id = ? group by strategy order by f1 desc
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "hotpotqa_dev_distractor" / "hotpot_dev_distractor_v1.json.gz")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategies", default="all")
    parser.add_argument("--run-id", default="hotpot50")
    parser.add_argument("--ledger", type=Path, default=state_home() / "bench" / "hotpotqa.duckdb")
    parser.add_argument("--work", type=Path, default=state_home() / "bench" / "hotpotqa")
    parser.add_argument("--workers", type=int, default=4, help="questions answered concurrently (the server batches them)")
    parser.add_argument("--config", type=Path, default=None, help="YAML with reader/strategies sections")
    args = parser.parse_args()

    from lcrag.pipeline.config import load_config
    from lcrag.pipeline.evaluation import DATASETS, EvalRun, run_evaluation
    from lcrag.pipeline.ledger import Ledger
    from lcrag.pipeline.recording import context_budget
    from lcrag.pipeline.strategies import resolve_names
    from lcrag.readers.attention import make_attention
    from lcrag.readers.server import ReaderServer
    from lcrag.readers.vllm import VLLMReader
    from lcrag.retrievers.encoders.encoder import make_encoder

    config = load_config(args.config)
    evalset = DATASETS["hotpotqa"](args.data, args.limit, args.seed)
    server = ReaderServer(config.reader, home=state_home())
    if not server.status().ready:
        print("starting the reader ...", flush=True)
        server.start()
    reader = VLLMReader(config.reader, home=state_home())
    ledger = Ledger(args.ledger)
    run = EvalRun(args.run_id, evalset.name, tuple(resolve_names(args.strategies)), args.work, workers=args.workers)
    started = time.perf_counter()
    answered = run_evaluation(
        evalset, run, config, make_encoder(config.encoder).warm_up(), reader,
        make_attention(config.reader, state_home()), ledger, context_budget(config.reader, config.strategies),
        lambda n: print(f"answered {n} more after {time.perf_counter() - started:.0f} s", flush=True),
    )
    print(f"answered {answered} (question, strategy) pairs in {time.perf_counter() - started:.0f} s")

    rows = ledger.query(SUMMARY_SQL, [args.run_id])
    print("\nSQL:\n" + SUMMARY_SQL)
    header = list(rows[0]) if rows else []
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"hotpotqa_{args.run_id}.json").write_text(
        json.dumps({"sql": SUMMARY_SQL, "rows": rows, "seconds": time.perf_counter() - started}, indent=2, default=str))


if __name__ == "__main__":
    main()
