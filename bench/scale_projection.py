"""docs/scale.md's projection table, computed from our measurements in bench/results/ and published suite sizes.

    python -m bench.scale_projection          # prints the Markdown table and saves bench/results/scale.json|md

Nothing here is measured anew: every rate is read from a results file (named in the output), every suite size is a
published figure (cited in docs/scale.md). Matching time scales with the GEMM work, pairs × 2·n_src·n_tgt·d
(exact top-k over all rows: no approximation, so no other term grows faster); writes scale with edges.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.harness import inputs_quiet, save_json

RESULTS = Path(__file__).resolve().parent / "results"

# (suite, model, layers, d_model, width, SAE sites per layer) — one width per atlas (a graph matches SAEs of one width).
SUITES = [
    ("Gemma Scope 2B, 16k (2^14)", "Gemma 2 2B", 26, 2304, 16_384, 3),
    ("Gemma Scope 2B, 65k (2^16)", "Gemma 2 2B", 26, 2304, 65_536, 3),
    ("Gemma Scope 9B, 16k (2^14)", "Gemma 2 9B", 42, 3584, 16_384, 3),
    ("Gemma Scope 9B, 131k (2^17)", "Gemma 2 9B", 42, 3584, 131_072, 3),
    ("Llama Scope 8x (32K), R/A/M", "Llama-3.1-8B", 32, 4096, 32_768, 3),
    ("Llama Scope 32x (128K), R/A/M", "Llama-3.1-8B", 32, 4096, 131_072, 3),
]


def _load(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / name).read_text())


def rates() -> dict[str, Any]:
    ing = _load("ingest-gemma-26.json")
    gpu = _load("gpu.json")["matching"]
    smol = _load("ingest.json")["runs"]["smollm2-30"]
    n, d, layers = ing["d_sae"], ing["d_model"], ing["layers"]
    pairs = (layers - 1) + 2 * layers
    flops = pairs * 2 * n * n * d
    out = {
        "ref_flops": flops,
        "cpu_flops_per_s": flops / ing["matching_s"],  # 2-core CPU, FAISS + bf16 pre-filter, whole ingest's matching
        "gpu_flops_per_s": (2 * n * n * d) / gpu["pair_s_median"],  # H200, torch fp32 GEMM + top-k, median pair
        "online_rel_per_s": ing["relationships_per_s"],
        "edges_per_feature": ing["relationships"] / ing["n_features"],
        "bulk_rel_per_s": smol["bulk"]["import_relationships_per_s"],
        "sources": {
            "cpu": "ingest-gemma-26.json matching_s",
            "gpu": "gpu.json matching.pair_s_median",
            "online": "ingest-gemma-26.json relationships_per_s",
            "bulk": "ingest.json runs.smollm2-30.bulk.import_relationships_per_s",
        },
    }
    try:
        store = _load("deploy.json")["readers"]["store"]
        out["store_bytes_per_edge"] = store["store_bytes_per_edge_incl_nodes"]
        out["dump_bytes_per_edge"] = store["dump_bytes"] / store["edges"]
        out["load_edges_per_s"] = store["edges"] / store["load_s"]
        out["sources"]["store"] = "deploy.json readers.store"
    except (OSError, KeyError):
        pass
    return out


def table() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    r = rates()
    rows = []
    for suite, model, layers, d, width, sites in SUITES:
        features = layers * sites * width
        pairs = (layers - 1) + 2 * layers
        flops = pairs * 2 * width * width * d
        edges = features * r["edges_per_feature"]
        row = {
            "suite": suite,
            "model": model,
            "layers": layers,
            "d_model": d,
            "width": width,
            "saes": layers * sites,
            "features": features,
            "edges_est": round(edges),
            "matching_tflop": round(flops / 1e12, 1),
            "h200_gpu_min": round(flops / r["gpu_flops_per_s"] / 60, 2),
            "cpu2_hours": round(flops / r["cpu_flops_per_s"] / 3600, 1),
            "online_write_min": round(edges / r["online_rel_per_s"] / 60, 1),
            "bulk_import_min": round(edges / r["bulk_rel_per_s"] / 60, 1),
        }
        if "store_bytes_per_edge" in r:
            row["store_gb"] = round(edges * r["store_bytes_per_edge"] / 1e9, 1)
            row["dump_gb"] = round(edges * r["dump_bytes_per_edge"] / 1e9, 1)
            row["load_min"] = round(edges / r["load_edges_per_s"] / 60, 1)
        rows.append(row)
    return rows, r


def main() -> None:
    rows, r = table()
    cols = [
        "suite",
        "saes",
        "features",
        "edges_est",
        "matching_tflop",
        "h200_gpu_min",
        "cpu2_hours",
        "online_write_min",
        "bulk_import_min",
        "store_gb",
        "dump_gb",
        "load_min",
    ]
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        md.append(
            "| "
            + " | ".join(f"{row[c]:,}" if isinstance(row.get(c), int) else str(row.get(c, "—")) for c in cols)
            + " |"
        )
    # a projection: as quiet as the measurements it reads (bench.harness.inputs_quiet)
    inputs = ("ingest-gemma-26.json", "gpu.json", "ingest.json", "deploy.json")
    quiet, why = inputs_quiet({f: _load(f) if (RESULTS / f).exists() else None for f in inputs})
    save_json((RESULTS / "scale.json"), {"rates": r, "rows": rows}, indent=1, parts_quiet=quiet, not_quiet_reason=why)
    (RESULTS / "scale.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(json.dumps({k: v for k, v in r.items() if k != "sources"}, indent=1))


if __name__ == "__main__":
    main()
