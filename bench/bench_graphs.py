"""Attribution-graph import rate with its feature nodes linked to a matching atlas (``atlas graphs import``).

    python -m bench.bench_graphs                      # 16M links (the issue's size) into a private temporary Neo4j
    python -m bench.bench_graphs --links 2000000      # a smaller graph; the size is saved with the figures

The server first receives a matching atlas: per layer a synthetic transcoder-width mlp SAE (16,384 features)
whose Neuronpedia id is the graph's source set (``gemma-2-2b/{L}-gemmascope-transcoder-16k``) and a narrow res
SAE (the residual chain a manifest needs), bulk-imported (ingest.bulk, neo4j-admin) into the private server,
ingested online with --shared (in this process: its peak RSS then includes the ingest). So the import links every feature node it can, as it would against an atlas
built from the same transcoders: ``linked_share`` = linked feature nodes / feature nodes (goal 1.0).

The graph file is generated first in a child process (so this process's peak RSS is the import's), then
imported with interop.attribution_graphs.import_graph into a private server started from this checkout
(heap/page cache from ATLAS_NEO4J_HEAP / ATLAS_NEO4J_PAGECACHE; removed afterwards) unless --shared.
Saves bench/results/graphs.json and graphs.md: links_per_s (links written / time spent streaming and
writing the links array), links_per_s_end_to_end (links / the whole import, feature linking included),
peak_rss_mb of the importing process, sizes, the atlas, machine and load at start and end (bench.harness).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import socket
import tempfile
import time
from pathlib import Path

from bench.harness import save_json
from bench.machine import machine
from interop.synthetic_graph import SyntheticGraphSpec, write_synthetic_graph
from queries.db import Graph
from queries.ids import Module
from queries.settings import Neo4jSettings
from saes.manifest import AtlasManifest, SAEEntry, SyntheticSpec

SCAN, SOURCE_SET, D_SAE = "gemma-2-2b", "gemmascope-transcoder-16k", 16384
ATLAS = "bench-graph-atlas"


def _generate(path: str, spec: SyntheticGraphSpec) -> None:
    write_synthetic_graph(path, spec)


def matching_atlas(layers: int, folder: Path) -> AtlasManifest:
    """The atlas the graph's feature nodes name: mlp(L) carries the graph's Neuronpedia source set at the graph's
    width; decoders are synthetic and 32 wide (only the nodes matter here), res(L) narrow (256)."""
    entries = []
    for layer in range(layers):
        entries.append(SAEEntry(layer, Module.RES, synthetic=SyntheticSpec(d_sae=256, seed=2 * layer, d_in=32)))
        entries.append(
            SAEEntry(
                layer,
                Module.MLP,
                synthetic=SyntheticSpec(d_sae=D_SAE, seed=2 * layer + 1, d_in=32),
                neuronpedia=f"{SCAN}/{layer}-{SOURCE_SET}",
            )
        )
    return AtlasManifest(name=ATLAS, model=f"synthetic/{SCAN}-shaped", d_model=32, saes=entries, base_dir=folder)


def _load_atlas_private(manifest: AtlasManifest, folder: str, ls: object, out: str) -> None:
    """Bulk-import the atlas into the private server ``ls`` (stopped, imported, started again); figures to ``out``."""
    from atlas_cli.commands.ingest import import_into_local_server
    from ingest.bulk import export_csv
    from ingest.options import IngestOptions

    t0 = time.perf_counter()
    export = export_csv(manifest, folder, IngestOptions(k=1, null_rows=0))
    import_s = import_into_local_server(export.admin_args(), ls)
    figures = {"features": export.n_features, "edges": export.n_edges, "import_s": round(import_s, 1)}
    Path(out).write_text(json.dumps(figures | {"load_s": round(time.perf_counter() - t0, 1)}))


def load_atlas_private(manifest: AtlasManifest, folder: Path, ls: object) -> dict[str, object]:
    """:func:`_load_atlas_private` in a child process, so this process's peak RSS stays the graph import's."""
    out = folder.parent / "atlas-load.json"
    child = mp.get_context("spawn").Process(target=_load_atlas_private, args=(manifest, str(folder), ls, str(out)))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"loading the matching atlas failed (exit {child.exitcode})")
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def load_atlas_online(manifest: AtlasManifest, settings: Neo4jSettings) -> dict[str, object]:
    from ingest.options import IngestOptions
    from ingest.pipeline import ingest_atlas

    t0 = time.perf_counter()
    with Graph(settings) as g:
        rep = ingest_atlas(manifest, g, options=IngestOptions(k=1, null_rows=0))
    return {"features": rep.n_features, "edges": rep.n_edges, "load_s": round(time.perf_counter() - t0, 1)}


def _import(path: Path, settings: Neo4jSettings) -> dict[str, object]:
    from interop.attribution_graphs import drop_graph, import_graph

    with Graph(settings) as g:
        rep = import_graph(g, path, graph_id="bench/synthetic", replace=True, atlas=ATLAS)
        out = {
            "links": rep.n_links,
            "nodes": rep.n_nodes,
            "feature_nodes": rep.n_feature_nodes,
            "linked": rep.n_linked,
            "linked_share": round(rep.n_linked / rep.n_feature_nodes, 4) if rep.n_feature_nodes else None,
            "unlinked_reasons": dict(rep.unmapped_reasons),
            "mapping": rep.mapping,
            "end_to_end_s": round(rep.seconds, 2),
            "link_s": round(rep.link_seconds, 2),
            "links_per_s": round(rep.links_per_s),
            "links_per_s_end_to_end": round(rep.n_links / rep.seconds) if rep.seconds > 0 else None,
        }
        t0 = time.perf_counter()
        drop_graph(g, "bench/synthetic")
        out["drop_s"] = round(time.perf_counter() - t0, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--links", type=int, default=16_000_000)
    ap.add_argument(
        "--features",
        type=int,
        default=8_000,
        help="feature nodes (circuit-tracer's default cap is 7,500 before pruning)",
    )
    ap.add_argument("--layers", type=int, default=26)
    ap.add_argument("--shared", action="store_true", help="import into NEO4J_URI instead of a private temporary server")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--render", action="store_true", help="only re-write graphs.md from the saved graphs.json")
    args = ap.parse_args()
    if args.render:
        render(json.loads((Path(args.out) / "graphs.json").read_text()), Path(args.out))
        return
    spec = SyntheticGraphSpec(
        n_layers=args.layers,
        n_features=args.features,
        n_links=args.links,
        d_sae=D_SAE,
        n_tokens=16,
        scan=SCAN,
        source_set=SOURCE_SET,
        slug="bench",
        seed=0,
    )
    result: dict[str, object] = {
        "machine": machine(),
        "spec": {"links": args.links, "feature_nodes": args.features, "layers": args.layers},
        "neo4j_heap": os.environ.get("ATLAS_NEO4J_HEAP", "1g"),
        "neo4j_pagecache": os.environ.get("ATLAS_NEO4J_PAGECACHE", "1g"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.json"
        t0 = time.perf_counter()
        child = mp.get_context("spawn").Process(target=_generate, args=(str(path), spec))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"generating the graph failed (exit {child.exitcode})")
        result["generate_s"] = round(time.perf_counter() - t0, 1)
        result["file_mb"] = round(path.stat().st_size / 2**20, 1)
        print(
            f"graph file: {result['file_mb']} MB, {args.links:,} links (generated in {result['generate_s']} s)",
            flush=True,
        )
        manifest = matching_atlas(args.layers, Path(tmp))
        if args.shared:
            result["server"] = f"{Neo4jSettings().uri} (shared)"
            result["atlas"] = {"name": ATLAS, "loaded": "online ingest"} | load_atlas_online(manifest, Neo4jSettings())
            try:
                result.update(_import(path, Neo4jSettings()))
            finally:
                with Graph(Neo4jSettings()) as g:
                    from queries.maintenance import drop_atlas

                    drop_atlas(g, ATLAS)
        else:
            from atlas_cli import local_neo4j

            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            ls = local_neo4j.LocalNeo4jSettings(home=Path(tmp) / "neo4j", bolt_port=port)
            result["server"] = f"private {ls.bolt_uri}, heap {ls.heap}, page cache {ls.pagecache}"
            local_neo4j.start(ls)
            try:
                loaded = load_atlas_private(manifest, Path(tmp) / "atlas-csv", ls)
                result["atlas"] = {"name": ATLAS, "loaded": "bulk import (neo4j-admin)"} | loaded
                result.update(_import(path, Neo4jSettings(uri=ls.bolt_uri, password=ls.password)))
            finally:
                local_neo4j.stop(ls)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["size_note"] = (
        "the issue's 16M-link graph"
        if args.links >= 16_000_000
        else f"a {args.links:,}-link graph, smaller than the issue's 16M"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    render(save_json((out / "graphs.json"), result, indent=2), out)


def render(result: dict[str, object], out: Path) -> None:
    """graphs.md from the figures (``--render`` re-writes it from a saved graphs.json)."""
    m: dict[str, object] = result["machine"]  # type: ignore[assignment]
    spec: dict[str, int] = result["spec"]  # type: ignore[assignment]
    run: dict[str, object] = result.get("run") or {}  # type: ignore[assignment]
    links = int(spec["links"])
    atlas: dict[str, object] = result.get("atlas") or {}  # type: ignore[assignment]
    share = result.get("linked_share")
    noise = run.get("noise") or f"Load {m['loadavg_1_5_15']} at start, {result.get('loadavg_after')} after."
    md = [
        "# Attribution-graph import (`atlas graphs import`)",
        "",
        (
            f"`python -m bench.bench_graphs --links {links}` on {m['cpu']} ({m['cores']} cores). "
            f"{noise} "
            f"Server: {result['server']}."
        ),
        "",
        "| figure | value |",
        "|---|---|",
        f"| links | {result['links']:,} ({result['size_note']}) |",
        f"| nodes (feature nodes) | {result['nodes']:,} ({result.get('feature_nodes', spec['feature_nodes']):,}) |",
        f"| graph file | {result['file_mb']} MB |",
    ]
    if atlas:
        md.append(
            f"| matching atlas in the server | {atlas['name']}: {atlas['features']:,} features ({atlas['loaded']}, {atlas['load_s']} s) |"
        )
    if share is not None:
        reasons = result.get("unlinked_reasons") or {}
        md.append(
            f"| **feature nodes linked** to atlas features | **{result['linked']:,} of {result['feature_nodes']:,} "
            f"({100 * float(share):.1f}%)**{'; unlinked: ' + str(reasons) if reasons else ''} |"  # type: ignore[arg-type]
        )
    md += [
        f"| **links_per_s** (streaming parse + validation + writes of the links array) | **{result['links_per_s']:,}** |",
        f"| links / end-to-end time (nodes, links, feature linking, publish) | {result.get('links_per_s_end_to_end', 'n/a')} links/s, {result['end_to_end_s']} s |",
        f"| **peak_rss_mb** of the importing process | **{result['peak_rss_mb']}** |",
        f"| drop of the stored graph | {result['drop_s']} s |",
        "",
    ]
    if links < 16_000_000:
        projected = 16_000_000 / max(float(result["links_per_s"]), 1.0) / 60  # type: ignore[arg-type]
        md += [
            f"**Not the issue's 16M links.** This run used {links:,} links; at its rate a 16M-link import would take "
            f"~{projected:.0f} min. `python -m bench.bench_graphs` (default 16M) measures the full size. The importing "
            "process holds only the node-id map and one batch of links (50,000), so its peak RSS does not grow with the "
            "number of links.",
            "",
        ]
    (out / "graphs.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
