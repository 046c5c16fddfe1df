"""Where lcrag keeps its state: ``$LCRAG_HOME`` if set, else the project folder.
Relative paths in a config (reader weights, its virtualenv, the ledger) are
read against it, so commands work from any working directory."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    home = os.environ.get("LCRAG_HOME")
    return Path(home).expanduser() if home else Path(__file__).resolve().parents[1]


def anchored(path: str | Path, root: Path) -> Path:
    """A config path as used: absolute as given, relative ones under ``root``."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else root / path


def default_ledger() -> Path:
    return project_root() / ".state" / "ledger.duckdb"
