"""Feature labels (training.labels): top-activating contexts, activation frequency, a short token label.

``label`` and ``top_contexts`` are covered by the full-text index ``feature_text`` (queries.schema), so the
API's ``search`` finds features by the text they fire on.
"""

from __future__ import annotations

from typing import LiteralString

from queries.db import Graph

# rows: [{uid, label, top_contexts: [str], frequency, max_activation}]
SET_FEATURE_LABELS: LiteralString = (
    "UNWIND $rows AS row "
    "MATCH (f:Feature {uid: row.uid}) "
    "SET f.label = row.label, f.top_contexts = row.top_contexts, f.frequency = row.frequency, "
    "f.max_activation = row.max_activation"
)

COUNT_LABELLED: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas}) WHERE f.label IS NOT NULL AND f.label <> '' RETURN count(f) AS n"
)


def count_labelled(graph: Graph, atlas: str) -> int:
    """Features of ``atlas`` that carry a non-empty label (the demo's idempotence check)."""
    rows = graph.read(COUNT_LABELLED, {"atlas": atlas})
    return int(rows[0]["n"]) if rows else 0
