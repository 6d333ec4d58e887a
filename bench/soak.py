"""Soak and load: a mix of feature, features (filters), lineage depth 6, origin, search and circuit at several
client counts, each for a fixed time, against `atlas serve` on loopback. Reports p50/p99 per query and phase,
errors, and the RSS of the API and Neo4j processes at the start and the end.

    python -m bench.soak --quick --clients 10 50 200 --seconds 60      # 26-layer synthetic atlas (bench_api's --quick)
    python -m bench.soak --atlas bench-gemma-26 --clients 10 50 200 --seconds 600   # the issue's soak: Gemma-shaped, 10 min

Bounded (clients x seconds), loopback only, stops by itself. Uses bench_api's keep-alive client (one connection
per client: a shared httpx pool saturates the load generator first on 2 cores); our own generator rather than
Locust/wrk because it needs GraphQL bodies with per-request variables, typed-error classification and per-query
percentiles, and one asyncio process costs ~0.1 ms of CPU per request (measured below, saved as
``generator_cpu_ms_per_request``) where Locust's gevent users cost several times that on the same cores.

Outcomes are counted apart: ``errors`` (anything unexpected: an untyped or non-retryable error, a 5xx without a
typed retryable code, a client timeout) and ``refused_retryable`` (typed OVERLOADED / DATABASE_BUSY / RATE_LIMITED
answers carrying ``retryAfter``: the server pushing back as designed, not failing). RSS of the API and Neo4j is
sampled every ``--rss-every`` seconds; growth is reported from the start, and from after a warm-up burst at the
highest client count (the pool, the allocator's arenas and Neo4j's page cache reach their working set there;
what grows after that is what a leak would show). Results are rewritten after every level (a stopped run keeps
what it measured). Results: bench/results/soak.json + .md (closed loop) or soak-paced.json + .md (with ``--think``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.harness import KeepAliveClient, ensure_quick_atlas, pick_seeds, save_json, start_api
from bench.machine import machine
from queries.db import Graph
from queries.labels import SET_FEATURE_LABELS

ROOT = Path(__file__).resolve().parent.parent

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


RETRYABLE = {"OVERLOADED", "DATABASE_BUSY", "RATE_LIMITED"}


def classify(status: int, body: dict[str, Any]) -> str:
    """ok, retryable (a typed refusal with a retry hint) or error."""
    errs = body.get("errors") or []
    if status == 200 and not errs:
        return "ok"
    codes = {(e.get("extensions") or {}).get("code") for e in errs}
    hinted = all((e.get("extensions") or {}).get("retryAfter") for e in errs)
    return "retryable" if errs and codes <= RETRYABLE and hinted else "error"


class Sampler:
    """RSS of the API and Neo4j, the load average, and this process's CPU, every ``every`` seconds (a thread)."""

    def __init__(self, api_pid: int, neo_pid: int | None, every: float) -> None:
        import threading

        self.api_pid, self.neo_pid, self.every = api_pid, neo_pid, every
        self.t0 = time.monotonic()
        self.rows: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self, tag: str = "") -> dict[str, Any]:
        row = {
            "t_s": round(time.monotonic() - self.t0, 1),
            "api_mb": _rss_mb(self.api_pid),
            "neo4j_mb": _rss_mb(self.neo_pid),
            "load1": round(os.getloadavg()[0], 2),
            **({"tag": tag} if tag else {}),
        }
        self.rows.append(row)
        return row

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


async def phase(
    port: int, atlas: str, seeds: dict[str, Any], clients: int, seconds: float, think: float = 0.0
) -> dict[str, Any]:
    """``clients`` keep-alive clients for ``seconds``. ``think`` 0: each sends its next request as soon as the last
    is answered (closed loop, saturating: latency is mostly queueing); ``think`` > 0: each waits an exponential
    think time of that mean between requests (a dashboard user's pace, as Locust's ``wait_time``)."""
    lat: dict[str, list[float]] = {k: [] for k in QUERIES}
    errors: dict[str, int] = dict.fromkeys(QUERIES, 0)
    refused: dict[str, int] = dict.fromkeys(QUERIES, 0)
    samples: list[str] = []
    stop = time.perf_counter() + seconds
    kinds = list(QUERIES)
    cpu0 = time.process_time()

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
                    outcome = classify(status, body)
                    if outcome != "ok" and len(samples) < 8:
                        samples.append(f"{kind}: {status} {json.dumps(body)[:300]}")
                except Exception as exc:  # noqa: BLE001 - counted and sampled
                    outcome = "error"
                    if len(samples) < 8:
                        samples.append(f"{kind}: {type(exc).__name__} {exc}")
                if outcome == "ok":
                    lat[kind].append(time.perf_counter() - t)
                    if think:
                        await asyncio.sleep(rng.expovariate(1.0 / think))
                elif outcome == "retryable":
                    refused[kind] += 1
                    await asyncio.sleep(1.0)  # a well-behaved client honours the hint (at least a little)
                else:
                    errors[kind] += 1
        finally:
            await client.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    wall = time.perf_counter() - t0
    n_done = sum(map(len, lat.values())) + sum(errors.values()) + sum(refused.values())
    gen_cpu = time.process_time() - cpu0

    def pct(xs: list[float], p: float) -> float | None:
        xs = sorted(xs)
        return round(xs[min(len(xs) - 1, int(p * len(xs)))] * 1000, 2) if xs else None

    return {
        "clients": clients,
        "think_s": think,
        "seconds": round(wall, 1),
        "requests": n_done,
        "ok": sum(map(len, lat.values())),
        "errors": sum(errors.values()),
        "refused_retryable": sum(refused.values()),
        "rps": round(sum(map(len, lat.values())) / wall, 1),
        "generator_cpu_s": round(gen_cpu, 1),
        "generator_cpu_ms_per_request": round(1000 * gen_cpu / max(n_done, 1), 3),
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "error_samples": samples,
        "per_query": {
            k: {
                "n": len(v),
                "errors": errors[k],
                "refused_retryable": refused[k],
                "p50_ms": pct(v, 0.5),
                "p99_ms": pct(v, 0.99),
            }
            for k, v in lat.items()
        },
    }


def _api_settings() -> dict[str, str]:
    """The ATLAS_API_* settings the API ran with (what shapes its admission and limits), for the record."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("ATLAS_API_") and "KEY" not in k}


def result_name(think: float) -> str:
    """soak.json for the closed-loop (saturating) soak, soak-paced.json for one with think time."""
    return "soak-paced" if think else "soak"


def write(out: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    name = result_name(out.get("think_s", 0.0))
    saved = save_json((directory / f"{name}.json"), out, indent=1)
    m, g = out["machine"], out["rss_growth"]
    md = [
        "# Soak and load (python -m bench.soak)",
        "",
        f"Atlas `{out['atlas']}` ({out['atlas_size']}); seconds per client level {out['seconds_per_level']}; "
        f"machine {m['cpu']}, {m['cores']} cores. {saved['run']['noise']} API: one uvicorn worker on loopback; the load generator is one asyncio process on the same "
        "2 cores (its own CPU per request is in the table). Clients: "
        + (
            f"each waits an exponential think time of mean {out['think_s']:g} s between requests (a user's pace)"
            if out.get("think_s")
            else "closed loop, each sends its next request when the last is answered (saturating)"
        )
        + ". Settings: "
        f"`{json.dumps(out['api_settings'])}`.",
        "",
        f"Status: **{out['status']}**. Errors {out['errors']}; typed retryable refusals {out['refused_retryable']} "
        "(OVERLOADED / DATABASE_BUSY / RATE_LIMITED with retryAfter, counted apart from errors).",
        "",
        f"RSS (MB) start → after warm-up → end: API {out['rss_start']['api_mb']} → {out['rss_after_warmup']['api_mb']} → "
        f"{out['rss_end']['api_mb']}, Neo4j {out['rss_start']['neo4j_mb']} → {out['rss_after_warmup']['neo4j_mb']} → "
        f"{out['rss_end']['neo4j_mb']}. Growth after warm-up: API {g['after_warmup']['api_mb']}, Neo4j "
        f"{g['after_warmup']['neo4j_mb']}; from the start: API {g['from_start']['api_mb']}, Neo4j {g['from_start']['neo4j_mb']}. "
        f"Samples every {out['rss_every_s']:g} s in {result_name(out.get('think_s', 0.0))}.json (`rss_samples`).",
        "",
        "| clients | s | answered | errors | refused (retryable) | req/s | generator CPU ms/req | load at end | "
        + " | ".join(f"{k} p50/p99 ms" for k in QUERIES)
        + " |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(QUERIES),
    ]
    for p in out["phases"]:
        md.append(
            f"| {p['clients']} | {p['seconds']} | {p['ok']} | {p['errors']} | {p['refused_retryable']} | {p['rps']} | "
            f"{p['generator_cpu_ms_per_request']} | {p['loadavg_end'][0]} | "
            + " | ".join(f"{q['p50_ms']}/{q['p99_ms']}" for q in p["per_query"].values())
            + " |"
        )
    samples = [s for p in out["phases"] for s in p["error_samples"]]
    if samples:
        md += ["", "Non-ok samples:", "", *(f"- `{s}`" for s in samples[:12])]
    (directory / f"{name}.md").write_text("\n".join(md) + "\n")


def _growth(a: dict[str, float | None], b: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (round((b[k] - a[k]) / a[k], 3) if b[k] and a[k] else None) for k in ("api_mb", "neo4j_mb")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atlas", help="an ingested atlas (e.g. bench-gemma-26 from bench_ingest.py --shape gemma --keep)")
    ap.add_argument("--quick", action="store_true", help="ingest (once) and use bench_api's 26-layer synthetic atlas")
    ap.add_argument("--clients", type=int, nargs="+", default=[10, 50, 200])
    ap.add_argument(
        "--seconds", type=float, nargs="+", default=[60.0], help="duration of each client level (one, or one per level)"
    )
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds of warm-up at the highest client count")
    ap.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="mean think time (s, exponential) between a client's requests; 0 = closed loop (saturating)",
    )
    ap.add_argument("--rss-every", type=float, default=15.0, help="RSS sampling period (seconds)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    if len(args.seconds) not in (1, len(args.clients)):
        raise SystemExit(f"give one --seconds or one per client level ({len(args.clients)})")
    seconds = dict(zip(args.clients, args.seconds * len(args.clients) if len(args.seconds) == 1 else args.seconds))
    if args.quick:
        atlas = "bench-api-quick"
        ensure_quick_atlas(atlas, d_sae=1024, d_model=256, layers=26)
    elif args.atlas:
        atlas = args.atlas
    else:
        raise SystemExit("give --atlas NAME or --quick")
    label_some(atlas)
    seeds = pick_seeds(atlas, 200)
    with Graph() as g:
        size = g.read(
            "MATCH (a:Atlas {name: $a}) OPTIONAL MATCH (a)-[:HAS_SAE]->(s:SAE) "
            "RETURN a.complete AS complete, count(s) AS saes, sum(s.d_sae) AS features, max(s.d_in) AS d_in",
            {"a": atlas},
        )[0]
    start = machine()
    port = _free_port()
    os.environ.setdefault("ATLAS_API_RATE_LIMIT_PER_MINUTE", "0")
    api = start_api(port, 1)
    sampler = Sampler(api.pid, _neo4j_pid(), args.rss_every)
    rss0 = sampler.sample("start")
    out: dict[str, Any] = {
        "atlas": atlas,
        "atlas_size": f"{size['saes']} SAEs, {size['features']} features declared, d {size['d_in']}, complete "
        f"{size['complete']}; residual features written for layers {seeds['layers'][0]}–{seeds['layers'][-1]}",
        "layers_with_features": seeds["layers"],
        "machine": start,
        "api_settings": _api_settings(),
        "seconds_per_level": {str(c): s for c, s in seconds.items()},
        "warmup_s": args.warmup,
        "think_s": args.think,
        "rss_every_s": args.rss_every,
        "status": "running",
    }

    def save(status: str) -> None:
        end = sampler.rows[-1]
        out.update(
            {
                "status": status,
                "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                "rss_start": rss0,
                "rss_after_warmup": rss_warm,
                "rss_end": end,
                "rss_growth": {"after_warmup": _growth(rss_warm, end), "from_start": _growth(rss0, end)},
                "rss_samples": sampler.rows,
                "phases": phases,
                "errors": sum(p["errors"] for p in phases),
                "refused_retryable": sum(p["refused_retryable"] for p in phases),
                "api_log_error_lines": sum(
                    " ERROR " in line or "Traceback" in line
                    for line in Path(api.log_path).read_text(errors="replace").splitlines()  # type: ignore[attr-defined]
                ),
            }
        )
        write(out, args.out)

    phases: list[dict[str, Any]] = []
    try:
        # Warm-up at the top client count (pool, allocator, Neo4j page cache and plans): not reported.
        asyncio.run(phase(port, atlas, seeds, max(args.clients), args.warmup))
        rss_warm = sampler.sample("after warm-up")
        for c in args.clients:
            phases.append(asyncio.run(phase(port, atlas, seeds, c, seconds[c], args.think)))
            sampler.sample(f"after {c} clients")
            print(json.dumps({k: v for k, v in phases[-1].items() if k != "per_query"}), flush=True)
            save("partial" if c != args.clients[-1] else "complete")
    finally:
        sampler.stop()
        api.terminate()
        try:
            api.wait(20)
        except subprocess.TimeoutExpired:  # requests still queued inside: don't wait for them
            api.kill()
            api.wait(10)
    print((args.out / f"{result_name(args.think)}.md").read_text())


if __name__ == "__main__":
    main()
