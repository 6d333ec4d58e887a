"""Fault injection, automated and repeatable (seeded), on a private Neo4j (temporary home, free port):

- ``resume``: `atlas ingest` SIGKILLed at seeded random points of its progress (a fraction of the reference's
  edges written) on a synthetic SmolLM2-width atlas, then
  `atlas ingest --resume`: the final graph must equal an uninterrupted run (feature and edge counts and the
  SHA-256 of every ``(source uid, target uid, similarity)``, queries.portable.edge_checksum);
- ``neo4j-kill``: the same, but Neo4j itself is SIGKILLed mid-write and started again before the resume;
- ``restart``: `atlas serve` under a steady load of `feature` queries while Neo4j is stopped and started:
  every failure must be the typed DATABASE_UNAVAILABLE (or QUERY_TIMEOUT), and the API must answer again
  within 5 s of Neo4j's readiness (measured from `atlas db start`'s return to the first success).

    python -m bench.faults                       # 10 + 3 trials and a restart; bench/results/faults.json + .md
    python -m bench.faults --trials 1 --neo4j-kills 0 --no-restart --out /tmp/f   # the CI variant's size
    python -m bench.faults --trials 20 --neo4j-kills 5 --layers 30 --d-sae 2048 --neo4j-pagecache 1g   # SmolLM2-shaped

Loopback only; bounded (trials, a fixed load duration); stops by itself. CI runs one seeded SIGKILL trial
through tests/integration/test_faults.py.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from atlas_cli import local_neo4j
from bench.harness import save_json
from bench.machine import machine
from queries.db import Graph
from queries.domain import Module
from queries.maintenance import drop_atlas
from queries.portable import edge_checksum
from queries.schema import ensure_schema
from queries.settings import Neo4jSettings
from saes.manifest import AtlasManifest, SAEEntry, SyntheticSpec

ROOT = Path(__file__).resolve().parent.parent

ATLAS = "faults"


def write_manifest(folder: Path, layers: int, d_sae: int, d_model: int = 576) -> Path:
    """A SmolLM2-width synthetic atlas (d_model 576; `layers` layers of res/att/mlp SAEs of d_sae features)."""
    entries = [
        SAEEntry(layer, mod, synthetic=SyntheticSpec(d_sae=d_sae, seed=1000 * layer + i, d_in=d_model))
        for layer in range(layers)
        for i, mod in enumerate(Module)
    ]
    return AtlasManifest(name=ATLAS, model="HuggingFaceTB/SmolLM2-135M-Instruct", d_model=d_model, saes=entries).write(
        folder / "atlas.toml"
    )


def _env(neo: Neo4jSettings) -> dict[str, str]:
    return {**os.environ, "NEO4J_URI": neo.uri, "NEO4J_PASSWORD": neo.password or "", "PYTHONPATH": str(ROOT)}


def _ingest_cmd(manifest: Path, resume: bool) -> list[str]:
    # numpy matching keeps each run single-threaded-deterministic and light; --edge-batch small: many transactions to kill inside.
    cmd = [
        sys.executable,
        "-m",
        "atlas_cli.main",
        "ingest",
        str(manifest),
        "--no-progress",
        "--backend",
        "numpy",
        "--edge-batch",
        "2000",
    ]
    return [*cmd, "--resume"] if resume else cmd


def _state(neo: Neo4jSettings) -> dict[str, Any]:
    with Graph(neo) as g:
        n_f, n_e, checksum = edge_checksum(g, ATLAS)
        complete = g.read("MATCH (a:Atlas {name: $a}) RETURN a.complete AS c", {"a": ATLAS})
    return {"features": n_f, "edges": n_e, "checksum": checksum, "complete": bool(complete and complete[0]["c"])}


def _drop(neo: Neo4jSettings) -> None:
    with Graph(neo) as g:
        drop_atlas(g, ATLAS)


def reference(neo: Neo4jSettings, manifest: Path) -> tuple[dict[str, Any], float]:
    _drop(neo)
    t0 = time.monotonic()
    subprocess.run(_ingest_cmd(manifest, False), env=_env(neo), cwd=ROOT, check=True, capture_output=True, text=True)
    return _state(neo), time.monotonic() - t0


def _edges_now(neo: Neo4jSettings) -> int:
    from queries.ingest_writes import COUNT_ATLAS

    try:
        with Graph(neo.model_copy(update={"connect_timeout_s": 1.0})) as g:
            return int(g.read(COUNT_ATLAS, {"atlas": ATLAS})[0]["edges"])
    except Exception:  # noqa: BLE001 - not there yet / server busy: "no progress seen"
        return 0


def kill_trial(
    neo: Neo4jSettings,
    manifest: Path,
    fraction: float,
    ref: dict[str, Any],
    server: local_neo4j.LocalNeo4jSettings | None = None,
) -> dict[str, Any]:
    """Start an ingest and SIGKILL it (or, with ``server``, Neo4j) once it has written ``fraction`` of the reference's
    edges (a seeded point in its progress, polled every 50 ms); then ``--resume`` and compare with ``ref``."""
    _drop(neo)
    proc = subprocess.Popen(
        _ingest_cmd(manifest, False), env=_env(neo), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    target = max(1, int(fraction * ref["edges"]))
    seen = 0
    while proc.poll() is None and seen < target:
        time.sleep(0.05)
        seen = _edges_now(neo)
    killed = proc.poll() is None
    clear_error = None
    if server is None:
        if killed:
            proc.kill()
        proc.communicate()
    else:
        pid = local_neo4j.status(server).pid
        if killed and pid:
            os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=300)
        local_neo4j.start(server)  # recovery of a killed store happens here
        if killed:
            clear_error = (
                proc.returncode != 0 and "error: " in err and "Traceback" not in err
            )  # one clear line, not a crash
    partial = _state(neo)
    resumed = subprocess.run(_ingest_cmd(manifest, True), env=_env(neo), cwd=ROOT, capture_output=True, text=True)
    final = _state(neo)
    return {
        "kill_at_edges": seen,
        "kill_fraction": round(fraction, 3),
        "killed_mid_run": killed,
        "clear_error": clear_error,
        "partial_edges": partial["edges"],
        "resume_rc": resumed.returncode,
        "resume_error": resumed.stderr.strip()[-300:] if resumed.returncode else None,
        "equal": final == ref and resumed.returncode == 0,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def restart(
    server: local_neo4j.LocalNeo4jSettings, neo: Neo4jSettings, clients: int = 8, down_s: float = 3.0
) -> dict[str, Any]:
    import httpx

    with Graph(neo) as g:
        uid = g.read("MATCH (f:Feature {atlas: $a}) RETURN f.uid AS u LIMIT 1", {"a": ATLAS})[0]["u"]
    port = _free_port()
    env = {**_env(neo), "ATLAS_API_QUERY_TIMEOUT_S": "5"}
    api = subprocess.Popen(
        [sys.executable, "-m", "atlas_cli.main", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    query = {
        "query": "query($u: String!) { feature(uid: $u) { __typename ... on Feature { uid } } }",
        "variables": {"u": uid},
    }
    log: list[tuple[float, str]] = []  # (time, "ok" | error code)
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                try:
                    body = c.post(f"{base}/graphql", json=query).json()
                    errs = body.get("errors") or []
                    log.append(
                        (
                            time.monotonic(),
                            "ok"
                            if not errs and body["data"]["feature"]["uid"] == uid
                            else str(errs[0].get("extensions", {}).get("code")),
                        )
                    )
                except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                    log.append((time.monotonic(), f"transport:{type(exc).__name__}"))
                time.sleep(0.02)

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for t in threads:
            t.start()
        time.sleep(3)
        t_stop = time.monotonic()
        local_neo4j.stop(server)
        time.sleep(down_s)
        local_neo4j.start(server)
        t_ready = time.monotonic()
        time.sleep(8)
        stop.set()
        for t in threads:
            t.join(40)
        stuck = sum(t.is_alive() for t in threads)
    finally:
        stop.set()
        api.terminate()
        api.wait(20)
    during = Counter(code for ts, code in log if t_stop <= ts <= t_ready)
    first_ok = min((ts for ts, code in log if ts > t_ready and code == "ok"), default=None)
    # After the first success, every later answer must be a success too (no flapping, nothing stuck).
    after = Counter(code for ts, code in log if first_ok is not None and ts > first_ok)
    untyped = {
        c: n
        for c, n in during.items()
        if c not in ("ok", "DATABASE_UNAVAILABLE", "DATABASE_BUSY", "OVERLOADED", "QUERY_TIMEOUT")
    }
    return {
        "clients": clients,
        "requests": len(log),
        "outage_answers": dict(during),
        "untyped_errors_during_outage": untyped,
        "recovery_s": round(first_ok - t_ready, 2) if first_ok else None,
        "answers_after_recovery": dict(after),
        "stuck_clients": stuck,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10, help="ingest SIGKILL trials")
    ap.add_argument("--neo4j-kills", type=int, default=3, help="Neo4j SIGKILL trials")
    ap.add_argument("--restart", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--d-sae", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=7)
    # a SmolLM2-shaped atlas (--layers 30 --d-sae 2048: ~1M edges) needs more than the small default's page cache
    ap.add_argument("--neo4j-heap", default="512m")
    ap.add_argument("--neo4j-pagecache", default="128m")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    result: dict[str, Any] = {
        "machine": machine(),
        "seed": args.seed,
        "atlas": {"layers": args.layers, "d_sae": args.d_sae, "d_model": 576},
        "neo4j_memory": {"heap": args.neo4j_heap, "pagecache": args.neo4j_pagecache},
    }
    with tempfile.TemporaryDirectory(prefix="atlas-faults-") as tmp:
        server = local_neo4j.LocalNeo4jSettings(
            home=Path(tmp) / "neo4j", bolt_port=_free_port(), heap=args.neo4j_heap, pagecache=args.neo4j_pagecache
        )
        local_neo4j.start(server)
        try:
            neo = Neo4jSettings(uri=server.bolt_uri, password=server.password, connect_timeout_s=2.0)
            with Graph(neo) as g:
                ensure_schema(g)
            manifest = write_manifest(Path(tmp), args.layers, args.d_sae)
            ref, ref_s = reference(neo, manifest)
            result["reference"] = {**ref, "seconds": round(ref_s, 1)}
            trials = [kill_trial(neo, manifest, rng.uniform(0.02, 0.95), ref) for _ in range(args.trials)]
            kills = [kill_trial(neo, manifest, rng.uniform(0.05, 0.9), ref, server) for _ in range(args.neo4j_kills)]
            result["ingest_sigkill"] = {
                "trials": len(trials),
                "mismatches": sum(not t["equal"] for t in trials),
                "runs": trials,
            }
            result["neo4j_sigkill"] = {
                "trials": len(kills),
                "mismatches": sum(not t["equal"] for t in kills),
                "runs": kills,
            }
            if args.restart:
                result["restart"] = restart(server, neo)
        finally:
            local_neo4j.stop(server)
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    saved = save_json((args.out / "faults.json"), result, indent=1)
    r = result.get("restart", {})
    md = [
        "# Fault injection (python -m bench.faults)",
        "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, load {result['machine']['loadavg_1_5_15']} at start, "
        f"{result['loadavg_after']} at the end. {saved['run']['noise']} Seed {args.seed}; atlas {args.layers} layers x res/att/mlp, d_sae {args.d_sae}, d_model 576.",
        "",
        f"- uninterrupted ingest: {ref['features']} features, {ref['edges']} edges, checksum `{ref['checksum'][:16]}`, {ref_s:.1f} s",
        f"- ingest SIGKILLed at seeded points of its progress (a fraction of the edges written) then `--resume`d: {len(trials)} trials, "
        f"{result['ingest_sigkill']['mismatches']} mismatches ({sum(t['killed_mid_run'] for t in trials)} killed mid-run)",
        f"- Neo4j SIGKILLed mid-write, restarted, ingest resumed: {len(kills)} trials, {result['neo4j_sigkill']['mismatches']} mismatches "
        f"({sum(t['killed_mid_run'] for t in kills)} killed mid-run; the ingest's error was one clear line in {sum(bool(t['clear_error']) for t in kills)})",
    ]
    if r:
        md.append(
            f"- Neo4j stopped for 3 s under {r['clients']} clients: answers during the outage {r['outage_answers']}, untyped {r['untyped_errors_during_outage'] or 'none'}; "
            f"API answered again {r['recovery_s']} s after Neo4j was ready; after that {r['answers_after_recovery']}; stuck clients {r['stuck_clients']}"
        )
    (args.out / "faults.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
