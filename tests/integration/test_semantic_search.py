"""search(mode: SEMANTIC) on planted labels whose semantic neighbour is known and shares no word with the query."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.pipeline import ingest_atlas
from interop.semantic import embed_atlas
from queries.db import Graph
from queries.ids import feature_uid
from queries.maintenance import drop_atlas
from saes.manifest import load_manifest
from saes.synthetic import planted_atlas
from tests.servers import gql, running_api

LABELS = {
    0: ("wedding bride groom vows", ["…the «bride» walked down the aisle…"]),
    1: ("football striker goal penalty", ["…the «striker» scored in the final minute…"]),
    2: ("oven bake flour dough", ["…knead the «dough» and let it rise…"]),
    3: ("thunderstorm rain forecast", ["…heavy «rain» expected tomorrow…"]),
    4: ("python function return variable", ["…def «function»(x): return x…"]),
    5: ("shares investors stock exchange", ["…the «stock» fell three percent…"]),
}
QUERIES = {
    "marriage": 0,
    "soccer match": 1,
    "baking bread": 2,
    "weather": 3,
    "programming code": 4,
    "finance market": 5,
}


@pytest.fixture(scope="module")
def atlas(graph: Graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"test-sem-{uuid.uuid4().hex[:8]}"
    pa = planted_atlas(name=name, n_layers=1, d_model=128, d_sae=8, modules=("res",), seed=2)
    ingest_atlas(load_manifest(pa.write(Path(tmp_path_factory.mktemp("sem")) / "atlas")), graph, k=2)
    graph.write(
        "UNWIND $rows AS r MATCH (f:Feature {uid: r.uid}) SET f.label = r.label, f.top_contexts = r.contexts",
        {
            "rows": [
                {"uid": feature_uid(name, 0, "res", i), "label": lab, "contexts": ctx}
                for i, (lab, ctx) in LABELS.items()
            ]
        },
    )
    yield name
    drop_atlas(graph, name)


def test_semantic_neighbour_is_found_where_full_text_finds_nothing(graph: Graph, atlas: str) -> None:
    with running_api() as api:
        before = gql(
            api, 'query($a: String!) { search(text: "marriage", atlas: $a, mode: SEMANTIC) { score } }', {"a": atlas}
        )
        assert (
            before["errors"][0]["extensions"]["code"] == "INVALID_INPUT"
            and "atlas labels embed" in before["errors"][0]["message"]
        )
        report = embed_atlas(graph, atlas)
        assert report.embedded == report.features == len(LABELS)
        assert embed_atlas(graph, atlas).embedded == 0  # unchanged texts are not embedded again
        for query, index in QUERIES.items():
            d = gql(
                api,
                "query($t: String!, $a: String!) { sem: search(text: $t, atlas: $a, mode: SEMANTIC, limit: 3) { feature { uid label } score } "
                "ft: search(text: $t, atlas: $a) { feature { uid } } }",
                {"t": query, "a": atlas},
            )
            assert "errors" not in d, d
            hits = d["data"]["sem"]
            assert hits[0]["feature"]["uid"] == feature_uid(atlas, 0, "res", index), (query, hits)
            assert hits[0]["score"] > hits[1]["score"]
            assert d["data"]["ft"] == [], query  # no word in common: full text cannot find it
