"""Co-activation experiment on a tiny random Llama with a planted atlas: planted (translated) links
co-activate, random pairs do not, and the report is complete (Markdown, PNGs, JSON)."""

from __future__ import annotations

import json
from pathlib import Path

from experiments.coactivation import CoactivationSettings
from experiments.coactivation_report import run


def test_coactivation_on_planted_atlas(planted_ctx, tmp_path: Path) -> None:
    ctx, planted, windows = planted_ctx
    report = run(
        ctx, windows[:30], CoactivationSettings(n_texts=30, tokens_per_text=5, seed=0), meta={"note": "unit test"}
    )
    path = report.write(tmp_path)
    data = json.loads((tmp_path / "coactivation.json").read_text())
    res = data["results"]
    assert [lay["layer"] for lay in res["layers"]] == [0, 1, 2, 3]
    for lay in res["layers"]:
        assert abs(sum(lay["shares"]) - 1.0) < 1e-9
        if lay["layer"] == 0:  # no res(-1): no group with RES can occur
            assert lay["counts"][1] == 0 and lay["counts"][4] == 0
    # the residual skip connection makes planted res→res links co-activate; random pairs do not
    pairs = res["pairs"]["res"]
    assert pairs["matched_act_corr"]["low"] > pairs["random_act_corr"]["high"]
    assert pairs["spearman_all"] > 0.3
    # s^(R) separates groups that differ in RES activity far more often than groups that do not
    mwu = res["mwu_summary"]["res"]
    assert mwu["mean_share_when_module_activity_differs"] > mwu["mean_share_when_module_activity_same"] + 0.3
    # layer 0 (no res(-1) SAE) stays out of everything pooled; n is the pooled layers' activations
    pg = res["pooled_groups"]
    assert pg["layers"] == [1, 2, 3] and pg["n"] == sum(lay["n_active"] for lay in res["layers"][1:])
    assert all(ci["n"] == pg["n"] and "texts" in ci["method"] for ci in pg["share_intervals"])
    assert res["layers"][0]["mwu_p"] == {}
    # the planted res links sit far above the rotated-decoder null
    assert res["null"]["res"]["p999"] < res["median_score_active_features"]["res"]
    md = path.read_text()
    assert "n = " in md and "one value per feature" in md
    for needle in ("tiny-llama-0", "planted", "Compared with the paper", "coactivation-shares-by-layer.png"):
        assert needle in md
    for png in ("shares-by-layer", "score-distributions", "mann-whitney", "cosine-vs-correlation"):
        assert (tmp_path / f"coactivation-{png}.png").stat().st_size > 1000
    assert data["meta"]["sampled_tokens"] == 150 and data["meta"]["seed"] == 0
