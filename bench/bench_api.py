"""API benchmark: latency (p50/p99) and throughput of feature, lineage (depth 6 and 25) and features
queries at 1, 10 and 50 concurrent clients, against the same Cypher run directly through the async driver.

    python -m bench.bench_api --atlas bench-gemma-26     # an atlas already in Neo4j (bench_ingest.py --shape gemma --keep)
    python -m bench.bench_api --quick                    # ingests a small 26-layer synthetic atlas itself, short runs

The API runs as its own process (``atlas serve`` on 127.0.0.1, a free port) so the load generator does
not share its interpreter; the load generator (asyncio + httpx, keep-alive, one connection per client)
stays on 127.0.0.1 and stops after a fixed duration per cell. Each client is one keep-alive HTTP/1.1
connection driven by :class:`KeepAliveClient` (a minimal POST-JSON client on asyncio streams): a shared
httpx pool costs ~1.4 ms of client CPU per request on this 2-core machine and scans every pooled
connection on each request (its CPU grows with the client count; at 50 clients the load generator, not
the API, saturated a core), which the raw-Cypher baseline does not pay. Lineage is measured with
``minSimilarity: 0`` (no residual cut) so every request really walks ``depth`` layers: random synthetic
decoders have weak links and a cut would end most chains at once. Results: bench/results/api.json + .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

from bench.harness import (
    RESULTS,
    KeepAliveClient,
    closed_loop,
    ensure_quick_atlas,
    pick_seeds,
    save_json,
    start_api,
)
from bench.machine import machine
from queries import features as qf
from queries.aio import AsyncGraph
from queries.flow_graph import Direction, FlowOptions, build_flow_graph_async
from queries.settings import Neo4jSettings

FEATURE_Q = (
    "query($uid: String!) { feature(uid: $uid) { ... on Feature { uid layer module index category sRes sAtt sMlp } } }"
)
LINEAGE_Q = (
    "query($uid: String!, $depth: Int!) { lineage(uid: $uid, depth: $depth, minSimilarity: 0) "
    "{ nodes { uid layer module index category sRes sAtt sMlp } edges { source target similarity } } }"
)
FEATURES_Q = (
    "query($w: FeatureWhere!) { features(where: $w, sort: [{sRes: DESC}], limit: 20) { uid layer module index sRes } }"
)


async def measure_api(
    port: int, body: Callable[[int], dict[str, Any]], clients: int, seconds: float
) -> dict[str, float]:
    """A closed loop of `clients` keep-alive connections POSTing `body(i)` for `seconds` (after a 1 s warm-up)."""
    # One connection per client: a worker takes an idle connection and gives it back (never shared).
    conns = [KeepAliveClient("127.0.0.1", port, "/graphql") for _ in range(clients)]
    idle: asyncio.Queue[KeepAliveClient] = asyncio.Queue()
    for c in conns:
        idle.put_nowait(c)

    async def call(i: int) -> None:
        conn = idle.get_nowait()  # closed_loop never runs more workers than `clients`
        try:
            status, data = await asyncio.wait_for(conn.post_json(body(i)), 30)
        finally:
            idle.put_nowait(conn)
        if status != 200 or data.get("errors"):
            raise RuntimeError(str(data)[:300])

    try:
        await closed_loop(min(clients, 4), 1.0, call)  # warm-up
        return await closed_loop(clients, seconds, call)
    finally:
        for c in conns:
            await c.close()


async def ablate(
    port: int,
    args: argparse.Namespace,
    bodies: dict[str, Callable[[int], dict[str, Any]]],
    results: dict[str, Any],
    switch: str,
    label: str,
) -> None:
    """Measure ``bodies`` again through an API started with ``switch=false``; cells gain ``api_<label>`` and
    ``api_<label>_over_cypher_mean`` (against the same run's Cypher baseline)."""
    os.environ[switch] = "false"
    api = start_api(port, args.workers)
    try:
        for name, body in bodies.items():
            for clients in args.clients:
                stats = await measure_api(port, body, clients, args.seconds)
                cell = results[name][clients]
                cell[f"api_{label}"] = stats
                cell[f"api_{label}_over_cypher_mean"] = round(
                    stats["mean_ms"] / max(cell["cypher"]["mean_ms"], 1e-9), 2
                )
                print(f"{name} {label} clients={clients:3d} ratio {cell[f'api_{label}_over_cypher_mean']}", flush=True)
    finally:
        del os.environ[switch]
        api.terminate()
        api.wait(10)


async def run(args: argparse.Namespace, atlas: str) -> dict[str, Any]:
    seeds = pick_seeds(atlas, 200)
    layers = seeds["layers"]
    where_layers = [layers[i % len(layers)] for i in range(97)]
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = start_api(port, args.workers)
    graph = AsyncGraph(Neo4jSettings(), max_pool_size=64)
    results: dict[str, Any] = {}
    try:
        workloads: dict[str, tuple[Callable[[int], dict[str, Any]], Callable[[int], Awaitable[Any]]]] = {
            "feature": (
                lambda i: {"query": FEATURE_Q, "variables": {"uid": seeds["mid"][i % 200]}},
                lambda i: graph.read(qf.FEATURES_BY_UID, {"uids": [seeds["mid"][i % 200]]}),
            ),
            "lineage_depth6": (
                lambda i: {"query": LINEAGE_Q, "variables": {"uid": seeds["mid"][i % 200], "depth": 6}},
                lambda i: build_flow_graph_async(
                    graph.read,
                    seeds["mid"][i % 200],
                    FlowOptions(direction=Direction.UPSTREAM, depth=6, min_similarity=0.0),
                ),
            ),
            "lineage_depth25": (
                lambda i: {"query": LINEAGE_Q, "variables": {"uid": seeds["deep"][i % 200], "depth": 25}},
                lambda i: build_flow_graph_async(
                    graph.read,
                    seeds["deep"][i % 200],
                    FlowOptions(direction=Direction.UPSTREAM, depth=25, min_similarity=0.0),
                ),
            ),
            "features_filter": (
                lambda i: {
                    "query": FEATURES_Q,
                    "variables": {
                        "w": {
                            "atlas": {"eq": atlas},
                            "layer": {"eq": where_layers[i % 97]},
                            "module": {"eq": "RES"},
                            "sRes": {"gt": 0.2},
                        }
                    },
                },
                lambda i: graph.read(
                    *qf.list_features_statement(
                        {
                            "atlas": {"eq": atlas},
                            "layer": {"eq": where_layers[i % 97]},
                            "module": {"eq": "res"},
                            "s_res": {"gt": 0.2},
                        },
                        [{"s_res": "DESC"}],
                        limit=20,
                        offset=0,
                    )
                ),
            ),
        }
        for name, (body, raw) in workloads.items():
            if args.queries and name not in args.queries:
                continue
            results[name] = {}
            for clients in args.clients:
                api_stats = await measure_api(port, body, clients, args.seconds)

                async def call_raw(i: int) -> None:
                    await raw(i)

                await closed_loop(min(clients, 4), 0.5, call_raw)
                raw_stats = await closed_loop(clients, args.seconds, call_raw)
                results[name][clients] = {
                    "api": api_stats,
                    "cypher": raw_stats,
                    "api_over_cypher_mean": round(api_stats["mean_ms"] / max(raw_stats["mean_ms"], 1e-9), 2),
                }
                print(
                    f"{name:16s} clients={clients:3d}  API p50 {api_stats['p50_ms']:7.2f} p99 {api_stats['p99_ms']:7.2f} ms {api_stats['rps']:7.1f}/s"
                    f" | Cypher p50 {raw_stats['p50_ms']:7.2f} p99 {raw_stats['p99_ms']:7.2f} ms {raw_stats['rps']:7.1f}/s"
                    f" | ratio {results[name][clients]['api_over_cypher_mean']}  errors {api_stats['errors']}/{raw_stats['errors']}",
                    flush=True,
                )
    finally:
        await graph.close()
        api.terminate()
        api.wait(10)
    # The same run and baselines, the API with one of its shortcuts off: what each buys.
    if args.ablate_coalescing and "feature" in results:
        await ablate(
            port, args, {"feature": workloads["feature"][0]}, results, "ATLAS_API_COALESCE_LOOKUPS", "no_coalescing"
        )
    if args.ablate_direct:
        bodies = {name: workloads[name][0] for name in results}
        await ablate(port, args, bodies, results, "ATLAS_API_DIRECT_EXECUTION", "no_direct_execution")
    return results


def write(out: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    # the like-for-like run (one API process against one driver process) is api.json; others say their workers
    stem = "api" if out["workers"] == 1 else f"api-workers{out['workers']}"
    # the 50-client cell ends the run: let its own load decay before the end load is read (bench.harness)
    saved = save_json((RESULTS / f"{stem}.json"), out, indent=1, settle_s=150)
    lines = [
        "# API benchmark",
        "",
        f"Atlas `{out['atlas']}`; {out['seconds']} s per cell; lineage with minSimilarity 0 (walks the full depth); "
        f"API served by {out['workers']} uvicorn worker process(es).",
        f"Machine: {out['machine']['cpu']}, {out['machine']['cores']} cores, {saved['run']['noise']}",
        "",
        "**Targets (2 cores):** feature p99 ≤ 20 ms and lineage(depth 6) p99 ≤ 100 ms at 10 clients; API/Cypher (#16): "
        "geometric mean ≤ 1.2× and `feature` ≤ 1.5× at 10 clients.",
        "",
        f"- feature p99 at 10 clients: **{out['feature_p99_ms']} ms**",
        f"- lineage depth 6 p99 at 10 clients: **{out['lineage_depth6_p99_ms']} ms**",
        f"- lineage depth 25 p99 at 10 clients: **{out['lineage_depth25_p99_ms']} ms**",
        f"- API over raw Cypher (geometric mean of mean-latency ratios at 10 clients): **{out['api_over_cypher_ratio']}×**",
        f"- `feature` over raw Cypher at 10 clients: **{out['feature_over_cypher_ratio']}×** "
        f"(without cross-request coalescing, same run: {out['feature_over_cypher_ratio_no_coalescing']}×)",
        f"- geometric mean with ATLAS_API_DIRECT_EXECUTION=false (strawberry's full pipeline for every request), same run: "
        f"{out['api_over_cypher_ratio_no_direct_execution']}×",
        f"- load average at the start {out['machine']['loadavg_1_5_15']}, at the end {out['loadavg_at_end']}; CPU flags "
        f"{' '.join(out['machine'].get('cpu_flags', []))}",
        "",
        "| query | clients | API p50 ms | API p99 ms | API req/s | Cypher p50 ms | Cypher p99 ms | Cypher req/s | API/Cypher |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_c in out["results"].items():
        for c, r in by_c.items():
            a, y = r["api"], r["cypher"]
            lines.append(
                f"| {name} | {c} | {a['p50_ms']} | {a['p99_ms']} | {a['rps']} | {y['p50_ms']} | {y['p99_ms']} | {y['rps']} | {r['api_over_cypher_mean']} |"
            )
    lines += [
        "",
        "The Cypher baseline runs the same statements (and the same flow-graph assembly for lineage) through the",
        "async driver in the load generator's process; the API adds HTTP, GraphQL parsing/validation and serialisation.",
        "API clients are persistent keep-alive HTTP/1.1 connections, one per client (a minimal client, so the load",
        "generator's own CPU stays small next to the API's; a shared httpx pool made the generator the bottleneck at 50 clients).",
        "Load generator, API and Neo4j share the machine's cores, so absolute numbers depend on the machine.",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--atlas",
        default=None,
        help="An atlas already in Neo4j (e.g. bench-gemma-26 from bench_ingest.py --shape gemma --keep).",
    )
    ap.add_argument(
        "--quick", action="store_true", help="Ingest (once) and use a small 26-layer synthetic atlas; short cells."
    )
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes of the API (atlas serve --workers)."
    )
    ap.add_argument(
        "--queries",
        nargs="+",
        default=None,
        help="Only these workloads (feature, lineage_depth6, lineage_depth25, features_filter); saves nothing.",
    )
    ap.add_argument("--seconds", type=float, default=None, help="Duration of each measured cell (default 10, quick 4).")
    ap.add_argument(
        "--ablate-coalescing",
        action="store_true",
        help="Also measure feature through an API with ATLAS_API_COALESCE_LOOKUPS=false (same run, same baseline).",
    )
    ap.add_argument(
        "--ablate-direct",
        action="store_true",
        help="Also measure every workload through an API with ATLAS_API_DIRECT_EXECUTION=false (same run, same baseline).",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("neo4j").setLevel(logging.ERROR)
    args.seconds = args.seconds or (4.0 if args.quick else 10.0)
    if args.atlas:
        atlas = args.atlas
    elif args.quick:
        atlas = "bench-api-quick"
        ensure_quick_atlas(atlas, d_sae=1024, d_model=256, layers=26)
    else:
        raise SystemExit("give --atlas NAME (an ingested Gemma-shaped atlas) or --quick")
    mach = machine()
    print(f"machine: {mach}", flush=True)
    results = asyncio.run(run(args, atlas))
    if args.queries:  # a partial run: printed above, nothing saved
        return
    ref = 10 if 10 in args.clients else args.clients[0]
    ratios = [results[q][ref]["api_over_cypher_mean"] for q in results]
    out = {
        "atlas": atlas,
        "quick": args.quick,
        "seconds": args.seconds,
        "clients": args.clients,
        "workers": args.workers,
        "machine": mach,
        "feature_p99_ms": results["feature"][ref]["api"]["p99_ms"],
        "lineage_depth6_p99_ms": results["lineage_depth6"][ref]["api"]["p99_ms"],
        "lineage_depth25_p99_ms": results["lineage_depth25"][ref]["api"]["p99_ms"],
        "api_over_cypher_ratio": round(statistics.geometric_mean(ratios), 2),
        "feature_over_cypher_ratio": results["feature"][ref]["api_over_cypher_mean"],
        "feature_over_cypher_ratio_no_coalescing": results["feature"][ref].get("api_no_coalescing_over_cypher_mean"),
        "api_over_cypher_ratio_no_direct_execution": (
            round(
                statistics.geometric_mean(
                    [results[q][ref]["api_no_direct_execution_over_cypher_mean"] for q in results]
                ),
                2,
            )
            if args.ablate_direct
            else None
        ),
        "ratios_at_reference": {q: results[q][ref]["api_over_cypher_mean"] for q in results},
        "reference_clients": ref,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "api_settings": {k: v for k, v in sorted(os.environ.items()) if k.startswith("ATLAS_API_") and "KEY" not in k},
        "results": {q: {str(c): r for c, r in by_c.items()} for q, by_c in results.items()},
    }
    write(out)
    print(
        json.dumps(
            {
                k: out[k]
                for k in (
                    "feature_p99_ms",
                    "lineage_depth6_p99_ms",
                    "lineage_depth25_p99_ms",
                    "api_over_cypher_ratio",
                    "clients",
                )
            }
        )
    )


if __name__ == "__main__":
    main()
