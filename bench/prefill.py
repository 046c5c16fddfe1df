"""Prefill time against prompt length on the running reader.

The context budget is a trade of reading cost against what fits; on CPU the
cost of a prompt is its prefill, and prefill slows as the prompt grows
(attention is quadratic in it). This sends prompts of growing length, each with
fresh text (a nonce first, so the prefix cache cannot serve it), asks for one
reply token, and records the server's own prompt-token count and the wall time.
Each length is then sent a second time, unchanged, to show what the prefix cache
saves when several questions share one document.

Needs the reader of the config (`lcrag reader start`) and nothing else running:
any other load on the 2 cores slows prefill several times. Writes
``prefill.json`` and ``prefill.md`` to ``--out``.

    python bench/prefill.py [--lengths 512,1024,2048,4096,6144,7680] [--repeats 1] [--config FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lcrag.core.paths import state_home  # noqa: E402

WORDS = ["river", "market", "winter", "signal", "harbor", "lantern", "orchard", "meadow", "engine",
         "copper", "valley", "theory", "museum", "garden", "journal", "circuit", "planet", "violin", "ladder", "canyon", "pepper", "bridge", "forest",
         "anchor", "castle", "rocket", "pencil", "island", "window", "mirror",
         "thunder", "velvet", "marble", "silver", "candle", "desert", "harvest", "compass"]


def filler(tokens: int, seed: int) -> str:
    """About ``tokens`` reader tokens of plain sentences (one common word is one token or two)."""
    rng = random.Random(seed)
    words = []
    while len(words) < tokens * 0.8:
        words.extend(rng.choice(WORDS) for _ in range(12))
        words[-1] += "."
    return " ".join(words)


def measure(reader, target: int, seed: int):
    from lcrag.readers.base import Passage, Prompt

    text = f"Document {seed}-{time.time_ns()}. " + filler(target, seed)
    prompt = Prompt(question="Which word comes first in the document?", passages=(Passage("doc", "doc", 0, len(text), text),), max_tokens=1)
    rows = []
    for attempt in ("cold", "cached"):
        started = time.perf_counter()
        answer = reader.read(prompt)
        seconds = time.perf_counter() - started
        rows.append({
            "target_tokens": target,
            "attempt": attempt,
            "prompt_tokens": answer.prompt_tokens,
            "cached_tokens": answer.cached_prompt_tokens,
            "seconds": round(seconds, 2),
            "tokens_per_s": round(answer.prompt_tokens / seconds, 1),
        })
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| prompt tokens | cold s | cold tokens/s | cached s | cached tokens (server) |",
        "|---:|---:|---:|---:|---:|",
    ]
    cold = [r for r in rows if r["attempt"] == "cold"]
    cached = {r["target_tokens"]: r for r in rows if r["attempt"] == "cached"}
    for row in cold:
        again = cached.get(row["target_tokens"], {})
        lines.append(
            f"| {row['prompt_tokens']} | {row['seconds']:.1f} | {row['tokens_per_s']:.0f} | "
            f"{again.get('seconds', float('nan')):.1f} | {again.get('cached_tokens')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="512,1024,2048,3072,4096,6144,7680",
                        help="prompt lengths to try, in reader tokens (comma-separated)")
    parser.add_argument("--repeats", type=int, default=1, help="fresh prompts per length")
    parser.add_argument("--config", default=None, help="lcrag config file (default: the packaged one)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for prefill.json/.md")
    args = parser.parse_args(argv)

    from lcrag.pipeline.config import load_config
    from lcrag.readers.vllm import VLLMReader

    config = load_config(args.config)
    reader = VLLMReader(config.reader, state_home())
    if not reader.healthy():
        print(f"no reader {config.reader.model} answers at {config.reader.url}: run `lcrag reader start`", file=sys.stderr)
        return 2
    lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    rows: list[dict] = []
    for target in lengths:
        if target + 64 > config.reader.max_model_len:
            print(f"skip {target}: over reader.max_model_len {config.reader.max_model_len}")
            continue
        for repeat in range(args.repeats):
            got = measure(reader, target, seed=target * 100 + repeat)
            rows.extend(got)
            print(f"{got[0]['prompt_tokens']:>6} tokens  cold {got[0]['seconds']:7.1f} s "
                  f"({got[0]['tokens_per_s']:.0f} tok/s)  cached {got[1]['seconds']:6.1f} s", flush=True)
    reader.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "model": config.reader.model,
        "max_model_len": config.reader.max_model_len,
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "rows": rows,
    }
    (out / "prefill.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "prefill.md").write_text(
        f"# Prefill time against prompt length ({config.reader.model})\n\n"
        "One reply token; cold = fresh text, cached = the same prompt again (vLLM prefix cache).\n\n"
        + table(rows) + "\n"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
