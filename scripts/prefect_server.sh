#!/usr/bin/env bash
# A local Prefect server for `lcrag schedule ingest`, with its database and settings in
# lcrag's state folder ($LCRAG_HOME/prefect; .state/prefect in this checkout) and no
# analytics. Runs in the foreground until Ctrl-C; PORT (default 4200) picks the port.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE="${LCRAG_HOME:-$PWD/.state}/prefect"
PORT="${PORT:-4200}"
mkdir -p "$STATE"
export PREFECT_HOME="$STATE" PREFECT_SERVER_ANALYTICS_ENABLED=false
echo "Prefect home: $STATE"
echo "in the shell that runs lcrag schedule ingest:"
echo "  export PREFECT_API_URL=http://127.0.0.1:$PORT/api"
exec .venv/bin/prefect server start --host 127.0.0.1 --port "$PORT"
