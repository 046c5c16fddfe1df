"""The comparison report: ledger rows -> frozen report data (``model``) -> inline
SVG figures (``svg``) -> one self-contained HTML file and a Markdown twin
(``render``). Each step is a pure function so a report can be rebuilt, diffed
and tested without a browser or a network."""

from lcrag.pipeline.report.model import (
    DatasetTable,
    Estimate,
    FrontierPoint,
    HeatCell,
    PositionPoint,
    Report,
    RouteShare,
    StrategyStats,
    build_report,
    default_interval,
)
from lcrag.pipeline.report.render import render_html, render_markdown, write_report

__all__ = [
    "DatasetTable",
    "Estimate",
    "FrontierPoint",
    "HeatCell",
    "PositionPoint",
    "Report",
    "RouteShare",
    "StrategyStats",
    "build_report",
    "default_interval",
    "render_html",
    "render_markdown",
    "write_report",
]
