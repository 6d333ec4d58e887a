"""Where a `feature` request's CPU goes: per-process CPU time per request (API server, Neo4j, load generator)
for the API and for the same Cypher through the driver, at a fixed client count.

    python -m bench.bench_api_cpu --atlas bench-gemma-26 [--clients 10] [--seconds 8] [--workers 1]

Reads utime+stime of each process (and the API's worker children) from /proc before and after a timed
closed loop (Linux only). Explains bench_api.py's `feature` ratio: on 2 cores the one API process is the
bottleneck, so its CPU per request against the driver's sets the ratio. Saves bench/results/api-cpu.json|md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import bench_api as B
from bench.harness import save_json
from queries import features as qf
from queries.aio import AsyncGraph
from queries.settings import Neo4jSettings

REPO = Path(__file__).resolve().parent.parent

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def with_children(pid: int) -> list[int]:
    out = [pid]
    kids = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    for kid in kids:
        out += with_children(int(kid))
    return out


def neo4j_pid() -> int:
    found = subprocess.run(["pgrep", "-f", "org.neo4j.server"], capture_output=True, text=True).stdout.split()
    if not found:
        raise SystemExit("no local Neo4j process found (start it with `atlas db start`)")
    return int(found[0])


async def measure(args: argparse.Namespace, port: int, api_pid: int) -> dict[str, Any]:
    seeds = B.pick_seeds(args.atlas, 200)["mid"]
    graph = AsyncGraph(Neo4jSettings(), max_pool_size=64)
    conns = [B.KeepAliveClient("127.0.0.1", port, "/graphql") for _ in range(args.clients)]
    idle: asyncio.Queue[B.KeepAliveClient] = asyncio.Queue()
    for c in conns:
        idle.put_nowait(c)

    async def via_api(i: int) -> None:
        conn = idle.get_nowait()
        try:
            status, data = await conn.post_json({"query": B.FEATURE_Q, "variables": {"uid": seeds[i % 200]}})
        finally:
            idle.put_nowait(conn)
        if status != 200 or data.get("errors"):
            raise RuntimeError(str(data)[:300])

    async def via_driver(i: int) -> None:
        await graph.read(qf.FEATURES_BY_UID, {"uids": [seeds[i % 200]]})

    out: dict[str, Any] = {}
    neo = neo4j_pid()
    try:
        for name, call in (("api", via_api), ("cypher", via_driver)):
            await B.closed_loop(args.clients, 2.0, call)  # warm-up
            groups = {"load_generator": [os.getpid()], "neo4j": [neo], "api_server": with_children(api_pid)}
            before = {g: sum(cpu_s(p) for p in pids) for g, pids in groups.items()}
            t0 = time.perf_counter()
            stats = await B.closed_loop(args.clients, args.seconds, call)
            wall = time.perf_counter() - t0
            after = {g: sum(cpu_s(p) for p in pids) for g, pids in groups.items()}
            per = {g: round((after[g] - before[g]) / max(stats["n"], 1) * 1e3, 3) for g in groups}
            out[name] = {
                **stats,
                "cpu_ms_per_request": per,
                "cpu_ms_per_request_total": round(sum(per.values()), 3),
                "machine_busy_pct": round(
                    sum(after[g] - before[g] for g in groups) / wall / (os.cpu_count() or 1) * 100
                ),
            }
            print(name, json.dumps(out[name]), flush=True)
    finally:
        for c in conns:
            await c.close()
        await graph.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atlas", required=True)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mach = B.machine()
    api = B.start_api(port, args.workers)
    try:
        res = asyncio.run(measure(args, port, api.pid))
    finally:
        api.terminate()
        api.wait(10)
    a, c = res["api"]["cpu_ms_per_request"], res["cypher"]["cpu_ms_per_request"]
    out = {
        "atlas": args.atlas,
        "query": "feature",
        "clients": args.clients,
        "workers": args.workers,
        "seconds": args.seconds,
        "machine": mach,
        **res,
        "api_server_cpu_over_driver_cpu": round(a["api_server"] / max(c["load_generator"], 1e-9), 2),
    }
    B.RESULTS.mkdir(parents=True, exist_ok=True)
    save_json((B.RESULTS / "api-cpu.json"), out, indent=1)
    md = [
        "# Where a `feature` request's CPU goes",
        "",
        f"`python -m bench.bench_api_cpu --atlas {args.atlas} --clients {args.clients}` · {args.workers} API worker(s) · machine: {mach}",
        "",
        "CPU milliseconds per request, by process (utime+stime from /proc over the timed loop):",
        "",
        "| path | req/s | load generator | API server | Neo4j | total | machine busy |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("api", "cypher"):
        r = res[name]
        p = r["cpu_ms_per_request"]
        md.append(
            f"| {name} | {r['rps']} | {p['load_generator']} | {p['api_server']} | {p['neo4j']} | {r['cpu_ms_per_request_total']} | {r['machine_busy_pct']}% |"
        )
    md += [
        "",
        f"The API server spends **{out['api_server_cpu_over_driver_cpu']}×** the CPU the raw driver's process spends per request "
        "(in the Cypher path, the load generator *is* the driver process). With one worker that process is the bottleneck "
        "on 2 cores, so this ratio is what sets bench_api.py's `feature` latency ratio.",
    ]
    (B.RESULTS / "api-cpu.md").write_text("\n".join(md) + "\n")
    print(json.dumps({k: out[k] for k in ("api_server_cpu_over_driver_cpu",)}))


if __name__ == "__main__":
    main()
