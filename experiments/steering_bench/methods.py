"""What each method adds, on one strength axis, and what the gate and the methods read from the model.

Strength axis: ``α = per-token ‖Δh‖ / median ‖h‖`` at the hook, the median taken over held-out non-sink
tokens (position 0 and massive-norm tokens, ‖h‖ > 5× the median, excluded). Every additive method puts a
vector of norm ``α·median_p`` at each hook point ``p`` it uses; a clamp raises a feature to the floor whose
decoder term has that norm (``α·median_p / ‖d‖``), so its ‖Δh‖ is at most the additive one.

Methods (names are the report's keys): ``diffmean`` (mean hidden state on concept texts minus neutral ones,
train split, at the seed's layer); ``diffmean_all_layers`` (the same at every res layer of the graph's span);
``probe`` (a logistic-regression direction at the seed's layer); ``sae_feature`` (the seed's decoder row);
``sae_feature_clamp``; ``flow_graph`` (the paper's cumulative strategy, constant schedule: every node of the
seed's flow graph at its own hook, the unit decoder rows of one hook summed and normalised);
``flow_graph_norm_matched`` (the same vectors scaled so their norms sum to the single feature's);
``flow_graph_clamp``; controls ``random_direction`` (a random unit vector at the seed's layer),
``random_chain`` (random features at the graph's hook points, as many per point as the graph has) and
``seed_copied`` (the seed's own direction added at every res layer of the span from the seed on).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from queries.ids import FeatureRef, Module
from steering.hooks import HookPoint
from steering.saes import robust_median_norm

if TYPE_CHECKING:
    from queries.flow_graph import FlowGraph
    from steering.model import LoadedModel
    from steering.saes import SAEBank

log = logging.getLogger(__name__)

STEERED_METHODS = (
    "diffmean",
    "diffmean_all_layers",
    "probe",
    "sae_feature",
    "sae_feature_clamp",
    "flow_graph",
    "flow_graph_norm_matched",
    "flow_graph_clamp",
    "random_direction",
    "random_chain",
    "seed_copied",
)
METHODS = ("unsteered", "prompt", *STEERED_METHODS)


@dataclass
class TextActs:
    """Per text and hook point: mean and max SAE activation and mean hidden state over non-sink tokens."""

    mean: dict[HookPoint, np.ndarray]  # [n_texts, d_sae]
    max: dict[HookPoint, np.ndarray]  # [n_texts, d_sae]
    hidden: dict[HookPoint, np.ndarray]  # [n_texts, d] (res points only)
    median_norm: dict[HookPoint, float]  # over the non-sink tokens of the texts given as calibration


def collect(
    lm: LoadedModel,
    bank: SAEBank,
    points: Sequence[HookPoint],
    texts: Sequence[str],
    *,
    calib: Sequence[bool],
    batch_size: int = 16,
    max_tokens: int = 96,
) -> TextActs:
    """One forward per batch over ``texts`` (raw, no chat wrapper), capturing every point; ``calib`` marks the
    texts whose tokens calibrate the median norms."""
    import torch

    from steering.hooks import run_capture

    tok = lm.tokenizer
    means: dict[HookPoint, list[np.ndarray]] = {p: [] for p in points}
    maxes: dict[HookPoint, list[np.ndarray]] = {p: [] for p in points}
    hidden: dict[HookPoint, list[np.ndarray]] = {p: [] for p in points if p.module is Module.RES}
    norms: dict[HookPoint, list[np.ndarray]] = {p: [] for p in points}
    pending: list[tuple[int, HookPoint, np.ndarray]] = []
    for start in range(0, len(texts), batch_size):
        part = list(texts[start : start + batch_size])
        enc = tok(
            part, return_tensors="pt", padding=True, add_special_tokens=False, truncation=True, max_length=max_tokens
        )
        ids, mask = enc.input_ids.to(lm.device), enc.attention_mask.to(lm.device)
        with lm.lock:
            acts = run_capture(lm, list(points), ids, mask)
        # left padding: a row's first real token is its position 0 (the sink), excluded
        first = (mask == 0).sum(1)
        pos = torch.arange(ids.shape[1], device=lm.device)[None, :]
        keep = (pos > first[:, None]) & (mask > 0)
        for p in points:
            h = acts[p].float()
            n = h.norm(dim=-1)
            sae = bank.get(p)
            a = sae.encode(h.to(sae.W_dec.dtype)).float()
            for r in range(len(part)):
                k = keep[r]
                if not bool(k.any()):
                    k = mask[r] > 0
                means[p].append(a[r][k].mean(0).cpu().numpy())
                maxes[p].append(a[r][k].max(0).values.cpu().numpy())
                if p in hidden:
                    hidden[p].append(h[r][k].mean(0).cpu().numpy())
                if calib[start + r]:
                    pending.append((start + r, p, n[r][k].cpu().numpy()))
    for _, p, nn in pending:
        norms[p].append(nn)
    median_norm = {}
    for p in points:
        median_norm[p] = robust_median_norm(np.concatenate(norms[p]) if norms[p] else np.ones(1))
    return TextActs(
        {p: np.stack(v) for p, v in means.items()},
        {p: np.stack(v) for p, v in maxes.items()},
        {p: np.stack(v) for p, v in hidden.items()},
        median_norm,
    )


def auroc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUROC of every column (score higher on ``pos``), ties counted half: ``[n_pos, k]``, ``[n_neg, k]`` → ``[k]``."""
    from scipy.stats import rankdata

    if len(pos) == 0 or len(neg) == 0:
        return np.full(pos.shape[1] if pos.ndim > 1 else 1, np.nan)
    ranks = rankdata(np.concatenate([pos, neg]), axis=0)
    n_p, n_n = len(pos), len(neg)
    return (ranks[:n_p].sum(0) - n_p * (n_p + 1) / 2) / (n_p * n_n)


# --- flow graphs from the atlas's weights --------------------------------------------------------------------


@dataclass
class GraphIndex:
    """Top-1 decoder-cosine edges of every SAE pair of the atlas and each pair's null p99.9 (saes.controls)."""

    atlas: str
    rows: list[dict[str, Any]]
    cuts: dict[tuple[int, str], float]  # (res layer L, predecessor module) -> null p99.9 of that pair


def graph_index(bank: SAEBank, points: Sequence[HookPoint], *, seed: int = 0) -> GraphIndex:
    from saes.controls import null_summary

    atlas = bank.atlas
    have = set(points)

    def w(p: HookPoint) -> np.ndarray:
        x = bank.get(p).W_dec.float().cpu().numpy()
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)

    def node(p: HookPoint, i: int) -> dict[str, Any]:
        ref = FeatureRef(atlas, p.layer, p.module, int(i))
        return {"uid": ref.uid, "atlas": atlas, "layer": p.layer, "module": p.module.value, "index": int(i)}

    edges: dict[tuple[str, str], dict[str, Any]] = {}
    cuts: dict[tuple[int, str], float] = {}
    for tgt in sorted(p for p in have if p.module is Module.RES):
        wt = w(tgt)
        for pred in (
            HookPoint(tgt.layer - 1, Module.RES),
            HookPoint(tgt.layer, Module.ATT),
            HookPoint(tgt.layer, Module.MLP),
        ):
            if pred not in have:
                continue
            ws = w(pred)
            cuts[(tgt.layer, pred.module.value)] = null_summary(
                bank.get(tgt).W_dec.float().cpu().numpy(), bank.get(pred).W_dec.float().cpu().numpy(), seed=seed
            ).p999
            sim = wt @ ws.T  # [n_tgt, n_src]
            best_src = sim.argmax(1)  # each target's top-1 predecessor (target_rank 0)
            for j, i in enumerate(best_src):
                s, t = node(pred, i), node(tgt, j)
                e = edges.setdefault((s["uid"], t["uid"]), {"source": s, "target": t, "similarity": float(sim[j, i])})
                e["target_rank"] = 0
            if pred.module is Module.RES:
                best_tgt = sim.argmax(0)  # each predecessor's top-1 successor (source_rank 0)
                for i, j in enumerate(best_tgt):
                    s, t = node(pred, i), node(tgt, j)
                    e = edges.setdefault(
                        (s["uid"], t["uid"]), {"source": s, "target": t, "similarity": float(sim[j, i])}
                    )
                    e["source_rank"] = 0
    return GraphIndex(atlas, list(edges.values()), cuts)


def flow_graph(index: GraphIndex, seed: FeatureRef, *, residual_cut: float = 0.5) -> FlowGraph:
    """The seed's flow graph (both directions, top-1), edges cut at the null's p99.9 of their SAE pair (the
    residual chain also at the paper's t_R = 0.5 when that is higher). Built by ``queries.flow_graph``."""
    from dataclasses import replace

    from queries.domain import Direction
    from queries.flow_graph import FlowOptions, assemble_flow_graph

    res_cut = max([residual_cut, *(v for (_, m), v in index.cuts.items() if m == "res")])
    mod_cut = min([v for (_, m), v in index.cuts.items() if m != "res"] or [0.0])
    opts = FlowOptions(direction=Direction.BOTH, min_similarity=res_cut, module_min_similarity=mod_cut).validated()
    rows = [{**r, "seed": seed.uid} for r in index.rows]
    rows.append(
        {
            "seed": seed.uid,
            "target": {
                "uid": seed.uid,
                "atlas": seed.atlas,
                "layer": seed.layer,
                "module": seed.module.value,
                "index": seed.index,
            },
        }
    )
    g = assemble_flow_graph([seed.uid], opts, {"upstream": rows, "downstream": rows})
    # per-pair module cuts: a module leaf stays only above its own pair's null p99.9
    drop = set()
    for e in g.edges:
        src = g.node(e.source)
        if src.module is not Module.RES:
            tgt = g.node(e.target)
            if e.similarity < index.cuts.get((tgt.layer, src.module.value), 1.0):
                drop.add(src.uid)
    if drop:
        g = replace(
            g, nodes=[n for n in g.nodes if n.uid not in drop], edges=[e for e in g.edges if e.source not in drop]
        )
    return g


# --- the methods' edits ------------------------------------------------------------------------------------


@dataclass
class Steer:
    """One method for one concept: the per-point ops (strength ``α`` is set per batch row) and what it uses."""

    name: str
    ops: dict[Any, Any] = field(default_factory=dict)  # hook point (or hook name) -> op
    features: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def points(self) -> list[str]:
        return [str(p) for p in sorted(self.ops)]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def add_ops(
    lm: LoadedModel,
    vectors: dict[HookPoint, np.ndarray],
    median: dict[HookPoint, float],
    *,
    weights: dict[HookPoint, float] | None = None,
) -> dict[HookPoint, Any]:
    """At scale α each point gets ``α · median_p · weight_p · unit(v_p)``."""
    import torch

    from steering.vectors import RowAdd

    out = {}
    for p, v in vectors.items():
        vec = _unit(np.asarray(v, dtype=np.float64)) * median[p] * (weights or {}).get(p, 1.0)
        out[p] = RowAdd(torch.as_tensor(vec, dtype=lm.dtype, device=lm.device))
    return out


def clamp_ops(bank: SAEBank, feats: dict[HookPoint, list[int]], median: dict[HookPoint, float]) -> dict[HookPoint, Any]:
    """At scale α feature ``i`` at ``p`` is raised to ``α · median_p / ‖d_i‖`` (its term then has norm α·median_p)."""
    import torch

    from steering.vectors import RowClamp

    out = {}
    for p, idx in feats.items():
        sae = bank.get(p)
        t = torch.tensor(idx, device=sae.W_dec.device)
        dec = sae.W_dec[t].contiguous()
        target = median[p] / dec.float().norm(dim=-1).clamp(min=1e-8)
        out[p] = RowClamp(sae.encoder_slice(t), dec, target.to(dec.dtype))
    return out


def decoder_rows(bank: SAEBank, p: HookPoint, idx: Sequence[int]) -> np.ndarray:
    w = bank.get(p).W_dec.float().cpu().numpy()[list(idx)]
    return w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-8)


def build_methods(
    lm: LoadedModel,
    bank: SAEBank,
    seed: FeatureRef,
    graph: FlowGraph,
    acts: TextActs,
    pos: np.ndarray,
    neg: np.ndarray,
    *,
    rng: np.random.Generator,
) -> dict[str, Steer]:
    """Every steered method for one concept. ``pos``/``neg``: train-split text indices into ``acts``."""
    from sklearn.linear_model import LogisticRegression

    med = acts.median_norm
    sp = HookPoint(seed.layer, Module.RES)
    by_point: dict[HookPoint, list[int]] = {}
    for n in graph.nodes:
        by_point.setdefault(HookPoint(n.layer, n.module), []).append(n.index)
    res_layers = sorted({n.layer for n in graph.nodes if n.module is Module.RES})
    span = [
        HookPoint(L, Module.RES)
        for L in range(res_layers[0], res_layers[-1] + 1)
        if HookPoint(L, Module.RES) in acts.hidden
    ]
    d_seed = decoder_rows(bank, sp, [seed.index])[0]
    out: dict[str, Steer] = {}

    def dm(p: HookPoint) -> np.ndarray:
        return acts.hidden[p][pos].mean(0) - acts.hidden[p][neg].mean(0)

    out["diffmean"] = Steer("diffmean", add_ops(lm, {sp: dm(sp)}, med))
    out["diffmean_all_layers"] = Steer("diffmean_all_layers", add_ops(lm, {p: dm(p) for p in span}, med))
    x = np.concatenate([acts.hidden[sp][pos], acts.hidden[sp][neg]])
    y = np.array([1] * len(pos) + [0] * len(neg))
    mu, sd = x.mean(0), x.std(0) + 1e-6
    probe = LogisticRegression(C=1.0, max_iter=2000).fit((x - mu) / sd, y)
    out["probe"] = Steer("probe", add_ops(lm, {sp: probe.coef_[0] / sd}, med))
    out["sae_feature"] = Steer("sae_feature", add_ops(lm, {sp: d_seed}, med), [seed.uid])
    out["sae_feature_clamp"] = Steer("sae_feature_clamp", clamp_ops(bank, {sp: [seed.index]}, med), [seed.uid])
    graph_vecs = {p: decoder_rows(bank, p, idx).sum(0) for p, idx in by_point.items()}
    uids = [n.uid for n in graph.nodes]
    out["flow_graph"] = Steer("flow_graph", add_ops(lm, graph_vecs, med), uids)
    total = sum(med[p] for p in graph_vecs)
    out["flow_graph_norm_matched"] = Steer(
        "flow_graph_norm_matched",
        add_ops(lm, graph_vecs, med, weights=dict.fromkeys(graph_vecs, med[sp] / total)),
        uids,
    )
    out["flow_graph_clamp"] = Steer("flow_graph_clamp", clamp_ops(bank, by_point, med), uids)
    out["random_direction"] = Steer("random_direction", add_ops(lm, {sp: rng.standard_normal(lm.d_model)}, med))
    chain: dict[HookPoint, list[int]] = {}
    for p, idx in by_point.items():
        d_sae = bank.get(p).d_sae
        pool = np.setdiff1d(np.arange(d_sae), idx)
        chain[p] = [int(i) for i in rng.choice(pool, size=len(idx), replace=False)]
    out["random_chain"] = Steer(
        "random_chain",
        add_ops(lm, {p: decoder_rows(bank, p, idx).sum(0) for p, idx in chain.items()}, med),
        [FeatureRef(bank.atlas, p.layer, p.module, i).uid for p, idx in chain.items() for i in idx],
    )
    copied = [p for p in span if p.layer >= seed.layer] or [sp]
    out["seed_copied"] = Steer("seed_copied", add_ops(lm, dict.fromkeys(copied, d_seed), med), [seed.uid])
    return out
