"""similar(uid, sae, k): nearest decoder directions from the SAE files, on planted atlases.

Checked against a numpy brute force over the planted decoders and against the planted parents; across a
second atlas of the same model reading the same SAE files; and the bad inputs (another d_model, another
model) as one clear error each.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ingest.pipeline import ingest_atlas
from interop.neighbours import similar
from queries.db import Graph
from queries.errors import InvalidInput
from queries.ids import Module, feature_uid
from queries.maintenance import drop_atlas
from saes.manifest import AtlasManifest, load_manifest
from saes.synthetic import PlantedAtlas, planted_atlas
from tests.servers import gql, running_api

N_LAYERS, D_SAE = 3, 16


@pytest.fixture(scope="module")
def atlases(graph: Graph, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlantedAtlas, str, str, str]]:
    tag = uuid.uuid4().hex[:8]
    folder = Path(tmp_path_factory.mktemp("sim"))
    pa = planted_atlas(name=f"test-sim-{tag}", n_layers=N_LAYERS, d_model=128, d_sae=D_SAE, seed=4)
    m = load_manifest(pa.write(folder / "a"))
    ingest_atlas(m, graph, k=2)
    # Another atlas of the same model over the same files (only the res SAE of layer 1), one of another d_model, one of another model.
    entry = m.entry(1, Module.RES)
    shared = replace(entry, path=str(m.base_dir / entry.path), layer=1)  # the same SAE files, by absolute path
    twin = AtlasManifest(
        name=f"test-sim-twin-{tag}", model=m.model, d_model=128, saes=[shared], base_dir=folder / "twin"
    )
    twin.write(folder / "twin" / "atlas.toml")
    ingest_atlas(load_manifest(folder / "twin" / "atlas.toml"), graph, k=2)
    wide = planted_atlas(
        name=f"test-sim-wide-{tag}", n_layers=1, d_model=256, d_sae=8, modules=("res",), model=pa.model, seed=1
    )
    ingest_atlas(load_manifest(wide.write(folder / "wide")), graph, k=2)
    other = planted_atlas(
        name=f"test-sim-other-{tag}", n_layers=1, d_model=128, d_sae=8, modules=("res",), model="other/model", seed=1
    )
    ingest_atlas(load_manifest(other.write(folder / "other")), graph, k=2)
    yield pa, twin.name, wide.name, other.name
    for name in (pa.name, twin.name, wide.name, other.name):
        drop_atlas(graph, name)


def _unit(w: np.ndarray) -> np.ndarray:
    return w / np.linalg.norm(w, axis=1, keepdims=True)


def test_top_k_equals_brute_force_and_planted_parents(
    graph: Graph, atlases: tuple[PlantedAtlas, str, str, str]
) -> None:
    pa = atlases[0]
    for (layer, index), t in pa.truth.items():
        uid = feature_uid(pa.name, layer, "res", index)
        q = _unit(pa.weights[(layer, Module.RES)].W_dec)[index]
        for mod in (Module.RES, Module.ATT, Module.MLP):
            tl = layer - 1 if mod is Module.RES else layer
            if tl < 0:
                continue
            cos = _unit(pa.weights[(tl, mod)].W_dec) @ q
            r = similar(graph, uid, f"{pa.name}/{tl}-{mod.value}", k=3)
            assert [n.index for n in r.neighbours] == list(np.argsort(-cos)[:3]), (uid, mod)
            assert np.allclose([n.cosine for n in r.neighbours], np.sort(cos)[::-1][:3], atol=1e-5)
        if t.category in ("translated", "processed") and t.res_parent is not None:
            assert similar(graph, uid, f"{pa.name}/{layer - 1}-res", k=1).neighbours[0].index == t.res_parent
        if t.category == "newborn" and t.module_parent is not None:
            mod, j = t.module_parent
            assert similar(graph, uid, f"{pa.name}/{layer}-{mod.value}", k=1).neighbours[0].index == j


def test_same_sae_excludes_the_feature_and_other_atlas_agrees(
    graph: Graph, atlases: tuple[PlantedAtlas, str, str, str]
) -> None:
    pa, twin, _, _ = atlases
    r = similar(graph, feature_uid(pa.name, 2, "res", 0), f"{pa.name}/2-res", k=5)
    assert 0 not in [n.index for n in r.neighbours] and len(r.neighbours) == 5
    assert [n.cosine for n in r.neighbours] == sorted((n.cosine for n in r.neighbours), reverse=True)
    uid = feature_uid(pa.name, 2, "res", 5)
    mine, theirs = similar(graph, uid, f"{pa.name}/1-res", k=4), similar(graph, uid, f"{twin}/1-res", k=4)
    assert [n.index for n in mine.neighbours] == [n.index for n in theirs.neighbours]
    assert theirs.neighbours[0].uid == feature_uid(twin, 1, "res", theirs.neighbours[0].index)


def test_bad_inputs_are_one_clear_error(graph: Graph, atlases: tuple[PlantedAtlas, str, str, str]) -> None:
    pa, _, wide, other = atlases
    uid = feature_uid(pa.name, 1, "res", 2)
    with pytest.raises(InvalidInput, match="d_in = 256 .* d_in = 128"):
        similar(graph, uid, f"{wide}/0-res")
    with pytest.raises(InvalidInput, match="of model .*other/model"):
        similar(graph, uid, f"{other}/0-res")
    with pytest.raises(InvalidInput, match="has no SAE 7-res"):
        similar(graph, uid, f"{pa.name}/7-res")
    with pytest.raises(InvalidInput, match="is not valid"):
        similar(graph, uid, f"{pa.name}/layer1")


def test_api_similar(graph: Graph, atlases: tuple[PlantedAtlas, str, str, str]) -> None:
    pa, _, wide, _ = atlases
    uid = feature_uid(pa.name, 2, "res", 3)
    q = "query($u: String!, $s: String!) { similar(uid: $u, sae: $s, k: 2) { sae dIn cold millis neighbours { uid index cosine feature { uid layer } } } }"
    with running_api() as api:
        d = gql(api, q, {"u": uid, "s": f"{pa.name}/1-res"})
        bad = gql(api, q, {"u": uid, "s": f"{wide}/0-res"})
    assert "errors" not in d, d
    r = d["data"]["similar"]
    assert r["sae"] == f"{pa.name}/1-res" and r["dIn"] == 128 and len(r["neighbours"]) == 2
    assert r["neighbours"][0]["feature"]["uid"] == r["neighbours"][0]["uid"]
    assert r["neighbours"] == [
        {"uid": n.uid, "index": n.index, "cosine": pytest.approx(n.cosine), "feature": {"uid": n.uid, "layer": 1}}
        for n in similar(graph, uid, f"{pa.name}/1-res", k=2).neighbours
    ]
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_INPUT" and "d_in" in bad["errors"][0]["message"]
