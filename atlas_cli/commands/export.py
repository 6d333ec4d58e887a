"""``atlas export ATLAS PATH`` (the portable archive, or another tool's format) and ``atlas import PATH``."""

from __future__ import annotations

from pathlib import Path

import typer

FORMATS = ("archive", "neuronpedia")


def export(
    atlas: str = typer.Argument(..., help="The atlas to export, e.g. smollm2-demo."),
    path: Path = typer.Argument(
        ...,
        help="archive: the file to write (e.g. smollm2-demo.atlas.tar); neuronpedia: output folder (created if missing).",
    ),
    fmt: str = typer.Option(
        "archive",
        "--format",
        "-f",
        help="archive: this project's portable archive (`atlas import` loads it); neuronpedia: Neuronpedia's dataset-export layout.",
    ),
    batch_size: int = typer.Option(4096, help="neuronpedia: features per batch-N.jsonl.gz file."),
) -> None:
    """Export an atlas. The default archive is a tar of JSON Lines (features, edges, SAEs, atlas metadata) that
    another team loads with `atlas import`; --format neuronpedia writes {model}/{source}/features|explanations/batch-N.jsonl.gz."""
    from queries.db import Graph
    from queries.errors import InvalidInput

    if fmt not in FORMATS:
        raise InvalidInput(f"unknown export format {fmt!r} (valid: {', '.join(FORMATS)})")
    if fmt == "archive":
        from queries.portable import export_atlas

        with Graph() as g:
            s = export_atlas(g, atlas, path)
        typer.echo(
            f"exported {s.atlas}: {s.features} features, {s.edges} edges, {s.saes} SAEs to {path} (edge checksum {s.edge_checksum[:16]})"
        )
        return
    from interop.neuronpedia import export_neuronpedia

    with Graph() as g:
        r = export_neuronpedia(g, atlas, path, batch_size=batch_size)
    typer.echo(
        f"wrote {r.features} features and {r.explanations} explanations of {atlas} in {r.files} files under {r.folder}"
    )
    for src in r.sources:
        typer.echo(f"  {src}")


def import_(
    path: Path = typer.Argument(..., help="An archive written by `atlas export ATLAS PATH`."),
    replace: bool = typer.Option(False, "--replace", help="Drop an existing atlas of the same name first."),
) -> None:
    """Load an archive into the configured Neo4j; the atlas is marked complete only when counts and checksum match."""
    from queries.db import Graph
    from queries.portable import import_atlas

    with Graph() as g:
        s = import_atlas(g, path, replace=replace)
    typer.echo(
        f"imported {s.atlas}: {s.features} features, {s.edges} edges, {s.saes} SAEs (edge checksum {s.edge_checksum[:16]} verified)"
    )
