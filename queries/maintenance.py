"""Deleting an atlas: its features (with their edges), SAE, ingest-run and (optionally) steering-run nodes,
then the Atlas node itself — in bounded batches so a large atlas never needs one huge transaction.

The Atlas node goes last, so an interrupted drop leaves an atlas that is visibly incomplete, and a second
drop finishes it.
"""

from __future__ import annotations

from typing import LiteralString

from queries.db import Graph
from queries.ingest_writes import delete_in_batches

DELETE_ATLAS_DATA_BATCH: LiteralString = """
MATCH (n) WHERE (n:Feature OR n:SAE OR n:IngestRun) AND n.atlas = $atlas
WITH n LIMIT $limit
DETACH DELETE n
RETURN count(*) AS deleted
"""

DELETE_STEERING_RUNS_BATCH: LiteralString = """
MATCH (r:SteeringRun {atlas: $atlas})
WITH r LIMIT $limit
DETACH DELETE r
RETURN count(*) AS deleted
"""

MARK_ATLAS_INCOMPLETE: LiteralString = "MATCH (a:Atlas {name: $atlas}) SET a.complete = false"
DELETE_ATLAS_NODE: LiteralString = "MATCH (a:Atlas {name: $atlas}) DETACH DELETE a"


def drop_atlas(graph: Graph, atlas: str, *, keep_steering_runs: bool = False) -> int:
    """Delete ``atlas`` and everything in it; returns the number of data nodes deleted.

    ``keep_steering_runs`` keeps the history of steering runs (their USED links go with the features), which
    is what a rebuild of the same atlas from a changed manifest wants.
    """
    graph.write(MARK_ATLAS_INCOMPLETE, {"atlas": atlas})
    n = delete_in_batches(graph, DELETE_ATLAS_DATA_BATCH, {"atlas": atlas}, limit=20_000)
    if not keep_steering_runs:
        n += delete_in_batches(graph, DELETE_STEERING_RUNS_BATCH, {"atlas": atlas}, limit=20_000)
    graph.write(DELETE_ATLAS_NODE, {"atlas": atlas})
    return n
