"""Steering evaluation on a tiny random Llama with a planted atlas: the sweep covers every strategy,
scores are in range, unsteered text is the coherence reference, and the best-per-layer table is the
maximum of the settings it summarises. (The graph is built by hand from the planted truth; the real
builder needs Neo4j and is exercised in tests/slow.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from experiments.steering_eval import SteeringEvalSettings, best_per_layer, load_bank, plan_settings, run
from experiments.synthetic import write_atlas
from queries.flow_graph import FlowEdge, FlowGraph, FlowNode
from queries.ids import Module, feature_uid


def _planted_graph(atlas: str, planted) -> FlowGraph:
    """Seed 3/res/i and its planted residual chain down to layer 0 (translated/processed features)."""
    seed = next(i for i in range(64) if planted.truth[(3, i)].res_parent is not None)
    nodes, edges, cur = [], [], seed
    for layer in range(3, -1, -1):
        nodes.append(FlowNode(feature_uid(atlas, layer, Module.RES, cur), atlas, layer, Module.RES, cur))
        parent = planted.truth[(layer, cur)].res_parent
        if layer == 0 or parent is None:
            break
        edges.append(FlowEdge(feature_uid(atlas, layer - 1, Module.RES, parent), nodes[-1].uid, 0.9))
        cur = parent
    return FlowGraph(seeds=[nodes[0].uid], nodes=sorted(nodes, key=lambda n: n.layer), edges=edges)


def test_steering_sweep_on_planted_atlas(planted_ctx, tmp_path: Path) -> None:
    ctx, planted, _ = planted_ctx
    manifest = write_atlas(ctx, tmp_path / "atlas")
    bank = load_bank(manifest, ctx.model)
    graph = _planted_graph(ctx.name, planted)
    s = SteeringEvalSettings(
        theme="love and marriage",
        strengths=(8.0,),
        factors=(0.0,),
        schedules=("constant", "linear"),
        max_layers=2,
        generations=2,
        max_new_tokens=6,
    )
    planned = plan_settings([graph], s)
    assert {st.strategy for st in planned} == {"unsteered", "seeds", "single", "cumulative"}
    assert len([st for st in planned if st.direction == "promote"]) == 1 + 2 * (1 + 2)
    report = run(
        ctx.model, bank, [graph], s, atlas=ctx.name, seeds=[{"uid": graph.seeds[0], "score": 1.0, "basis": "planted"}]
    )
    report.write(tmp_path / "out")
    data = json.loads((tmp_path / "out" / "steering.json").read_text())
    rows = data["results"]["settings"]
    assert all(len(r["texts"]) == 2 for r in rows if r["n_features"] or r["strategy"] == "unsteered")
    unsteered = [r for r in rows if r["strategy"] == "unsteered"]
    assert len(unsteered) == 2 and all(r["coherence_mean"] is not None for r in unsteered)
    # promotion adds a vector at every token: something was applied and the text moved off the baseline
    promoted = [r for r in rows if r["direction"] == "promote" and r["texts"]]
    assert promoted and all(r["applied_norm"] > 0 for r in promoted)
    base = next(r for r in unsteered if r["prompt"] == s.promote_prompt)
    assert all(r["equals_baseline"] == (r["texts"] == base["texts"]) for r in promoted)
    # winners are re-generated on the held-out report prompts, never on the selection prompt
    rep = data["results"]["report_settings"]
    assert {r["role"] for r in rep if r["direction"] == "promote"} >= {"best", "seeds only"}
    for r in rep:
        assert (
            set(r["text_prompts"]) == set(s.report_prompts(r["direction"] if r["direction"] != "none" else "promote"))
            or r["direction"] == "none"
        )
        assert s.promote_prompt not in r["text_prompts"] and s.suppress_text() not in r["text_prompts"]
        assert len(r["texts"]) == 2 * len(set(r["text_prompts"])) or (
            not r["n_features"] and r["strategy"] != "unsteered"
        )
    assert (tmp_path / "out" / "steering-promote-best-per-layer.png").stat().st_size > 1000
    md = (tmp_path / "out" / "steering.md").read_text()
    assert "Compared with the paper" in md and "love and marriage" in md and "held-out report prompts" in md


def test_a_setting_that_changes_nothing_is_flagged_and_cannot_win() -> None:
    from experiments.steering_eval import Setting, choose_for_report

    noop = Setting("suppress", "single", 2, None, 0.0, "p", texts=["a"], topic=[0.0], coherence=[1.0], applied_norm=0.0)
    same = Setting(
        "suppress",
        "single",
        3,
        None,
        0.0,
        "p",
        texts=["a"],
        topic=[0.0],
        coherence=[1.0],
        applied_norm=2.0,
        equals_baseline=True,
    )
    real = Setting(
        "suppress",
        "single",
        4,
        None,
        0.0,
        "p",
        texts=["b"],
        topic=[0.5],
        coherence=[0.5],
        applied_norm=2.0,
        equals_baseline=False,
    )
    assert (
        noop.flagged == "zero applied activation"
        and same.flagged == "output equals the unsteered baseline"
        and real.flagged is None
    )
    chosen = choose_for_report([noop, same, real], "suppress")
    assert chosen["best"] is real  # the flagged ones score higher (1.0 vs 0.25) but cannot win


def test_best_per_layer_is_the_maximum() -> None:
    from experiments.steering_eval import Setting

    a = Setting("promote", "single", 2, None, 4.0, "p", texts=["x"], topic=[0.5], coherence=[1.0])
    b = Setting("promote", "single", 2, None, 8.0, "p", texts=["y"], topic=[0.9], coherence=[0.5])
    c = Setting("suppress", "single", 2, None, 0.0, "q", texts=["z"], topic=[0.2], coherence=[1.0])
    best = best_per_layer([a, b, c], "promote")
    assert best["single"][2] is a and abs(a.product() - 0.5) < 1e-12
    assert abs(best_per_layer([a, b, c], "suppress")["single"][2].product() - 0.8) < 1e-12
    assert np.isnan(Setting("promote", "seeds", None, None, 1.0, "p").product())
