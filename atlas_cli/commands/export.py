"""``atlas export ATLAS PATH``: write an atlas out in another tool's format."""

from __future__ import annotations

from pathlib import Path

import typer

FORMATS = ("neuronpedia",)


def export(
    atlas: str = typer.Argument(..., help="The atlas to export, e.g. smollm2-demo."),
    path: Path = typer.Argument(..., help="Output folder (created if missing)."),
    fmt: str = typer.Option("neuronpedia", "--format", "-f", help="neuronpedia: Neuronpedia's dataset-export layout."),
    batch_size: int = typer.Option(4096, help="Features per batch-N.jsonl.gz file."),
) -> None:
    """Export an atlas. --format neuronpedia writes {model}/{source}/features|explanations/batch-N.jsonl.gz."""
    from queries.db import Graph
    from queries.errors import InvalidInput

    if fmt != "neuronpedia":
        raise InvalidInput(f"unknown export format {fmt!r} (valid: {', '.join(FORMATS)})")
    from interop.neuronpedia import export_neuronpedia

    with Graph() as g:
        r = export_neuronpedia(g, atlas, path, batch_size=batch_size)
    typer.echo(f"wrote {r.features} features and {r.explanations} explanations of {atlas} in {r.files} files under {r.folder}")
    for s in r.sources:
        typer.echo(f"  {s}")
