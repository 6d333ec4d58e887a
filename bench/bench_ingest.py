"""Ingest benchmark: synthetic SmolLM2- or Gemma-2-2B-shaped atlases, matching backends and write paths.

    python bench/bench_ingest.py --shape smollm2            # 30 layers × 3 × 2,048, d 576
    python bench/bench_ingest.py --shape gemma --layers 3   # reduced Gemma-2-2B shape (16,384, d 2304)
    python bench/bench_ingest.py --shape gemma              # the full 26-layer atlas (≈1.28M features)

Measures, in one run on the same data: matching time of one (res, mlp) SAE pair with FAISS, torch
matmul+topk and numpy (ratios); the online ingest end to end into the Neo4j at NEO4J_URI (nodes/s and
relationships/s of the write phases, matching time, wall time); optionally (``--bulk``) the CSV export
and ``neo4j-admin database import`` into a private temporary server; peak RSS; the machine.
Saves ``bench/results/ingest[-<shape>].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest.matching import topk_search  # noqa: E402
from ingest.pipeline import IngestOptions, drop_atlas, ingest_atlas  # noqa: E402
from queries.db import Graph  # noqa: E402
from queries.ids import Module  # noqa: E402
from saes.manifest import AtlasManifest, SAEEntry, SyntheticSpec  # noqa: E402
from saes.sources import synthetic_sae  # noqa: E402

SHAPES = {"smollm2": (30, 2048, 576, "HuggingFaceTB/SmolLM2-135M-Instruct"), "gemma": (26, 16384, 2304, "google/gemma-2-2b")}


def machine() -> dict[str, object]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return {
        "cpu": model, "cores": os.cpu_count(), "python": platform.python_version(), "host": socket.gethostname(),
        "loadavg_1_5_15": [round(x, 2) for x in load],
        "note": "shared machine (other engineers' jobs running), timings are noisy" if load[0] > 0.5 * (os.cpu_count() or 1) else "quiet at start",
    }


def manifest_for(shape: str, layers: int | None) -> AtlasManifest:
    n_layers, d_sae, d_model, model = SHAPES[shape]
    n = layers or n_layers
    entries = [SAEEntry(layer, mod, synthetic=SyntheticSpec(d_sae=d_sae, seed=1000 * layer + i, d_in=d_model))
               for layer in range(n) for i, mod in enumerate(Module)]
    return AtlasManifest(name=f"bench-{shape}-{n}", model=model, d_model=d_model, saes=entries)


def bench_matching(d_sae: int, d_model: int, k: int) -> dict[str, float]:
    q = synthetic_sae(d_model, d_sae, 1).W_dec
    b = synthetic_sae(d_model, d_sae, 2).W_dec
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    out: dict[str, float] = {}
    ref = None
    for backend in ("faiss", "torch", "numpy"):
        topk_search(q[:256], b, k, backend=backend)  # warm-up (thread pools, imports)
        t = time.perf_counter()
        sims, idx = topk_search(q, b, k, backend=backend)
        out[f"{backend}_s"] = round(time.perf_counter() - t, 3)
        if ref is None:
            ref = idx
        out[f"{backend}_agrees_with_faiss"] = float((idx[:, 0] == ref[:, 0]).mean())
    out["faiss_vs_torch_speedup"] = round(out["torch_s"] / out["faiss_s"], 3)
    out["faiss_vs_numpy_speedup"] = round(out["numpy_s"] / out["faiss_s"], 3)
    return out


def bench_bulk(manifest: AtlasManifest, opts: IngestOptions) -> dict[str, float]:
    from atlas_cli import local_neo4j
    from ingest.bulk import export_csv, import_into_local

    with tempfile.TemporaryDirectory() as tmp:
        exp = export_csv(manifest, Path(tmp) / "csv", opts)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        settings = local_neo4j.LocalNeo4jSettings(home=Path(tmp) / "neo4j", bolt_port=port, heap="1g", pagecache="512m")
        import_s = import_into_local(exp, settings)
        return {"export_s": round(exp.seconds, 2), "import_s": round(import_s, 2), "nodes": exp.n_features, "relationships": exp.n_edges,
                "import_relationships_per_s": round(exp.n_edges / import_s), "import_nodes_per_s": round(exp.n_features / import_s)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="smollm2")
    ap.add_argument("--layers", type=int, default=None, help="Use only the first N layers (reduced atlas).")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--bulk", action="store_true", help="Also time CSV export + neo4j-admin import into a private server.")
    ap.add_argument("--keep", action="store_true", help="Keep the ingested atlas in Neo4j.")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("neo4j").setLevel(logging.ERROR)
    n_layers, d_sae, d_model, _ = SHAPES[args.shape]
    m = manifest_for(args.shape, args.layers)
    result: dict[str, object] = {"shape": args.shape, "layers": m.n_layers, "d_sae": d_sae, "d_model": d_model, "k": args.k,
                                 "n_features": m.n_layers * 3 * d_sae, "machine": machine()}
    print(f"machine: {result['machine']}")
    print(f"matching one SAE pair {d_sae}×{d_sae}×{d_model}, top-{args.k} ...", flush=True)
    match = bench_matching(d_sae, d_model, args.k)
    result["matching_one_pair"] = match
    result["faiss_vs_torch_speedup"] = match["faiss_vs_torch_speedup"]
    print(json.dumps(match), flush=True)
    opts = IngestOptions(k=args.k, progress=True)
    t0 = time.perf_counter()
    with Graph() as g:
        drop_atlas(g, m.name)
        rep = ingest_atlas(m, g, options=opts)
        end_to_end = time.perf_counter() - t0
        if not args.keep:
            drop_atlas(g, m.name)
    result.update({
        "end_to_end_s": round(end_to_end, 1), "matching_s": round(rep.match_s, 1), "write_s": round(rep.write_s, 1),
        "nodes": rep.nodes_written, "relationships": rep.edges_written,
        "nodes_per_s": round(rep.nodes_written / max(rep.node_write_s, 1e-9)),
        "relationships_per_s": round(rep.edges_written / max(rep.edge_write_s, 1e-9)),
    })
    if args.bulk:
        result["bulk"] = bench_bulk(m, opts)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if args.layers and args.shape == "gemma":
        per_layer = end_to_end / m.n_layers
        result["projected_full_gemma_s"] = round(per_layer * n_layers)
    out = args.out or REPO / "bench" / "results" / ("ingest.json" if args.shape == "smollm2" and not args.layers else f"ingest-{args.shape}-{m.n_layers}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    md = [f"# Ingest benchmark ({args.shape}, {m.n_layers} layers × 3 × {d_sae}, d_model {d_model}, k={args.k})", "",
          f"Machine: {result['machine']}", "", "| figure | value |", "|---|---|"]
    for key in ("faiss_vs_torch_speedup", "end_to_end_s", "matching_s", "write_s", "nodes", "relationships", "nodes_per_s",
                "relationships_per_s", "peak_rss_mb", "projected_full_gemma_s"):
        if key in result:
            md.append(f"| {key} | {result[key]} |")
    md += ["", f"Matching one pair (s): {json.dumps(match)}"]
    if "bulk" in result:
        md += ["", f"Bulk path: {json.dumps(result['bulk'])}"]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
