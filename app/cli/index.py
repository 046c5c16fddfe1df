"""Index commands: ``ingest`` a source into an index folder, ``search`` it, ``info`` about it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer
from rich.table import Table

from lcrag.app.cli.common import LcragError, console, fail, out, progress


def ingest(
    source: Path = typer.Argument(..., help="A folder of files, a single file, or a data set (BEIR folder, SQuAD/HotpotQA json, jsonl)."),
    index: Path = typer.Option(..., "--index", "-i", help="Index folder to create or update."),
    fmt: str = typer.Option("auto", "--format", "-f", help="auto | files | beir | squad | hotpotqa | jsonl."),
    config_file: Path | None = typer.Option(None, "--config", "-c", help="YAML config (see configs/default.yaml)."),
    name: str | None = typer.Option(
        None, "--name", help="Source name inside the index (default: the source's file or folder name). "
        "Re-ingesting under the same name updates that source: changed documents are re-embedded, removed ones deleted."
    ),
    generations: bool = typer.Option(
        False, "--generations", help="Write a new generation beside the live one and publish it when finished, "
        "so a running `lcrag serve` switches to it without a restart (implied when --index already holds generations)."
    ),
    follow_symlinks: bool | None = typer.Option(
        None, "--follow-symlinks/--no-follow-symlinks", help="Follow symlinks whose target lies outside the SOURCE folder "
        "(default: ingest.follow_symlinks, off: such links are skipped and listed, so a shared folder cannot pull "
        "in other files)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Ingest SOURCE into the index at --index: long units, late-chunked vectors, BM25.

    Running it again is incremental: unchanged documents cost nothing. A run that
    was killed resumes where it stopped. Files that cannot be loaded (unreadable,
    not regular files, over ingest.max_file_mib, hidden, symlinks leading outside,
    unparsable) are listed with the reason and skipped; the rest is ingested.
    """
    from lcrag.pipeline.config import load_config
    from lcrag.pipeline.index.folder import is_generational
    from lcrag.pipeline.ingest.ingestion import default_source_name, ingest_generation, load_options, runtime_for_index
    from lcrag.pipeline.ingest.ingestion import ingest as run_ingest
    from lcrag.pipeline.ingest.loaders import load_source
    from lcrag.retrievers.encoders.encoder import make_encoder

    try:
        config = load_config(config_file)
        started = time.perf_counter()
        with console.status(f"loading {source} ..."):
            loaded = load_source(source, fmt, load_options(config, follow_symlinks))
        config = runtime_for_index(config, index)  # encoder.runtime auto: an index keeps its own
        encoder = make_encoder(config.encoder)
        with progress() as bar:
            task = None

            def factory(total: int):
                nonlocal task
                task = bar.add_task("embedding tokens", total=total)
                return lambda n: bar.advance(task, n)

            source_name = name or default_source_name(source)
            live = None
            if generations or is_generational(index):
                report, live = ingest_generation(loaded, index, config, encoder, source_name, factory)
            else:
                report = run_ingest(loaded, index, config, encoder, source_name, factory)
        seconds = time.perf_counter() - started
    except LcragError as err:
        fail(str(err))

    m, p, e = report.manifest, report.plan, report.embed
    summary = {
        "index": str(index),
        "source": p.source_name,
        "format": loaded.format,
        "documents": m.documents,
        "units": m.units,
        "chunks": m.chunks,
        "tokens": m.tokens,
        "added": p.added,
        "changed": p.changed,
        "removed": p.removed,
        "unchanged": p.unchanged,
        "embedded_units": e.units,
        "embedded_tokens": e.tokens,
        "tokens_per_second": round(e.tokens / e.seconds) if e.seconds > 0 and e.tokens else 0,
        "skipped": [{"path": s.path, "reason": s.reason} for s in p.skipped],
        "warnings": [{"path": w.path, "message": w.message} for w in p.warnings],
        "seconds": round(seconds, 2),
        "generation": m.generation,
        "live_generation": live,
        "notes": list(report.notes),
    }
    if as_json:
        out.print_json(json.dumps(summary))
        return
    table = Table(title=f"ingested {p.source_name} into {index}", show_header=False)
    for key in ("documents", "units", "chunks", "tokens", "added", "changed", "removed", "unchanged",
                "embedded_units", "embedded_tokens", "tokens_per_second", "seconds", "generation"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    table.add_row("skipped", str(len(p.skipped)))
    if p.warnings:
        table.add_row("warnings", str(len(p.warnings)))
    if live:
        table.add_row("live generation", live)
    out.print(table)
    for s in p.skipped:
        out.print(f"  skipped {s.path}: {s.reason}", highlight=False)
    for w in p.warnings:
        out.print(f"  warning {w.path}: {w.message}", highlight=False)
    for note in report.notes:
        out.print(f"  note: {note}", highlight=False)


def search(
    query: str | None = typer.Argument(None, help="The question or keywords. Omit when using --queries."),
    index: Path = typer.Option(..., "--index", "-i", help="A finished index folder."),
    k: int = typer.Option(10, "-k", help="How many results (per query)."),
    mode: str | None = typer.Option(None, "--mode", "-m", help="dense | bm25 | hybrid (default: the index's config, hybrid)."),
    fusion: str | None = typer.Option(
        None, "--fusion", help="hybrid: convex (min-max scores) | rrf (ranks only) (default: the index's config, convex)."
    ),
    level: str = typer.Option("chunk", "--level", "-l", help="chunk | unit | doc: rank chunks, long units, or documents (score = best chunk)."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
    queries: Path | None = typer.Option(None, "--queries", "-q", help="BEIR-style queries.jsonl (_id, text): search them all."),
    run_file: Path | None = typer.Option(None, "--run-file", help="With --queries: write a TREC run file (qid Q0 docid rank score tag)."),
    tag: str = typer.Option("lcrag", "--tag", help="Run tag written in the TREC run file."),
) -> None:
    """Search an index and show the best chunks, units or documents with scores and citations."""
    from lcrag.pipeline.index.search import IndexReader
    from lcrag.retrievers.encoders.encoder import make_encoder

    if (query is None) == (queries is None):
        fail("give either a QUERY or --queries FILE (not both)")
    if run_file is not None and queries is None:
        fail("--run-file needs --queries FILE")
    try:
        with IndexReader(index, make_encoder) as reader:
            if queries is not None:
                search_many(reader, queries, k, mode, level, run_file, tag, as_json, fusion)
                return
            hits = reader.search(query, k=k, mode=mode, level=level, fusion=fusion)  # type: ignore[arg-type]
    except LcragError as err:
        fail(str(err))
    if as_json:
        out.print_json(json.dumps([hit_dict(h) for h in hits]))
        return
    shown = mode or reader.config.retrieval.mode
    if shown == "hybrid":
        shown += f", {fusion or reader.config.retrieval.fusion} fusion"
    table = Table(title=f"{len(hits)} {level} results ({shown})")
    for column in ("#", "score", "document", "unit", "best chunk offsets", "text"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(hits, 1):
        snippet = " ".join(hit.text.split())
        table.add_row(str(rank), f"{hit.score:.4f}", hit.doc_id, hit.unit_id, f"{hit.start}-{hit.end}",
                      snippet[:160] + ("…" if len(snippet) > 160 else ""))
    out.print(table)


def hit_dict(hit) -> dict:
    return {
        "level": hit.level, "key": hit.key, "score": hit.score, "doc_id": hit.doc_id, "unit_id": hit.unit_id,
        "chunk_id": hit.chunk_id, "start": hit.start, "end": hit.end, "text": hit.text,
        "sources": dict(hit.sources),
    }


class RunFileError(LcragError, ValueError):
    """A value cannot be one column of a TREC run file; the message names it."""


def trec_field_problem(value: str) -> str | None:
    """Why ``value`` cannot be a column of a TREC run file, or None. Columns are
    separated by white space and rows by newlines, so an id holding either (or an
    empty one) would silently shift or split a row."""
    if not value:
        return "is empty"
    if any(ch.isspace() for ch in value):
        return "contains white space or a line break"
    return None


def check_trec_field(kind: str, value: str) -> None:
    """``RunFileError`` naming ``value`` when it cannot be written to a run file."""
    problem = trec_field_problem(value)
    if problem:
        raise RunFileError(
            f"cannot write the TREC run file: {kind} {value!r} {problem}, and run file columns are separated by "
            "white space; rename it in the data (or the --tag), or search without --run-file (--json keeps any id)"
        )


def trec_lines(qid: str, hits, tag: str) -> list[str]:
    """One run file row per hit (qid Q0 docid rank score tag); ids are checked first."""
    check_trec_field("query id", qid)
    rows = []
    for rank, hit in enumerate(hits, 1):
        check_trec_field("document id" if hit.level == "doc" else f"{hit.level} id", hit.key)
        rows.append(f"{qid} Q0 {hit.key} {rank} {hit.score:.6f} {tag}")
    return rows


def search_many(reader, queries_path: Path, k, mode, level, run_file, tag, as_json, fusion=None) -> None:
    from lcrag.pipeline.ingest.loaders.beir import load_beir_queries

    try:
        queries = load_beir_queries(queries_path)
    except (OSError, LcragError) as err:
        fail(f"cannot read queries from {queries_path}: {err}")
    if run_file is not None:  # refuse before searching what could not be written
        check_trec_field("run tag", tag)
        for q in queries:
            check_trec_field("query id", q.qid)
    lines, results = [], {}
    with progress() as bar:
        task = bar.add_task("queries", total=len(queries))
        for q in queries:
            hits = reader.search(q.text, k=k, mode=mode, level=level, fusion=fusion)
            results[q.qid] = [hit_dict(h) for h in hits]
            if run_file is not None:
                lines.extend(trec_lines(q.qid, hits, tag))
            bar.advance(task)
    if run_file is not None:
        run_file.parent.mkdir(parents=True, exist_ok=True)
        run_file.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        console.print(f"wrote {len(lines)} lines for {len(queries)} queries to {run_file}")
    if as_json:
        out.print_json(json.dumps(results))


def _reader_choice() -> str:
    """The reader the default config serves on this machine (``reader.model: auto`` resolved)."""
    from lcrag.core.paths import state_home
    from lcrag.pipeline.config import load_config

    reader = load_config(None).reader.on_this_machine(state_home())
    return f"{reader.model} ({reader.model_dir}; dtype {reader.dtype})"


def info(
    index: Path | None = typer.Option(None, "--index", "-i", help="An index folder: also show what it holds and how it was built."),
) -> None:
    """Show the version, where state lives (ledger, reader, models), and what an index holds."""
    from importlib.metadata import PackageNotFoundError, version

    from lcrag.core.paths import HOME_ENV, default_ledger, state_home
    from lcrag.pipeline.config import default_config_path
    from lcrag.pipeline.index.folder import is_generational, live_path, require_finished

    try:
        lcrag_version = version("lcrag")
    except PackageNotFoundError:
        lcrag_version = "unknown"
    installation = {
        "version": lcrag_version,
        "state": str(state_home()),
        "state_from": f"${HOME_ENV}" if os.environ.get(HOME_ENV) else "default (set $LCRAG_HOME to move it)",
        "ledger": str(default_ledger()),
        "default_config": str(default_config_path()),
        "reader": _reader_choice(),
    }
    if index is not None:
        try:
            generation, folder = live_path(index) if is_generational(index) else (None, index)
            manifest = require_finished(folder)
        except LcragError as err:
            fail(str(err))
        out.print_json(json.dumps({**manifest.__dict__, "live_generation": generation, "lcrag": installation}))
        return
    out.print_json(json.dumps({"lcrag": installation}))
