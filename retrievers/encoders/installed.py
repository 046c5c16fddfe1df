"""Where set-up leaves a converted encoder, and whether it finished. The runtime only
checks; downloading and converting are set-up's job (``make encoder-setup``)."""

from __future__ import annotations

from pathlib import Path

from lcrag.core.paths import state_home

NOMIC_MODEL = "nomic-embed-text-v1.5"
MARKER = "lcrag-converted.json"  # written last by the conversion, so its presence means done
SETUP_COMMAND = "make encoder-setup (or bash scripts/setup_encoder.sh)"


def model_dir(name: str = NOMIC_MODEL, home: Path | None = None) -> Path:
    """Where the converted model lives: ``$LCRAG_HOME/models/<name>``."""
    return (home or state_home()) / "models" / name


def is_converted(folder: Path) -> bool:
    """True when ``folder`` holds a finished conversion (its marker file exists)."""
    return (folder / MARKER).is_file()
