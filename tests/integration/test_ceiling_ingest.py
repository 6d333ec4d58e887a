"""Seed ceilings at ingest: a [[ceiling]] SAE (same hook point, another seed) gives its atlas SAE's node the
top-1 cosine summary against it; a bad ceiling file stops the ingest before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.options import IngestOptions
from ingest.pipeline import ingest_atlas
from queries.db import Graph
from queries.errors import SAEFileError
from queries.ids import Module
from saes.manifest import AtlasManifest, SAEEntry, load_manifest
from saes.saelens_format import save_sae_dir
from saes.weights import SAEWeights

# 30 of the 40 features of 1-res reappear (rotated slightly) in its seed copy, 7 come straight from res(0);
# d 256 keeps chance cosines below 0.4
D, D_SAE, SHARED, FLOWING = 256, 40, 30, 7


def _unit(w: np.ndarray) -> np.ndarray:
    return (w / np.linalg.norm(w, axis=1, keepdims=True)).astype(np.float32)


def _write(folder: Path, name: str, ceiling_d_in: int = D) -> Path:
    rng = np.random.default_rng(3)
    res1 = _unit(rng.standard_normal((D_SAE, D)))
    twin = _unit(rng.standard_normal((D_SAE, ceiling_d_in)))
    if ceiling_d_in == D:
        twin[:SHARED] = _unit(res1[:SHARED] + 0.3 * _unit(rng.standard_normal((SHARED, D))))
    res0 = _unit(rng.standard_normal((D_SAE, D)))
    res0[:FLOWING] = res1[-FLOWING:]  # the last FLOWING features of 1-res come straight from res(0)
    for path, w in (("0-res", res0), ("1-res", res1), ("1-res-seed1", twin)):
        save_sae_dir(folder / path, SAEWeights(W_dec=w, hook_name=f"blocks.{path[0]}.hook_resid_post"))
    return AtlasManifest(
        name,
        "tiny",
        D,
        [SAEEntry(0, Module.RES, path="0-res"), SAEEntry(1, Module.RES, path="1-res")],
        base_dir=folder,
        ceilings=[SAEEntry(1, Module.RES, path="1-res-seed1")],
    ).write(folder / "atlas.toml")


def test_ceiling_is_stored_on_the_sae_node(graph: Graph, atlas_name: str, tmp_path: Path) -> None:
    manifest = load_manifest(_write(tmp_path, atlas_name))
    assert [c.path for c in manifest.ceilings] == ["1-res-seed1"]
    ingest_atlas(manifest, graph, options=IngestOptions(k=2, backend="numpy"))
    rows = graph.read(
        "MATCH (s:SAE {atlas: $a, module: 'res'}) RETURN s.layer AS layer, s.ceiling_median AS med, "
        "s.ceiling_share_ge_half AS share, s.ceiling_seed AS seed ORDER BY layer",
        {"a": atlas_name},
    )
    assert rows[0] == {"layer": 0, "med": None, "share": None, "seed": None}  # no ceiling trained there
    cos = 1 / np.sqrt(1 + 0.3**2)  # each shared row's cosine with its twin, to first order
    assert rows[1]["share"] == pytest.approx(SHARED / D_SAE)  # the shared rows ≥ 0.5, random ones far below
    assert rows[1]["med"] > cos - 0.1 and rows[1]["seed"] == "path:1-res-seed1"
    # the API's atlases query reads the same properties
    from queries.features import ATLASES

    saes = graph.read(ATLASES, {"name": atlas_name})[0]["saes"]
    info = {s["layer"]: s for s in saes if s["module"] == "res"}
    assert info[1]["ceiling_median"] == pytest.approx(rows[1]["med"])


def test_flow_shares_count_what_flows_against_the_controls(graph: Graph, atlas_name: str, tmp_path: Path) -> None:
    from atlas_cli.demo import format_flow
    from queries.sae_metrics import flow_shares, pooled_flow

    ingest_atlas(load_manifest(_write(tmp_path, atlas_name)), graph, options=IngestOptions(k=2, backend="numpy"))
    rows = flow_shares(graph, atlas_name)
    assert [(r["layer"], r["n"], r["n_with_s_res"]) for r in rows] == [(0, D_SAE, 0), (1, D_SAE, D_SAE)]
    assert rows[1]["n_s_res_ge_cut"] == FLOWING  # planted copies score 1; random rows in d 256 stay far below 0.5
    assert rows[1]["res_null_p999"] < 0.5 and rows[1]["ceiling_share_ge_half"] == pytest.approx(SHARED / D_SAE)
    assert rows[1]["n_module_above_null"] == 0  # no att/mlp SAEs: nothing can beat a module null
    pooled = pooled_flow(rows, [0, 1])
    assert pooled["n_with_s_res"] == D_SAE and pooled["share_s_res_ge_cut"] == pytest.approx(FLOWING / D_SAE)
    text = format_flow(rows)
    assert "no res(L-1) SAE" in text and f"{FLOWING / D_SAE:.1%}" in text


def test_bad_ceiling_file_writes_nothing(graph: Graph, atlas_name: str, tmp_path: Path) -> None:
    manifest = load_manifest(_write(tmp_path, atlas_name, ceiling_d_in=D + 1))
    with pytest.raises(SAEFileError, match="1-res .*d_in = 257 but the atlas.s d_model = 256"):
        ingest_atlas(manifest, graph, options=IngestOptions(k=2, backend="numpy"))
    assert graph.read("MATCH (a:Atlas {name: $a}) RETURN count(a) AS n", {"a": atlas_name}) == [{"n": 0}]


def test_a_new_revision_replaces_the_ingested_atlas(graph: Graph, atlas_name: str, tmp_path: Path) -> None:
    """Retraining writes the same SAE table with new weights; the manifest's revision (the trainer's spec hash)
    changes its fingerprint, so `atlas demo` rebuilds the graph instead of resuming into the old features."""
    from ingest.pipeline import resumable
    from queries.sae_metrics import flow_shares
    from saes.saelens_format import load_sae_dir

    manifest = load_manifest(_write(tmp_path, atlas_name))
    assert not resumable(graph, manifest)  # nothing ingested yet
    ingest_atlas(manifest, graph, options=IngestOptions(k=2, backend="numpy"))
    assert resumable(graph, manifest) and flow_shares(graph, atlas_name)[1]["n_s_res_ge_cut"] == FLOWING
    # retrained: res(1) is now res(0) itself (every feature flows), same table, new revision
    save_sae_dir(
        tmp_path / "1-res",
        SAEWeights(W_dec=load_sae_dir(tmp_path / "0-res").W_dec, hook_name="blocks.1.hook_resid_post"),
    )
    manifest.revision = "retrained"
    retrained = load_manifest(manifest.write(tmp_path / "atlas.toml"))
    assert retrained.revision == "retrained" and not resumable(graph, retrained)
    ingest_atlas(retrained, graph, options=IngestOptions(k=2, backend="numpy", resume=resumable(graph, retrained)))
    assert flow_shares(graph, atlas_name)[1]["n_s_res_ge_cut"] == D_SAE
