"""lcrag.core.files: every atomic write lands whole or not at all, in a temporary file of
its own beside the target, synced to disk with its folder; and no module outside
core/files.py renames files itself (read from the source with ``ast``)."""

from __future__ import annotations

import ast
import errno
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lcrag.core import files
from lcrag.core.files import (
    atomic_path,
    rename_durable,
    replace_dir_atomic,
    temp_path_for,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from tests.test_import_graph import FOLDERS, ROOT


def _stream(path: Path, data: bytes) -> None:
    """A streaming writer: several writes to the path atomic_path hands out."""
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        for start in range(0, len(data), 3):
            out.write(data[start:start + 3])


@dataclass(frozen=True)
class Helper:
    name: str
    write: Callable[[Path, Any], Any]
    read: Callable[[Path], Any]
    old: Any
    new: Any


HELPERS = [
    Helper("write_text_atomic", write_text_atomic, lambda p: p.read_text(encoding="utf-8"), "old text\n", "new text, ünïcode\n"),
    Helper("write_bytes_atomic", write_bytes_atomic, Path.read_bytes, b"old\x00bytes", b"new\x00\xffbytes" * 100),
    Helper("write_json_atomic", lambda p, o: write_json_atomic(p, o, indent=2),
           lambda p: json.loads(p.read_text(encoding="utf-8")), {"old": 1}, {"new": [1, 2, "ü"]}),
    Helper("atomic_path", _stream, Path.read_bytes, b"old stream", b"new streamed content " * 50),
]
IDS = [h.name for h in HELPERS]


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def disk_full(monkeypatch):
    """Every whole-file write stops halfway with ENOSPC (the half is on disk), as does
    ``open(...).write`` of the streaming writer after its first chunk."""
    real_write_bytes, real_open = Path.write_bytes, open

    def half_then_full(self, data, *args, **kwargs):
        raw = data.encode(kwargs.get("encoding") or "utf-8") if isinstance(data, str) else bytes(data)
        real_write_bytes(self, raw[: len(raw) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    class FillingFile:
        def __init__(self, handle):
            self.handle, self.calls = handle, 0

        def write(self, data):
            self.calls += 1
            if self.calls > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.handle.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    def filling_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return FillingFile(handle) if "w" in mode and Path(file).name.endswith(files.TEMP_SUFFIX) else handle

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    monkeypatch.setattr(Path, "write_text", half_then_full)
    monkeypatch.setattr("builtins.open", filling_open)


@pytest.mark.parametrize("helper", HELPERS, ids=IDS)
def test_writes_the_content_and_leaves_no_temporary_file(tmp_path, helper):
    target = tmp_path / "data.out"
    helper.write(target, helper.old)
    assert helper.read(target) == helper.old
    helper.write(target, helper.new)  # over an existing file
    assert helper.read(target) == helper.new
    assert _entries(tmp_path) == ["data.out"]


@pytest.mark.parametrize("helper", HELPERS, ids=IDS)
def test_a_writer_failing_midway_keeps_the_old_file_and_no_temporary(tmp_path, helper, disk_full):
    target = tmp_path / "data.out"
    with open(target, "wb") as out:  # not a temporary name: the fixture leaves this write alone
        out.write(b"the old content\n")
    with pytest.raises(OSError) as err:
        helper.write(target, helper.new)
    assert err.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"the old content\n"
    assert _entries(tmp_path) == ["data.out"]


@pytest.mark.parametrize("helper", HELPERS, ids=IDS)
def test_an_exception_inside_keeps_the_old_file(tmp_path, helper, monkeypatch):
    """An error raised by the writer itself (not the disk): here, during the fsync that
    precedes the rename, i.e. after the new bytes were written."""
    target = tmp_path / "data.out"
    helper.write(target, helper.old)

    def broken(fd):
        raise RuntimeError("writer broke")

    monkeypatch.setattr(files.os, "fsync", broken)
    with pytest.raises(RuntimeError, match="writer broke"):
        helper.write(target, helper.new)
    monkeypatch.undo()
    assert helper.read(target) == helper.old
    assert _entries(tmp_path) == ["data.out"]


def test_atomic_path_body_raising_removes_the_partial_file(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="checksum"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half of the new")
        assert tmp.parent == tmp_path and tmp.exists()
        raise ValueError("checksum mismatch")
    assert target.read_bytes() == b"old"
    assert _entries(tmp_path) == ["model.bin"]


def test_atomic_path_body_that_writes_nothing_fails_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "x"
    target.write_text("old")
    with pytest.raises(FileNotFoundError), atomic_path(target):
        pass
    assert target.read_text() == "old" and _entries(tmp_path) == ["x"]


@pytest.mark.parametrize("helper", HELPERS, ids=IDS)
def test_a_crash_between_write_and_replace_leaves_the_old_file(tmp_path, helper, monkeypatch):
    """The process dies right before the rename (a BaseException that no handler in the
    writer may swallow): the target still holds the old content."""
    target = tmp_path / "data.out"
    helper.write(target, helper.old)

    class Crash(BaseException):
        pass

    def crash(src, dst):
        assert Path(src).read_bytes()  # the new content was fully written to the temporary file
        raise Crash

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(Crash):
        helper.write(target, helper.new)
    monkeypatch.undo()
    assert helper.read(target) == helper.old


def test_a_killed_process_leaves_the_old_file_whole(tmp_path):
    """A real crash: the child exits abruptly (os._exit) between writing and renaming. The
    target is untouched; the only trace is a hidden temporary that matches no glob of the
    target's own name pattern."""
    target = tmp_path / "manifest.json"
    target.write_text('{"old": true}')
    child = (
        "import os, sys\n"
        "from lcrag.core import files\n"
        "files.os.replace = lambda src, dst: os._exit(17)\n"
        "files.write_json_atomic(sys.argv[1], {'new': True})\n"
    )
    done = subprocess.run([sys.executable, "-c", child, str(target)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 17, done.stderr
    assert json.loads(target.read_text()) == {"old": True}
    leftovers = [p for p in tmp_path.iterdir() if p != target]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".manifest.json.")
    assert leftovers[0].name.endswith(".tmp") and list(tmp_path.glob("*.json")) == [target]


def _record_syncs(monkeypatch) -> list[tuple]:
    """Events in order: ('fsync', path, is_dir) and ('replace', src, dst)."""
    events: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}")), stat.S_ISDIR(os.fstat(fd).st_mode)))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", Path(src), Path(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


@pytest.mark.parametrize("helper", HELPERS, ids=IDS)
def test_the_file_then_its_folder_are_fsynced_around_the_rename(tmp_path, helper, monkeypatch):
    tmp_path = tmp_path.resolve()  # fsync'd paths are read back from /proc, symlinks resolved
    target = tmp_path / "data.out"
    events = _record_syncs(monkeypatch)
    helper.write(target, helper.new)
    kinds = [e[0] for e in events]
    assert kinds == ["fsync", "replace", "fsync"], events
    (_, synced_file, file_is_dir), (_, src, dst), (_, synced_dir, dir_is_dir) = events
    assert not file_is_dir and synced_file == src and src.parent == tmp_path and dst == target
    assert dir_is_dir and synced_dir == tmp_path  # the folder, after the rename: the new name is durable


def test_replace_dir_atomic_publishes_the_folder_and_syncs_its_parent(tmp_path, monkeypatch):
    tmp_path = tmp_path.resolve()  # fsync'd paths are read back from /proc, symlinks resolved
    staging, target = tmp_path / "model.tmp", tmp_path / "model"
    staging.mkdir()
    (staging / "weights").write_bytes(b"w")
    events = _record_syncs(monkeypatch)
    assert replace_dir_atomic(staging, target) == target
    assert (target / "weights").read_bytes() == b"w" and not staging.exists()
    assert ("replace", staging, target) in events
    synced_dirs = [e[1] for e in events if e[0] == "fsync" and e[2]]
    assert tmp_path in synced_dirs
    assert events.index(("replace", staging, target)) < max(i for i, e in enumerate(events) if e[:2] == ("fsync", tmp_path))


def test_replace_dir_atomic_refuses_a_non_empty_target_and_keeps_both(tmp_path):
    staging, target = tmp_path / "new.partial", tmp_path / "new"
    staging.mkdir()
    (staging / "a").write_text("new")
    target.mkdir()
    (target / "a").write_text("old")
    with pytest.raises(OSError):
        replace_dir_atomic(staging, target)
    assert (target / "a").read_text() == "old" and (staging / "a").read_text() == "new"


def test_rename_durable_syncs_both_folders(tmp_path, monkeypatch):
    tmp_path = tmp_path.resolve()  # fsync'd paths are read back from /proc, symlinks resolved
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    src = tmp_path / "a" / "server.log"
    src.write_text("log")
    events = _record_syncs(monkeypatch)
    rename_durable(src, tmp_path / "b" / "server.log.1")
    assert (tmp_path / "b" / "server.log.1").read_text() == "log" and not src.exists()
    assert {e[1] for e in events if e[0] == "fsync" and e[2]} == {tmp_path / "a", tmp_path / "b"}


@pytest.mark.parametrize("helper", HELPERS, ids=IDS)
def test_concurrent_writers_use_distinct_temporary_files(tmp_path, helper, monkeypatch):
    """Eight threads write the same target at once; all their temporary files exist at the
    same moment (a barrier holds each before its rename), so a shared name would mix them."""
    writers = 8
    target = tmp_path / "shared.out"
    barrier = threading.Barrier(writers, timeout=30)
    sources: list[Path] = []
    real_replace = os.replace

    def replace(src, dst):
        sources.append(Path(src))
        barrier.wait()
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", replace)
    payloads = [helper.new if i == 0 else helper.old for i in range(writers)]
    errors: list[BaseException] = []

    def run(payload):
        try:
            helper.write(target, payload)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(sources) == writers and len(set(sources)) == writers
    assert all(s.parent == tmp_path for s in sources)
    assert helper.read(target) in (helper.old, helper.new)  # one whole write won
    assert _entries(tmp_path) == ["shared.out"]


def test_temporary_names_are_per_process_and_random_beside_the_target(tmp_path):
    target = tmp_path / "LIVE"
    names = {temp_path_for(target) for _ in range(1000)}
    assert len(names) == 1000
    for name in names:
        assert name.parent == tmp_path
        assert name.name.startswith(".LIVE.") and f".{os.getpid()}." in name.name and name.name.endswith(".tmp")
    other = subprocess.run(
        [sys.executable, "-c", "import sys; from lcrag.core.files import temp_path_for; print(temp_path_for(sys.argv[1]))",
         str(target)], capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    assert f".{os.getpid()}." not in Path(other).name  # another process, another pid in the name
    long = temp_path_for(tmp_path / ("n" * 255))
    assert len(long.name) <= 255


def test_write_json_atomic_matches_json_dumps(tmp_path):
    obj = {"b": 1, "a": [1.5, "ü"]}
    write_json_atomic(tmp_path / "a.json", obj, indent=2)
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == json.dumps(obj, indent=2) + "\n"
    write_json_atomic(tmp_path / "b.json", obj, newline=False, sort_keys=True)
    assert (tmp_path / "b.json").read_text(encoding="utf-8") == json.dumps(obj, sort_keys=True)


# ------------------------------------------------- no direct renames elsewhere

# The package's source folders are test_import_graph's FOLDERS. scripts/ and bench/ are not
# package code and are not checked: scripts/convert_gguf.py runs in the reader virtualenv,
# where lcrag is not installed, so it cannot import lcrag.core.files.

# Files, or folders (ending in "/"), that may rename directly: only the helpers. A file entry
# that no longer renames anything fails test_the_allowlist_holds_no_converted_file.
ALLOWED_DIRECT = {
    "core/files.py": "the helpers themselves",
}

RENAMES = {"replace", "rename", "renames"}


def direct_renames(source: str) -> list[tuple[int, str]]:
    """(line, call) of every direct rename in ``source``: ``os.replace/rename/renames``,
    names imported from ``os`` under those names, and ``X.replace(dst)`` / ``X.rename(dst)``
    with one positional argument and no keyword (the shape of ``Path.replace``; str and
    bytes ``replace`` take two arguments, ``dataclasses.replace`` takes keywords)."""
    found = []
    tree = ast.parse(source)
    from_os = {alias.asname or alias.name for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module == "os"
               for alias in node.names if alias.name in RENAMES}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in from_os:
            found.append((node.lineno, f"os.{func.id}"))
        elif isinstance(func, ast.Attribute) and func.attr in RENAMES:
            owner = func.value
            if isinstance(owner, ast.Name) and owner.id == "os":
                found.append((node.lineno, f"os.{func.attr}"))
            elif (isinstance(owner, ast.Name) and owner.id == "dataclasses") or isinstance(owner, ast.Constant):
                continue
            elif len(node.args) == 1 and not node.keywords and not isinstance(node.args[0], ast.Starred):
                found.append((node.lineno, f"{ast.unparse(owner)}.{func.attr}"))
    return sorted(found)


def _allowed(relative: str) -> bool:
    return any(relative == entry or (entry.endswith("/") and relative.startswith(entry)) for entry in ALLOWED_DIRECT)


def _package_sources() -> dict[str, str]:
    sources = {}
    for folder in FOLDERS:  # source folder -> import name: every folder of the package
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                sources[path.relative_to(ROOT).as_posix()] = path.read_text(encoding="utf-8")
    return sources


def test_the_rename_finder_sees_every_form():
    source = (
        "import os, dataclasses\nfrom os import rename as mv\nfrom pathlib import Path\n"
        "os.replace(a, b)\n"            # 4
        "os.rename(a, b)\n"             # 5
        "mv(a, b)\n"                    # 6
        "partial.replace(final)\n"      # 7
        "Path(p).rename(q)\n"           # 8
        "text.replace('-', '+')\n"      # 9: str.replace, two arguments
        "dataclasses.replace(c, x=1)\n"  # 10
        "'a'.replace('a')\n"            # 11: a constant's
        "stamp.replace(tzinfo=None)\n"  # 12: keywords only
        "b'x'.replace(b'x', b'y')\n"    # 13
    )
    assert [line for line, _ in direct_renames(source)] == [4, 5, 6, 7, 8]


def test_no_module_renames_outside_core_files():
    offenders = [
        f"{relative}:{line}: {call}"
        for relative, source in _package_sources().items() if not _allowed(relative)
        for line, call in direct_renames(source)
    ]
    assert not offenders, (
        "rename through lcrag.core.files (write_text_atomic, write_json_atomic, atomic_path, replace_dir_atomic, "
        "rename_durable) instead of directly:\n" + "\n".join(offenders)
    )


def test_the_allowlist_holds_no_converted_file():
    sources = _package_sources()
    stale = [entry for entry in ALLOWED_DIRECT
             if not entry.endswith("/") and entry in sources and not direct_renames(sources[entry])]
    missing = [entry for entry in ALLOWED_DIRECT
               if not (entry in sources or (entry.endswith("/") and (ROOT / entry).is_dir()))]
    assert not stale, f"converted, remove from ALLOWED_DIRECT: {stale}"
    assert not missing, f"no such file, remove from ALLOWED_DIRECT: {missing}"
