"""``atlas labels import DIR``: feature labels from Neuronpedia explanation exports."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Import feature labels from other tools.", no_args_is_help=True)


@app.command("import")
def import_(
    folder: Path = typer.Argument(
        ..., help="A folder of Neuronpedia exports ({model}/{source}/explanations/batch-N.jsonl.gz)."
    ),
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


@app.command("embed")
def embed(
    atlas: str = typer.Argument(..., help="The atlas whose feature labels to embed."),
    force: bool = typer.Option(False, help="Re-embed every feature, not only those whose text changed."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
) -> None:
    """Embed feature labels and top contexts (all-MiniLM-L6-v2, offline) for search(mode: SEMANTIC)."""
    from interop.semantic import embed_atlas
    from queries.db import Graph

    with Graph() as g:
        r = embed_atlas(g, atlas, device=device, force=force)
    typer.echo(f"{atlas}: embedded {r.embedded} of {r.features} labelled features ({r.unchanged} unchanged)")
