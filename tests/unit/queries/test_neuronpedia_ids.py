"""Neuronpedia ids: parsing, the SAELens registry's field (offline), the manifest key, circuit-tracer metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from queries.errors import InvalidInput, ManifestError
from queries.flow_graph import FlowEdge, FlowGraph, FlowNode
from queries.ids import Module
from queries.neuronpedia import cantor, effective_source, model_slug, parse_neuronpedia_id
from saes.manifest import SAEEntry, parse_manifest
from saes.sources import neuronpedia_id, registry_neuronpedia_id


def test_parse_and_url() -> None:
    s = parse_neuronpedia_id("gemma-2-2b/20-gemmascope-res-16k")
    assert (s.model, s.layer, s.set, s.source) == ("gemma-2-2b", 20, "gemmascope-res-16k", "20-gemmascope-res-16k")
    assert s.feature_url(10956) == "https://www.neuronpedia.org/gemma-2-2b/20-gemmascope-res-16k/10956"
    with pytest.raises(InvalidInput, match="model}/{layer}-{set}"):
        parse_neuronpedia_id("gemma-2-2b")


def test_registry_field_is_read_offline() -> None:
    assert (
        registry_neuronpedia_id("gemma-scope-2b-pt-res-canonical", "layer_20/width_16k/canonical")
        == "gemma-2-2b/20-gemmascope-res-16k"
    )
    assert registry_neuronpedia_id("gpt2-small-res-jb", "blocks.6.hook_resid_pre") == "gpt2-small/6-res-jb"
    assert registry_neuronpedia_id("no-such-release", "x") is None
    entry = SAEEntry(20, Module.RES, release="gemma-scope-2b-pt-res-canonical", sae_id="layer_20/width_16k/canonical")
    assert neuronpedia_id(entry, ".") == "gemma-2-2b/20-gemmascope-res-16k"


def test_manifest_key_wins_and_is_validated(tmp_path: Path) -> None:
    raw = {
        "name": "m",
        "model": "x/y",
        "d_model": 8,
        "sae": [{"layer": 0, "module": "res", "synthetic": {"d_sae": 4}, "neuronpedia": "y/0-set"}],
    }
    m = parse_manifest(raw, tmp_path)
    assert neuronpedia_id(m.saes[0], tmp_path) == "y/0-set"
    assert 'neuronpedia = "y/0-set"' in m.to_toml()
    raw["sae"][0]["neuronpedia"] = "no-slash"
    with pytest.raises(ManifestError, match="neuronpedia|Neuronpedia id"):
        parse_manifest(raw, tmp_path)


def test_effective_source_falls_back_to_the_atlas() -> None:
    sae = {"atlas": "smollm2-demo", "layer": 11, "module": "mlp", "neuronpedia_id": None}
    s = effective_source(sae, "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert s.id == "smollm2-135m-instruct/11-smollm2-demo-mlp"
    assert model_slug(None, "fallback") == "fallback"


def test_cantor_matches_neuronpedia_graphs() -> None:
    # node "3_373_1" of a Neuronpedia gemma-2-2b graph carries feature 71249
    assert cantor(3, 373) == 71249 and cantor(0, 35) == 665


def _fg() -> FlowGraph:
    nodes = [FlowNode("a/1-res/4", "a", 1, Module.RES, 4), FlowNode("a/2-res/5", "a", 2, Module.RES, 5)]
    return FlowGraph(seeds=["a/2-res/5"], nodes=nodes, edges=[FlowEdge("a/1-res/4", "a/2-res/5", 0.9)])


def test_circuit_tracer_metadata_uses_neuronpedia_ids() -> None:
    ids = {"a/1-res": "gemma-2-2b/1-gemmascope-res-16k", "a/2-res": "gemma-2-2b/2-gemmascope-res-16k"}
    ct = _fg().to_circuit_tracer(neuronpedia=ids)
    assert ct["metadata"]["scan"] == "gemma-2-2b"
    assert ct["metadata"]["feature_details"] == {"neuronpedia_source_set": "gemmascope-res-16k"}
    assert [n["feature"] for n in ct["nodes"]] == [cantor(1, 4), cantor(2, 5)]
    partial = _fg().to_circuit_tracer(neuronpedia={"a/1-res": ids["a/1-res"]})
    assert partial["metadata"]["scan"] == "a" and "feature_details" not in partial["metadata"]
