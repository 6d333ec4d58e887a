"""The controls section every report carries: where each stored median score stands between its null and
its ceiling (``saes.controls``), read from the atlas's res SAE nodes.

Null: top-1 cosines of res(L) against a randomly rotated copy of the predecessor decoder (stored at
ingest per pair). Ceiling: top-1 cosines of res(L) against an SAE of the same hook point trained with
another seed (``atlas train --seeds 2``; stored as ``ceiling_*`` on the SAE node where one was trained).
Position = (score − null median) / (ceiling median − null median): 0 at chance, 1 at the seed ceiling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from experiments.report import md_table
from queries.categories import RES_CONTROLS
from saes.controls import ScoreSummary, position

if TYPE_CHECKING:
    from queries.db import Graph

PREDECESSORS = {"res": "res(L-1)", "att": "att(L)", "mlp": "mlp(L)"}


def controls_rows(graph: Graph, atlas: str) -> list[dict[str, Any]]:
    """One row per (res layer, predecessor) with a stored score: median, null, ceiling and position."""
    out = []
    for r in graph.read(RES_CONTROLS, {"atlas": atlas}):
        p = r["props"]
        ceiling = p.get("ceiling_median")
        for pred in PREDECESSORS:
            score = p.get(f"{pred}_score_median")
            if score is None:
                continue
            null_med = p.get(f"{pred}_null_median")
            null = (
                ScoreSummary(float(null_med), p.get(f"{pred}_null_p99") or 0.0, p.get(f"{pred}_null_p999") or 0.0, 0)
                if null_med is not None
                else None
            )
            out.append(
                {
                    "layer": int(r["layer"]),
                    "predecessor": pred,
                    "score_median": float(score),
                    "null_median": null_med,
                    "null_p999": p.get(f"{pred}_null_p999"),
                    "ceiling_median": ceiling,
                    "ceiling_p99": p.get("ceiling_p99"),
                    "ceiling_share_ge_half": p.get("ceiling_share_ge_half"),
                    "ceiling_seed": p.get("ceiling_seed"),
                    "position": position(float(score), null, ceiling) if null is not None else None,
                    "cut": p.get(f"cut_{pred}"),
                    "category_rule": p.get("category_rule"),
                }
            )
    return out


def controls_section(graph: Graph | None, atlas: str) -> tuple[dict[str, Any], str]:
    """``(data, markdown)`` of the controls section; says so when the graph could not be read."""
    if graph is None:
        return {
            "rows": [],
            "note": "not read (Neo4j not reachable)",
        }, "## Controls\n\nNot read: Neo4j was not reachable."
    rows = controls_rows(graph, atlas)
    has_ceiling = any(r["ceiling_median"] is not None for r in rows)
    data = {"rows": rows, "ceiling": "trained" if has_ceiling else "no ceiling trained"}
    if not rows:
        return data, "## Controls\n\nNo stored scores on the res SAE nodes (re-ingest the atlas to store its nulls)."
    table = md_table(
        ["layer", "score", "median", "null median", "null p99.9", "ceiling median", "position (0 null, 1 ceiling)"],
        [
            [
                r["layer"],
                f"s({PREDECESSORS[r['predecessor']]})",
                r["score_median"],
                r["null_median"],
                r["null_p999"],
                r["ceiling_median"] if r["ceiling_median"] is not None else "no ceiling trained",
                r["position"],
            ]
            for r in rows
        ],
    )
    note = (
        "Ceiling: res(L) against an SAE of the same hook point trained with another seed "
        "(`atlas train --seeds 2`); position = (median − null median) / (ceiling median − null median)."
        if has_ceiling
        else "**No ceiling trained** for this atlas (`atlas train --seeds 2` trains one): each median is placed "
        "against its null only."
    )
    md = (
        "## Controls: each median top-1 score between its null and its ceiling\n\n"
        "Null: top-1 cosine against a randomly rotated copy of the predecessor decoder (same spectrum, no shared "
        f"directions), stored at ingest per SAE pair. {note}\n\n{table}"
    )
    return data, md
