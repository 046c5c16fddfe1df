#!/usr/bin/env bash
# Runs where long context can win (issue: long context's fair chance): documents longer than
# the reader's 8K window, where lc must cut the middle and coa reads everything in pieces.
# rag, lc, coa and the closed-book control, with --until-decided (a look after every 20
# questions, alpha spent per look), into a ledger kept beside the results: the same run id
# resumes and re-derives the same looks.
#
#   bash bench/long_context_runs.sh [coursera15|coursera05|agg8k|agg16k|agg32k ...]
#                                   # default: coursera15
#
# coursera15: L-Eval Coursera (15 lecture transcripts of 23-71K characters, four options,
#             one or several right letters) read by Qwen2.5-Coder-1.5B-Instruct (bfloat16);
# coursera05: the same with the 0.5B reader (float32), for the report's per-reader verdicts;
# aggNk:      aggregation needles (two facts at different depths of one haystack) at N K tokens.
# Needs `make setup reader-setup`. Starts the reader each run needs (stopping another).
set -euo pipefail
cd "$(dirname "$0")/.."
export LCRAG_HOME="${LCRAG_HOME:-$PWD/.state}" HF_HUB_OFFLINE=1 COLUMNS="${COLUMNS:-150}"
LCRAG=.venv/bin/lcrag
DATA=../shared/data
OUT=bench/results/long-context
LEDGER=$OUT/ledger.duckdb
STRATEGIES=rag,lc,coa,closed-book
mkdir -p "$OUT"

reader() {  # CONFIG: serve the model the config names (restart when another one is up)
  local model
  model=$(sed -n 's/^  model: *//p' "$1")
  if ! $LCRAG reader status --config "$1" --json 2>/dev/null | grep -q "\"model\": \"$model\""; then
    $LCRAG reader stop >/dev/null 2>&1 || true
    $LCRAG reader start --config "$1"
  fi
}

run() {  # NAME CONFIG DATASET [eval options...]
  local name=$1 config=$2 dataset=$3; shift 3
  echo "== $name: $dataset ($(date -u +%H:%M:%S) UTC)"
  reader "$config"
  $LCRAG eval --dataset "$dataset" --strategies "$STRATEGIES" --run-id "long-$name" --ledger "$LEDGER" \
    --config "$config" --until-decided --round-size 20 "$@"
}

for name in "${@:-coursera15}"; do
  case $name in
    coursera15) run "$name" bench/reader_qwen15.yaml "longdoc:$DATA/leval_mc/coursera.jsonl" --limit 80 ;;
    coursera05) run "$name" bench/reader_qwen05.yaml "longdoc:$DATA/leval_mc/coursera.jsonl" --limit 80 ;;
    *) echo "unknown run $name" >&2; exit 2 ;;
  esac
done
$LCRAG report --ledger "$LEDGER" --out "$OUT" --title "lcrag: runs where long context can win" --json > "$OUT/verdict.json"
