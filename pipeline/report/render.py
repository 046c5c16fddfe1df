"""Render a ``Report`` as one self-contained HTML file (inline CSS and SVG, no
scripts, no external references, so it opens offline and can be mailed or
archived as is) and as Markdown with the same tables for diffs and PRs.

This module turns the report into plain text (cells, sentences, notes); the layout is
in ``templates/report.html.j2`` and ``report.md.j2``, where Jinja escapes the HTML
(``markup``) and the ``md_cell`` filter the Markdown."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup

from lcrag.core.files import write_text_atomic
from lcrag.pipeline.report import svg
from lcrag.pipeline.report.cost import cost_json, cost_view
from lcrag.pipeline.report.letters import letter_view
from lcrag.pipeline.report.markup import render
from lcrag.pipeline.report.model import CLOSED_BOOK_MISSES, Estimate, Report, StrategyStats

HEADERS = (
    "Strategy",
    "n",
    "EM",
    "F1",
    "Recall",
    "Prompt tokens",
    "Completion tokens",
    "Latency (s)",
    "Context cut",
    "Fell back",
    "Errors",
)

CAPTIONS = {
    "quality": "Mean EM, F1 and evidence recall per strategy over all datasets; whiskers are 95% bootstrap intervals.",
    "frontier": "Cost against quality: mean prompt tokens per question against mean F1. The dashed line joins the "
    "Pareto frontier, the strategies no other strategy beats on both cost and quality.",
    "position": "Accuracy (EM, else F1) by the position of the evidence in the context, per strategy "
    "(position-sweep questions, ids ending in @posN).",
    "heatmap": "Needle-in-a-haystack accuracy by needle depth (% into the context) and haystack length (tokens), "
    "all strategies pooled (ids ending in @dD@LN).",
}


# ----------------------------------------------------------- cell formats


def fmt_estimate(est: Estimate | None) -> str:
    """Plain text for Markdown: ``0.620 [0.550, 0.690]``."""
    return "–" if est is None else f"{est.mean:.3f} [{est.low:.3f}, {est.high:.3f}]"


def fmt_share(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.1f}%"


def stat_cells(s: StrategyStats) -> tuple[str, ...]:
    """One table row as plain text, in ``HEADERS`` order (Markdown uses it as is)."""
    return (
        s.strategy,
        str(s.n),
        fmt_estimate(s.em),
        fmt_estimate(s.f1),
        fmt_estimate(s.recall),
        f"{s.prompt_tokens:,.0f}",
        f"{s.completion_tokens:,.1f}",
        f"{s.latency_s:.2f}",
        fmt_share(s.cut_share),
        fmt_share(s.fell_back_share),
        str(s.n_errors),
    )


def flatten(config: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested config as sorted dotted keys with JSON-ish values, one line each."""
    items: list[tuple[str, str]] = []
    for key in sorted(config, key=str):
        value, name = config[key], f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items.extend(flatten(value, f"{name}."))
        else:
            items.append((name, value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)))
    return items


def best_f1(stats: Sequence[StrategyStats]) -> StrategyStats | None:
    scored = [s for s in stats if s.f1 is not None]
    return max(scored, key=lambda s: (s.f1.mean, -s.prompt_tokens)) if scored else None


METRIC_NAMES = {"accuracy": "accuracy", "em": "exact match", "answer_recall": "answer recall", "f1": "F1"}


def rule_note(report: Report) -> str:
    """The verdict rule in one paragraph, with this report's settings."""
    st = report.settings
    return (f"How it decides: strategies whose answers are identical on every question are one contender; a strategy "
            f"is recommended only when it is shown non-inferior to every costlier one on the questions all answered "
            f"(each paired test one-sided at {st.alpha:.1%}/m, Bonferroni over the m contenders that have a costlier "
            f"one), so a cheaper strategy truly worse by the margin is recommended at most {st.alpha:.1%} of the time; "
            f"a costlier one only when every cheaper one is shown worse and the global test finds a difference; "
            f"otherwise unresolved. Margin: {st.margin_fraction:.0%} of {st.reference}'s shown lead over the "
            f"no-context control (or chance with its letter bias), at most {st.margin:g}; {st.margin:g} without a "
            f"control. Cost: {st.cost}.")


def verdict_text(line) -> str:
    """One data set's verdict as plain text: which questions and metric it rests on."""
    metric = METRIC_NAMES.get(line.metric, line.metric)
    beside = f", {METRIC_NAMES.get(line.secondary_metric, line.secondary_metric)} beside it" if line.secondary_metric else ""
    text = f"{line.dataset} ({metric}{beside}; on {line.basis}): {line.sentence}."
    for basis, verdict in line.other:
        text += f" On {basis}: {verdict.describe()}."
    return text


def findings(report: Report) -> list[str]:
    """Summary sentences (plain text) shared by HTML and Markdown."""
    lines = [
        f"{report.n_rows} answers from {len(report.strategies)} strategies on "
        f"{sum(1 for t in report.tables if not t.dataset.endswith(CLOSED_BOOK_MISSES))} dataset(s).",
    ]
    if report.n_errors:
        failed = ", ".join(f"{s.strategy} {s.n_errors}" for s in report.overall if s.n_errors)
        lines.append(f"{report.n_errors} answer(s) failed with a reader error and are unscored ({failed}); "
                     "rerun the same run id to retry them.")
    if report.overall_left_out:
        lines.append("Pooled over data sets only for strategies every data set ran; left out: "
                     + ", ".join(report.overall_left_out) + " (see their data sets).")
    for table in report.tables:
        if table.missing or table.dropped:
            parts = []
            if table.missing:
                parts.append(f"missing there: {', '.join(table.missing)}")
            if table.dropped:
                parts.append(f"{table.dropped} question(s) answered by only some strategies left out")
            lines.append(f"{table.dataset}: " + "; ".join(parts) + ".")
    front = svg.pareto_front([(p.strategy, p.prompt_tokens, p.f1) for p in report.frontier])
    if front:
        lines.append("On the cost/quality frontier (pooled): " + ", ".join(p[0] for p in front) + ".")
    fell = [s for s in report.overall if s.fell_back_share is not None]
    for s in fell:
        lines.append(f"{s.strategy} fell back to long context on {fmt_share(s.fell_back_share)} of questions.")
    return lines


def verdict_json(report: Report) -> list[dict]:
    """The verdicts as data (``lcrag report --json``): per data set the leading verdict's
    fields at the top (status, resolved, use as a list, reference, margin, test,
    questions_needed, identical and tied groups), every view under ``verdicts``; ``cost``
    the data set's cost section (``cost.cost_json``) and ``cost_axis`` the verdict's axis."""
    out = []
    for line in report.verdicts:
        views = [_verdict_dict(basis, v) for basis, v in [(line.basis, line.verdict), *line.other]]
        lead = views[0]
        out.append({
            "dataset": line.dataset, "metric": line.metric, "secondary_metric": line.secondary_metric,
            "rests_on": line.basis,
            **{k: lead[k] for k in ("status", "resolved", "use", "reference", "margin", "test", "global_test",
                                    "questions_needed", "identical", "tied", "n_questions", "sentence")},
            "cost_axis": lead["cost"],  # the verdict's cost axis (top-level "cost" held it before the cost section)
            "cost": cost_json(next((c for c in report.cost if c.dataset == line.dataset), None), report.settings.cost),
            "verdicts": views,
            # where quality is lost (oracle, rag, lc/coa); None when the data set has no oracle rows
            "diagnosis": next((d.as_dict() for d in report.diagnosis if d.dataset == line.dataset), None),
        })
    return out


DIAGNOSIS_NOTE = ("Four conditions on the same questions: the gold evidence alone (oracle), retrieved passages (rag) "
                  "and whole documents (lc or coa, the better one here); closed-book, where run, reads nothing. "
                  "Retrieval loss = oracle - rag; full-reading recovery = lc/coa - rag (paired, 95% interval); "
                  "reader limit = 1 - oracle (95% Wilson interval). Rule, first that holds: recovery above 0: long "
                  "context pays; retrieval loss above 0: retrieval is the bottleneck; reader limit's lower bound above "
                  "0.5: a bigger reader is needed; a difference below 0: rag is enough; else cannot tell. Questions "
                  "without gold evidence are not asked of the oracle and not diagnosed.")
DIAGNOSIS_HEADERS = ("Dataset", "Questions", "Retrieval loss (oracle - rag)", "Full-reading recovery",
                     "Reader limit (1 - oracle)", "Diagnosis")


def diagnosis_cells(d) -> tuple[str, ...]:
    def signed(iv) -> str:
        return "–" if iv is None else f"{iv.mean:+.3f} [{iv.low:+.3f}, {iv.high:+.3f}]"

    recovery = "–" if d.recovery is None else f"{d.full_reader}: {signed(d.recovery)}"
    lim = d.reader_limit
    limit = "–" if lim is None else f"{lim.mean:.3f} [{lim.low:.3f}, {lim.high:.3f}]"
    n = str(d.n) + (f" (+{d.without_oracle} without an oracle answer)" if d.without_oracle else "")
    return (d.dataset, n, signed(d.retrieval_loss), recovery, limit, d.sentence)


def _verdict_dict(basis: str, v) -> dict:
    return {
        "questions": basis, "status": v.status, "resolved": v.resolved, "use": list(v.use), "basis": v.basis,
        "reference": v.reference, "margin": v.margin.as_dict(), "cost": v.cost_axis,
        "test": {"name": v.test_name, "alpha": v.alpha, "alpha_each": v.alpha_each, "candidates": v.candidates,
                 "clusters": v.clusters, "few_clusters": v.few_clusters},
        "global_test": None if v.global_test is None else {
            "name": v.global_test.name, "statistic": v.global_test.statistic, "df": v.global_test.df,
            "p_value": v.global_test.p_value},
        "questions_needed": v.questions_needed, "sentence": v.describe(), "n_questions": v.n_questions,
        "identical": [list(g) for g in v.identical], "tied": [list(g) for g in v.tied],
        "means": dict(v.means or {}), "costs": dict(v.costs or {}), "missing": list(v.missing or ()),
        "contenders": [{"name": c.name, "members": list(c.members), "mean": c.mean, "cost": c.cost}
                       for c in v.contenders],
        "comparisons": [
            {"candidate": c.candidate, "against": c.against, "outcome": c.outcome, "cost_ratio": c.cost_ratio,
             "fragile": c.fragile, "questions_needed": c.questions_needed, "method": c.test.method,
             "difference": {"mean": c.test.mean_diff, "low": c.test.low, "high": c.test.high, "n": c.test.n_pairs,
                            "wins": c.test.wins, "losses": c.test.losses, "ties": c.test.ties},
             "p_non_inferior": c.test.p_non_inferior, "p_inferior": c.test.p_inferior}
            for c in v.comparisons
        ],
    }


def _difference(diff) -> dict | None:
    return None if diff is None else {"mean": diff.mean_diff, "low": diff.low, "high": diff.high, "n": diff.n_pairs}


# ---------------------------------------------------------------- figures


def figures(report: Report) -> dict[str, Markup]:
    """The SVG of every figure the report has data for, keyed by figure name; marked safe
    for the HTML template because svg.py escaped every text in it (``markup.escape``)."""
    out: dict[str, str] = {}
    colours = {name: svg.colour(i) for i, name in enumerate(report.strategies)}
    metrics = [(name, attr) for name, attr in (("EM", "em"), ("F1", "f1"), ("Recall", "recall"))
               if any(getattr(s, attr) is not None for s in report.overall)]
    if metrics:
        out["quality"] = svg.bars_with_intervals(
            [s.strategy for s in report.overall],
            {name: [_triple(getattr(s, attr)) for s in report.overall] for name, attr in metrics},
            "score",
            "Answer quality per strategy",
        )
    if report.frontier:
        out["frontier"] = svg.scatter(
            [(p.strategy, p.prompt_tokens, p.f1) for p in report.frontier],
            "mean prompt tokens per question",
            "mean F1",
            "Cost / quality frontier",
            colours=colours,
        )
    if report.positions:
        series: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for p in report.positions:
            series[p.strategy].append((p.position, p.accuracy))
        out["position"] = svg.lines(series, "evidence position", "accuracy", "Accuracy by evidence position", colours=colours)
    if report.heatmap:
        out["heatmap"] = svg.heatmap(
            [(c.length, c.depth, c.accuracy, c.n) for c in report.heatmap],
            "haystack length (tokens)",
            "needle depth (%)",
            "Needle in a haystack",
        )
    return {name: Markup(text) for name, text in out.items()}


def _triple(est: Estimate | None) -> tuple[float, float, float] | None:
    return None if est is None else (est.mean, est.low, est.high)


# ------------------------------------------------------------- table rows


def stat_rows(stats: Sequence[StrategyStats]) -> list[dict[str, Any]]:
    """A results table's rows for the templates: the plain cells (Markdown prints them as
    they are), the quality estimates (HTML sets each interval in small type) and whether
    the row has the best mean F1 (bold in HTML)."""
    best = best_f1(stats)
    return [{"cells": stat_cells(s), "estimates": (s.em, s.f1, s.recall),
             "best": best is not None and s.strategy == best.strategy} for s in stats]


PAIRED_HEADERS = ("Dataset", "Strategy", "F1 minus lc [95% CI]", "Pairs", "Wins / losses / ties", "Prompt tokens vs lc")


def paired_cells(row) -> tuple[str, ...]:
    ratio = f"{row.token_ratio:.2f}x" if row.token_ratio is not None else "–"
    return (row.dataset, row.strategy, f"{row.mean_diff:+.3f} [{row.low:+.3f}, {row.high:+.3f}]", str(row.n_pairs),
            f"{row.wins} / {row.losses} / {row.ties}", ratio)


ABSTENTION_HEADERS = ("Dataset", "Strategy", "Right call", "F1 (answerable)", "Declined unanswerable",
                      "Declined answerable", "n answerable / unanswerable")


def abstention_cells(row) -> tuple[str, ...]:
    return (row.dataset, row.strategy, fmt_estimate(row.accuracy), fmt_estimate(row.answerable_f1),
            fmt_share(row.abstained_unanswerable), fmt_share(row.abstained_answerable),
            f"{row.n_answerable} / {row.n_unanswerable}")


RETRIEVAL_HEADERS = ("Dataset", "Method", "Queries", "nDCG@10", "Recall@k", "MRR", "k", "Search (ms)")


def retrieval_cells(row) -> tuple[str, ...]:
    return (row.dataset, row.method, str(row.n), fmt_estimate(row.ndcg_at_10), fmt_estimate(row.recall_at_k),
            fmt_estimate(row.mrr), str(row.k), f"{row.latency_ms:.1f}")


def _route_rows(report: Report) -> list[tuple[str, str, str]]:
    """(strategy, route shares, fall-back rate) as plain text, one per strategy."""
    shares: dict[str, list[str]] = defaultdict(list)
    for r in sorted(report.routes, key=lambda r: (r.strategy, -r.share, r.route)):
        shares[r.strategy].append(f"{r.route} {fmt_share(r.share)}")
    return [(s.strategy, " · ".join(shares[s.strategy]), fmt_share(s.fell_back_share)) for s in report.overall]


ROUTING_HEADERS = ("Policy", "Quality", "Prompt tokens", "× lc tokens", "vs lc [95% CI]", "Against lc", "Destinations")
ROUTING_NOTE = ("Routing policies on held-out questions (5-fold cross-validation: each question is routed by a router "
                "and a self-route threshold fitted on the other folds; the router's score and tokens per question are "
                "averaged over repeated cross-validations with different folds). A routed question pays for the cheap "
                "read (rag) and, when sent on, for its destination too. always-X sends every question to X (a constant "
                "policy). The oracle takes each question's best strategy at its cost: the ceiling. Against lc: the "
                "verdict rule with the report's margin. Below each table, the router against the best constant policy "
                "(highest quality, then fewest tokens): it earns its place only by beating it, or by being non-inferior "
                "at fewer tokens; otherwise `route fit` installs the constant instead.")


def routing_cells(s, best: Sequence[str] = ()) -> tuple[str, ...]:
    """A policy's row; ``best`` names the best constant policies, marked as such."""
    d = s.difference
    vs = "" if d is None else f"{d.mean_diff:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"
    ratio = "" if s.token_ratio is None else f"{s.token_ratio:.2f}"
    shares = ", ".join(f"{k} {v:.0%}" for k, v in s.shares.items())
    against = (s.outcome or "reference").replace("_", "-")
    if s.questions_needed:
        against += f" (~{s.questions_needed} q would tell)"
    name = s.name + (" (best constant" + (", tied" if len(best) > 1 else "") + ")" if s.name in best else "")
    return (name, f"{s.mean_score:.3f}", f"{s.mean_tokens:.0f}", ratio, vs, against, shares)


def routing_caption(section) -> str:
    left = f"; {section.without_features} without routing features left out" if section.without_features else ""
    nothing = getattr(section, "no_candidate_answered", 0)
    unlabelled = f"; {nothing} no strategy answered right (scored, not trained on)" if nothing else ""
    return f"{section.dataset}: {section.n} questions, {section.metric}{left}{unlabelled}"


def decision_line(decision, repeats: int | None = None) -> str:
    """The router against the best constant policy, and what is installed (a
    ``routing.decision.Decision``), as one plain paragraph."""
    d = decision.difference
    best = ", ".join(decision.best_constant) + (" (tied)" if len(decision.best_constant) > 1 else "")
    over = f", averaged over {repeats} cross-validation repeats" if repeats and repeats > 1 else ""
    reason = decision.reason[:1].upper() + decision.reason[1:]
    def questions(n: int) -> str:
        return f"{n} question" + ("" if n == 1 else "s")

    return (f"Best constant policy: {best}. Router against {decision.against}, held out{over}: better on "
            f"{questions(d.wins)}, worse on {questions(d.losses)}, at {decision.router_tokens:.0f} against "
            f"{decision.constant_tokens:.0f} mean prompt tokens. {reason}.")


def routing_rows(section) -> list[tuple[str, ...]]:
    best = section.decision.best_constant if section.decision is not None else ()
    return [routing_cells(p, best) for p in section.policies]


# -------------------------------------------------------------- templates


FIGURE_TITLES = {"frontier": "Cost / quality frontier", "position": "Evidence position", "heatmap": "Needle in a haystack"}
ROUTE_HEADERS = ("Strategy", "Routes (share of answers)", "Fall-back rate")


def meta_line(report: Report) -> str:
    """The line under the title: when, which runs, which readers, how many rows."""
    return (f"Generated {report.generated_at} · runs: {', '.join(report.run_ids) or 'none'} · "
            f"reader: {', '.join(report.readers) or 'none'} · {report.n_rows} ledger rows")


def contents(report: Report, figs: Mapping[str, str]) -> list[tuple[str, str]]:
    """The HTML sections the report has, in order, with their link text: the nav lists
    them and the body renders them from the same list, so the two cannot disagree."""
    optional = (("cost", "Cost", report.cost), ("diagnosis", "Diagnosis", report.diagnosis),
                ("routes", "Router choices", True), ("letters", "Multiple choice", report.letters),
                ("routing", "Routing policies", report.routing), ("paired", "Against long context", report.paired),
                ("retrieval", "Retrieval", report.retrieval), ("abstention", "Unanswerable questions", report.abstention),
                ("config", "Configuration", True))
    return ([("verdict", "Verdict"), ("summary", "Summary"), ("datasets", "Results by dataset")]
            + [(name, title) for name, title in FIGURE_TITLES.items() if name in figs]
            + [(key, label) for key, label, present in optional if present])


def _routing_view(section) -> dict[str, Any]:
    """One routing table: its caption, rows and the router's decision (None without one)."""
    decision = None if section.decision is None else decision_line(section.decision, section.repeats)
    return {"caption": routing_caption(section), "rows": routing_rows(section), "decision": decision}


def report_view(report: Report) -> dict[str, Any]:
    """Everything both templates show, as plain text the templates escape (only the
    figures are markup), so HTML and Markdown say the same things."""
    figs = figures(report)
    return {
        "title": report.title, "meta": meta_line(report), "toc": contents(report, figs),
        "rule_note": rule_note(report), "verdicts": [verdict_text(line) for line in report.verdicts],
        "findings": findings(report), "overall": stat_rows(report.overall),
        "tables": [{"dataset": table.dataset, "rows": stat_rows(table.rows)} for table in report.tables],
        "figures": {name: {"svg": text, "number": i + 1, "caption": CAPTIONS[name]} for i, (name, text) in enumerate(figs.items())},
        "cost": cost_view(report.cost, report.settings.cost) if report.cost else None,
        "diagnosis_note": DIAGNOSIS_NOTE, "diagnosis": [diagnosis_cells(d) for d in report.diagnosis],
        "routes": _route_rows(report),
        "letters": [letter_view(name, profiles) for name, profiles in report.letters],
        "routing_note": ROUTING_NOTE, "routing": [_routing_view(section) for section in report.routing],
        "paired": [paired_cells(r) for r in report.paired],
        "retrieval": [retrieval_cells(r) for r in report.retrieval],
        "abstention": [abstention_cells(r) for r in report.abstention],
        "config": flatten(report.config), "hashes": sorted(report.data_hashes.items()),
        "headers": {"stats": HEADERS, "diagnosis": DIAGNOSIS_HEADERS, "routes": ROUTE_HEADERS, "routing": ROUTING_HEADERS,
                    "paired": PAIRED_HEADERS, "retrieval": RETRIEVAL_HEADERS, "abstention": ABSTENTION_HEADERS},
    }


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    return render("report.html.j2", **report_view(report))


def render_markdown(report: Report) -> str:
    """The report's tables in Markdown; figures are named and live in report.html."""
    return render("report.md.j2", **report_view(report))


def write_report(report: Report, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out / "report.html", out / "report.md"
    write_text_atomic(html_path, render_html(report))  # a reader of the folder never sees half a report
    write_text_atomic(md_path, render_markdown(report))
    return html_path, md_path
