"""Replay the sequential verdict (``lcrag eval --until-decided``) over the committed
closing ledgers: how many questions and reader calls the rule would have needed, and
whether it lands where the verdict on every question does.

Every run of ``closing-qwen/ledger.duckdb`` and of ``synth-squad/ledger.duckdb`` is
replayed by ``lcrag.pipeline.evaluation.sequential.replay``: questions in the order they
were first answered, a look after every ``--round-size`` questions (20), each look
tested at its share of the verdict's alpha (alpha spending, union bound), stopping at
the first look that is resolved or futile. The full-data verdict is the verdict on all
the run's questions at the full alpha in one look. A reader call is a ledger row (one
question answered by one strategy).

The committed ledgers are never opened in place: each is copied (with any segments
beside it) to a temporary folder first, since opening a ledger whose schema is behind
would migrate it.

    python bench/sequential_replay.py                    # bench/results/sequential-replay.{json,md}
    python bench/sequential_replay.py --round-size 10    # sequential-replay-r10.{json,md}
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
LEDGERS = (RESULTS / "closing-qwen" / "ledger.duckdb", RESULTS / "synth-squad" / "ledger.duckdb")
ROUND_SIZE = 20


def read_rows(path: Path) -> list:
    """Every ledger row of ``path``, read from a temporary copy (the file is never opened)."""
    from lcrag.pipeline.ledger import Ledger

    with tempfile.TemporaryDirectory(prefix="sequential-replay-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copy2(path, copy)
        segments = path.with_name(path.name + ".segments")
        if segments.is_dir():
            shutil.copytree(segments, copy.with_name(copy.name + ".segments"))
        return Ledger(copy).rows()


def verdict_takes_settings() -> bool:
    from lcrag.pipeline.statistics import verdict

    return hasattr(verdict, "VerdictSettings") and "settings" in inspect.signature(verdict.verdicts).parameters


def replay_ledgers(ledgers, round_size: int, settings=None, decide=None, max_questions: int | None = None) -> list[dict]:
    """One record per (ledger, run, data set): ``ReplayOutcome.as_dict`` plus the ledger."""
    from lcrag.pipeline.evaluation.sequential import replay

    records = []
    for path in ledgers:
        rows = read_rows(Path(path))
        for outcome in replay(rows, round_size=round_size, max_questions=max_questions, settings=settings,
                              decide=decide):
            records.append({"ledger": _shown(Path(path)), **outcome.as_dict()})
    return records


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _verdict(use, status: str, stop: str | None = None) -> str:
    text = f"use {', '.join(use)}" if use else status.replace("_", " ")
    return f"{text} (futile)" if stop == "futile" else text


def markdown(records: list[dict], round_size: int, settings: dict) -> str:
    """A table with a line per data set (per part where the verdict comes in parts), the
    totals, then each verdict's sentence at the stop and on the full data."""
    lines = [
        "# Sequential verdict, replayed on the committed ledgers",
        "",
        f"`bench/sequential_replay.py --round-size {round_size}`: a look after every {round_size} questions (in the "
        "order they were first answered), each look tested at its share of alpha "
        f"{settings.get('alpha')} (alpha spending alpha*t^3, union bound); stop at the first look where every verdict "
        "is resolved or futile. Full data: the verdict on every question at the full alpha, one look. "
        "Calls are ledger rows (one question answered by one strategy). SQuAD 2.0's answerable and unanswerable "
        "questions are judged apart and stop together.",
        "",
        "| data set | run | questions used / available | looks | calls used / available | calls saved | "
        "stopped | sequential verdict | full-data verdict | agree |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        for p in r["parts"]:
            lines.append(
                f"| {p['name']} | {r['run_id']} | {r['questions_used']} / {r['questions_available']} | "
                f"{r['looks_taken']} | {r['calls_used']} / {r['calls_available']} | {r['calls_saved']:.0%} | "
                f"{r['stop_reason']} | {_verdict(p['use'], p['status'], p['stop'])} | "
                f"{_verdict(p['full_use'], p['full_status'])} | {'yes' if p['agree'] else 'no'} |")
    used = sum(r["calls_used"] for r in records)
    available = sum(r["calls_available"] for r in records)
    if available:
        parts = [p for r in records for p in r["parts"]]
        lines += ["", f"All runs: {used:,} of {available:,} calls ({1 - used / available:.0%} saved); "
                      f"{sum(p['agree'] for p in parts)} of {len(parts)} verdicts agree with the full-data verdict."]
    lines += ["", "## Sentences", ""]
    for r in records:
        for p in r["parts"]:
            lines.append(f"- **{p['name']}** ({r['run_id']}), after {r['questions_used']} questions: {p['sentence']}")
            lines.append(f"  - all {r['questions_available']} questions: {p['full_sentence']}")
    return "\n".join(lines) + "\n"


def write(records: list[dict], round_size: int, settings, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = "sequential-replay" if round_size == ROUND_SIZE else f"sequential-replay-r{round_size}"
    shown = asdict(settings) if settings is not None and hasattr(settings, "__dataclass_fields__") else {}
    payload = {"round_size": round_size, "settings": shown, "ledgers": sorted({r["ledger"] for r in records}),
               "outcomes": records}
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(markdown(records, round_size, shown), encoding="utf-8")
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-size", type=int, default=ROUND_SIZE, help="questions between two looks (20)")
    parser.add_argument("--max-questions", type=int, default=None, help="cap the questions of each run (N)")
    parser.add_argument("--ledger", type=Path, action="append", help="ledger files (default: the committed two)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and Markdown files")
    args = parser.parse_args(argv)
    if not verdict_takes_settings():
        print("lcrag.pipeline.statistics.verdict.verdicts does not take settings= yet (VerdictSettings); "
              "the replay needs the sequential verdict API", file=sys.stderr)
        return 2
    from lcrag.pipeline.statistics.verdict import VerdictSettings

    settings = VerdictSettings()
    ledgers = [p for p in (args.ledger or LEDGERS) if Path(p).is_file()]
    records = replay_ledgers(ledgers, args.round_size, settings, max_questions=args.max_questions)
    for path in write(records, args.round_size, settings, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
