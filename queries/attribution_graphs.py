"""Stored attribution graphs (circuit-tracer / Neuronpedia graph JSON) and the questions they answer with the atlas.

Graph contract (beside queries/schema.py):
- ``(:AttributionGraph {key, id, slug, scan, prompt, prompt_tokens, source_set, metadata_json, qparams_json,
  n_nodes, n_links, n_linked, complete, imported_at})``: ``id`` is what users name (``{scan}/{slug}`` unless
  given), ``key`` an internal uuid that every row of the graph carries. ``complete`` turns true in the
  import's last transaction; every reader filters on it, so an interrupted import is never visible.
- ``(:GraphNode {graph: key, i, node_id, feature, layer, ctx_idx, feature_type, feature_uid?, raw})``: ``i`` is
  the node's position in the file, ``raw`` its JSON object as read (what export writes back).
- ``(:GraphNode)-[:ATTRIBUTES {weight, k}]->(:GraphNode)``: one per link, ``k`` its position in the file.
- ``(:GraphNode)-[:IS_FEATURE]->(:Feature)`` where the node names a feature of an atlas (interop.attribution_graphs
  says how ids map).
"""

from __future__ import annotations

from typing import LiteralString

SCHEMA_STATEMENTS: tuple[LiteralString, ...] = (
    "CREATE CONSTRAINT attribution_graph_key IF NOT EXISTS FOR (g:AttributionGraph) REQUIRE g.key IS UNIQUE",
    "CREATE INDEX attribution_graph_id IF NOT EXISTS FOR (g:AttributionGraph) ON (g.id)",
    "CREATE INDEX graph_node_graph_i IF NOT EXISTS FOR (n:GraphNode) ON (n.graph, n.i)",
)

# -- import ------------------------------------------------------------------------------------------
CREATE_STAGED_GRAPH: LiteralString = (
    "CREATE (g:AttributionGraph {key: $key, pending_id: $id, slug: $slug, scan: $scan, prompt: $prompt, "
    "prompt_tokens: $prompt_tokens, source_set: $source_set, metadata_json: $metadata_json, qparams_json: $qparams_json, "
    "complete: false, imported_at: datetime()})"
)

# rows: parallel lists; uid may be null.
CREATE_GRAPH_NODES: LiteralString = (
    "UNWIND range(0, size($i) - 1) AS k "
    "CREATE (:GraphNode {graph: $key, i: $i[k], node_id: $node_id[k], feature: $feature[k], layer: $layer[k], "
    "ctx_idx: $ctx_idx[k], feature_type: $feature_type[k], feature_uid: $uid[k], raw: $raw[k]})"
)

# Every node of the graph is read once per batch (ordered by position), so a link costs two list lookups.
CREATE_GRAPH_LINKS: LiteralString = (
    "MATCH (n:GraphNode {graph: $key}) WITH n ORDER BY n.i WITH collect(n) AS ns "
    "UNWIND range(0, size($src) - 1) AS k "
    "WITH ns[$src[k]] AS s, ns[$dst[k]] AS t, k "
    "CREATE (s)-[:ATTRIBUTES {weight: $weight[k], k: $k0 + k}]->(t)"
)

LINK_GRAPH_FEATURES: LiteralString = (
    "MATCH (n:GraphNode {graph: $key}) WHERE n.feature_uid IS NOT NULL "
    "MATCH (f:Feature {uid: n.feature_uid}) CREATE (n)-[:IS_FEATURE]->(f) RETURN count(*) AS n"
)

# The import's last transaction: the old graph of the same id (if any) stops being visible as the new one appears.
PUBLISH_GRAPH: LiteralString = (
    "MATCH (g:AttributionGraph {key: $key}) "
    "OPTIONAL MATCH (old:AttributionGraph {id: $id}) WHERE old.key <> $key "
    "SET old.complete = false, old.id = null, old.pending_delete = true "
    "WITH g, collect(old.key) AS replaced "
    "SET g.id = $id, g.complete = true, g.n_nodes = $n_nodes, g.n_links = $n_links, g.n_linked = $n_linked "
    "REMOVE g.pending_id "
    "RETURN replaced"
)

GRAPH_BY_ID: LiteralString = (
    "MATCH (g:AttributionGraph {id: $id}) WHERE g.complete "
    "RETURN g {.key, .id, .slug, .scan, .prompt, .prompt_tokens, .source_set, .n_nodes, .n_links, .n_linked, "
    ".metadata_json, .qparams_json, imported_at: toString(g.imported_at)} AS g"
)

# Interrupted earlier imports of the same graph id.
STAGED_GRAPHS_OF_ID: LiteralString = (
    "MATCH (g:AttributionGraph {pending_id: $id}) WHERE NOT g.complete RETURN g.key AS key"
)

# Graphs that are not complete: interrupted imports and replaced graphs awaiting deletion.
STALE_GRAPHS: LiteralString = "MATCH (g:AttributionGraph) WHERE NOT g.complete RETURN g.key AS key"

# Links first, in bounded transactions (a node of a dense graph can carry thousands of links).
DELETE_GRAPH_LINKS_BATCH: LiteralString = (
    "MATCH (:GraphNode {graph: $key})-[r:ATTRIBUTES]->() WITH r LIMIT $limit DELETE r RETURN count(*) AS deleted"
)
DELETE_GRAPH_NODES_BATCH: LiteralString = (
    "MATCH (n:GraphNode {graph: $key}) WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS deleted"
)
DELETE_GRAPH_NODE: LiteralString = "MATCH (g:AttributionGraph {key: $key}) DELETE g"
HIDE_GRAPH: LiteralString = (
    "MATCH (g:AttributionGraph {id: $id}) SET g.complete = false, g.id = null RETURN g.key AS key"
)

# -- export ------------------------------------------------------------------------------------------
GRAPH_NODES_PAGE: LiteralString = (
    "MATCH (n:GraphNode {graph: $key}) WHERE n.i >= $lo AND n.i < $hi RETURN n.i AS i, n.raw AS raw ORDER BY i"
)
# Links into the targets lo <= i < hi, in file order within each target.
GRAPH_LINKS_PAGE: LiteralString = (
    "MATCH (t:GraphNode {graph: $key}) WHERE t.i >= $lo AND t.i < $hi "
    "MATCH (s:GraphNode)-[r:ATTRIBUTES]->(t) "
    "RETURN r.k AS k, s.node_id AS source, t.node_id AS target, r.weight AS weight ORDER BY t.i, k"
)

# -- reads -------------------------------------------------------------------------------------------
_GRAPH_MAP: LiteralString = "g {.id, .slug, .scan, .prompt, .prompt_tokens, .source_set, .n_nodes, .n_links, .n_linked, imported_at: toString(g.imported_at)}"

LIST_GRAPHS: LiteralString = (
    "MATCH (g:AttributionGraph) WHERE g.complete AND ($scan IS NULL OR g.scan = $scan) "
    "RETURN " + _GRAPH_MAP + " AS g ORDER BY g.id LIMIT $limit"
)

GRAPHS_BY_IDS: LiteralString = (
    "UNWIND $ids AS id MATCH (g:AttributionGraph {id: id}) WHERE g.complete RETURN " + _GRAPH_MAP + " AS g"
)

# Which complete graphs contain any of these atlas features, and which of them.
GRAPHS_USING_FEATURES: LiteralString = (
    "UNWIND $uids AS uid MATCH (f:Feature {uid: uid})<-[:IS_FEATURE]-(n:GraphNode) "
    "MATCH (g:AttributionGraph {key: n.graph}) WHERE g.complete "
    "WITH g, collect(DISTINCT f.uid) AS uids, collect(DISTINCT n.node_id) AS node_ids "
    "RETURN " + _GRAPH_MAP + " AS g, uids, node_ids ORDER BY size(uids) DESC, g.id"
)

# The atlas features a graph's nodes name, with the nodes naming them.
GRAPH_FEATURES: LiteralString = (
    "MATCH (g:AttributionGraph {id: $id}) WHERE g.complete "
    "MATCH (n:GraphNode {graph: g.key})-[:IS_FEATURE]->(f:Feature) "
    "RETURN f.uid AS uid, collect(n.node_id) AS node_ids ORDER BY uid"
)
