"""Semantic search over feature labels: the vector index and its statements.

``Feature.embedding`` is the all-MiniLM-L6-v2 embedding (384-d, unit norm; interop.embeddings) of the
feature's label and top contexts, written by ``atlas labels embed``; ``embedding_text`` records the text it
was computed from, so a re-run embeds only features whose text changed. The vector index
``feature_embedding`` (cosine) serves ``search(mode: SEMANTIC)``.
"""

from __future__ import annotations

from typing import LiteralString

from queries.features import FEATURE_MAP

INDEX = "feature_embedding"

CREATE_VECTOR_INDEX: LiteralString = (
    "CREATE VECTOR INDEX feature_embedding IF NOT EXISTS FOR (f:Feature) ON (f.embedding) "
    "OPTIONS {indexConfig: {`vector.dimensions`: 384, `vector.similarity_function`: 'cosine'}}"
)
AWAIT_INDEX: LiteralString = "CALL db.awaitIndex('feature_embedding', 300)"

# Features of an atlas that have text to embed, in uid order, $limit at a time after $after (keyset paging).
TEXT_PAGE: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas}) WHERE f.uid > $after AND (f.label IS NOT NULL OR f.top_contexts IS NOT NULL) "
    "RETURN f.uid AS uid, f.label AS label, f.top_contexts AS top_contexts, f.embedding_text AS embedded_text "
    "ORDER BY f.uid LIMIT $limit"
)

# rows: [{uid, text, vector}]
SET_EMBEDDINGS: LiteralString = (
    "UNWIND $rows AS row MATCH (f:Feature {uid: row.uid}) "
    "CALL db.create.setNodeVectorProperty(f, 'embedding', row.vector) "
    "SET f.embedding_text = row.text RETURN count(f) AS n"
)

SEMANTIC_SEARCH: LiteralString = (
    "CALL db.index.vector.queryNodes('feature_embedding', $scan, $vector) YIELD node, score "
    "WHERE $atlas IS NULL OR node.atlas = $atlas "
    "RETURN node " + FEATURE_MAP + " AS f, score ORDER BY score DESC, f.uid LIMIT $limit"
)

# Is anything embedded at all (asked only when a semantic search found nothing)?
ANY_EMBEDDED: LiteralString = "MATCH (f:Feature) WHERE ($atlas IS NULL OR f.atlas = $atlas) AND f.embedding IS NOT NULL RETURN f.uid AS uid LIMIT 1"
