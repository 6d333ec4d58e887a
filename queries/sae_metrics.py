"""Quality metrics of trained SAEs on their ``(:SAE)`` nodes: held-out explained variance, L0, dead fraction."""

from __future__ import annotations

from typing import Any, LiteralString

from queries.db import Graph
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
