"""``atlas labels import DIR``: feature labels from Neuronpedia explanation exports."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Import feature labels from other tools.", no_args_is_help=True)


@app.command("import")
def import_(
    folder: Path = typer.Argument(..., help="A folder of Neuronpedia exports ({model}/{source}/explanations/batch-N.jsonl.gz)."),
    atlas: str | None = typer.Option(None, help="Only this atlas (default: every atlas whose SAEs the export names)."),
) -> None:
    """Read Neuronpedia explanation exports into feature labels, matched by model/layer/set/index."""
    from interop.neuronpedia import import_labels
    from queries.db import Graph

    with Graph() as g:
        r = import_labels(g, folder, atlas=atlas)
    typer.echo(r.summary())
    for src, n in sorted(r.by_source.items()):
        typer.echo(f"  {src}: {n}")
