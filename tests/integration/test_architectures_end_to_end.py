"""Gemma 2, GPT-2 and GPT-NeoX end to end: a tiny random model of each trains an atlas with `atlas train`,
the atlas ingests into the real Neo4j, and the API's `steer` mutation steers the model with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from queries.db import Graph
from tests.factories import tiny_hf

STEER = """mutation($input: SteerInput!) { steer(input: $input) {
  __typename ... on SteerSuccess { baseline steered features { uid coefficient } }
  ... on InvalidInput { message } ... on ModelUnavailable { message } ... on FeatureNotFound { message } } }"""


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    words = ["river", "stone", "moon", "garden", "lamp", "window", "bread", "silver", "horse", "letter"]
    lines = [json.dumps({"text": "\n\n".join(" ".join(rng.choice(words, 30)) for _ in range(4))}) for _ in range(24)]
    (d / "docs.jsonl").write_text("\n".join(lines))
    return d


@pytest.mark.parametrize("arch", ["gemma2", "gpt2", "gpt_neox"])
def test_train_ingest_steer(
    arch: str, graph: Graph, atlas_name: str, corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    from atlas_api.app import create_app
    from atlas_api.settings import ApiSettings
    from atlas_cli.main import app
    from ingest.pipeline import ingest_atlas
    from saes.manifest import load_manifest

    model_dir = tmp_path / f"tiny-{arch}"
    hf, tok = tiny_hf(arch, seed=1, spread=1.0)
    hf.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    out = tmp_path / "atlas"
    args = [
        "train",
        "--model",
        str(model_dir),
        "--name",
        atlas_name,
        "--layers",
        "0-1",
        "--width",
        "32",
        "--k",
        "4",
        "--tokens",
        "1500",
        "--corpus",
        str(corpus_dir),
        "--seq-len",
        "32",
        "--batch-seqs",
        "4",
        "--heldout-tokens",
        "200",
        "--held-out-fraction",
        "0.25",
        "--out",
        str(out),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    manifest = load_manifest(out / "atlas.toml")
    assert manifest.d_model == 32 and len(manifest.saes) == 6

    report = ingest_atlas(manifest, graph, k=2, backend="numpy")
    assert report.n_features == 6 * 32 and report.n_edges > 0

    monkeypatch.delenv("ATLAS_STEER_MANIFESTS", raising=False)  # the Atlas node's manifest path is enough
    features = [{"uid": f"{atlas_name}/1-res/{i}", "strength": 200.0} for i in range(4)]
    body = {
        "atlas": atlas_name,
        "prompt": "river stone ",
        "maxNewTokens": 8,
        "seed": 0,
        "temperature": 0,
        "features": features,
        "strategy": "SEEDS",
    }
    with TestClient(create_app(ApiSettings(mutations="open"))) as client:  # loopback test client: no key needed
        answer = client.post("/graphql", json={"query": STEER, "variables": {"input": body}}).json()
    steer = answer["data"]["steer"]
    assert steer["__typename"] == "SteerSuccess", answer
    assert {f["uid"] for f in steer["features"]} == {f["uid"] for f in features}
    assert steer["steered"] != steer["baseline"]  # the intervention reached the model
