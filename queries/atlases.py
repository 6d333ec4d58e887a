"""Which atlases exist, and what the Atlas node records about one: the one place these reads live."""

from __future__ import annotations

from typing import Any, LiteralString

from queries.db import Graph

ATLAS_NAMES: LiteralString = "MATCH (a:Atlas) RETURN a.name AS name ORDER BY name"

ATLAS_INFO: LiteralString = """
MATCH (a:Atlas {name: $atlas})
RETURN a.name AS name, a.model AS model, a.d_model AS d_model, a.n_layers AS n_layers, a.layers AS layers,
       a.complete AS complete, a.manifest_sha256 AS manifest_sha256, a.manifest_path AS manifest_path
"""


def known_atlases(graph: Graph) -> list[str]:
    """Every atlas name, sorted (what AtlasNotFound lists)."""
    return [r["name"] for r in graph.read(ATLAS_NAMES)]


def atlas_info(graph: Graph, atlas: str) -> dict[str, Any] | None:
    rows = graph.read(ATLAS_INFO, {"atlas": atlas})
    return rows[0] if rows else None
