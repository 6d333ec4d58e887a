"""Neuronpedia ids and the Neuronpedia export layout, on a planted atlas written by the real ingest.

The residual SAEs get Neuronpedia ids (one from the manifest, the others from their cfg.json, as SAELens
writes it); att/mlp SAEs have none. Labels are planted, exported in Neuronpedia's layout, cleared and read
back: every label must come back to the feature it left.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ingest.pipeline import ingest_atlas
from interop.neuronpedia import export_neuronpedia, import_labels
from queries import neuronpedia as qnp
from queries.db import Graph
from queries.errors import InvalidInput
from queries.flow_graph import Direction, build_flow_graph
from queries.ids import Module, feature_uid
from queries.maintenance import drop_atlas
from saes.manifest import AtlasManifest, load_manifest
from saes.synthetic import PlantedAtlas, planted_atlas
from tests.servers import gql, running_api

N_LAYERS, D_SAE = 3, 16
NP_MODEL, NP_SET = "planted-model", "plantedscope-res-16"


@pytest.fixture(scope="module")
def planted(graph: Graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlantedAtlas]:
    name = f"test-np-{uuid.uuid4().hex[:8]}"
    pa = planted_atlas(name=name, n_layers=N_LAYERS, d_model=128, d_sae=D_SAE, seed=5)
    folder = Path(tmp_path_factory.mktemp("np")) / "atlas"
    path = pa.write(folder)
    for layer in range(1, N_LAYERS):  # cfg.json metadata, as SAELens saves a registry SAE
        cfg_path = folder / "saes" / f"{layer}-res" / "cfg.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.setdefault("metadata", {})["neuronpedia_id"] = f"{NP_MODEL}/{layer}-{NP_SET}"
        cfg_path.write_text(json.dumps(cfg))
    text = path.read_text().replace(
        'path = "saes/0-res"', f'path = "saes/0-res"\nneuronpedia = "{NP_MODEL}/0-{NP_SET}"'
    )
    path.write_text(text)
    ingest_atlas(load_manifest(path), graph, k=2)
    yield pa
    drop_atlas(graph, name)


def _first_line(path: Path) -> dict:
    with gzip.open(path, "rt") as fh:
        return json.loads(fh.readline())


def _labels(graph: Graph, atlas: str) -> dict[str, str]:
    rows = graph.read(
        "MATCH (f:Feature {atlas: $a}) WHERE f.label IS NOT NULL RETURN f.uid AS uid, f.label AS label", {"a": atlas}
    )
    return {r["uid"]: r["label"] for r in rows}


def test_sae_nodes_keep_neuronpedia_ids(graph: Graph, planted: PlantedAtlas) -> None:
    rows = graph.read(qnp.SAE_SOURCES, {"atlases": [planted.name]})
    got = {(r["layer"], r["module"]): r["neuronpedia_id"] for r in rows}
    for layer in range(N_LAYERS):
        assert got[(layer, "res")] == f"{NP_MODEL}/{layer}-{NP_SET}"
        assert got.get((layer, "att")) is None and got.get((layer, "mlp")) is None


def test_api_neuronpedia_url_and_circuit_tracer_scan(graph: Graph, planted: PlantedAtlas) -> None:
    res_uid = feature_uid(planted.name, 2, "res", 7)
    att_uid = feature_uid(planted.name, 2, "att", 3)
    with running_api() as api:
        d = gql(
            api,
            "query($a: String!, $b: String!) { a: feature(uid: $a) { ... on Feature { neuronpediaUrl } } "
            "b: feature(uid: $b) { ... on Feature { neuronpediaUrl } } "
            "l: lineage(uid: $a, modules: [], minSimilarity: 0) { circuitTracerJson } "
            "m: lineage(uid: $a, minSimilarity: 0, moduleMinSimilarity: 0) { circuitTracerJson } }",
            {"a": res_uid, "b": att_uid},
        )
    assert "errors" not in d, d
    assert d["data"]["a"]["neuronpediaUrl"] == f"https://www.neuronpedia.org/{NP_MODEL}/2-{NP_SET}/7"
    assert d["data"]["b"]["neuronpediaUrl"] is None
    ct = d["data"]["l"]["circuitTracerJson"]  # residual nodes only: one Neuronpedia model and source set
    assert ct["metadata"]["scan"] == NP_MODEL
    assert ct["metadata"]["feature_details"] == {"neuronpedia_source_set": NP_SET}
    seed = next(n for n in ct["nodes"] if n["node_id"] == "2_7_2")
    assert seed["feature"] == qnp.cantor(2, 7)
    mixed = d["data"]["m"]["circuitTracerJson"]  # att/mlp nodes have no id: the atlas name stays the scan
    if any(n["ctx_idx"] != 2 for n in mixed["nodes"]):
        assert mixed["metadata"]["scan"] == planted.name and "feature_details" not in mixed["metadata"]


def test_neuronpedia_export_round_trip(graph: Graph, planted: PlantedAtlas, tmp_path: Path) -> None:
    planted_labels = {
        feature_uid(planted.name, layer, mod.value, i): f"planted label {layer}-{mod.value}-{i}"
        for layer in range(N_LAYERS)
        for mod in (Module.RES, Module.MLP)
        for i in range(0, D_SAE, 3)
    }
    graph.write(
        "UNWIND $rows AS r MATCH (f:Feature {uid: r.uid}) SET f.label = r.label",
        {"rows": [{"uid": u, "label": v} for u, v in planted_labels.items()]},
    )
    report = export_neuronpedia(graph, planted.name, tmp_path / "np", batch_size=5)
    assert report.features == N_LAYERS * 3 * D_SAE
    assert report.explanations == len(planted_labels)
    res_dir = tmp_path / "np" / NP_MODEL / f"1-{NP_SET}"
    batches = sorted((res_dir / "features").glob("batch-*.jsonl.gz"))
    assert [b.name for b in batches] == ["batch-0.jsonl.gz", "batch-1.jsonl.gz", "batch-2.jsonl.gz", "batch-3.jsonl.gz"]
    first = _first_line(batches[0])
    assert first["modelId"] == NP_MODEL and first["layer"] == f"1-{NP_SET}" and first["index"] == "0"
    assert (
        first["sourceSetName"] == NP_SET and first["hookName"] == "blocks.1.hook_resid_post" and "frac_nonzero" in first
    )
    expl = _first_line(res_dir / "explanations" / "batch-0.jsonl.gz")
    assert expl["description"] == planted_labels[feature_uid(planted.name, 1, "res", 0)]
    assert {"modelId", "layer", "index", "description", "typeName", "explanationModelName"} <= set(expl)
    # att/mlp SAEs have no Neuronpedia id: exported under the model slug and {layer}-{atlas}-{module}
    assert (tmp_path / "np" / "planted" / f"2-{planted.name}-mlp" / "explanations" / "batch-0.jsonl.gz").is_file()

    graph.write("MATCH (f:Feature {atlas: $a}) REMOVE f.label", {"a": planted.name})
    got = import_labels(graph, tmp_path / "np", atlas=planted.name)
    assert got.records == got.matched == got.labelled == len(planted_labels)
    assert got.unmatched_source == got.out_of_range == 0
    assert _labels(graph, planted.name) == planted_labels


def test_import_without_atlas_labels_every_atlas_holding_the_sae(
    graph: Graph, planted: PlantedAtlas, tmp_path: Path
) -> None:
    # A second atlas over the same layer-1 residual SAE directory (its cfg.json carries the Neuronpedia id).
    m = load_manifest(
        Path(graph.read("MATCH (a:Atlas {name: $a}) RETURN a.manifest_path AS p", {"a": planted.name})[0]["p"])
        / "atlas.toml"
    )
    entry = m.entry(1, Module.RES)
    twin = AtlasManifest(
        name=f"{planted.name}-twin",
        model=m.model,
        d_model=m.d_model,
        saes=[replace(entry, path=str(m.base_dir / entry.path))],
        base_dir=tmp_path,
    )
    ingest_atlas(load_manifest(twin.write(tmp_path / "atlas.toml")), graph, k=2)
    try:
        folder = tmp_path / "np" / NP_MODEL / f"1-{NP_SET}" / "explanations"
        folder.mkdir(parents=True)
        with gzip.open(folder / "batch-0.jsonl.gz", "wt") as fh:
            for i, text in ((2, "low score"), (2, "high score"), (5, "five"), (99, "beyond the width")):
                fh.write(
                    json.dumps(
                        {
                            "modelId": NP_MODEL,
                            "layer": f"1-{NP_SET}",
                            "index": str(i),
                            "description": text,
                            "scoreV1": 0.9 if text == "high score" else 0.1,
                        }
                    )
                    + "\n"
                )
        r = import_labels(graph, tmp_path / "np")
        assert (r.records, r.matched, r.out_of_range, r.labelled) == (4, 3, 1, 4)  # 2 features x 2 atlases
        for name in (planted.name, twin.name):
            labels = _labels(graph, name)
            assert (
                labels[feature_uid(name, 1, "res", 2)] == "high score"
                and labels[feature_uid(name, 1, "res", 5)] == "five"
            )
    finally:
        drop_atlas(graph, twin.name)


def test_export_of_another_model_is_one_clear_error(graph: Graph, planted: PlantedAtlas, tmp_path: Path) -> None:
    before = _labels(graph, planted.name)
    folder = tmp_path / "gpt2-small" / "6-res-jb" / "explanations"
    folder.mkdir(parents=True)
    with gzip.open(folder / "batch-0.jsonl.gz", "wt") as fh:
        fh.write(
            json.dumps({"modelId": "gpt2-small", "layer": "6-res-jb", "index": "3", "description": "the letter x"})
            + "\n"
        )
    with pytest.raises(InvalidInput, match="gpt2-small.*planted-model"):
        import_labels(graph, tmp_path, atlas=planted.name)
    assert _labels(graph, planted.name) == before


def test_flow_graph_export_without_ids_keeps_the_atlas_scan(graph: Graph, planted: PlantedAtlas) -> None:
    fg = build_flow_graph(graph, feature_uid(planted.name, 2, "res", 1), direction=Direction.UPSTREAM, min_similarity=0)
    ct = fg.to_circuit_tracer()
    assert ct["metadata"]["scan"] == planted.name and "feature_details" not in ct["metadata"]
