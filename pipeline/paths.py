"""Where lcrag keeps its state: ``$LCRAG_HOME`` if set, else the project folder.
Relative paths in a config (reader weights, its virtualenv, the ledger) are
resolved against it, so commands work from any working directory."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    home = os.environ.get("LCRAG_HOME")
    return Path(home).expanduser() if home else Path(__file__).resolve().parents[1]


def resolve(path: str | Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else project_root() / path


def default_ledger() -> Path:
    return project_root() / ".state" / "ledger.duckdb"
