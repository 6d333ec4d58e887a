"""Steering benchmark: tokens/s of steered vs unsteered generation for SmolLM2-135M-Instruct.

Measures, in one process on one machine (ratios use a baseline measured in the same run):
- model load time: cold (dequantise the GGUF, write the cache) and warm (from the safetensors cache);
- tokens/s at batch 1 and 8, unsteered and with 1, 10 and 100 additive features spread over many layers
  (res/att/mlp), plus 100 rescaled features (encoded on the fly); fixed token counts (no early EOS);
- peak resident memory.
Saves bench/results/steering.json and .md.

    python -m bench.bench_steering [--tokens 32] [--repeats 3] [--threads N] [--skip-cold]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import save_json

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict[str, object]:
    import psutil
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def build_atlas(folder: Path, d_model: int, layers: list[int], d_sae: int) -> Path:
    from queries.ids import Module
    from saes.manifest import AtlasManifest, SAEEntry
    from saes.saelens_format import save_sae_dir
    from saes.sources import SAEWeights

    rng = np.random.default_rng(0)
    entries = []
    for layer in layers:
        for mod in Module:
            rows = rng.standard_normal((d_sae, d_model)).astype(np.float32)
            rows /= np.linalg.norm(rows, axis=1, keepdims=True)
            w = SAEWeights(
                W_dec=rows,
                W_enc=rows.T.copy(),
                b_enc=np.zeros(d_sae, np.float32),
                b_dec=np.zeros(d_model, np.float32),
                threshold=np.full(d_sae, 0.5, np.float32),
                architecture="jumprelu",
            )
            save_sae_dir(folder / f"{layer}-{mod.value}", w)
            entries.append(SAEEntry(layer, mod, path=f"{layer}-{mod.value}"))
    m = AtlasManifest("bench-steering", "HuggingFaceTB/SmolLM2-135M-Instruct", d_model, entries, base_dir=folder)
    m.write(folder / "atlas.toml")
    return folder / "atlas.toml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-cold", action="store_true", help="don't measure the cold GGUF load (it rewrites the cache)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "steering"))
    args = ap.parse_args()

    import psutil
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from queries.ids import FeatureRef, Module
    from saes.manifest import load_manifest
    from steering.generate import GenerationConfig, generate
    from steering.interventions import Mode, SteerFeature, compile_plan
    from steering.model import DEFAULT_MODEL, load_model
    from steering.saes import SAEBank

    results: dict[str, object] = {
        "machine": machine(),
        "model": DEFAULT_MODEL,
        "new_tokens": args.tokens,
        "repeats": args.repeats,
    }
    if not args.skip_cold:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["ATLAS_CACHE_DIR"] = tmp
            t = time.perf_counter()
            load_model(fresh=True)
            results["model_load_cold_s"] = round(time.perf_counter() - t, 2)
            del os.environ["ATLAS_CACHE_DIR"]
            shutil.rmtree(tmp, ignore_errors=True)
    load_model(fresh=True)  # make sure the real cache exists
    t = time.perf_counter()
    lm = load_model(fresh=True)
    results["model_load_s"] = results["model_load_warm_s"] = round(time.perf_counter() - t, 2)
    print(f"load: cold {results.get('model_load_cold_s')} s, warm {results['model_load_s']} s", flush=True)

    layers = list(range(2, 28))  # many layers
    d_sae = 4096
    with tempfile.TemporaryDirectory() as tmp:
        bank = SAEBank(load_manifest(build_atlas(Path(tmp), lm.d_model, layers, d_sae)), lm)
        rng = np.random.default_rng(1)
        points = [(layer, mod) for layer in layers for mod in Module]

        def feats(n: int, mode: Mode) -> list[SteerFeature]:
            out = []
            for i in range(n):
                layer, mod = points[(i * 7) % len(points)]  # spread over layers and modules
                out.append(
                    SteerFeature(
                        FeatureRef("bench-steering", layer, mod, int(rng.integers(d_sae))),
                        2.0 if mode is Mode.ADD else 0.0,
                        mode,
                    )
                )
            return out

        plans = {
            "add_1": compile_plan(feats(1, Mode.ADD), bank),
            "add_10": compile_plan(feats(10, Mode.ADD), bank),
            "add_100": compile_plan(feats(100, Mode.ADD), bank),
            "rescale_100": compile_plan(feats(100, Mode.RESCALE), bank),
        }
        results["hook_points_100_features"] = len(plans["add_100"].ops)
        prompts = [
            "I think that the biggest problem of contemporary theoretical physics is ",
            "I think ",
            "The city council voted",
            "Once upon a time",
            "def fibonacci(n):",
            "The wedding was",
            "In the beginning",
            "My favourite food is",
        ]
        cfg = GenerationConfig(max_new_tokens=args.tokens, temperature=0, stop_at_eos=False)
        table: dict[str, dict[str, float]] = {}
        for batch in (1, 8):
            ps = prompts[:batch]
            generate(lm, ps, GenerationConfig(max_new_tokens=4, temperature=0))  # warm-up
            # interleave conditions per repeat so drifting background load hits all of them alike
            runs: dict[str, list[float]] = {k: [] for k in ["unsteered", *plans]}
            for _ in range(args.repeats):
                for name in runs:
                    g = generate(lm, ps, cfg, None if name == "unsteered" else plans[name])
                    runs[name].append(g.tokens_per_s)
            row = {name: round(float(np.median(v)), 2) for name, v in runs.items()}
            table[f"batch{batch}"] = row
            print(f"batch {batch}: " + ", ".join(f"{k} {v} tok/s" for k, v in row.items()), flush=True)
        results["tokens_per_s"] = table
        results["unsteered_tps_batch1"] = table["batch1"]["unsteered"]
        results["unsteered_tps_batch8"] = table["batch8"]["unsteered"]
        for b in ("batch1", "batch8"):
            for k in plans:
                results[f"steered_over_unsteered_{k}_{b}"] = round(table[b][k] / table[b]["unsteered"], 3)
        results["steered_over_unsteered_tps_100_features"] = round(
            min(
                table["batch1"]["add_100"] / table["batch1"]["unsteered"],
                table["batch8"]["add_100"] / table["batch8"]["unsteered"],
            ),
            3,
        )
    results["peak_rss_gib"] = round(psutil.Process().memory_info().rss / 2**30, 2)
    try:
        import resource

        results["max_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    except ImportError:  # pragma: no cover
        pass
    results["target_met"] = results["steered_over_unsteered_tps_100_features"] >= 0.9
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    saved = save_json(out.with_suffix(".json"), results, indent=1)
    md = [
        "# Steering benchmark (SmolLM2-135M-Instruct, fp32, CPU)",
        "",
        f"Machine: {results['machine']}",
        "",
        f"Model load: cold (GGUF → fp32 + cache) {results.get('model_load_cold_s', 'n/a')} s; warm (safetensors cache) {results['model_load_s']} s.",
        f"Greedy generation of {args.tokens} new tokens per prompt, median of {args.repeats} interleaved repeats; "
        f"additive features spread over layers {layers[0]}–{layers[-1]} × res/att/mlp ({results['hook_points_100_features']} hook points at 100 features).",
        "",
        "| batch | unsteered tok/s | 1 feature | 10 features | 100 features | 100 rescaled |",
        "|---|---|---|---|---|---|",
    ]
    for b, row in table.items():
        u = row["unsteered"]
        md.append(
            f"| {b[5:]} | {u} | {row['add_1']} ({row['add_1'] / u:.2f}×) | {row['add_10']} ({row['add_10'] / u:.2f}×) | "
            f"{row['add_100']} ({row['add_100'] / u:.2f}×) | {row['rescale_100']} ({row['rescale_100'] / u:.2f}×) |"
        )
    md += [
        "",
        f"**steered / unsteered at 100 features (worst batch): {results['steered_over_unsteered_tps_100_features']}** "
        f"(target ≥ 0.9: {'met' if results['target_met'] else 'NOT met'}). Peak RSS {results.get('max_rss_gib')} GiB.",
        "",
        saved["run"]["noise"] + " Ratios are measured in the same run with interleaved repeats.",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(md))
    print(
        json.dumps(
            {k: results[k] for k in ("steered_over_unsteered_tps_100_features", "unsteered_tps_batch1", "model_load_s")}
        )
    )


if __name__ == "__main__":
    main()
