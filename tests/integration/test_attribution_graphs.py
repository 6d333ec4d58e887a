"""Attribution graphs in the graph store, on a planted atlas whose residual SAEs carry Neuronpedia ids.

A synthetic circuit-tracer graph over the same Neuronpedia source set is imported (streamed), linked to the
atlas's features, exported back (equal to the file and valid against the published schema), queried
through GraphQL and the Cypher recipes (which must agree), and broken in the ways the issue names:
a schema violation names its path, and an interrupted import is never visible.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.pipeline import ingest_atlas
from interop import attribution_graphs as ag
from interop.graph_schema import validate_graph
from interop.synthetic_graph import SyntheticGraphSpec, write_synthetic_graph
from queries import attribution_graphs as Q
from queries import features as qf
from queries.db import Graph
from queries.errors import GraphSchemaError
from queries.flow_graph import Direction, build_flow_graph
from queries.ids import feature_uid
from queries.maintenance import drop_atlas
from queries.recipes import get_recipe
from saes.manifest import load_manifest
from saes.synthetic import PlantedAtlas, planted_atlas
from tests.servers import gql, running_api

N_LAYERS, D_SAE = 3, 16
NP_MODEL, NP_SET = "planted-model", "plantedscope-res-16"


@pytest.fixture(scope="module")
def planted(graph: Graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlantedAtlas]:
    name = f"test-ag-{uuid.uuid4().hex[:8]}"
    pa = planted_atlas(name=name, n_layers=N_LAYERS, d_model=128, d_sae=D_SAE, seed=9)
    path = pa.write(Path(tmp_path_factory.mktemp("ag")) / "atlas")
    text = path.read_text()
    for layer in range(N_LAYERS):
        text = text.replace(
            f'path = "saes/{layer}-res"', f'path = "saes/{layer}-res"\nneuronpedia = "{NP_MODEL}/{layer}-{NP_SET}"'
        )
    path.write_text(text)
    ingest_atlas(load_manifest(path), graph, k=2)
    yield pa
    drop_atlas(graph, name)


@pytest.fixture(scope="module")
def stored(graph: Graph, planted: PlantedAtlas, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    spec = SyntheticGraphSpec(
        n_layers=N_LAYERS,
        n_features=30,
        n_links=400,
        d_sae=D_SAE,
        scan=NP_MODEL,
        source_set=NP_SET,
        slug=f"g-{uuid.uuid4().hex[:8]}",
        seed=3,
    )
    path = write_synthetic_graph(Path(tmp_path_factory.mktemp("graph")) / "graph.json", spec)
    report = ag.import_graph(graph, path, atlas=planted.name, link_batch=64)
    yield report.id, path
    ag.drop_graph(graph, report.id)


def _graph_features(graph: Graph, gid: str) -> dict[str, list[str]]:
    return {r["uid"]: r["node_ids"] for r in graph.read(Q.GRAPH_FEATURES, {"id": gid})}


def test_import_counts_and_feature_links(graph: Graph, planted: PlantedAtlas, stored: tuple[str, Path]) -> None:
    gid, path = stored
    doc = json.loads(path.read_text())
    row = graph.read(Q.GRAPH_BY_ID, {"id": gid})[0]["g"]
    assert row["n_nodes"] == len(doc["nodes"]) and row["n_links"] == len(doc["links"]) == 400
    feature_nodes = [n for n in doc["nodes"] if n["feature_type"] == "cross layer transcoder"]
    assert row["n_linked"] == len(feature_nodes) == 30
    expected: dict[str, list[str]] = {}
    for (
        n
    ) in feature_nodes:  # node id {layer}_{index}_{ctx} → res feature of that layer (the source set is the res SAEs')
        layer, index, _ = n["node_id"].split("_")
        expected.setdefault(feature_uid(planted.name, int(layer), "res", int(index)), []).append(n["node_id"])
    got = _graph_features(graph, gid)
    assert {u: sorted(v) for u, v in got.items()} == {u: sorted(v) for u, v in expected.items()}


def test_export_round_trip_is_equal_and_valid(graph: Graph, stored: tuple[str, Path], tmp_path: Path) -> None:
    gid, path = stored
    out = ag.export_graph(graph, gid, tmp_path / "back.json")
    back = json.loads(out.read_text())
    validate_graph(back)
    assert back == json.loads(path.read_text())


def _lineage_uids(graph: Graph, uid: str) -> set[str]:
    return build_flow_graph(graph, uid, direction=Direction.UPSTREAM).uids


def test_graphs_using_lineage_graphql_and_recipe_agree(
    graph: Graph, planted: PlantedAtlas, stored: tuple[str, Path]
) -> None:
    gid, _ = stored
    feats = _graph_features(graph, gid)
    seed = max(feats, key=lambda u: (int(u.split("/")[1].split("-")[0]), u))  # a graph feature in the last layer
    expected = sorted(_lineage_uids(graph, seed) & set(feats))
    assert seed in expected
    with running_api() as api:
        d = gql(
            api,
            "query($u: String!) { attributionGraphsUsingLineage(uid: $u) { graph { id nLinks } features nodeIds } }",
            {"u": seed},
        )
    assert "errors" not in d, d
    hits = {h["graph"]["id"]: h for h in d["data"]["attributionGraphsUsingLineage"]}
    assert sorted(hits[gid]["features"]) == expected
    assert set(hits[gid]["nodeIds"]) == {nid for u in expected for nid in feats[u]}
    recipe = get_recipe("graphs-using-lineage")
    rows = {r["graph"]: r for r in graph.read(recipe.statement, recipe.params({"uid": seed}))}
    assert sorted(rows[gid]["features"]) == expected


def test_feature_origins_graphql_and_recipe_agree_with_origin(graph: Graph, stored: tuple[str, Path]) -> None:
    gid, _ = stored
    feats = _graph_features(graph, gid)
    truth = {}
    for uid in feats:
        o = qf.origin_from_flow_graph(build_flow_graph(graph, uid, direction=Direction.UPSTREAM), uid)
        truth[uid] = (o.layer, o.module, o.born_as.uid, o.source.uid if o.source else None)
    with running_api() as api:
        d = gql(
            api,
            "query($id: String!) { attributionGraph(id: $id) { nLinked featureOrigins { "
            "features { nodeIds origin { feature { uid } layer module bornAs { uid } source { uid } } } census { layer module count } } } }",
            {"id": gid},
        )
    assert "errors" not in d, d
    fo = d["data"]["attributionGraph"]["featureOrigins"]
    got = {
        x["origin"]["feature"]["uid"]: (
            x["origin"]["layer"],
            x["origin"]["module"].lower(),
            x["origin"]["bornAs"]["uid"],
            (x["origin"]["source"] or {}).get("uid"),
        )
        for x in fo["features"]
    }
    assert got == truth
    assert sum(c["count"] for c in fo["census"]) == len(truth)
    recipe = get_recipe("graph-feature-origins")
    rows = graph.read(recipe.statement, recipe.params({"graph": gid}))
    assert {r["feature"]: (r["layer"], r["module"], r["born_as"], r["source"]) for r in rows} == truth


def _write(tmp: Path, doc: dict[str, Any]) -> Path:
    p = tmp / f"{uuid.uuid4().hex[:6]}.json"
    p.write_text(json.dumps(doc))
    return p


def test_schema_violation_names_the_first_offending_path(
    graph: Graph, stored: tuple[str, Path], tmp_path: Path
) -> None:
    _, path = stored
    doc = json.loads(path.read_text())
    bad = json.loads(json.dumps(doc))
    bad["metadata"]["slug"] = "bad-node"
    bad["nodes"][2]["ctx_idx"] = "x"
    with pytest.raises(GraphSchemaError, match=r"^nodes\[2\]\.ctx_idx: expected integer"):
        ag.import_graph(graph, _write(tmp_path, bad))
    bad = json.loads(json.dumps(doc))
    bad["metadata"]["slug"] = "bad-link"
    bad["links"][150]["source"] = "no-such-node"
    with pytest.raises(GraphSchemaError, match=r"^links\[150\]\.source: 'no-such-node' is not the node_id"):
        ag.import_graph(graph, _write(tmp_path, bad), link_batch=64)  # two batches were written before it
    del bad["links"]
    with pytest.raises(GraphSchemaError, match=r"^links: required field is missing"):
        ag.import_graph(graph, _write(tmp_path, bad))
    ids = {r["g"]["id"] for r in graph.read(Q.LIST_GRAPHS, {"scan": NP_MODEL, "limit": 1000})}
    assert f"{NP_MODEL}/bad-node" not in ids and f"{NP_MODEL}/bad-link" not in ids
    assert (
        graph.read(
            "MATCH (g:AttributionGraph) WHERE g.pending_id STARTS WITH $p RETURN count(g) AS n",
            {"p": f"{NP_MODEL}/bad"},
        )[0]["n"]
        == 0
    )


def test_interrupted_import_is_invisible_and_collected(
    graph: Graph, planted: PlantedAtlas, stored: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gid, path = stored
    doc = json.loads(path.read_text())
    doc["metadata"]["slug"] = "killed"
    src = _write(tmp_path, doc)
    calls = {"n": 0}
    real_write = Graph.write

    def dying_write(self: Graph, text: Any, params: Any = None, **kw: Any) -> Any:
        if text == Q.CREATE_GRAPH_LINKS:
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt  # as if the process were stopped between two link batches
        return real_write(self, text, params, **kw)

    monkeypatch.setattr(Graph, "write", dying_write)
    monkeypatch.setattr(ag, "delete_graph_rows", lambda *a, **k: None)  # a killed process cleans nothing up
    with pytest.raises(KeyboardInterrupt):
        ag.import_graph(graph, src, link_batch=64)
    monkeypatch.undo()
    staged = graph.read(
        "MATCH (g:AttributionGraph {pending_id: $id}) RETURN g.key AS key, g.complete AS complete",
        {"id": f"{NP_MODEL}/killed"},
    )
    assert len(staged) == 1 and staged[0]["complete"] is False
    assert graph.read(Q.GRAPH_BY_ID, {"id": f"{NP_MODEL}/killed"}) == []
    with running_api() as api:
        d = gql(api, "{ attributionGraphs(limit: 1000) { id } }")
    assert f"{NP_MODEL}/killed" not in {g["id"] for g in d["data"]["attributionGraphs"]}
    feats = _graph_features(graph, gid)
    hits = graph.read(Q.GRAPHS_USING_FEATURES, {"uids": list(feats)})
    assert {h["g"]["id"] for h in hits} == {gid}
    # A second import of the same graph removes the interrupted one and publishes
    report = ag.import_graph(graph, src)
    assert report.n_links == 400
    assert (
        graph.read("MATCH (g:AttributionGraph {pending_id: $id}) RETURN count(g) AS n", {"id": f"{NP_MODEL}/killed"})[
            0
        ]["n"]
        == 0
    )
    with pytest.raises(Exception, match="already stored"):
        ag.import_graph(graph, src)
    ag.drop_graph(graph, report.id)
    assert graph.read("MATCH (n:GraphNode {graph: $k}) RETURN count(n) AS n", {"k": report.key})[0]["n"] == 0


def test_cli_imports_lists_and_reports_bad_files_in_one_line(
    graph: Graph, planted: PlantedAtlas, stored: tuple[str, Path], tmp_path: Path
) -> None:
    import subprocess
    import sys

    atlas_bin = str(Path(sys.executable).parent / "atlas")
    _, path = stored
    doc = json.loads(path.read_text())
    doc["metadata"]["slug"] = "cli"
    good = _write(tmp_path, doc)
    out = subprocess.run([atlas_bin, "graphs", "import", str(good)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "400 links" in out.stdout and "30 of 30 feature nodes linked" in out.stdout
    back = tmp_path / "back.json"
    assert (
        subprocess.run(
            [atlas_bin, "graphs", "export", f"{NP_MODEL}/cli", str(back)], capture_output=True, timeout=60
        ).returncode
        == 0
    )
    assert json.loads(back.read_text()) == doc
    ag.drop_graph(graph, f"{NP_MODEL}/cli")
    doc["nodes"][0].pop("jsNodeId")
    bad = subprocess.run(
        [atlas_bin, "graphs", "import", str(_write(tmp_path, doc))], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "error: nodes[0].jsNodeId: required field is missing"


def test_flow_graph_export_imports_back_linked_to_its_features(
    graph: Graph, planted: PlantedAtlas, tmp_path: Path
) -> None:
    fg = build_flow_graph(
        graph,
        feature_uid(planted.name, 2, "res", 4),
        direction=Direction.UPSTREAM,
        min_similarity=0,
        module_min_similarity=0,
    )
    assert any(n.module.value != "res" for n in fg.nodes)  # att/mlp nodes have no Neuronpedia id: scan stays the atlas
    doc = fg.to_circuit_tracer(slug=f"flow-{uuid.uuid4().hex[:6]}")
    assert doc["metadata"]["scan"] == planted.name
    validate_graph(doc)
    report = ag.import_graph(graph, _write(tmp_path, doc))
    try:
        assert report.mapping == f"flow-graph export of atlas {planted.name}"
        assert set(_graph_features(graph, report.id)) == fg.uids
        assert report.n_links == len(fg.edges)
    finally:
        ag.drop_graph(graph, report.id)
