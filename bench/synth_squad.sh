#!/usr/bin/env bash
# A synthetic evaluation set for a corpus without gold answers (issue: routing that learns
# from the ledger): SQuAD 2.0 dev's articles as plain text files, one index, then
# `lcrag eval --dataset synth:N` (the reader writes N questions and keeps those it answers
# from their passage alone), every strategy on them, the fitted router and the report.
#
#   bash bench/synth_squad.sh [N]          # default N = 50
#
# Resumes by run id (`synth-squad`): the question file is written once and reused, and the
# evaluation answers only what is missing. The article texts and the question file (its
# evidence quotes the articles) stay in the state folder; bench/results/synth-squad/ gets the
# ledger, the acceptance statistics, the router, the report and `questions.jsonl`: the written
# questions with their evidence as offsets only, from which a fresh state folder rebuilds the
# question file (so a stopped run resumes on another machine with the same questions; a
# reader that wrote them again could write others).
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

QUESTIONS="$WORK/eval/synth/synth-squad.jsonl" KEPT="$OUT/questions.jsonl"
keep_questions() {  # the question file without passage text, and its statistics, into the results
  [ -f "$QUESTIONS" ] || return 0
  .venv/bin/python - "$QUESTIONS" "$KEPT" "$OUT/acceptance.json" <<'PY'
import json, sys
from pathlib import Path
questions, kept, acceptance = map(Path, sys.argv[1:])
lines = [json.loads(line) for line in questions.read_text(encoding="utf-8").splitlines() if line.strip()]
for line in lines:
    line["evidence"].pop("text", None)
kept.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
stats = json.loads(questions.with_suffix(".stats.json").read_text())
stats["index"] = "the index of SQuAD 2.0 dev's articles (bench/synth_squad.sh)"
acceptance.write_text(json.dumps(stats, indent=2) + "\n")
PY
}
if [ ! -f "$QUESTIONS" ] && [ -f "$KEPT" ]; then  # a fresh state folder: the same questions, texts from the index
  mkdir -p "$(dirname "$QUESTIONS")"
  .venv/bin/python - "$KEPT" "$QUESTIONS" "$WORK/index" "$OUT/acceptance.json" <<'PY'
import json, sys
from pathlib import Path
from lcrag.pipeline.index.search import IndexReader
from lcrag.retrievers.encoders.encoder import make_encoder
kept, questions, index, acceptance = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
lines = [json.loads(line) for line in Path(kept).read_text(encoding="utf-8").splitlines() if line.strip()]
with IndexReader(index, make_encoder) as corpus:
    documents = corpus.documents(sorted({line["evidence"]["doc_id"] for line in lines}))
for line in lines:
    evidence = line["evidence"]
    evidence["text"] = documents[evidence["doc_id"]].text[evidence["start"]:evidence["end"]]
questions.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
questions.with_suffix(".stats.json").write_text(acceptance.read_text())
print(f"rebuilt {questions} from {kept} ({len(lines)} questions)")
PY
fi
trap keep_questions EXIT  # on every exit, a stopped evaluation included: the questions stay reusable
trap 'exit 143' TERM INT
$LCRAG eval --dataset "synth:$N" --index "$WORK/index" --strategies all --run-id synth-squad --ledger "$LEDGER" \
  --work "$WORK/eval"
$LCRAG route fit --run-id synth-squad --index "$WORK/index" --ledger "$LEDGER" --out "$OUT/router.json"
$LCRAG report --run-id synth-squad --ledger "$LEDGER" --out "$OUT" --title "lcrag: a synthetic set on SQuAD 2.0's articles" --json \
  > "$OUT/verdict.json"
