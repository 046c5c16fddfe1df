#!/usr/bin/env bash
# The main job on the embedded default: fetch a public data set, ingest it into a
# persistent index (long units, late chunking, Qdrant local + BM25), search it.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PREFECT_HOME="$PWD/.state/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false
LCRAG=.venv/bin/lcrag
INDEX=.state/indexes/squad2

echo "== 1. data: SQuAD 2.0 dev (35 Wikipedia articles as long documents)"
DATA=$($LCRAG data fetch squad2 --dest .state/data)
echo "$DATA"

echo "== 2. ingest into $INDEX (incremental: a second run does no embedding work)"
$LCRAG ingest "$DATA" --index "$INDEX" --format squad

echo "== 3. search: long units (hybrid), documents (dense), chunks (bm25)"
$LCRAG search "What did the Normans take from the Byzantine Empire?" --index "$INDEX" --level unit -k 3
$LCRAG search "Which university did Nikola Tesla study at?" --index "$INDEX" --level doc --mode dense -k 3
$LCRAG search "oxygen discovered by" --index "$INDEX" --level chunk --mode bm25 -k 3

echo "== done. The index is in $INDEX; try: $LCRAG search 'your question' --index $INDEX"
