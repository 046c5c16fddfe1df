"""``lcrag route``: fit a router on an evaluation run, and show what it learnt."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import typer
from rich.table import Table

from lcrag.app.cli.common import LcragError, fail, out
from lcrag.pipeline.statistics.verdict import NON_INFERIORITY_MARGIN

# routing.fit.REPEATS and routing.decision.AUTO / INSTALL_CHOICES, spelt out so `lcrag` starts without scikit-learn
REPEATS = 5
INSTALL_CHOICES = ("auto", "tree", "constant", "none")
AUTO = INSTALL_CHOICES[0]

route_app = typer.Typer(
    help="Fit a router on an evaluation run (which strategy each question needs), and show it.\n\n"
    "The router is a small decision tree over what is known before the costly read (scope size against the budget, "
    "retrieval scores and margins, dense/BM25 agreement, question length and form) and the cheap read's confidence. "
    "It is saved beside the index (router.json), where `ask`, the auto strategy and the API use it, only when it earns "
    "its place against the best constant policy (always the same strategy); otherwise that constant is saved instead.",
    no_args_is_help=True,
)


def _summary_table(title: str, held_out: list[dict], best: tuple[str, ...] = ()) -> Table:
    """The stored held-out scores as the report shows them, with the question count;
    ``best`` names the best constant policies."""
    from lcrag.pipeline.report.render import ROUTING_HEADERS, routing_cells
    from lcrag.pipeline.routing.policies import PolicySummary

    table = Table(title=title, title_justify="left")
    for column in (ROUTING_HEADERS[0], "n", *ROUTING_HEADERS[1:]):
        table.add_column(column)
    for stored in held_out:
        summary = PolicySummary.from_dict(stored)
        name, *rest = routing_cells(summary, best)
        table.add_row(name, str(summary.n), *rest)
    return table


@route_app.command("fit")
def fit(
    run_id: str = typer.Option(..., "--run-id", help="The evaluation run to learn from (it must have rag and lc rows)."),
    index: Path | None = typer.Option(
        None, "--index", "-i", help="Save the router beside this index (router.json), where ask, auto and the API use it."),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="Save the router to this file instead (or as well)."),
    dataset: str | None = typer.Option(None, "--dataset", help="The run's data set to fit on (needed when it holds several)."),
    ledger_file: Path | None = typer.Option(None, "--ledger", help="DuckDB ledger (default: ledger.duckdb in the state folder)."),
    test_run: str | None = typer.Option(
        None, "--test-run", help="Also score the fitted router, unchanged, on another run (a data set it was not fitted on)."),
    test_dataset: str | None = typer.Option(None, "--test-dataset", help="The data set of --test-run (when it holds several)."),
    margin: float = typer.Option(NON_INFERIORITY_MARGIN, "--margin", help="Non-inferiority margin against lc (absolute, 0-1)."),
    repeats: int = typer.Option(REPEATS, "--repeats", help="Cross-validation repeats (seeds 0..R-1) the router's held-out scores are averaged over."),
    install: str = typer.Option(
        AUTO, "--install", help="auto: the tree if it earns its place against the best constant policy, else that "
        "constant (rag when tied with it, else nothing); tree, constant or none: that, whatever the comparison says."),
    as_json: bool = typer.Option(False, "--json", help="Print the fitted router's scores as JSON."),
) -> None:
    """Learn, from one run's ledger rows, which strategy each question needs, and install it only if it pays.

    Labels: the cheapest strategy (rag, longrag, op-rag, reorder, lc, coa) that answered the question right; questions
    no strategy answered right are left out of the tree's training (they say nothing about which strategy a
    question needs) but still scored. Scores: 5-fold cross-validation repeated --repeats times, so no question is
    routed by a model that saw it; the router, self-route with its calibrated threshold, always-X for every
    strategy and the oracle, as quality against prompt tokens. The router is installed when its held-out score
    beats the best constant policy, or is non-inferior to it at fewer prompt tokens; otherwise that constant is
    installed (see --install). The run needs its routing features: `lcrag eval` records them (rerunning it with
    the same run id adds them to an older run)."""
    from lcrag.core.paths import default_ledger
    from lcrag.pipeline.index.folder import is_generational, live_name
    from lcrag.pipeline.ledger import Ledger
    from lcrag.pipeline.routing.decision import NONE
    from lcrag.pipeline.routing.fit import fit_router, score_router
    from lcrag.pipeline.routing.router import load_router, router_path, save_router
    from lcrag.pipeline.routing.table import routing_table

    if index is None and out_file is None:
        fail("say where the router goes: --index INDEX (beside the index, used by ask/auto/serve) or --out FILE")
    if not 0 < margin < 1:
        fail(f"--margin must be between 0 and 1, got {margin}")
    if install not in INSTALL_CHOICES:
        fail(f"--install must be one of {', '.join(INSTALL_CHOICES)}, got {install!r}")
    if repeats < 1:
        fail(f"--repeats must be at least 1, got {repeats}")
    kept = None
    try:
        ledger = Ledger(ledger_file or default_ledger())
        rows = ledger.rows(run_id)
        if not rows:
            fail(f"run {run_id!r} has no rows in {ledger.path}; `lcrag eval --run-id {run_id} ...` first")
        table = routing_table(rows, ledger.feature_rows(run_id), dataset)
        generation = ""
        if index is not None:
            if not index.is_dir():
                fail(f"index {index} does not exist; pass the folder given to `lcrag ingest --index`")
            generation = (live_name(index) or "") if is_generational(index) else ""
        router = fit_router(table, run_id, margin, generation, repeats=repeats, install=install)
        if test_run:
            test_table = routing_table(ledger.rows(test_run), ledger.feature_rows(test_run), test_dataset)
            tested = score_router(router, test_table, margin)
            router = replace(router, scores={
                **router.scores, "test": {"run_id": test_run, "dataset": test_table.dataset,
                                          "held_out": [s.as_dict() for s in tested]}})
        if router.scores["decision"]["installed"] == NONE:
            written = []
            kept = load_router(router_path(index)) if index is not None else None
        else:
            written = [save_router(router, p) for p in (router_path(index) if index else None, out_file) if p is not None]
    except LcragError as err:
        fail(str(err))
    if as_json:
        out.print_json(router.to_json())
        return
    show_router(router)
    if written:
        out.print(f"saved to {', '.join(str(p) for p in written)}", highlight=False)
    elif kept is not None:
        out.print(f"no router written: the router already at {router_path(index)} (fitted on run {kept.run_id or '?'}, "
                  f"{kept.fitted_at or 'unknown date'}) is left as it is; remove it for the size rule", highlight=False)
    else:
        where = f"; {router_path(index)} stays absent, so auto keeps the size rule" if index is not None else ""
        out.print(f"no router written{where}", highlight=False)


def show_router(router) -> None:
    scores = router.scores
    out.print(f"router fitted on run {router.run_id}, data set {router.dataset} ({router.metric}), "
              f"{scores.get('questions', '?')} questions, {router.fitted_at}", highlight=False)
    stored, order = scores.get("labels", {}), {name: rank for rank, name in enumerate(router.classes)}
    labels = ", ".join(f"{k} {stored[k]}" for k in sorted(stored, key=lambda k: (order.get(k, len(order)), k)))
    out.print(f"labels (cheapest strategy that answered right): {labels}", highlight=False)
    if "no_candidate_answered" in scores:
        out.print(f"no candidate answered right: {scores['no_candidate_answered']} questions (left out of the tree's "
                  "training, still scored)", highlight=False)
    used = sorted({router.feature_names[n.feature] for n in router.nodes if n.feature >= 0})
    out.print(f"features used: {', '.join(used) or 'none (one leaf: the same strategy for every question)'}", highlight=False)
    for line in router.rules():
        out.print("  " + line, highlight=False)
    threshold = router.self_route_threshold
    calibration = scores.get("calibration", {})
    out.print(f"self-route threshold: {'declines only' if not threshold else f'{threshold:.3f}'} "
              f"(fall-back rate {calibration.get('fallback_rate', 0):.0%} on the fitting run)", highlight=False)
    decision = scores.get("decision")
    if scores.get("held_out"):
        repeated = f"{scores['repeats']}\u00d7 repeated " if scores.get("repeats") else ""
        out.print(_summary_table(f"held out ({repeated}{scores.get('folds')}-fold cross-validation), margin "
                                 f"{scores.get('margin')}", scores["held_out"],
                                 tuple(decision.get("best_constant", ())) if decision else ()))
    if decision:
        from lcrag.pipeline.report.render import decision_line
        from lcrag.pipeline.routing.decision import Decision

        out.print(decision_line(Decision.from_dict(decision), scores.get("repeats")), highlight=False)
    test = scores.get("test")
    if test:
        out.print(_summary_table(f"on run {test['run_id']}, data set {test['dataset']} (not fitted on)", test["held_out"]))


@route_app.command("show")
def show(
    index: Path | None = typer.Option(None, "--index", "-i", help="The index whose router to show."),
    router_file: Path | None = typer.Option(None, "--file", "-f", help="A router file (from route fit --out)."),
    as_json: bool = typer.Option(False, "--json", help="Print the router file as JSON."),
) -> None:
    """What the fitted router uses, how it was scored, and on which run."""
    from lcrag.pipeline.routing.router import load_router, router_path

    if (index is None) == (router_file is None):
        fail("give one of --index INDEX or --file FILE")
    path = router_path(index) if index is not None else router_file
    try:
        router = load_router(path)
    except LcragError as err:
        fail(str(err))
    if router is None:
        fail(f"no router at {path}: the auto strategy uses the size rule there. Fit one with "
             f"`lcrag route fit --run-id RUN --index {index or 'INDEX'}`")
    if as_json:
        out.print_json(json.dumps(json.loads(router.to_json())))
        return
    show_router(router)
