"""Per-feature page data (training.feature_pages) on the graph, and the atlas's largest lineages.

Storage: one string property ``page`` per Feature node, the compact JSON the API parses and serves (density,
activation histogram, top and quantile examples with per-token activations, logit lens). Why Neo4j and one
string: a page is a few kB (bench/results/dashboard.json ``bytes_per_feature``); read replicas copy an atlas by
dump/load, so data beside the graph would need a second copy path; Neo4j keeps strings this long in its dynamic
string store, which no other read touches (``FEATURE_MAP`` never names ``page``, and there is no index on it).

Per SAE, ``density_edges``/``density_counts``/``density_dead``: the histogram of log10 firing density over its
features. On the Atlas, ``entry_points``: JSON of its largest lineages (see :func:`largest_lineages`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, LiteralString

from queries.db import Graph
from queries.domain import MODULE_CUT, RESIDUAL_CUT

# rows: [{uid, page}]
SET_FEATURE_PAGES: LiteralString = "UNWIND $rows AS row MATCH (f:Feature {uid: row.uid}) SET f.page = row.page"

# rows: [{key, edges, counts, dead}]
SET_SAE_DENSITY: LiteralString = (
    "UNWIND $rows AS row MATCH (s:SAE {key: row.key}) "
    "SET s.density_edges = row.edges, s.density_counts = row.counts, s.density_dead = row.dead"
)

PAGES_BY_UID: LiteralString = "UNWIND $uids AS uid MATCH (f:Feature {uid: uid}) RETURN uid AS key, f.page AS page"

COUNT_PAGED: LiteralString = "MATCH (f:Feature {atlas: $atlas}) WHERE f.page IS NOT NULL RETURN count(f) AS n"

PAGE_BYTES: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas}) WHERE f.page IS NOT NULL "
    "RETURN count(f) AS n, sum(size(f.page)) AS chars, sum(size(f.page)) / toFloat(count(f)) AS mean_chars"
)

# The top-1 links into every res feature of an atlas (the residual chain and the module leaves).
TOP1_LINKS: LiteralString = (
    "MATCH (s:Feature {atlas: $atlas})-[r:FLOWS_TO]->(t:Feature {atlas: $atlas, module: 'res'}) "
    "WHERE coalesce(r.target_rank, 0) = 0 "
    "RETURN s.uid AS source, s.module AS source_module, t.uid AS target, t.layer AS layer, r.similarity AS similarity"
)
RES_FEATURES: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas, module: 'res'}) RETURN f.uid AS uid, f.layer AS layer ORDER BY layer"
)
SET_ENTRY_POINTS: LiteralString = (
    "MATCH (a:Atlas {name: $atlas}) SET a.entry_points = $entry_points RETURN a.name AS name"
)
GET_ENTRY_POINTS: LiteralString = "MATCH (a:Atlas {name: $atlas}) RETURN a.entry_points AS entry_points"


def store_pages(graph: Graph, rows: list[dict[str, Any]], *, batch_size: int = 500) -> int:
    """``rows``: ``[{uid, page}]`` with ``page`` the JSON string; returns nodes sent."""
    return graph.write_batches(SET_FEATURE_PAGES, iter(rows), batch_size=batch_size, timeout=300)


def store_sae_density(graph: Graph, rows: list[dict[str, Any]]) -> None:
    if rows:
        graph.write(SET_SAE_DENSITY, {"rows": rows})


def count_paged(graph: Graph, atlas: str) -> int:
    rows = graph.read(COUNT_PAGED, {"atlas": atlas})
    return int(rows[0]["n"]) if rows else 0


def page_bytes(graph: Graph, atlas: str) -> dict[str, Any]:
    """How many features carry a page and its mean size in characters (≈ bytes: the JSON is mostly ASCII)."""
    rows = graph.read(PAGE_BYTES, {"atlas": atlas})
    return rows[0] if rows else {"n": 0, "chars": 0, "mean_chars": None}


def largest_lineages(
    res_features: list[dict[str, Any]],
    links: list[dict[str, Any]],
    *,
    limit: int = 10,
    residual_cut: float = RESIDUAL_CUT,
    module_cut: float = MODULE_CUT,
) -> list[dict[str, Any]]:
    """The res features with the largest upstream flow graphs at the paper's cuts, largest first.

    ``size`` = 1 + the size of its top-1 res(L-1) predecessor's graph when that link is ≥ ``residual_cut`` +
    its top-1 att/mlp predecessors ≥ ``module_cut`` (the graph ``lineage(UPSTREAM)`` draws with topK 1);
    ``length`` = the residual layers of its chain. Ties: longer chain, then uid."""
    res_pred: dict[str, tuple[str, float]] = {}
    modules: dict[str, int] = defaultdict(int)
    for r in links:
        if r["source_module"] == "res":
            if r["target"] not in res_pred or r["similarity"] > res_pred[r["target"]][1]:
                res_pred[r["target"]] = (r["source"], float(r["similarity"]))
        elif float(r["similarity"]) >= module_cut:
            modules[r["target"]] += 1
    size: dict[str, int] = {}
    length: dict[str, int] = {}
    for f in sorted(res_features, key=lambda x: x["layer"]):
        u = f["uid"]
        s, n = 1 + modules.get(u, 0), 1
        pred = res_pred.get(u)
        if pred and pred[1] >= residual_cut and pred[0] in size:
            s += size[pred[0]]
            n += length[pred[0]]
        size[u], length[u] = s, n
    best = sorted(size, key=lambda u: (-size[u], -length[u], u))[:limit]
    return [{"uid": u, "size": size[u], "length": length[u]} for u in best]


def store_entry_points(graph: Graph, atlas: str, limit: int = 10) -> list[dict[str, Any]]:
    """Compute the atlas's largest lineages and keep them on its Atlas node (the overview's entry points)."""
    feats = graph.read(RES_FEATURES, {"atlas": atlas}, timeout=120)
    links = graph.read(TOP1_LINKS, {"atlas": atlas}, timeout=120)
    out = largest_lineages(feats, links, limit=limit)
    graph.write(SET_ENTRY_POINTS, {"atlas": atlas, "entry_points": json.dumps(out)})
    return out
