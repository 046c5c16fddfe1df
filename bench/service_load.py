"""Load test of the query API (``lcrag serve``) on 127.0.0.1.

Ingests the first ``--docs`` SciFact documents into a temporary index, starts
the API in a child process (its own interpreter, so the load generator does not
share its GIL), and sends SciFact claims as questions from N closed-loop
clients (each sends its next question when the previous one returns).
Every answered question also writes its ledger row, as in production.

Scenarios:

* fake reader: the deterministic test reader with ``--delay-ms`` per read (a
  stand-in for reader latency that costs no CPU), at concurrency 1, 4 and 16,
  with the default admission limits (4 in flight, 8 queued), so 16 clients
  also show what refusing (429) looks like;
* real reader: the vLLM server of ``lcrag reader start`` (127.0.0.1:8431) at
  concurrency 1, 2 and 4 with 40 questions each; skipped with a message when it is
  not running. It loads the shared reader: run it only when nothing else does.

Reports requests/s, p50/p99 latency of answered questions and errors by status;
writes ``service_load.json`` and ``service_load.md`` to ``--out``.

    python bench/service_load.py [--only fake|real|all] [--requests 200] [--delay-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lcrag.core.paths import state_home  # noqa: E402

KEY = "bench-key"
STRATEGY = "rag"


# ------------------------------------------------------------ the server side


def serve(args: argparse.Namespace) -> None:
    """Child process: the API over ``--index`` with the chosen reader, until terminated."""
    from dataclasses import replace

    import uvicorn

    from lcrag.app.service import create_app
    from lcrag.app.service.server import uvicorn_config
    from lcrag.pipeline.config import Config, ReaderConfig, ServiceConfig
    from lcrag.pipeline.index.generations import LiveIndex
    from lcrag.pipeline.ledger import Ledger
    from lcrag.readers import make_reader
    from lcrag.readers.fake import FakeReader
    from lcrag.retrievers.encoders.encoder import make_encoder

    class DelayedReader(FakeReader):
        """The fake reader, taking ``delay`` seconds per read like a remote model would."""

        def __init__(self, delay: float) -> None:
            super().__init__()
            self.delay = delay

        def read(self, prompt):
            time.sleep(self.delay)
            answer = super().read(prompt)
            return replace(answer, latency_ms=self.delay * 1000)

    config = Config(reader=ReaderConfig(backend=args.reader, port=args.reader_port))
    reader = DelayedReader(args.delay_ms / 1000) if args.reader == "fake" else make_reader(config.reader, state_home())
    service = ServiceConfig(api_key=KEY, max_in_flight=args.max_in_flight, max_queued=args.max_queued)
    with LiveIndex(args.index, make_encoder) as live:
        with live.acquire() as generation:
            generation.corpus.search("warm up", k=1)
        app = create_app(live, reader, Ledger(args.ledger), config, service)
        uvicorn.Server(uvicorn_config(app, "127.0.0.1", args.port, log_level="warning")).run()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``serve`` in a child process; ready once /v1/health answers."""

    def __init__(self, index: Path, ledger: Path, reader: str, delay_ms: float, reader_port: int,
                 max_in_flight: int, max_queued: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [
            sys.executable, __file__, "serve", "--index", str(index), "--ledger", str(ledger), "--reader", reader,
            "--delay-ms", str(delay_ms), "--reader-port", str(reader_port), "--port", str(self.port),
            "--max-in-flight", str(max_in_flight), "--max-queued", str(max_queued),
        ]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        import httpx

        self.proc = subprocess.Popen(self.cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the API server exited with code {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise SystemExit("the API server did not start within 180 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ------------------------------------------------------------- the load side


async def closed_loop(url: str, questions: list[str], concurrency: int, requests: int, timeout_s: float) -> list[tuple[int, float, dict]]:
    """``concurrency`` clients send ``requests`` questions in all; (status, ms, server timings)
    of each. A refused client waits Retry-After seconds before its next question, as a
    well-behaved client does (the refused question is not sent again)."""
    import httpx

    results: list[tuple[int, float, dict]] = []
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits, headers={"X-API-Key": KEY}) as client:

        async def worker() -> None:
            nonlocal next_index
            while next_index < requests:
                question = questions[next_index % len(questions)]
                next_index += 1
                started = time.perf_counter()
                timings, retry_after = {}, 0.0
                try:
                    response = await client.post("/v1/query", json={"question": question, "strategy": STRATEGY})
                    status = response.status_code
                    if status == 200:
                        timings = response.json()["timings_ms"]
                    retry_after = float(response.headers.get("retry-after", 0))
                except httpx.HTTPError:
                    status = 0  # no HTTP answer at all (connection error or client timeout)
                results.append((status, (time.perf_counter() - started) * 1000, timings))
                if status == 429:
                    await asyncio.sleep(retry_after)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))], 1)


def summarize(name: str, reader: str, concurrency: int, results: list[tuple[int, float, dict]], seconds: float) -> dict:
    ok = [ms for status, ms, _ in results if status == 200]
    refused = [ms for status, ms, _ in results if status == 429]
    timings = [t for status, _, t in results if status == 200]
    errors: dict[str, int] = {}
    for status, _, _ in results:
        if status != 200:
            errors[str(status)] = errors.get(str(status), 0) + 1
    return {
        "scenario": name,
        "reader": reader,
        "concurrency": concurrency,
        "requests": len(results),
        "answered": len(ok),
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(results) / seconds, 2),
        "answered_per_s": round(len(ok) / seconds, 2),
        "p50_ms": percentile(ok, 0.50),
        "p99_ms": percentile(ok, 0.99),
        "mean_ms": round(statistics.fmean(ok), 1) if ok else None,
        "errors_by_status": errors,
        "refused_p50_ms": percentile(refused, 0.50),
        # where an answered question's time went, by the server's own clock (medians)
        "server_ms_p50": {key: percentile([t[key] for t in timings], 0.50) for key in ("queued", "retrieval", "reading", "total")},
    }


def run_scenarios(server: ServerProcess, questions: list[str], name: str, reader: str, levels: list[int],
                  requests: int, timeout_s: float) -> list[dict]:
    """Each scenario gets questions no earlier one sent, so the reader's prefix cache
    never serves a later scenario a prompt it has already seen."""
    out = []
    warm = 3
    asyncio.run(closed_loop(server.url, questions[:warm], 1, warm, timeout_s))  # warm the path before measuring
    for number, concurrency in enumerate(levels):
        start = warm + number * requests
        fresh = questions[start:start + requests] or questions  # wraps only when the set runs out
        started = time.perf_counter()
        results = asyncio.run(closed_loop(server.url, fresh, concurrency, requests, timeout_s))
        row = summarize(name, reader, concurrency, results, time.perf_counter() - started)
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


# ------------------------------------------------------------------- set-up


def build_index(data: Path, docs: int, work: Path) -> Path:
    """The first ``docs`` SciFact documents as an lcrag index (default config)."""
    from lcrag.pipeline.config import Config
    from lcrag.pipeline.ingest.ingestion import ingest
    from lcrag.pipeline.ingest.loaders import load_source
    from lcrag.retrievers.encoders.encoder import make_encoder

    subset = work / "scifact-subset"
    subset.mkdir(parents=True, exist_ok=True)
    with (data / "corpus.jsonl").open(encoding="utf-8") as source, (subset / "corpus.jsonl").open("w", encoding="utf-8") as target:
        for number, line in enumerate(source):
            if number >= docs:
                break
            target.write(line)
    config = Config()
    index = work / "index"
    ingest(load_source(subset, "beir"), index, config, make_encoder(config.encoder), "scifact-subset")
    return index


def load_questions(data: Path, limit: int = 2000) -> list[str]:
    from lcrag.pipeline.ingest.loaders.beir import load_beir_queries

    return [q.text for q in load_beir_queries(data)[:limit]]


def reader_running(port: int) -> bool:
    from lcrag.pipeline.config import ReaderConfig
    from lcrag.readers import make_reader

    reader = make_reader(ReaderConfig(port=port), state_home())
    try:
        return reader.healthy()
    finally:
        reader.close()


def write_results(out: Path, result: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "service_load.json").write_text(json.dumps(result, indent=2) + "\n")
    s = result["settings"]
    lines = [
        "# Query API load (POST /v1/query, strategy rag, closed-loop clients on 127.0.0.1)",
        "",
        f"Index: first {s['docs']} SciFact documents; questions: SciFact claims. Server limits: "
        f"{s['max_in_flight']} in flight, {s['max_queued']} queued (more are refused with 429). "
        f"Fake reader delay: {s['delay_ms']:g} ms per read. Every answered question writes its DuckDB ledger row "
        "(server total minus queued, retrieval and reading is mostly that write). A refused client waits Retry-After "
        f"before its next question. {result['machine']}.",
        "",
        "| reader | clients | requests | answered/s | p50 ms | p99 ms | errors by status | 429 p50 ms "
        "| server p50 ms: queued / retrieval / reading / total |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["scenarios"]:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(row["errors_by_status"].items())) or "none"
        lines.append(
            f"| {row['reader']} | {row['concurrency']} | {row['requests']} | {row['answered_per_s']} | {row['p50_ms']} "
            f"| {row['p99_ms']} | {errors} | {row['refused_p50_ms'] if row['refused_p50_ms'] is not None else ''} "
            f"| {' / '.join(str(row['server_ms_p50'][k]) for k in ('queued', 'retrieval', 'reading', 'total'))} |"
        )
    if result.get("real_reader_skipped"):
        lines += ["", f"Real reader: not measured ({result['real_reader_skipped']})."]
    (out / "service_load.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        parser = argparse.ArgumentParser(prog="service_load.py serve")
        parser.add_argument("serve")
        parser.add_argument("--index", type=Path, required=True)
        parser.add_argument("--ledger", type=Path, required=True)
        parser.add_argument("--reader", choices=("fake", "vllm"), required=True)
        parser.add_argument("--delay-ms", type=float, default=50)
        parser.add_argument("--reader-port", type=int, default=8431)
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--max-in-flight", type=int, default=4)
        parser.add_argument("--max-queued", type=int, default=8)
        serve(parser.parse_args())
        return

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("fake", "real", "all"), default="all", help="which scenarios to run")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--docs", type=int, default=100, help="SciFact documents to index")
    parser.add_argument("--requests", type=int, default=200, help="questions per fake-reader scenario")
    parser.add_argument("--concurrency", default="1,4,16", help="fake-reader client counts")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="fake reader's time per read")
    parser.add_argument("--real-requests", type=int, default=40, help="questions per real-reader scenario")
    parser.add_argument("--real-concurrency", default="1,2,4", help="real-reader client counts")
    parser.add_argument("--reader-port", type=int, default=8431, help="port of `lcrag reader start`")
    parser.add_argument("--max-in-flight", type=int, default=4)
    parser.add_argument("--max-queued", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        raise SystemExit(f"no SciFact at {args.data}; pass --data FOLDER (BEIR layout)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lcrag.pipeline.config import ReaderConfig

    scenarios: list[dict] = []
    skipped = None
    load_before = os.getloadavg()[0]  # other work on the machine shifts every number here
    with tempfile.TemporaryDirectory(prefix="lcrag-service-load-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        index = build_index(args.data, args.docs, work)
        print(f"indexed {args.docs} documents in {time.perf_counter() - started:.1f} s", flush=True)
        questions = load_questions(args.data)
        limits = (args.max_in_flight, args.max_queued)
        if args.only in ("fake", "all"):
            with ServerProcess(index, work / "fake.duckdb", "fake", args.delay_ms, args.reader_port, *limits) as server:
                levels = [int(c) for c in args.concurrency.split(",")]
                scenarios += run_scenarios(server, questions, "fake", "fake", levels, args.requests, 60)
        if args.only in ("real", "all"):
            if not reader_running(args.reader_port):
                skipped = f"no reader answers on 127.0.0.1:{args.reader_port}; start it with `lcrag reader start`"
                print(f"skipping the real reader: {skipped}", flush=True)
            else:
                with ServerProcess(index, work / "real.duckdb", "vllm", 0, args.reader_port, *limits) as server:
                    levels = [int(c) for c in args.real_concurrency.split(",")]
                    scenarios += run_scenarios(server, questions, "real", f"vllm ({ReaderConfig().model})", levels, args.real_requests, 600)
        else:
            skipped = "run with --only fake"

    result = {
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
                   f"load average {load_before:.1f} at start",
        "settings": {
            "docs": args.docs, "strategy": STRATEGY, "delay_ms": args.delay_ms,
            "max_in_flight": args.max_in_flight, "max_queued": args.max_queued,
        },
        "scenarios": scenarios,
        "real_reader_skipped": skipped,
    }
    write_results(args.out, result)
    print(f"wrote {args.out / 'service_load.json'} and {args.out / 'service_load.md'}")


if __name__ == "__main__":
    main()
