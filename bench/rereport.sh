#!/usr/bin/env bash
# Regenerate every committed report, verdict and router in bench/results/ from the
# committed ledgers, under the current verdict rule and router fit. No reader needed:
# nothing is answered again. Run after changing the rule; commit what changes.
#
#   bash bench/rereport.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 COLUMNS="${COLUMNS:-200}"
LCRAG=.venv/bin/lcrag
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

closing=bench/results/closing-qwen
cp "$closing/ledger.duckdb" "$TMP/closing.duckdb"  # a copy: reading must never touch the committed file
for name in tpo hotpotqa squad2 needle; do
  echo "== closing $name"
  $LCRAG report --run-id "closing-$name" --ledger "$TMP/closing.duckdb" --out "$closing/$name" \
    --title "lcrag closing run: $name" --json > "$closing/$name/verdict.json"
  $LCRAG route fit --run-id "closing-$name" --ledger "$TMP/closing.duckdb" --out "$closing/$name/router.json" \
    > "$closing/$name/route-fit.txt" 2>&1 || echo "route fit closing-$name: see $closing/$name/route-fit.txt"
done
for pair in "tpo hotpotqa" "hotpotqa tpo"; do
  set -- $pair
  $LCRAG route fit --run-id "closing-$1" --ledger "$TMP/closing.duckdb" --test-run "closing-$2" \
    --out "$closing/$1/router-tested-on-$2.json" > "$closing/$1/route-fit-tested-on-$2.txt" 2>&1 \
    || echo "route fit closing-$1 tested on $2: see $closing/$1/route-fit-tested-on-$2.txt"
done

synth=bench/results/synth-squad
cp "$synth/ledger.duckdb" "$TMP/synth.duckdb"
echo "== synth-squad"
$LCRAG report --run-id synth-squad --ledger "$TMP/synth.duckdb" --out "$synth" \
  --title "lcrag: a synthetic set on SQuAD 2.0's articles" --json > "$synth/verdict.json"
$LCRAG route fit --run-id synth-squad --ledger "$TMP/synth.duckdb" --out "$synth/router.json" \
  > "$synth/route-fit.txt" 2>&1 || echo "route fit synth-squad: see $synth/route-fit.txt"
