"""``atlas ingest atlas.toml``: SAEs → cross-layer feature-flow graph in Neo4j (see docs/ingest.md)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import typer

from queries.domain import CATEGORY_MODULE_CUT, RESIDUAL_CUT


def ingest(
    manifest: Path = typer.Argument(..., help="The atlas.toml (or the folder holding it)."),
    k: int = typer.Option(
        5, "--k", "-k", help="Candidates kept per feature and direction (the paper's top-1 is rank 0)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Finish an interrupted ingest of the same manifest: skip completed layers."
    ),
    t_res: float = typer.Option(
        RESIDUAL_CUT, "--t-res", help="Category threshold for s_res (high residual predecessor)."
    ),
    t_module: float = typer.Option(CATEGORY_MODULE_CUT, "--t-module", help="Category threshold for max(s_att, s_mlp)."),
    thresholds: str = typer.Option(
        "fixed",
        "--thresholds",
        help="Category rule: fixed (--t-res/--t-module) or null:Q — each cut at quantile Q of that SAE pair's "
        "null (top-1 cosines against a randomly rotated predecessor decoder), e.g. null:0.999 (docs/ingest.md).",
    ),
    backend: str = typer.Option(
        "faiss", "--backend", help="Matching backend for att/mlp: faiss | torch | numpy (same results)."
    ),
    prefilter: str = typer.Option(
        "auto",
        "--prefilter",
        help="CPU matching: auto (bf16 pre-filter when the CPU has bf16 instructions) | bf16 | off. "
        "Exact either way (docs/ingest.md).",
    ),
    memory_budget: str | None = typer.Option(
        None,
        "--memory-budget",
        help="A layer whose largest SAE pair's decoders exceed this (e.g. 25%, 8G) is matched by streaming tiles from "
        "the files instead of loading them whole (default: ATLAS_MATCH_MEMORY_BUDGET or 25% of RAM; docs/ingest.md).",
    ),
    bulk: Path | None = typer.Option(
        None,
        "--bulk-csv",
        help="Instead of writing online, write neo4j-admin import CSVs into this folder (see docs/ingest.md).",
    ),
    bulk_import: bool = typer.Option(
        False,
        "--bulk-import",
        help="With --bulk-csv: stop the project's own Neo4j (ATLAS_NEO4J_*), import the CSVs into a fresh "
        "database REPLACING its data, and start it again. Never use it on a shared server.",
    ),
    recategorize: bool = typer.Option(
        False,
        "--recategorize",
        help="Only recompute the categories of the already ingested atlas from its stored scores with "
        "--t-res/--t-module (no matching, nothing else changes).",
    ),
    ray: str | None = typer.Option(
        None,
        "--ray",
        help="Run each layer's matching as a Ray task on the cluster at ADDRESS (HOST:PORT or ray://HOST:10001), "
        "or `auto` (a running local cluster, else a new one on this machine). Same graph as without it.",
    ),
    gpu: bool = typer.Option(
        False, "--gpu", help="With --ray: one GPU per matching task (an error if the cluster has none)."
    ),
    matchers: str = typer.Option(
        "cosine",
        "--matchers",
        help="Edge matchers, comma-separated: cosine (always; scores and categories), permutation (SAE Match's "
        "assignment), ot (entropic optimal transport). Each writes FLOWS_TO edges with method = its name "
        "(docs/ingest.md, 'Which matcher when').",
    ),
    edge_batch: int = typer.Option(50_000, "--edge-batch", help="Edges per write transaction."),
    node_batch: int = typer.Option(20_000, "--node-batch", help="Features per write transaction."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Match every SAE of the manifest and write features, scores, categories and FLOWS_TO edges to Neo4j."""
    from ingest.options import IngestOptions
    from ingest.pipeline import ingest_atlas
    from ingest.scores import parse_thresholds
    from queries.db import Graph
    from queries.errors import InvalidInput
    from saes.manifest import load_manifest

    # The driver's retry warnings, "property does not exist yet" notices and its own ERROR lines about a
    # connection that died (Neo4j stopped mid-write) would bury the one error line the CLI prints for them.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("neo4j").setLevel(logging.CRITICAL)
    if backend not in ("faiss", "torch", "numpy"):
        raise InvalidInput(f"--backend {backend!r} is not valid (use faiss, torch or numpy)")
    if prefilter not in ("auto", "bf16", "off"):
        raise InvalidInput(f"--prefilter {prefilter!r} is not valid (use auto, bf16 or off)")
    if gpu and not ray:
        raise InvalidInput(
            "--gpu applies to --ray (GPU per Ray task); without --ray the ingest uses a local GPU by itself when there is one"
        )
    if ray and bulk is not None:
        raise InvalidInput("--ray and --bulk-csv cannot be combined yet: the Ray path writes online (drop one of them)")
    from ingest.matchers import parse_matchers
    from ingest.settings import IngestSettings, parse_memory_budget

    chosen = parse_matchers(matchers)
    budget = parse_memory_budget(memory_budget or IngestSettings().match_memory_budget)
    m = load_manifest(manifest)
    opts = IngestOptions(
        k=k,
        memory_budget=budget,
        thresholds=parse_thresholds(thresholds, t_res, t_module),
        backend=backend,  # type: ignore[arg-type]  # checked above
        prefilter=prefilter,  # type: ignore[arg-type]  # checked above
        resume=resume,
        progress=progress,
        edge_batch=edge_batch,
        node_batch=node_batch,
        ray=ray,
        gpu=gpu,
        matchers=chosen,
    )
    from steering.model import model_projections

    # W_O for attention SAEs on hook_z comes from the atlas's model; it loads only if such an SAE is present
    opts.projections = model_projections(m.model)
    if recategorize:
        from ingest.pipeline import recategorize as recategorize_atlas

        with Graph() as graph:
            counts = recategorize_atlas(graph, m.name, opts.thresholds)
        shares = ", ".join(f"{c} {n}" for c, n in counts.items())
        typer.echo(f"atlas {m.name!r} recategorized with {opts.thresholds.rule}: {shares}")
        return
    if bulk_import and bulk is None:
        raise InvalidInput("--bulk-import needs --bulk-csv DIR (the folder the import CSVs are written to)")
    if bulk is not None:
        from ingest.bulk import export_csv

        out = export_csv(m, bulk, opts)
        typer.echo(
            f"wrote import CSVs for atlas {m.name!r} ({out.n_features} features, {out.n_edges} FLOWS_TO edges) to {bulk} in {out.seconds:.1f}s"
        )
        if not bulk_import:
            typer.echo(f"import them into a stopped, dedicated database with:\n  {out.command}")
            return
        from atlas_cli import local_neo4j

        settings = local_neo4j.LocalNeo4jSettings()
        seconds = import_into_local_server(out.admin_args(), settings)
        typer.echo(
            f"imported into the Neo4j at {settings.bolt_uri} (home {settings.home}) in {seconds:.1f}s; it is running again"
        )
        return
    with Graph() as graph:
        report = ingest_atlas(m, graph, options=opts)
    typer.echo(
        f"atlas {report.atlas!r} complete: {report.n_features} features, {report.n_edges} FLOWS_TO edges "
        f"(layers written {len(report.layers_written)}, skipped {len(report.layers_skipped)}; "
        f"matching {report.match_s:.1f}s, writing {report.write_s:.1f}s)"
    )
    if report.streamed_layers:
        typer.echo(f"layers matched by streaming decoder tiles (over the memory budget): {report.streamed_layers}")


def import_into_local_server(admin_args: list[str], settings: object) -> float:
    """Stop the project's server described by ``settings`` (a ``LocalNeo4jSettings``), run
    ``neo4j-admin`` with ``admin_args`` (from ``ingest.bulk.BulkExport.admin_args``), start it again and
    create the schema. Returns the import's seconds. The server is restarted even when the import fails."""
    from atlas_cli import local_neo4j
    from queries.db import Graph
    from queries.errors import AtlasError
    from queries.schema import ensure_schema
    from queries.settings import Neo4jSettings

    s: local_neo4j.LocalNeo4jSettings = settings  # type: ignore[assignment]
    was_running = local_neo4j.stop(s)
    t0 = time.perf_counter()
    proc = local_neo4j.admin(s, *admin_args)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        if was_running:
            local_neo4j.start(s)
        # The first lines name the cause; the rest is a Java stack trace.
        detail = " ".join(line.strip() for line in (proc.stderr or proc.stdout).strip().splitlines()[:3])[:600]
        raise AtlasError(
            f"neo4j-admin database import failed (exit {proc.returncode}) for the server at {s.home}: {detail}"
        )
    local_neo4j.start(s)
    with Graph(Neo4jSettings(uri=s.bolt_uri, password=s.password)) as g:
        ensure_schema(g)
    return seconds
