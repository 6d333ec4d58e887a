"""Category reports read from the graph (no model, no decoders): the stored top-1 scores re-cut under two
rules in Cypher (``queries.categories``).

- ``thresholds``: per layer, the categories under the paper's fixed cuts (s_res ≥ 0.5, module ≥ 0.25) and
  under the null rule (each SAE pair's cut at its null's 99.9th percentile), how many features reach each
  predecessor's cut under each rule, and the fixed → null transition table.
- ``transitions`` (the paper's Fig. 13 asks the same question of groups): a res(L) feature's category
  against the category of its top-1 forward successor in res(L+1) (the ``FLOWS_TO`` edge with
  ``source_rank`` 0), counts and row shares with each row's n, under both rules. The reference a row is
  read against is the successors' marginal share (what the row would be if categories did not persist).

Every feature of a layer is one unit; counts are exact (no sampling), so no intervals: the figures are
descriptive of this atlas, and a different training seed would move them by the seed-ceiling gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from experiments.report import Report, md_table, new_figure
from queries.atlases import atlas_info, known_atlases
from queries.categories import RES_CONTROLS, RULE_TRANSITIONS, SUCCESSOR_TRANSITIONS, cut_params, stored_cuts
from queries.domain import CATEGORIES, CATEGORY_MODULE_CUT, NO_CATEGORY, RESIDUAL_CUT
from queries.errors import AtlasNotFound, InvalidInput

if TYPE_CHECKING:
    from queries.db import Graph

ROWS = (*CATEGORIES, NO_CATEGORY)


@dataclass(frozen=True)
class Rule:
    """A category rule: the fixed cuts, or ``null:Q`` (each pair's stored null quantile)."""

    null_quantile: float | None = None
    t_res: float = RESIDUAL_CUT
    t_mod: float = CATEGORY_MODULE_CUT

    @property
    def name(self) -> str:
        return (
            f"null:{self.null_quantile:g}" if self.null_quantile is not None else f"fixed:{self.t_res:g}/{self.t_mod:g}"
        )

    def cuts(self, controls: dict[str, Any] | None) -> dict[str, float]:
        return stored_cuts(controls, self.t_res, self.t_mod, self.null_quantile)


FIXED, NULL = Rule(), Rule(null_quantile=0.999)


def parse_rule(text: str) -> Rule:
    """``null:0.999`` / ``null:0.99`` (the quantiles stored at ingest) or ``fixed``."""
    t = text.strip().lower()
    if t == "fixed":
        return FIXED
    if t.startswith("null:"):
        try:
            q = float(t[5:])
        except ValueError:
            q = float("nan")
        if q in (0.99, 0.999):
            return Rule(null_quantile=q)
    raise InvalidInput(f"rule {text!r} is not valid (use null:0.999 or null:0.99, the null quantiles stored at ingest)")


def _atlas(graph: Graph, atlas: str) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    info = atlas_info(graph, atlas)
    if info is None:
        raise AtlasNotFound(atlas, known_atlases(graph))
    if not info.get("complete"):
        raise InvalidInput(
            f"atlas {atlas!r} is not completely ingested; finish it with `atlas ingest <atlas.toml> --resume`"
        )
    controls = {
        int(r["layer"]): {"layer": r["layer"], **r["props"]} for r in graph.read(RES_CONTROLS, {"atlas": atlas})
    }
    return info, controls


def _matrix(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    m = {a: dict.fromkeys(ROWS, 0) for a in ROWS}
    for r in rows:
        m[r["a"] or NO_CATEGORY][r["b"] or NO_CATEGORY] += int(r["n"])
    return m


def _add(into: dict[str, dict[str, int]], m: dict[str, dict[str, int]]) -> None:
    for a, row in m.items():
        for b, n in row.items():
            into[a][b] += n


def row_shares(m: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    """Each row normalised, with its n; plus the column marginal (the row expected without persistence)."""
    out: dict[str, dict[str, Any]] = {}
    for a, row in m.items():
        n = sum(row.values())
        out[a] = {"n": n, **{b: (v / n if n else None) for b, v in row.items()}}
    total = sum(sum(r.values()) for r in m.values())
    out["all (marginal)"] = {"n": total, **{b: (sum(m[a][b] for a in m) / total if total else None) for b in ROWS}}
    return out


def _matrix_md(m: dict[str, dict[str, int]], label_a: str, label_b: str, shares: bool) -> str:
    rows = [r for r in ROWS if sum(m[r].values())]
    cols = [c for c in ROWS if any(m[r][c] for r in ROWS)]
    if shares:
        sh = row_shares(m)
        body = [[a, sh[a]["n"], *[sh[a][c] for c in cols]] for a in [*rows, "all (marginal)"]]
        return md_table([f"{label_a} ↓ / {label_b} →", "n", *cols], body)
    body = [[a, *[m[a][c] for c in cols], sum(m[a].values())] for a in rows]
    return md_table([f"{label_a} ↓ / {label_b} →", *cols, "n"], body)


def thresholds(graph: Graph, atlas: str, rule_b: Rule = NULL, meta: dict[str, Any] | None = None) -> Report:
    """Categories under the fixed rule vs ``rule_b``, per layer and pooled, with the transition table."""
    info, controls = _atlas(graph, atlas)
    rep = Report(
        "thresholds",
        f"Categories under the fixed cuts vs {rule_b.name} — {atlas}",
        {"atlas": atlas, "model": info.get("model"), **(meta or {})},
    )
    per_layer = []
    pooled = {a: dict.fromkeys(ROWS, 0) for a in ROWS}
    for layer in info["layers"]:
        a, b = FIXED.cuts(controls.get(layer)), rule_b.cuts(controls.get(layer))
        rows = graph.read(RULE_TRANSITIONS, {"atlas": atlas, "layer": layer, **cut_params(a, b)}, timeout=600)
        m = _matrix(rows)
        _add(pooled, m)
        reach = {f"{p}_{r}": sum(int(x[f"{p}_{r}"]) for x in rows) for p in ("res", "att", "mlp") for r in "ab"}
        per_layer.append(
            {
                "layer": layer,
                "n": sum(int(x["n"]) for x in rows),
                "cuts_fixed": a,
                "cuts_b": {p: (v if v < 2.0 else None) for p, v in b.items()},
                "fixed": {c: sum(m[c].values()) for c in ROWS},
                "b": {c: sum(m[x][c] for x in ROWS) for c in ROWS},
                "reach_fixed": {p: reach[f"{p}_a"] for p in ("res", "att", "mlp")},
                "reach_b": {p: reach[f"{p}_b"] for p in ("res", "att", "mlp")},
                "transitions": m,
            }
        )
    rep.data = {"rule_a": FIXED.name, "rule_b": rule_b.name, "layers": per_layer, "pooled_transitions": pooled}
    rep.add(
        f"Every res feature's stored top-1 scores (s_res against res(L-1), s_att against att(L), s_mlp against mlp(L)) "
        f"are cut two ways: **{FIXED.name}** (the paper's t_R = 0.5 and module cut 0.25, the same for every layer) and "
        f"**{rule_b.name}** (each SAE pair's cut at the {rule_b.null_quantile} quantile of its null: top-1 cosines "
        "against a randomly rotated copy of the predecessor decoder, stored at ingest). A module is high when its own "
        "score reaches its own cut. Counts are exact over all features of each layer (no sampling); layers without a "
        "res(L-1) SAE have no category (`none`)."
    )
    rep.add(
        "## Cuts per layer\n\n"
        + md_table(
            ["layer", "n features", "fixed res / att / mlp", f"{rule_b.name} res / att / mlp"],
            [
                [
                    d["layer"],
                    d["n"],
                    " / ".join(f"{d['cuts_fixed'][p]:.2f}" for p in ("res", "att", "mlp")),
                    " / ".join(
                        "absent" if d["cuts_b"][p] is None else f"{d['cuts_b'][p]:.3f}" for p in ("res", "att", "mlp")
                    ),
                ]
                for d in per_layer
            ],
        )
    )
    rep.add(
        "## Features reaching each predecessor's cut (per layer and module)\n\n"
        + md_table(
            [
                "layer",
                "n",
                "res fixed",
                f"res {rule_b.name}",
                "att fixed",
                f"att {rule_b.name}",
                "mlp fixed",
                f"mlp {rule_b.name}",
            ],
            [
                [
                    d["layer"],
                    d["n"],
                    *[x for p in ("res", "att", "mlp") for x in (d["reach_fixed"][p], d["reach_b"][p])],
                ]
                for d in per_layer
            ],
        )
    )
    rep.add(
        "## Categories per layer (counts of n features)\n\n"
        + md_table(
            ["layer", "n", *[f"{c} fixed / {rule_b.name}" for c in CATEGORIES], "none"],
            [
                [d["layer"], d["n"], *[f"{d['fixed'][c]} / {d['b'][c]}" for c in CATEGORIES], d["fixed"][NO_CATEGORY]]
                for d in per_layer
            ],
        )
    )
    rep.add(
        f"## Transitions fixed → {rule_b.name}, pooled over layers (counts)\n\n"
        + _matrix_md(pooled, "fixed", rule_b.name, shares=False)
        + f"\n\nRow shares (each row's n features; the last row is the {rule_b.name} distribution over all features):\n\n"
        + _matrix_md(pooled, "fixed", rule_b.name, shares=True)
    )
    fig, ax = new_figure(8, 3.6)
    import numpy as np

    x = np.arange(len(per_layer))
    for k, c in enumerate(CATEGORIES):
        ax[0, 0].bar(x - 0.3 + 0.15 * k, [d["fixed"][c] for d in per_layer], 0.14, label=f"{c} fixed", alpha=0.45)
        ax[0, 0].bar(x - 0.3 + 0.15 * k, [d["b"][c] for d in per_layer], 0.07, label=f"{c} {rule_b.name}")
    ax[0, 0].set_xticks(x, [str(d["layer"]) for d in per_layer])
    ax[0, 0].set_xlabel("layer")
    ax[0, 0].set_ylabel("res features")
    ax[0, 0].legend(fontsize=6, ncol=2)
    rep.figure("per-layer", fig, f"Categories per layer: fixed cuts (wide, pale) vs {rule_b.name} (narrow).")
    return rep


def transitions(
    graph: Graph, atlas: str, rules: tuple[Rule, ...] = (FIXED, NULL), meta: dict[str, Any] | None = None
) -> Report:
    """Category of a res(L) feature vs its top-1 res(L+1) successor's, per layer pair and pooled, per rule."""
    info, controls = _atlas(graph, atlas)
    rep = Report(
        "transitions",
        f"Category transitions between consecutive layers — {atlas}",
        {"atlas": atlas, "model": info.get("model"), **(meta or {})},
    )
    layers = list(info["layers"])
    pairs = [(L, L + 1) for L in layers if L + 1 in layers]
    out: dict[str, Any] = {"pairs": [list(p) for p in pairs], "rules": {}}
    rep.add(
        "For every res(L) feature, its top-1 forward successor is the res(L+1) feature its decoder direction is most "
        "similar to (the `FLOWS_TO` edge with `source_rank` 0; every feature has one). The table counts (category at L, "
        "category of that successor at L+1), pooled over consecutive layer pairs; row shares carry each row's n, and "
        "the last row (all sources) is the reference: a row equal to it means the category does not persist along the "
        "top-1 link. The paper's Fig. 13 asks the same question of activation *groups* across contexts; this one is "
        "the decoder-side analogue. Counts are exact over all features (no sampling, no intervals)."
    )
    for rule in rules:
        pooled = {a: dict.fromkeys(ROWS, 0) for a in ROWS}
        per_pair = []
        for L, nxt in pairs:
            a, b = rule.cuts(controls.get(L)), rule.cuts(controls.get(nxt))
            rows = graph.read(
                SUCCESSOR_TRANSITIONS, {"atlas": atlas, "layer": L, "next": nxt, **cut_params(a, b)}, timeout=600
            )
            m = _matrix(rows)
            _add(pooled, m)
            per_pair.append({"layer": L, "next": nxt, "transitions": m, "n": sum(int(r["n"]) for r in rows)})
        stay = sum(pooled[c][c] for c in CATEGORIES)
        cat_n = sum(sum(pooled[c][x] for x in CATEGORIES) for c in CATEGORIES)
        shares = row_shares(pooled)
        # the same-category share expected if the successor's category were independent of the source's
        rmarg = {c: sum(pooled[c][x] for x in CATEGORIES) / max(1, cat_n) for c in CATEGORIES}
        cmarg = {c: sum(pooled[x][c] for x in CATEGORIES) / max(1, cat_n) for c in CATEGORIES}
        exp_stay = sum(rmarg[c] * cmarg[c] for c in CATEGORIES)
        out["rules"][rule.name] = {
            "per_pair": per_pair,
            "pooled": pooled,
            "row_shares": shares,
            "same_category": {"k": stay, "n": cat_n, "share": stay / cat_n if cat_n else None},
            "same_category_expected_if_independent": exp_stay,
        }
        rep.add(
            f"## Rule {rule.name}\n\nCounts, pooled over {len(pairs)} layer pairs "
            f"({', '.join(f'{a}→{b}' for a, b in pairs)}):\n\n"
            + _matrix_md(pooled, "category at L", "successor at L+1", shares=False)
            + "\n\nRow shares:\n\n"
            + _matrix_md(pooled, "category at L", "successor at L+1", shares=True)
            + f"\n\nSame category at L and L+1: {stay} of {cat_n} categorised pairs"
            + (
                f" ({stay / cat_n:.1%}); {exp_stay:.1%} expected if the successor's category were independent of the source's."
                if cat_n
                else "."
            )
        )
    rep.data = out
    return rep
