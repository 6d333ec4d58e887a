"""Read-side statements of the API: features, filters, neighbours, atlases, search, circuits, paths, origins.

Every statement here is parameterised and read-only. Filters (``where``) are compiled from a whitelist of
properties and operators into fixed Cypher fragments; user values only ever travel as parameters.
Post-processing that is not Cypher (origin from a flow graph, strongest path by dynamic programming,
circuit assembly) is pure Python so the sync CLI and the async API share it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, LiteralString, cast

from queries.domain import FILTERABLE_FIELDS, SORTABLE_FIELDS
from queries.errors import InvalidInput
from queries.flow_graph import FlowEdge, FlowGraph, FlowNode, FlowOptions

# -- projections -------------------------------------------------------------------------------------
FEATURE_MAP: LiteralString = "{.uid, .atlas, .layer, .module, .index, .category, .s_res, .s_att, .s_mlp, .label, .frequency, .d_sae, .decoder_norm}"
_NODE_MAP: LiteralString = "{.uid, .atlas, .layer, .module, .index, .category, .s_res, .s_att, .s_mlp, .label}"

FEATURES_BY_UID: LiteralString = "UNWIND $uids AS uid MATCH (f:Feature {uid: uid}) RETURN f " + FEATURE_MAP + " AS f"
# Bulky per-feature text, read only when a query asks for it (not part of FEATURE_MAP, which every list uses).
FEATURE_DETAILS_BY_UID: LiteralString = (
    "UNWIND $uids AS uid MATCH (f:Feature {uid: uid}) RETURN uid AS key, f.top_contexts AS top_contexts, "
    "f.max_activation AS max_activation, f.steer_kl AS steer_kl, f.steer_tokens AS steer_tokens, "
    "f.steer_token_gains AS steer_token_gains, f.steer_bench_gain AS steer_bench_gain, "
    "f.steer_bench_n AS steer_bench_n, "
    "f.steer_bench_alpha AS steer_bench_alpha, f.steer_bench_concept AS steer_bench_concept"
)

# Neighbours of many features at once (the API's DataLoaders batch on these).
PREDECESSORS: LiteralString = (
    "UNWIND $uids AS uid MATCH (s:Feature)-[r:FLOWS_TO]->(t:Feature {uid: uid}) "
    "WHERE r.similarity >= $min_sim AND ($k IS NULL OR r.target_rank < $k) "
    "RETURN uid AS key, s "
    + FEATURE_MAP
    + " AS f, r.similarity AS similarity, r.target_rank AS target_rank, r.source_rank AS source_rank, "
    "coalesce(r.method, 'cosine') AS method ORDER BY key, similarity DESC"
)
SUCCESSORS: LiteralString = (
    "UNWIND $uids AS uid MATCH (s:Feature {uid: uid})-[r:FLOWS_TO]->(t:Feature) "
    "WHERE r.similarity >= $min_sim AND ($k IS NULL OR coalesce(r.source_rank, r.target_rank) < $k) "
    "RETURN uid AS key, t "
    + FEATURE_MAP
    + " AS f, r.similarity AS similarity, r.target_rank AS target_rank, r.source_rank AS source_rank, "
    "coalesce(r.method, 'cosine') AS method ORDER BY key, similarity DESC"
)

ATLASES: LiteralString = (
    "MATCH (a:Atlas) WHERE $name IS NULL OR a.name = $name "
    "OPTIONAL MATCH (a)-[:HAS_SAE]->(s:SAE) "
    "WITH a, s ORDER BY s.layer, s.module "
    "RETURN a {.name, .model, .d_model, .n_layers, .layers, .complete, .created_at, .updated_at, .threshold_rule, .null_median_mean, "
    ".null_p999_max, .category_rules, .entry_points, .steer_alpha, .steer_default_alpha, .steer_default_alpha_graph, "
    ".steer_default_source} AS atlas, "
    "collect(s {.key, .layer, .module, .d_sae, .d_in, .source, .hook_name, .architecture, .complete, .explained_variance, .l0, .dead_fraction, .neuronpedia_id, "
    ".category_rule, .cut_res, .cut_att, .cut_mlp, .res_score_median, .res_null_median, .res_null_p99, .res_null_p999, .res_null_n, "
    ".att_score_median, .att_null_median, .att_null_p99, .att_null_p999, .att_null_n, .mlp_score_median, .mlp_null_median, .mlp_null_p99, "
    ".mlp_null_p999, .mlp_null_n, .ceiling_median, .ceiling_p99, .ceiling_share_ge_half, .ceiling_seed, "
    ".density_edges, .density_counts, .density_dead, .median_norm}) AS saes "
    "ORDER BY atlas.name"
)

SEARCH: LiteralString = (
    "CALL db.index.fulltext.queryNodes('feature_text', $text, {limit: $scan}) YIELD node, score "
    "WHERE $atlas IS NULL OR node.atlas = $atlas "
    "RETURN node " + FEATURE_MAP + " AS f, score ORDER BY score DESC, f.uid LIMIT $limit"
)

# Nodes reachable from each seed within max_depth layers along edges at or above min_sim, both ways.
CIRCUIT_REACH: LiteralString = (
    "UNWIND $uids AS uid MATCH (a:Feature {uid: uid}) "
    "OPTIONAL MATCH p = (a)-[:FLOWS_TO*1..]->(x:Feature) "
    "WHERE all(n IN nodes(p) WHERE n.layer <= a.layer + $max_depth) AND all(r IN relationships(p) WHERE r.similarity >= $min_sim) "
    "WITH a, collect(DISTINCT x.uid) AS down "
    "OPTIONAL MATCH p = (a)<-[:FLOWS_TO*1..]-(y:Feature) "
    "WHERE all(n IN nodes(p) WHERE n.layer >= a.layer - $max_depth) AND all(r IN relationships(p) WHERE r.similarity >= $min_sim) "
    "RETURN a.uid AS uid, a.layer AS layer, down, collect(DISTINCT y.uid) AS up"
)
SUBGRAPH: LiteralString = (
    "UNWIND $uids AS uid MATCH (s:Feature {uid: uid}) "
    "OPTIONAL MATCH (s)-[r:FLOWS_TO]->(t:Feature) WHERE t.uid IN $uids AND r.similarity >= $min_sim "
    "RETURN s " + _NODE_MAP + " AS source, t " + _NODE_MAP + " AS target, r.similarity AS similarity"
)

# -- where / sort compilation ------------------------------------------------------------------------
# GraphQL field name -> Cypher property (a whitelist: nothing else can reach the statement text).
# The names are fixed identifiers of queries.domain, so the fragments are literal in effect.
FILTERABLE: dict[str, LiteralString] = {name: cast(LiteralString, "f." + name) for name in FILTERABLE_FIELDS}
_OPS: dict[str, LiteralString] = {
    "eq": " = ",
    "ne": " <> ",
    "lt": " < ",
    "lte": " <= ",
    "gt": " > ",
    "gte": " >= ",
    "in": " IN ",
    "contains": " CONTAINS ",
    "starts_with": " STARTS WITH ",
    "ends_with": " ENDS WITH ",
}
SORTABLE = SORTABLE_FIELDS


def compile_where(where: Mapping[str, Any] | None) -> tuple[LiteralString, dict[str, Any]]:
    """Compile a Neo4j-GraphQL-shaped filter into a Cypher boolean over ``f`` and its parameters.

    ``{"layer": {"eq": 12}, "category": {"in": ["newborn"]}, "s_mlp": {"gt": 0.5}, "OR": [...], "NOT": {...}}``;
    ``is_null: true|false`` tests absence. Keys at one level are ANDed. Empty → ``true``.
    """
    params: dict[str, Any] = {}

    def bind(value: Any) -> str:
        name = f"w{len(params)}"
        params[name] = value
        return "$" + name

    def node(w: Any) -> str:
        if not isinstance(w, Mapping):
            raise InvalidInput(f'a filter must be an object like {{"layer": {{"eq": 12}}}}, got {w!r}')
        parts: list[str] = []
        for key, cond in w.items():
            if cond is None:
                continue
            if key in ("AND", "OR"):
                if not isinstance(cond, (list, tuple)):
                    raise InvalidInput(f"filter {key} needs a list of filters, got {cond!r}")
                subs = [node(c) for c in cond]
                if subs:
                    parts.append("(" + (" AND " if key == "AND" else " OR ").join(subs) + ")")
            elif key == "NOT":
                parts.append("NOT (" + node(cond) + ")")
            elif key in FILTERABLE:
                prop = FILTERABLE[key]
                if not isinstance(cond, Mapping):
                    raise InvalidInput(
                        f'filter on {key} must map operators to values, e.g. {{"eq": ...}}, got {cond!r}'
                    )
                for op, value in cond.items():
                    if value is None:
                        continue
                    if op == "is_null":
                        parts.append(prop + (" IS NULL" if value else " IS NOT NULL"))
                    elif op in _OPS:
                        if op == "in" and not isinstance(value, (list, tuple)):
                            raise InvalidInput(f"filter {key}.in needs a list, got {value!r}")
                        parts.append(prop + _OPS[op] + bind(list(value) if op == "in" else value))
                    else:
                        raise InvalidInput(
                            f"unknown filter operator {op!r} on {key} (valid: {', '.join(sorted(_OPS))}, is_null)"
                        )
            else:
                raise InvalidInput(f"cannot filter on {key!r} (valid: {', '.join(sorted(FILTERABLE))}, AND, OR, NOT)")
        return " AND ".join(parts) if parts else "true"

    # Built only from whitelisted literal fragments; values are parameters.
    return cast(LiteralString, node(where or {})), params


def compile_sort(sort: Sequence[Mapping[str, str]] | None) -> LiteralString:
    """``[{"layer": "ASC"}, {"s_res": "DESC"}]`` → ``ORDER BY f.layer ASC, f.s_res DESC, f.uid ASC`` (uid breaks ties)."""
    keys: list[str] = []
    for item in sort or []:
        if not isinstance(item, Mapping):
            raise InvalidInput(f'a sort key must be an object like {{"layer": "ASC"}}, got {item!r}')
        for field, direction in item.items():
            if direction is None:
                continue
            if field not in SORTABLE:
                raise InvalidInput(f"cannot sort on {field!r} (valid: {', '.join(SORTABLE)})")
            d = str(direction).upper()
            if d not in ("ASC", "DESC"):
                raise InvalidInput(f"sort direction {direction!r} is not valid (valid: ASC, DESC)")
            # Cypher sorts null first in DESC: features without the property go last either way
            keys.append(
                f"{FILTERABLE[field]} {d}" if d == "ASC" else f"{FILTERABLE[field]} IS NULL, {FILTERABLE[field]} DESC"
            )
    keys.append("f.uid ASC")
    return cast(LiteralString, "ORDER BY " + ", ".join(keys))


def list_features_statement(
    where: Mapping[str, Any] | None, sort: Sequence[Mapping[str, str]] | None, *, limit: int, offset: int
) -> tuple[LiteralString, dict[str, Any]]:
    cond, params = compile_where(where)
    order = compile_sort(sort)
    params.update(limit=limit, offset=offset)
    # sorted and paged on the nodes, projected after: a sort key need not be one of FEATURE_MAP's fields
    return (
        "MATCH (f:Feature) WHERE "
        + cond
        + " WITH f "
        + order
        + " SKIP $offset LIMIT $limit RETURN f "
        + FEATURE_MAP
        + " AS f",
        params,
    )


def count_features_statement(where: Mapping[str, Any] | None) -> tuple[LiteralString, dict[str, Any]]:
    cond, params = compile_where(where)
    return "MATCH (f:Feature) WHERE " + cond + " RETURN count(f) AS n", params


# -- origin ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OriginStep:
    feature: FlowNode
    similarity: float | None  # link to the next (later) step of the chain; None for the seed


@dataclass(frozen=True)
class Origin:
    """Where a residual feature was born: the start of its residual chain and what explains it there."""

    seed: FlowNode
    layer: int
    module: str  # res | att | mlp: the module where the feature first appears
    born_as: FlowNode  # the first residual feature of the chain
    source: FlowNode | None  # the att/mlp feature it came from (None when born in res: unexplained or layer 0)
    source_similarity: float | None
    chain: list[OriginStep]  # from the seed back to born_as


def origin_from_flow_graph(fg: FlowGraph, seed_uid: str) -> Origin:
    """Read the origin off an upstream flow graph built with top-1 links (pure).

    The chain is the seed's residual ancestry; the feature is born at its last node. If a module
    predecessor (at or above the module cut) explains that node, the feature was born in that module
    (the stronger one when both do); otherwise it appears in the residual stream itself.
    """
    nodes = {n.uid: n for n in fg.nodes}
    seed = nodes[seed_uid]
    into: dict[str, list[FlowEdge]] = {}
    for e in fg.edges:
        into.setdefault(e.target, []).append(e)
    if seed.module.value != "res":
        return Origin(seed, seed.layer, seed.module.value, seed, None, None, [OriginStep(seed, None)])
    chain = [OriginStep(seed, None)]
    cur = seed
    while True:
        res_in = [e for e in into.get(cur.uid, []) if nodes[e.source].module.value == "res"]
        if not res_in:
            break
        best = max(res_in, key=lambda e: e.similarity)
        cur = nodes[best.source]
        chain.append(OriginStep(cur, best.similarity))
    mods = [e for e in into.get(cur.uid, []) if nodes[e.source].module.value != "res"]
    if mods:
        best = max(mods, key=lambda e: e.similarity)
        src = nodes[best.source]
        return Origin(seed, cur.layer, src.module.value, cur, src, best.similarity, chain)
    return Origin(seed, cur.layer, "res", cur, None, None, chain)


# -- circuits and paths ------------------------------------------------------------------------------
def circuit_members(
    reach_rows: Sequence[Mapping[str, Any]], max_depth: int, *, ordered_pair: tuple[str, str] | None = None
) -> list[str]:
    """Features on some path between two different seeds (pure): reachable from one and reaching another.

    ``ordered_pair=(a, b)`` keeps only paths from a to b (for ``path``).
    """
    info = {r["uid"]: r for r in reach_rows}
    members: set[str] = set(info)
    pairs = [ordered_pair] if ordered_pair else [(a, b) for a in info for b in info if a != b]
    for a, b in pairs:
        ra, rb = info[a], info[b]
        if rb["layer"] - ra["layer"] > max_depth or rb["layer"] < ra["layer"]:
            continue
        down, up = set(ra["down"]), set(rb["up"])
        members |= down & up
    return sorted(members)


def subgraph_from_rows(
    seeds: Sequence[str], rows: Sequence[Mapping[str, Any]], options: FlowOptions | None = None
) -> FlowGraph:
    """A FlowGraph from SUBGRAPH rows (pure): every returned node, every edge among them."""
    nodes: dict[str, FlowNode] = {}
    edges: dict[tuple[str, str], FlowEdge] = {}
    for r in rows:
        nodes.setdefault(r["source"]["uid"], FlowNode.from_row(r["source"]))
        if r.get("target") and r.get("similarity") is not None:
            nodes.setdefault(r["target"]["uid"], FlowNode.from_row(r["target"]))
            edges[(r["source"]["uid"], r["target"]["uid"])] = FlowEdge(
                r["source"]["uid"], r["target"]["uid"], float(r["similarity"])
            )
    order = {"att": 0, "mlp": 1, "res": 2}
    return FlowGraph(
        seeds=list(seeds),
        nodes=sorted(nodes.values(), key=lambda n: (n.layer, order[n.module.value], n.index)),
        edges=sorted(edges.values(), key=lambda e: (e.source, e.target)),
        options=options or FlowOptions(),
    )


def prune_to_connecting(fg: FlowGraph, *, ordered_pair: tuple[str, str] | None = None) -> FlowGraph:
    """Drop edges that do not lie on a seed-to-seed path (pure; the member set may admit a few)."""
    seeds = set(fg.seeds)
    out: dict[str, list[str]] = {}
    inn: dict[str, list[str]] = {}
    for e in fg.edges:
        out.setdefault(e.source, []).append(e.target)
        inn.setdefault(e.target, []).append(e.source)

    def reach(starts: set[str], adj: Mapping[str, list[str]]) -> dict[str, set[str]]:
        got: dict[str, set[str]] = {}
        for s in starts:
            seen, stack = set(), [s]
            while stack:
                for nxt in adj.get(stack.pop(), []):
                    if nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
            got[s] = seen
        return got

    fwd, bwd = reach(seeds, out), reach(seeds, inn)
    pairs = [ordered_pair] if ordered_pair else [(a, b) for a in seeds for b in seeds if a != b]
    keep_nodes: set[str] = set(seeds)
    for a, b in pairs:
        keep_nodes |= (fwd[a] | {a}) & (bwd[b] | {b}) if b in fwd[a] else set()
    keep_edges = [e for e in fg.edges if e.source in keep_nodes and e.target in keep_nodes]
    keep_nodes_list = [n for n in fg.nodes if n.uid in keep_nodes]
    return FlowGraph(seeds=fg.seeds, nodes=keep_nodes_list, edges=keep_edges, options=fg.options)


@dataclass(frozen=True)
class StrongestPath:
    graph: FlowGraph
    score: float  # product of the similarities along the path
    min_similarity: float


def strongest_path(fg: FlowGraph, source: str, target: str) -> StrongestPath | None:
    """The path from ``source`` to ``target`` maximising the product of similarities (pure; DAG DP).

    Edges always go forward in (layer, module) order, so the graph is acyclic and one pass in
    topological order finds the optimum. Non-positive similarities are not followed.
    """
    order = {"att": 0, "mlp": 1, "res": 2}
    nodes = {n.uid: n for n in fg.nodes}
    best: dict[str, tuple[float, str | None]] = {source: (0.0, None)}  # log-score, predecessor
    for n in sorted(fg.nodes, key=lambda n: (n.layer, order[n.module.value])):
        if n.uid not in best:
            continue
        for e in fg.edges:
            if e.source != n.uid or e.similarity <= 0:
                continue
            cand = best[n.uid][0] + math.log(e.similarity)
            if e.target not in best or cand > best[e.target][0]:
                best[e.target] = (cand, n.uid)
    if target not in best or source == target:
        return None
    path = [target]
    while path[-1] != source:
        prev = best[path[-1]][1]
        assert prev is not None  # internal invariant: every reached node has a predecessor
        path.append(prev)
    path.reverse()
    sims = {(e.source, e.target): e.similarity for e in fg.edges}
    edges = [FlowEdge(a, b, sims[(a, b)]) for a, b in itertools.pairwise(path)]
    g = FlowGraph(seeds=[source, target], nodes=[nodes[u] for u in path], edges=edges, options=fg.options)
    return StrongestPath(g, math.exp(best[target][0]), min(e.similarity for e in edges))


# -- writes (mutations) ------------------------------------------------------------------------------
SET_LABEL: LiteralString = "MATCH (f:Feature {uid: $uid}) SET f.label = $label RETURN f " + FEATURE_MAP + " AS f"
