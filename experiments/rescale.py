"""The rescaling-coefficient sweep (paper Fig. 7): rescale a target's predecessors at one token by r and
measure what happens to the target and to the model's loss.

Selection (stated in the report): held-out windows (the training corpus's held-out split, never trained
on) × random tokens t × target layers L (the deactivation report's: the paper's relative depths); at each
(window, t, L), up to ``max_targets`` active res(L) features that have at least one active top-1 cosine
predecessor (not "From nowhere"), drawn at random. For each target and each r, *every* active top-1
predecessor (res(L-1), mlp(L), att(L); the paper's "every available predecessor") is rescaled at its own
hook and at token t only, ``h_t ← h_t + (r−1)·a_t·d`` with ``a_t`` encoded on the fly (r = 1 is the
unedited run, r = 0 removes, r < 0 flips).

Measured per (target, r): the target's activation change 1 − z_new/z_old at token t, and the relative
loss change (L_new − L_old)/L_old of the mean next-token cross-entropy over the ``horizon`` tokens after
the edit (predicting t+1 … t+horizon; earlier positions cannot change). The paper reports the loss over
its texts, which dilutes the change by the unedited positions; this one is local to the edit.

Unit of independence: texts (windows). Every interval is a bootstrap over texts; every mean says its n.
Speed: the prefix before t runs once (KV cache); each (target, r) is one row of a batched
``horizon``-token continuation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from experiments.activations import encode_windows
from experiments.context import AtlasContext
from experiments.deactivation import default_layers
from experiments.matching import cosine_matches, grouped_targets
from experiments.report import Report, md_table, new_figure, run_meta
from experiments.stats import GROUPS, cluster_bootstrap_mean
from queries.errors import InvalidInput
from queries.ids import Module

log = logging.getLogger(__name__)

DEFAULT_COEFFICIENTS = (-2.0, -1.0, 0.0, 0.5, 1.5, 2.0)  # r = 1 is the unedited run (change 0 by definition)


@dataclass
class RescaleSettings:
    n_texts: int = 12
    tokens_per_text: int = 2
    window: int = 48
    horizon: int = 16  # next-token losses measured after the edit
    layers: tuple[int, ...] | None = None  # default: the deactivation report's layers
    max_targets: int = 4  # per (window, token, layer)
    coefficients: tuple[float, ...] = DEFAULT_COEFFICIENTS
    seed: int = 0
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.window - self.horizon < 2:
            raise InvalidInput(
                f"window {self.window} leaves no token to edit before a horizon of {self.horizon} (use window ≥ horizon + 2)"
            )
        if not self.coefficients:
            raise InvalidInput("no rescaling coefficient given (e.g. --coefficients=-2,-1,0,0.5,1.5,2)")


def _positions(n_windows: int, settings: RescaleSettings) -> list[np.ndarray]:
    """Random edit tokens in [1, window − horizon − 1] so that ``horizon`` next tokens follow each."""
    rng = np.random.default_rng(settings.seed)
    hi = settings.window - settings.horizon  # t + horizon ≤ window − 1
    k = min(settings.tokens_per_text, hi - 1)
    return [np.sort(rng.choice(np.arange(1, hi), size=k, replace=False)) for _ in range(n_windows)]


class _Continuation:
    """Batched continuations of ``horizon`` tokens after a cached prefix, with token-local rescaling."""

    def __init__(self, ctx: AtlasContext, layer: int, batch_size: int) -> None:
        from steering.hooks import HookPoint

        self.ctx, self.batch_size = ctx, batch_size
        self.preds = {short: (HookPoint(sl, m), ctx.saes[(sl, m)]) for short, sl, m in ctx.predecessor_modules(layer)}
        self.target_point = HookPoint(layer, Module.RES)
        self.target_sae = ctx.saes[(layer, Module.RES)]
        self.last = HookPoint(ctx.model.n_layers - 1, Module.RES)

    def run(
        self, window: list[int], t: int, horizon: int, rows: list[tuple[frozenset[tuple[str, int]], float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row (features to rescale, r): the target SAE's activations at t [rows, d_sae] and the mean
        next-token cross-entropy over the horizon [rows]."""
        import torch

        from steering.kv import continuation, prefix_cache

        lm = self.ctx.model
        kv = prefix_cache(lm, window[:t], self.last)  # stops after the last block: every layer's keys cached
        ids = window[t : t + horizon]
        labels = torch.tensor(window[t + 1 : t + horizon + 1], dtype=torch.long, device=lm.device)
        z_out, loss_out = [], []
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            b = len(chunk)
            scale = np.array([r - 1.0 for _, r in chunk], dtype=np.float32)[:, None]
            edits = {}
            for short, (point, sae) in self.preds.items():
                mask = np.zeros((b, sae.d_sae), dtype=np.float32)
                for i, (feats, _) in enumerate(chunk):
                    for p, j in feats:
                        if p == short:
                            mask[i, j] = 1.0
                if mask.any():
                    edits[point] = self._rescaler(sae, mask * scale)
            logits, h = continuation(lm, kv, ids, b, edits, self.target_point)
            ce = torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), labels.repeat(b), reduction="none"
            ).reshape(b, -1)
            loss_out.append(ce.mean(1).cpu().numpy())
            z_out.append(self.target_sae.encode(h[:, 0].float().cpu().numpy()))
        return np.concatenate(z_out), np.concatenate(loss_out)

    @staticmethod
    def _rescaler(sae: Any, coef: np.ndarray) -> Any:
        """``h_t += (r−1)·a_t·d`` at the first continuation position (token t) only, per row."""
        import torch

        w_dec = sae.W_dec

        def fn(h: torch.Tensor) -> torch.Tensor:
            x = h[:, 0].float().cpu().numpy()
            delta = torch.from_numpy((sae.encode(x) * coef) @ w_dec).to(h.device, h.dtype)
            h = h.clone()
            h[:, 0] += delta
            return h

        return fn


def measure(ctx: AtlasContext, windows: list[list[int]], settings: RescaleSettings) -> dict[str, Any]:
    layers = list(settings.layers) if settings.layers else default_layers(ctx)
    for L in layers:
        if L not in ctx.target_layers():
            raise InvalidInput(
                f"layer {L} has no res SAE with predecessor SAEs in atlas {ctx.name!r} (valid: {ctx.target_layers()})"
            )
    if any(len(w) < settings.window for w in windows):
        raise InvalidInput(f"every window needs {settings.window} tokens (got one of {min(len(w) for w in windows)})")
    rng = np.random.default_rng(settings.seed + 3)
    keys = sorted(
        {(L, Module.RES) for L in layers} | {(sl, m) for L in layers for _, sl, m in ctx.predecessor_modules(L)}
    )
    positions = _positions(len(windows), settings)
    clean = encode_windows(ctx, windows, positions, keys=keys)
    coefs = [float(r) for r in settings.coefficients if r != 1.0]
    records: list[dict[str, Any]] = []
    for L in layers:
        runner = _Continuation(ctx, L, settings.batch_size)
        cos = {
            p: cosine_matches(ctx.saes[(L, Module.RES)].W_dec, ctx.saes[(sl, m)].W_dec, k=1)
            for p, sl, m in ctx.predecessor_modules(L)
        }
        z_all = clean.dense(L, Module.RES)
        pred_all = {p: clean.dense(sl, m) for p, sl, m in ctx.predecessor_modules(L)}
        for i, (w, t) in enumerate(clean.where):
            z = z_all[i]
            active = {p: pred_all[p][i] > 0 for p in cos}
            feats, gids, cand = grouped_targets(z, active, cos, rng, settings.max_targets)
            if not len(cand):
                continue
            sets = [
                frozenset((p, int(cos[p].index[feats[c], 0])) for p in cos if active[p][cos[p].index[feats[c], 0]])
                for c in cand
            ]
            rows: list[tuple[frozenset[tuple[str, int]], float]] = [(frozenset(), 1.0)]
            rows += [(s, r) for s in sets for r in coefs]
            z_new, loss = runner.run(windows[w], int(t), settings.horizon, rows)
            base_loss = float(loss[0])
            for k, c in enumerate(cand):
                f = int(feats[c])
                for j, r in enumerate(coefs):
                    row = 1 + k * len(coefs) + j
                    records.append(
                        {
                            "layer": L,
                            "window": int(w),
                            "token": int(t),
                            "feature": f,
                            "group": int(gids[c]),
                            "n_rescaled": len(sets[k]),
                            "r": r,
                            "z_old": float(z[f]),
                            "z_unedited_rerun": float(z_new[0, f]),
                            "z_new": float(z_new[row, f]),
                            "activation_change": 1.0 - float(z_new[row, f]) / float(z[f]),
                            "loss_old": base_loss,
                            "loss_new": float(loss[row]),
                            "relative_loss_change": (float(loss[row]) - base_loss) / base_loss,
                        }
                    )
    return {
        "settings": asdict(settings) | {"layers": layers},
        "records": records,
        "metrics": aggregate(records, coefs, seed=settings.seed),
    }


def aggregate(records: list[dict[str, Any]], coefs: list[float], *, seed: int = 0) -> dict[str, Any]:
    """Per r: mean relative loss change and activation change (overall and per group), bootstrap over texts."""

    def per_r(recs: list[dict[str, Any]]) -> dict[str, Any]:
        out = {}
        for r in coefs:
            rows = [x for x in recs if x["r"] == r]
            win = np.array([x["window"] for x in rows])
            out[f"{r:g}"] = {
                "n_targets": len(rows),
                "n_texts": len(set(win.tolist())),
                "relative_loss_change": cluster_bootstrap_mean(
                    np.array([x["relative_loss_change"] for x in rows]), win, seed=seed
                ).as_dict(),
                "activation_change": cluster_bootstrap_mean(
                    np.array([x["activation_change"] for x in rows]), win, seed=seed
                ).as_dict(),
                "median_relative_loss_change": float(np.median([x["relative_loss_change"] for x in rows]))
                if rows
                else None,
            }
        return out

    groups = sorted({x["group"] for x in records})
    return {
        "n_targets": len({(x["layer"], x["window"], x["token"], x["feature"]) for x in records}),
        "n_texts": len({x["window"] for x in records}),
        "interval_method": "95% percentile bootstrap over texts (whole windows resampled, 2,000 draws)",
        "overall": per_r(records),
        "by_group": {GROUPS[g]: per_r([x for x in records if x["group"] == g]) for g in groups},
        "rerun_max_abs_error": float(max((abs(x["z_unedited_rerun"] - x["z_old"]) for x in records), default=0.0)),
    }


def _pm(iv: dict[str, Any], scale: float = 1.0, digits: int = 2) -> str:
    est, lo, hi = iv.get("estimate"), iv.get("low"), iv.get("high")
    if est is None or not np.isfinite(est):
        return "n/a"
    ci = (
        f" [{lo * scale:.{digits}f}, {hi * scale:.{digits}f}]"
        if lo is not None and hi is not None and np.isfinite(lo)
        else ""
    )
    return f"{est * scale:.{digits}f}{ci}"


def run(
    ctx: AtlasContext, windows: list[list[int]], settings: RescaleSettings, meta: dict[str, Any] | None = None
) -> Report:
    started = time.time()  # the report's wall time covers the measurement, not just the writing
    res = measure(ctx, windows, settings)
    m = res["metrics"]
    coefs = list(m["overall"])
    rep = Report(
        "rescale",
        f"Rescaling-coefficient sweep (paper Fig. 7) — {ctx.name}",
        {**run_meta(ctx.name, ctx.model.name, windows, settings.tokens_per_text), **(meta or {})},
        started=started,
    )
    rep.data = res
    rep.add(
        f"**Selection.** {m['n_targets']} target features over {m['n_texts']} held-out texts (windows of "
        f"{settings.window} tokens from the held-out split), layers {', '.join(map(str, res['settings']['layers']))}: at each "
        f"of {settings.tokens_per_text} random tokens per text, up to {settings.max_targets} active res(L) features with at "
        "least one active top-1 cosine predecessor, drawn at random. For each target and each r, every active top-1 "
        "predecessor is rescaled at its own hook and that token only: h ← h + (r−1)·a·d (r = 1: unedited; r = 0: "
        "removed). **Loss**: mean next-token cross-entropy over the "
        f"{settings.horizon} tokens after the edit, relative change (L_new − L_old)/L_old (×10⁻³ below). "
        f"**Intervals**: {m['interval_method']}; the unit of independence is the text. Unedited re-run max |Δz| = "
        f"{m['rerun_max_abs_error']:.2g} (the batched continuation reproduces the clean activations)."
    )
    rep.add(
        "## All targets\n\n"
        + md_table(
            [
                "r",
                "n targets (texts)",
                "relative loss change ×10⁻³",
                "median ×10⁻³",
                "activation change 1 − z_new/z_old",
            ],
            [
                [
                    k,
                    f"{v['n_targets']} ({v['n_texts']})",
                    _pm(v["relative_loss_change"], 1e3),
                    None if v["median_relative_loss_change"] is None else v["median_relative_loss_change"] * 1e3,
                    _pm(v["activation_change"]),
                ]
                for k, v in m["overall"].items()
            ],
        )
    )
    rep.add(
        "## By group (active top-1 predecessors of the target), relative loss change ×10⁻³\n\n"
        + md_table(
            ["group", "n targets", *[f"r = {k}" for k in coefs]],
            [
                [g, d[coefs[0]]["n_targets"], *[_pm(d[k]["relative_loss_change"], 1e3) for k in coefs]]
                for g, d in m["by_group"].items()
            ],
        )
        + "\n\nThe paper (Gemma-2-2B, loss over whole texts): the relative loss change stays within about 1e-3; "
        "negative r hits From RES hardest, and rescaling RES & MLP costs more than RES alone."
    )
    fig, ax = new_figure(10, 3.6, ncols=2)
    xs = [float(k) for k in coefs]
    for g, d in [("all", m["overall"]), *m["by_group"].items()]:
        if d[coefs[0]]["n_targets"] < 20 and g != "all":
            continue
        lw = 2.5 if g == "all" else 1.0
        ax[0, 0].plot(
            xs,
            [d[k]["relative_loss_change"]["estimate"] or np.nan for k in coefs],
            marker="o",
            lw=lw,
            label=f"{g} (n={d[coefs[0]]['n_targets']})",
        )
        ax[0, 1].plot(xs, [d[k]["activation_change"]["estimate"] or np.nan for k in coefs], marker="o", lw=lw, label=g)
    lo = [m["overall"][k]["relative_loss_change"]["low"] or np.nan for k in coefs]
    hi = [m["overall"][k]["relative_loss_change"]["high"] or np.nan for k in coefs]
    ax[0, 0].fill_between(xs, lo, hi, alpha=0.2, color="C0")
    ax[0, 0].axhline(0, color="grey", lw=0.5)
    ax[0, 0].set_xlabel("r")
    ax[0, 0].set_ylabel("relative loss change")
    ax[0, 0].legend(fontsize=6)
    ax[0, 1].set_xlabel("r")
    ax[0, 1].set_ylabel("target activation change")
    rep.figure(
        "sweep",
        fig,
        "Relative loss change (left; band: 95% bootstrap over texts, all targets) and target activation change "
        "(right) against the rescaling coefficient r; groups with ≥ 20 targets.",
    )
    return rep
