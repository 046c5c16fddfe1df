"""Index scale benchmark: build, incremental publish, open and search at 100K, 300K and
1M chunks, per vector store backend (``store.backend``).

No model runs: the encoder is ``scale_fixtures.ScaleEncoder``, which satisfies lcrag's
encoder Protocol with deterministic vectors seeded by a hash of each text, and the
text is synthetic (Zipf-distributed words from a fixed vocabulary, about 60 tokens per
chunk, documents of 2 to 6 chunks, 8 documents per directory, grouped into units by
directory). Everything else is lcrag's own ingestion: plan, late chunking, embedding
batches written to the store and the catalog, BM25 segments, manifest.

The vectors are *clustered* (a shared direction, 1,000 centroids, a displacement inside
a 24-d subspace per cluster; see ``scale_fixtures``), because uniform random 384-d
vectors are HNSW's worst case (half of the exact top 10 at ef 128), which real text
embeddings are not. Recall is measured against the store's own exact search, so it
says how well the approximate index finds these vectors, not how good retrieval is.

Per (backend, size):

* ``build_s``: full ingestion into a new index, publish and store close (qdrant-edge
  builds its HNSW graphs at close) included;
* ``publish_1pct_s``: 1% of the documents get new text (same size), then the whole
  re-ingestion (plan, re-embedding of the units holding them, BM25 publish, close);
* in a fresh process (``serve``), so memory is the serving process's own: ``open_s``
  (``IndexReader``), ``hybrid`` / ``dense`` / ``bm25`` latency of ``IndexReader.search``
  (k 10, chunk level) over ``--queries`` queries after ``--warmup`` others,
  ``peak_rss_mb`` (the process's VmHWM in MiB, read after the timed searches and before
  the recall pass; ``ru_maxrss`` would include the parent's memory at fork), and
  ``dense_recall_at_10``: the store's search against its exact search (``exact=True``).

Resumable: a (backend, size) already in ``scale.json`` is skipped unless ``--force``;
finished indexes are kept in ``--work`` (default ``$LCRAG_HOME/bench/scale``) with a
``state.json`` of their build and publish times, and are reused (``--rebuild``
discards them). An index whose build or 1% publish was interrupted is built again,
since a resumed ingestion would time only its remainder.

    python bench/scale.py                                   # bench/results/scale.{json,md}
    python bench/scale.py --sizes 5000,20000 --out SOMEWHERE  # a smoke run
    python bench/scale.py --sizes 1000000 --backends qdrant-edge --force
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from scale_fixtures import (  # noqa: E402 (after the sys.path set-up above)
    CHUNK_TARGET_TOKENS,
    Corpus,
    ScaleEncoder,
    VectorSpace,
    make_queries,
    vocabulary,
)

from lcrag.core.paths import state_home  # noqa: E402 (after the sys.path set-up above)

BACKENDS = ("qdrant-edge", "qdrant-local")
ENCODER_NAME = "bench-scale-fake"  # in the index fingerprint: never mixed with a real encoder's index
SOURCE = "scale"
STATE_FORMAT = 1
TARGET_CHUNKS = 1_000_000
TARGETS = (  # the targets at 1M chunks: (label, test)
    ("hybrid p50 <= 100 ms", lambda r: r["hybrid_p50_ms"] <= 100),
    ("hybrid p95 <= 200 ms", lambda r: r["hybrid_p95_ms"] <= 200),
    ("recall@10 >= 0.95", lambda r: r["dense_recall_at_10"] >= 0.95),
    ("peak serving memory <= 6 GiB", lambda r: r["peak_rss_mb"] <= 6 * 1024),
    ("open <= 10 s", lambda r: r["open_s"] <= 10),
    ("1% publish <= 10% of build", lambda r: r["publish_1pct_s"] <= 0.10 * r["build_s"]),
)


# ---------------------------------------------------------------- settings


def index_config(backend: str, chunking: str, commit_tokens: int):
    from lcrag.pipeline.config import config_from_dict

    return config_from_dict({
        "encoder": {"model": ENCODER_NAME, "batch_tokens": 65536},
        "units": {"group_by": "directory"},
        "chunking": {"target_tokens": CHUNK_TARGET_TOKENS, "method": chunking},
        # ~4,000 chunks per committed batch: at 1M chunks, per-batch costs (store flush,
        # catalog transaction) stay small beside the work itself
        "ingest": {"commit_tokens": commit_tokens},
        "store": {"backend": backend},
    })


def space_of(args: argparse.Namespace) -> VectorSpace:
    return VectorSpace(clusters=args.clusters, rank=args.cluster_rank, seed=args.seed)


def build_params(args: argparse.Namespace, backend: str, size: int) -> dict:
    """Everything that shapes an index: a kept index is reused only if these match."""
    return {
        "format": STATE_FORMAT, "backend": backend, "chunks": size, "seed": args.seed, "vocabulary": args.vocabulary,
        "zipf": args.zipf, "docs_per_dir": args.docs_per_dir, "chunking": args.chunking,
        "commit_tokens": args.commit_tokens, "change": args.change, "space": asdict(space_of(args)),
    }


# ---------------------------------------------------------------- logging


class Log:
    """Progress lines with the time since the record started."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{self.label}] {message} ({time.perf_counter() - self.started:.1f} s)", flush=True)

    def progress_factory(self, what: str):
        def factory(total: int):
            done = [0, 0]  # tokens, last tenth printed

            def progress(tokens: int) -> None:
                done[0] += tokens
                tenth = min(10, done[0] * 10 // max(total, 1))
                if tenth > done[1]:
                    done[1] = tenth
                    self(f"{what}: {tenth * 10}% of {total:,} tokens embedded")

            return progress

        return factory


# ---------------------------------------------------------------- ingestion


def timed_ingest(docs, index: Path, config, encoder, what: str, log: Log) -> dict:
    """``ingestion.ingest``'s steps one by one, each timed (the stores' close included:
    qdrant-edge builds its HNSW graphs there)."""
    from threadpoolctl import threadpool_limits

    from lcrag.pipeline.ingest.ingestion import IndexWriter, embed_pending, index_changed, pending_tokens, plan, publish
    from lcrag.pipeline.ingest.loaders import LoadResult

    phases: dict[str, float] = {}
    encoder_before = encoder.seconds
    started = time.perf_counter()
    # the fake encoder's small matrix products: one BLAS thread is faster than two fighting
    with threadpool_limits(1, user_api="blas"), IndexWriter(index, config, encoder) as writer:
        t = time.perf_counter()
        plan_report = plan(writer, LoadResult("scale", tuple(docs), ()), SOURCE)
        phases["plan_s"] = time.perf_counter() - t
        log(f"{what}: planned {plan_report.units_planned:,} units ({plan_report.added:,} documents added, "
            f"{plan_report.changed:,} changed, {plan_report.units_dropped:,} units dropped), "
            f"{pending_tokens(writer):,} tokens to embed")
        t = time.perf_counter()
        total = pending_tokens(writer)
        embed_report = embed_pending(writer, log.progress_factory(what)(total) if total else None)
        phases["embed_s"] = time.perf_counter() - t
        log(f"{what}: embedded {embed_report.chunks:,} chunks; publishing BM25 and the manifest")
        t = time.perf_counter()
        manifest = publish(writer, index_changed(plan_report, embed_report))
        phases["publish_s"] = time.perf_counter() - t
        log(f"{what}: published generation {manifest.generation} ({manifest.chunks:,} chunks); closing the stores")
        t = time.perf_counter()
    phases["close_s"] = time.perf_counter() - t
    seconds = time.perf_counter() - started
    phases["stand_in_encoder_s"] = encoder.seconds - encoder_before  # inside the embed and plan phases
    log(f"{what}: done in {seconds:.1f} s ({phases['stand_in_encoder_s']:.1f} s of it in the stand-in encoder)")
    return {
        "seconds": round(seconds, 2), "phases": {k: round(v, 2) for k, v in phases.items()},
        "generation": manifest.generation, "documents": manifest.documents, "units": manifest.units,
        "chunks": manifest.chunks, "tokens": manifest.tokens, "embedded_units": embed_report.units,
        "embedded_chunks": embed_report.chunks, "changed_documents": plan_report.changed,
        "dropped_units": plan_report.units_dropped,
    }


def folder_mib(folder: Path) -> float:
    """Disk space the folder's files take (allocated blocks, so sparse files count what they use)."""
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_blocks * 512
        except OSError:
            pass
    return round(total / 2**20, 1)


def read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def live_generation(index: Path) -> int | None:
    """The finished index's generation, or None (absent, unfinished or interrupted)."""
    from lcrag.pipeline.index.folder import IndexPaths, read_manifest

    manifest = read_manifest(index) if index.is_dir() else None
    return None if manifest is None or IndexPaths(index).marker.exists() else manifest.generation


_generated: dict[Corpus, tuple] = {}


def prepare_index(args: argparse.Namespace, backend: str, size: int, log: Log) -> tuple[Path, dict]:
    """Build the index and apply the 1% change, or reuse what a finished earlier run left."""
    folder = args.work / f"{backend}-{size}"
    index, state_file = folder / "index", folder / "state.json"
    params = build_params(args, backend, size)
    state = read_state(state_file)
    generation = live_generation(index)
    if args.rebuild or state.get("params") != params:
        state = {}
    elif "publish_1pct" in state and generation != state["publish_1pct"]["generation"]:
        log("the kept index is not the one state.json describes: building it again")
        state = {}
    elif "build" in state and "publish_1pct" not in state and generation != state["build"]["generation"]:
        log("the 1% publish of the kept index was interrupted: building it again")
        state = {}
    if "publish_1pct" in state:
        log(f"reusing the index in {folder.name} (built in {state['build']['seconds']} s)")
        return index, state

    config = index_config(backend, args.chunking, args.commit_tokens)
    encoder = ScaleEncoder(space_of(args), name=ENCODER_NAME).warm_up()
    corpus = Corpus(size, vocabulary(args.vocabulary, args.zipf, args.seed), args.seed, args.docs_per_dir)
    docs = _generated.get(corpus)
    if docs is None:
        log(f"generating {corpus.n_docs:,} documents")
        _generated.clear()  # one corpus in memory: the backends of one size share it
        docs = _generated[corpus] = corpus.documents()
    if "build" not in state:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        log(f"building: {len(docs):,} documents, {size:,} chunks")
        state = {"params": params, "build": timed_ingest(docs, index, config, encoder, "build", log)}
        state["build"]["index_mib"] = folder_mib(index)
        write_state(state_file, state)
        if state["build"]["chunks"] != size:
            log(f"note: the index holds {state['build']['chunks']:,} chunks, not {size:,}")
    changed = corpus.changed_share(args.change)
    docs = tuple(corpus.document(i, 1) if i in changed else doc for i, doc in enumerate(docs))
    log(f"1% publish: {len(changed):,} documents get new text")
    state["publish_1pct"] = timed_ingest(docs, index, config, encoder, "1% publish", log)
    state["publish_1pct"]["index_mib"] = folder_mib(index)
    write_state(state_file, state)
    return index, state


# ---------------------------------------------------------------- serving (child process)


def vm_hwm_mib() -> float:
    """This process's peak resident memory (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource  # not Linux: ru_maxrss (KiB here), which may include the parent's memory at fork

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def import_engines() -> None:
    """Import what opening an index imports (store engines, the BM25 analyzer's stemmer
    and stop words), so that timed phases measure the index, not a one-off import."""
    import qdrant_client  # noqa: F401
    import qdrant_edge  # noqa: F401
    import sklearn.feature_extraction.text  # noqa: F401
    import Stemmer  # noqa: F401


def serve(args: argparse.Namespace) -> None:
    """Open the index, time searches, then measure recall; print one JSON line."""
    started = time.perf_counter()
    from lcrag.pipeline.index.search import IndexReader

    import_engines()
    imports_s = time.perf_counter() - started
    task = json.loads(args.task.read_text(encoding="utf-8"))
    encoder = ScaleEncoder(VectorSpace(**task["space"]), name=ENCODER_NAME).warm_up()
    k = task["k"]
    started = time.perf_counter()
    reader = IndexReader(args.index, lambda _config: encoder)
    open_s = time.perf_counter() - started
    try:
        started = time.perf_counter()
        reader.search(task["warmup"][0], k=k, mode="hybrid")
        first_ms = (time.perf_counter() - started) * 1000
        for query in task["warmup"][1:]:
            for mode in ("hybrid", "dense", "bm25"):
                reader.search(query, k=k, mode=mode)
        latency: dict[str, list[float]] = {}
        for mode in ("hybrid", "dense", "bm25"):
            times = latency[mode] = []
            for query in task["queries"]:
                started = time.perf_counter()
                reader.search(query, k=k, mode=mode)
                times.append((time.perf_counter() - started) * 1000)
        peak = vm_hwm_mib()  # before the exact scans, which read every vector
        store, overlap = reader.vectors, []
        approx_ms, exact_ms = [], []
        for vector in encoder.embed(task["queries"]):
            started = time.perf_counter()
            approx = {s.chunk_id for s in store.search(vector, k)}
            approx_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            exact = {s.chunk_id for s in store.search(vector, k, exact=True)}
            exact_ms.append((time.perf_counter() - started) * 1000)
            overlap.append(len(approx & exact) / max(len(exact), 1))
        result = {
            "open_s": round(open_s, 3),
            "imports_s": round(imports_s, 2),
            "first_query_ms": round(first_ms, 1),
            "peak_rss_mb": round(peak, 1),
            **{f"{mode}_{name}_ms": round(float(np.percentile(times, q)), 2)
               for mode, times in latency.items() for name, q in (("p50", 50), ("p95", 95))},
            "dense_recall_at_10": round(float(np.mean(overlap)), 4),
            "store_search_p50_ms": round(float(np.percentile(approx_ms, 50)), 2),
            "store_exact_p50_ms": round(float(np.percentile(exact_ms, 50)), 2),
            "hnsw_ef": reader.config.store.hnsw_ef,
            "candidates": reader.config.retrieval.candidates,
        }
    finally:
        reader.close()
    print(json.dumps(result), flush=True)


def measure_serving(args: argparse.Namespace, index: Path, log: Log) -> dict:
    """``serve`` in a new interpreter: its open time and memory are a cold process's."""
    words = vocabulary(args.vocabulary, args.zipf, args.seed)
    queries = make_queries(words, args.warmup + args.queries, args.seed)
    task_file = index.parent / "serve-task.json"
    task_file.write_text(json.dumps({
        "space": asdict(space_of(args)), "k": args.k,
        "warmup": queries[: max(args.warmup, 1)], "queries": queries[args.warmup:],
    }), encoding="utf-8")
    log(f"serving: opening the index in a new process, {args.queries} queries x 3 modes, then recall")
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "serve", "--index", str(index), "--task", str(task_file)],
        stdout=subprocess.PIPE, text=True, check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- records


def machine() -> dict:
    return {
        "cores": os.cpu_count(), "arch": platform.machine(), "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def run_record(args: argparse.Namespace, backend: str, size: int) -> dict:
    log = Log(f"{backend} {size:,}")
    host = machine()  # the load at the start: other work on the machine shifts every number
    index, state = prepare_index(args, backend, size, log)
    served = measure_serving(args, index, log)
    build, change = state["build"], state["publish_1pct"]
    record = {
        "backend": backend,
        "chunks": size,
        "build_s": build["seconds"],
        "publish_1pct_s": change["seconds"],
        "open_s": served["open_s"],
        "peak_rss_mb": served["peak_rss_mb"],
        "hybrid_p50_ms": served["hybrid_p50_ms"],
        "hybrid_p95_ms": served["hybrid_p95_ms"],
        "dense_p50_ms": served["dense_p50_ms"],
        "bm25_p50_ms": served["bm25_p50_ms"],
        "dense_recall_at_10": served["dense_recall_at_10"],
        "vectors": "clustered",
        "hnsw_ef": served["hnsw_ef"],
        "candidates": served["candidates"],
        "dense_p95_ms": served["dense_p95_ms"],
        "bm25_p95_ms": served["bm25_p95_ms"],
        "store_search_p50_ms": served["store_search_p50_ms"],
        "store_exact_p50_ms": served["store_exact_p50_ms"],
        "first_query_ms": served["first_query_ms"],
        "serve_imports_s": served["imports_s"],
        "queries": args.queries,
        "k": args.k,
        "indexed_chunks": change["chunks"],
        "documents": change["documents"],
        "units": change["units"],
        "tokens": change["tokens"],
        "changed_documents": change["changed_documents"],
        "reembedded_chunks": change["embedded_chunks"],
        "build_phases_s": build["phases"],
        "publish_1pct_phases_s": change["phases"],
        "index_mib": change["index_mib"],
        "chunking": args.chunking,
        "group_by": f"directory ({args.docs_per_dir} documents)",
        "commit_tokens": args.commit_tokens,
        "corpus": {"vocabulary": args.vocabulary, "zipf": args.zipf, "change": args.change, "seed": args.seed,
                   "clusters": args.clusters, "cluster_rank": args.cluster_rank},
        "machine": host,
        "measured_at": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    log(f"hybrid p50 {record['hybrid_p50_ms']} ms, p95 {record['hybrid_p95_ms']} ms; dense p50 {record['dense_p50_ms']} ms; "
        f"bm25 p50 {record['bm25_p50_ms']} ms; recall@10 {record['dense_recall_at_10']}; open {record['open_s']} s; "
        f"peak {record['peak_rss_mb']:.0f} MiB; build {record['build_s']} s; 1% publish {record['publish_1pct_s']} s")
    return record


def sort_key(record: dict) -> tuple:
    order = {b: i for i, b in enumerate(BACKENDS)}
    return record["chunks"], order.get(record["backend"], 99), record["backend"]


def write_markdown(path: Path, records: list[dict]) -> None:
    lines = [
        "# Index scale: build, 1% publish, open and search",
        "",
        ("`bench/scale.py`: synthetic Zipf text and a stand-in encoder (clustered 384-d vectors, no model), "
        "real lcrag ingestion otherwise. Search: `IndexReader.search`, k 10, chunk level, in a fresh process; "
        "recall@10: the store's search against its exact search over the same queries."),
        "",
        ("| backend | chunks | build s | 1% publish s (% of build) | re-embedded | open s | peak RSS MiB "
        "| hybrid p50 / p95 ms | dense p50 ms | BM25 p50 ms | recall@10 | index MiB | load |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(records, key=sort_key):
        share = 100 * r["publish_1pct_s"] / r["build_s"] if r["build_s"] else float("nan")
        lines.append(
            f"| {r['backend']} | {r['chunks']:,} | {r['build_s']:.1f} | {r['publish_1pct_s']:.1f} ({share:.0f}%) "
            f"| {r.get('reembedded_chunks', 0):,} | {r['open_s']:.2f} | {r['peak_rss_mb']:,.0f} "
            f"| {r['hybrid_p50_ms']:.1f} / {r['hybrid_p95_ms']:.1f} | {r['dense_p50_ms']:.1f} | {r['bm25_p50_ms']:.1f} "
            f"| {r['dense_recall_at_10']:.3f} | {r.get('index_mib', 0):,.0f} | {r.get('machine', {}).get('load_avg_1m', '')} |"
        )
    lines += ["", f"## Targets (issue 13, at {TARGET_CHUNKS:,} chunks)", ""]
    at_target = [r for r in records if r["chunks"] >= TARGET_CHUNKS]
    shown = sorted(at_target or records, key=sort_key)
    if not at_target:
        lines += [f"No record at {TARGET_CHUNKS:,} chunks yet; the smaller records below are indicative only.", ""]
    lines += ["| backend | chunks | " + " | ".join(label for label, _ in TARGETS) + " |",
              "|---|---:|" + "---|" * len(TARGETS)]
    for r in shown:
        lines.append(f"| {r['backend']} | {r['chunks']:,} | " + " | ".join("met" if test(r) else "**missed**" for _, test in TARGETS) + " |")
    first = records[0] if records else {}
    corpus = {"vocabulary": 50_000, "zipf": 1.1, "change": 0.01, "clusters": 1000, "cluster_rank": 24, **first.get("corpus", {})}
    lines += [
        "",
        "## How it is measured",
        "",
        ("- Corpus: documents of 2 to 6 chunks of exactly 60 whitespace tokens (4 sentences of 15 words) from "
        f"{corpus['vocabulary']:,} synthetic words with Zipf frequencies (exponent {corpus['zipf']}); "
        f"`chunking.target_tokens` 64, {first.get('chunking', 'late')} chunking, units grouped by "
        f"{first.get('group_by', 'directory')}, `ingest.commit_tokens` {first.get('commit_tokens', '')}. "
        "Build phases (plan, embed, publish, close) and the time spent inside the stand-in encoder are in the JSON "
        "(`build_phases_s`, `publish_1pct_phases_s`)."),
        ("- Vectors: **clustered**, not uniform. Uniform random 384-d vectors have no neighbourhoods and are HNSW's "
        "worst case (about half of the exact top 10 at ef 128); text embeddings are clustered and of low intrinsic "
        f"dimension. Each text lands near one of {corpus['clusters']:,} centroids (plus a shared direction), displaced "
        f"inside that cluster's {corpus['cluster_rank']}-d subspace; late chunking pools token vectors built the same "
        "way. Recall on real embeddings can differ."),
        ("- build s: a full ingestion into an empty index, including the BM25 publish and the store's close "
        f"(qdrant-edge builds its HNSW graphs there). 1% publish s: {corpus['change']:.0%} of the documents (seeded) "
        "get new text of the same size and the whole ingestion runs again; every unit holding a changed document "
        "is re-embedded, so the re-embedded share is larger than 1% (units hold several documents). qdrant-edge "
        "puts the re-embedded chunks in a segment of their own, scanned exactly while under its indexing threshold "
        "(150 MB of vectors), so the publish builds no graph (`retrievers/stores/edge.py`, `EdgeTuning`)."),
        ("- open s, latencies, peak RSS: a new Python process opens the index (`IndexReader`, the page cache is "
        "warm from the build), runs warm-up queries, then each mode over the same queries (2 to 5 Zipf words; "
        "the query vector comes from the stand-in encoder). Hybrid and dense fetch `retrieval.candidates` (300) "
        "chunks from the store, so HNSW searches them with ef = max(hnsw_ef, 300); recall@10 uses k 10 at "
        f"`store.hnsw_ef` ({', '.join(sorted({str(r.get('hnsw_ef', '')) for r in records}))}). "
        "Peak RSS is the serving process's VmHWM after the timed searches "
        "(memory-mapped index files it touched included), before the exact scans of the recall pass."),
        ("- qdrant-local runs only up to 300,000 chunks by default: local mode keeps every vector in Python "
         "and scans them all per query, and qdrant-client writes each point in its own SQLite transaction, so "
         "ingestion into it is bound by the disk's sync rate. Its recall is 1 by construction (its search is exact)."),
        ("- load: the machine's 1-minute load average when the record started; other work on the machine "
        "slows every number here."),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,300000,1000000", help="comma-separated chunk counts")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated subset of " + ",".join(BACKENDS))
    parser.add_argument("--local-max", type=int, default=300_000,
                        help="qdrant-local only at sizes up to this many chunks (default 300000; it does not fit at 1M)")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per mode (default 200)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed queries first (default 10)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where scale.json and scale.md go")
    parser.add_argument("--work", type=Path, default=None, help="where indexes are kept (default $LCRAG_HOME/bench/scale)")
    parser.add_argument("--force", action="store_true", help="measure again configurations already in scale.json")
    parser.add_argument("--rebuild", action="store_true",
                        help="discard the kept indexes of the configurations measured now and build them again")
    parser.add_argument("--chunking", choices=("late", "naive"), default="late")
    parser.add_argument("--commit-tokens", type=int, default=1 << 18, help="ingest.commit_tokens (default 262144)")
    parser.add_argument("--change", type=float, default=0.01, help="share of documents changed for the publish (default 0.01)")
    parser.add_argument("--docs-per-dir", type=int, default=8, help="documents per directory, grouped into units")
    parser.add_argument("--vocabulary", type=int, default=50_000, help="synthetic words")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of word frequencies")
    parser.add_argument("--clusters", type=int, default=1000, help="vector clusters")
    parser.add_argument("--cluster-rank", type=int, default=24, help="dimensions of a cluster's spread")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.work = args.work or state_home() / "bench" / "scale"
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        parser = argparse.ArgumentParser(prog="scale.py serve")
        parser.add_argument("serve")
        parser.add_argument("--index", type=Path, required=True)
        parser.add_argument("--task", type=Path, required=True)
        serve(parser.parse_args(argv))
        return []
    args = parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    backends = [b for b in args.backends.split(",") if b]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not sizes or min(sizes) < 1 or args.queries < 1:
        raise SystemExit(f"unknown backend {unknown}, or no sizes or queries; see --help")
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    json_file, md_file = args.out / "scale.json", args.out / "scale.md"
    records: list[dict] = json.loads(json_file.read_text(encoding="utf-8")) if json_file.is_file() else []
    plan = [(b, s) for s in sorted(sizes) for b in backends]
    started = time.perf_counter()
    import_engines()
    for position, (backend, size) in enumerate(plan, start=1):
        label = f"[{position}/{len(plan)}] {backend} {size:,}"
        if backend == "qdrant-local" and size > args.local_max:
            print(f"{label}: skipped (qdrant-local only up to --local-max {args.local_max:,} chunks)", flush=True)
            continue
        if any((r["backend"], r["chunks"]) == (backend, size) for r in records) and not args.force:
            print(f"{label}: already in {json_file.name}, skipped (--force measures it again)", flush=True)
            continue
        print(f"{label}: ...", flush=True)
        record = run_record(args, backend, size)
        records = [r for r in records if (r["backend"], r["chunks"]) != (backend, size)] + [record]
        records.sort(key=sort_key)
        json_file.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")  # after each record
        write_markdown(md_file, records)
    write_markdown(md_file, records)
    print(f"wrote {json_file} and {md_file} ({time.perf_counter() - started:.0f} s)", flush=True)
    return records


if __name__ == "__main__":
    main()
