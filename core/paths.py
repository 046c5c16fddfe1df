"""Where lcrag keeps its state (ledger, reader virtualenv and models, Prefect home,
evaluation indexes, fetched data): ``$LCRAG_HOME`` if set, else the per-user data folder
(``$XDG_DATA_HOME/lcrag``, by default ``~/.local/share/lcrag``). Never inside the
installed package: site-packages is replaced by every upgrade and may be read-only.
Relative paths in a config (reader weights, its virtualenv) are read against it, so
commands work from any working directory."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "LCRAG_HOME"


def state_home() -> Path:
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser().absolute()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data).expanduser().absolute() / "lcrag"


def anchored(path: str | Path, root: Path) -> Path:
    """A config path as used: absolute as given, relative ones under ``root``."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else root / path


def default_ledger() -> Path:
    return state_home() / "ledger.duckdb"
