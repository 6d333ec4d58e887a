"""Write-side statements of ``atlas ingest`` (owned by ingest; the contract is ``queries.schema``).

Every bulk statement takes parallel lists (``$index``, ``$src`` ...) rather than a list of maps: lists
of ints/floats serialise far faster over Bolt, and ``uid``s are built server-side from a prefix, which
keeps the parameters small. Feature writes MERGE (re-runs update in place); edges of one target layer
are deleted first and then CREATEd, which is exact and idempotent because every ``FLOWS_TO`` edge of an
atlas points into a ``res`` feature, and each target layer is (re)written by one unit of work.
"""

from __future__ import annotations

from typing import Any, LiteralString

from queries.categories import category_case
from queries.db import Graph

UPSERT_ATLAS: LiteralString = """
MERGE (a:Atlas {name: $name})
SET a.model = $model, a.d_model = $d_model, a.n_layers = $n_layers, a.layers = $layers,
    a.complete = false, a.manifest_sha256 = $sha, a.manifest_path = $manifest_path, a.k = $k,
    a.threshold_res = $t_res, a.threshold_module = $t_mod, a.threshold_rule = $rule, a.matchers = $matchers,
    a.created_at = coalesce(a.created_at, datetime()), a.updated_at = datetime()
"""

GET_ATLAS: LiteralString = """
MATCH (a:Atlas {name: $name})
OPTIONAL MATCH (a)-[:HAS_SAE]->(s:SAE)
RETURN a.manifest_sha256 AS sha, a.k AS k, a.threshold_res AS t_res, a.threshold_module AS t_mod, a.threshold_rule AS rule, a.matchers AS matchers, a.complete AS complete,
       [x IN collect(s) WHERE x.complete | x.layer] AS complete_layers,
       collect({layer: s.layer, module: s.module, d_sae: s.d_sae}) AS saes
"""

UPSERT_RUN: LiteralString = """
MATCH (a:Atlas {name: $atlas})
MERGE (r:IngestRun {id: $id})
SET r.atlas = $atlas, r.started_at = coalesce(r.started_at, datetime()), r.status = 'running',
    r.k = $k, r.backend = $backend, r.resumed = coalesce(r.resumed, 0) + $resumed, r.finished_at = null, r.path = 'online'
MERGE (r)-[:BUILT]->(a)
"""

FINISH_RUN: LiteralString = """
MATCH (r:IngestRun {id: $id})
SET r.status = $status, r.finished_at = datetime(), r.n_features = $n_features, r.n_edges = $n_edges, r.seconds = $seconds
"""

UPSERT_SAES: LiteralString = """
MATCH (a:Atlas {name: $atlas})
UNWIND $rows AS row
MERGE (s:SAE {key: row.key})
SET s += row, s.atlas = $atlas, s.complete = false
MERGE (a)-[:HAS_SAE]->(s)
"""

MARK_LAYER_COMPLETE: LiteralString = """
MATCH (s:SAE {atlas: $atlas, layer: $layer}) SET s.complete = true
"""

# Null controls and the category rule of one res SAE (ingest.controls.layer_controls); a null entry removes
# the property, so a re-ingest with other options leaves no stale value.
SET_SAE_CONTROLS: LiteralString = """
MATCH (s:SAE {key: $key}) SET s += $props
"""

SAE_CONTROLS: LiteralString = """
MATCH (:Atlas {name: $atlas})-[:HAS_SAE]->(s:SAE {module: 'res'})
RETURN s.layer AS layer, s.category_rule AS rule, s.res_null_median AS res_null_median, s.att_null_median AS att_null_median,
       s.mlp_null_median AS mlp_null_median, s.res_null_p999 AS res_null_p999, s.att_null_p999 AS att_null_p999,
       s.mlp_null_p999 AS mlp_null_p999 ORDER BY layer
"""

SAE_CONTROLS_FULL: LiteralString = """
MATCH (:Atlas {name: $atlas})-[:HAS_SAE]->(s:SAE {module: 'res'})
RETURN s.layer AS layer, s.res_score_median AS res_score_median, s.res_null_median AS res_null_median,
       s.res_null_p99 AS res_null_p99, s.res_null_p999 AS res_null_p999, s.att_null_p99 AS att_null_p99,
       s.att_null_p999 AS att_null_p999, s.mlp_null_p99 AS mlp_null_p99, s.mlp_null_p999 AS mlp_null_p999
"""

# Atlas-wide view of the SAE-pair nulls and of the category rule(s) (ingest.pipeline.summarise_controls).
SET_ATLAS_CONTROLS: LiteralString = """
MATCH (a:Atlas {name: $atlas}) SET a += $props
"""

MARK_ATLAS_COMPLETE: LiteralString = """
MATCH (a:Atlas {name: $atlas}) SET a.complete = true, a.updated_at = datetime(), a.n_features = $n_features, a.n_edges = $n_edges
"""

# One statement per (layer, module) batch; per-feature scores are null for att/mlp features; source_norm is the
# z-space norm of a hook_z SAE's row (decoder_norm is then its norm after W_O), null otherwise.
UPSERT_FEATURES: LiteralString = """
UNWIND range(0, size($index) - 1) AS i
MERGE (f:Feature {uid: $prefix + toString($index[i])})
SET f.atlas = $atlas, f.layer = $layer, f.module = $module, f.index = $index[i], f.d_sae = $d_sae,
    f.decoder_norm = $norm[i], f.source_norm = $source_norm[i], f.s_res = $s_res[i], f.s_att = $s_att[i], f.s_mlp = $s_mlp[i],
    f.category = $category[i]
"""

# The fast path for an SAE none of whose features exist yet (first ingest, or a layer a killed run never
# reached): CREATE skips MERGE's lookup-then-lock per row; the uid constraint still guards duplicates.
CREATE_FEATURES: LiteralString = """
UNWIND range(0, size($index) - 1) AS i
CREATE (:Feature {uid: $prefix + toString($index[i]), atlas: $atlas, layer: $layer, module: $module, index: $index[i], d_sae: $d_sae,
                  decoder_norm: $norm[i], source_norm: $source_norm[i], s_res: $s_res[i], s_att: $s_att[i], s_mlp: $s_mlp[i],
                  category: $category[i]})
"""

COUNT_SAE_FEATURES: LiteralString = """
MATCH (f:Feature {atlas: $atlas, layer: $layer, module: $module}) RETURN count(f) AS n
"""

# Deletes at most $limit edges into one res layer; the caller loops until it returns 0.
DELETE_EDGES_INTO_LAYER: LiteralString = """
MATCH (t:Feature {atlas: $atlas, layer: $layer, module: 'res'})<-[e:FLOWS_TO]-()
WITH e LIMIT $limit
DELETE e
RETURN count(*) AS deleted
"""

# Both endpoint SAEs are read once per batch (index order = position, every index 0..d_sae-1 exists
# once the layer's features are written), so each edge costs a list lookup instead of two index seeks.
CREATE_EDGES: LiteralString = """
MATCH (s:Feature {atlas: $atlas, layer: $src_layer, module: $src_module})
WITH s ORDER BY s.index
WITH collect(s) AS srcs
MATCH (t:Feature {atlas: $atlas, layer: $dst_layer, module: 'res'})
WITH srcs, t ORDER BY t.index
WITH srcs, collect(t) AS dsts
UNWIND range(0, size($src) - 1) AS i
WITH srcs[$src[i]] AS s, dsts[$dst[i]] AS t, i
CREATE (s)-[:FLOWS_TO {similarity: $sim[i], target_rank: $target_rank[i], source_rank: $source_rank[i],
                       written_layer: $written_layer, method: $method, score: $score[i], distance: $distance}]->(t)
"""

COUNT_ATLAS: LiteralString = """
MATCH (f:Feature {atlas: $atlas})
WITH count(f) AS features
OPTIONAL MATCH (:Feature {atlas: $atlas})-[e:FLOWS_TO]->()
RETURN features, count(e) AS edges
"""


def delete_in_batches(
    graph: Graph, statement: LiteralString, params: dict[str, Any], limit: int = 50_000, timeout: float = 300
) -> int:
    """Loop a ``... LIMIT $limit DELETE ... RETURN count(*) AS deleted`` statement until nothing is left."""
    total = 0
    while True:
        rows = graph.write(statement, {**params, "limit": limit}, timeout=timeout)
        n = int(rows[0]["deleted"]) if rows else 0
        total += n
        if n < limit:
            return total


# Categories recomputed from the stored top-1 scores (same rule as ingest.scores.categorize: an absent
# score counts as low). One layer per transaction keeps each transaction small on wide atlases.
RECATEGORIZE_LAYER: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas, layer: $layer, module: 'res'}) "
    f"SET f.category = {category_case('f', '')} "
    "RETURN f.category AS category, count(*) AS n"
)

SET_ATLAS_THRESHOLDS: LiteralString = """
MATCH (a:Atlas {name: $atlas}) SET a.threshold_res = $t_res, a.threshold_module = $t_mod, a.threshold_rule = $rule, a.updated_at = datetime()
"""

ATLAS_STATE: LiteralString = "MATCH (a:Atlas {name: $atlas}) RETURN a.layers AS layers, a.complete AS complete"
