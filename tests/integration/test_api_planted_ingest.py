"""The API and recipes on an atlas written by the real ingest pipeline from planted synthetic SAEs.

The planted truth (saes.synthetic) fixes every residual feature's category, residual parent and
module parent; "high" links are ≥ 0.6 and "low" ones < 0.2, so with the residual cut 0.5 and a module
cut of 0.3 the exact lineage and origin of every feature follow from the truth alone.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atlas_api.settings import ApiSettings
from ingest.pipeline import ingest_atlas
from queries.db import Graph
from queries.flow_graph import Direction, build_flow_graph
from queries.ids import feature_uid
from queries.maintenance import drop_atlas
from queries.recipes import get_recipe
from saes.manifest import load_manifest
from saes.synthetic import PlantedAtlas, planted_atlas
from tests.servers import gql, running_api

N_LAYERS, D_SAE = 5, 24
MOD_CUT = 0.3


@pytest.fixture(scope="module")
def planted(graph: Graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlantedAtlas]:
    name = f"test-planted-{uuid.uuid4().hex[:8]}"
    pa = planted_atlas(name=name, n_layers=N_LAYERS, d_model=128, d_sae=D_SAE, seed=11)
    manifest = load_manifest(pa.write(Path(tmp_path_factory.mktemp("planted")) / "atlas"))
    ingest_atlas(manifest, graph, k=4)
    yield pa
    drop_atlas(graph, name)


def expected_upstream(pa: PlantedAtlas, layer: int, index: int) -> tuple[set[str], set[tuple[str, str]]]:
    nodes = {feature_uid(pa.name, layer, "res", index)}
    edges: set[tuple[str, str]] = set()
    cur = (layer, index)
    while True:
        t = pa.truth[cur]
        here = feature_uid(pa.name, cur[0], "res", cur[1])
        if t.module_parent is not None and t.kind in ("processed", "newborn"):  # kind: the first layer has no category
            mod, j = t.module_parent
            m = feature_uid(pa.name, cur[0], mod.value, j)
            nodes.add(m)
            edges.add((m, here))
        if t.category in ("translated", "processed") and t.res_parent is not None:
            prev = feature_uid(pa.name, cur[0] - 1, "res", t.res_parent)
            nodes.add(prev)
            edges.add((prev, here))
            cur = (cur[0] - 1, t.res_parent)
            continue
        return nodes, edges


def test_every_upstream_lineage_matches_the_planted_truth(graph: Graph, planted: PlantedAtlas) -> None:
    for layer, index in planted.truth:
        fg = build_flow_graph(
            graph,
            feature_uid(planted.name, layer, "res", index),
            direction=Direction.UPSTREAM,
            module_min_similarity=MOD_CUT,
        )
        nodes, edges = expected_upstream(planted, layer, index)
        assert fg.uids == nodes, (layer, index)
        assert {(e.source, e.target) for e in fg.edges} == edges, (layer, index)


def test_downstream_follows_planted_children_only(graph: Graph, planted: PlantedAtlas) -> None:
    children: dict[tuple[int, int], set[int]] = {}
    for (layer, index), t in planted.truth.items():
        if t.category in ("translated", "processed") and t.res_parent is not None:
            children.setdefault((layer - 1, t.res_parent), set()).add(index)
    for layer, index in planted.truth:
        fg = build_flow_graph(
            graph,
            feature_uid(planted.name, layer, "res", index),
            direction=Direction.DOWNSTREAM,
            module_min_similarity=MOD_CUT,
        )
        res_edges = [e for e in fg.edges if "-res/" in e.source]
        for e in res_edges:  # every residual link taken is a planted parent → child link
            src_l, src_i = int(e.source.split("/")[1].split("-")[0]), int(e.source.rsplit("/", 1)[1])
            dst_i = int(e.target.rsplit("/", 1)[1])
            assert dst_i in children.get((src_l, src_i), set()), e
        # and the chain goes on exactly while the last node has a planted child
        last = max((n for n in fg.nodes if n.module.value == "res"), key=lambda n: n.layer)
        assert (last.layer == planted.layers[-1]) or not children.get((last.layer, last.index)), (layer, index, last)


def test_api_origin_and_categories_match_truth(graph: Graph, planted: PlantedAtlas, neo4j_settings: Any) -> None:
    q = (
        """query($uid: String!) { origin(uid: $uid, thresholds: {residual: 0.5, module: %s}) { ... on Origin {
      layer module bornAs { uid } source { uid } chain { feature { uid } category } } } }"""
        % MOD_CUT
    )
    with running_api(ApiSettings(), neo4j_settings) as api:
        for (layer, index), t in sorted(planted.truth.items()):
            o = gql(api, q, {"uid": feature_uid(planted.name, layer, "res", index)})["data"]["origin"]
            # walk the truth back to the birth
            cur, chain = (layer, index), []
            while True:
                ct = planted.truth[cur]
                chain.append(
                    (feature_uid(planted.name, cur[0], "res", cur[1]), ct.category.upper() if ct.category else None)
                )
                if ct.category in ("translated", "processed") and ct.res_parent is not None:
                    cur = (cur[0] - 1, ct.res_parent)
                    continue
                break
            born = planted.truth[cur]
            assert [(s["feature"]["uid"], s["category"]) for s in o["chain"]] == chain
            assert o["layer"] == cur[0] and o["bornAs"]["uid"] == chain[-1][0]
            if born.kind == "newborn":  # in the first layer too, where the category itself is absent
                mod, j = born.module_parent  # type: ignore[misc]
                assert (o["module"], o["source"]["uid"]) == (
                    mod.value.upper(),
                    feature_uid(planted.name, cur[0], mod.value, j),
                )
            else:
                assert (o["module"], o["source"]) == ("RES", None)
        got = gql(api, '{ atlases(name: "%s") { complete minLayer maxLayer nSaes nFeatures } }' % planted.name)["data"][
            "atlases"
        ]
        assert got == [
            {
                "complete": True,
                "minLayer": 0,
                "maxLayer": N_LAYERS - 1,
                "nSaes": 3 * N_LAYERS,
                "nFeatures": 3 * N_LAYERS * D_SAE,
            }
        ]


def test_recipes_on_planted_atlas(graph: Graph, planted: PlantedAtlas) -> None:
    census = graph.read(
        get_recipe("origin-census").statement, get_recipe("origin-census").params({"atlas": planted.name})
    )
    truth = Counter((L, t.category) for (L, _), t in planted.truth.items())
    assert truth[(0, None)] == D_SAE  # no res(-1) SAE: layer 0 carries no category
    for row in census:
        for cat in ("translated", "processed", "newborn", "unexplained"):
            assert row[cat] == truth[(row["layer"], cat)], (row, cat)
    assert sum(r["total"] for r in census) == len(planted.truth)
    for layer in planted.layers:
        r = get_recipe("born-in-mlp")
        rows = graph.read(
            r.statement, r.params({"atlas": planted.name, "layer": layer, "module_min_similarity": MOD_CUT})
        )
        expected = {
            (feature_uid(planted.name, layer, "res", i), feature_uid(planted.name, layer, "mlp", t.module_parent[1]))
            for (L, i), t in planted.truth.items()
            if layer == L and t.category == "newborn" and t.module_parent and t.module_parent[0].value == "mlp"
        }
        assert {(x["feature"], x["born_from"]) for x in rows} == expected
