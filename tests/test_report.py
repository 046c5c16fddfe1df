"""The comparison report: data built from ledger rows, the question-id parsers,
SVG figures, HTML/Markdown rendering, and a real headless-Chromium render."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import struct
import subprocess
import time
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from lcrag.pipeline.ledger import LedgerRow
from lcrag.pipeline.report import (
    build_report,
    render_html,
    render_markdown,
    svg,
    write_report,
)
from lcrag.pipeline.report.model import default_interval
from lcrag.pipeline.report.render import fmt_estimate, stat_cells
from tests.helpers import make_row as ledger_row

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_TIMEOUT_S = 120
SVG_NS = "{http://www.w3.org/2000/svg}"


# The report's own defaults: round numbers the hand-checked means rely on (latency
# 0.1 s retrieval + 0.9 s reading = 1 s), one dataset and a fixed creation time.
make_row = partial(
    ledger_row,
    index_id="idx",
    config_hash="abc",
    retrieved_ids=("d1",),
    context_tokens=100,
    prompt_tokens=100,
    completion_tokens=10,
    retrieval_ms=100.0,
    reading_ms=900.0,
    dataset="hotpot",
    created_at=1.0,
)


def hand_rows() -> list[LedgerRow]:
    """Small enough to check every number by hand (see test_build_report_means)."""
    rag = [
        make_row(question_id=f"q{i}", em=em, f1=f1, recall=rc, prompt_tokens=pt, completion_tokens=ct, context_cut=cut)
        for i, (em, f1, rc, pt, ct, cut) in enumerate(
            [(1.0, 1.0, 1.0, 100, 10, False), (0.0, 0.5, 0.5, 200, 20, False),
             (1.0, 1.0, 1.0, 300, 30, True), (0.0, 0.5, 0.0, 400, 40, False)]
        )
    ]
    routed = [
        make_row(question_id=f"q{i}", strategy="self-route", route=route, fell_back=fell, em=em, f1=em, recall=em,
                 prompt_tokens=1000, reading_ms=1900.0)
        for i, (route, fell, em) in enumerate([("rag", False, 1.0), ("rag", False, 0.0), ("lc", True, 1.0), ("rag", False, 1.0)])
    ]
    other = [make_row(question_id="m1", dataset="musique", em=None, f1=None, error="reader timed out", prompt_tokens=50)]
    return rag + routed + other


def full_rows() -> list[LedgerRow]:
    """Rows for every figure: two datasets, a position sweep and a needle grid."""
    rows: list[LedgerRow] = []
    strategies = {"rag": 900, "longrag": 4000, "op-rag": 2500, "lc": 30000, "self-route": 6000}
    for s_i, (strategy, tokens) in enumerate(strategies.items()):
        for d_i, dataset in enumerate(("hotpotqa", "musique")):
            for q in range(12):
                good = (q * 7 + s_i * 3 + d_i) % 10 < 4 + s_i
                route = ("lc" if q % 4 == 0 else "rag") if strategy == "self-route" else strategy
                rows.append(make_row(
                    run_id="run-a" if q % 2 else "run-b", question_id=f"{dataset}-{q}", strategy=strategy, route=route,
                    dataset=dataset, em=1.0 if good else 0.0, f1=0.9 if good else 0.3 + 0.02 * s_i,
                    recall=0.8 if good else 0.4, prompt_tokens=tokens + 37 * q, completion_tokens=12 + q,
                    context_cut=strategy == "lc" and q % 5 == 0,
                    fell_back=(route == "lc") if strategy == "self-route" else None,
                ))
        if strategy in ("rag", "lc", "op-rag"):
            for pos in range(5):
                for q in range(4):
                    hit = q < {"rag": 4 - min(pos, 4 - pos) * 2, "lc": 4 - min(pos, 4 - pos), "op-rag": 3}[strategy]
                    rows.append(make_row(question_id=f"ps{q}@pos{pos}", strategy=strategy, route=strategy, dataset="position-sweep",
                                         em=1.0 if hit else 0.0, f1=1.0 if hit else 0.0, prompt_tokens=tokens))
    for depth in (0, 25, 50, 75, 100):
        for length in (1000, 2000, 4000, 8000, 16000):
            for q in range(4):
                hit = q < 4 - (depth * length) // 40000 % 5
                rows.append(make_row(question_id=f"n{q}@d{depth}@L{length}", strategy="lc", route="lc", dataset="niah",
                                     em=1.0 if hit else 0.0, f1=1.0 if hit else 0.0, prompt_tokens=length))
    return rows


def full_report():
    return build_report(
        full_rows(),
        title="lcrag comparison <test> & co",
        config={"reader": {"model": "smollm2", "max_tokens": 64}, "rag": {"k": 5}, "seed": 0},
        data_hashes={"hotpotqa": "sha256:abc123", "musique": "sha256:def456"},
        generated_at="2024-01-01T00:00:00+00:00",
    )


def local(tag: str) -> str:
    return tag.removeprefix(SVG_NS)


def svg_texts(text: str) -> list[str]:
    root = ET.fromstring(text)
    return ["".join(el.itertext()) for el in root.iter() if local(el.tag) in ("text", "title")]


# -------------------------------------------------------------- building


def test_build_report_means_by_hand():
    report = build_report(hand_rows(), title="t", config={}, data_hashes={}, generated_at="now")
    hotpot = {s.strategy: s for s in next(t for t in report.tables if t.dataset == "hotpot").rows}
    rag = hotpot["rag"]
    assert rag.n == 4
    assert rag.em.mean == pytest.approx(0.5)
    assert rag.f1.mean == pytest.approx(0.75)
    assert rag.recall.mean == pytest.approx(0.625)
    assert rag.prompt_tokens == pytest.approx(250)
    assert rag.completion_tokens == pytest.approx(25)
    assert rag.latency_s == pytest.approx(1.0)
    assert rag.cut_share == pytest.approx(0.25)
    assert rag.fell_back_share is None
    routed = hotpot["self-route"]
    assert routed.em.mean == pytest.approx(0.75)
    assert routed.latency_s == pytest.approx(2.0)
    assert routed.fell_back_share == pytest.approx(0.25)
    # the errored musique row counts in n and cost but has no quality
    musique = next(t for t in report.tables if t.dataset == "musique").rows[0]
    assert (musique.n, musique.n_errors, musique.em, musique.prompt_tokens) == (1, 1, None, 50)
    overall = {s.strategy: s for s in report.overall}
    assert overall["rag"].n == 5 and overall["rag"].em.n == 4
    assert report.strategies == ("rag", "self-route")
    assert report.datasets == ("hotpot", "musique")
    assert report.run_ids == ("run1",)


def test_intervals_contain_means_and_are_deterministic():
    report = build_report(full_rows(), title="t", config={}, data_hashes={}, generated_at="now")
    again = build_report(full_rows(), title="t", config={}, data_hashes={}, generated_at="now")
    assert report == again
    for stats in [report.overall] + [t.rows for t in report.tables]:
        for s in stats:
            for est in (s.em, s.f1, s.recall):
                if est is not None:
                    assert est.low <= est.mean <= est.high
                    assert est.low >= 0.0 and est.high <= 1.0


@pytest.mark.parametrize(
    "values, expected",
    [
        ([1.0], (1.0, 1.0, 1.0)),
        ([0.5, 0.5, 0.5], (0.5, 0.5, 0.5)),
        ([0.0, 1.0] * 20, (0.5, None, None)),
    ],
)
def test_default_interval(values, expected):
    mean, low, high = default_interval(values)
    assert mean == pytest.approx(expected[0])
    assert low <= mean <= high
    if expected[1] is not None:
        assert (low, high) == pytest.approx(expected[1:])
    else:
        assert 0.3 < low < 0.5 < high < 0.7
    assert default_interval(values) == (mean, low, high)


@dataclass(frozen=True)
class FakeInterval:
    mean: float
    low: float
    high: float
    n: int


@pytest.mark.parametrize(
    "interval_fn",
    [
        lambda v: (sum(v) / len(v), min(v), max(v)),
        lambda v: FakeInterval(sum(v) / len(v), min(v), max(v), len(v)),  # pipeline.stats.bootstrap_mean's shape
    ],
)
def test_interval_fn_is_swappable(interval_fn):
    report = build_report(hand_rows(), title="t", config={}, data_hashes={}, interval_fn=interval_fn, generated_at="now")
    rag = next(s for s in report.overall if s.strategy == "rag")
    assert (rag.f1.mean, rag.f1.low, rag.f1.high, rag.f1.n) == (0.75, 0.5, 1.0, 4)


def test_route_shares_sum_to_one_per_strategy():
    for rows in (hand_rows(), full_rows()):
        report = build_report(rows, title="t", config={}, data_hashes={}, generated_at="now")
        totals: dict[str, float] = {}
        for share in report.routes:
            totals[share.strategy] = totals.get(share.strategy, 0.0) + share.share
        assert set(totals) == set(report.strategies)
        assert all(t == pytest.approx(1.0) for t in totals.values())
    shares = {(r.strategy, r.route): r.share for r in build_report(hand_rows(), title="t", config={}, data_hashes={}).routes}
    assert shares[("self-route", "rag")] == pytest.approx(0.75)
    assert shares[("self-route", "lc")] == pytest.approx(0.25)


def test_positions_heatmap_and_frontier():
    report = full_report()
    assert {p.strategy for p in report.positions} == {"rag", "lc", "op-rag"}
    assert sorted({p.position for p in report.positions}) == [0, 1, 2, 3, 4]
    assert all(p.n == 4 for p in report.positions)
    assert len(report.heatmap) == 25 and all(c.n == 4 for c in report.heatmap)
    assert {p.strategy for p in report.frontier} == set(report.strategies)


def test_custom_extractors():
    rows = [make_row(question_id=f"x{i}", em=float(i % 2)) for i in range(4)]
    report = build_report(rows, title="t", config={}, data_hashes={},
                          position_of=lambda r: int(r.question_id[1:]) // 2, niah_cell_of=lambda r: (50, 1000))
    assert [(p.position, p.accuracy, p.n) for p in report.positions] == [(0, 0.5, 2), (1, 0.5, 2)]
    assert [(c.depth, c.length, c.accuracy, c.n) for c in report.heatmap] == [(50, 1000, 0.5, 4)]


# ------------------------------------------------------------------- SVG


@pytest.mark.parametrize(
    "figure, make, labels",
    [
        ("frontier", lambda: svg.scatter([("rag", 900, 0.4), ("lc", 30000, 0.7), ("bad <one>", 40000, 0.2)],
                                         "prompt tokens", "F1", "Frontier & co"),
         ["rag", "lc", "bad <one>", "prompt tokens (log scale)", "F1", "Frontier & co", "Pareto frontier"]),
        ("position", lambda: svg.lines({"rag": [(0, 0.9), (1, 0.5), (2, 0.8)], "lc": [(0, 0.7), (2, 0.6)]},
                                       "evidence position", "accuracy", "By position"),
         ["rag", "lc", "evidence position", "accuracy", "By position"]),
        ("heatmap", lambda: svg.heatmap([(1000, 0, 1.0, 2), (2000, 0, 0.5, 2), (1000, 50, 0.0, 2)],
                                        "length", "depth", "Needles"),
         ["length", "depth", "Needles", "1.00", "0.50", "0.00", "1k", "2k", "accuracy"]),
        ("quality", lambda: svg.bars_with_intervals(["rag", "lc"], {"EM": [(0.5, 0.3, 0.7), None], "F1": [(0.6, 0.5, 0.7), (0.8, 0.7, 0.9)]},
                                                    "score", "Quality"),
         ["rag", "lc", "EM", "F1", "score", "Quality", "whiskers: 95% CI"]),
    ],
)
def test_svg_is_well_formed_and_labelled(figure, make, labels):
    text = make()
    root = ET.fromstring(text)
    assert local(root.tag) == "svg"
    assert root.get("data-figure") == figure
    found = svg_texts(text)
    for label in labels:
        assert label in found, f"{label!r} missing from {figure}"


@pytest.mark.parametrize("make", [
    lambda: svg.scatter([], "x", "y", "empty"),
    lambda: svg.lines({}, "x", "y", "empty"),
    lambda: svg.heatmap([], "x", "y", "empty"),
    lambda: svg.bars_with_intervals([], {}, "y", "empty"),
])
def test_svg_without_data_says_so(make):
    assert "no data" in svg_texts(make())


@pytest.mark.parametrize(
    "points, front",
    [
        ([("a", 1, 0.5)], ["a"]),
        ([("a", 1, 0.5), ("b", 2, 0.7), ("c", 3, 0.6)], ["a", "b"]),
        ([("a", 5, 0.9), ("b", 1, 0.1), ("c", 2, 0.1)], ["b", "a"]),
        ([("a", 1, 0.5), ("b", 1, 0.8)], ["b"]),
    ],
)
def test_pareto_front(points, front):
    assert [p[0] for p in svg.pareto_front(points)] == front


@pytest.mark.parametrize(
    "lo, hi, expected",
    [(0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]), (0, 10, [0, 2, 4, 6, 8, 10]), (0, 1000, [0, 200, 400, 600, 800, 1000])],
)
def test_nice_ticks(lo, hi, expected):
    assert svg.nice_ticks(lo, hi) == pytest.approx(expected)


@pytest.mark.parametrize("value, text", [(0.25, "0.25"), (1, "1"), (20, "20"), (1500, "1.5k"), (20000, "20k"), (1_200_000, "1.2M")])
def test_fmt_tick(value, text):
    assert svg.fmt_tick(value) == text


# ------------------------------------------------------------- rendering


def test_html_names_everything_and_is_self_contained():
    report = full_report()
    html = render_html(report)
    for name in report.strategies + report.datasets:
        assert f">{name}<" in html
    assert "lcrag comparison &lt;test&gt; &amp; co" in html and "<test>" not in html
    assert "sha256:abc123" in html and "smollm2" in html and "reader.max_tokens" in html
    for figure in ("quality", "frontier", "position", "heatmap"):
        assert html.count(f'data-figure="{figure}"') == 1
    assert html.count("<figure") == html.count("<figcaption") == 4
    assert "<script" not in html.lower()
    without_ns = html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in without_ns and "https://" not in without_ns


def test_html_skips_figures_without_data():
    html = render_html(build_report(hand_rows(), title="t", config={}, data_hashes={}))
    assert 'data-figure="frontier"' in html and 'data-figure="quality"' in html
    assert 'data-figure="position"' not in html and 'data-figure="heatmap"' not in html


def test_markdown_table_rows_match_report():
    report = full_report()
    md = render_markdown(report)
    lines = md.splitlines()
    for table in report.tables:
        assert f"### {table.dataset}" in lines
        start = lines.index(f"### {table.dataset}") + 2
        assert lines[start].startswith("| Strategy | n | EM | F1 | Recall |")
        body = lines[start + 2 : start + 2 + len(table.rows)]
        assert body == ["| " + " | ".join(stat_cells(s)) + " |" for s in table.rows]
    rag = next(s for s in report.overall if s.strategy == "rag")
    assert f"| rag | {rag.n} | {fmt_estimate(rag.em)} |" in md
    for figure in ("quality", "frontier", "position", "heatmap"):
        assert f"`{figure}`" in md


def test_write_report(tmp_path):
    html_path, md_path = write_report(full_report(), tmp_path / "out")
    assert (html_path.name, md_path.name) == ("report.html", "report.md")
    assert html_path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert md_path.read_text(encoding="utf-8").startswith("# lcrag comparison")


# -------------------------------------------------------------- Chromium


def png_facts(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the decompressed pixel stream). A blank
    page filters to a handful of byte values; a drawn page uses most of 0..255."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def chromium(args: list[str], profile: Path, deadline: float) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    env = {**os.environ, "HOME": str(profile)}
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, env=env,
                          timeout=max(1.0, deadline - time.monotonic()))


@pytest.mark.slow
@pytest.mark.browser
def test_chromium_renders_report(tmp_path):
    if not CHROMIUM.exists():
        if os.environ.get("LCRAG_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"LCRAG_REQUIRE_CHROMIUM=1 but {CHROMIUM} is missing: run scripts/setup_test_tools.sh")
        pytest.skip(f"{CHROMIUM} is not installed (scripts/setup_test_tools.sh installs it)")
    deadline = time.monotonic() + CHROMIUM_TIMEOUT_S
    report = full_report()
    html_path, _ = write_report(report, tmp_path / "out")
    url = html_path.resolve().as_uri()
    shot = tmp_path / "shot.png"
    done = chromium([f"--screenshot={shot}", "--window-size=1280,2400", url], tmp_path / "profile-shot", deadline)
    assert shot.exists(), f"no screenshot; chromium said: {done.stderr[-2000:]}"
    data = shot.read_bytes()
    width, height, distinct = png_facts(data)
    assert (width, height) == (1280, 2400)
    assert len(data) > 20_000 and distinct > 64, f"screenshot looks blank ({len(data)} bytes, {distinct} byte values)"

    dom = chromium(["--dump-dom", url], tmp_path / "profile-dom", deadline)
    assert dom.returncode == 0, dom.stderr[-2000:]
    figures = re.findall(r'<svg[^>]*data-figure="([a-z]+)"', dom.stdout)
    assert sorted(figures) == ["frontier", "heatmap", "position", "quality"]
    # pooled, one per dataset (hotpotqa, musique, niah, position-sweep), routes, config, hashes,
    # the paired table against lc when the rows include lc, and one cost table per data set
    assert dom.stdout.count("<table") == 1 + 4 + 3 + (1 if report.paired else 0) + len(report.cost)
    for name in ("hotpotqa", "musique", "self-route", "longrag"):
        assert name in dom.stdout
    if os.environ.get("LCRAG_REPORT_SHOT"):  # keep a copy to look at
        shutil.copy(shot, os.environ["LCRAG_REPORT_SHOT"])


def test_paired_rows_against_lc_by_hand():
    from lcrag.pipeline.report.model import paired_rows

    def row(strategy, qid, f1, tokens):
        return make_row(strategy=strategy, route=strategy, question_id=qid, f1=f1, prompt_tokens=tokens)

    rows = [row("lc", "a", 0.5, 1000), row("lc", "b", 0.2, 1000), row("rag", "a", 0.7, 250), row("rag", "b", 0.2, 250),
            row("rag", "c", 1.0, 250)]  # c has no lc answer: not paired
    (only,) = paired_rows(rows)
    assert (only.strategy, only.reference, only.n_pairs, only.wins, only.losses, only.ties) == ("rag", "lc", 2, 1, 0, 1)
    assert only.mean_diff == pytest.approx(0.1) and only.token_ratio == pytest.approx(0.25)
    assert only.low <= only.mean_diff <= only.high


def test_paired_rows_pair_only_within_a_run():
    from lcrag.pipeline.report.model import paired_rows

    def row(run, strategy, qid, f1):
        return make_row(run_id=run, strategy=strategy, route=strategy, question_id=qid, f1=f1, prompt_tokens=100)

    # run2 answered the same question ids with another reader: its rag rows have no lc partner
    rows = [row("run1", "lc", "a", 0.5), row("run1", "rag", "a", 0.5), row("run1", "lc", "b", 0.0),
            row("run1", "rag", "b", 1.0), row("run2", "rag", "a", 0.0), row("run2", "rag", "b", 0.0)]
    (only,) = paired_rows(rows)
    assert (only.n_pairs, only.wins, only.losses, only.ties) == (2, 1, 0, 1)
    assert only.mean_diff == pytest.approx(0.5)


@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (600.0, 1480.0), (528.0, 1534.0), (0.0, 0.37), (12.5, 13.0), (90.0, 2100.0)])
def test_nice_ticks_cover_the_range(lo, hi):
    from lcrag.pipeline.report.svg import nice_ticks

    ticks = nice_ticks(lo, hi)
    assert ticks[0] <= lo and ticks[-1] >= hi
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1 and 2 <= len(ticks) <= 8


def test_abstention_rows_by_hand():
    from lcrag.pipeline.report.model import abstention_rows

    rows = [
        # answerable: answered right (f1 1), answered wrong (f1 0), declined (f1 0)
        make_row(question_id="a1", dataset="squad2", answerable=True, abstained=False, f1=1.0),
        make_row(question_id="a2", dataset="squad2", answerable=True, abstained=False, f1=0.0),
        make_row(question_id="a3", dataset="squad2", answerable=True, abstained=True, f1=0.0),
        # unanswerable: declined (right), answered (wrong)
        make_row(question_id="u1", dataset="squad2", answerable=False, abstained=True, f1=1.0),
        make_row(question_id="u2", dataset="squad2", answerable=False, abstained=False, f1=0.0),
        make_row(question_id="h1", dataset="hotpot", f1=1.0),  # no abstention in play: not counted
    ]
    (row,) = abstention_rows(rows, lambda v: (sum(v) / len(v), min(v), max(v)))
    assert (row.dataset, row.strategy, row.n_answerable, row.n_unanswerable) == ("squad2", "rag", 3, 2)
    assert row.accuracy.mean == pytest.approx(3 / 5)  # a1, a2, u1 made the right call
    assert row.answerable_f1.mean == pytest.approx(1 / 3)
    assert row.abstained_unanswerable == pytest.approx(0.5) and row.abstained_answerable == pytest.approx(1 / 3)
    built = build_report(rows, title="t", config={}, data_hashes={})
    assert built.abstention == (abstention_rows(rows, default_interval)[0],)
    assert "Unanswerable questions" in render_html(built) and "## Unanswerable questions" in render_markdown(built)


def test_errors_are_counted_per_strategy_and_in_the_summary():
    report = build_report(hand_rows(), title="t", config={}, data_hashes={}, generated_at="now")
    assert report.n_errors == 1
    md = render_markdown(report)
    assert "| Strategy | n | EM | F1 | Recall |" in md and md.count("| Errors |") == len(report.tables) + 1
    assert "1 answer(s) failed with a reader error and are unscored (rag 1)" in md
    musique = next(t for t in report.tables if t.dataset == "musique").rows[0]
    assert stat_cells(musique)[-1] == "1"
    html = render_html(report)
    assert "<th>Errors</th>" in html and "1 answer(s) failed with a reader error" in html
    clean = build_report([r for r in hand_rows() if r.error is None], title="t", config={}, data_hashes={})
    assert clean.n_errors == 0 and "failed with a reader error" not in render_markdown(clean)
