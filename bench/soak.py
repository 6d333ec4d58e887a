"""Soak and load: a mix of feature, features (filters), lineage depth 6, origin, search and circuit at several
client counts, each for a fixed time, against `atlas serve` on loopback. Reports p50/p99 per query and phase,
errors, and the RSS of the API and Neo4j processes at the start and the end.

    python bench/soak.py --quick --clients 10 50 200 --seconds 60      # 26-layer synthetic atlas (bench_api's --quick)
    python bench/soak.py --atlas bench-gemma-26 --clients 10 50 200 --seconds 600   # the issue's soak: Gemma-shaped, 10 min

Bounded (clients x seconds), loopback only, stops by itself. Uses bench_api's keep-alive client (one connection
per client: a shared httpx pool saturates the load generator first on 2 cores). Results: bench/results/soak.json + .md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_api import KeepAliveClient, ensure_quick_atlas, machine, pick_seeds, start_api  # noqa: E402

from queries.db import Graph  # noqa: E402
from queries.labels import SET_FEATURE_LABELS  # noqa: E402

WORDS = ["river", "music", "python", "garden", "winter", "number", "question", "city", "colour", "money"]
QUERIES = {
    "feature": "query($u: String!) { feature(uid: $u) { ... on Feature { uid layer module index category sRes sAtt sMlp label } } }",
    "features": (
        "query($a: String!, $l: Int!) { features(where: {atlas: {eq: $a}, layer: {eq: $l}, module: {eq: RES}, sRes: {gt: 0.2}}, "
        "sort: [{sRes: DESC}], limit: 20) { uid sRes } }"
    ),
    "lineage": "query($u: String!) { lineage(uid: $u, depth: 6, minSimilarity: 0) { nodes { uid layer module } edges { source target similarity } } }",
    "origin": "query($u: String!) { origin(uid: $u) { ... on Origin { layer module bornAs { uid } } } }",
    "search": "query($t: String!, $a: String!) { search(text: $t, atlas: $a, limit: 10) { feature { uid } score } }",
    "circuit": "query($us: [String!]!) { circuit(uids: $us, minSimilarity: 0.1, maxDepth: 4) { ... on FlowGraph { nodes { uid } edges { source target } } } }",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int | None) -> float | None:
    import psutil

    if pid is None:
        return None
    try:
        p = psutil.Process(pid)
        return round(sum(c.memory_info().rss for c in [p, *p.children(recursive=True)]) / 2**20, 1)
    except psutil.Error:
        return None


def _neo4j_pid() -> int | None:
    """The Java process serving NEO4J_URI's port (the project's own server), if it runs on this machine."""
    import psutil

    port = int(os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687").rsplit(":", 1)[1])
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "CommunityEntryPoint" in cmd:
            try:
                if any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in p.net_connections("tcp")):
                    return p.pid
            except psutil.Error:
                continue
    return None


def label_some(atlas: str, n: int = 300) -> None:
    """Give `n` residual features labels so `search` finds something (synthetic atlases have none)."""
    rng = random.Random(3)
    with Graph() as g:
        uids = [
            r["u"]
            for r in g.read(
                "MATCH (f:Feature {atlas: $a, module: 'res'}) RETURN f.uid AS u LIMIT $n", {"a": atlas, "n": n}
            )
        ]
        rows = [
            {
                "uid": u,
                "label": f"{rng.choice(WORDS)} {rng.choice(WORDS)}",
                "top_contexts": [],
                "frequency": None,
                "max_activation": None,
            }
            for u in uids
        ]
        g.write(SET_FEATURE_LABELS, {"rows": rows})


async def phase(port: int, atlas: str, seeds: dict[str, Any], clients: int, seconds: float) -> dict[str, Any]:
    lat: dict[str, list[float]] = {k: [] for k in QUERIES}
    errors: dict[str, int] = dict.fromkeys(QUERIES, 0)
    samples: list[str] = []
    stop = time.perf_counter() + seconds
    kinds = list(QUERIES)

    async def worker(w: int) -> None:
        client = KeepAliveClient("127.0.0.1", port, "/graphql")
        rng = random.Random(w)
        i = w
        try:
            while time.perf_counter() < stop:
                kind = kinds[i % len(kinds)]
                i += 1
                u = rng.choice(seeds["mid"])
                variables: dict[str, Any] = {
                    "u": u,
                    "a": atlas,
                    "l": rng.choice(seeds["layers"]),
                    "t": rng.choice(WORDS),
                    "us": [u, rng.choice(seeds["deep"])],
                }
                t = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(
                        client.post_json({"query": QUERIES[kind], "variables": variables}), 60
                    )
                    ok = status == 200 and not body.get("errors")
                    if not ok and len(samples) < 5:
                        samples.append(f"{kind}: {status} {json.dumps(body)[:300]}")
                except Exception as exc:  # noqa: BLE001 - counted and sampled
                    ok = False
                    if len(samples) < 5:
                        samples.append(f"{kind}: {type(exc).__name__} {exc}")
                lat[kind].append(time.perf_counter() - t)
                errors[kind] += not ok
        finally:
            await client.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    wall = time.perf_counter() - t0

    def pct(xs: list[float], p: float) -> float | None:
        xs = sorted(xs)
        return round(xs[min(len(xs) - 1, int(p * len(xs)))] * 1000, 2) if xs else None

    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": sum(map(len, lat.values())),
        "errors": sum(errors.values()),
        "rps": round(sum(map(len, lat.values())) / wall, 1),
        "error_samples": samples,
        "per_query": {
            k: {"n": len(v), "errors": errors[k], "p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99)} for k, v in lat.items()
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atlas", help="an ingested atlas (e.g. bench-gemma-26 from bench_ingest.py --shape gemma --keep)")
    ap.add_argument("--quick", action="store_true", help="ingest (once) and use bench_api's 26-layer synthetic atlas")
    ap.add_argument("--clients", type=int, nargs="+", default=[10, 50, 200])
    ap.add_argument("--seconds", type=float, default=60.0, help="duration of each client level")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    if args.quick:
        atlas = "bench-api-quick"
        ensure_quick_atlas(atlas, d_sae=1024, d_model=256, layers=26)
    elif args.atlas:
        atlas = args.atlas
    else:
        raise SystemExit("give --atlas NAME or --quick")
    label_some(atlas)
    seeds = pick_seeds(atlas, 200)
    start = machine()
    port = _free_port()
    os.environ.setdefault("ATLAS_API_RATE_LIMIT_PER_MINUTE", "0")
    api = start_api(port, 1)
    neo_pid = _neo4j_pid()
    rss0 = {"api_mb": _rss_mb(api.pid), "neo4j_mb": _rss_mb(neo_pid)}
    try:
        asyncio.run(phase(port, atlas, seeds, 4, 3.0))  # warm-up (caches, JIT of Neo4j's plans): not reported
        rss_warm = {"api_mb": _rss_mb(api.pid), "neo4j_mb": _rss_mb(neo_pid)}
        phases = []
        for c in args.clients:
            phases.append(asyncio.run(phase(port, atlas, seeds, c, args.seconds)))
            print(json.dumps({k: v for k, v in phases[-1].items() if k != "per_query"}), flush=True)
        rss1 = {"api_mb": _rss_mb(api.pid), "neo4j_mb": _rss_mb(neo_pid)}
    finally:
        api.terminate()
        try:
            api.wait(20)
        except subprocess.TimeoutExpired:  # requests still queued inside: don't wait for them
            api.kill()
            api.wait(10)
    growth = {k: (round((rss1[k] - rss_warm[k]) / rss_warm[k], 3) if rss1[k] and rss_warm[k] else None) for k in rss1}
    out = {
        "atlas": atlas,
        "machine": start,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "seconds_per_level": args.seconds,
        "rss_start": rss0,
        "rss_after_warmup": rss_warm,
        "rss_end": rss1,
        "rss_growth_after_warmup": growth,
        "phases": phases,
        "errors": sum(p["errors"] for p in phases),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(out, indent=1))
    md = [
        "# Soak and load (bench/soak.py)",
        "",
        f"Atlas `{atlas}`; {args.seconds:.0f} s per client level; machine {start['cpu']}, {start['cores']} cores, load {start['loadavg_1_5_15']} "
        f"at start, {out['loadavg_after']} at the end (shared machine: {start['note']}). API: one uvicorn worker on loopback.",
        "",
        f"RSS (MB) after warm-up → end: API {rss_warm['api_mb']} → {rss1['api_mb']} ({growth['api_mb']}), Neo4j {rss_warm['neo4j_mb']} → {rss1['neo4j_mb']} "
        f"({growth['neo4j_mb']}); errors {out['errors']}.",
        "",
        "| clients | requests | errors | req/s | " + " | ".join(f"{k} p50/p99 ms" for k in QUERIES) + " |",
        "|---|---|---|---|" + "---|" * len(QUERIES),
    ]
    for p in phases:
        md.append(
            f"| {p['clients']} | {p['requests']} | {p['errors']} | {p['rps']} | "
            + " | ".join(f"{q['p50_ms']}/{q['p99_ms']}" for q in p["per_query"].values())
            + " |"
        )
    (args.out / "soak.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
