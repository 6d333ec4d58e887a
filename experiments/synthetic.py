"""Make a synthetic (planted) atlas fire on a real model, for tests and for timing experiments at scale.

A planted atlas (``saes.synthetic``) has known decoder geometry but thresholds that know nothing of
the model's activation scale. ``calibrate_thresholds`` sets each JumpReLU feature's threshold to a
quantile of its pre-activations on sample tokens, so every feature fires on about ``rate`` of them.
Because ``res(L) = res(L-1) + att(L) + mlp(L)`` through the skip connection, a res(L) feature planted
as a copy of a res(L-1) feature is then also causally downstream of it — which is what the
deactivation test relies on.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from experiments.context import AtlasContext


def calibrate_thresholds(ctx: AtlasContext, windows: list[list[int]], *, rate: float = 0.3) -> AtlasContext:
    """A copy of ``ctx`` whose SAEs are JumpReLU with per-feature thresholds firing on ~``rate`` of tokens."""
    import torch

    from steering.hooks import HookPoint, run_capture

    points = {key: HookPoint(*key) for key in ctx.saes}
    ids = torch.tensor(windows, dtype=torch.long, device=ctx.model.device)
    acts = run_capture(ctx.model, list(points.values()), ids, stop_early=False)
    new = {}
    for key, w in ctx.saes.items():
        h = acts[points[key]][:, 1:].reshape(-1, w.d_in).float().cpu().numpy()
        pre = w.pre_activations(h)
        thr = np.quantile(pre, 1.0 - rate, axis=0).astype(np.float32)
        new[key] = replace(w, architecture="jumprelu", threshold=np.maximum(thr, 1e-6), k=None)
    return AtlasContext(
        name=ctx.name, model=ctx.model, saes=new, manifest_path=ctx.manifest_path, extra=dict(ctx.extra)
    )


def write_atlas(ctx: AtlasContext, folder: str | Path, *, model_name: str | None = None) -> Path:
    """Write the context's SAEs as SAELens dirs + ``atlas.toml`` under ``folder``; returns the manifest path.

    Lets the steering runtime (which loads SAEs from a manifest) use a calibrated synthetic atlas.
    """
    from saes.manifest import AtlasManifest, SAEEntry
    from saes.saelens_format import save_sae_dir

    folder = Path(folder)
    model = model_name or ctx.model.name
    entries = []
    for (layer, mod), w in sorted(ctx.saes.items(), key=lambda kv: (kv[0][0], kv[0][1].value)):
        save_sae_dir(folder / "saes" / f"{layer}-{mod.value}", w, model_name=model)
        entries.append(SAEEntry(layer, mod, path=f"saes/{layer}-{mod.value}"))
    manifest = AtlasManifest(name=ctx.name, model=model, d_model=ctx.model.d_model, saes=entries, base_dir=folder)
    return manifest.write(folder / "atlas.toml")
