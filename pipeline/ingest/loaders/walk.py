"""Listing the files of a source folder, and saying why any entry is left out.

A folder may be untrusted, so the walk never leaves it by accident: a symlink
whose target resolves outside the folder is reported and skipped unless the
caller allows it (an ``id_rsa`` linked into a shared folder must not become
searchable). Nothing is dropped without a word: hidden entries, unreadable
folders, broken symlinks and symlinked folders already walked (loops included)
are all reported. Real folders are walked before symlinked ones, so a file
reachable both ways keeps its real path as its id.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lcrag.pipeline.ingest.loaders.base import Skipped, SourceFormatError, os_reason

HIDDEN_FILE = "hidden file: skipped (names starting with '.' are not ingested)"
HIDDEN_FOLDER = "hidden folder: skipped with everything in it (names starting with '.' are not ingested)"
OUTSIDE = "symlink to a {kind} outside the source folder: skipped (pass --follow-symlinks to include it)"
ALREADY_WALKED = "symlink to a folder already loaded as {where!r}: skipped (each folder is read once, which also stops loops)"


@dataclass(frozen=True)
class Listing:
    """The files to load, in relative-path order, and the entries left out."""

    files: tuple[Path, ...]
    skipped: tuple[Skipped, ...]


def _any_name(name: str) -> bool:
    return True


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def is_inside(target: Path, root: Path) -> bool:
    """Whether the resolved ``target`` is ``root`` or lies under it."""
    return target == root or target.is_relative_to(root)


@dataclass
class _Walk:
    root: Path  # resolved
    follow_symlinks: bool
    wanted: Callable[[str], bool]
    files: list[tuple[str, Path]]
    skipped: list[Skipped]
    visited: dict[tuple[int, int], str]  # (device, inode) of each folder walked -> where
    linked: list[tuple[str, Path, tuple[int, int]]]  # symlinked folders, walked after the real ones

    def skip(self, rel: str, reason: str) -> None:
        self.skipped.append(Skipped(rel, reason))

    def folder(self, path: Path, rel: str) -> None:
        """Walk one folder tree (iteratively: depth is not limited by recursion)."""
        stack = [(path, rel)]
        while stack:
            folder, prefix = stack.pop()
            try:
                info = os.stat(folder)
                key = (info.st_dev, info.st_ino)
                if key in self.visited:
                    continue
                self.visited[key] = prefix or "."
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                if not prefix:
                    raise SourceFormatError(f"cannot read the source folder {folder}: {os_reason(exc)}") from exc
                self.skip(prefix, f"unreadable folder: {os_reason(exc)}; its files were not loaded")
                continue
            below = []
            for entry in entries:
                child = self.entry(entry, _join(prefix, entry.name))
                if child is not None:
                    below.append(child)
            stack.extend(reversed(below))

    def entry(self, entry: os.DirEntry, rel: str) -> tuple[Path, str] | None:
        """Record one folder entry; a real subfolder is returned to be walked."""
        try:
            if entry.is_symlink():
                self.symlink(Path(entry.path), rel, entry.name)
                return None
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError as exc:
            self.skip(rel, f"cannot read: {os_reason(exc)}")
            return None
        hidden = entry.name.startswith(".")
        if is_dir:
            if hidden:
                self.skip(rel, HIDDEN_FOLDER)
                return None
            return Path(entry.path), rel
        if not self.wanted(entry.name):
            return None
        if hidden:
            self.skip(rel, HIDDEN_FILE)
        else:
            self.files.append((rel, Path(entry.path)))  # special files are refused when read, with the reason
        return None

    def symlink(self, path: Path, rel: str, name: str) -> None:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            if self.wanted(name):
                self.skip(rel, "broken symlink: its target does not exist")
            return
        except OSError as exc:  # ELOOP: a chain of links pointing at each other
            self.skip(rel, f"unusable symlink: {os_reason(exc)}")
            return
        is_dir = stat.S_ISDIR(info.st_mode)
        if not is_dir and not self.wanted(name):
            return
        if name.startswith("."):
            self.skip(rel, HIDDEN_FOLDER if is_dir else HIDDEN_FILE)
            return
        if not self.follow_symlinks and not is_inside(Path(os.path.realpath(path)), self.root):
            self.skip(rel, OUTSIDE.format(kind="folder" if is_dir else "file"))
            return
        if is_dir:
            self.linked.append((rel, path, (info.st_dev, info.st_ino)))
        else:
            self.files.append((rel, path))

    def linked_folders(self) -> None:
        """Walk symlinked folders (after every real one); one already walked is
        reported, which also ends any loop."""
        while self.linked:
            self.linked.sort(key=lambda item: item[0])
            rel, path, key = self.linked.pop(0)
            if key in self.visited:
                where = self.visited[key]
                self.skip(rel, ALREADY_WALKED.format(where=where))
                continue
            self.folder(path, rel)


def list_source(root: Path, follow_symlinks: bool = False, wanted: Callable[[str], bool] = _any_name) -> Listing:
    """The files under ``root`` whose names ``wanted`` accepts (a non-folder root:
    itself), sorted by relative path, with every entry left out and why.
    ``SourceFormatError`` when the root folder itself cannot be read."""
    if not root.is_dir():
        return Listing((root,), ())
    walk = _Walk(Path(os.path.realpath(root)), follow_symlinks, wanted, [], [], {}, [])
    walk.folder(root, "")
    walk.linked_folders()
    files = sorted(walk.files, key=lambda item: item[0])
    return Listing(tuple(path for _, path in files), tuple(sorted(walk.skipped, key=lambda s: s.path)))
