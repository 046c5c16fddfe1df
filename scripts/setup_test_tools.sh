#!/usr/bin/env bash
# Install the tools some tests need beyond the Python venv: headless Chromium for
# the report render test (tests/test_report.py). Safe to run again: it only acts
# when Chromium is missing. Not root: prints the command and exits 0, so the test
# skips (or fails under LCRAG_REQUIRE_CHROMIUM=1) with a clear reason.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "setup_test_tools: chromium already installed ($CHROMIUM)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "setup_test_tools: $CHROMIUM is missing and this is not root; install it with:"
    echo "    sudo apt-get update && sudo apt-get install -y chromium"
    exit 0
fi

echo "setup_test_tools: installing chromium: apt-get update -qq && apt-get install -y -qq chromium"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
echo "setup_test_tools: done ($("$CHROMIUM" --version 2>/dev/null | tail -n 1))"
