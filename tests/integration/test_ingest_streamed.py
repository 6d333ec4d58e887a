"""A layer over the memory budget is matched by streaming decoder tiles from the files (ingest.streaming); the graph
is the same as the in-memory path's: same edges with the same ranks, the same scores, categories and controls."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.options import IngestOptions
from ingest.pipeline import ingest_atlas
from queries.db import Graph
from queries.maintenance import drop_atlas
from saes.manifest import load_manifest
from saes.synthetic import write_planted_atlas

EDGES = """
MATCH (s:Feature {atlas: $a})-[e:FLOWS_TO]->(t:Feature {atlas: $a})
RETURN s.layer AS sl, s.module AS sm, s.index AS si, t.layer AS tl, t.index AS ti,
       e.target_rank AS tr, e.source_rank AS sr, e.similarity AS sim
ORDER BY sl, sm, si, tl, ti
"""
FEATURES = """
MATCH (f:Feature {atlas: $a})
RETURN f.layer AS l, f.module AS m, f.index AS i, f.decoder_norm AS n, f.s_res AS sres, f.s_att AS satt,
       f.s_mlp AS smlp, f.category AS c
ORDER BY l, m, i
"""
CONTROLS = "MATCH (s:SAE {atlas: $a, module: 'res'}) RETURN s.layer AS l, properties(s) AS p ORDER BY l"


@pytest.fixture
def second_atlas(graph: Graph, atlas_name: str) -> Iterator[str]:
    yield atlas_name + "-streamed"
    drop_atlas(graph, atlas_name + "-streamed")


def test_streamed_layers_equal_in_memory(graph: Graph, atlas_name: str, second_atlas: str, tmp_path: Path) -> None:
    manifest = load_manifest(write_planted_atlas(tmp_path, n_layers=3, d_model=128, d_sae=80, seed=4))
    mem = ingest_atlas(dataclasses.replace(manifest, name=atlas_name), graph, options=IngestOptions(k=3, null_rows=512))
    streamed = ingest_atlas(
        dataclasses.replace(manifest, name=second_atlas),
        graph,
        options=IngestOptions(k=3, null_rows=512, memory_budget=1, stream_tile_rows=32),  # every pair is over 1 byte
    )
    assert mem.streamed_layers == [] and streamed.streamed_layers == manifest.layers
    for query in (EDGES, FEATURES):
        a, b = graph.read(query, {"a": atlas_name}), graph.read(query, {"a": second_atlas})
        assert len(a) == len(b) > 0
        for x, y in zip(a, b, strict=True):
            for key in x:
                if isinstance(x[key], float):
                    assert y[key] == pytest.approx(x[key], abs=2e-6), (key, x, y)
                else:
                    assert y[key] == x[key], (key, x, y)
    a, b = graph.read(CONTROLS, {"a": atlas_name}), graph.read(CONTROLS, {"a": second_atlas})
    for x, y in zip(a, b, strict=True):
        nulls = {k: v for k, v in x["p"].items() if "_null_" in k or "_score_" in k}
        assert nulls and {k: y["p"][k] for k in nulls} == pytest.approx(nulls, abs=2e-6)
