"""The command line end to end on a small corpus, through typer's runner: ingest,
search at every level and mode, TREC run files, and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lcrag.app.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def built_index(tmp_path_factory) -> Path:
    from tests.conftest import TOPICS, write_corpus

    root = tmp_path_factory.mktemp("cli")
    corpus = write_corpus(root / "corpus", {**TOPICS, "broken.pdf": b"%PDF-1.4 garbage"})
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({"chunking": {"target_tokens": 24}, "units": {"max_tokens": 128}}))
    result = runner.invoke(app, ["ingest", str(corpus), "--index", str(root / "index"), "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    return root / "index"


def test_ingest_prints_a_summary_with_skipped_files(built_index):
    manifest = json.loads((built_index / "manifest.json").read_text())
    assert manifest["documents"] == 6 and manifest["chunks"] >= 6


def test_ingest_summary_table_names_skipped_file_and_reason(tmp_path):
    from tests.conftest import write_corpus

    corpus = write_corpus(tmp_path / "c", {"a.txt": "Solar panels convert light into electricity.", "b.txt": b"\x00\x00"})
    result = runner.invoke(app, ["ingest", str(corpus), "--index", str(tmp_path / "i")])
    assert result.exit_code == 0, result.output
    assert "skipped b.txt: binary file" in result.output
    assert "documents" in result.output


@pytest.mark.parametrize("level", ["chunk", "unit", "doc"])
@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_search_json_at_every_level_and_mode(built_index, level, mode):
    result = runner.invoke(
        app, ["search", "volcano lava eruption", "--index", str(built_index), "-k", "3", "--mode", mode, "--level", level, "--json"]
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert 1 <= len(hits) <= 3
    assert hits[0]["doc_id"] == "volcanoes.txt"
    keys = [h["key"] for h in hits]
    assert len(keys) == len(set(keys))  # one row per chunk/unit/document
    assert all(h["end"] > h["start"] for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    if level == "doc":
        assert keys == [h["doc_id"] for h in hits]


def test_search_table_shows_citations(built_index):
    result = runner.invoke(app, ["search", "green tea oxidation", "--index", str(built_index), "-k", "2", "--level", "doc"])
    assert result.exit_code == 0, result.output
    assert "guide/tea.txt" in result.output


@pytest.mark.parametrize("fusion, shown", [(None, "hybrid, convex fusion"), ("rrf", "hybrid, rrf fusion")])
def test_search_names_the_fusion_it_used(built_index, fusion, shown):
    extra = ["--fusion", fusion] if fusion else []
    result = runner.invoke(app, ["search", "green tea oxidation", "--index", str(built_index), "-k", "2", *extra],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert shown in result.output


def test_search_refuses_an_unknown_fusion_naming_the_choices(built_index):
    result = runner.invoke(app, ["search", "green tea", "--index", str(built_index), "--fusion", "rank"])
    assert result.exit_code != 0
    assert "rrf, convex" in result.output


def test_queries_file_writes_a_trec_run_file(built_index, tmp_path):
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"_id": "q1", "text": "rocket engines and orbit"}\n{"_id": "q2", "text": "chess opening gambit"}\n')
    run_file = tmp_path / "out" / "run.trec"
    result = runner.invoke(
        app, ["search", "--queries", str(queries), "--index", str(built_index), "--level", "doc", "-k", "4",
              "--run-file", str(run_file), "--tag", "t1"]
    )
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in run_file.read_text().splitlines()]
    assert {r[0] for r in rows} == {"q1", "q2"}
    assert all(len(r) == 6 and r[1] == "Q0" and r[5] == "t1" for r in rows)
    q1 = [r for r in rows if r[0] == "q1"]
    assert [int(r[3]) for r in q1] == list(range(1, len(q1) + 1))
    assert q1[0][2] == "rockets.txt"
    assert [float(r[4]) for r in q1] == sorted((float(r[4]) for r in q1), reverse=True)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["search", "x", "--index", "{tmp}/nowhere"], "lcrag ingest"),
        (["search", "x", "--index", "{index}", "--mode", "fuzzy"], "dense, bm25, hybrid"),
        (["search", "x", "--index", "{index}", "--level", "page"], "chunk, unit, doc"),
        (["search", "--index", "{index}"], "QUERY or --queries"),
        (["ingest", "{tmp}/missing-folder", "--index", "{tmp}/i2"], "missing-folder"),
        (["ingest", "{tmp}", "--index", "{tmp}/i3", "--format", "word"], "beir"),
        (["ingest", "{tmp}", "--index", "{tmp}/i4", "--config", "{tmp}/bad.yaml"], "units.max_tokn"),
        (["info", "--index", "{tmp}/nowhere"], "no index"),
    ],
)
def test_errors_are_one_clear_line_naming_the_fix(built_index, tmp_path, args, expected):
    (tmp_path / "bad.yaml").write_text("units:\n  max_tokn: 10\n")
    filled = [a.format(tmp=tmp_path, index=built_index) for a in args]
    result = runner.invoke(app, filled)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_help_explains_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "search", "info"):
        assert command in result.output
    result = runner.invoke(app, ["ingest", "--help"])
    assert "resumes" in result.output and "--format" in result.output


def test_info_reports_the_manifest(built_index):
    result = runner.invoke(app, ["info", "--index", str(built_index)])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["documents"] == 6 and info["config"]["chunking"]["target_tokens"] == 24
