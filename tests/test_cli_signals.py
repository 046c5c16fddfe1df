"""A kill stops a command the way Ctrl-C does (exit 130, its cleanup run, what it recorded kept),
not on the spot: runs in the background, where the shell ignores Ctrl-C, are stopped so."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

# a command that says it is ready, then works until stopped; its cleanup leaves a mark
SCRIPT = textwrap.dedent("""
    import sys, time
    from lcrag.app.cli import app as cli

    def busy() -> None:
        print("ready", flush=True)
        try:
            time.sleep(60)
        finally:
            print("cleaned up", flush=True)

    cli.app.command("busy")(busy)
    sys.argv = ["lcrag", "busy"]
    cli.main()
""")


def test_sigterm_stops_a_command_like_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err  # Ctrl-C's code; Python's own on SIGTERM is -15, with no cleanup
    assert "cleaned up" in out
