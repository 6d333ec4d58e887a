"""`atlas train --att-hook attn.hook_z`: att SAEs trained on the per-head space, saved with that hook name, and
mapped through W_O by ingest's decoder loading (the model is the atlas's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from atlas_cli.main import app
from ingest.decoders import load_unit_decoder
from queries.ids import Module
from saes.manifest import load_manifest
from steering.model import model_projections
from tests.factories import tiny_hf


def test_att_saes_on_hook_z(tmp_path: Path) -> None:
    model_dir = tmp_path / "tiny"
    hf, tok = tiny_hf("llama", seed=2, spread=1.0)
    hf.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    words = ["head", "value", "query", "key", "output", "river", "stone"]
    (corpus / "docs.jsonl").write_text(
        "\n".join(json.dumps({"text": " ".join(rng.choice(words, 60))}) for _ in range(20))
    )
    out = tmp_path / "atlas"
    args = [
        "train",
        "--model",
        str(model_dir),
        "--name",
        "tiny-z",
        "--layers",
        "0-1",
        "--modules",
        "res,att",
        "--att-hook",
        "attn.hook_z",
        "--width",
        "32",
        "--k",
        "4",
        "--tokens",
        "1000",
        "--corpus",
        str(corpus),
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
    att = manifest.entry(1, Module.ATT)
    assert att is not None
    cfg = json.loads((out / str(att.path) / "cfg.json").read_text())
    assert cfg["metadata"]["hook_name"] == "blocks.1.attn.hook_z"
    dec = load_unit_decoder(att, manifest.base_dir, 32, model_projections(manifest.model))
    assert dec.source_norms is not None and dec.w_o_source == f"model:{model_dir}"
    np.testing.assert_allclose(np.linalg.norm(dec.unit, axis=1), 1.0, rtol=1e-5)

    bad = CliRunner().invoke(app, [*args[:-2], "--out", str(tmp_path / "x"), "--att-hook", "hook_z"])
    assert bad.exit_code != 0 and "att hook 'hook_z' is not valid" in (bad.output + str(bad.exception))
