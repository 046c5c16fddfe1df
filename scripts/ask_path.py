"""Which project files one ``lcrag ask`` passes through, from the command line to its
ledger row: builds a two-document index in a temporary folder, then runs
``lcrag ask --strategy STRATEGY`` in this process under a profiler and lists every
project file in which a function ran during the ask (module bodies run at import are
not counted: importing is not passing through).

    python scripts/ask_path.py                    # the fake reader: no server needed
    python scripts/ask_path.py --reader vllm      # the configured vLLM reader (lcrag reader start)
    python scripts/ask_path.py --strategy rag --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "core", "flows", "pipeline", "readers", "retrievers", "testing")
DOCUMENTS = {
    "lyon.md": "# Lyon\n\nLyon is a city in France on the Rhone and the Saone. It is known for its cuisine.\n",
    "kyoto.md": "# Kyoto\n\nKyoto was the capital of Japan for more than a thousand years. It has many temples.\n",
}


def project_file(filename: str) -> str | None:
    try:
        relative = Path(filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    return str(relative) if relative.parts and relative.parts[0] in PACKAGES else None


def traced_files(run) -> list[str]:
    """Project files in which a function (not a module body) was called while ``run`` ran."""
    seen: dict[str, None] = {}

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_name != "<module>":
            name = project_file(frame.f_code.co_filename)
            if name is not None:
                seen.setdefault(name)

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return list(seen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategy", default="auto", help="the strategy lcrag ask uses (default: auto)")
    parser.add_argument("--reader", default="fake", choices=("fake", "vllm"), help="the reader backend (default: fake)")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    args = parser.parse_args(argv)

    from typer.testing import CliRunner

    from lcrag.app.cli.app import app

    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "docs").mkdir()
        for name, text in DOCUMENTS.items():
            (tmp / "docs" / name).write_text(text, encoding="utf-8")
        config = tmp / "config.yaml"
        config.write_text(f"reader:\n  backend: {args.reader}\n", encoding="utf-8")
        built = runner.invoke(app, ["ingest", str(tmp / "docs"), "--index", str(tmp / "index"), "--config", str(config)])
        if built.exit_code != 0:
            print(built.output, file=sys.stderr)
            return 1
        ask = ["ask", "Which city was the capital of Japan?", "--index", str(tmp / "index"), "--strategy", args.strategy,
               "--config", str(config), "--ledger", str(tmp / "ledger.duckdb")]
        runner.invoke(app, ask)  # a first run imports everything; the traced run below passes through
        result: dict = {}

        def run() -> None:
            result["out"] = runner.invoke(app, ask)

        files = traced_files(run)
        if result["out"].exit_code != 0:
            print(result["out"].output, file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps({"strategy": args.strategy, "reader": args.reader, "files": files, "count": len(files)}, indent=2))
    else:
        print("\n".join(files))
        print(f"{len(files)} project files on the path of one `lcrag ask --strategy {args.strategy}` ({args.reader} reader)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
