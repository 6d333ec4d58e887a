"""The Cypher of the flow-graph builder (queries.flow_graph): one read-only statement per direction, and the plan
of which statements a graph needs with their parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, LiteralString

from queries.domain import Direction
from queries.flow_types import FlowOptions

# -- Cypher ------------------------------------------------------------------------------------------
# Both statements return edge rows: {seed, source, target, similarity, target_rank, source_rank} where
# source/target are node maps (source may be null for a seed with no edges). They fetch a superset of
# the final graph (the cuts that cannot be expressed per path are applied in assemble_flow_graph).

_NODE_MAP: LiteralString = "{.uid, .atlas, .layer, .module, .index, .category, .s_res, .s_att, .s_mlp, .label}"

# The matchers that found each returned edge (its agreement is their count): every matcher writes at most one edge
# per feature pair (ingest.matchers), so the FLOWS_TO edges between its two features name them.
_METHODS_UP: LiteralString = (
    "CASE WHEN r IS NULL THEN null ELSE "
    "COLLECT { MATCH (s)-[q:FLOWS_TO]->(t) RETURN DISTINCT coalesce(q.method, 'cosine') } END AS methods"
)
_METHODS_DOWN: LiteralString = (
    "CASE WHEN r IS NULL THEN null ELSE "
    "COLLECT { MATCH (s)-[q:FLOWS_TO]->(tt) RETURN DISTINCT coalesce(q.method, 'cosine') } END AS methods"
)
# Forward rank of a res→res edge: cosine ranks each source's successors (source_rank); the other matchers rank
# only each target's candidates, so a downstream walk along them follows those edges by target_rank.
_FWD_RANK: LiteralString = "CASE WHEN $matcher = 'cosine' THEN r.source_rank ELSE r.target_rank END"

UPSTREAM_STATEMENT: LiteralString = (
    "UNWIND $uids AS uid "
    "MATCH (seed:Feature {uid: uid}) "
    # The residual chain: predicates inline into a pruning var-length expand (bounded by layers).
    "OPTIONAL MATCH p = (seed)<-[:FLOWS_TO*1..]-(x:Feature) "
    "WHERE seed.module = 'res' "
    "AND all(r IN relationships(p) WHERE r.target_rank < $k AND r.similarity >= $min_sim AND coalesce(r.method, 'cosine') = $matcher) "
    # The layer bound sits in the node predicate so the expansion itself stops at the depth.
    "AND all(n IN nodes(p) WHERE n.module = 'res' AND n.layer >= seed.layer - $depth) "
    "WITH seed, collect(DISTINCT x) AS chain "
    "UNWIND [seed] + chain AS t "
    "OPTIONAL MATCH (s:Feature)-[r:FLOWS_TO]->(t) WHERE t.module = 'res' AND r.target_rank < $k AND coalesce(r.method, 'cosine') = $matcher "
    "RETURN seed.uid AS seed, s " + _NODE_MAP + " AS source, t " + _NODE_MAP + " AS target, "
    "r.similarity AS similarity, r.target_rank AS target_rank, r.source_rank AS source_rank, " + _METHODS_UP
)

DOWNSTREAM_STATEMENT: LiteralString = (
    "UNWIND $uids AS uid "
    "MATCH (seed:Feature {uid: uid}) "
    # A module seed feeds residual features of its own layer; a residual seed starts the chain itself.
    "OPTIONAL MATCH (seed)-[r0:FLOWS_TO]->(first:Feature) "
    "WHERE seed.module <> 'res' AND r0.target_rank < $k AND r0.similarity >= $mod_sim "
    "AND coalesce(r0.method, 'cosine') = $matcher "
    "WITH seed, CASE WHEN seed.module = 'res' THEN [seed] ELSE collect(first) END AS starts "
    "UNWIND CASE WHEN size(starts) = 0 THEN [null] ELSE starts END AS st "
    "OPTIONAL MATCH p = (st)-[:FLOWS_TO*1..]->(x:Feature) "
    "WHERE all(r IN relationships(p) WHERE "
    + _FWD_RANK
    + " < $k AND r.similarity >= $min_sim AND coalesce(r.method, 'cosine') = $matcher) "
    "AND all(n IN nodes(p) WHERE n.layer <= seed.layer + $depth) "
    "WITH seed, starts, collect(DISTINCT x) AS down "
    "UNWIND [seed] + starts + down AS t "
    "WITH DISTINCT seed, t "
    "CALL (t) { "
    "  MATCH (t)-[r:FLOWS_TO]->(n:Feature) "
    "  WHERE ((t.module = 'res' AND "
    + _FWD_RANK
    + " < $k) OR (t.module <> 'res' AND r.target_rank < $k)) AND coalesce(r.method, 'cosine') = $matcher "
    "  RETURN t AS s, n AS tt, r "
    "  UNION "
    "  MATCH (s:Feature)-[r:FLOWS_TO]->(t) WHERE t.module = 'res' AND s.module <> 'res' AND r.target_rank < $k "
    "  AND coalesce(r.method, 'cosine') = $matcher "
    "  RETURN s, t AS tt, r "
    "  UNION "
    "  RETURN null AS s, t AS tt, null AS r "
    "} "
    "RETURN seed.uid AS seed, s " + _NODE_MAP + " AS source, tt " + _NODE_MAP + " AS target, "
    "r.similarity AS similarity, r.target_rank AS target_rank, r.source_rank AS source_rank, " + _METHODS_DOWN
)


def plan_statements(uids: Sequence[str], options: FlowOptions) -> list[tuple[str, LiteralString, dict[str, Any]]]:
    """The statements (key, Cypher, parameters) whose rows :func:`assemble_flow_graph` needs."""
    params = {
        "uids": list(uids),
        "k": options.top_k,
        "depth": options.depth_or_max,
        "min_sim": options.min_similarity,
        "mod_sim": options.module_min_similarity,
        "matcher": options.matcher,
    }
    plan: list[tuple[str, LiteralString, dict[str, Any]]] = []
    if options.direction in (Direction.UPSTREAM, Direction.BOTH):
        plan.append(("upstream", UPSTREAM_STATEMENT, params))
    if options.direction in (Direction.DOWNSTREAM, Direction.BOTH):
        plan.append(("downstream", DOWNSTREAM_STATEMENT, params))
    return plan
