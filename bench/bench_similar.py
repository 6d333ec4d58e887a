"""Latency of the API's ``similar`` (decoder neighbours from the SAE files) on a 16k-wide SAE.

    python -m bench.bench_similar                     # 2 x 16,384-wide synthetic SAEs, d_model 2304 (Gemma-2-2B-shaped)
    python -m bench.bench_similar --d-sae 4096 --d-model 576

Ingests a two-layer synthetic residual atlas into NEO4J_URI (dropped afterwards), serves the API with
``atlas serve`` on a free port (bench_api.start_api), and times ``similar(uid, sae: layer 0, k: 10)`` over HTTP: the first (cold) request reads and
normalises the SAE and builds its FAISS index, then ``--requests`` warm requests from one client for
p50/p99. Saves bench/results/api-similar.json and .md with the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.harness import save_json, start_api
from bench.machine import machine
from ingest.pipeline import ingest_atlas
from queries.db import Graph
from queries.ids import Module
from queries.maintenance import drop_atlas
from saes.manifest import AtlasManifest, SAEEntry, SyntheticSpec, load_manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d-sae", type=int, default=16_384)
    ap.add_argument("--d-model", type=int, default=2_304)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    name = f"bench-similar-{args.d_sae}"
    result: dict[str, object] = {
        "machine": machine(),
        "d_sae": args.d_sae,
        "d_model": args.d_model,
        "k": 10,
        "requests": args.requests,
    }
    with tempfile.TemporaryDirectory() as tmp, Graph() as g:
        entries = [
            SAEEntry(layer, Module.RES, synthetic=SyntheticSpec(d_sae=args.d_sae, seed=layer, d_in=args.d_model))
            for layer in (0, 1)
        ]
        AtlasManifest(name=name, model="bench/synthetic", d_model=args.d_model, saes=entries, base_dir=Path(tmp)).write(
            Path(tmp) / "atlas.toml"
        )
        t0 = time.perf_counter()
        ingest_atlas(load_manifest(Path(tmp) / "atlas.toml"), g, k=5)
        result["ingest_s"] = round(time.perf_counter() - t0, 1)
        query = "query($u: String!, $s: String!) { similar(uid: $u, sae: $s, k: 10) { cold millis neighbours { uid cosine feature { uid } } } }"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = start_api(port, 1)  # `atlas serve` in its own process, as bench_api.py runs it
        api = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(timeout=120) as client:

                def ask(i: int) -> tuple[float, dict]:
                    t = time.perf_counter()
                    r = client.post(
                        f"{api}/graphql",
                        json={"query": query, "variables": {"u": f"{name}/1-res/{i}", "s": f"{name}/0-res"}},
                    ).json()
                    if "errors" in r:
                        raise SystemExit(f"similar failed: {r['errors']}")
                    return (time.perf_counter() - t) * 1000, r["data"]["similar"]

                cold_ms, first = ask(0)
                assert first["cold"] and len(first["neighbours"]) == 10
                warm = [ask(1 + i % (args.d_sae - 1))[0] for i in range(args.requests)]
        finally:
            proc.terminate()
            proc.wait(30)
            drop_atlas(g, name)
    warm.sort()
    result.update(
        {
            "cold_ms": round(cold_ms, 1),
            "cold_server_ms": first["millis"],
            "warm_p50_ms": round(statistics.median(warm), 2),
            "warm_p99_ms": round(warm[min(len(warm) - 1, int(0.99 * len(warm)))], 2),
            "warm_mean_ms": round(statistics.fmean(warm), 2),
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        }
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = save_json((out / "api-similar.json"), result, indent=2)
    m = result["machine"]
    md = [
        f"# API `similar` on a {args.d_sae:,}-wide SAE (d_model {args.d_model:,})",
        "",
        (
            f"`python -m bench.bench_similar --d-sae {args.d_sae} --d-model {args.d_model}` on {m['cpu']} ({m['cores']} cores), "
            f"{saved['run']['noise']} One client over HTTP, k = 10, "
            "exact FAISS IndexFlatIP over the normalised decoder; the neighbours' Feature nodes are resolved too."
        ),
        "",
        "| figure | value |",
        "|---|---|",
        f"| cold request (read + normalise the SAE, build the index, search) | {result['cold_ms']} ms (server side {result['cold_server_ms']} ms) |",
        f"| warm p50 / p99 ({args.requests} requests) | **{result['warm_p50_ms']} ms / {result['warm_p99_ms']} ms** |",
        f"| warm mean | {result['warm_mean_ms']} ms |",
        "",
    ]
    (out / "api-similar.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
