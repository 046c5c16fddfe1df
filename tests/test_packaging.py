"""The project as users get it: a wheel built from the tree adds exactly one import name,
``lcrag``, with every module of the source folders and the default config; installed into
a fresh virtualenv (no editable finder, no checkout on the path) its ``lcrag`` command
ingests and searches from any working directory and keeps state under the user's home.
``--version`` and ``info`` name ``$LCRAG_HOME`` when it is set."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
VERSION = PYPROJECT["project"]["version"]
# Source folder -> where its modules land in the wheel.
CODE_FOLDERS = {"core": "lcrag/core", "pipeline": "lcrag/pipeline", "readers": "lcrag/readers",
                "retrievers": "lcrag/retrievers", "flows": "lcrag/flows"}
OLD_TOP_LEVEL_NAMES = ("core", "configs", "pipeline", "readers", "retrievers", "flows")
DOCS = {
    "volcanoes.txt": "Volcanoes form where magma reaches the surface of the Earth. Lava flows can bury whole towns. "
    "Mount Etna in Sicily is one of the most active volcanoes in the world.\n",
    "bread.md": "# Baking bread\n\nBread dough needs flour, water, salt and yeast. Kneading develops the gluten network. "
    "Bake the loaf in a hot oven until the crust is brown.\n",
}


def run(args: list, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], check=False, capture_output=True, text=True, timeout=timeout, **kwargs)


def copy_sources(target: Path) -> Path:
    """What the build reads, copied: setuptools writes build/ and *.egg-info into the
    folder it builds, and a stale build/lib from an earlier build would put modules no
    longer listed in pyproject's ``packages`` back into the wheel."""
    target.mkdir()
    folders = set(PYPROJECT["tool"]["setuptools"].get("package-dir", {}).values()) | set(CODE_FOLDERS)
    for folder in sorted(folders):
        shutil.copytree(ROOT / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in ROOT.iterdir():
        if path.is_file() and (path.name in ("pyproject.toml", "README.md", "setup.py", "setup.cfg", "MANIFEST.in")
                               or path.name.startswith(("LICEN", "COPYING", "NOTICE", "AUTHORS"))):
            shutil.copy2(path, target / path.name)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the copy of the sources it was built from)."""
    try:
        import setuptools  # noqa: F401  -- the build backend, used without build isolation (no index needed)
    except ImportError:
        pytest.fail("setuptools is not installed in this virtualenv; `pip install 'setuptools>=77'` to build the wheel")
    root = tmp_path_factory.mktemp("wheel")
    sources = copy_sources(root / "src")
    started = time.perf_counter()
    result = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                  "-q", "-w", root / "dist", "."], cwd=sources)
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = (root / "dist").glob("*.whl")
    print(f"wheel built in {time.perf_counter() - started:.1f} s: {built.name}")
    return built, sources


def test_the_wheel_adds_one_import_name(wheel):
    built, _ = wheel
    assert built.name.startswith(f"lcrag-{VERSION}-py3-none-any")
    names = zipfile.ZipFile(built).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"lcrag", f"lcrag-{VERSION}.dist-info"}, sorted(tops)
    assert "lcrag/__init__.py" not in names  # lcrag stays a namespace


def test_the_wheel_holds_every_module_and_the_default_config(wheel):
    built, sources = wheel
    names = set(zipfile.ZipFile(built).namelist())
    assert "lcrag/configs/default.yaml" in names
    expected = {
        f"{inside}/{path.relative_to(sources / folder).as_posix()}"
        for folder, inside in CODE_FOLDERS.items()
        for path in (sources / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert len(expected) > 50
    missing = sorted(expected - names)
    assert not missing, (
        "modules missing from the wheel (a package not listed in pyproject's [tool.setuptools] packages?):\n  "
        + "\n  ".join(missing)
    )


def test_the_wheel_declares_the_lcrag_command(wheel):
    built, _ = wheel
    with zipfile.ZipFile(built) as archive:
        text = archive.read(f"lcrag-{VERSION}.dist-info/entry_points.txt").decode()
    entry_points = configparser.ConfigParser()
    entry_points.read_string(text)
    assert dict(entry_points["console_scripts"]) == {"lcrag": "lcrag.app.cli.app:main"}


# Run by the fresh venv's interpreter: where lcrag comes from, and that nothing of the
# project's editable install (its meta-path finder, the checkout's folders) is active.
PROBE = """
import importlib.util, json, sys
import lcrag.pipeline, lcrag.core.paths
print(json.dumps({
    "pipeline": lcrag.pipeline.__file__,
    "core_paths": lcrag.core.paths.__file__,
    "lcrag_path": list(lcrag.__path__),
    "sys_path": sys.path,
    "editable_finders": [repr(f) for f in sys.meta_path if "editable" in repr(f).lower()],
    "editable_modules": sorted(m for m in sys.modules if m.startswith("__editable__")),
    "old_names": {n: importlib.util.find_spec(n) is not None for n in sys.argv[1:]},
}))
"""


@pytest.mark.slow
def test_the_wheel_works_in_a_fresh_venv(wheel, tmp_path):
    """Installed without network, reusing the project venv's dependencies (torch and
    all) through a .pth line; the checkout is nowhere on the path."""
    built, _ = wheel
    timings: dict[str, float] = {}

    def timed(step: str, args: list, **kwargs) -> subprocess.CompletedProcess:
        started = time.perf_counter()
        result = run(args, **kwargs)
        timings[step] = round(time.perf_counter() - started, 1)
        return result

    fresh = tmp_path / "fresh"
    result = timed("venv", [sys.executable, "-m", "venv", "--without-pip", fresh])
    assert result.returncode == 0, result.stderr
    python = fresh / "bin" / "python"
    # pip of this interpreter installs into the fresh one, before the .pth exists, so pip
    # does not see the project's own lcrag (editable) installation on the fresh path.
    result = timed("install", [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
                               "--no-warn-script-location", "-q", built])
    assert result.returncode == 0, result.stdout + result.stderr

    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    assert site.is_dir() and site.is_relative_to(fresh)
    project_site = list(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))
    (site / "lcrag-test-deps.pth").write_text("".join(f"{p}\n" for p in project_site))

    home, cwd, docs, index = (tmp_path / name for name in ("home", "cwd", "docs", "idx"))
    for folder in (home, cwd, docs):
        folder.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in ("LCRAG_HOME", "XDG_DATA_HOME", "PYTHONPATH", "PYTHONHOME", "PREFECT_HOME", "VIRTUAL_ENV")}
    env.update(HOME=str(home), HF_HUB_OFFLINE="1")
    lcrag = fresh / "bin" / "lcrag"

    def fresh_run(step: str, args: list) -> subprocess.CompletedProcess:
        return timed(step, args, cwd=cwd, env=env)

    # lcrag comes from the fresh site-packages; the editable finder stays inactive, since
    # .pth files in a folder added by another .pth are not processed
    result = fresh_run("probe", [python, "-c", PROBE, *OLD_TOP_LEVEL_NAMES])
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    assert all(p in probe["sys_path"] for p in project_site)
    assert str(ROOT) not in probe["sys_path"]
    for key in ("pipeline", "core_paths"):
        assert Path(probe[key]).is_relative_to(site), probe
    assert probe["lcrag_path"][0] == str(site / "lcrag")  # the namespace's first portion is the wheel's
    assert probe["editable_finders"] == [] and probe["editable_modules"] == []
    assert not any(probe["old_names"].values()), probe["old_names"]
    result = fresh_run("import pipeline", [python, "-c", "import pipeline"])
    assert result.returncode == 1 and "ModuleNotFoundError: No module named 'pipeline'" in result.stderr, result.stderr

    result = fresh_run("--help", [lcrag, "--help"])
    assert result.returncode == 0, result.stderr
    assert "ingest" in result.stdout and "search" in result.stdout

    result = fresh_run("info", [lcrag, "info"])
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)["lcrag"]
    assert info["version"] == VERSION
    assert Path(info["state"]) == home / ".local" / "share" / "lcrag"
    assert not Path(info["state"]).is_relative_to(site) and not Path(info["state"]).is_relative_to(fresh)
    assert Path(info["ledger"]).is_relative_to(home)
    assert Path(info["default_config"]) == site / "lcrag" / "configs" / "default.yaml"

    result = fresh_run("ingest", [lcrag, "ingest", docs, "--index", index, "--json"])
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["documents"] == 2 and summary["skipped"] == []

    query = "magma and lava from an erupting volcano"
    result = fresh_run("search", [lcrag, "search", query, "--index", index, "--json", "-k", "2"])
    assert result.returncode == 0, result.stdout + result.stderr
    hits = json.loads(result.stdout)
    assert hits and hits[0]["doc_id"] == "volcanoes.txt", hits
    assert "Etna" in hits[0]["text"]

    assert list(cwd.iterdir()) == []  # nothing written where the commands ran
    print("fresh venv timings (s):", timings)


def test_version_and_info_report_lcrag_home(tmp_path):
    from lcrag.app.cli.app import app

    home = tmp_path / "state home"
    runner = CliRunner()
    result = runner.invoke(app, ["--version"], env={"LCRAG_HOME": str(home)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("lcrag ") and lines[0] != "lcrag unknown"
    assert lines[1] == f"state: {home} (set LCRAG_HOME to move it)"

    result = runner.invoke(app, ["info"], env={"LCRAG_HOME": str(home)})
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)["lcrag"]
    assert info["state"] == str(home)
    assert info["state_from"] == "$LCRAG_HOME"
    assert info["ledger"] == str(home / "ledger.duckdb")
    assert not home.exists()  # reporting where state lives creates nothing
