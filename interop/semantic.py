"""Semantic search over feature labels: embedding an atlas's labels (``atlas labels embed``) and the query side.

The text of a feature is its label followed by its top contexts (``label | context 1 | context 2 ...``,
at most 1,000 characters): the label names what the feature fires on, the contexts show it in use. Only
features whose text changed since their last embedding are re-embedded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from queries import semantic as S
from queries.atlases import known_atlases
from queries.db import Graph
from queries.errors import AtlasNotFound

log = logging.getLogger(__name__)

MAX_TEXT = 1_000


def feature_text(label: str | None, top_contexts: list[str] | None) -> str:
    parts = [label.strip()] if label and label.strip() else []
    parts += [c.strip() for c in (top_contexts or []) if c and c.strip()]
    return " | ".join(parts)[:MAX_TEXT]


def ensure_vector_index(graph: Graph) -> None:
    graph.write(S.CREATE_VECTOR_INDEX)
    graph.write(S.AWAIT_INDEX, timeout=310)


@dataclass
class EmbedReport:
    atlas: str
    features: int = 0  # features with text
    embedded: int = 0  # (re-)embedded now
    unchanged: int = 0


def embed_atlas(
    graph: Graph, atlas: str, *, batch_size: int = 256, device: str = "cpu", force: bool = False
) -> EmbedReport:
    """Embed the label text of every feature of ``atlas`` that has one (changed texts only unless ``force``)."""
    from interop.embeddings import text_embedder

    known = known_atlases(graph)
    if atlas not in known:
        raise AtlasNotFound(atlas, known)
    embedder = text_embedder(device)  # fails early, with the fix, when the model is missing
    ensure_vector_index(graph)
    report = EmbedReport(atlas=atlas)
    after = ""
    while True:
        rows = graph.read(S.TEXT_PAGE, {"atlas": atlas, "after": after, "limit": 2_000})
        if not rows:
            break
        after = rows[-1]["uid"]
        todo: list[dict[str, Any]] = []
        for r in rows:
            text = feature_text(r["label"], r["top_contexts"])
            if not text:
                continue
            report.features += 1
            if text == r["embedded_text"] and not force:
                report.unchanged += 1
                continue
            todo.append({"uid": r["uid"], "text": text})
        for a in range(0, len(todo), batch_size):
            chunk = todo[a : a + batch_size]
            vectors = embedder.embed([c["text"] for c in chunk])
            graph.write(S.SET_EMBEDDINGS, {"rows": [{**c, "vector": v.tolist()} for c, v in zip(chunk, vectors)]})
            report.embedded += len(chunk)
    log.info(
        "embedded %d of %d labelled features of %s (%d unchanged)",
        report.embedded,
        report.features,
        atlas,
        report.unchanged,
    )
    return report


def query_vector(text: str, device: str = "cpu") -> list[float]:
    """The query's embedding (the model loads once per process)."""
    from interop.embeddings import text_embedder

    return text_embedder(device).embed([text])[0].tolist()
