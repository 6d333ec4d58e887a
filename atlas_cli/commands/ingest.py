"""``atlas ingest atlas.toml``: SAEs → cross-layer feature-flow graph in Neo4j (see docs/ingest.md)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer


def ingest(
    manifest: Path = typer.Argument(..., help="The atlas.toml (or the folder holding it)."),
    k: int = typer.Option(5, "--k", "-k", help="Candidates kept per feature and direction (the paper's top-1 is rank 0)."),
    resume: bool = typer.Option(False, "--resume", help="Finish an interrupted ingest of the same manifest: skip completed layers."),
    t_res: float = typer.Option(0.5, "--t-res", help="Category threshold for s_res (high residual predecessor)."),
    t_module: float = typer.Option(0.25, "--t-module", help="Category threshold for max(s_att, s_mlp)."),
    backend: str = typer.Option("faiss", "--backend", help="Matching backend for att/mlp: faiss | torch | numpy (same results)."),
    bulk: Path | None = typer.Option(
        None, "--bulk-csv", help="Instead of writing online, write neo4j-admin import CSVs into this folder (see docs/ingest.md)."
    ),
    edge_batch: int = typer.Option(50_000, "--edge-batch", help="Edges per write transaction."),
    node_batch: int = typer.Option(20_000, "--node-batch", help="Features per write transaction."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Match every SAE of the manifest and write features, scores, categories and FLOWS_TO edges to Neo4j."""
    from ingest.pipeline import IngestOptions, ingest_atlas
    from ingest.scores import Thresholds
    from queries.db import Graph
    from queries.errors import InvalidInput
    from saes.manifest import load_manifest

    # The driver's retry warnings and "property does not exist yet" notices would bury the one error line.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("neo4j").setLevel(logging.ERROR)
    if backend not in ("faiss", "torch", "numpy"):
        raise InvalidInput(f"--backend {backend!r} is not valid (use faiss, torch or numpy)")
    m = load_manifest(manifest)
    opts = IngestOptions(k=k, thresholds=Thresholds(res=t_res, module=t_module), backend=backend, resume=resume, progress=progress,
                         edge_batch=edge_batch, node_batch=node_batch)  # type: ignore[arg-type]
    if bulk is not None:
        from ingest.bulk import export_csv

        out = export_csv(m, bulk, opts)
        typer.echo(f"wrote import CSVs for atlas {m.name!r} to {bulk}; import with:\n  {out.command}")
        return
    with Graph() as graph:
        report = ingest_atlas(m, graph, options=opts)
    typer.echo(
        f"atlas {report.atlas!r} complete: {report.n_features} features, {report.n_edges} FLOWS_TO edges "
        f"(layers written {len(report.layers_written)}, skipped {len(report.layers_skipped)}; "
        f"matching {report.match_s:.1f}s, writing {report.write_s:.1f}s)"
    )
