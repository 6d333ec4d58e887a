"""`atlas train` on a tiny random Llama: SAELens dirs that sae_lens loads and that encode like ours,
a valid atlas.toml, held-out metrics in cfg.json, labels per feature, and a cached second run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from atlas_cli.main import app
from saes.manifest import load_manifest
from saes.saelens_format import load_sae_dir
from tests.factories import tiny_llama


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tiny-model")
    loaded = tiny_llama(seed=3, n_layers=3, d_model=32, n_heads=4, n_kv_heads=2, d_mlp=64)
    loaded.model.save_pretrained(d)
    loaded.tokenizer.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    words = ["river", "stone", "moon", "garden", "lamp", "window", "bread", "silver", "horse", "letter"]
    lines = [json.dumps({"text": "\n\n".join(" ".join(rng.choice(words, 40)) for _ in range(6))}) for _ in range(40)]
    (d / "docs.jsonl").write_text("\n".join(lines))
    return d


def test_atlas_train_round_trips_through_sae_lens(tmp_path: Path, tiny_model_dir: Path, corpus_dir: Path) -> None:
    out = tmp_path / "atlas"
    args = [
        "train",
        "--model",
        str(tiny_model_dir),
        "--name",
        "tiny-cli",
        "--layers",
        "0-1",
        "--width",
        "64",
        "--k",
        "4",
        "--tokens",
        "3000",
        "--corpus",
        str(corpus_dir),
        "--seq-len",
        "32",
        "--batch-seqs",
        "4",
        "--heldout-tokens",
        "400",
        "--held-out-fraction",
        "0.25",
        "--out",
        str(out),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "EV(held-out)" in res.output and "atlas manifest" in res.output

    manifest = load_manifest(out / "atlas.toml")
    assert manifest.name == "tiny-cli" and manifest.d_model == 32
    assert sorted((e.layer, e.module.value) for e in manifest.saes) == [
        (0, "att"),
        (0, "mlp"),
        (0, "res"),
        (1, "att"),
        (1, "mlp"),
        (1, "res"),
    ]

    from sae_lens import SAE

    x = torch.randn(20, 32) * 3
    for entry in manifest.saes:
        d = out / str(entry.path)
        cfg = json.loads((d / "cfg.json").read_text())
        assert cfg["d_in"] == 32 and cfg["d_sae"] == 64 and cfg["architecture"] == "topk" and cfg["k"] == 4
        hook = {"res": "hook_resid_post", "att": "hook_attn_out", "mlp": "hook_mlp_out"}[entry.module.value]
        assert cfg["metadata"]["hook_name"] == f"blocks.{entry.layer}.{hook}"
        assert cfg["metadata"]["model_name"] == str(tiny_model_dir)
        t = cfg["metadata"]["training"]
        assert 0.0 < t["l0_heldout"] <= 4.0 and 0.0 <= t["dead_fraction_heldout"] <= 1.0
        assert -1.0 < t["explained_variance_heldout"] <= 1.0

        sae = SAE.load_from_disk(str(d), device="cpu")
        ours = load_sae_dir(d)
        theirs = sae.encode(x).detach().numpy()
        np.testing.assert_allclose(theirs, ours.encode(x.numpy()), rtol=1e-4, atol=1e-5)
        assert (theirs > 0).sum(-1).max() <= 4
        np.testing.assert_allclose(sae.W_dec.detach().norm(dim=-1).numpy(), 1.0, atol=1e-4)

        labels = [json.loads(line) for line in (d / "feature_labels.jsonl").read_text().splitlines()]
        assert [r["index"] for r in labels] == list(range(64))
        fired = [r for r in labels if r["frequency"] > 0]
        assert fired and all(r["top_contexts"] and "«" in r["top_contexts"][0] and r["label"] for r in fired)

    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["saes"]) == 6 and metrics["tokens_trained"] >= 2900
    assert not (out / "checkpoint.pt").exists()

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "already holds this atlas" in again.output


def test_atlas_train_rejects_bad_layers(tmp_path: Path, tiny_model_dir: Path, corpus_dir: Path) -> None:
    res = CliRunner().invoke(
        app,
        [
            "train",
            "--model",
            str(tiny_model_dir),
            "--layers",
            "7",
            "--corpus",
            str(corpus_dir),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code != 0
    assert "out of range" in str(res.exception) and "0–2" in str(res.exception)
