"""``atlas steerability ATLAS``: screen what steering each feature does (steering.steerability) and store it on the
graph, with the steering benchmark's per-seed figures and default α (``--bench-json``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from steering.steerability import STANDARD_ALPHA, SteerabilityRun


def steerability(
    atlas: str = typer.Argument(..., help="An ingested atlas whose SAE files are on this machine."),
    alpha: float = typer.Option(STANDARD_ALPHA, help="α of the screen: per-token ‖Δh‖ / the hook's median ‖h‖."),
    bench_json: Path | None = typer.Option(
        None,
        help="A steering-bench.json of this atlas: its seeds' gains and the default α of the steer mutation "
        "(units ALPHA) are stored too.",
    ),
    bench_only: bool = typer.Option(False, help="Store --bench-json's figures only (no model run)."),
    batch: int = typer.Option(256, help="Features per batched forward."),
    dtype: str = typer.Option("auto", help="auto (bf16 where the CPU has fast bf16, else fp32), bf16 or fp32."),
    manifest: Path | None = typer.Option(None, help="The atlas.toml (default: the path the Atlas node recorded)."),
) -> None:
    """Screen every feature at one α: next-token KL and most promoted tokens on fixed neutral prompts."""
    from queries.atlases import atlas_info, known_atlases
    from queries.db import Graph
    from queries.errors import AtlasNotFound, InvalidInput
    from queries.ids import sae_key
    from queries.steerability import store_bench, store_steerability

    if bench_only and bench_json is None:
        raise InvalidInput("--bench-only needs --bench-json FILE (the figures to store)")
    with Graph() as g:
        info = atlas_info(g, atlas)
        if info is None:
            raise AtlasNotFound(atlas, known_atlases(g))
        if not bench_only:
            t0 = time.perf_counter()
            run, tokenizer = _measure(atlas, info, manifest, alpha=alpha, batch=batch, dtype=dtype)
            from steering.steerability import feature_rows

            rows = feature_rows(run, atlas, tokenizer)
            norms = [
                {"key": sae_key(atlas, p.point.layer, p.point.module.value), "median_norm": p.median_norm}
                for p in run.points
            ]
            n = store_steerability(g, atlas, rows, norms, alpha=alpha, prompts=run.prompts)
            typer.echo(
                json.dumps(
                    {
                        "atlas": atlas,
                        "features": n,
                        "alpha": alpha,
                        "seconds": round(time.perf_counter() - t0, 1),
                        "per_sae_s": {str(p.point): p.seconds for p in run.points},
                    }
                )
            )
        if bench_json is not None:
            from experiments.steering_bench.graph_figures import bench_rows

            brows, fa, ga, source = bench_rows(bench_json, atlas)
            found = store_bench(g, atlas, brows, feature_alpha=fa, graph_alpha=ga, source=source)
            typer.echo(f"{atlas}: benchmark figures on {found} of {len(brows)} seeds; default α {fa} (graphs {ga})")


def _measure(
    atlas: str, info: dict[str, Any], manifest: Path | None, *, alpha: float, batch: int, dtype: str
) -> tuple[SteerabilityRun, Any]:
    import torch

    from ingest.cpu import cpu_flags
    from queries.errors import InvalidInput
    from saes.locate import find_manifest
    from steering.hooks import HookPoint
    from steering.model import load_model
    from steering.saes import SAEBank
    from steering.steerability import measure_atlas

    if dtype not in ("auto", "bf16", "fp32"):
        raise InvalidInput(f"--dtype {dtype!r} is not valid (valid: auto, bf16, fp32)")
    fast_bf16 = bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
    torch_dtype = torch.bfloat16 if dtype == "bf16" or (dtype == "auto" and fast_bf16) else torch.float32
    m = find_manifest(
        atlas, explicit=manifest, recorded=info.get("manifest_path"), expected_sha256=info.get("manifest_sha256")
    )
    lm = load_model(m.model, device="cpu", dtype=torch_dtype)
    bank = SAEBank(m, lm)
    points = [HookPoint(e.layer, e.module) for e in m.saes]
    return measure_atlas(lm, bank, points, alpha=alpha, batch=batch, progress=typer.echo), lm.tokenizer
