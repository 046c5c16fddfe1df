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
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def config_for(encoder: str, chunking: str, context: str, threads: int | None):
    from lcrag.pipeline.config import config_from_dict

    settings = dict(ENCODERS[encoder])
    if threads is not None:
        settings["threads"] = threads
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
    for (encoder, chunking, context, mode), record in sorted(by_key.items()):
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
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        raise SystemExit(f"no SciFact at {args.data}; pass --data FOLDER (BEIR layout)")
    encoders = [e for e in args.encoders.split(",") if e]
    chunkings = [c for c in CHUNKINGS if (c[0] if c[0] == "naive" else f"{c[0]}-{c[1]}") in args.chunkings.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    unknown = [e for e in encoders if e not in ENCODERS] + [m for m in modes if m not in MODES]
    if unknown or not chunkings:
        raise SystemExit(f"unknown encoder or mode {unknown}, or no chunking chosen; see --help")

    from lcrag.retrievers.encoders.encoder import make_encoder
    from lcrag.pipeline.ledger import Ledger

    rset = load_set(args.data, args.limit_docs, args.limit_queries, args.seed)
    limited = args.limit_docs is not None or args.limit_queries is not None
    stem = f"encoders-d{len(rset.documents)}-q{len(rset.queries)}" if limited else "encoders"
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
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
