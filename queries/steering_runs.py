"""Steering's statements: what a run needs to read (atlas, features) and the run it writes.

A run is ``(:SteeringRun {id, atlas, created_at, model, prompts, baseline, steered, strategy, schedule,
mode, units, seeds, ...})-[:USED {coefficient, mode, unit, vector_norm}]->(:Feature)``, so analysts can
ask "which runs used this feature, and what happened" (:data:`RUNS_FOR_FEATURE`). Lists of strings are
stored as Neo4j string lists; nested options as one JSON string (``graph_options``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, LiteralString

from queries.db import Graph

FETCH_FEATURES: LiteralString = """
UNWIND $uids AS uid
MATCH (f:Feature {uid: uid})
RETURN f.uid AS uid, f.atlas AS atlas, f.layer AS layer, f.module AS module, f.index AS index
"""

CREATE_RUN: LiteralString = """
CREATE (r:SteeringRun {id: $id})
SET r += $props, r.created_at = datetime()
WITH r
UNWIND $used AS u
MATCH (f:Feature {uid: u.uid})
CREATE (r)-[:USED {coefficient: u.coefficient, mode: u.mode, unit: u.unit, vector_norm: u.vector_norm}]->(f)
RETURN count(*) AS used
"""

GET_RUN: LiteralString = """
MATCH (r:SteeringRun {id: $id})
OPTIONAL MATCH (r)-[u:USED]->(f:Feature)
WITH r, u, f ORDER BY f.layer, f.module, f.index
RETURN r {.*, created_at: toString(r.created_at)} AS run,
       [x IN collect({uid: f.uid, coefficient: u.coefficient, mode: u.mode}) WHERE x.uid IS NOT NULL] AS used
"""

RUNS_FOR_FEATURE: LiteralString = """
MATCH (r:SteeringRun)-[u:USED]->(f:Feature {uid: $uid})
RETURN r.id AS id, toString(r.created_at) AS created_at, u.coefficient AS coefficient, u.mode AS mode,
       r.prompts AS prompts, r.baseline AS baseline, r.steered AS steered, r.strategy AS strategy
ORDER BY r.created_at DESC LIMIT $limit
"""


def fetch_features(graph: Graph, uids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The stored features among ``uids``, keyed by uid (missing ones are simply absent)."""
    return {r["uid"]: r for r in graph.read(FETCH_FEATURES, {"uids": list(uids)})} if uids else {}


def store_run(graph: Graph, run_id: str, props: Mapping[str, Any], used: Sequence[Mapping[str, Any]]) -> int:
    """Create the run node and one ``USED`` edge per feature (one statement); returns the edges created."""
    rows = graph.write(CREATE_RUN, {"id": run_id, "props": dict(props), "used": list(used)})
    return int(rows[0]["used"]) if rows and used else 0


def get_run(graph: Graph, run_id: str) -> dict[str, Any] | None:
    rows = graph.read(GET_RUN, {"id": run_id})
    if not rows or rows[0]["run"] is None:
        return None
    return {**rows[0]["run"], "used": rows[0]["used"]}


def runs_for_feature(graph: Graph, uid: str, limit: int = 20) -> list[dict[str, Any]]:
    return graph.read(RUNS_FOR_FEATURE, {"uid": uid, "limit": int(limit)})


RUNS_FOR_ATLAS: LiteralString = """
MATCH (r:SteeringRun {atlas: $atlas})
WITH r ORDER BY r.created_at DESC LIMIT $limit
OPTIONAL MATCH (r)-[u:USED]->(f:Feature)
WITH r, u, f ORDER BY f.layer, f.module, f.index
RETURN r {.id, .atlas, .model, .prompts, .baseline, .steered, .strategy, .schedule, .mode, .units, .seeds, .seed_strengths,
          created_at: toString(r.created_at)} AS run,
       [x IN collect({uid: f.uid, coefficient: u.coefficient, mode: u.mode}) WHERE x.uid IS NOT NULL] AS used
ORDER BY run.created_at DESC
"""


def runs_for_atlas(graph: Graph, atlas: str, limit: int = 20) -> list[dict[str, Any]]:
    """The atlas's latest runs, newest first, each with the features it used (``used``)."""
    return [{**r["run"], "used": r["used"]} for r in graph.read(RUNS_FOR_ATLAS, {"atlas": atlas, "limit": int(limit)})]
