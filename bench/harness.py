"""What the bench scripts share: the repository paths, the machine a figure was taken on and how loud it was,
saving a result with those facts, starting the API, a keep-alive client and the quick synthetic atlas.

Every saved result carries ``run`` (:func:`run_facts`): the CPU (bench.machine), the 1/5/15-minute load when the
script started and when it saved, the cores, and ``quiet`` — true only when the 1-minute load at start and at end
is at most :data:`QUIET_LOAD_PER_CORE` per core (3 on 2 cores). A report's words about noise come from
:func:`noise_note`, computed from those loads, never a fixed sentence; a figure with ``quiet: false`` is not quoted
as a headline. Scripts run as modules from the repository root: ``python -m bench.bench_api --quick``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.machine import machine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
QUIET_LOAD_PER_CORE = 1.5
# The load when this script started (bench.harness is imported first thing by every script that saves a figure).
START_LOAD: tuple[float, float, float] = os.getloadavg()


def cores() -> int:
    return os.cpu_count() or 1


def is_quiet(
    start: tuple[float, ...] | list[float], end: tuple[float, ...] | list[float], n_cores: int | None = None
) -> bool:
    """Quiet: the 1-minute load at start and at end at most QUIET_LOAD_PER_CORE per core."""
    limit = QUIET_LOAD_PER_CORE * (n_cores or cores())
    return start[0] <= limit and end[0] <= limit


def run_facts(start: tuple[float, ...] | list[float] | None = None) -> dict[str, Any]:
    """The machine and its load at start (``start``, default the script's start) and now, with ``quiet``."""
    start = list(start or START_LOAD)
    end = list(os.getloadavg())
    n = cores()
    quiet = is_quiet(start, end, n)
    return {
        "machine": machine(),
        "load_start_1_5_15": [round(x, 2) for x in start],
        "load_end_1_5_15": [round(x, 2) for x in end],
        "cores": n,
        "quiet": quiet,
        "quiet_rule": f"1-min load <= {QUIET_LOAD_PER_CORE:g} per core ({QUIET_LOAD_PER_CORE * n:g}) at start and end",
        "noise": noise_note({"load_start_1_5_15": start, "load_end_1_5_15": end, "cores": n, "quiet": quiet}),
    }


def noise_note(run: dict[str, Any]) -> str:
    """One sentence on how loud the machine was, from the measured loads (``run_facts``' keys)."""
    s, e, n = run["load_start_1_5_15"][0], run["load_end_1_5_15"][0], run["cores"]
    loads = f"1-min load {s:.2f} at start and {e:.2f} at end on {n} cores"
    if run["quiet"]:
        return f"Quiet machine ({loads}): the timings are the figures to quote."
    return (
        f"Loaded machine ({loads}, above {QUIET_LOAD_PER_CORE:g} per core): other jobs shared the CPUs, so latencies "
        "and rates are noisy and not headline figures; ratios measured in the same run are more robust."
    )


def settle_load(max_wait_s: float, poll_s: float = 5.0) -> float:
    """Wait (at most ``max_wait_s``) until the 1-minute load is back under the quiet limit; the seconds waited.

    A benchmark's own heaviest cell (50 clients, a full-width GEMM) lifts the 1-minute load for a minute after
    it ends, so the end load read at once says more about the benchmark than about other jobs. Read after this
    wait, a load still above the limit means something else was running."""
    limit = QUIET_LOAD_PER_CORE * cores()
    t0 = time.monotonic()
    while os.getloadavg()[0] > limit and time.monotonic() - t0 < max_wait_s:
        time.sleep(poll_s)
    return round(time.monotonic() - t0, 1)


def inputs_quiet(inputs: dict[str, dict[str, Any] | None]) -> tuple[bool, str | None]:
    """For a report computed from other result files: quiet only if every input was, and why not otherwise
    (each input named with its ``quiet`` and, where it has one, its own stated reason)."""
    loud = {name: d for name, d in inputs.items() if d is not None and d.get("quiet") is not True}
    if not loud:
        return True, None
    parts = [
        f"{name} (quiet {d.get('quiet')!r}" + (f": {d['not_quiet_reason']}" if d.get("not_quiet_reason") else "") + ")"
        for name, d in sorted(loud.items())
    ]
    return False, "computed from result files that are not all quiet: " + "; ".join(parts)


def save_json(
    path: Path,
    result: dict[str, Any],
    *,
    start: tuple[float, ...] | list[float] | None = None,
    indent: int = 1,
    parts_quiet: bool = True,
    settle_s: float = 0.0,
    not_quiet_reason: str | None = None,
) -> dict[str, Any]:
    """Write ``result`` to ``path`` with ``run`` (machine, loads at start and end, quiet) and top-level ``quiet``
    (false as well when ``parts_quiet`` is: a file that keeps figures of earlier runs, each with its own loads).

    ``settle_s``: wait up to that long for the benchmark's own load to decay before reading the end load
    (:func:`settle_load`; the wait is recorded). ``not_quiet_reason``: why a figure that is not quiet is still
    committed (e.g. measured on another machine); stored beside ``quiet`` so no hand edit of the JSON is needed."""
    waited = settle_load(settle_s) if settle_s > 0 else 0.0
    facts = run_facts(start)
    if settle_s > 0:
        facts["end_load_read_after_settling_s"] = waited
    out = {**result, "run": facts, "quiet": facts["quiet"] and parts_quiet}
    if not_quiet_reason and not out["quiet"]:
        out["not_quiet_reason"] = not_quiet_reason
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=indent, default=str) + "\n")
    return out


def ensure_quick_atlas(name: str, d_sae: int, d_model: int, layers: int) -> None:
    """Ingest a synthetic atlas of `layers` layers × res/att/mlp (Gemma's depth at a small width) unless present."""
    from ingest.pipeline import ingest_atlas
    from queries.db import Graph
    from queries.ids import Module
    from saes.manifest import AtlasManifest, SAEEntry, SyntheticSpec

    with Graph() as g:
        row = g.read("MATCH (a:Atlas {name: $n}) RETURN a.complete AS c", {"n": name})
        if row and row[0]["c"]:
            return
        entries = [
            SAEEntry(L, mod, synthetic=SyntheticSpec(d_sae=d_sae, seed=1000 * L + i, d_in=d_model))
            for L in range(layers)
            for i, mod in enumerate(Module)
        ]
        m = AtlasManifest(name=name, model="synthetic/gemma-depth", d_model=d_model, saes=entries)
        print(f"ingesting {name} ({layers} layers × 3 × {d_sae}, d {d_model}) ...", flush=True)
        ingest_atlas(m, g, k=5, progress=True, resume=bool(row))


def pick_seeds(atlas: str, n: int, seed: int = 0) -> dict[str, list[str]]:
    """``n`` deep (last layer) and ``n`` mid-depth residual seeds of ``atlas`` (layers fully written only)."""
    from queries.db import Graph

    with Graph() as g:
        layers = g.read(
            "MATCH (a:Atlas {name: $n})-[:HAS_SAE]->(s:SAE {module: 'res'}) RETURN s.layer AS l, s.d_sae AS d ORDER BY l",
            {"n": atlas},
        )
        # Only layers whose residual features are all written (an atlas whose ingest was stopped part-way
        # has SAE nodes for every layer but features for the first ones only).
        present = {
            r["l"]
            for r in g.read(
                "UNWIND $rows AS row MATCH (f:Feature {uid: row.uid}) RETURN row.l AS l",
                {"rows": [{"l": r["l"], "uid": f"{atlas}/{r['l']}-res/{r['d'] - 1}"} for r in layers]},
            )
        }
        layers = [r for r in layers if r["l"] in present]
        if not layers:
            raise SystemExit(f"atlas {atlas!r} has no residual SAEs in Neo4j (ingest it first, or use --quick)")
        rng = random.Random(seed)
        top = layers[-1]
        deep = [f"{atlas}/{top['l']}-res/{rng.randrange(top['d'])}" for _ in range(n)]
        mid = [
            f"{atlas}/{(row := rng.choice(layers[6:] or layers))['l']}-res/{rng.randrange(row['d'])}" for _ in range(n)
        ]
        return {"deep": deep, "mid": mid, "layers": [r["l"] for r in layers]}


class KeepAliveClient:
    """One persistent HTTP/1.1 connection that POSTs JSON and reads a Content-Length response (no pooling)."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port = host, port
        self._head = f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\ncontent-length: ".encode()
        self._rw: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post_json(self, payload: dict[str, Any]) -> tuple[int, Any]:
        reused = self._rw is not None
        if self._rw is not None and self._rw[0].at_eof():  # the server closed it while idle (keep-alive timeout)
            await self.close()
            reused = False
        if self._rw is None:
            self._rw = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._rw
        body = json.dumps(payload).encode()
        try:
            writer.write(self._head + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if length is None:
                raise RuntimeError(f"response without content-length: {head[:200]!r}")
            data = json.loads(await reader.readexactly(length))
        except asyncio.IncompleteReadError as exc:
            await self.close()
            if reused and not exc.partial:
                # a stale keep-alive connection closed by the server as the request went out (no byte of an answer):
                # sent again once on a new connection, as HTTP clients do; a fresh connection's failure is an error
                return await self.post_json(payload)
            raise
        except BaseException:  # also a timeout's cancellation
            await self.close()  # the stream position is unknown: reconnect on the next request
            raise
        if b"connection: close" in head.lower():
            await self.close()
        return status, data

    async def close(self) -> None:
        if self._rw is not None:
            self._rw[1].close()
            self._rw = None


async def closed_loop(clients: int, seconds: float, make: Callable[[int], Awaitable[None]]) -> dict[str, float]:
    """`clients` workers issue requests back to back for `seconds`; returns latency percentiles and throughput."""
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        i = w
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                await make(i)
            except Exception:  # noqa: BLE001 - counted, reported
                errors += 1
            lat.append(time.perf_counter() - t)
            i += clients

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    wall = time.perf_counter() - t0
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000  # noqa: E731
    return {
        "n": len(lat),
        "errors": errors,
        "p50_ms": round(q(0.50), 2),
        "p99_ms": round(q(0.99), 2),
        "mean_ms": round(statistics.fmean(lat) * 1000, 2),
        "rps": round(len(lat) / wall, 1),
    }


def start_api(port: int, workers: int) -> subprocess.Popen[bytes]:
    """``atlas serve`` on 127.0.0.1:``port`` as its own process (stderr to a temporary log), once it is ready."""
    import httpx

    env = {**os.environ, "ATLAS_API_MAX_COMPLEXITY": "1000000"}
    # stderr to a file, not a pipe nobody reads: over a long run the API's warnings would fill the pipe and block it.
    log = tempfile.NamedTemporaryFile(prefix="atlas-api-", suffix=".log", delete=False)  # noqa: SIM115 - kept open by the child
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "atlas_cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    proc.log_path = log.name  # type: ignore[attr-defined]
    deadline = time.monotonic() + 180  # imports alone take a minute on a loaded 2-core machine
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the API exited: {Path(log.name).read_text()[-2000:]}")
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"the API did not become ready in 180 s (log: {log.name})")
