"""How the bf16 pre-filter behaves on a real atlas: rows it certifies, candidates it needs, agreement with
FAISS's flat exact search, and time against it, for every SAE pair that ingest matches.

    python -m bench.bench_prefilter ~/.cache/feature-atlas/atlases/smollm2-demo/atlas.toml

Random synthetic decoders (bench_ingest.py) are the hard case for the proof — no clear winners; trained
SAEs have structure (near-duplicates, clusters) that this script measures instead. Saves
``bench/results/prefilter-<atlas>.json|md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.bench_ingest import machine
from bench.harness import save_json
from ingest import prefilter as pf
from ingest.decoders import load_unit_decoder, validate_atlas
from ingest.matching import DEFAULT_TILE_BYTES, _tile_rows, topk_search
from saes.manifest import load_manifest

REPO = Path(__file__).resolve().parent.parent


def pair_stats(queries: np.ndarray, base: np.ndarray, k: int) -> dict[str, float]:
    import torch

    q16, b16 = pf.to_bf16(queries), pf.to_bf16(base)
    keep = min(pf.DEFAULT_CANDIDATES + 1, len(base))
    vals = torch.topk(q16.rows @ b16.rows.T, keep, dim=1).values.double().numpy()
    need = (
        pf.candidates_needed(vals, k, pf.error_bound(q16, b16, queries.shape[1]))
        if keep < len(base)
        else np.full(len(queries), keep)
    )
    t = time.perf_counter()
    s1, i1 = pf.prefiltered_topk(queries, base, k, tile_rows=_tile_rows(len(base), DEFAULT_TILE_BYTES))
    t_pf = time.perf_counter() - t
    t = time.perf_counter()
    s2, i2 = topk_search(queries, base, k, prefilter="off", use_gpu=False)
    t_flat = time.perf_counter() - t
    ok = need[need >= 0]
    return {
        "rows": len(queries),
        "uncertified": int((need < 0).sum()),
        "median_candidates": float(np.median(ok)) if len(ok) else -1.0,
        "p99_candidates": round(float(np.percentile(ok, 99)), 1) if len(ok) else -1.0,
        "same_topk": float((i1 == i2).mean()),
        "max_sim_diff": float(np.abs(s1 - s2).max()),
        "prefilter_s": round(t_pf, 3),
        "faiss_flat_s": round(t_flat, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    m = load_manifest(args.manifest)
    d_model, _ = validate_atlas(m)
    dec = {(e.layer, e.module.value): load_unit_decoder(e, m.base_dir, d_model).unit for e in m.saes}
    rows = []
    for layer in sorted({layer for layer, _ in dec}):
        if (layer, "res") not in dec:
            continue
        for label, key in (("res(L-1)", (layer - 1, "res")), ("att", (layer, "att")), ("mlp", (layer, "mlp"))):
            if key in dec:
                rows.append({"layer": layer, "against": label, **pair_stats(dec[(layer, "res")], dec[key], args.k)})
                print(json.dumps(rows[-1]), flush=True)
    out = {
        "atlas": m.name,
        "k": args.k,
        "d_model": d_model,
        "n_candidates": pf.DEFAULT_CANDIDATES,
        "cpu_has_fast_bf16": pf.cpu_has_fast_bf16(),
        "machine": machine(),
        "pairs": rows,
        "uncertified_rows": sum(r["uncertified"] for r in rows),
        "rows": sum(r["rows"] for r in rows),
        "all_topk_equal": all(r["same_topk"] == 1.0 for r in rows),
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"prefilter-{m.name}.json"
    save_json(path, out, indent=1)
    cols = [
        "layer",
        "against",
        "rows",
        "uncertified",
        "median_candidates",
        "p99_candidates",
        "same_topk",
        "max_sim_diff",
        "prefilter_s",
        "faiss_flat_s",
    ]
    md = [
        f"# bf16 pre-filter on atlas `{m.name}` (k={args.k}, d_model {d_model}, {pf.DEFAULT_CANDIDATES} candidates kept)",
        "",
        f"`python -m bench.bench_prefilter <atlas.toml>` · machine: {out['machine']}",
        "",
        f"Rows without a proof (searched exactly): **{out['uncertified_rows']} of {out['rows']}**; every top-{args.k} list equal to "
        f"FAISS flat: **{out['all_topk_equal']}**. Times are single runs (small pairs: fixed costs dominate; `auto` only "
        "turns the pre-filter on from 1e10 multiply-adds).",
        "",
        "| " + " | ".join(cols) + " |",
        "|---" * len(cols) + "|",
    ]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    path.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
