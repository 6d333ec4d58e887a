"""Experiment 1 (paper §4.1): does decoder cosine predict co-activation?

On held-out text, at random non-first tokens, every active residual feature of every layer is put in
one of the paper's 8 groups by which of its three cosine top-1 predecessors (res(L-1), mlp(L), att(L))
are active at the same token. We report the group shares by layer (Fig. 5), the distributions of the
scores s^(R), s^(M), s^(A) per group with pairwise Mann–Whitney U tests (Fig. 4), and whether matched
(top-1) pairs co-activate more than random pairs, and how decoder cosine tracks activation correlation.

Invariants: ``analyse`` is a pure function of the samples (no model), so tests can feed it planted data;
every number in the report comes from the dict it returns. The run and the report are
``experiments.coactivation_report``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from experiments.activations import Samples
from experiments.context import AtlasContext
from experiments.matching import cosine_matches, cosine_of_pairs
from experiments.stats import (
    GROUP_MODULES,
    GROUPS,
    cluster_bootstrap_ratio,
    feature_sets,
    group_ids,
    mann_whitney_per_feature,
    mean_interval,
    shares,
    spearman,
)
from queries.ids import Module
from saes.controls import null_top1, summarise_scores

log = logging.getLogger(__name__)

SCORES = ("res", "mlp", "att")  # s^(R), s^(M), s^(A)


@dataclass
class CoactivationSettings:
    n_texts: int = 250  # the paper: 250 samples per dataset
    tokens_per_text: int = 5  # the paper: 5 random non-BOS tokens per sample
    window: int = 128  # tokens of context per sample
    seed: int = 0
    alpha: float = 0.001  # the paper reports the share of tests with p < 0.001
    min_group_n: int = 5  # a Mann–Whitney test needs at least this many values per group
    min_feature_count: int = 3  # a feature enters the correlation analysis if active at ≥ this many tokens
    max_pairs_per_layer: int = 350  # the paper samples 350 features per layer for its scatter plots
    batch_size: int = 8


def _pair_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of column i of ``a`` with column i of ``b`` (0 where either is constant)."""
    ac = a - a.mean(axis=0)
    bc = b - b.mean(axis=0)
    den = np.sqrt((ac * ac).sum(axis=0) * (bc * bc).sum(axis=0))
    out = np.zeros(a.shape[1])
    ok = den > 0
    out[ok] = (ac * bc).sum(axis=0)[ok] / den[ok]
    return out


def analyse(ctx: AtlasContext, samples: Samples, settings: CoactivationSettings) -> dict[str, Any]:
    """Every number of the report, computed from SAE activations at sampled tokens."""
    rng = np.random.default_rng(settings.seed + 1)
    layers_out: list[dict[str, Any]] = []
    pooled_scores: dict[str, list[list[np.ndarray]]] = {p: [[] for _ in GROUPS] for p in SCORES}
    pooled_rows: list[tuple[np.ndarray, np.ndarray]] = []  # (group ids, text ids) of layers with a res(L-1) SAE
    active_scores: dict[str, list[np.ndarray]] = {p: [] for p in SCORES}  # one value per distinct active feature
    null_scores: dict[str, list[np.ndarray]] = {p: [] for p in SCORES}  # top-1 against a rotated predecessor decoder
    pair_rows: list[dict[str, Any]] = []
    for layer in ctx.target_layers():
        target = samples.dense(layer, Module.RES)
        w_target = ctx.saes[(layer, Module.RES)].W_dec
        rows, feats = np.nonzero(target > 0)
        active = {p: np.zeros(len(rows), dtype=bool) for p in SCORES}
        score = {p: np.full(len(rows), np.nan) for p in SCORES}
        for short, src_layer, mod in ctx.predecessor_modules(layer):
            m = cosine_matches(w_target, ctx.saes[(src_layer, mod)].W_dec, k=1)
            if "res" in [sh for sh, _, _ in ctx.predecessor_modules(layer)]:
                null_scores[short].append(
                    null_top1(w_target, ctx.saes[(src_layer, mod)].W_dec, seed=settings.seed + layer)
                )
            src = samples.dense(src_layer, mod)
            active[short] = src[rows, m.top1[feats]] > 0
            score[short] = m.top1_score[feats].astype(np.float64)
            # matched vs random pairs: features active often enough to have a correlation
            counts = (target > 0).sum(axis=0)
            cand = np.nonzero(counts >= settings.min_feature_count)[0]
            if len(cand) > settings.max_pairs_per_layer:
                cand = np.sort(rng.choice(cand, settings.max_pairs_per_layer, replace=False))
            if len(cand):
                rand = rng.integers(0, src.shape[1], size=len(cand))
                for kind, partner in (("matched", m.top1[cand]), ("random", rand)):
                    corr = _pair_correlations(target[:, cand], src[:, partner])
                    cos = cosine_of_pairs(w_target, ctx.saes[(src_layer, mod)].W_dec, cand, partner)
                    pair_rows += [
                        {"layer": layer, "module": short, "kind": kind, "cosine": float(c), "act_corr": float(r)}
                        for c, r in zip(cos, corr)
                    ]
        gids = group_ids(active["res"], active["mlp"], active["att"])
        counts_g = np.bincount(gids, minlength=len(GROUPS))
        # One value per feature: a feature's top-1 score is a constant that repeats at every token it is
        # active at, so the tests and the pooled distributions count each feature once, in its modal group.
        sets = feature_sets(feats, gids)
        mwu: dict[str, Any] = {}
        has_res = "res" in [sh for sh, _, _ in ctx.predecessor_modules(layer)]
        for p in SCORES:
            # Without a res(L-1) SAE a feature cannot be From RES, so this layer's groups are not the
            # paper's groups: its tests and distributions stay out of the pooled results.
            if np.all(np.isnan(score[p])) or not has_res:
                continue
            by_feature = np.full(target.shape[1], np.nan)
            by_feature[feats] = score[p]
            for g in range(len(GROUPS)):
                pooled_scores[p][g].append(by_feature[sorted(sets[g])])
            mwu[p] = mann_whitney_per_feature(sets, by_feature, min_n=settings.min_group_n)
        text_of_row = samples.where[rows, 0]
        if has_res:
            pooled_rows.append((gids, text_of_row))
        first = np.unique(feats, return_index=True)[1]
        for p in SCORES:
            if has_res and not np.all(np.isnan(score[p])):
                active_scores[p].append(score[p][first])
        share_ci = [
            cluster_bootstrap_ratio(
                (gids == g).astype(float), np.ones(len(gids)), text_of_row, seed=settings.seed
            ).as_dict()
            for g in range(len(GROUPS))
        ]
        layers_out.append(
            {
                "layer": layer,
                "predecessors": [s for s, _, _ in ctx.predecessor_modules(layer)],
                "n_active": len(rows),
                "has_res_predecessor": has_res,
                "counts": counts_g.tolist(),
                "shares": shares(gids).tolist(),
                "share_intervals": share_ci,
                "n_features_by_group": [len(x) for x in sets],
                "mwu_p": {p: v.tolist() for p, v in mwu.items()},
                "mean_score_by_group": {
                    p: [
                        float(np.nanmean(score[p][gids == g]))
                        if np.any(gids == g) and not np.all(np.isnan(score[p]))
                        else None
                        for g in range(len(GROUPS))
                    ]
                    for p in SCORES
                },
            }
        )
    if pooled_rows:
        g_all = np.concatenate([g for g, _ in pooled_rows])
        t_all = np.concatenate([t for _, t in pooled_rows])
        pooled = {
            "counts": np.bincount(g_all, minlength=len(GROUPS)).tolist(),
            "n": len(g_all),
            "layers": [lay["layer"] for lay in layers_out if lay["has_res_predecessor"]],
            "share_intervals": [
                cluster_bootstrap_ratio(
                    (g_all == g).astype(float), np.ones(len(g_all)), t_all, seed=settings.seed
                ).as_dict()
                for g in range(len(GROUPS))
            ],
        }
    else:
        pooled = {"counts": [0] * len(GROUPS), "n": 0, "layers": [], "share_intervals": []}
    return {
        "settings": asdict(settings),
        "n_samples": samples.n,
        "interval_method": "95% percentile bootstrap over texts (whole windows resampled, 2,000 draws)",
        "pooled_groups": pooled,
        "median_score_active_features": {
            p: float(np.median(np.concatenate(v))) if v else None for p, v in active_scores.items()
        },
        "n_active_features": {p: int(sum(len(x) for x in v)) for p, v in active_scores.items()},
        "null": {p: summarise_scores(np.concatenate(v)).as_dict() for p, v in null_scores.items() if v},
        "layers": layers_out,
        "mwu_summary": _mwu_summary(layers_out, settings.alpha),
        "pairs": _pair_summary(pair_rows),
        "pair_rows": pair_rows,
        "pooled_scores": {p: [np.concatenate(v).tolist() if v else [] for v in pooled_scores[p]] for p in SCORES},
    }


def _mwu_summary(layers: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    """Share of (layer) tests with p < alpha for each group pair and score; and the paper's headline checks."""
    out: dict[str, Any] = {}
    k = len(GROUPS)
    for p in SCORES:
        sig = np.zeros((k, k))
        n = np.zeros((k, k))
        for lay in layers:
            mat = lay["mwu_p"].get(p)
            if mat is None:
                continue
            mat = np.array(mat, dtype=np.float64)
            ok = np.isfinite(mat)
            n += ok
            sig += ok & (mat < alpha)
        share = np.where(n > 0, sig / np.maximum(n, 1), np.nan)
        # The paper: groups differ in s^(P) when module P is active in only one of the two groups.
        # Pooled over (pair, layer) tests: significant tests / tests, with the number of tests.
        cnt = {"differs": [0, 0], "same": [0, 0]}
        for i in range(k):
            for j in range(i + 1, k):
                key = "differs" if (p in GROUP_MODULES[i]) != (p in GROUP_MODULES[j]) else "same"
                cnt[key][0] += int(sig[i, j])
                cnt[key][1] += int(n[i, j])
        out[p] = {
            "share_significant": share.tolist(),
            "n_tests": n.astype(int).tolist(),
            "mean_share_when_module_activity_differs": cnt["differs"][0] / cnt["differs"][1]
            if cnt["differs"][1]
            else None,
            "n_tests_when_module_activity_differs": cnt["differs"][1],
            "mean_share_when_module_activity_same": cnt["same"][0] / cnt["same"][1] if cnt["same"][1] else None,
            "n_tests_when_module_activity_same": cnt["same"][1],
            "from_mlp_vs_from_mlp_att": None if not np.isfinite(share[2, 6]) else float(share[2, 6]),
            "from_mlp_vs_from_mlp_att_n_tests": int(n[2, 6]),
        }
    return out


def _pair_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for module in SCORES:
        sel = [r for r in rows if r["module"] == module]
        if not sel:
            continue
        entry: dict[str, Any] = {}
        for kind in ("matched", "random"):
            corr = np.array([r["act_corr"] for r in sel if r["kind"] == kind])
            entry[f"{kind}_act_corr"] = mean_interval(corr).as_dict()
        cos = np.array([r["cosine"] for r in sel])
        corr = np.array([r["act_corr"] for r in sel])
        rho, pval = spearman(cos, corr)
        m_cos = np.array([r["cosine"] for r in sel if r["kind"] == "matched"])
        m_corr = np.array([r["act_corr"] for r in sel if r["kind"] == "matched"])
        rho_m, p_m = spearman(m_cos, m_corr)
        entry.update(
            {"spearman_all": rho, "spearman_all_p": pval, "spearman_matched": rho_m, "spearman_matched_p": p_m}
        )
        out[module] = entry
    return out
