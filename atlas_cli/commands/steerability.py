"""``atlas steerability ATLAS``: screen what steering each feature does (steering.steerability) and store it on the
graph, with the steering benchmark's per-seed figures and default α (``--bench-json``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from steering.steerability import STANDARD_ALPHA


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
    from queries.steerability import store_bench

    if bench_only and bench_json is None:
        raise InvalidInput("--bench-only needs --bench-json FILE (the figures to store)")
    if dtype not in ("auto", "bf16", "fp32"):
        raise InvalidInput(f"--dtype {dtype!r} is not valid (valid: auto, bf16, fp32)")
    with Graph() as g:
        info = atlas_info(g, atlas)
        if info is None:
            raise AtlasNotFound(atlas, known_atlases(g))
        if not bench_only:
            import torch

            from ingest.cpu import cpu_has_fast_bf16
            from steering.steerability import screen_atlas, store_screen

            t0 = time.perf_counter()
            bf16 = dtype == "bf16" or (dtype == "auto" and cpu_has_fast_bf16())
            run, lm = screen_atlas(
                info,
                atlas,
                dtype=torch.bfloat16 if bf16 else torch.float32,
                manifest=manifest,
                alpha=alpha,
                batch=batch,
                progress=typer.echo,
            )
            n = store_screen(g, atlas, run, lm.tokenizer)
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
