"""The README stays a screen's worth, the documentation site lists exactly the pages in
docs/, and the site builds with ``mkdocs build --strict`` (no page outside the nav, no broken
link or anchor)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 200


def nav_pages(entries) -> list[str]:
    """Every page a MkDocs nav names, at any depth ("Title: page.md", a bare "page.md", or sections)."""
    pages: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            pages.append(entry)
        elif isinstance(entry, dict):
            for value in entry.values():
                if isinstance(value, str):
                    pages.append(value)
                else:
                    pages.extend(nav_pages(value))
    return [page for page in pages if not page.startswith(("http://", "https://"))]


def test_the_readme_fits_on_a_screen():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail to a page under docs/")


def test_the_readme_keeps_the_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in ("make demo", "make test"):
        assert command in readme


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    in_nav = nav_pages(config["nav"])
    on_disk = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))
    assert len(in_nav) == len(set(in_nav)), f"a page is listed twice in mkdocs.yml's nav: {in_nav}"
    assert sorted(set(on_disk) - set(in_nav)) == [], "pages in docs/ that mkdocs.yml's nav leaves out"
    assert sorted(set(in_nav) - set(on_disk)) == [], "nav entries in mkdocs.yml with no page in docs/"


def test_readme_links_to_docs_pages_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = {link.partition("#")[0] for link in re.findall(r"\]\((docs/[^)\s]+)\)", readme)}
    assert targets, "the README links to no page under docs/"
    assert sorted(t for t in targets if not (ROOT / t).is_file()) == []


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        message = "mkdocs is not installed in this virtualenv: `make docs` installs it (the docs extra) and builds the site"
        if os.environ.get("LCRAG_REQUIRE_DOCS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
