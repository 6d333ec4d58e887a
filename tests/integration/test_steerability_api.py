"""Steerability end to end (issue #25 item 6): `atlas steerability` screens every feature of a planted atlas with a
tiny Llama and stores it in the real Neo4j with a benchmark's figures; GraphQL serves, filters and sorts by it; the
steer path defaults a left-out strength (units ALPHA) to the measured α."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from queries.db import Graph
from queries.errors import InvalidInput
from queries.steerability import count_measured
from steering.generate import GenerationConfig
from steering.interventions import Strategy, Units
from steering.service import Steerer, SteeringSettings, SteerRequest
from tests.servers import gql, running_api

FEATURE_Q = """query($uid: String!) { feature(uid: $uid) { ... on Feature {
  steerability { kl tokens tokenGains benchGain benchN benchAlpha benchConcept } } } }"""
SORTED_Q = """query($a: String!, $s: [FeatureSort!]) {
  features(where: {atlas: {eq: $a}, steerKl: {gt: 0}}, sort: $s, limit: 5) { uid steerability { kl benchGain } } }"""
ATLAS_Q = """query($name: String!) { atlases(name: $name) {
  steerAlpha steerDefaultAlpha steerDefaultAlphaGraph steerDefaultSource saes { key medianNorm } } }"""


def _bench_json(path: Path, atlas: str, seed_uid: str) -> Path:
    """The parts of a steering-bench.json that `--bench-json` reads (one concept, one tested seed)."""
    path.write_text(
        json.dumps(
            {
                "run": {"settings": {"atlas": atlas, "quick": True}},
                "quiet": True,
                "concepts_steered": 1,
                "methods": {"sae_feature": {"alpha_median": 0.2}, "flow_graph": {"alpha_median": 0.45}},
                "per_concept": {
                    "weddings": {
                        "unsteered": {"test": {"harmonic_mean": 0.10, "n": 20}},
                        "sae_feature": {
                            "test": {"harmonic_mean": 0.16, "n": 20},
                            "choice": {"alpha": 0.6},
                            "features": [seed_uid],
                        },
                    }
                },
            }
        )
    )
    return path


@pytest.fixture
def screened(graph: Graph, atlas_name: str, tmp_path: Path) -> dict[str, Any]:
    from typer.testing import CliRunner

    from atlas_cli.main import app
    from ingest.pipeline import ingest_atlas
    from saes.manifest import load_manifest
    from saes.synthetic import planted_atlas
    from tests.factories import tiny_llama

    lm = tiny_llama(seed=2, d_model=128)
    model_dir = tmp_path / "model"
    lm.model.save_pretrained(model_dir)
    lm.tokenizer.save_pretrained(model_dir)
    pa = planted_atlas(atlas_name, n_layers=3, d_model=128, d_sae=16, model=str(model_dir), seed=1)
    path = pa.write(tmp_path / "atlas")
    ingest_atlas(load_manifest(path), graph, k=2, backend="numpy")
    seed = f"{atlas_name}/2-res/3"
    # before any benchmark: a left-out strength is one clear error naming the fix
    steerer = Steerer(graph, SteeringSettings(manifests=[str(path)]))
    with pytest.raises(InvalidInput, match="atlas steerability"):
        steerer.steer(_req(atlas_name, features=[(f"{atlas_name}/1-res/0", None)]))
    bench = _bench_json(tmp_path / "steering-bench.json", atlas_name, seed)
    out = CliRunner().invoke(
        app, ["steerability", atlas_name, "--manifest", str(path), "--bench-json", str(bench), "--batch", "7"]
    )
    assert out.exit_code == 0, out.output
    return {"path": path, "seed": seed, "steerer": steerer, "output": out.output}


def _req(atlas: str, **kw: Any) -> SteerRequest:
    base: dict[str, Any] = dict(
        atlas=atlas,
        prompts=["I think "],
        generation=GenerationConfig(max_new_tokens=4, temperature=0),
        units=Units.ALPHA,
        store=False,
    )
    base.update(kw)
    return SteerRequest(**base)


def test_every_feature_is_screened_and_served(graph: Graph, atlas_name: str, screened: dict[str, Any]) -> None:
    n = 3 * 3 * 16
    assert count_measured(graph, atlas_name) == n
    assert f'"features": {n}' in screened["output"] and "benchmark figures on 1 of 1 seeds" in screened["output"]
    with running_api() as base:
        seed = gql(base, FEATURE_Q, {"uid": screened["seed"]})["data"]["feature"]["steerability"]
        assert seed["kl"] >= 0 and len(seed["tokens"]) == len(seed["tokenGains"]) == 5
        assert seed["tokenGains"] == sorted(seed["tokenGains"], reverse=True)
        assert seed["benchGain"] == pytest.approx(0.06) and seed["benchN"] == 20
        assert seed["benchAlpha"] == 0.6 and seed["benchConcept"] == "weddings"
        other = gql(base, FEATURE_Q, {"uid": f"{atlas_name}/1-att/2"})["data"]["feature"]["steerability"]
        assert other["benchGain"] is None and other["kl"] >= 0

        by_kl = gql(base, SORTED_Q, {"a": atlas_name, "s": [{"steerKl": "DESC"}]})
        assert "errors" not in by_kl, by_kl
        kls = [f["steerability"]["kl"] for f in by_kl["data"]["features"]]
        assert len(kls) == 5 and kls == sorted(kls, reverse=True)
        top_kl = graph.read("MATCH (f:Feature {atlas: $a}) RETURN max(f.steer_kl) AS m", {"a": atlas_name})[0]["m"]
        assert kls[0] == pytest.approx(top_kl)
        # DESC puts features without the property last: the one benchmarked seed comes first
        by_gain = gql(base, SORTED_Q, {"a": atlas_name, "s": [{"steerBenchGain": "DESC"}]})["data"]["features"]
        assert by_gain[0]["uid"] == screened["seed"] and by_gain[1]["steerability"]["benchGain"] is None
        only = gql(
            base,
            "query($a: String!) { features(where: {atlas: {eq: $a}, steerBenchGain: {gt: 0}}) { uid } }",
            {"a": atlas_name},
        )["data"]["features"]
        assert [f["uid"] for f in only] == [screened["seed"]]

        atlas = gql(base, ATLAS_Q, {"name": atlas_name})["data"]["atlases"][0]
        assert atlas["steerAlpha"] == 0.3 and atlas["steerDefaultAlpha"] == 0.2
        assert atlas["steerDefaultAlphaGraph"] == 0.45 and "quick" in atlas["steerDefaultSource"]
        assert all(s["medianNorm"] and s["medianNorm"] > 0 for s in atlas["saes"])


def test_a_left_out_strength_is_the_measured_alpha(graph: Graph, atlas_name: str, screened: dict[str, Any]) -> None:
    steerer: Steerer = screened["steerer"]
    other = f"{atlas_name}/1-res/0"
    res = steerer.steer(_req(atlas_name, features=[(screened["seed"], None), (other, None)]))
    used = {a.feature.uid: a for a in res.applied}
    assert used[screened["seed"]].feature.coefficient == 0.6  # the benchmark's choice for this seed
    assert used[other].feature.coefficient == 0.2  # the atlas default for single features
    norms = {
        r["key"]: r["m"]
        for r in graph.read("MATCH (s:SAE {atlas: $a}) RETURN s.key AS key, s.median_norm AS m", {"a": atlas_name})
    }
    # the CLI measured the unit in bf16 where the CPU has it, the steerer in fp32: equal to bf16 precision
    assert used[other].vector_norm == pytest.approx(0.2 * norms[f"{atlas_name}/1-res"], rel=2e-2)
    graph_res = steerer.steer(
        _req(atlas_name, seeds=[(f"{atlas_name}/2-res/5", None)], strategy=Strategy.CUMULATIVE, min_similarity=0.0)
    )
    assert graph_res.applied and all(a.feature.coefficient == 0.45 for a in graph_res.applied)
    with pytest.raises(InvalidInput, match="units ALPHA"):
        steerer.steer(_req(atlas_name, features=[(other, None)], units=Units.ACTIVATION))
