"""The report's Jinja templates: hostile names (strategies, data sets, question text)
come out escaped in the HTML (autoescape, one shared escape) and in the Markdown (the
``md_cell`` filter keeps tables whole), and the templates are found wherever lcrag is
imported from, as package data of ``lcrag.pipeline.report``."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest

import lcrag.pipeline.report as report_package
from lcrag.pipeline.report import build_report, render_html, render_markdown
from lcrag.pipeline.report.markup import environment, escape, md_cell
from tests.helpers import make_row

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = Path(report_package.__file__).parent / "templates"

SCRIPT = '<script>alert("x")</script>'
HOSTILE = f'{SCRIPT} & | "q" \'s'  # every character HTML or a Markdown table cares about


def hostile_report(field: str, value: str, every_row: bool):
    """rag and lc on one data set; ``field`` set to ``value`` on rag's rows (every row's
    when ``every_row``), so the name shows in tables, headings, figures and findings."""
    rows = []
    for strategy in ("rag", "lc"):
        for i in range(6):
            row = dict(question_id=f"q{i}", strategy=strategy, route=strategy, dataset="hotpot", em=float(i % 2),
                       f1=0.5 + 0.1 * (i % 3), recall=1.0, prompt_tokens=300 if strategy == "rag" else 3000)
            if every_row or strategy == "rag":
                row[field] = value
            rows.append(make_row(**row))
    return build_report(rows, title=f"Report {HOSTILE}", config={"reader": {"model": HOSTILE}},
                        data_hashes={HOSTILE: HOSTILE}, generated_at="2024-01-01T00:00:00+00:00")


class Parsed(HTMLParser):
    """The document as a browser reads it: tags (with attributes) and text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


# (field, value, on every row, must the name show in the report?) -- the question text
# is not part of the report, so it must only never come out raw.
CASES = [
    pytest.param("strategy", HOSTILE, False, True, id="strategy"),
    pytest.param("dataset", HOSTILE, True, True, id="dataset"),
    pytest.param("question", HOSTILE, True, False, id="question"),
    pytest.param("strategy", f"a|b&c{SCRIPT}", False, True, id="strategy-pipe-first"),
    pytest.param("dataset", "set\nwith | newline", True, True, id="dataset-newline"),
]


@pytest.mark.parametrize(("field", "value", "every_row", "shown"), CASES)
def test_hostile_names_are_escaped_in_html(field, value, every_row, shown):
    text = render_html(hostile_report(field, value, every_row))
    parsed = Parsed(text)
    assert "script" not in {tag for tag, _ in parsed.tags} and SCRIPT not in text
    page = "".join(parsed.text)
    assert f"Report {HOSTILE}" in page and page.count(HOSTILE) >= 3  # title, config, hash: escaped once, not twice
    assert "&lt;" not in page and "&amp;" not in page  # no double escaping anywhere
    if shown:
        assert value in page and html.escape(value, quote=True) in text
    if field == "dataset":
        assert ("h3", {"id": f"dataset-{value}"}) in parsed.tags  # attribute values escaped too
    for tag, attrs in parsed.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)


def table_pipes(markdown: str) -> list[list[int]]:
    """Unescaped '|' per line, for each table (a run of lines starting with '|')."""
    tables, current = [], []
    for line in [*markdown.split("\n"), ""]:
        if line.startswith("|"):
            current.append(len(re.findall(r"(?<!\\)\|", line)))
        elif current:
            tables.append(current)
            current = []
    return tables


@pytest.mark.parametrize(("field", "value", "every_row", "shown"), CASES)
def test_hostile_names_are_escaped_in_markdown(field, value, every_row, shown):
    text = render_markdown(hostile_report(field, value, every_row))
    code_spans = re.sub(r"`[^`\n]*`", "", text)  # inside backticks '<' is literal text already
    assert not re.search(r"(?<!\\)<", code_spans), "a raw '<' would start HTML in Markdown"
    for pipes in table_pipes(text):
        assert len(set(pipes)) == 1 and pipes[0] >= 3, pipes  # every row has its header's cells
    if shown:
        assert md_cell(value) in text
    assert f"# {md_cell(f'Report {HOSTILE}')}\n" in text


def test_one_escape_serves_autoescape_and_svg():
    """Jinja's output and the SVG text use the same entities (the standard library's)."""
    assert escape(HOSTILE) == html.escape(HOSTILE, quote=True)
    assert escape(escape("<b>")) == "&lt;b&gt;"  # markup is never escaped twice
    html_text = render_html(hostile_report("strategy", HOSTILE, False))
    assert "&#x27;s" in html_text and "&#39;" not in html_text and "&#34;" not in html_text


@pytest.mark.parametrize(
    ("name", "escaped"),
    [("report.html.j2", True), ("letters.html.j2", True), ("cost.html.j2", True), ("tables.html.j2", True),
     ("report.md.j2", False), ("letters.md.j2", False), ("cost.md.j2", False), ("tables.md.j2", False)],
)
def test_autoescape_follows_the_template_name(name, escaped):
    env = environment()
    assert name in env.list_templates()
    assert env.autoescape(name) is escaped


def test_every_template_is_package_data():
    """pyproject ships templates/*.j2 with lcrag.pipeline.report: every template must match it."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert declared["lcrag.pipeline.report"] == ["templates/*.j2"]
    files = [p for p in TEMPLATES.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert files and all(p.parent == TEMPLATES and p.suffix == ".j2" for p in files), files
    assert sorted(environment().list_templates()) == sorted(p.name for p in files)


def test_templates_are_found_from_another_working_directory(tmp_path):
    """The loader finds the templates through the package, not the working directory."""
    script = (
        "import os, lcrag.pipeline.report as r\n"
        "from tests.helpers import make_row\n"
        "rows = [make_row(question_id=f'q{i}', strategy=s, route=s, dataset='d', em=1.0, f1=1.0) "
        "for s in ('rag', 'lc') for i in range(3)]\n"
        "rep = r.build_report(rows, title='elsewhere', config={}, data_hashes={})\n"
        "html_path, md_path = r.write_report(rep, 'out')\n"
        "print(os.getcwd(), html_path.read_text().count('<section'), md_path.read_text().splitlines()[0])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # for tests.helpers only; lcrag comes from the installed package
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    cwd, sections, title = done.stdout.split(maxsplit=2)
    assert Path(cwd) == tmp_path and int(sections) >= 5 and title.strip() == "# elsewhere"
    assert (tmp_path / "out" / "report.html").read_text().startswith("<!DOCTYPE html>")
