"""Flow-graph steering end to end against the real Neo4j, with a tiny Llama saved to disk and a planted
atlas ingested by ingest.pipeline: graph resolution, strategies, typed errors, stored runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from queries.db import Graph
from queries.errors import AtlasNotFound, FeatureNotFound, InvalidInput
from queries.steering_runs import get_run, runs_for_feature
from saes.synthetic import planted_atlas
from steering.generate import GenerationConfig
from steering.interventions import Mode, Schedule, Strategy
from steering.service import Steerer, SteeringSettings, SteerRequest
from tests.factories import tiny_llama


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    lm = tiny_llama(seed=0, d_model=128)
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def planted(graph: Graph, atlas_name: str, tiny_model_dir: Path, tmp_path: Path):
    from ingest.pipeline import ingest_atlas
    from saes.manifest import load_manifest

    p = planted_atlas(atlas_name, n_layers=4, d_model=128, d_sae=48, model=str(tiny_model_dir), seed=3)
    manifest = load_manifest(p.write(tmp_path / "atlas"))
    ingest_atlas(manifest, graph, k=2, backend="numpy")
    return p, tmp_path / "atlas" / "atlas.toml"


def _req(atlas: str, **kw) -> SteerRequest:
    base = dict(atlas=atlas, prompts=["I think "], generation=GenerationConfig(max_new_tokens=8, temperature=0))
    base.update(kw)
    return SteerRequest(**base)


def test_cumulative_steering_follows_the_planted_lineage(graph: Graph, planted, atlas_name: str) -> None:
    p, manifest_path = planted
    # a translated res feature at layer 3: its lineage runs back through res(2), res(1), ...
    idx = next(i for (layer, i), t in p.truth.items() if layer == 3 and t.category == "translated")
    chain = [(3, idx)]
    while True:
        t = p.truth[chain[-1]]
        if t.res_parent is None or t.category not in ("translated",):
            break
        chain.append((chain[-1][0] - 1, t.res_parent))
    steerer = Steerer(graph, SteeringSettings(manifests=[str(manifest_path)]))
    res = steerer.steer(
        _req(
            atlas_name,
            seeds=[(f"{atlas_name}/3-res/{idx}", 4.0)],
            strategy=Strategy.CUMULATIVE,
            schedule=Schedule.LINEAR,
            min_similarity=0.5,
            module_min_similarity=0.15,
        )
    )
    used = {a.feature.uid: a.feature.coefficient for a in res.applied}
    for layer, i in chain:
        assert f"{atlas_name}/{layer}-res/{i}" in used  # the planted residual ancestors are steered
    assert res.l_end is not None and res.l_start is not None and res.l_start <= chain[-1][0]
    # linear schedule: strength 4 at l_start, 1 at l_end
    if res.l_end > res.l_start:
        assert used[
            f"{atlas_name}/{res.l_end}-res/{idx if res.l_end == 3 else next(i for l, i in chain if l == res.l_end)}"
        ] == pytest.approx(1.0)
    assert len(res.baseline) == len(res.steered) == 1
    stored = get_run(graph, res.run_id)
    assert stored is not None and stored["atlas"] == atlas_name and stored["steered"] == res.steered
    assert {u["uid"] for u in stored["used"]} == set(used)
    runs = runs_for_feature(graph, f"{atlas_name}/3-res/{idx}")
    assert [r["id"] for r in runs] == [res.run_id] and runs[0]["coefficient"] == pytest.approx(
        used[f"{atlas_name}/3-res/{idx}"]
    )


def test_seeds_only_explicit_features_and_rescale(graph: Graph, planted, atlas_name: str) -> None:
    _, manifest_path = planted
    steerer = Steerer(graph, SteeringSettings(manifests=[str(manifest_path.parent)]))
    res = steerer.steer(
        _req(atlas_name, seeds=[("2/res/5", 3.0)], features=[(f"{atlas_name}/1-mlp/2", -2.0)], store=False)
    )
    assert sorted(a.feature.uid for a in res.applied) == [f"{atlas_name}/1-mlp/2", f"{atlas_name}/2-res/5"]
    assert res.run_id is None
    res2 = steerer.steer(
        _req(atlas_name, features=[(f"{atlas_name}/2-res/5", 0.0)], mode=Mode.RESCALE, prompts=["a", "bc"])
    )
    assert res2.applied[0].feature.mode is Mode.RESCALE and len(res2.steered) == 2


def test_bad_requests_are_typed(graph: Graph, planted, atlas_name: str) -> None:
    _, manifest_path = planted
    steerer = Steerer(graph, SteeringSettings(manifests=[str(manifest_path)]))
    with pytest.raises(FeatureNotFound, match=rf"{atlas_name}/2-res/4000"):
        steerer.steer(_req(atlas_name, seeds=[(f"{atlas_name}/2-res/4000", 1.0)]))
    with pytest.raises(InvalidInput, match="belongs to atlas 'other-atlas'"):
        steerer.steer(_req(atlas_name, seeds=[("other-atlas/2-res/4", 1.0)]))
    with pytest.raises(AtlasNotFound):
        steerer.steer(_req("no-such-atlas-xyz", seeds=[("2/res/4", 1.0)]))
    with pytest.raises(InvalidInput, match="strength 1e\\+300"):
        steerer.steer(_req(atlas_name, seeds=[("2/res/4", 1e300)]))
    with pytest.raises(InvalidInput, match="prompt #1 is empty"):
        steerer.steer(_req(atlas_name, prompts=[""], seeds=[("2/res/4", 1.0)]))
    with pytest.raises(InvalidInput, match="maxNewTokens 100000"):
        steerer.steer(_req(atlas_name, seeds=[("2/res/4", 1.0)], generation=GenerationConfig(max_new_tokens=100_000)))
    with pytest.raises(InvalidInput, match="layer 40 is out of range"):
        steerer.steer(_req(atlas_name, seeds=[("2/res/4", 1.0)], strategy=Strategy.SINGLE, layer=40))
    # Without configured manifests the Atlas node's manifest_path (recorded by ingest) is enough ...
    assert Steerer(graph, SteeringSettings()).steer(_req(atlas_name, seeds=[("2/res/4", 1.0)])).applied
    # ... and once that atlas.toml is gone, the error says so.
    manifest_path.rename(manifest_path.with_suffix(".moved"))
    with pytest.raises(InvalidInput, match="no atlas.toml"):
        Steerer(graph, SteeringSettings()).steer(_req(atlas_name, seeds=[("2/res/4", 1.0)]))


def test_mutation_round_trip_and_api_key(
    graph: Graph, planted, atlas_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    from atlas_api.app import create_app
    from atlas_api.settings import ApiSettings

    _, manifest_path = planted
    monkeypatch.setenv("ATLAS_STEER_MANIFESTS", f'["{manifest_path}"]')
    query = """mutation($input: SteerInput!) { steer(input: $input) {
      __typename
      ... on SteerSuccess { runId baseline steered generations { prompt baseline steered } features { uid layer module coefficient mode } lStart lEnd }
      ... on FeatureNotFound { uid message } ... on InvalidInput { message } ... on ModelUnavailable { message } } }"""
    good = {
        "atlas": atlas_name,
        "prompt": "I think ",
        "maxNewTokens": 6,
        "seed": 1,
        "seeds": [{"uid": f"{atlas_name}/3-res/0", "strength": 6.0}],
        "strategy": "CUMULATIVE",
        "schedule": "EXPONENTIAL",
        "graph": {"minSimilarity": 0.5, "moduleMinSimilarity": 0.15},
    }
    with TestClient(create_app(ApiSettings(api_key="sekret"))) as client:
        denied = client.post("/graphql", json={"query": query, "variables": {"input": good}}).json()
        assert denied["data"] is None and "API key" in denied["errors"][0]["message"]
        h = {"X-API-Key": "sekret"}
        out = client.post("/graphql", json={"query": query, "variables": {"input": good}}, headers=h).json()
        steer = out["data"]["steer"]
        assert steer["__typename"] == "SteerSuccess", out
        assert len(steer["baseline"]) == 1 and steer["generations"][0]["prompt"] == "I think "
        coefs = {f["uid"]: f["coefficient"] for f in steer["features"]}
        assert coefs[f"{atlas_name}/3-res/0"] > 0 and all(f["mode"] == "ADD" for f in steer["features"])
        run = get_run(graph, steer["runId"])
        assert run is not None and run["strategy"] == "cumulative" and run["schedule"] == "exponential"
        missing = client.post(
            "/graphql",
            json={
                "query": query,
                "variables": {"input": {**good, "seeds": [{"uid": f"{atlas_name}/3-res/999", "strength": 1.0}]}},
            },
            headers=h,
        ).json()
        assert missing["data"]["steer"] == {
            "__typename": "FeatureNotFound",
            "uid": f"{atlas_name}/3-res/999",
            "message": missing["data"]["steer"]["message"],
        }
        bad = client.post(
            "/graphql", json={"query": query, "variables": {"input": {**good, "prompt": " "}}}, headers=h
        ).json()
        assert bad["data"]["steer"]["__typename"] == "InvalidInput" and "empty" in bad["data"]["steer"]["message"]
        # the server stays up after errors
        assert client.get("/healthz").status_code == 200


def test_missing_model_is_model_unavailable(graph: Graph, planted, atlas_name: str, tmp_path: Path) -> None:
    from dataclasses import replace

    from queries.errors import ModelUnavailable
    from saes.manifest import load_manifest

    _, manifest_path = planted
    m = load_manifest(manifest_path)
    moved = replace(m, model=str(tmp_path / "gone-model"))
    path = moved.write(manifest_path.parent / "atlas-missing-model.toml")
    with pytest.raises(ModelUnavailable, match="does not exist"):
        Steerer(graph).steer(_req(atlas_name, seeds=[("2/res/4", 1.0)], manifest=str(path)))
