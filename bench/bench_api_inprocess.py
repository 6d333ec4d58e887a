"""The API's own CPU per request, without HTTP server or database: ASGI app + GraphQL + serialisation alone.

    python -m bench.bench_api_inprocess --atlas bench-gemma-26 [--requests 3000] [--repeats 5]

Records the Neo4j rows that `feature` and depth-6 `lineage` requests read from a real atlas once, then replays
them (a stand-in graph answering each statement with its recorded rows) through the app's ASGI callable in
this process, with ``ATLAS_API_DIRECT_EXECUTION`` on and off, interleaved, and reports the median
``time.process_time`` per request. No uvicorn, no driver, no coalescing: what is left is exactly the work
atlas_api/execution.py targets (strawberry's pipeline, graphql-core's field execution, the HTTP view, JSON).
Every replayed answer is checked against the recorded one. Saves bench/results/api-inprocess.json|md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import atlas_api.app as app_module
from atlas_api.settings import ApiSettings
from bench import bench_api as B
from bench.harness import save_json
from bench.machine import machine
from queries.aio import AsyncGraph
from queries.settings import Neo4jSettings

REPO = Path(__file__).resolve().parent.parent

RESULTS = REPO / "bench" / "results"


def _key(text: str, params: Any) -> tuple[str, str]:
    return text, json.dumps(params, sort_keys=True, default=str)


class Recording:
    """The real graph, keeping every statement's rows."""

    def __init__(self, rows: dict[tuple[str, str], Any]) -> None:
        self.rows, self.graph = rows, AsyncGraph(Neo4jSettings(), max_pool_size=4)

    async def verify(self) -> None:
        await self.graph.verify()

    async def read(self, text: str, params: Any = None, timeout: float | None = None) -> Any:
        self.rows[_key(text, params)] = out = await self.graph.read(text, params, timeout=timeout)
        return out

    async def close(self) -> None:
        await self.graph.close()


class Replay:
    """Answers each statement with its recorded rows (one loop turn, as a driver call would take at least)."""

    def __init__(self, rows: dict[tuple[str, str], Any]) -> None:
        self.rows = rows

    async def verify(self) -> None:
        pass

    async def read(self, text: str, params: Any = None, timeout: float | None = None) -> Any:
        await asyncio.sleep(0)
        return self.rows[_key(text, params)]

    async def close(self) -> None:
        pass


async def post(app: Any, body: dict[str, Any]) -> Any:
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
        "query_string": b"",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "scheme": "http",
        "root_path": "",
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
    }
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            await asyncio.sleep(3600)  # the client never disconnects during a request
        delivered = True
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return json.loads(sent[-1]["body"])


async def with_lifespan(app: Any, work: Any) -> Any:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    task = asyncio.create_task(app.site({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put))
    await outbox.get()
    try:
        return await work()
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


def make_app(graph: Any, direct: bool) -> Any:
    app_module.open_async_graph = lambda *_a, **_k: graph  # type: ignore[assignment]
    return app_module.create_app(ApiSettings(coalesce_lookups=False, direct_execution=direct))


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    seeds = B.pick_seeds(args.atlas, 50)
    bodies = {
        "feature": [{"query": B.FEATURE_Q, "variables": {"uid": u}} for u in seeds["mid"]],
        "lineage_depth6": [{"query": B.LINEAGE_Q, "variables": {"uid": u, "depth": 6}} for u in seeds["mid"]],
    }
    rows: dict[tuple[str, str], Any] = {}
    recorder = make_app(Recording(rows), direct=False)
    expected = await with_lifespan(
        recorder, lambda: asyncio.gather(*(post(recorder, b) for bs in bodies.values() for b in bs))
    )
    expected_by = dict(zip([json.dumps(b, sort_keys=True) for bs in bodies.values() for b in bs], expected))
    assert not any(r.get("errors") for r in expected), expected[0]
    out: dict[str, Any] = {}
    for name, bs in bodies.items():
        n = args.requests if name == "feature" else max(1, args.requests // 3)
        per: dict[str, list[float]] = {"direct": [], "pipeline": []}
        for _ in range(args.repeats):
            for label in ("pipeline", "direct"):  # interleaved: drift hits both alike
                app = make_app(Replay(rows), direct=label == "direct")

                async def run(app: Any = app) -> float:
                    for b in bs:  # warm-up; and every answer must be the recorded one
                        assert await post(app, b) == expected_by[json.dumps(b, sort_keys=True)]
                    t = time.process_time()
                    for i in range(n):
                        await post(app, bs[i % len(bs)])
                    return (time.process_time() - t) / n * 1e3

                per[label].append(await with_lifespan(app, run))
        med = {label: round(statistics.median(v), 4) for label, v in per.items()}
        out[name] = {
            "cpu_ms_per_request": med,
            "runs_ms": {k: [round(x, 4) for x in v] for k, v in per.items()},
            "direct_over_pipeline": round(med["direct"] / med["pipeline"], 3),
            "requests_per_run": n,
        }
        print(f"{name}: {med} ms CPU per request; direct ÷ pipeline {out[name]['direct_over_pipeline']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atlas", required=True, help="An atlas in Neo4j at NEO4J_URI (rows are recorded from it once).")
    ap.add_argument("--requests", type=int, default=3000, help="feature requests per run (lineage: a third).")
    ap.add_argument("--repeats", type=int, default=5, help="Interleaved runs per setting (median).")
    args = ap.parse_args()
    os.environ.pop("ATLAS_API_DIRECT_EXECUTION", None)
    results = asyncio.run(main_async(args))
    out = {"atlas": args.atlas, "machine": machine(), "repeats": args.repeats, "results": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    save_json((RESULTS / "api-inprocess.json"), out, indent=1)
    lines = [
        "# API CPU per request, in process (no HTTP server, no database)",
        "",
        f"Atlas `{args.atlas}`; recorded Neo4j rows replayed through the ASGI app; {args.repeats} interleaved runs, "
        "medians of `time.process_time` per request. Machine: "
        f"{out['machine']['cpu']}, {out['machine']['cores']} cores, load {out['machine']['loadavg_1_5_15']}.",
        "",
        "| request | strawberry's full pipeline (ms) | direct path (ms) | direct ÷ pipeline |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        c = r["cpu_ms_per_request"]
        lines.append(f"| {name} | {c['pipeline']} | {c['direct']} | {r['direct_over_pipeline']} |")
    (RESULTS / "api-inprocess.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
