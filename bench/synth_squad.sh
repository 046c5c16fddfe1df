#!/usr/bin/env bash
# A synthetic evaluation set for a corpus without gold answers (issue: routing that learns
# from the ledger): SQuAD 2.0 dev's articles as plain text files, one index, then
# `lcrag eval --dataset synth:N` (the reader writes N questions and keeps those it answers
# from their passage alone), every strategy on them, the fitted router and the report.
#
#   bash bench/synth_squad.sh [N]          # default N = 50
#
# Resumes by run id (`synth-squad`): the question file is written once and reused, and the
# evaluation answers only what is missing. The article texts and the written questions (which
# quote the articles) stay in the state folder; bench/results/synth-squad/ gets the ledger,
# the acceptance statistics, the router and the report.
set -euo pipefail
cd "$(dirname "$0")/.."
export LCRAG_HOME="${LCRAG_HOME:-$PWD/.state}" HF_HUB_OFFLINE=1 COLUMNS="${COLUMNS:-150}"
LCRAG=.venv/bin/lcrag
N="${1:-50}"
DATA=../shared/data/squad_v2_dev/dev-v2.0.json
WORK="$LCRAG_HOME/bench/synth-squad"
OUT=bench/results/synth-squad
LEDGER=$OUT/ledger.duckdb
mkdir -p "$WORK/articles" "$OUT"

.venv/bin/python - "$DATA" "$WORK/articles" <<'PY'
import json, re, sys
from pathlib import Path
payload, folder = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
for number, article in enumerate(payload["data"]):
    name = re.sub(r"[^A-Za-z0-9]+", "_", article["title"])[:60]
    text = "\n\n".join(p["context"] for p in article["paragraphs"])
    path = folder / f"{number:03d}-{name}.md"
    if not path.exists():
        path.write_text(f"# {article['title'].replace('_', ' ')}\n\n{text}\n", encoding="utf-8")
print(f"{len(payload['data'])} articles in {folder}")
PY

$LCRAG reader status >/dev/null 2>&1 || $LCRAG reader start --config bench/closing_reader.yaml  # float32, as the closing runs
$LCRAG ingest "$WORK/articles" --index "$WORK/index"
$LCRAG eval --dataset "synth:$N" --index "$WORK/index" --strategies all --run-id synth-squad --ledger "$LEDGER" \
  --work "$WORK/eval"
cp "$WORK/eval/synth/synth-squad.stats.json" "$OUT/acceptance.json"
$LCRAG route fit --run-id synth-squad --index "$WORK/index" --ledger "$LEDGER" --out "$OUT/router.json"
$LCRAG report --run-id synth-squad --ledger "$LEDGER" --out "$OUT" --title "lcrag: a synthetic set on SQuAD 2.0's articles" --json \
  > "$OUT/verdict.json"
