"""Experiment 2 (paper §4.2): does removing a matched predecessor switch the target feature off?

Protocol (the paper's, sizes configurable): random held-out windows × random non-first tokens × chosen
layers L; at each (window, token t, L), up to ``max_targets`` active res(L) features that are not "From
nowhere". Each method names predecessor features; those active at t are removed *at their own hook and
at token t only*, ``h_t ← h_t + (r−1)·a_t·d`` with r = 0 and ``a_t`` the feature's SAE activation encoded
on the fly, and the forward is re-run to read the target at res(L), token t.

Methods: ``top1`` (cosine top-1 in res(L-1), mlp(L), att(L) — the atlas's edges), ``top5`` (all of the
cosine top-5), ``random_top5`` (one random candidate of the top-5 per module), ``pearson`` (top-1 by
activation correlation on separate calibration text) and ``exhaustive`` (the best *single* active
predecessor feature of any of the three SAEs). Metrics, as the paper defines them: success = the
target's activation becomes 0, **over the targets for which the method removed something** (an empty
removal cannot switch a target off; ``random_top5`` and ``pearson`` often have nothing active to remove),
with the share of targets that had something to remove beside it; activation change = 1 − z_new / z_old
over the same targets. Targets share texts and tokens, so 95% intervals come from a bootstrap over
texts (whole windows resampled), and every rate carries its denominator.

Speed: an edit at token t cannot change earlier positions, so the clean prefix is run once with a KV
cache and every intervention is a batched one-token forward on top of it, stopped after layer L.
Exhaustive search needs one row per active predecessor feature, shared by all targets at that token.
The run and the report are ``experiments.deactivation_report``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from experiments.activations import encode_windows, sample_positions
from experiments.context import AtlasContext
from experiments.matching import Matches, cosine_matches, grouped_targets, pearson_matches
from experiments.stats import GROUPS, Interval, cluster_bootstrap_mean, cluster_bootstrap_ratio
from queries.errors import InvalidInput
from queries.ids import Module

log = logging.getLogger(__name__)

METHODS = ("top1", "top5", "random_top5", "pearson", "exhaustive")
METHOD_NAMES = {
    "top1": "Top-1 cosine",
    "top5": "Top-5 cosine",
    "random_top5": "Random of top-5",
    "pearson": "Top-1 Pearson",
    "exhaustive": "Exhaustive (best single active predecessor)",
}
# The paper's Table 1 (v3; 1,894 features over two layers of Gemma-2-2B): (mean activation change, success).
PAPER_TABLE1 = {"top1": (0.75, 0.65), "pearson": (0.74, 0.65), "exhaustive": (0.83, 0.73)}

Feat = tuple[str, int]  # (predecessor module short name, feature index)


@dataclass
class DeactivationSettings:
    n_texts: int = 12  # the paper: 35 FineWeb texts (see docs/experiments.md for the CPU budget)
    tokens_per_text: int = 5  # the paper: 5 random tokens per text
    window: int = 64
    layers: tuple[int, ...] | None = (
        None  # default: 3 layers at the paper's relative depths 6/26, 12/26, 18/26 (all if ≤ 3)
    )
    max_targets: int = 25  # the paper: up to 25 active targets per layer–token pair
    r: float = 0.0
    pearson_tokens: int = 100_000  # calibration tokens for Pearson matching (the paper: 100K); position 0 excluded
    pearson_window: int = 128  # tokens per calibration window
    seed: int = 0
    batch_size: int = 64


def default_layers(ctx: AtlasContext, count: int = 3) -> list[int]:
    """Target layers at the relative depths of the paper's 6, 12, 18 (of Gemma's 26), among usable layers."""
    usable = [L for L in ctx.target_layers() if ctx.has(L - 1, Module.RES)]
    if len(usable) <= count:
        return usable
    picks = []
    for frac in (6 / 26, 12 / 26, 18 / 26)[:count]:
        picks.append(usable[min(len(usable) - 1, round(frac * (len(usable) - 1)))])
    return sorted(set(picks))


class _Runner:
    """Batched one-token re-runs on top of a cached clean prefix (steering.kv), with token-local feature removal."""

    def __init__(self, ctx: AtlasContext, layer: int, r: float, batch_size: int) -> None:
        from steering.hooks import HookPoint

        self.ctx, self.layer, self.r, self.batch_size = ctx, layer, r, batch_size
        self.preds = {short: (HookPoint(sl, m), ctx.saes[(sl, m)]) for short, sl, m in ctx.predecessor_modules(layer)}
        self.target_point = HookPoint(layer, Module.RES)
        self.target_sae = ctx.saes[(layer, Module.RES)]

    def prefix_cache(self, ids: list[int], t: int) -> Any:
        from steering.kv import prefix_cache

        return prefix_cache(self.ctx.model, ids[:t], self.target_point)

    def run(self, cache: Any, token: int, rows: list[frozenset[Feat]]) -> np.ndarray:
        """Target-SAE activations at res(layer) [len(rows), d_sae], one row per set of features removed."""
        from steering.kv import next_token_states

        out = []
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            b = len(chunk)
            masks = {short: np.zeros((b, sae.d_sae), dtype=np.float32) for short, (_, sae) in self.preds.items()}
            for i, feats in enumerate(chunk):
                for short, j in feats:
                    masks[short][i, j] = 1.0
            edits = {}
            for short, (point, sae) in self.preds.items():
                if masks[short].any():
                    edits[point] = self._remover(sae, masks[short])
            h = next_token_states(self.ctx.model, cache, token, b, edits, self.target_point).float().cpu().numpy()
            out.append(self.target_sae.encode(h))
        return np.concatenate(out, axis=0)

    def _remover(self, sae: Any, mask: np.ndarray) -> Any:
        import torch

        scale = 1.0 - self.r
        w_dec = sae.W_dec

        def fn(h: torch.Tensor) -> torch.Tensor:
            x = h[:, -1].float().cpu().numpy()
            a = sae.encode(x) * mask  # the features' *current* activations at this point
            delta = torch.from_numpy((scale * a) @ w_dec).to(h.device, h.dtype)
            h = h.clone()
            h[:, -1] -= delta
            return h

        return fn


def _method_sets(
    f: int,
    active: dict[str, np.ndarray],
    cos: dict[str, Matches],
    pear: dict[str, Matches],
    rng: np.random.Generator,
) -> dict[str, frozenset[Feat]]:
    """The predecessor features each method would remove for target ``f`` (only those active at t)."""
    sets: dict[str, frozenset[Feat]] = {}
    sets["top1"] = frozenset((p, int(cos[p].index[f, 0])) for p in cos if active[p][cos[p].index[f, 0]])
    sets["top5"] = frozenset((p, int(j)) for p in cos for j in cos[p].index[f] if active[p][j])
    group_mods = [p for p in cos if active[p][cos[p].index[f, 0]]]
    picks = [(p, int(rng.choice(cos[p].index[f]))) for p in group_mods]
    sets["random_top5"] = frozenset((p, j) for p, j in picks if active[p][j])
    sets["pearson"] = frozenset((p, int(pear[p].index[f, 0])) for p in pear if active[p][pear[p].index[f, 0]])
    return sets


def measure(
    ctx: AtlasContext, windows: list[list[int]], calib: list[list[int]], settings: DeactivationSettings
) -> dict[str, Any]:
    """Run the protocol; returns per-target records and the aggregated metrics."""
    layers = list(settings.layers) if settings.layers else default_layers(ctx)
    for L in layers:
        if L not in ctx.target_layers():
            raise InvalidInput(
                f"layer {L} has no res SAE with predecessor SAEs in atlas {ctx.name!r} (valid: {ctx.target_layers()})"
            )
    rng = np.random.default_rng(settings.seed + 2)
    keys = sorted(
        {(L, Module.RES) for L in layers} | {(sl, m) for L in layers for _, sl, m in ctx.predecessor_modules(L)}
    )
    # Pearson matches from calibration text, disjoint from the evaluation windows. Position 0 is left out:
    # it is the attention sink (outsized norms) that SAE training and the evaluation never sample.
    calib_s = encode_windows(ctx, calib, [np.arange(1, len(w)) for w in calib], keys=keys)
    positions = sample_positions(len(windows), len(windows[0]), settings.tokens_per_text, settings.seed)
    clean = encode_windows(ctx, windows, positions, keys=keys)
    records: list[dict[str, Any]] = []
    n_sites = 0
    n_rows = 0
    for L in layers:
        runner = _Runner(ctx, L, settings.r, settings.batch_size)
        w_t = ctx.saes[(L, Module.RES)].W_dec
        cos = {p: cosine_matches(w_t, ctx.saes[(sl, m)].W_dec, k=5) for p, sl, m in ctx.predecessor_modules(L)}
        tgt_calib = calib_s.acts[(L, Module.RES)]
        pear = {p: pearson_matches(tgt_calib, calib_s.acts[(sl, m)]) for p, sl, m in ctx.predecessor_modules(L)}
        z_all = clean.dense(L, Module.RES)
        pred_all = {p: clean.dense(sl, m) for p, sl, m in ctx.predecessor_modules(L)}
        for i, (w, t) in enumerate(clean.where):
            z = z_all[i]
            active = {p: pred_all[p][i] > 0 for p in cos}
            feats, gids, cand = grouped_targets(z, active, cos, rng, settings.max_targets)
            if not len(cand):
                continue
            targets = feats[cand]
            sets = [_method_sets(int(f), active, cos, pear, rng) for f in targets]
            singles = [frozenset({(p, int(j))}) for p in active for j in np.nonzero(active[p])[0]]
            rows = sorted({s for d in sets for s in d.values()} | set(singles) | {frozenset()}, key=sorted)
            row_of = {s: k for k, s in enumerate(rows)}
            cache = runner.prefix_cache(windows[w], int(t))
            z_new = runner.run(cache, windows[w][int(t)], rows)
            n_sites += 1
            n_rows += len(rows)
            base = z_new[row_of[frozenset()]]
            single_idx = np.array([row_of[s] for s in singles], dtype=np.int64)
            for k, f in enumerate(targets):
                z_old = float(z[f])
                rec: dict[str, Any] = {
                    "layer": L,
                    "window": int(w),
                    "token": int(t),
                    "feature": int(f),
                    "group": int(gids[cand[k]]),
                    "z_old": z_old,
                    "z_rerun": float(base[f]),
                }
                for m, s in sets[k].items():
                    zn = float(z_new[row_of[s], f])
                    rec[m] = {"n_removed": len(s), "z_new": zn, "success": zn <= 0.0, "change": 1.0 - zn / z_old}
                if len(single_idx):
                    col = z_new[single_idx, f]
                    best = int(np.argmin(col))
                    zn = float(col[best])
                    ((p, j),) = singles[best]
                    rec["exhaustive"] = {
                        "n_removed": 1,
                        "z_new": zn,
                        "success": zn <= 0.0,
                        "change": 1.0 - zn / z_old,
                        "best": f"{p}/{j}",
                        "best_is_top1": bool(cos[p].index[f, 0] == j),
                        "n_candidates": len(singles),
                    }
                records.append(rec)
    return {
        "settings": asdict(settings) | {"layers": layers},
        "n_sites": n_sites,
        "n_rows": n_rows,
        "records": records,
        "pearson_calibration_tokens": calib_s.n,
        "pearson_calibration": f"{calib_s.n:,} tokens, position 0 of each window excluded",
        "metrics": aggregate(records, seed=settings.seed),
    }


def aggregate(records: list[dict[str, Any]], *, seed: int = 0) -> dict[str, Any]:
    """Success and activation change per method (overall, per layer, per group) with 95% intervals.

    Denominators: ``success`` and ``activation_change`` are over the targets for which the method removed
    at least one active feature (the paper's definition); ``success_all_targets`` divides the same
    successes by every target (what an earlier version reported); ``had_something_to_remove`` is the
    share of targets with a non-empty removal. Intervals: bootstrap over texts (windows)."""

    def summarise(recs: list[dict[str, Any]]) -> dict[str, Any]:
        out = {}
        for m in METHODS:
            rows = [r for r in recs if m in r]
            win = np.array([r["window"] for r in rows])
            removed = np.array([r[m]["n_removed"] > 0 for r in rows], dtype=float)
            success = np.array([bool(r[m]["success"]) for r in rows], dtype=float)
            change = np.array([r[m]["change"] if r[m]["n_removed"] > 0 else np.nan for r in rows], dtype=float)
            out[m] = {
                "success": cluster_bootstrap_ratio(success * removed, removed, win, seed=seed).as_dict(),
                "success_all_targets": cluster_bootstrap_ratio(
                    success * removed, np.ones(len(rows)), win, seed=seed
                ).as_dict(),
                "had_something_to_remove": cluster_bootstrap_ratio(
                    removed, np.ones(len(rows)), win, seed=seed
                ).as_dict(),
                "activation_change": cluster_bootstrap_mean(change, win, seed=seed).as_dict(),
                "mean_removed": float(np.mean([r[m]["n_removed"] for r in rows])) if rows else None,
                "n_targets": len(rows),
                "n_with_removal": int(removed.sum()),
            }
        return out

    layers = sorted({r["layer"] for r in records})
    by_group = {
        GROUPS[g]: summarise([r for r in records if r["group"] == g])
        for g in range(1, len(GROUPS))
        if any(r["group"] == g for r in records)
    }
    ex = [r["exhaustive"] for r in records if "exhaustive" in r]
    return {
        "n_targets": len(records),
        "n_texts": len({r["window"] for r in records}),
        "n_sites": len({(r["layer"], r["window"], r["token"]) for r in records}),
        "interval_method": "95% percentile bootstrap over texts (whole windows resampled, 2,000 draws)",
        "overall": summarise(records),
        "by_layer": {str(L): summarise([r for r in records if r["layer"] == L]) for L in layers},
        "by_group": by_group,
        "top1_vs_random": paired_comparison(records, "top1", "random_top5", seed=seed),
        "top1_vs_pearson": paired_comparison(records, "top1", "pearson", seed=seed),
        "exhaustive_best_is_top1": float(np.mean([e["best_is_top1"] for e in ex])) if ex else None,
        "rerun_max_abs_error": float(max((abs(r["z_rerun"] - r["z_old"]) for r in records), default=0.0)),
    }


def paired_comparison(records: list[dict[str, Any]], a: str, b: str, *, seed: int = 0) -> dict[str, Any]:
    """Success of methods ``a`` and ``b`` on the same targets — those where *both* removed something —
    with the difference and the ratio, each with a bootstrap-over-texts 95% interval."""
    rows = [r for r in records if a in r and b in r and r[a]["n_removed"] > 0 and r[b]["n_removed"] > 0]
    win = np.array([r["window"] for r in rows])
    sa = np.array([bool(r[a]["success"]) for r in rows], dtype=float)
    sb = np.array([bool(r[b]["success"]) for r in rows], dtype=float)
    out: dict[str, Any] = {
        "n_targets": len(rows),
        a: cluster_bootstrap_mean(sa, win, seed=seed).as_dict(),
        b: cluster_bootstrap_mean(sb, win, seed=seed).as_dict(),
        "difference": cluster_bootstrap_mean(sa - sb, win, seed=seed).as_dict(),
    }
    # ratio of the two rates, resampling texts jointly (so the pairing is kept)
    if len(rows) and sb.sum() > 0:
        keys, inv = np.unique(win, return_inverse=True)
        na, nb = np.bincount(inv, sa, len(keys)), np.bincount(inv, sb, len(keys))
        w = (
            np.random.default_rng(seed)
            .multinomial(len(keys), np.full(len(keys), 1 / len(keys)), size=2000)
            .astype(float)
        )
        den = w @ nb
        ratios = (w @ na)[den > 0] / den[den > 0]
        lo, hi = np.quantile(ratios, [0.025, 0.975])
        out["ratio"] = Interval(
            float(sa.sum() / sb.sum()), float(lo), float(hi), len(rows), "cluster bootstrap over texts"
        ).as_dict()
    else:
        out["ratio"] = None
    return out
