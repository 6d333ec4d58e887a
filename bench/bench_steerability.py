"""How long the steerability screen takes on a real atlas, and what it finds.

    python -m bench.bench_steerability                       # the default atlas (smollm2-demo), stores it too
    python -m bench.bench_steerability --atlas NAME --no-store

Runs ``steering.steerability.measure_atlas`` on every SAE of the atlas (SmolLM2 in bf16 where the CPU has fast
bf16, else fp32), at the standard α, and saves per SAE the seconds, features per second and the KL distribution
(median, p90, max; the share above 0.01 nats), with the machine and its load: bench/results/steerability.json and
.md. ``--store`` (default) writes the figures to the graph as ``atlas steerability`` does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.harness import save_json
from bench.machine import machine

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atlas", default="smollm2-demo")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--store", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()

    import torch

    from ingest.cpu import cpu_has_fast_bf16
    from queries.atlases import atlas_info
    from queries.db import Graph
    from steering.steerability import STANDARD_ALPHA, screen_atlas, store_screen

    with Graph() as g:
        info = atlas_info(g, args.atlas)
        if info is None:
            raise SystemExit(f"atlas {args.atlas!r} is not in Neo4j (run `atlas demo` first)")
        dtype = torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
        run, lm = screen_atlas(info, args.atlas, dtype=dtype, batch=args.batch, progress=print)
        total = sum(p.seconds for p in run.points)  # the screen itself, model load left out
        stored = store_screen(g, args.atlas, run, lm.tokenizer) if args.store else 0
    per_sae = []
    for p in run.points:
        kl = p.kl
        per_sae.append(
            {
                "sae": str(p.point),
                "features": len(kl),
                "seconds": p.seconds,
                "features_per_s": round(len(kl) / max(p.seconds, 1e-9), 1),
                "median_norm": round(p.median_norm, 3),
                "kl_median": round(float(np.median(kl)), 5),
                "kl_p90": round(float(np.quantile(kl, 0.9)), 5),
                "kl_max": round(float(kl.max()), 5),
                "share_kl_above_0_01": round(float((kl > 0.01).mean()), 4),
            }
        )
    all_kl = np.concatenate([p.kl for p in run.points])
    result = {
        "atlas": args.atlas,
        "model": lm.name,
        "dtype": str(lm.dtype),
        "alpha": STANDARD_ALPHA,
        "prompts": len(run.prompts),
        "batch": args.batch,
        "features": len(all_kl),
        "seconds": round(total, 1),
        "features_per_s": round(len(all_kl) / total, 1),
        "kl_median": round(float(np.median(all_kl)), 5),
        "share_kl_above_0_01": round(float((all_kl > 0.01).mean()), 4),
        "stored": stored,
        "per_sae": per_sae,
        "machine": machine(),
    }
    saved = save_json(RESULTS / "steerability.json", result, indent=1)
    md = [
        "# Steerability screen",
        "",
        f"`python -m bench.bench_steerability --atlas {args.atlas}`: every feature of `{args.atlas}` steered alone at "
        f"α = {STANDARD_ALPHA} (units ALPHA) at the last position of {len(run.prompts)} fixed prompts; next-token KL "
        f"to the unsteered model. {saved['run']['noise']}",
        "",
        f"- {result['features']:,} features in {result['seconds']} s ({result['features_per_s']} features/s, "
        f"{result['dtype']}, batch {args.batch})",
        f"- KL median {result['kl_median']} nats; share of features above 0.01 nats: "
        f"{result['share_kl_above_0_01']:.1%} (of {result['features']:,})",
        "",
        "| SAE | features | s | features/s | median ‖h‖ | KL median | KL p90 | KL max | KL > 0.01 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['sae']} | {r['features']} | {r['seconds']} | {r['features_per_s']} | {r['median_norm']} | "
        f"{r['kl_median']} | {r['kl_p90']} | {r['kl_max']} | {r['share_kl_above_0_01']:.1%} |"
        for r in per_sae
    ]
    (RESULTS / "steerability.md").write_text("\n".join(md) + "\n")
    print(f"{result['features']} features in {result['seconds']} s; quiet={saved['quiet']}")


if __name__ == "__main__":
    main()
