#!/usr/bin/env bash
# Install lcrag into .venv on a fresh machine. Safe to run again (it only adds what is missing).
# CPU torch goes in first: anything that depends on torch would otherwise pull the CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' \
  || { echo "lcrag needs Python 3.11 (found $("$PYTHON" --version)); set PYTHON=/path/to/python3.11" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv"
  "$PYTHON" -m venv .venv
fi
# pip, minus the warning some index configurations print for every package looked up
pip_() {
  .venv/bin/python -m pip --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
PIP=(pip_)
"${PIP[@]}" install --quiet --upgrade pip
if ! .venv/bin/python -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
  echo "installing torch 2.13.0 (CPU)"
  "${PIP[@]}" install --quiet "torch==2.13.0"
fi
echo "installing lcrag and its dependencies"
"${PIP[@]}" install --quiet -e ".[test]"
mkdir -p "${LCRAG_HOME:-.state}"
echo "lcrag is installed in .venv (try: .venv/bin/lcrag --help)"
