"""The gate: per concept, the seed feature (the best train-split detection AUROC among the atlas's res features),
its flow graph, and whether the concept enters steering (seed or graph validation AUROC ≥ the gate); test AUROCs
are reported, never used to choose."""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.steering_bench import concepts as cs
from experiments.steering_bench import methods as me
from queries.ids import FeatureRef, Module
from steering.hooks import HookPoint


def seed_and_gate(
    atlas: str,
    gate_auroc: float,
    c: cs.ConceptData,
    offs: np.ndarray,
    neg_idx: dict[str, np.ndarray],
    acts: me.TextActs,
    index: me.GraphIndex,
    res_points: list[HookPoint],
) -> dict[str, Any]:
    """The concept's seed (best train AUROC among res features), its flow graph, and the gate read on
    validation (seed or graph AUROC ≥ the gate), with test AUROCs reported."""
    pos = {sp: offs[[t.split == sp for t in c.positives]] for sp in cs.SPLITS}
    # many features can tie at the top train AUROC on a few texts: among those within 0.01 of the best,
    # the one with the largest standardised mean difference (train split only) is the seed
    cands = []
    for p in res_points:
        x_p, x_n = acts.mean[p][pos["train"]], acts.mean[p][neg_idx["train"]]
        au = np.nan_to_num(me.auroc(x_p, x_n), nan=0.0)
        eff = (x_p.mean(0) - x_n.mean(0)) / (np.concatenate([x_p, x_n]).std(0) + 1e-6)
        cands += [(float(au[j]), float(eff[j]), p, int(j)) for j in np.argsort(-au)[:50]]
    top = max(c[0] for c in cands)
    train_auc, _, sp_, j = max((c for c in cands if c[0] >= top - 0.01), key=lambda c: c[1])
    seed_ref = FeatureRef(atlas, sp_.layer, Module.RES, j)
    graph = me.flow_graph(index, seed_ref)
    # the graph's detector: members' mean activations, each scaled by its spread on the train texts
    train_ix = np.concatenate([pos["train"], neg_idx["train"]])
    cols = [acts.mean[HookPoint(n.layer, n.module)][:, n.index] for n in graph.nodes]
    gscore = sum(col / (col[train_ix].std() + 1e-6) for col in cols)

    def au1(x: np.ndarray, split: str) -> float:
        return float(me.auroc(x[pos[split]][:, None], x[neg_idx[split]][:, None])[0])

    seed_col = acts.mean[sp_][:, j]
    g: dict[str, Any] = {
        "concept": c.name,
        "source": c.source,
        "n_pos": {sp: len(pos[sp]) for sp in cs.SPLITS},
        "n_neg": {sp: len(neg_idx[sp]) for sp in cs.SPLITS},
        "seed": seed_ref.uid,
        "auroc_train": train_auc,
        "auroc_validation": au1(seed_col, "validation"),
        "auroc_test": au1(seed_col, "test"),
        "graph_nodes": len(graph.nodes),
        "graph_layers": sorted({n.layer for n in graph.nodes}),
        "graph_auroc_validation": au1(gscore, "validation"),
        "graph_auroc_test": au1(gscore, "test"),
    }
    read = [x for x in (g["auroc_validation"], g["graph_auroc_validation"]) if np.isfinite(x)]
    g["gated_in"] = bool(read) and max(read) >= gate_auroc  # no validation texts: not gated in
    g["graph"], g["pos"] = graph, pos
    return g
