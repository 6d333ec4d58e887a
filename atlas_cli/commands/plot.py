"""``atlas plot lineage UID``: a Fig. 2-style flow-graph figure of one feature (SVG, PNG or PDF)."""

from __future__ import annotations

from pathlib import Path

import typer

from queries.domain import MODULE_CUT

app = typer.Typer(help="Figures drawn from the atlas graph.", no_args_is_help=True)


@app.command("lineage")
def lineage(
    uid: str = typer.Argument(..., help="Feature uid, e.g. smollm2-demo/11-res/119 (or 11/res/119 with --atlas)."),
    out: Path = typer.Option(None, "--out", help="Output file (.svg, .png or .pdf); default lineage-<uid>.svg."),
    atlas: str | None = typer.Option(None, "--atlas", help="Atlas of a short uid (layer/module/index)."),
    depth: int = typer.Option(3, help="Layers up and down from the feature."),
    min_similarity: float = typer.Option(
        0.0, help="Residual cut t_R (0: no cut, as the paper's illustration graphs; 0.5: its steering graphs)."
    ),
    module_min_similarity: float = typer.Option(MODULE_CUT, help="Cut for attaching att/mlp predecessors."),
    top_k: int = typer.Option(1, help="Residual predecessors/successors followed per feature (the paper: 1)."),
) -> None:
    """Layers down, att / res / mlp across, edges by decoder cosine (width and colour)."""
    from experiments.lineage_plot import draw_lineage
    from queries.db import Graph
    from queries.flow_graph import Direction, build_flow_graph, normalise_seeds

    (seed,) = normalise_seeds([uid], atlas)
    with Graph() as graph:
        graph.verify()
        fg = build_flow_graph(
            graph,
            [seed],
            direction=Direction.BOTH,
            depth=depth,
            min_similarity=min_similarity,
            module_min_similarity=module_min_similarity,
            top_k=top_k,
        )
    path = out or Path(f"lineage-{seed.replace('/', '_')}.svg")
    drawn = draw_lineage(fg, seed, path)
    typer.echo(f"{path}: {len(drawn['nodes'])} features, {len(drawn['edges'])} edges")
