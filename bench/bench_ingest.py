"""Ingest benchmark: synthetic SmolLM2- or Gemma-2-2B-shaped atlases, matching backends and write paths.

    python -m bench.bench_ingest --shape smollm2            # 30 layers × 3 × 2,048, d 576
    python -m bench.bench_ingest --shape gemma --layers 3   # reduced Gemma-2-2B shape (16,384, d 2304)
    python -m bench.bench_ingest --shape gemma              # the full 26-layer atlas (≈1.28M features)

Measures, in one run on the same data: matching time of one (res, mlp) SAE pair with FAISS as ingest
runs it (with the bf16 pre-filter where the CPU has bf16 instructions), FAISS IndexFlatIP alone, torch
matmul+topk and numpy, and of the res-res pair both ways (ratios); the online ingest end to end into the Neo4j at NEO4J_URI (nodes/s and
relationships/s of the write phases, matching time, wall time); optionally (``--bulk``) the CSV export
and ``neo4j-admin database import`` into a private temporary server; peak RSS; the machine.
Saves ``bench/results/ingest-<shape>-<layers>.json|md`` and merges the run into ``bench/results/ingest.json|md``
(top-level figures = the full Gemma-shaped run once it exists, else the SmolLM2-shaped one).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import save_json
from bench.machine import machine
from ingest.matching import topk_both_ways, topk_search
from ingest.options import IngestOptions
from ingest.pipeline import ingest_atlas
from queries.db import Graph
from queries.ids import Module
from queries.ingest_writes import COUNT_ATLAS
from queries.maintenance import drop_atlas
from saes.manifest import AtlasManifest, SAEEntry, SyntheticSpec
from saes.sources import synthetic_sae

REPO = Path(__file__).resolve().parent.parent

SHAPES = {
    "smollm2": (30, 2048, 576, "HuggingFaceTB/SmolLM2-135M-Instruct"),
    "gemma": (26, 16384, 2304, "google/gemma-2-2b"),
}


def manifest_for(shape: str, layers: int | None) -> AtlasManifest:
    n_layers, d_sae, d_model, model = SHAPES[shape]
    n = layers or n_layers
    entries = [
        SAEEntry(layer, mod, synthetic=SyntheticSpec(d_sae=d_sae, seed=1000 * layer + i, d_in=d_model))
        for layer in range(n)
        for i, mod in enumerate(Module)
    ]
    return AtlasManifest(name=f"bench-{shape}-{n}", model=model, d_model=d_model, saes=entries)


MATCHERS = {
    # name → (what it is, call); "faiss" is what `atlas ingest` runs (the bf16 pre-filter where the CPU has bf16)
    "faiss": (
        "FAISS backend as ingest runs it (prefilter auto)",
        lambda q, b, k: topk_search(q, b, k, backend="faiss"),
    ),
    "faiss_flat": (
        "FAISS IndexFlatIP alone (prefilter off)",
        lambda q, b, k: topk_search(q, b, k, backend="faiss", prefilter="off"),
    ),
    "torch": ("torch fp32 matmul + topk, tiled", lambda q, b, k: topk_search(q, b, k, backend="torch")),
    "numpy": ("numpy matmul + argpartition, tiled", lambda q, b, k: topk_search(q, b, k, backend="numpy")),
    "both_ways": ("res(L-1)-res(L) both directions as ingest runs it", lambda q, b, k: topk_both_ways(q, b, k)),
    "both_ways_torch": (
        "both directions, torch fp32 (prefilter off)",
        lambda q, b, k: topk_both_ways(q, b, k, prefilter="off", strategy="shared"),
    ),
    "both_ways_two": (
        "both directions as two one-way searches as ingest runs them",
        lambda q, b, k: topk_both_ways(q, b, k, strategy="two"),
    ),
    # the floor: the bare fp32 GEMM of the pair into preallocated tiles as matching tiles it (no top-k)
    "gemm_torch": ("bare fp32 GEMM, torch (MKL), tiled", lambda q, b, k: _bare_gemm(q, b, "torch")),
    "gemm_numpy": ("bare fp32 GEMM, numpy (OpenBLAS), tiled", lambda q, b, k: _bare_gemm(q, b, "numpy")),
}


def _bare_gemm(q: np.ndarray, b: np.ndarray, lib: str) -> None:
    import torch

    from ingest.matching import DEFAULT_TILE_BYTES, _tile_rows

    step = _tile_rows(len(b), DEFAULT_TILE_BYTES)
    out = np.empty((min(step, len(q)), len(b)), dtype=np.float32)
    qt, bt, out_t = torch.from_numpy(q), torch.from_numpy(b), torch.from_numpy(out)
    for a in range(0, len(q), step):
        n = min(len(q), a + step) - a
        if lib == "torch":
            torch.mm(qt[a : a + n], bt.T, out=out_t[:n])
        else:
            np.matmul(q[a : a + n], b.T, out=out[:n])


def bench_matching(
    d_sae: int, d_model: int, k: int, repeats: int = 3, skip: tuple[str, ...] = (), query_rows: int | None = None
) -> dict[str, object]:
    """Median of ``repeats`` interleaved runs per matcher on the same unit-normalised pair (same threads:
    FAISS's OpenMP and torch's intra-op pools both use every core by default)."""
    import faiss
    import torch

    from ingest.cpu import cpu_class
    from ingest.prefilter import cpu_has_fast_bf16, resolve_prefilter

    matchers = {name: m for name, m in MATCHERS.items() if name not in skip}

    q = synthetic_sae(d_model, d_sae, 1).W_dec
    b = synthetic_sae(d_model, d_sae, 2).W_dec
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    if query_rows:  # a slice of the pair (every figure is linear in the query/target rows; ratios carry over)
        q = np.ascontiguousarray(q[:query_rows])
    times: dict[str, list[float]] = {x: [] for x in matchers}
    answer: dict[str, object] = {}
    for _what, call in matchers.values():
        call(q[:256], b, k)  # warm-up (thread pools, imports)
    for _ in range(repeats):
        for name, (_what, call) in matchers.items():
            t = time.perf_counter()
            answer[name] = call(q, b, k)
            times[name].append(time.perf_counter() - t)
    out: dict[str, object] = {
        "faiss_threads": faiss.omp_get_max_threads(),
        "torch_threads": torch.get_num_threads(),
        "repeats": repeats,
        "query_rows": len(q),
        "base_rows": len(b),
        "cpu_has_fast_bf16": cpu_has_fast_bf16(),
        "cpu_class": cpu_class(),
        "prefilter_active": resolve_prefilter("auto"),
        "matchers": {name: what for name, (what, _call) in matchers.items()},
    }
    for name in matchers:
        out[f"{name}_s"] = round(float(np.median(times[name])), 3)
    # exactness: the full top-k lists must agree (up to fp32 near-ties); similarities to fp32 rounding
    for name in ("faiss_flat", "torch", "numpy"):
        if name not in answer:
            continue
        out[f"{name}_same_topk_as_faiss"] = float((answer[name][1] == answer["faiss"][1]).mean())  # type: ignore[index]
        out[f"{name}_max_sim_diff"] = float(np.abs(answer[name][0] - answer["faiss"][0]).max())  # type: ignore[index]
    bw = answer["both_ways"]
    for other in ("both_ways_torch", "both_ways_two"):
        if other in answer:
            bwt = answer[other]
            out[f"{other}_same_topk"] = float(np.mean([(bw[i][1] == bwt[i][1]).mean() for i in (0, 1)]))  # type: ignore[index]
    t = {name: float(v) for name, v in out.items() if name.endswith("_s") and isinstance(v, float)}

    def ratio(key: str, num: str, den: str) -> None:
        if num in t and den in t:
            out[key] = round(t[num] / t[den], 3)

    ratio("faiss_vs_torch_speedup", "torch_s", "faiss_s")
    ratio("faiss_flat_vs_torch_speedup", "torch_s", "faiss_flat_s")
    ratio("faiss_vs_numpy_speedup", "numpy_s", "faiss_s")
    ratio("both_ways_vs_torch_speedup", "both_ways_torch_s", "both_ways_s")
    # issue #16: one-way matching against the machine's GEMM limit (the faster bare fp32 GEMM of the two
    # libraries), and the res-res path against two one-way searches (must stay <= 1)
    floors = [t[x] for x in ("gemm_torch_s", "gemm_numpy_s") if x in t]
    if floors:
        out["gemm_floor_s"] = min(floors)
        out["matching_over_gemm_floor"] = round(t["faiss_s"] / min(floors), 3)
        out["both_ways_over_gemm_floor"] = round(t["both_ways_s"] / min(floors), 3)
    ratio("both_ways_over_two_searches", "both_ways_s", "both_ways_two_s")
    return out


def bench_bulk(manifest: AtlasManifest, opts: IngestOptions) -> dict[str, float]:
    """CSV export, then ``neo4j-admin database import full`` into a private temporary server (started
    afterwards and checked), the same way ``atlas ingest --bulk-csv DIR --bulk-import`` does it."""
    from atlas_cli import local_neo4j
    from atlas_cli.commands.ingest import import_into_local_server
    from ingest.bulk import export_csv

    with tempfile.TemporaryDirectory() as tmp:
        exp = export_csv(manifest, Path(tmp) / "csv", opts)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        settings = local_neo4j.LocalNeo4jSettings(home=Path(tmp) / "neo4j", bolt_port=port, heap="1g", pagecache="512m")
        try:
            import_s = import_into_local_server(exp.admin_args(), settings)
            from queries.settings import Neo4jSettings

            with Graph(Neo4jSettings(uri=settings.bolt_uri, password=settings.password)) as g:
                got = g.read(COUNT_ATLAS, {"atlas": manifest.name}, timeout=600)[0]
        finally:
            local_neo4j.stop(settings)
        if (got["features"], got["edges"]) != (exp.n_features, exp.n_edges):
            raise SystemExit(
                f"bulk import check failed: {got} in Neo4j, {exp.n_features} features / {exp.n_edges} edges exported"
            )
        return {
            "export_s": round(exp.seconds, 2),
            "export_matching_s": round(exp.match_s, 2),
            "import_s": round(import_s, 2),
            "nodes": exp.n_features,
            "relationships": exp.n_edges,
            "import_relationships_per_s": round(exp.n_edges / import_s),
            "import_nodes_per_s": round(exp.n_features / import_s),
            "end_to_end_s": round(exp.seconds + import_s, 1),
        }


def _online(
    m: AtlasManifest, opts: IngestOptions, keep: bool, private: bool
) -> tuple[object, float, dict[str, object]]:
    """Online ingest end to end into NEO4J_URI, or into a private temporary server (heap and page cache
    from ATLAS_NEO4J_HEAP / ATLAS_NEO4J_PAGECACHE) so other users' queries do not share its threads."""
    from queries.settings import Neo4jSettings

    info: dict[str, object] = {}
    if not private:
        settings = Neo4jSettings()
        info["server"] = f"{settings.uri} (shared)"
        with Graph(settings) as g:
            drop_atlas(g, m.name)
            t0 = time.perf_counter()
            rep = ingest_atlas(m, g, options=opts)
            end_to_end = time.perf_counter() - t0
            if not keep:
                drop_atlas(g, m.name)
        return rep, end_to_end, info
    from atlas_cli import local_neo4j

    with tempfile.TemporaryDirectory() as tmp:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        ls = local_neo4j.LocalNeo4jSettings(home=Path(tmp) / "neo4j", bolt_port=port)
        info["server"] = f"private {ls.bolt_uri}, heap {ls.heap}, page cache {ls.pagecache}"
        local_neo4j.start(ls)
        try:
            with Graph(Neo4jSettings(uri=ls.bolt_uri, password=ls.password)) as g:
                t0 = time.perf_counter()
                rep = ingest_atlas(m, g, options=opts)
                end_to_end = time.perf_counter() - t0
        finally:
            local_neo4j.stop(ls)
    return rep, end_to_end, info


RUN_KEYS = (
    "matching_over_gemm_floor",
    "both_ways_over_two_searches",
    "matching_over_gemm_floor_avx2_emulated",
    "both_ways_over_two_searches_avx2_emulated",
    "faiss_vs_torch_speedup",
    "faiss_flat_vs_torch_speedup",
    "both_ways_vs_torch_speedup",
    "relationships_per_s",
    "nodes_per_s",
    "end_to_end_s",
    "matching_s",
    "write_s",
    "nodes",
    "relationships",
    "peak_rss_mb",
    "projected_full_gemma_s",
)


def _save_summary(results_dir: Path, run_id: str, result: dict[str, object]) -> Path:
    """Merge this run into ``ingest.json``: every run under ``runs``; the top-level figures are the
    headline run's — the full Gemma-shaped atlas once it has been run, else the SmolLM2-shaped one."""
    path = results_dir / "ingest.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        summary = {}
    runs = summary.get("runs", {}) if isinstance(summary.get("runs"), dict) else {}
    runs[run_id] = result
    headline = next(
        (r for r in (f"gemma-{SHAPES['gemma'][0]}", f"smollm2-{SHAPES['smollm2'][0]}") if r in runs), run_id
    )
    top = runs[headline]
    summary = {
        "headline_run": headline,
        **{key: top[key] for key in (*RUN_KEYS, "machine") if key in top},
        # the CPU the headline matching figures were measured on (flags decide the fast path: docs/ingest.md)
        "cpu_flags": (top.get("matching_machine") or top.get("machine") or {}).get("cpu_flags"),  # type: ignore[union-attr]
        "runs": runs,
    }
    save_json(path, summary, indent=2)
    md = [
        "# Ingest benchmark",
        "",
        f"`python -m bench.bench_ingest --shape <shape> [--layers N]`; headline run: **{headline}**. "
        "Targets (2 cores): FAISS ≥ 1.3× torch matmul+topk, online writes ≥ 50,000 relationships/s, full Gemma-shaped atlas "
        "end to end ≤ 20 min.",
        "",
        "| run | " + " | ".join(RUN_KEYS) + " | bulk import nodes/s | bulk import rel/s | load at start |",
        "|---" * (len(RUN_KEYS) + 4) + "|",
    ]
    for rid, r in runs.items():
        bulk = r.get("bulk") or {}
        load = (r.get("machine") or {}).get("loadavg_1_5_15")
        md.append(
            f"| {rid} | "
            + " | ".join(str(r.get(k, "")) for k in RUN_KEYS)
            + f" | {bulk.get('import_nodes_per_s', '')} | {bulk.get('import_relationships_per_s', '')} | {load} |"
        )
    md += ["", "Per-run details (matching per backend, write server, bulk path, machine): `ingest-<run>.md`."]
    path.with_suffix(".md").write_text("\n".join(md) + "\n")
    return path


MATCH_KEYS = (
    "faiss_vs_torch_speedup",
    "faiss_flat_vs_torch_speedup",
    "both_ways_vs_torch_speedup",
    "matching_over_gemm_floor",
    "both_ways_over_two_searches",
)


def _emulated_matching(args: argparse.Namespace) -> dict[str, object]:
    """The one-pair matching bench in a child process whose math libraries are capped to AVX2."""
    from bench.machine import AVX2_EMULATION

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "match.json"
        cmd = [
            sys.executable,
            "-m",
            "bench.bench_ingest",
            "--shape",
            args.shape,
            "-k",
            str(args.k),
            "--matching-json",
            str(out),
        ]
        cmd += ["--repeats", str(args.repeats), *(["--skip", *args.skip] if args.skip else [])]
        cmd += ["--query-rows", str(args.query_rows)] if args.query_rows else []
        subprocess.run(cmd, check=True, env={**os.environ, **AVX2_EMULATION}, cwd=REPO)
        return json.loads(out.read_text())  # type: ignore[no-any-return]


def _update_matching(results_dir: Path, run_id: str, fresh: dict[str, object]) -> None:
    """--matching-only: replace the matching figures of the saved run (if any), keep its write/e2e figures."""
    path = results_dir / f"ingest-{run_id}.json"
    if not path.exists():
        print(json.dumps({k: v for k, v in fresh.items() if k != "machine"}, indent=2))
        print(f"no saved run {path.name}: nothing updated")
        return
    saved = json.loads(path.read_text())
    keys = (
        "matching_one_pair",
        "matching_design_pair",
        "matching_one_pair_avx2_emulated",
        *MATCH_KEYS,
        *(f"{k}_avx2_emulated" for k in ("matching_over_gemm_floor", "both_ways_over_two_searches")),
    )
    saved.update({k: fresh[k] for k in keys if k in fresh})
    saved["matching_machine"] = fresh["machine"]
    save_json(path, saved, indent=2)
    md = path.with_suffix(".md").read_text().split("\n\nMatching one pair")[0]
    match = saved["matching_one_pair"]
    md += (
        f"\n\nMatching one pair (median of {match['repeats']}, s; re-measured with --matching-only on "  # type: ignore[index]
        f"{fresh['machine']}): {json.dumps(match)}\n\nthe design's reference pair, top-8 16k × 16k × 576: "
        f"{json.dumps(saved['matching_design_pair'])}\n"
    )
    path.with_suffix(".md").write_text(md)
    _save_summary(results_dir, run_id, saved)
    print(f"updated the matching figures of {path} and the summary")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="smollm2")
    ap.add_argument("--layers", type=int, default=None, help="Use only the first N layers (reduced atlas).")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument(
        "--bulk", action="store_true", help="Also time CSV export + neo4j-admin import into a private server."
    )
    ap.add_argument(
        "--private-server",
        action="store_true",
        help="Write online into a private temporary Neo4j (ATLAS_NEO4J_HEAP/ATLAS_NEO4J_PAGECACHE) instead of NEO4J_URI.",
    )
    ap.add_argument(
        "--matching-only",
        action="store_true",
        help="Only time the matchers; update the matching figures of the saved run of this shape.",
    )
    ap.add_argument(
        "--emulate",
        choices=["avx2"],
        help="Also time the one-pair matching with every math library capped to AVX2 (a child process with "
        "bench/machine.py AVX2_EMULATION; an emulation of the AVX2-only CPU class: same cores and caches).",
    )
    ap.add_argument("--repeats", type=int, default=3, help="Interleaved runs per matcher (median).")
    ap.add_argument(
        "--query-rows",
        type=int,
        help="Time the matchers on the first N query rows of the pair only (a loaded machine).",
    )
    ap.add_argument("--skip", nargs="*", default=[], choices=sorted(MATCHERS), help="Matchers not to time.")
    ap.add_argument("--matching-json", type=Path, help=argparse.SUPPRESS)  # --emulate's child: one pair → JSON
    ap.add_argument(
        "--sequential-writes",
        action="store_true",
        help="Write each layer after matching it, not overlapped with the next layer's matching (the A/B baseline).",
    )
    ap.add_argument("--keep", action="store_true", help="Keep the ingested atlas in Neo4j (NEO4J_URI only).")
    ap.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("neo4j").setLevel(logging.ERROR)
    n_layers, d_sae, d_model, _ = SHAPES[args.shape]
    m = manifest_for(args.shape, args.layers)
    run_id = f"{args.shape}-{m.n_layers}"
    result: dict[str, object] = {
        "shape": args.shape,
        "layers": m.n_layers,
        "d_sae": d_sae,
        "d_model": d_model,
        "k": args.k,
        "n_features": m.n_layers * 3 * d_sae,
        "machine": machine(),
    }
    print(f"machine: {result['machine']}")
    print(f"matching one SAE pair {d_sae}×{d_sae}×{d_model}, top-{args.k} ...", flush=True)
    match = bench_matching(d_sae, d_model, args.k, args.repeats, tuple(args.skip), args.query_rows)
    if args.matching_json:
        args.matching_json.write_text(json.dumps({**match, "machine": result["machine"]}, indent=2) + "\n")
        return
    result["matching_one_pair"] = match
    for key in MATCH_KEYS:
        if key in match:
            result[key] = match[key]
    print(json.dumps(match), flush=True)
    if args.emulate:
        print("the same pair, libraries capped to AVX2 (emulation) ...", flush=True)
        emu = _emulated_matching(args)
        result["matching_one_pair_avx2_emulated"] = emu
        for key in ("matching_over_gemm_floor", "both_ways_over_two_searches"):
            if key in emu:
                result[f"{key}_avx2_emulated"] = emu[key]
        print(json.dumps(emu), flush=True)
    # the design's reference pair (top-8, 16k × 16k × 576: FAISS 1.69 s, torch 2.33 s on its machine)
    result["matching_design_pair"] = bench_matching(16384, 576, 8, args.repeats, tuple(args.skip), args.query_rows)
    print(json.dumps({k: v for k, v in result["matching_design_pair"].items() if k != "matchers"}), flush=True)
    if args.matching_only:
        _update_matching(args.results_dir, run_id, result)
        return
    opts = IngestOptions(k=args.k, progress=True, overlap_writes=not args.sequential_writes)
    rep, end_to_end, info = _online(m, opts, args.keep, args.private_server)
    result["online_server"] = info["server"]
    result.update(
        {
            "end_to_end_s": round(end_to_end, 1),
            "matching_s": round(rep.match_s, 1),
            "write_s": round(rep.write_s, 1),
            "overlap_writes": opts.overlap_writes,
            "write_wait_s": round(rep.write_wait_s, 1),
            "nodes": rep.nodes_written,
            "relationships": rep.edges_written,
            "nodes_per_s": round(rep.nodes_written / max(rep.node_write_s, 1e-9)),
            "relationships_per_s": round(rep.edges_written / max(rep.edge_write_s, 1e-9)),
        }
    )
    result["loadavg_after_online"] = [round(x, 2) for x in os.getloadavg()]
    if args.bulk:
        result["bulk"] = bench_bulk(m, opts)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.layers and args.shape == "gemma":
        # Matching scales with SAE pairs (3 per layer, 2 at the first: 3n - 1), the rest with layers.
        result["projected_full_gemma_s"] = round(
            rep.match_s / (3 * m.n_layers - 1) * (3 * n_layers - 1) + (end_to_end - rep.match_s) / m.n_layers * n_layers
        )
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"ingest-{run_id}.json"
    save_json(out, result, indent=2)
    md = [
        f"# Ingest benchmark ({args.shape}, {m.n_layers} layers × 3 × {d_sae}, d_model {d_model}, k={args.k})",
        "",
        f"Machine: {result['machine']}",
        "",
        f"Online writes into: {result['online_server']}; load after the online ingest: "
        f"{result['loadavg_after_online']}",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    md += [f"| {key} | {result[key]} |" for key in RUN_KEYS if key in result]
    md += [
        "",
        f"Matching one pair (median of {match['repeats']}, s): {json.dumps(match)}",
        "",
        f"the design's reference pair, top-8 16k × 16k × 576: {json.dumps(result['matching_design_pair'])}",
    ]
    if "bulk" in result:
        md += [
            "",
            f"Bulk path (CSV export incl. matching, then neo4j-admin import into a private server): {json.dumps(result['bulk'])}",
        ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    summary = _save_summary(args.results_dir, run_id, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    print(f"saved {out} and {summary}")


if __name__ == "__main__":
    main()
