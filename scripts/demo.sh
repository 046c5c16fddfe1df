#!/usr/bin/env bash
# The main job on the embedded default: fetch a public data set, ingest it into a
# persistent index (long units, late chunking, Qdrant local + BM25), search it,
# start the local vLLM reader, ask with every strategy side by side, read the
# DuckDB ledger, compare all strategies on HotpotQA questions, write the report.
set -euo pipefail
cd "$(dirname "$0")/.."
export LCRAG_HOME="${LCRAG_HOME:-$PWD/.state}"
export HF_HUB_OFFLINE=1 PREFECT_HOME="$LCRAG_HOME/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false
export COLUMNS="${COLUMNS:-150}"  # readable tables when the output is a log, not a terminal
LCRAG=.venv/bin/lcrag
INDEX=$LCRAG_HOME/indexes/squad2
LEDGER=$LCRAG_HOME/ledger.duckdb

# The reader takes about a minute to start: start it now, in the background, and wait for it at step 4.
$LCRAG reader start --no-wait

echo "== 1. data: SQuAD 2.0 dev (35 Wikipedia articles as long documents)"
DATA=$($LCRAG data fetch squad2 --dest $LCRAG_HOME/data)
echo "$DATA"

echo "== 2. ingest into $INDEX (incremental: a second run does no embedding work)"
$LCRAG ingest "$DATA" --index "$INDEX" --format squad

echo "== 3. search: long units (hybrid), documents (dense), chunks (bm25)"
$LCRAG search "What did the Normans take from the Byzantine Empire?" --index "$INDEX" --level unit -k 3
$LCRAG search "Which university did Nikola Tesla study at?" --index "$INDEX" --level doc --mode dense -k 3

echo "== 4. the reader: vLLM on 127.0.0.1 (reader.model auto: Qwen2.5-Coder-1.5B where the CPU has native bfloat16, else 0.5B; converted from PyPI wheels)"
$LCRAG reader start

echo "== 5. ask with every strategy; each answer becomes a ledger row (a 4K-token budget keeps the cold"
echo "   long-context reads to about 40 s each on 2 CPU cores; the default budget is the 8K window, README)"
$LCRAG ask "In what country is Normandy located?" --index "$INDEX" --strategy all --budget 4096 --ledger "$LEDGER" --run-id demo

echo "== 6. the ledger is plain DuckDB: tokens and time per strategy"
.venv/bin/python - "$LEDGER" <<'PY'
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.sql("""select strategy, route, prompt_tokens, completion_tokens,
                        round(retrieval_ms) as retrieval_ms, round(reading_ms) as reading_ms, context_cut, answer
                 from ledger where run_id = 'demo' order by created_at"""))
PY

echo "== 7. compare: every strategy on the same 5 HotpotQA distractor questions (each with its 10 paragraphs)"
HOTPOT=$($LCRAG data fetch hotpotqa --dest $LCRAG_HOME/data)
$LCRAG eval --dataset "hotpotqa:$HOTPOT" --limit 5 --strategies all --run-id demo-hotpot --ledger "$LEDGER"

echo "== 8. report: a verdict per data set, then quality with 95% intervals, tokens, latency, frontier, router choices"
$LCRAG report --run-id demo-hotpot --ledger "$LEDGER" --out $LCRAG_HOME/reports/demo
sed -n '/^## Verdict/,/^## Summary/p' "$LCRAG_HOME/reports/demo/report.md" | sed '$d'

echo "== done. Index: $INDEX, ledger: $LEDGER, report: $LCRAG_HOME/reports/demo/report.html"
echo "   Stop the reader with: $LCRAG reader stop"
