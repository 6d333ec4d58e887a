"""Where one Gemma-shaped layer's matching time goes (no Neo4j): decoders, searches, both ways, null controls.

    python -m bench.bench_layer_parts                                  # layer 1 of the synthetic Gemma shape
    env <AVX2_EMULATION> python -m bench.bench_layer_parts --results-dir bench/results/avx2-emulated

Times, on one layer (16,384 × 2,304 decoders for res/att/mlp(L) and res(L-1)): generating the synthetic decoders
(a benchmark cost only: a real atlas reads them from files), the two one-way searches (att, mlp), the res–res
pair both ways, the null controls of the three pairs (and, inside them, the Haar rotations' QR), the categories,
then ``match_layer`` as ingest runs it, whose time the parts should add up to. Imports are warmed first.
Saves layer-parts.json|md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_ingest import manifest_for
from bench.harness import save_json
from bench.machine import machine
from ingest import controls as C
from ingest import layer_matching as P
from ingest.decoders import DecoderCache, layer_decoders
from ingest.matching import topk_both_ways, topk_search
from ingest.scores import Thresholds, categorize
from saes.controls import DEFAULT_NULL_ROWS, random_rotation

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    import torch  # noqa: F401  (warm: the first both-ways call would pay the import)

    m = manifest_for("gemma", 3)
    parts: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        out = fn()
        parts[name] = round(time.perf_counter() - t, 3)
        print(f"{name}: {parts[name]} s", flush=True)
        return out

    dec, prev = timed("decoders_4_saes_synthetic", lambda: layer_decoders(m, 1, 2304, None, DecoderCache(0), None))
    res = dec["res"]
    s: dict[str, Any] = {}
    for mod in ("att", "mlp"):
        base = dec[mod].unit
        sims, _ = timed(f"search_{mod}", lambda base=base: topk_search(res.unit, base, 5))  # type: ignore[misc]
        s[mod] = sims[:, 0].copy()
    bwd, _ = timed("both_ways_res", lambda: topk_both_ways(res.unit, prev.unit, 5))
    s["res"] = bwd[0][:, 0].copy()
    rng = np.random.default_rng(0)
    timed("one_rotation_qr", lambda: random_rotation(2304, rng))
    preds = {"res": prev.unit, "att": dec["att"].unit, "mlp": dec["mlp"].unit}
    th = Thresholds()
    _controls, cuts = timed(
        "null_controls_3_pairs", lambda: C.layer_controls(1, res.unit, preds, s, th, DEFAULT_NULL_ROWS)
    )
    timed("categories", lambda: categorize(s["res"], s["att"], s["mlp"], res.d_sae, th, cuts))
    timed("match_layer_as_ingest", lambda: P.match_layer(1, dec, prev, 5, th, "faiss", "auto", DEFAULT_NULL_ROWS))
    summed = sum(
        v
        for k, v in parts.items()
        if k not in ("decoders_4_saes_synthetic", "one_rotation_qr", "match_layer_as_ingest")
    )
    out: dict[str, Any] = {
        "layer": 1,
        "shape": "gemma",
        "machine": machine(),
        "parts_s": parts,
        "parts_sum_s": round(summed, 3),
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    save_json((args.results_dir / "layer-parts.json"), out, indent=1)
    mach = out["machine"]
    lines = [
        "# One Gemma-shaped layer's matching, part by part (16,384 × 2,304 decoders, top-5, no Neo4j)",
        "",
        f"Machine: {mach['cpu']}, {mach['cores']} cores, load {mach['loadavg_1_5_15']}"
        + (f"; {mach['emulation']}" if "emulation" in mach else "")
        + ".",
        "",
        "| part | s |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in parts.items()],
        "",
        f"Searches + both ways + nulls + categories: {out['parts_sum_s']} s (match_layer: {parts['match_layer_as_ingest']} s).",
    ]
    (args.results_dir / "layer-parts.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
