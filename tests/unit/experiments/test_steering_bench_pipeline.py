"""The steering benchmark end to end on a tiny random Llama with a planted atlas (mechanics, not science):
every method of the JSON contract is scored, α comes from the grid, test rows are prompts × seeds,
the report names every method, and the row-wise ops put exactly α·median on each hook."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from experiments.steering_bench import concepts as cs
from experiments.steering_bench import methods as me
from experiments.steering_bench import protocol as pr
from experiments.steering_bench import report as rp
from experiments.steering_bench.run import BenchSettings, run_with


def test_choose_alpha_respects_the_degenerate_cap() -> None:
    c = pr.choose_alpha([0.1, 0.3, 0.5], [0.2, 0.4, 0.9], [0.0, 0.05, 0.5])
    assert c.alpha == 0.3 and c.admissible
    c = pr.choose_alpha([0.1, 0.3], [0.2, 0.4], [0.2, 0.5])
    assert c.alpha == 0.1 and not c.admissible


def test_median_difference_interval() -> None:
    rng = np.random.default_rng(0)
    a = 0.5 + 0.01 * rng.standard_normal((8, 20))
    assert pr.bootstrap_median_difference(a, a - 0.2)["beats"]
    assert not pr.bootstrap_median_difference(a, a)["beats"]
    assert pr.tradeoff_auc([0.0, 0.5], [0.5, 0.9], 0.1) == pytest.approx(0.5 * 0.5 + 0.9 * 0.5, abs=0.02)


def test_splits_are_by_document_and_fixed() -> None:
    assert cs.split_of("weddings#3") == cs.split_of("weddings#3")
    splits = [cs.split_of(f"x#{i}") for i in range(400)]
    assert 0.4 < splits.count("train") / 400 < 0.6
    assert len(cs.eval_prompts("validation")) >= 10 and len(cs.eval_prompts("test")) >= 20
    assert not set(cs.eval_prompts("test")) & set(cs.NEGATIVE_INSTRUCTIONS)


def test_row_add_gives_alpha_times_median(planted_ctx) -> None:
    import torch

    from steering.hooks import HookPoint

    ctx, _, _ = planted_ctx
    p = HookPoint(1, "res")
    ops = me.add_ops(ctx.model, {p: np.ones(ctx.model.d_model)}, {p: 7.0})
    ops[p].set_scale(torch.tensor([0.1, 0.5]))
    h = torch.zeros(2, 3, ctx.model.d_model)
    dn = (ops[p](h) - h).norm(dim=-1)
    assert torch.allclose(dn[0], torch.full((3,), 0.7), atol=1e-5)
    assert torch.allclose(dn[1], torch.full((3,), 3.5), atol=1e-5)


@pytest.fixture(scope="module")
def embed():
    from interop.embeddings import TextEmbedder

    return TextEmbedder().embed


def test_pipeline_on_planted_atlas(planted_ctx, tmp_path: Path, embed, monkeypatch) -> None:
    from experiments.steering_eval import load_bank
    from experiments.synthetic import write_atlas

    monkeypatch.setenv("ATLAS_CACHE_DIR", str(tmp_path / "cache"))
    ctx, _, _ = planted_ctx
    bank = load_bank(write_atlas(ctx, tmp_path / "atlas"), ctx.model)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "notes.txt").write_text("A plain sentence about nothing much at all. " * 400)
    s = BenchSettings(
        atlas=bank.atlas,
        concepts=("weddings and marriage", "coffee"),
        data=cs.DataSettings(per_concept=8, negatives_per_instruction=1, max_new_tokens=8),
        alphas=(0.1, 0.5),
        validation_prompts=2,
        test_prompts=2,
        seeds=2,
        max_new_tokens=4,
        benign_windows=2,
        benign_tokens=8,
        gate_auroc=0.0,  # a random model detects nothing: let every concept through to exercise the methods
    )
    out = run_with(s, ctx.model, bank, embed, corpus=str(corpus))
    summary = rp.write(out, tmp_path / "b.json", tmp_path / "r.md", "atlas experiment steering-bench --quick")
    data = json.loads((tmp_path / "b.json").read_text())
    for key in (
        "concepts",
        "concepts_gated_in",
        "test_prompts",
        "seeds",
        "wall_s",
        "cpu_flags",
        "quiet",
        "methods",
        "flow_graph_beats_sae_feature",
        "flow_graph_beats_diffmean",
        "flow_graph_beats_seed_copied",
        "flow_graph_beats_random",
        "concepts_steered_at_default",
    ):
        assert key in data, key
    assert set(data["methods"]) == set(me.METHODS)
    for m, v in data["methods"].items():
        assert 0.0 <= v["harmonic_mean"] <= 1.0 and v["ci"][0] <= v["ci"][1] + 1e-12, m
        if m in me.STEERED_METHODS:
            assert v["alpha_median"] in s.alphas
    assert summary["concepts"] == 2 and data["seeds"] == 2 and data["test_prompts"] == 2
    c0 = next(iter(out["results"]))
    assert len(out["results"][c0]["flow_graph"]["test"].texts) == 4  # prompts × seeds
    md = (tmp_path / "r.md").read_text()
    assert all(f"| {m} |" in md for m in me.METHODS)


def test_clamp_raises_to_the_floor_and_never_lowers(planted_ctx, tmp_path: Path) -> None:
    import torch

    from experiments.steering_eval import load_bank
    from experiments.synthetic import write_atlas
    from steering.hooks import HookPoint
    from steering.saes import encode_selected

    ctx, _, _ = planted_ctx
    bank = load_bank(write_atlas(ctx, tmp_path / "atlas"), ctx.model)
    p = HookPoint(2, "res")
    ops = me.clamp_ops(bank, {p: [5]}, {p: 10.0})
    op = ops[p]
    unit = float(op.target[0])  # floor at α = 1 (SAE units): median / ‖d‖
    h = torch.randn(2, 4, ctx.model.d_model)
    op.set_scale(torch.tensor([0.0, 0.5]))
    out = op(h)
    assert torch.allclose(out[0], h[0])  # α = 0: the floor is 0, nothing changes
    enc = bank.get(p).encoder_slice(torch.tensor([5]))
    before, after = encode_selected(h, enc)[1, :, 0], encode_selected(out, enc)[1, :, 0]
    assert bool((after >= before - 1e-4).all())  # never lowers the feature
    dn = (out[1] - h[1]).norm(dim=-1)
    assert bool((dn <= 0.5 * 10.0 + 1e-4).all())  # ‖Δh‖ ≤ α · median
    assert float(dn.max()) > 0 and unit > 0


def test_flow_graph_edges_sit_above_their_pair_null(planted_ctx, tmp_path: Path) -> None:
    from experiments.steering_eval import load_bank
    from experiments.synthetic import write_atlas
    from queries.ids import FeatureRef, Module
    from steering.hooks import HookPoint

    ctx, planted, _ = planted_ctx
    bank = load_bank(write_atlas(ctx, tmp_path / "atlas"), ctx.model)
    points = [HookPoint(L, m) for L in range(4) for m in ("res", "att", "mlp")]
    index = me.graph_index(bank, points)
    assert set(index.cuts) == {(L, m) for L in range(4) for m in ("res", "att", "mlp") if not (L == 0 and m == "res")}
    # a planted chain: a res feature with a planted res parent keeps that parent (cosine far above the null)
    seed = next(i for i in range(64) if planted.truth[(3, i)].res_parent is not None)
    g = me.flow_graph(index, FeatureRef(bank.atlas, 3, Module.RES, seed))
    assert any(n.layer == 2 and n.module is Module.RES for n in g.nodes)
    for e in g.edges:
        src, tgt = g.node(e.source), g.node(e.target)
        cut = index.cuts[(tgt.layer, src.module.value)]
        assert e.similarity >= (max(0.5, cut) if src.module is Module.RES else cut)
