"""Load test of the OpenAI-compatible chat API (``POST /v1/chat/completions``,
``GET /v1/models``) of ``lcrag serve``, on 127.0.0.1.

Ingests the first ``--docs`` SciFact documents into a temporary index and serves
the API (uvicorn, the server ``lcrag serve`` runs) on a background thread of
this process with a paced fake reader: each read takes ``--read-delay-ms``
before its first word (the reader's prefill) and ``--piece-delay-ms`` per word
after it (``--answer-words`` words), whether it is streamed or read whole, so a
plain and a streamed completion cost the reader the same time. No vLLM reader
is started or used. Two parts:

* time to first token: with the ``openai`` client, for each model of
  ``--models`` (``lcrag-rag``, ``lcrag-lc``), one streamed and one plain
  completion, after a warm-up one: time to the first content token, total time
  and their ratio (a streamed reply's first word arrives while the reader is
  still writing: well below 1 when the reply has several pieces);
* load above the caps: for each client count of ``--clients`` (1, 8, 32, 128),
  that many clients, all at once or with their starts spread evenly over each
  value of ``--spread-ms`` (0, 500), each sending one chat completion (every other one
  streamed, models alternating) with a ``--timeout-s`` client timeout, against
  small caps: ``--max-in-flight`` questions answered at once, ``--max-queued``
  waiting (more: 429) and ``--max-connections`` connections (more: 503).
  Counts statuses, timeouts (must be 0), other 5xx (must be 0) and streamed 200s
  that did not end with ``[DONE]`` (must be 0); p50/p95 latency per status; a
  refused request (429, 503) must come at once: its latency well below one read.

The load generator shares this process (and its GIL) with the server; the
reader's time is sleep, so it costs no CPU. Writes ``chat_load.json`` and
``chat_load.md`` to ``--out``.

    python bench/chat_load.py [--clients 1,8,32,128] [--max-in-flight 4] [--max-connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from service_load import build_index, load_questions  # noqa: E402  (the same SciFact subset and queries)

from lcrag.readers.fake import FakeReader  # noqa: E402

KEY = "bench-chat-key"
CHAT = "/v1/chat/completions"
REFUSED = (429, 503)
TIMEOUT = "timeout"  # the client gave up: no complete answer within --timeout-s
NO_ANSWER = "error"  # no HTTP answer at all (connection refused or reset)
PIECE = re.compile(r"\s*\S+\s*$|\s*\S+")  # how FakeReader.stream cuts a reply: a word with the blanks before it


class PacedReader(FakeReader):
    """The fake reader at a model's pace: ``read_delay_s`` before the first word,
    then ``piece_delay_s`` per word, streamed (``stream``) or read whole (``read``
    sleeps the sum). The time is sleep: it costs no CPU."""

    def __init__(self, read_delay_s: float, piece_delay_s: float, answer_words: int) -> None:
        super().__init__(answer_words=answer_words, piece_delay_s=piece_delay_s)
        self.read_delay_s = read_delay_s

    def _reply(self, prompt):
        answer = super().read(prompt)
        self.calls.clear()  # nobody inspects them here; a long run would keep every prompt
        return answer

    @staticmethod
    def pieces_of(text: str) -> list[str]:
        return PIECE.findall(text)

    def read(self, prompt):
        answer = self._reply(prompt)
        seconds = self.read_delay_s + self.piece_delay_s * len(self.pieces_of(answer.text))
        time.sleep(seconds)
        return replace(answer, latency_ms=seconds * 1000)

    def _pieces(self, prompt):
        answer = self._reply(prompt)
        time.sleep(self.read_delay_s)
        for piece in self.pieces_of(answer.text):
            time.sleep(self.piece_delay_s)
            yield piece
        return replace(answer, latency_ms=(self.read_delay_s + self.piece_delay_s * len(self.pieces_of(answer.text))) * 1000)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))], 1)


# ------------------------------------------------- part 1: time to first token


def time_to_first_token(url: str, models: list[str], questions: list[str], timeout_s: float) -> list[dict]:
    """Per model: a warm-up plain completion, then one streamed and one plain, with the openai client."""
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=timeout_s)
    offered = [m.id for m in client.models.list()]
    rows = []
    for number, model in enumerate(models):
        if model not in offered:
            raise SystemExit(f"{model} is not among the served models {offered}")
        messages = [{"role": "user", "content": questions[number % len(questions)]}]
        client.chat.completions.create(model=model, messages=messages)  # warm the path
        started = time.perf_counter()
        first, pieces = None, []
        for part in client.chat.completions.create(model=model, messages=messages, stream=True):
            if part.choices and part.choices[0].delta.content:
                if first is None:
                    first = time.perf_counter() - started
                pieces.append(part.choices[0].delta.content)
        stream_total = time.perf_counter() - started
        started = time.perf_counter()
        plain = client.chat.completions.create(model=model, messages=messages)
        plain_total = time.perf_counter() - started
        streamed_text = "".join(pieces)
        rows.append({
            "model": model,
            "stream_ttft_ms": round(first * 1000, 1) if first is not None else None,
            "stream_total_ms": round(stream_total * 1000, 1),
            "ttft_over_total": round(first / stream_total, 3) if first is not None else None,
            "stream_content_chunks": len(pieces),
            "plain_total_ms": round(plain_total * 1000, 1),  # a plain reply's first token comes with its last
            "ttft_over_plain_total": round(first / plain_total, 3) if first is not None else None,
            "same_reply": streamed_text == plain.choices[0].message.content,
        })
    client.close()
    return rows


# ------------------------------------------------------ part 2: above the caps


async def one_client(client, model: str, question: str, stream: bool, timeout_s: float, delay_s: float = 0.0) -> dict:
    """One chat completion; its status (or TIMEOUT / NO_ANSWER), latency to the whole answer, and for a
    streamed 200 its time to the first content and whether it ended with [DONE]."""
    import httpx

    body = {"model": model, "messages": [{"role": "user", "content": question}], "stream": stream}
    if delay_s:
        await asyncio.sleep(delay_s)
    started = time.perf_counter()
    out: dict = {"stream": stream, "ttft_ms": None, "complete": None}

    async def send() -> None:
        if not stream:
            response = await client.post(CHAT, json=body)
            out["status"] = response.status_code
            out["retry_after"] = response.headers.get("retry-after")
            return
        async with client.stream("POST", CHAT, json=body) as response:
            out["status"] = response.status_code
            out["retry_after"] = response.headers.get("retry-after")
            last = None
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                last = line[len("data: "):]
                if out["ttft_ms"] is None and last != "[DONE]":
                    choices = json.loads(last).get("choices") or []
                    if choices and choices[0].get("delta", {}).get("content"):
                        out["ttft_ms"] = (time.perf_counter() - started) * 1000
            if response.status_code == 200:
                out["complete"] = last == "[DONE]"

    try:
        await asyncio.wait_for(send(), timeout_s)  # the whole answer, however slowly it trickles
    except (TimeoutError, httpx.TimeoutException):
        out["status"] = TIMEOUT
    except httpx.HTTPError:
        out["status"] = NO_ANSWER
    out["ms"] = (time.perf_counter() - started) * 1000
    return out


async def burst(url: str, clients: int, models: list[str], questions: list[str], timeout_s: float,
                spread_s: float = 0.0) -> list[dict]:
    """``clients`` clients, one request each, from one httpx pool of up to ``clients``
    connections: all at once (``spread_s`` 0: one connection each), or their starts
    spread evenly over ``spread_s`` (a later client may reuse the kept-alive
    connection of one already answered, as a client library's pool does)."""
    import httpx

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits,
                                 headers={"Authorization": f"Bearer {KEY}"}) as client:
        return await asyncio.gather(*(
            one_client(client, models[i % len(models)], questions[i % len(questions)], i % 2 == 1, timeout_s,
                       spread_s * i / clients)
            for i in range(clients)
        ))


def summarize_burst(clients: int, spread_s: float, results: list[dict], seconds: float, read_ms: float) -> dict:
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    by_status = {}
    for status in sorted(statuses):
        ms = [r["ms"] for r in results if str(r["status"]) == status]
        by_status[status] = {"n": len(ms), "p50_ms": percentile(ms, 0.5), "p95_ms": percentile(ms, 0.95),
                             "max_ms": round(max(ms), 1)}
    refused = [r["ms"] for r in results if r["status"] in REFUSED]
    streamed_ok = [r for r in results if r["status"] == 200 and r["stream"]]
    unexpected_5xx = sum(1 for r in results if isinstance(r["status"], int) and r["status"] >= 500 and r["status"] != 503)
    return {
        "clients": clients,
        "spread_ms": round(spread_s * 1000),
        "seconds": round(seconds, 2),
        "statuses": statuses,
        "latency_by_status": by_status,
        "timeouts": statuses.get(TIMEOUT, 0),
        "no_answer": statuses.get(NO_ANSWER, 0),
        "unexpected_5xx": unexpected_5xx,
        "other_statuses": sum(n for s, n in statuses.items() if s not in ("200", "429", "503")),
        "refused": len(refused),
        "refused_max_ms": round(max(refused), 1) if refused else None,
        "refused_without_retry_after": sum(1 for r in results if r["status"] in REFUSED and not r.get("retry_after")),
        # at once: every refusal came in well under one read (read delay, before any word)
        "refused_at_once": (max(refused) < read_ms) if refused else None,
        "streamed_ok": len(streamed_ok),
        "streamed_incomplete": sum(1 for r in streamed_ok if not r["complete"]),
        "streamed_ttft_p50_ms": percentile([r["ttft_ms"] for r in streamed_ok if r["ttft_ms"] is not None], 0.5),
    }


# ------------------------------------------------------------------ the core


def run_bench(live, questions: list[str], ledger_path: Path, *, models=("lcrag-rag", "lcrag-lc"),
              clients=(1, 8, 32, 128), spreads=(0.0,), read_delay_s: float = 0.5, piece_delay_s: float = 0.1,
              answer_words: int = 20, max_in_flight: int = 4, max_queued: int = 4, max_connections: int = 16,
              retry_after_s: int = 2, timeout_s: float = 60.0, ttft: bool = True, log=print) -> dict:
    """Both parts against one server over ``live`` (a LiveIndex); the result (settings, ttft, load)."""
    from lcrag.app.service import create_app
    from lcrag.app.service.server import background_server
    from lcrag.pipeline.config import ServiceConfig, config_from_dict
    from lcrag.pipeline.ledger import Ledger

    models = list(models)
    reader = PacedReader(read_delay_s, piece_delay_s, answer_words)
    config = config_from_dict({"reader": {"backend": "fake"}})
    service = ServiceConfig(api_key=KEY, max_in_flight=max_in_flight, max_queued=max_queued,
                            max_connections=max_connections, retry_after_s=retry_after_s)
    app = create_app(live, reader, Ledger(ledger_path), config, service)
    result: dict = {
        "settings": {
            "models": models, "read_delay_ms": read_delay_s * 1000, "piece_delay_ms": piece_delay_s * 1000,
            "answer_words": answer_words, "max_in_flight": max_in_flight, "max_queued": max_queued,
            "max_connections": max_connections, "retry_after_s": retry_after_s, "client_timeout_s": timeout_s,
        },
        "ttft": [],
        "load": [],
    }
    with background_server(app, max_connections=max_connections, retry_after_s=retry_after_s) as url:
        if ttft:
            result["ttft"] = time_to_first_token(url, models, questions, timeout_s)
            for row in result["ttft"]:
                log(json.dumps(row))
        for spread in spreads:
            for count in clients:
                time.sleep(0.2)  # the previous burst's connections are closed and its slots given back
                started = time.perf_counter()
                results = asyncio.run(burst(url, count, models, questions, timeout_s, spread))
                row = summarize_burst(count, spread, results, time.perf_counter() - started, read_delay_s * 1000)
                log(json.dumps(row))
                result["load"].append(row)
    return result


# ------------------------------------------------------------------- output


def _ms(value) -> str:
    return "" if value is None else f"{value:g}"


def write_results(out: Path, result: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "chat_load.json").write_text(json.dumps(result, indent=2) + "\n")
    s = result["settings"]
    lines = [
        "# Chat API load (POST /v1/chat/completions on 127.0.0.1, paced fake reader)",
        "",
        f"Index: first {s['docs']} SciFact documents; questions: SciFact claims. Reader: the fake reader paced like a "
        f"model, {s['read_delay_ms']:g} ms before its first word then {s['piece_delay_ms']:g} ms per word "
        f"({s['answer_words']} words at most), streamed or read whole alike. Caps: {s['max_in_flight']} in flight, "
        f"{s['max_queued']} queued (more: 429), {s['max_connections']} connections (more: 503), Retry-After "
        f"{s['retry_after_s']} s. Server and load generator share one process. {result['machine']}.",
        "",
        "## Time to first token (openai client, one request at a time)",
        "",
        "| model | streamed: first token ms | streamed: total ms | first / total | content chunks "
        "| plain: total ms | first token / plain total | same reply |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["ttft"]:
        lines.append(
            f"| {row['model']} | {_ms(row['stream_ttft_ms'])} | {_ms(row['stream_total_ms'])} | {_ms(row['ttft_over_total'])} "
            f"| {row['stream_content_chunks']} | {_ms(row['plain_total_ms'])} | {_ms(row['ttft_over_plain_total'])} "
            f"| {'yes' if row['same_reply'] else 'no'} |"
        )
    lines += [
        "",
        "## Above the caps (N clients, one request each, every other one streamed)",
        "",
        f"Client timeout {s['client_timeout_s']:g} s. Latency is to the whole answer (the last byte of a stream). "
        "Spread 0: every client connects at once; the connection cap counts the connections open when a request "
        "arrives, so a burst above it can be refused whole (503) before any request is answered. Spread: the "
        "clients share one connection pool, so a later client may reuse the connection of one already refused.",
        "",
        "| clients | starts spread over ms | 200 | 429 | 503 | timeouts | other 5xx | streams cut short "
        "| 200 p50 / p95 ms | 429 p50 / p95 ms | 503 p50 / p95 ms | slowest refusal ms | streamed first token p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["load"]:
        lat = row["latency_by_status"]

        def pair(status: str, lat: dict = lat) -> str:
            got = lat.get(status)
            return f"{_ms(got['p50_ms'])} / {_ms(got['p95_ms'])}" if got else ""

        st = row["statuses"]
        lines.append(
            f"| {row['clients']} | {row['spread_ms']} | {st.get('200', 0)} | {st.get('429', 0)} | {st.get('503', 0)} | {row['timeouts']} "
            f"| {row['unexpected_5xx']} | {row['streamed_incomplete']} | {pair('200')} | {pair('429')} | {pair('503')} "
            f"| {_ms(row['refused_max_ms'])} | {_ms(row['streamed_ttft_p50_ms'])} |"
        )
    (out / "chat_load.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--docs", type=int, default=50, help="SciFact documents to index")
    parser.add_argument("--models", default="lcrag-rag,lcrag-lc")
    parser.add_argument("--clients", default="1,8,32,128", help="client counts of the load part")
    parser.add_argument("--spread-ms", default="0,500",
                        help="the load part runs once per value: clients' starts spread evenly over that many ms (0: all at once)")
    parser.add_argument("--read-delay-ms", type=float, default=500.0, help="the reader's time before its first word")
    parser.add_argument("--piece-delay-ms", type=float, default=100.0, help="the reader's time per word after it")
    parser.add_argument("--answer-words", type=int, default=20)
    parser.add_argument("--max-in-flight", type=int, default=4)
    parser.add_argument("--max-queued", type=int, default=4)
    parser.add_argument("--max-connections", type=int, default=16)
    parser.add_argument("--retry-after-s", type=int, default=2)
    parser.add_argument("--timeout-s", type=float, default=60.0, help="each client's timeout")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if not (args.data / "corpus.jsonl").is_file():
        raise SystemExit(f"no SciFact at {args.data}; pass --data FOLDER (BEIR layout)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lcrag.pipeline.index.live import LiveIndex
    from lcrag.retrievers.encoders.encoder import make_encoder

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="lcrag-chat-load-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        index = build_index(args.data, args.docs, work)
        print(f"indexed {args.docs} documents in {time.perf_counter() - started:.1f} s", flush=True)
        questions = load_questions(args.data, limit=500)
        with LiveIndex(index, make_encoder) as live:
            with live.acquire() as generation:
                generation.corpus.search("warm up", k=1)
            result = run_bench(
                live, questions, work / "ledger.duckdb", models=args.models.split(","),
                clients=[int(c) for c in args.clients.split(",")],
                spreads=[float(v) / 1000 for v in args.spread_ms.split(",")], read_delay_s=args.read_delay_ms / 1000,
                piece_delay_s=args.piece_delay_ms / 1000, answer_words=args.answer_words,
                max_in_flight=args.max_in_flight, max_queued=args.max_queued, max_connections=args.max_connections,
                retry_after_s=args.retry_after_s, timeout_s=args.timeout_s,
                log=lambda line: print(line, flush=True),
            )
    result["settings"]["docs"] = args.docs
    result = {"machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
                         f"load average {load_before:.1f} at start", **result}
    write_results(args.out, result)
    print(f"wrote {args.out / 'chat_load.json'} and {args.out / 'chat_load.md'}")
    return result


if __name__ == "__main__":
    main()
