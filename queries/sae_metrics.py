"""Quality metrics of trained SAEs on their ``(:SAE)`` nodes: held-out explained variance, L0, dead fraction."""

from __future__ import annotations

from typing import Any, LiteralString

from queries.db import Graph
from queries.domain import RESIDUAL_CUT
from queries.schema import NO_CATEGORY

# rows: [{key, explained_variance, l0, dead_fraction, heldout_tokens, train_tokens}]
SET_SAE_METRICS: LiteralString = (
    "UNWIND $rows AS row "
    "MATCH (s:SAE {key: row.key}) "
    "SET s.explained_variance = row.explained_variance, s.l0 = row.l0, s.dead_fraction = row.dead_fraction, "
    "s.heldout_tokens = row.heldout_tokens, s.train_tokens = row.train_tokens "
    "RETURN count(s) AS n"
)

GET_SAE_METRICS: LiteralString = (
    "MATCH (s:SAE {atlas: $atlas}) "
    "RETURN s.key AS key, s.layer AS layer, s.module AS module, s.explained_variance AS explained_variance, "
    "s.l0 AS l0, s.dead_fraction AS dead_fraction ORDER BY s.layer, s.module"
)

# Category shares of res features per layer (the paper's Fig. 5 view, by the ingest's categories).
CATEGORY_SHARES: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas, module: 'res'}) "
    "WITH f.layer AS layer, coalesce(f.category, $none) AS category, count(*) AS n "
    "RETURN layer, category, n ORDER BY layer, category"
)


def set_sae_metrics(graph: Graph, rows: list[dict[str, Any]]) -> int:
    """Write metrics onto existing SAE nodes; returns how many nodes were updated."""
    if not rows:
        return 0
    out = graph.write(SET_SAE_METRICS, {"rows": rows})
    return int(out[0]["n"]) if out else 0


def get_sae_metrics(graph: Graph, atlas: str) -> list[dict[str, Any]]:
    return graph.read(GET_SAE_METRICS, {"atlas": atlas})


def category_shares(graph: Graph, atlas: str) -> dict[int, dict[str, float]]:
    """``{layer: {category: share}}`` over the res features of ``atlas`` (``NO_CATEGORY`` where the layer has
    no ``res(L-1)`` SAE)."""
    counts: dict[int, dict[str, int]] = {}
    for r in graph.read(CATEGORY_SHARES, {"atlas": atlas, "none": NO_CATEGORY}):
        counts.setdefault(int(r["layer"]), {})[str(r["category"])] = int(r["n"])
    return {layer: {c: n / sum(cs.values()) for c, n in cs.items()} for layer, cs in counts.items()}


# Per layer, which predecessor explains each res feature best by top-1 cosine (s_res / s_att / s_mlp).
ORIGIN_SHARES: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas, module: 'res'}) "
    "WITH f.layer AS layer, coalesce(f.s_res, -1.0) AS r, coalesce(f.s_att, -1.0) AS a, coalesce(f.s_mlp, -1.0) AS m "
    "WHERE r > -1.0 OR a > -1.0 OR m > -1.0 "
    "WITH layer, CASE WHEN r >= a AND r >= m THEN 'res' WHEN a >= m THEN 'att' ELSE 'mlp' END AS origin "
    "RETURN layer, origin, count(*) AS n ORDER BY layer, origin"
)

# A res feature with a long residual lineage and a label: the demo's example seed.
EXAMPLE_SEED: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas, module: 'res', layer: $layer}) "
    "WHERE f.label IS NOT NULL AND f.label <> '' AND f.s_res IS NOT NULL "
    "RETURN f.uid AS uid, f.label AS label ORDER BY f.s_res DESC, f.frequency DESC LIMIT 1"
)


def origin_shares(graph: Graph, atlas: str) -> dict[int, dict[str, float]]:
    """``{layer: {res|att|mlp: share}}``: the best-matching predecessor module of each res feature."""
    counts: dict[int, dict[str, int]] = {}
    for r in graph.read(ORIGIN_SHARES, {"atlas": atlas}):
        counts.setdefault(int(r["layer"]), {})[str(r["origin"])] = int(r["n"])
    return {layer: {c: n / sum(cs.values()) for c, n in cs.items()} for layer, cs in counts.items()}


def example_seed(graph: Graph, atlas: str, layer: int) -> dict[str, Any] | None:
    rows = graph.read(EXAMPLE_SEED, {"atlas": atlas, "layer": layer})
    return rows[0] if rows else None


# Per layer, how much of the res features really flow, read against the controls stored at ingest: the share
# with s_res at or above the residual cut, and the share whose best module score (s_att or s_mlp) beats that
# module pair's null 99.9th percentile (a random rotation of the module decoder; saes.controls).
FLOW_SHARES: LiteralString = (
    "MATCH (:Atlas {name: $atlas})-[:HAS_SAE]->(s:SAE {module: 'res'}) "
    "MATCH (f:Feature {atlas: $atlas, module: 'res', layer: s.layer}) "
    "WITH s, f, (s.att_null_p999 IS NOT NULL AND f.s_att > s.att_null_p999) "
    "OR (s.mlp_null_p999 IS NOT NULL AND f.s_mlp > s.mlp_null_p999) AS module_above "
    "RETURN s.layer AS layer, count(f) AS n, count(f.s_res) AS n_with_s_res, "
    "sum(CASE WHEN f.s_res >= $cut THEN 1 ELSE 0 END) AS n_s_res_ge_cut, "
    "percentileCont(f.s_res, 0.5) AS median_s_res, "
    "sum(CASE WHEN module_above THEN 1 ELSE 0 END) AS n_module_above_null, "
    "s.res_null_median AS res_null_median, s.res_null_p999 AS res_null_p999, "
    "s.att_null_p999 AS att_null_p999, s.mlp_null_p999 AS mlp_null_p999, "
    "s.ceiling_median AS ceiling_median, s.ceiling_share_ge_half AS ceiling_share_ge_half "
    "ORDER BY layer"
)


def flow_shares(graph: Graph, atlas: str, cut: float = RESIDUAL_CUT) -> list[dict[str, Any]]:
    """Per res layer: ``n`` features, how many reach ``s_res ≥ cut`` (of those with an ``s_res``: layers without
    a res(L-1) SAE have none), how many have a module score above its null's 99.9th percentile, and the
    controls (null median / 99.9th percentile of s_res, the seed ceiling where one was trained)."""
    return graph.read(FLOW_SHARES, {"atlas": atlas, "cut": cut})


def pooled_flow(rows: list[dict[str, Any]], layers: list[int]) -> dict[str, Any]:
    """The flow shares pooled over ``layers`` (each share with its denominator)."""
    pick = [r for r in rows if r["layer"] in layers]
    n_res = sum(int(r["n_with_s_res"]) for r in pick)
    n = sum(int(r["n"]) for r in pick)
    return {
        "layers": [r["layer"] for r in pick],
        "n_features": n,
        "n_with_s_res": n_res,
        "share_s_res_ge_cut": sum(int(r["n_s_res_ge_cut"]) for r in pick) / n_res if n_res else None,
        "share_module_above_null": sum(int(r["n_module_above_null"]) for r in pick) / n if n else None,
    }
