"""Experiment 2's run and report: :func:`run` measures (experiments.deactivation) and builds the tables, figure
and comparison; :func:`rebuild` gives the same report re-aggregated from an earlier run's stored records."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments.context import AtlasContext
from experiments.deactivation import (
    METHOD_NAMES,
    METHODS,
    PAPER_TABLE1,
    DeactivationSettings,
    aggregate,
    measure,
)
from experiments.report import Report, md_table, new_figure, run_meta
from experiments.stats import GROUPS, SHORT_GROUPS


def run(
    ctx: AtlasContext,
    windows: list[list[int]],
    calib: list[list[int]],
    settings: DeactivationSettings,
    *,
    meta: dict[str, Any] | None = None,
) -> Report:
    started = time.time()
    result = measure(ctx, windows, calib, settings)
    m = result["metrics"]
    report = Report(
        name="deactivation",
        title="Deactivation of matched predecessors (paper §4.2, Table 1)",
        meta={
            **run_meta(ctx.name, ctx.model.name, windows, settings.tokens_per_text),
            "layers": result["settings"]["layers"],
            "layer_token_sites": result["n_sites"],
            "targets": m["n_targets"],
            "forward_rows": result["n_rows"],
            "pearson_calibration_tokens": result["pearson_calibration_tokens"],
            "interval_unit": "texts (bootstrap)",
            "r": settings.r,
            "seed": settings.seed,
            **(meta or {}),
        },
        started=started,
    )
    return build_report(report, result, settings.r)


def rebuild(json_path: Path, *, note: str) -> Report:
    """The report of an earlier run re-aggregated from its stored per-target records (no model run): the
    statistics of this version (denominators, bootstrap over texts) on the same measurements. ``meta``
    keeps the original run's and adds ``reaggregated`` with ``note``."""
    import json

    data = json.loads(Path(json_path).read_text())
    result = data["results"]
    result.setdefault("pearson_calibration_tokens", data["meta"].get("pearson_calibration_tokens", 0))
    if "pearson_tokens" not in result.get("settings", {}):  # runs before the fix calibrated on every position
        result.setdefault(
            "pearson_calibration",
            f"{result['pearson_calibration_tokens']:,} tokens including position 0 (the earlier protocol)",
        )
    result["metrics"] = aggregate(result["records"], seed=int(data["meta"].get("seed", 0)))
    meta = {k: v for k, v in data["meta"].items() if k != "wall_time_s"} | {
        "measured_wall_time_s": data["meta"].get("wall_time_s")
    }
    report = Report(
        name="deactivation",
        title="Deactivation of matched predecessors (paper §4.2, Table 1)",
        meta={**meta, "reaggregated": note},
        started=time.time(),
    )
    return build_report(report, result, float(data["meta"].get("r", 0.0)))


def build_report(report: Report, result: dict[str, Any], r: float) -> Report:
    """Tables, figure and comparison of a deactivation result (from :func:`measure` or stored records)."""
    m = result["metrics"]
    if report.meta.get("reaggregated"):
        report.add(
            f"**Re-aggregated** from the stored per-target records of an earlier run: {report.meta['reaggregated']}"
        )
    report.data = result
    rows = []
    for meth in METHODS:
        o = m["overall"][meth]
        paper = PAPER_TABLE1.get(meth)
        rows.append(
            [
                METHOD_NAMES[meth],
                _ci(o["activation_change"]),
                _ci(o["success"], pct=True),
                f"{o['n_with_removal']} / {o['n_targets']}",
                _ci(o["success_all_targets"], pct=True),
                o["mean_removed"],
                f"{paper[0]:.2f}" if paper else "–",
                f"{paper[1]:.0%}" if paper else "–",
            ]
        )
    report.add(
        f"## Table 1 on this atlas\n\n{m['n_targets']} target features over {result['n_sites']} (layer, token) sites in "
        f"{m['n_texts']} texts; r = {r}. **Success** and **activation change** are over the targets for which the method "
        "removed at least one active feature (the paper's denominator: an empty removal cannot switch a target off); the "
        "*n* column is that denominator out of all targets, and *success / all targets* divides the same successes by every "
        f"target. Intervals: {m['interval_method']} — targets that share a text or a token are not independent."
    )
    report.add(
        md_table(
            [
                "Method",
                "Mean activation change",
                "Success",
                "n (had something to remove / all)",
                "Success / all targets",
                "Features removed (mean)",
                "Paper: change",
                "Paper: success",
            ],
            rows,
        )
    )
    pc = m["top1_vs_random"]
    if pc["n_targets"]:
        ratio = pc["ratio"]
        report.add(
            f"Paired, on the {pc['n_targets']} targets where both removed something: top-1 {_ci(pc['top1'], pct=True)} vs random of "
            f"top-5 {_ci(pc['random_top5'], pct=True)}; difference {_ci(pc['difference'], pct=True)}"
            + (f", ratio {ratio['estimate']:.1f}× [{ratio['low']:.1f}, {ratio['high']:.1f}]." if ratio else ".")
        )
    pp = m["top1_vs_pearson"]
    if pp["n_targets"]:
        report.add(
            f"Paired, on the {pp['n_targets']} targets where both removed something: top-1 cosine {_ci(pp['top1'], pct=True)} vs top-1 "
            f"Pearson {_ci(pp['pearson'], pct=True)}; difference {_ci(pp['difference'], pct=True)}. Pearson matches come from "
            f"{_calib(result)} (the paper: 100K tokens)."
        )
    if m["exhaustive_best_is_top1"] is not None:
        report.add(
            f"The best single predecessor found by exhaustive search is the cosine top-1 match in {m['exhaustive_best_is_top1']:.0%} of "
            f"{m['overall']['exhaustive']['n_with_removal']} targets."
        )
    report.add(
        f"Check: re-running with nothing removed reproduces the clean activation to within {m['rerun_max_abs_error']:.2g}."
    )
    # by group (Fig. 6)
    groups = list(m["by_group"])
    fig, ax = new_figure(9, 4)
    a = ax[0][0]
    width = 0.8 / len(METHODS)
    for k, meth in enumerate(METHODS):
        vals = [m["by_group"][g][meth]["success"] for g in groups]
        est = [v["estimate"] if v["n"] else 0 for v in vals]
        err = np.array([[_half(v, "low") for v in vals], [_half(v, "high") for v in vals]])
        a.bar(np.arange(len(groups)) + k * width, est, width, yerr=err, label=METHOD_NAMES[meth], capsize=2)
    a.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, [SHORT_GROUPS[GROUPS.index(g)] for g in groups])
    a.set_ylabel("success (targets with a removal)")
    a.set_ylim(0, 1)
    a.legend(fontsize=7)
    report.figure(
        "success-by-group",
        fig,
        "Deactivation success by group and method over targets with something removed; 95% bootstrap-over-texts "
        "intervals (cf. the paper's Fig. 6)",
    )
    grow = [
        [g, m["by_group"][g]["top1"]["n_targets"], *[_ci_n(m["by_group"][g][meth]) for meth in METHODS]] for g in groups
    ]
    report.add(
        "## By group\n\nSuccess over the targets with something removed (n after each rate).\n\n"
        + md_table(["Group", "Targets", *[METHOD_NAMES[x] for x in METHODS]], grow)
    )
    lrow = [[L, v["top1"]["n_targets"], *[_ci_n(v[meth]) for meth in METHODS]] for L, v in m["by_layer"].items()]
    report.add("## By layer\n\n" + md_table(["Layer", "Targets", *[METHOD_NAMES[x] for x in METHODS]], lrow))
    report.add(_comparison(m, _calib(result)))
    return report


def _calib(result: dict[str, Any]) -> str:
    return str(result.get("pearson_calibration") or f"{result['pearson_calibration_tokens']:,} tokens")


def _half(v: dict[str, Any], side: str) -> float:
    if not v["n"] or v[side] is None or not np.isfinite(v[side]):
        return 0.0
    return max(0.0, (v["estimate"] - v["low"]) if side == "low" else (v["high"] - v["estimate"]))


def _ci_n(entry: dict[str, Any]) -> str:
    return f"{_ci(entry['success'], pct=True)} (n={entry['n_with_removal']})"


def _ci(d: dict[str, Any], pct: bool = False) -> str:
    if not d or d["n"] == 0 or d["estimate"] is None:
        return "n/a"
    lo, hi, e = d["low"], d["high"], d["estimate"]
    if lo is None or not np.isfinite(lo):
        return f"{100 * e:.0f}%" if pct else f"{e:.2f}"
    return f"{100 * e:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]" if pct else f"{e:.2f} [{lo:.2f}, {hi:.2f}]"


def _comparison(m: dict[str, Any], calib: str) -> str:
    o = m["overall"]
    lines = ["## Compared with the paper"]
    s = {k: o[k]["success"] for k in METHODS}
    pc = m["top1_vs_random"]
    if s["top1"]["n"] and pc["n_targets"] and pc["ratio"]:
        d = pc["difference"]
        verdict = (
            "as in the paper" if d["low"] > 0 else "**not separated here**: the interval of the difference includes 0"
        )
        lines.append(
            f"- Top-1 vs random of top-5 (paired, {pc['n_targets']} targets where both removed something): {_ci(pc['top1'], pct=True)} vs "
            f"{_ci(pc['random_top5'], pct=True)}, {pc['ratio']['estimate']:.1f}× [{pc['ratio']['low']:.1f}, {pc['ratio']['high']:.1f}] "
            f"({verdict}; paper: random clearly worse, Fig. 6)."
        )
        p_top1 = PAPER_TABLE1["top1"][1]
        inside = s["top1"]["low"] <= p_top1 <= s["top1"]["high"]
        lines.append(
            f"- Top-1 success {_ci(s['top1'], pct=True)} (n={s['top1']['n']}) vs the paper's 65%: "
            + (
                "the paper's value is inside our interval."
                if inside
                else "**differs** (the paper's value is outside our interval)."
            )
        )
        lines.append(
            f"- Top-1 Pearson: {_ci(s['pearson'], pct=True)} (n={s['pearson']['n']}; paper: 65%, equal to cosine). Exhaustive: "
            f"{_ci(s['exhaustive'], pct=True)} (n={s['exhaustive']['n']}; paper: 73%)."
        )
    lines.append(
        "- Differences in protocol: the model and SAEs are this atlas's (the paper: Gemma-2-2B, Gemma Scope JumpReLU SAEs + the "
        "authors' attention SAEs); with TopK SAEs a target also switches off when others push it out of the top k. Top-1 removes "
        "every active cosine top-1 predecessor (one per module), while exhaustive removes one single feature, so exhaustive is "
        f"not an upper bound on top-1 here. Pearson matches come from {calib} (the paper: 100K tokens)."
    )
    return "\n".join(lines)
