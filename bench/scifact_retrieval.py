"""SciFact retrieval benchmark (BEIR layout, test split).

Ingests SciFact once per embedding variant through the real CLI (each in its own
process, so its peak memory is its own), writes TREC run files with
``lcrag search --queries``, and judges them with trec_eval (pytrec_eval):
nDCG@10 and Recall@100 for BM25, dense naive chunks, dense late chunks
(document context and unit context) and hybrid. Ingestion throughput is reported
next to the raw encoder forward throughput measured in the same run, as a ratio.

    python bench/scifact_retrieval.py [--data ../shared/data/scifact] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lcrag.core.paths import state_home  # noqa: E402
from lcrag.pipeline.statistics.intervals import paired_difference  # noqa: E402

VARIANTS = {
    "late-document": {"chunking": {"method": "late", "context": "document"}},
    "late-unit": {"chunking": {"method": "late", "context": "unit"}},
    "naive": {"chunking": {"method": "naive"}},
}
RUNS = [  # (row label, index variant, search mode, hybrid fusion)
    ("BM25 (chunks, max-P)", "late-document", "bm25", None),
    ("dense, naive chunks", "naive", "dense", None),
    ("dense, late chunks (document context)", "late-document", "dense", None),
    ("dense, late chunks (unit context)", "late-unit", "dense", None),
    ("hybrid convex (BM25 + late document)", "late-document", "hybrid", "convex"),
    ("hybrid RRF (BM25 + late document)", "late-document", "hybrid", "rrf"),
    ("hybrid convex (BM25 + late unit)", "late-unit", "hybrid", "convex"),
    ("hybrid RRF (BM25 + late unit)", "late-unit", "hybrid", "rrf"),
]
# (row, reference row): paired nDCG@10 differences over the same queries, with a 95% interval
PAIRED = [("hybrid convex (BM25 + late document)", "hybrid RRF (BM25 + late document)"),
          ("hybrid convex (BM25 + late unit)", "hybrid RRF (BM25 + late unit)")]
TARGETS = {"BM25 (chunks, max-P)": 0.68, "dense, late chunks (document context)": 0.645, "hybrid convex (BM25 + late document)": 0.70}


def vm_hwm_mib(pid: int) -> float | None:
    """The process's own peak RSS (VmHWM). Unlike a child's ru_maxrss, it starts
    afresh at exec, so it does not include this (large) parent's memory at fork."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def run_with_rss(cmd: list[str], *, quiet: bool = True) -> tuple[str, float, float]:
    """Run a command; return its stdout, wall seconds and peak RSS in MiB (VmHWM,
    polled every 0.2 s; it only grows, so the last reading is the peak to 0.2 s).
    ``quiet=False`` lets its stderr (progress, warnings) through to ours."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as captured:
        proc = subprocess.Popen(cmd, stdout=captured, stderr=subprocess.DEVNULL if quiet else None, env=env, text=True)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, vm_hwm_mib(proc.pid) or 0.0)
            time.sleep(0.2)
        captured.seek(0)
        stdout = captured.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return stdout, time.perf_counter() - started, peak


def raw_encoder_throughput(corpus: Path, sample: int = 1000) -> dict:
    """Tokens/s of the bare encoder forward over whole documents (no chunking,
    no stores): the ceiling ingestion can approach on this machine."""
    from lcrag.pipeline.config import EncoderConfig
    from lcrag.retrievers.encoders.encoder import TransformerEncoder

    encoder = TransformerEncoder(EncoderConfig()).warm_up()
    texts = []
    with corpus.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            texts.append(f"{record.get('title', '')}\n{record.get('text', '')}")
            if len(texts) >= sample:
                break
    tokens = sum(len(o) for o in encoder.token_offsets(texts))
    started = time.perf_counter()
    encoder.token_embeddings(texts)
    seconds = time.perf_counter() - started
    return {"documents": len(texts), "tokens": tokens, "seconds": round(seconds, 2), "tokens_per_second": round(tokens / seconds)}


def judge(run_file: Path, qrels: dict) -> dict[str, dict[str, float]]:
    """trec_eval's nDCG@10 and Recall@100 of every judged query (0 for a query with no results)."""
    import pytrec_eval

    run: dict[str, dict[str, float]] = {}
    for line in run_file.read_text().splitlines():
        qid, _, docid, _, score, _ = line.split()
        run.setdefault(qid, {})[docid] = float(score)
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"})
    judged = evaluator.evaluate(run)
    zero = {"ndcg_cut_10": 0.0, "recall_100": 0.0}
    return {q: {m: judged.get(q, zero)[m] for m in zero} for q in qrels}


def summary(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    n = len(per_query)
    return {
        "ndcg@10": round(sum(m["ndcg_cut_10"] for m in per_query.values()) / n, 4),
        "recall@100": round(sum(m["recall_100"] for m in per_query.values()) / n, 4),
    }


def evaluate(run_file: Path, qrels: dict) -> dict[str, float]:
    return summary(judge(run_file, qrels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--work", type=Path, default=state_home() / "bench" / "scifact")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ",".join(VARIANTS))
    parser.add_argument("--no-llamaindex", action="store_true", help="skip the LlamaIndex reference ingestion")
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        raise SystemExit(f"no SciFact at {args.data}; pass --data FOLDER (BEIR layout)")

    from lcrag.pipeline.ingest.loaders.beir import load_beir_qrels, load_beir_queries

    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    qrels = load_beir_qrels(args.data, "test")
    queries = [q for q in load_beir_queries(args.data) if q.qid in qrels]
    query_file = args.work / "test-queries.jsonl"
    query_file.write_text("".join(json.dumps({"_id": q.qid, "text": q.text}) + "\n" for q in queries))

    lcrag = [sys.executable, "-m", "lcrag.app.cli.app"]
    raw = raw_encoder_throughput(args.data / "corpus.jsonl")
    print(f"raw encoder forward: {raw['tokens_per_second']} tokens/s")
    ingests = {}
    baseline = None
    if not args.no_llamaindex:
        baseline_run = args.out / "scifact.llamaindex.dense.run"
        stdout, seconds, rss = run_with_rss([sys.executable, str(ROOT / "bench" / "llamaindex_baseline.py"),
                                             str(args.data / "corpus.jsonl"), str(query_file), str(baseline_run), str(args.work / "llamaindex")])
        baseline = {**json.loads(stdout.strip().splitlines()[-1]), "peak_rss_mib": round(rss), **evaluate(baseline_run, qrels)}
        print("llamaindex", baseline)
    chosen = [v for v in args.variants.split(",") if v]
    for variant in chosen:
        index = args.work / variant
        config = args.work / f"{variant}.yaml"
        config.write_text(yaml.safe_dump(VARIANTS[variant]))
        if index.exists():
            shutil.rmtree(index)
        stdout, seconds, rss = run_with_rss([*lcrag, "ingest", str(args.data), "--index", str(index), "--config", str(config), "--json"])
        ingested = json.loads(stdout)  # not `summary`: that name is the metrics function below
        ingests[variant] = {
            "seconds": round(seconds, 1),
            "embedded_tokens": ingested["embedded_tokens"],
            "tokens_per_second": ingested["tokens_per_second"],
            "end_to_end_tokens_per_second": round(ingested["embedded_tokens"] / seconds),
            "ratio_to_raw_encoder": round(ingested["tokens_per_second"] / raw["tokens_per_second"], 3),
            "peak_rss_mib": round(rss),
            "documents": ingested["documents"],
            "units": ingested["units"],
            "chunks": ingested["chunks"],
        }
        print(variant, ingests[variant])

    rows = []
    per_query = {}
    for label, variant, mode, fusion in RUNS:
        if variant not in ingests:
            continue
        name = f"{variant}-{mode}" + (f"-{fusion}" if fusion else "")
        run_file = args.out / f"scifact.{name}.run"
        _, seconds, rss = run_with_rss(
            [*lcrag, "search", "--queries", str(query_file), "--index", str(args.work / variant), "--level", "doc",
             "--mode", mode, *(["--fusion", fusion] if fusion else []), "-k", "100", "--run-file", str(run_file),
             "--tag", name]
        )
        judged = judge(run_file, qrels)
        metrics = summary(judged)
        per_query[label] = {q: m["ndcg_cut_10"] for q, m in judged.items()}
        rows.append({"run": label, "index": variant, "mode": mode, "fusion": fusion, **metrics,
                     "target_ndcg@10": TARGETS.get(label),
                     "search_seconds_300_queries": round(seconds, 1), "search_peak_rss_mib": round(rss)})
        print(rows[-1])
    paired = []
    for label, reference in PAIRED:
        if label in per_query and reference in per_query:
            d = paired_difference(per_query[label], per_query[reference])
            paired.append({"run": label, "reference": reference, "ndcg@10_difference": round(d.mean_diff, 4),
                           "ci95": [round(d.low, 4), round(d.high, 4)], "queries": d.n_pairs})

    if baseline is not None:
        for info in ingests.values():
            info["ratio_to_llamaindex"] = round(info["tokens_per_second"] / baseline["tokens_per_second"], 3)
    result = {"dataset": "scifact test (300 queries)", "raw_encoder": raw, "llamaindex_baseline": baseline, "ingestion": ingests,
              "retrieval": rows, "paired": paired,
              "reference_ndcg@10": {"BEIR BM25 (Elasticsearch)": 0.665, "jina late chunking, naive -> late": [0.642, 0.661]}}
    (args.out / "scifact_retrieval.json").write_text(json.dumps(result, indent=2))
    lines = ["# SciFact (test, 300 queries), document level", "", "| run | nDCG@10 | Recall@100 | target |", "|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['ndcg@10']:.3f} | {r['recall@100']:.3f} | {r['target_ndcg@10'] or ''} |" for r in rows]
    lines += ["", "Paired nDCG@10 differences (same queries, 95% paired-bootstrap interval):", ""]
    lines += [f"- {p['run']} - {p['reference']}: {p['ndcg@10_difference']:+.4f} [{p['ci95'][0]:+.4f}, {p['ci95'][1]:+.4f}] "
              f"over {p['queries']} queries" for p in paired]
    lines += ["", f"Raw encoder forward: {raw['tokens_per_second']} tokens/s (same run).", "",
              "| index | tokens | embed tokens/s | ratio to raw | end-to-end tokens/s | seconds | peak RSS MiB |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {v} | {i['embedded_tokens']} | {i['tokens_per_second']} | {i['ratio_to_raw_encoder']} | "
              f"{i['end_to_end_tokens_per_second']} | {i['seconds']} | {i['peak_rss_mib']} |" for v, i in ingests.items()]
    if baseline is not None:
        lines += [f"| LlamaIndex IngestionPipeline (SentenceSplitter 256, same encoder) | {baseline['tokens']} | "
                  f"{baseline['tokens_per_second']} | {round(baseline['tokens_per_second'] / raw['tokens_per_second'], 3)} | "
                  f"{baseline['tokens_per_second']} | {baseline['seconds']} | {baseline['peak_rss_mib']} |", "",
                  f"LlamaIndex dense retrieval: nDCG@10 {baseline['ndcg@10']:.3f}, Recall@100 {baseline['recall@100']:.3f}."]
        lines += [f"lcrag {v}: {i['ratio_to_llamaindex']}x LlamaIndex's tokens/s" for v, i in ingests.items()]
    (args.out / "scifact_retrieval.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
