"""Index generations: re-ingestion under live traffic.

Ingestion writes a new generation beside the live one and publishes it by
replacing one small pointer file, so a server keeps answering from the
generation it has open, switches to the new one without a restart, and a
failed or killed ingestion never becomes live.

    ROOT/LIVE                          name of the live generation (replaced atomically)
    ROOT/generations/NAME/             a complete index folder (see pipeline.index)
    ROOT/generations/NAME/RETIRED      when it stopped being live
    ROOT/generations/NAME.copying/     a copy under way (never used)

Each generation is a separate Qdrant folder and catalog, so the server (reading
the live one) and an ingestion (writing the next one) never open the same store.
Names sort by creation time. Retired generations are removed after a grace
period, long enough for questions in flight on them to finish.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import time
import uuid
from pathlib import Path

from lcrag.core.files import replace_dir_atomic, write_text_atomic
from lcrag.pipeline.index.copying import copy_index_file
from lcrag.pipeline.index.folder import (  # the layout's readers live with the folder's (IndexReader opens them)
    GENERATIONS,
    IN_PROGRESS,
    LIVE,
    LOCK,
    IndexPaths,
    IndexStateError,
    generation_path,
    is_generational,
    live_name,
    require_finished,
)

log = logging.getLogger(__name__)

RETIRED = "RETIRED"
COPYING = ".copying"
DEFAULT_GRACE_S = 600.0


def new_generation_name(now: float | None = None, after: str = "") -> str:
    """A name that sorts after every earlier one: resuming and clean-up compare names,
    so two generations made in the same second (microseconds tell them apart) or a
    clock that stepped back (then ``after``, the newest existing name, is extended)
    must not reverse their order."""
    moment = time.time() if now is None else now
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(moment)) + f".{int(moment % 1 * 1_000_000):06d}"
    name = f"g-{stamp}-{uuid.uuid4().hex[:6]}"
    return name if name > after else f"{after}-{uuid.uuid4().hex[:6]}"  # a longer name sorts after its prefix


def is_locked(folder: Path) -> bool:
    """Whether a process holds the folder's writer lock (an ingestion is running)."""
    path = IndexPaths(folder).lock
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def _generation_folders(root: Path) -> list[Path]:
    base = Path(root) / GENERATIONS
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.endswith(COPYING))


# ------------------------------------------------------------ the writer side


def start_generation(root: Path) -> Path:
    """The folder an ingestion writes: an unpublished generation newer than the
    live one is resumed (an earlier run was interrupted); otherwise the live
    generation is copied, so ingestion stays incremental, or an empty one is made."""
    root = Path(root)
    if not is_generational(root) and IndexPaths(root).manifest.exists():
        raise IndexStateError(
            f"{root} is a plain index folder; generations need their own root: use a new --index folder"
        )
    (root / GENERATIONS).mkdir(parents=True, exist_ok=True)
    live = live_name(root)
    folders = _generation_folders(root)  # sorted by name, which is creation order
    for folder in reversed(folders):
        if folder.name != live and (live is None or folder.name > live) and not (folder / RETIRED).exists() and not is_locked(folder):
            return folder
    newest = folders[-1].name if folders else ""
    target = generation_path(root, new_generation_name(after=max(newest, live or "")))
    if live is None:
        target.mkdir()
        return target
    staging = target.with_name(target.name + COPYING)
    shutil.copytree(
        generation_path(root, live), staging,
        ignore=shutil.ignore_patterns(LOCK, ".lock", RETIRED, IN_PROGRESS),
        copy_function=copy_index_file,  # holes stay holes, immutable BM25 segments are linked
    )
    replace_dir_atomic(staging, target)
    return target


def publish_generation(root: Path, folder: Path) -> str:
    """Make a finished generation live (one atomic rename); the previous one is
    marked retired. Refuses an unfinished folder, so a failed ingestion never goes live."""
    root, folder = Path(root), Path(folder)
    if folder.parent != root / GENERATIONS:
        raise IndexStateError(f"{folder} is not a generation of {root}")
    require_finished(folder)
    previous = live_name(root)
    write_text_atomic(root / LIVE, folder.name + "\n")
    if previous and previous != folder.name and generation_path(root, previous).is_dir():
        (generation_path(root, previous) / RETIRED).write_text(f"{time.time()}\n", encoding="utf-8")
    return folder.name


def _retired_at(folder: Path) -> float | None:
    try:
        return float((folder / RETIRED).read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None


def cleanup_generations(root: Path, grace_s: float = DEFAULT_GRACE_S, now: float | None = None) -> list[str]:
    """Remove generations retired more than ``grace_s`` ago, abandoned attempts
    older than the live generation, and stale copies; returns the names removed.
    The live generation and unpublished newer ones (resumable) are kept."""
    root = Path(root)
    now = time.time() if now is None else now
    live = live_name(root)
    removed: list[str] = []
    base = root / GENERATIONS
    if not base.is_dir():
        return removed
    for folder in sorted(base.iterdir()):
        if not folder.is_dir() or folder.name == live:
            continue
        if folder.name.endswith(COPYING):
            stale = now - folder.stat().st_mtime > grace_s
        elif (retired := _retired_at(folder)) is not None:
            stale = now - retired > grace_s
        else:  # never published: an abandoned attempt once a newer generation is live
            stale = live is not None and folder.name < live and not is_locked(folder)
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed
