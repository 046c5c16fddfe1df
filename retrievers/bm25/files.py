"""Reading and writing the arrays of a BM25 folder.

Arrays are plain ``.npy`` files opened memory-mapped, so opening an index reads
headers only and the operating system pages in the postings a query touches.
Folders are written under a staging name and renamed into place: a reader (or
a crash) sees a whole folder or none.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from lcrag.core.files import replace_dir_atomic
from lcrag.retrievers.bm25.errors import BM25FormatError, rebuild_hint

STAGING = ".partial"  # suffix of a folder being written


def save_array(folder: Path, name: str, array: np.ndarray) -> None:
    with open(folder / f"{name}.npy", "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
        handle.flush()
        os.fsync(handle.fileno())


def load_array(folder: Path, name: str, mmap: bool = True) -> np.ndarray:
    path = folder / f"{name}.npy"
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BM25FormatError(f"{rebuild_hint(folder)} ({path.name}: {error})") from error


def save_json(folder: Path, name: str, data: dict[str, Any]) -> None:
    with open(folder / name, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())


def load_json(folder: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BM25FormatError(f"{rebuild_hint(folder)} ({name}: {error})") from error


def staging_folder(final: Path) -> Path:
    """An empty folder beside FINAL to write into (a leftover of a killed writer is discarded)."""
    staging = final.with_name(final.name + STAGING)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def move_into_place(staging: Path, final: Path) -> None:
    """Rename a finished staging folder to FINAL, replacing an unreferenced leftover of that name."""
    if final.exists():
        shutil.rmtree(final)
    replace_dir_atomic(staging, final)
