"""The rescaling sweep (paper Fig. 7) on a tiny random Llama with a planted atlas: removing (r = 0) the
planted predecessors lowers the target and amplifying them (r = 2) raises it; the cached batched
continuation's loss equals a plain full forward with the same edit; every interval names texts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from experiments.rescale import RescaleSettings, run
from queries.ids import Module
from steering.hooks import HookPoint, edit


def _full_forward_loss(
    ctx, window: list[int], t: int, horizon: int, feats: list[tuple[str, int]], r: float, layer: int
) -> float:
    """The same edit, applied by hand on an uncached forward of the whole window."""
    mods = {"res": (layer - 1, Module.RES), "att": (layer, Module.ATT), "mlp": (layer, Module.MLP)}
    edits = {}
    for short in {p for p, _ in feats}:
        sl, m = mods[short]
        sae = ctx.saes[(sl, m)]
        mask = np.zeros(sae.d_sae, dtype=np.float32)
        for p, j in feats:
            if p == short:
                mask[j] = 1.0

        def fn(h, sae=sae, mask=mask):  # type: ignore[no-untyped-def]
            h = h.clone()
            a = sae.encode(h[:, t].float().numpy()) * mask
            h[:, t] += torch.from_numpy((r - 1.0) * a @ sae.W_dec).to(h.dtype)
            return h

        edits[HookPoint(sl, m)] = fn
    ids = torch.tensor([window])
    with torch.no_grad(), edit(ctx.model, edits):
        logits = ctx.model.model(input_ids=ids).logits[0]
    ce = torch.nn.functional.cross_entropy(logits[t : t + horizon].float(), ids[0, t + 1 : t + horizon + 1])
    return float(ce)


def test_rescale_sweep_moves_targets_and_loss_matches_full_forward(planted_ctx, tmp_path: Path) -> None:
    ctx, _, windows = planted_ctx
    settings = RescaleSettings(
        n_texts=4, tokens_per_text=2, window=48, horizon=8, layers=(1, 3), max_targets=3, coefficients=(-1.0, 0.0, 2.0)
    )
    report = run(ctx, windows[:4], settings)
    report.write(tmp_path)
    data = json.loads((tmp_path / "rescale.json").read_text())
    m = data["results"]["metrics"]
    assert m["rerun_max_abs_error"] < 1e-4
    o = m["overall"]
    assert o["0"]["n_targets"] >= 10
    assert o["0"]["activation_change"]["estimate"] > 0.3  # removing the planted predecessors lowers the target
    assert o["2"]["activation_change"]["estimate"] < 0  # amplifying them raises it
    assert o["-1"]["activation_change"]["estimate"] > o["0"]["activation_change"]["estimate"]
    assert "texts" in o["0"]["relative_loss_change"]["method"]
    # the cached, batched continuation computes the same loss as an uncached forward with the same edit
    recs = data["results"]["records"]
    rec = next(x for x in recs if x["r"] == -1.0 and x["n_rescaled"] >= 1)
    L, w, t, f = rec["layer"], rec["window"], rec["token"], rec["feature"]
    from experiments.matching import cosine_matches

    feats = []
    clean_acts = {}
    from steering.hooks import run_capture

    points = [HookPoint(L - 1, Module.RES), HookPoint(L, Module.ATT), HookPoint(L, Module.MLP)]
    got = run_capture(ctx.model, points, torch.tensor([windows[w]]), stop_early=False)
    for short, (sl, mod) in {"res": (L - 1, Module.RES), "att": (L, Module.ATT), "mlp": (L, Module.MLP)}.items():
        j = int(cosine_matches(ctx.saes[(L, Module.RES)].W_dec, ctx.saes[(sl, mod)].W_dec, k=1).index[f, 0])
        clean_acts[short] = ctx.saes[(sl, mod)].encode(got[HookPoint(sl, mod)][0, t][None].float().numpy())[0]
        if clean_acts[short][j] > 0:
            feats.append((short, j))
    assert len(feats) == rec["n_rescaled"]
    assert abs(_full_forward_loss(ctx, windows[w], t, 8, [], 1.0, L) - rec["loss_old"]) < 1e-4
    assert abs(_full_forward_loss(ctx, windows[w], t, 8, feats, -1.0, L) - rec["loss_new"]) < 1e-4
    assert rec["loss_new"] != rec["loss_old"]
    md = (tmp_path / "rescale.md").read_text()
    assert "Selection" in md and "unit of independence is the text" in md
    assert (tmp_path / "rescale-sweep.png").stat().st_size > 1000
