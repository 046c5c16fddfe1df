"""Encoder benchmark on SciFact (BEIR layout, test split): MiniLM (512-token windows)
against the long-context nomic-embed-text-v1.5 (2,048), each with naive chunks, late
chunks in document context and late chunks in unit context, searched dense and hybrid.

The corpus is ingested and judged through lcrag's own evaluation path (what
``lcrag eval --dataset beir:PATH`` runs: ``ingest``, ``IndexReader.search`` at document
level, nDCG@10 and Recall@100 from ``lcrag.pipeline.statistics.intervals`` into a ledger).
One index per (encoder, chunking); its ingestion throughput (embedded tokens per
second of embedding) is reported with both search modes. ``encoders-paired.json`` (and the
Markdown table's foot) holds the paired comparisons on the same queries, with 95% bootstrap
intervals: late against naive chunks of one encoder, and nomic against MiniLM.

Resumable: a configuration already in the JSON file is skipped, an index or a run
interrupted half way continues where it stopped (the ledger and the index are kept in
``$LCRAG_HOME/bench/encoders``). The nomic encoder needs ``make encoder-setup`` first.

    python bench/encoders.py                                 # everything: bench/results/encoders.{json,md}
    python bench/encoders.py --encoders nomic --modes dense  # a subset
    python bench/encoders.py --limit-docs 200 --limit-queries 20 --out SOMEWHERE   # a smoke run

With limits, the queries are a seeded sample of the judged ones and the documents are
their relevant documents plus the first others of the corpus up to ``--limit-docs``;
the output files are then named ``encoders-dN-qM.*`` so they never mix with a full run.

``--runtimes`` measures encoder runtimes instead (``encoder.runtime``: issue 32), in one run:
per encoder and runtime, one index (late chunks, document context, unless
``--runtime-chunking``) ingested and judged dense and hybrid in a process of its own (so
its peak memory is its own), then its bare forward pass over whole documents and its
query-embedding latency. Each record carries ``ingest_tokens_per_s``,
``ratio_to_fp32_forward`` (against the float32 PyTorch forward of the same encoder, this
run), ``ratio_to_llamaindex`` (LlamaIndex's IngestionPipeline with the same weights,
``bench/llamaindex_baseline.py``, this run; MiniLM unless ``--llamaindex``),
``query_embed_p50_ms``, ``peak_rss_mib``, ``ndcg_at_10`` and ``ndcg_delta_vs_fp32`` with its
95% paired-bootstrap interval; the CPU's features head the results. A runtime that cannot
run here (bf16 without native support, a missing ONNX export) is listed as unavailable,
never measured as the float32 it would fall back to. Writes ``encoder-runtimes.{json,md}``
(``encoder-runtimes-dN-qM.*`` with limits); resumable per (encoder, runtime).

    python bench/encoders.py --runtimes torch-fp32,torch-bf16,onnx-fp32,onnx-int8 --encoders MiniLM,nomic
    python bench/encoders.py --runtimes onnx-fp32,onnx-int8 --encoders MiniLM --limit-docs 40 --limit-queries 6 --out /tmp/x
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scifact_retrieval import run_with_rss  # noqa: E402 (bench/ is not a package)

from lcrag.core.paths import state_home  # noqa: E402

ENCODERS = {  # name -> encoder settings (the rest of the config stays default)
    "MiniLM": {"model": "all-MiniLM-L6-v2"},
    "nomic": yaml.safe_load((ROOT / "configs" / "nomic.yaml").read_text(encoding="utf-8"))["encoder"],
}
CHUNKINGS = [  # (chunking, context): naive chunks see only themselves
    ("naive", "none"),
    ("late", "document"),
    ("late", "unit"),
]
MODES = ("dense", "hybrid")
K = 100
RUNTIMES = ("torch-fp32", "torch-bf16", "onnx-fp32", "onnx-int8")  # encoder.runtime; torch-fp32 is the reference
GATE = 0.005  # a runtime may become a default where nDCG@10 (dense and hybrid) stays within this of float32
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def load_set(data: Path, limit_docs: int | None, limit_queries: int | None, seed: int):
    """The judged SciFact test queries and the corpus, as ``lcrag eval`` loads them;
    with limits, a sample whose queries keep all their relevant documents."""
    from lcrag.pipeline.evaluation.retrieval import RetrievalSet, beir

    full = beir(data, limit_queries, seed)
    if limit_docs is None:
        return full
    relevant = {d for qid, _ in full.queries for d, grade in full.qrels[qid].items() if grade > 0}
    chosen = [d for d in full.documents if d.doc_id in relevant]
    chosen += [d for d in full.documents if d.doc_id not in relevant][: max(0, limit_docs - len(chosen))]
    name = f"{full.name}-d{limit_docs}-q{len(full.queries)}-s{seed}"
    return RetrievalSet(name, full.queries, full.qrels, tuple(chosen))


def config_for(encoder: str, chunking: str, context: str, threads: int | None, runtime: str | None = None):
    from lcrag.pipeline.config import config_from_dict

    settings = dict(ENCODERS[encoder])
    if threads is not None:
        settings["threads"] = threads
    if runtime is not None:
        settings["runtime"] = runtime
    chunk = {"method": chunking} if chunking == "naive" else {"method": chunking, "context": context}
    return config_from_dict({"encoder": settings, "chunking": chunk})


def ingest_throughput(stats_file: Path, tokens: int, seconds: float) -> float:
    """Embedded tokens per second of embedding, summed over every ingestion call into
    this index (a resumed ingestion adds to it)."""
    totals = json.loads(stats_file.read_text()) if stats_file.is_file() else {"tokens": 0, "seconds": 0.0}
    if tokens:
        totals = {"tokens": totals["tokens"] + tokens, "seconds": totals["seconds"] + seconds}
        stats_file.write_text(json.dumps(totals))
    return round(totals["tokens"] / totals["seconds"]) if totals["seconds"] > 0 else 0


def run_configuration(rset, encoder_name: str, chunking: str, context: str, modes: list[str], encoder, config,
                      work: Path, ledger) -> list[dict]:
    """Ingest (or finish ingesting) the index, judge the pending modes, return one record per mode."""
    from lcrag.pipeline.evaluation.retrieval import run_retrieval
    from lcrag.pipeline.evaluation.runner import index_folder
    from lcrag.pipeline.ingest.ingestion import ingest
    from lcrag.pipeline.ingest.loaders import LoadResult

    folder = work / f"{encoder_name}-{chunking}-{context}"
    index = index_folder(folder, rset.name)  # where run_retrieval looks for it
    report = ingest(LoadResult("beir", rset.documents, ()), index, config, encoder, "eval")
    tokens_per_s = ingest_throughput(folder / "ingest-stats.json", report.embed.tokens, report.embed.seconds)
    run_id = f"encoders-{rset.name.replace('/', '-')}-{encoder_name}-{chunking}-{context}"
    run_retrieval(rset, run_id, modes, folder, config, encoder, ledger, k=K, level="doc")
    rows = {r["method"]: r for r in ledger.query(
        "select method, count(*) n, avg(ndcg_at_10) ndcg, avg(recall_at_k) recall from retrieval "
        "where run_id = ? and k = ? group by 1", [run_id, K])}
    records = []
    for mode in modes:
        row = rows[f"{mode}/doc"]
        if row["n"] != len(rset.queries):
            raise SystemExit(f"{run_id} {mode}: {row['n']} queries judged, expected {len(rset.queries)}")
        records.append({
            "encoder": encoder_name, "chunking": chunking, "context": context, "mode": mode,
            "ndcg_at_10": round(row["ndcg"], 4), "recall_at_100": round(row["recall"], 4), "tokens_per_s": tokens_per_s,
            "queries": len(rset.queries), "documents": len(rset.documents), "dataset": rset.name,
            "window": config.encoder.window, "run_id": run_id,
        })
    return records


def per_query_ndcg(ledger, record: dict) -> dict[str, float]:
    """nDCG@10 per query of one record's run and mode, from the ledger."""
    rows = ledger.query("select query_id, ndcg_at_10 from retrieval where run_id = ? and method = ? and k = ?",
                        [record["run_id"], f"{record['mode']}/doc", K])
    return {r["query_id"]: r["ndcg_at_10"] for r in rows}


def comparisons(records: list[dict]) -> list[tuple[dict, dict]]:
    """The pairs worth an interval: each late configuration against naive chunks of the
    same encoder and mode (does late chunking pay?), and each configuration of nomic
    against the same one of MiniLM (does the long-context encoder pay?)."""
    by_key = {(r["encoder"], r["chunking"], r["context"], r["mode"]): r for r in records}
    pairs = []
    for (encoder, chunking, _context, mode), record in sorted(by_key.items()):
        if chunking == "late" and (encoder, "naive", "none", mode) in by_key:
            pairs.append((record, by_key[(encoder, "naive", "none", mode)]))
    for (encoder, chunking, context, mode), record in sorted(by_key.items()):
        if encoder == "nomic" and ("MiniLM", chunking, context, mode) in by_key:
            pairs.append((record, by_key[("MiniLM", chunking, context, mode)]))
    return pairs


def paired_rows(ledger, records: list[dict]) -> list[dict]:
    """Paired nDCG@10 differences (same queries, 95% paired bootstrap) for ``comparisons``."""
    from lcrag.pipeline.statistics.intervals import paired_difference

    read: dict[tuple[str, str], dict[str, float]] = {}  # each run and mode read once

    def scores(record: dict) -> dict[str, float]:
        key = (record["run_id"], record["mode"])
        if key not in read:
            read[key] = per_query_ndcg(ledger, record)
        return read[key]

    rows = []
    for a, b in comparisons(records):
        d = paired_difference(scores(a), scores(b))
        rows.append({"a": label_of(a), "b": label_of(b), "mode": a["mode"], "ndcg_at_10_difference": round(d.mean_diff, 4),
                     "ci95": [round(d.low, 4), round(d.high, 4)], "wins": d.wins, "losses": d.losses, "queries": d.n_pairs})
    return rows


def label_of(record: dict) -> str:
    chunks = "naive" if record["chunking"] == "naive" else f"late/{record['context']}"
    return f"{record['encoder']} {chunks}"


def write_markdown(path: Path, records: list[dict], title: str, paired: list[dict] = ()) -> None:
    lines = [f"# {title}", "", "| encoder | chunking | context | mode | nDCG@10 | Recall@100 | ingest tokens/s |",
             "|---|---|---|---|---|---|---|"]
    order = {name: i for i, name in enumerate(ENCODERS)}
    for r in sorted(records, key=lambda r: (order.get(r["encoder"], 99), r["chunking"] != "naive", r["context"], r["mode"])):
        lines.append(f"| {r['encoder']} | {r['chunking']} | {r['context']} | {r['mode']} | {r['ndcg_at_10']:.3f} | "
                     f"{r['recall_at_100']:.3f} | {r['tokens_per_s']} |")
    lines += ["", ("Document level (a document scores its best chunk); tokens/s: embedded tokens per second of "
                   "embedding during ingestion, on this machine, shared by the dense and hybrid rows of one index.")]
    if paired:
        lines += ["", "Paired nDCG@10 differences, A - B on the same queries (95% paired-bootstrap interval; "
                  "wins / losses: queries where A scores higher / lower):", "",
                  "| A | B | mode | difference | 95% interval | wins / losses |", "|---|---|---|---:|---|---|"]
        lines += [f"| {p['a']} | {p['b']} | {p['mode']} | {p['ndcg_at_10_difference']:+.3f} | "
                  f"[{p['ci95'][0]:+.3f}, {p['ci95'][1]:+.3f}] | {p['wins']} / {p['losses']} |" for p in paired]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- encoder runtimes (--runtimes) ------------------------------------------------------------


def machine_info() -> dict:
    """What the speeds were measured on: the CPU, its cores and the features that decide
    which runtime can be fast (native bfloat16, int8 dot products)."""
    from lcrag.retrievers.encoders.runtimes import cpu_flags, native_bf16

    flags = cpu_flags()
    model = next((line.partition(":")[2].strip() for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else platform.processor()
    return {"cpu": model, "cores": os.cpu_count(), "features": [f for f in CPU_FEATURES if f in flags],
            "native_bf16": native_bf16(flags), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def document_texts(rset, limit: int) -> list[str]:
    return [f"{d.title}\n{d.text}" for d in rset.documents[:limit]]


def forward_throughput(encoder, texts: list[str]) -> dict:
    """Tokens/s of the bare forward pass over whole documents (token vectors of every
    window, no chunking, no stores): the ceiling ingestion approaches."""
    tokens = sum(len(o) for o in encoder.token_offsets(texts))
    encoder.token_embeddings(texts[:2])  # warm
    started = time.perf_counter()
    encoder.token_embeddings(texts)
    seconds = time.perf_counter() - started
    return {"documents": len(texts), "tokens": tokens, "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds)}


def query_p50_ms(encoder, queries: list[str]) -> float:
    """Median milliseconds to embed one query, as a search does (one at a time)."""
    for text in queries[:3]:
        encoder.embed([text])
    times = []
    for text in queries:
        started = time.perf_counter()
        encoder.embed([text])
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def parse_chunking(value: str) -> tuple[str, str]:
    options = {("naive" if c == "naive" else f"{c}-{x}"): (c, x) for c, x in CHUNKINGS}
    if value not in options:
        raise SystemExit(f"unknown chunking {value!r}; choose one of {', '.join(options)}")
    return options[value]


def runtime_worker(args, rset) -> None:
    """One (encoder, runtime) in this process: ingest, judge, forward pass, query latency.
    Prints one JSON line (``{"unavailable": why}`` where the runtime cannot run here)."""
    from lcrag.pipeline.ledger import Ledger
    from lcrag.retrievers.encoders.encoder import make_encoder
    from lcrag.retrievers.encoders.runtimes import resolve_runtime

    encoder_name, runtime = args.runtime_worker
    chunking, context = parse_chunking(args.runtime_chunking)
    modes = [m for m in args.modes.split(",") if m]
    config = config_for(encoder_name, chunking, context, args.threads, runtime)
    encoder = make_encoder(config.encoder)
    if encoder.runtime != resolve_runtime(runtime):  # it would fall back: not a measurement of this runtime
        print(json.dumps({"unavailable": encoder.runtime_note}))
        return
    encoder.warm_up()
    records = run_configuration(rset, f"{encoder_name}-{runtime}", chunking, context, modes, encoder, config,
                                args.work / "runtimes", Ledger(args.work / "ledger.duckdb"))
    forward = forward_throughput(encoder, document_texts(rset, args.forward_sample))
    p50 = query_p50_ms(encoder, [text for _, text in rset.queries[: args.latency_queries]])
    print(json.dumps({"records": records, "forward": forward, "query_embed_p50_ms": p50}))


def llamaindex_throughput(rset, encoder_name: str, work: Path) -> dict:
    """LlamaIndex's IngestionPipeline over the same documents with the same weights, in a
    process of its own (``bench/llamaindex_baseline.py``)."""
    from lcrag.retrievers.encoders.encoder import resolve_model_path

    folder = work / "llamaindex" / encoder_name
    folder.mkdir(parents=True, exist_ok=True)
    corpus, queries = folder / "corpus.jsonl", folder / "queries.jsonl"
    corpus.write_text("".join(json.dumps({"_id": d.doc_id, "title": d.title, "text": d.text}) + "\n"
                              for d in rset.documents), encoding="utf-8")
    queries.write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in rset.queries), encoding="utf-8")
    model = resolve_model_path(ENCODERS[encoder_name]["model"])
    stdout, _seconds, rss = run_with_rss([sys.executable, str(ROOT / "bench" / "llamaindex_baseline.py"), str(corpus),
                                         str(queries), str(folder / "run.trec"), str(folder / "store"), str(model)], quiet=False)
    baseline = json.loads(stdout.strip().splitlines()[-1])
    return {**baseline, "peak_rss_mib": round(rss), "encoder": encoder_name}


def runtime_rows(result: dict, ledger) -> list[dict]:
    """The records with their ratios and their paired difference to float32 filled in."""
    from lcrag.pipeline.statistics.intervals import paired_difference

    records = result["records"]
    reference = {(r["encoder"], r["mode"]): r for r in records if r["runtime"] == "torch-fp32"}
    for r in records:
        fp32 = reference.get((r["encoder"], r["mode"]))
        baseline = result["llamaindex"].get(r["encoder"])
        r["ratio_to_fp32_forward"] = round(r["ingest_tokens_per_s"] / fp32["forward_tokens_per_s"], 3) if fp32 else None
        r["ratio_to_llamaindex"] = round(r["ingest_tokens_per_s"] / baseline["tokens_per_second"], 3) if baseline else None
        if fp32 is None:
            r["ndcg_delta_vs_fp32"], r["ndcg_delta_ci95"], r["within_gate"] = None, None, None
            continue
        d = paired_difference(per_query_ndcg(ledger, r), per_query_ndcg(ledger, fp32))
        r["ndcg_delta_vs_fp32"] = round(d.mean_diff, 4)
        r["ndcg_delta_ci95"] = [round(d.low, 4), round(d.high, 4)]
        r["wins_losses_vs_fp32"] = [d.wins, d.losses]
        r["within_gate"] = d.mean_diff >= -GATE
    return records


def write_runtimes_markdown(path: Path, result: dict) -> None:
    m = result["machine"]
    lines = [f"# Encoder runtimes on SciFact (test, {result['queries']} queries, {result['documents']} documents)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores; CPU features: {', '.join(m['features']) or 'none of interest'} "
             f"(native bfloat16: {'yes' if m['native_bf16'] else 'no'}); load average at the start "
             f"{' / '.join(map(str, m['load_average_at_start']))}.", "",
             f"Chunking: {result['chunking']}. Δ: nDCG@10 minus float32's on the same queries (95% paired-bootstrap "
             f"interval); a runtime may become a default only where both Δ stay within -{GATE}.", "",
             "| encoder | runtime | ingest tokens/s | × fp32 forward | × LlamaIndex | forward tokens/s | query p50 ms | "
             "peak RSS MiB | nDCG@10 dense | Δ dense | nDCG@10 hybrid | Δ hybrid |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
    order = {name: i for i, name in enumerate(ENCODERS)}
    rows: dict[tuple[str, str], dict[str, dict]] = {}
    for r in result["records"]:
        rows.setdefault((r["encoder"], r["runtime"]), {})[r["mode"]] = r

    def delta(r: dict | None) -> str:
        if not r or r.get("ndcg_delta_vs_fp32") is None:
            return ""
        if r["runtime"] == "torch-fp32":
            return "(reference)"
        low, high = r["ndcg_delta_ci95"]
        return f"{r['ndcg_delta_vs_fp32']:+.4f} [{low:+.4f}, {high:+.4f}]"

    for (encoder, runtime), by_mode in sorted(rows.items(), key=lambda kv: (order.get(kv[0][0], 99), RUNTIMES.index(kv[0][1]))):
        any_r = next(iter(by_mode.values()))
        dense, hybrid = by_mode.get("dense"), by_mode.get("hybrid")
        fmt = lambda v, f="{}": "" if v is None else f.format(v)  # noqa: E731
        lines.append(f"| {encoder} | {runtime} | {any_r['ingest_tokens_per_s']} | {fmt(any_r['ratio_to_fp32_forward'])} | "
                     f"{fmt(any_r['ratio_to_llamaindex'])} | {any_r['forward_tokens_per_s']} | {any_r['query_embed_p50_ms']} | "
                     f"{any_r['peak_rss_mib']} | {fmt(dense and dense['ndcg_at_10'], '{:.4f}')} | {delta(dense)} | "
                     f"{fmt(hybrid and hybrid['ndcg_at_10'], '{:.4f}')} | {delta(hybrid)} |")
    for u in result["unavailable"]:
        lines.append(f"| {u['encoder']} | {u['runtime']} | unavailable here: {u['reason']} |" + " |" * 9)
    if result["llamaindex"]:
        lines += ["", "LlamaIndex IngestionPipeline (SentenceSplitter 256, same weights), same run: " + "; ".join(
            f"{b['encoder']} {b['tokens_per_second']} tokens/s, peak RSS {b['peak_rss_mib']} MiB"
            for b in result["llamaindex"].values()) + "."]
    lines += ["", "ingest tokens/s: embedded tokens per second of embedding during ingestion; forward tokens/s: the "
              "runtime's bare forward pass over whole documents; × fp32 forward: ingest tokens/s over the float32 PyTorch "
              "forward of the same encoder; peak RSS: the whole process (ingestion, search, forward pass)."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_runtimes(args, rset, encoders: list[str], chosen: list[str]) -> None:
    """The parent of ``--runtimes``: one worker process per (encoder, runtime), float32 first."""
    from lcrag.pipeline.ledger import Ledger

    limited = args.limit_docs is not None or args.limit_queries is not None
    stem = f"encoder-runtimes-d{len(rset.documents)}-q{len(rset.queries)}" if limited else "encoder-runtimes"
    json_file, md_file = args.out / f"{stem}.json", args.out / f"{stem}.md"
    result = json.loads(json_file.read_text()) if json_file.is_file() else {
        "dataset": rset.name, "queries": len(rset.queries), "documents": len(rset.documents),
        "chunking": args.runtime_chunking, "machine": machine_info(), "llamaindex": {}, "records": [], "unavailable": []}
    done = {(r["encoder"], r["runtime"]) for r in result["records"]} | {(u["encoder"], u["runtime"]) for u in result["unavailable"]}
    for name in [e for e in args.llamaindex.split(",") if e in encoders and e not in result["llamaindex"]]:
        print(f"LlamaIndex baseline with {name} ...", flush=True)
        result["llamaindex"][name] = llamaindex_throughput(rset, name, args.work)
        print(f"    {result['llamaindex'][name]}", flush=True)
        json_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    common = ["--data", str(args.data), "--work", str(args.work), "--seed", str(args.seed), "--modes", args.modes,
              "--runtime-chunking", args.runtime_chunking, "--forward-sample", str(args.forward_sample),
              "--latency-queries", str(args.latency_queries)]
    common += [f for flag, value in (("--limit-docs", args.limit_docs), ("--limit-queries", args.limit_queries),
                                     ("--threads", args.threads)) if value is not None for f in (flag, str(value))]
    for encoder_name in encoders:
        for runtime in ["torch-fp32", *[r for r in chosen if r != "torch-fp32"]]:
            if (encoder_name, runtime) in done:
                print(f"{encoder_name} {runtime}: done earlier, skipped", flush=True)
                continue
            print(f"{encoder_name} {runtime}: ingesting, judging, timing ...", flush=True)
            stdout, seconds, rss = run_with_rss([sys.executable, str(Path(__file__).resolve()), "--runtime-worker",
                                                 encoder_name, runtime, *common], quiet=False)
            out = json.loads(stdout.strip().splitlines()[-1])
            if "unavailable" in out:
                result["unavailable"].append({"encoder": encoder_name, "runtime": runtime, "reason": out["unavailable"]})
                print(f"    unavailable: {out['unavailable']}", flush=True)
            else:
                for r in out["records"]:
                    r.update(encoder=encoder_name, runtime=runtime, ingest_tokens_per_s=r.pop("tokens_per_s"),
                             forward_tokens_per_s=out["forward"]["tokens_per_s"], forward=out["forward"],
                             query_embed_p50_ms=out["query_embed_p50_ms"], peak_rss_mib=round(rss),
                             process_seconds=round(seconds, 1))
                    result["records"].append(r)
                    print(f"    {r['mode']}: nDCG@10 {r['ndcg_at_10']:.4f}  ingest {r['ingest_tokens_per_s']} tokens/s  "
                          f"forward {r['forward_tokens_per_s']} tokens/s  query p50 {r['query_embed_p50_ms']} ms  "
                          f"peak {round(rss)} MiB", flush=True)
            json_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")  # after each configuration
    runtime_rows(result, Ledger(args.work / "ledger.duckdb"))
    json_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_runtimes_markdown(md_file, result)
    print(md_file.read_text(encoding="utf-8"))
    print(f"wrote {json_file} and {md_file.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--work", type=Path, default=state_home() / "bench" / "encoders")
    parser.add_argument("--encoders", default=",".join(ENCODERS), help="comma-separated subset of " + ",".join(ENCODERS))
    parser.add_argument("--chunkings", default="naive,late-document,late-unit", help="comma-separated subset of naive,late-document,late-unit")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    parser.add_argument("--limit-docs", type=int, help="smoke run: at most this many documents (the sampled queries' relevant ones first)")
    parser.add_argument("--limit-queries", type=int, help="smoke run: a seeded sample of this many judged queries")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads of the encoder (default: the config's, every core)")
    parser.add_argument("--runtimes", help="measure encoder runtimes instead: comma-separated subset of " + ",".join(RUNTIMES)
                        + " (torch-fp32, the reference, is always measured)")
    parser.add_argument("--runtime-chunking", default="late-document", help="--runtimes: the one chunking each index uses")
    parser.add_argument("--llamaindex", default="MiniLM",
                        help="--runtimes: encoders whose LlamaIndex baseline is measured (comma-separated; empty: none)")
    parser.add_argument("--forward-sample", type=int, default=1000, help="--runtimes: documents of the bare forward-pass timing")
    parser.add_argument("--latency-queries", type=int, default=100, help="--runtimes: queries of the query-embedding latency")
    parser.add_argument("--runtime-worker", nargs=2, metavar=("ENCODER", "RUNTIME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        raise SystemExit(f"no SciFact at {args.data}; pass --data FOLDER (BEIR layout)")
    encoders = [e for e in args.encoders.split(",") if e]
    chunkings = [c for c in CHUNKINGS if (c[0] if c[0] == "naive" else f"{c[0]}-{c[1]}") in args.chunkings.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    unknown = [e for e in encoders if e not in ENCODERS] + [m for m in modes if m not in MODES]
    if unknown or not chunkings:
        raise SystemExit(f"unknown encoder or mode {unknown}, or no chunking chosen; see --help")

    from lcrag.pipeline.ledger import Ledger
    from lcrag.retrievers.encoders.encoder import make_encoder

    rset = load_set(args.data, args.limit_docs, args.limit_queries, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.runtime_worker:
        runtime_worker(args, rset)
        return
    if args.runtimes:
        chosen = [r for r in args.runtimes.split(",") if r]
        if not chosen or any(r not in RUNTIMES for r in chosen):
            raise SystemExit(f"--runtimes takes a comma-separated subset of {','.join(RUNTIMES)}, got {args.runtimes!r}")
        parse_chunking(args.runtime_chunking)
        run_runtimes(args, rset, encoders, chosen)
        return
    limited = args.limit_docs is not None or args.limit_queries is not None
    stem = f"encoders-d{len(rset.documents)}-q{len(rset.queries)}" if limited else "encoders"
    json_file, md_file = args.out / f"{stem}.json", args.out / f"{stem}.md"
    records: list[dict] = json.loads(json_file.read_text()) if json_file.is_file() else []
    done = {(r["encoder"], r["chunking"], r["context"], r["mode"]) for r in records}
    ledger = Ledger(args.work / "ledger.duckdb")
    plan = [(e, c, x) for e in encoders for c, x in chunkings]
    print(f"{rset.name}: {len(rset.queries)} queries, {len(rset.documents)} documents; "
          f"{len(plan) * len(modes)} configurations, {len(done)} already in {json_file.name}", flush=True)
    title = f"Encoders on SciFact (test, {len(rset.queries)} queries, {len(rset.documents)} documents)"
    loaded: dict = {}
    for position, (encoder_name, chunking, context) in enumerate(plan, start=1):
        pending = [m for m in modes if (encoder_name, chunking, context, m) not in done]
        label = f"[{position}/{len(plan)}] {encoder_name} {chunking}/{context}"
        if not pending:
            print(f"{label}: done earlier, skipped", flush=True)
            continue
        config = config_for(encoder_name, chunking, context, args.threads)
        started = time.perf_counter()
        print(f"{label}: ingesting and judging {', '.join(pending)} ...", flush=True)
        if loaded.get("name") != encoder_name:  # one encoder in memory at a time, loaded once
            loaded.clear()
            loaded.update(name=encoder_name, encoder=make_encoder(config.encoder).warm_up())
        new = run_configuration(rset, encoder_name, chunking, context, pending, loaded["encoder"], config, args.work, ledger)
        records += new
        done |= {(r["encoder"], r["chunking"], r["context"], r["mode"]) for r in new}
        json_file.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")  # after each configuration
        write_markdown(md_file, records, title)
        for r in new:
            print(f"    {r['mode']}: nDCG@10 {r['ndcg_at_10']:.4f}  Recall@100 {r['recall_at_100']:.4f}  "
                  f"{r['tokens_per_s']} tokens/s", flush=True)
        print(f"    ({time.perf_counter() - started:.0f} s)", flush=True)
    paired = paired_rows(ledger, records)
    paired_file = args.out / f"{stem}-paired.json"
    paired_file.write_text(json.dumps(paired, indent=2) + "\n", encoding="utf-8")
    write_markdown(md_file, records, title, paired)
    print(f"wrote {json_file}, {paired_file.name} and {md_file.name}")


if __name__ == "__main__":
    main()
