"""``atlas graphs import|export|list|drop|gc``: circuit-tracer / Neuronpedia attribution graphs in the graph store."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Store attribution graphs (circuit-tracer / Neuronpedia graph JSON) and link them to atlas features.",
    no_args_is_help=True,
)


@app.command("import")
def import_(
    path: Path = typer.Argument(..., help="Graph JSON (metadata, qParams, nodes, links); streamed, any size."),
    graph_id: str | None = typer.Option(None, "--id", help="Store under this id (default {scan}/{slug})."),
    atlas: str | None = typer.Option(None, help="Link feature nodes to this atlas only."),
    module: str | None = typer.Option(
        None, help="With --atlas: the module (res/att/mlp) of the SAEs the graph's features come from."
    ),
    replace: bool = typer.Option(False, help="Replace a stored graph with the same id."),
) -> None:
    """Stream a graph JSON into Neo4j; feature nodes are linked to the atlas features they name (docs/api.md)."""
    from interop.attribution_graphs import import_graph
    from queries.db import Graph
    from queries.ids import Module

    mod = Module.parse(module).value if module else None
    with Graph() as g:
        r = import_graph(g, path, graph_id=graph_id, atlas=atlas, module=mod, replace=replace)
    typer.echo(r.summary())
    for why, n in sorted(r.unmapped_reasons.items()):
        typer.echo(f"  not linked ({why}): {n}")


@app.command("export")
def export(
    graph_id: str = typer.Argument(..., help="The stored graph's id."),
    path: Path = typer.Argument(..., help="Output JSON file."),
) -> None:
    """Write a stored graph back as graph JSON (validated against Neuronpedia's published schema)."""
    from interop.attribution_graphs import export_graph
    from queries.db import Graph

    with Graph() as g:
        out = export_graph(g, graph_id, path)
    typer.echo(f"wrote {out}")


@app.command("list")
def list_(scan: str | None = typer.Option(None, help="Only graphs of this model (metadata.scan).")) -> None:
    """List the stored graphs."""
    from queries import attribution_graphs as Q
    from queries.db import Graph

    with Graph() as g:
        rows = g.read(Q.LIST_GRAPHS, {"scan": scan, "limit": 10_000})
    for r in rows:
        x = r["g"]
        typer.echo(
            f"{x['id']}: {x['n_nodes']} nodes, {x['n_links']} links, {x['n_linked']} linked features; prompt {x['prompt']!r}"
        )
    if not rows:
        typer.echo("(no graphs stored)")


@app.command("drop")
def drop(graph_id: str = typer.Argument(..., help="The stored graph's id.")) -> None:
    """Delete a stored graph."""
    from interop.attribution_graphs import drop_graph
    from queries.db import Graph

    with Graph() as g:
        drop_graph(g, graph_id)
    typer.echo(f"dropped {graph_id}")


@app.command("gc")
def gc() -> None:
    """Delete graphs left incomplete by interrupted imports (never visible to readers). Not during an import."""
    from interop.attribution_graphs import gc_graphs
    from queries.db import Graph

    with Graph() as g:
        typer.echo(f"deleted {gc_graphs(g)} incomplete graph(s)")
