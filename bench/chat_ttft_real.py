"""Time to first token through the OpenAI-compatible endpoint with the real reader.

`bench/chat_load.py` measures the endpoint with a paced fake reader; this serves the same
app over the local vLLM reader (`lcrag reader start`; the default config's reader) and a
small SciFact index, and times one streamed and one plain completion per model with the
`openai` client. Writes bench/results/chat_ttft_real.json and .md.

    python bench/chat_ttft_real.py [--models lcrag-rag,lcrag-lc] [--docs 50]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat_load import KEY, ROOT, time_to_first_token
from service_load import build_index, load_questions


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--models", default="lcrag-rag,lcrag-lc")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from lcrag.app.service import create_app
    from lcrag.app.service.server import background_server
    from lcrag.core.paths import state_home
    from lcrag.pipeline.config import ServiceConfig, load_config
    from lcrag.pipeline.index.live import LiveIndex
    from lcrag.pipeline.ledger import Ledger
    from lcrag.readers import connect_reader
    from lcrag.retrievers.encoders.encoder import make_encoder

    config = load_config(None)
    reader = connect_reader(config.reader, state_home())
    with tempfile.TemporaryDirectory(prefix="lcrag-chat-ttft-") as tmp:
        work = Path(tmp)
        index = build_index(args.data, args.docs, work)
        questions = load_questions(args.data, limit=500)
        with LiveIndex(index, make_encoder) as live:
            app = create_app(live, reader, Ledger(work / "ledger.duckdb"), config, ServiceConfig(api_key=KEY))
            with background_server(app) as url:
                rows = time_to_first_token(url, args.models.split(","), questions, timeout_s=600.0)
    result = {"reader": config.reader.model, "dtype": config.reader.dtype, "rows": rows,
              "machine": f"{os.cpu_count()} cores"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chat_ttft_real.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Time to first token, real reader", "",
             f"Reader {config.reader.model} (dtype {config.reader.dtype}) on {result['machine']}; one streamed and one "
             "plain completion per model after a warm-up, with the `openai` client.", "",
             "| model | first token (ms) | streamed total (ms) | ratio | plain total (ms) |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        ratio = row["stream_ttft_ms"] / row["stream_total_ms"] if row.get("stream_ttft_ms") and row.get("stream_total_ms") else None
        lines.append(f"| {row['model']} | {row.get('stream_ttft_ms')} | {row.get('stream_total_ms')} | "
                     f"{'' if ratio is None else f'{ratio:.2f}'} | {row.get('plain_total_ms')} |")
    (args.out / "chat_ttft_real.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
