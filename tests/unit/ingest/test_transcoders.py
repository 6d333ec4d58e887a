"""Transcoders match as mlp features: SAELens transcoders (cfg.json d_out + hook_name_out) and circuit-tracer's
per-layer transcoder files. Planted: a transcoder decoder row equal to 2 × a known res(1) direction is that res
feature's top-1 mlp neighbour. A transcoder whose hooks disagree with its module is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ingest.decoders import load_unit_decoder, validate_atlas
from ingest.layer_matching import match_layer
from ingest.scores import Thresholds
from queries.errors import SAEFileError
from queries.ids import Module
from saes.manifest import AtlasManifest, SAEEntry
from saes.saelens_format import load_sae_dir, save_sae_dir
from saes.weights import SAEWeights

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

D, D_SAE, PLANT_T, PLANT_RES = 32, 40, 4, 9


def _res(folder: Path, rng: np.random.Generator) -> np.ndarray:
    rows = rng.standard_normal((D_SAE, D)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    save_sae_dir(
        folder / "0-res",
        SAEWeights(W_dec=rng.standard_normal((D_SAE, D)).astype(np.float32), hook_name="blocks.0.hook_resid_post"),
    )
    save_sae_dir(folder / "1-res", SAEWeights(W_dec=rows, hook_name="blocks.1.hook_resid_post"))
    return rows


def _planted_rows(rng: np.random.Generator, res1: np.ndarray) -> np.ndarray:
    dec = rng.standard_normal((D_SAE, D)).astype(np.float32)
    dec[PLANT_T] = 2.0 * res1[PLANT_RES]
    return dec


def _top_mlp_of(manifest: AtlasManifest) -> tuple[int, float, float]:
    d_model, _ = validate_atlas(manifest)
    dec = {
        m.value: load_unit_decoder(e, manifest.base_dir, d_model)
        for m in Module
        if (e := manifest.entry(1, m)) is not None
    }
    prev = load_unit_decoder(manifest.entry(0, Module.RES), manifest.base_dir, d_model)  # type: ignore[arg-type]
    r = match_layer(1, dec, prev, 2, Thresholds(), "numpy")
    mlp_edges = next(e for e in r.edges if e.source_module == "mlp")
    into = mlp_edges.dst == PLANT_RES
    top = int(mlp_edges.src[into & (mlp_edges.target_rank == 0)][0])
    sim = float(mlp_edges.sim[into & (mlp_edges.target_rank == 0)][0])
    return top, sim, float(r.features["mlp"]["norm"][PLANT_T])


def test_sae_lens_transcoder_encodes_like_sae_lens_and_matches_as_mlp(tmp_path: Path) -> None:
    from sae_lens import SAE

    rng = np.random.default_rng(1)
    res1 = _res(tmp_path, rng)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    tc = SAEWeights(
        W_dec=_planted_rows(rng, res1),
        W_enc=f(D, D_SAE) * 0.3,
        b_enc=f(D_SAE) * 0.1,
        b_dec=f(D) * 0.1,
        threshold=np.abs(f(D_SAE)) * 0.3,
        architecture="jumprelu_transcoder",
        apply_b_dec_to_input=False,
        hook_name="blocks.1.ln2.hook_normalized",
        hook_name_out="blocks.1.hook_mlp_out",
    )
    path = save_sae_dir(tmp_path / "1-mlp", tc)
    cfg = json.loads((path / "cfg.json").read_text())
    assert cfg["architecture"] == "jumprelu_transcoder" and cfg["d_out"] == D
    theirs = SAE.load_from_disk(str(path), device="cpu")
    x = torch.randn(16, D, generator=torch.Generator().manual_seed(0)) * 2
    ours = load_sae_dir(path)
    assert ours.is_transcoder and ours.hook_name_out == "blocks.1.hook_mlp_out"
    np.testing.assert_allclose(ours.encode(x.numpy()), theirs.encode(x).detach().numpy(), rtol=1e-4, atol=1e-5)

    entries = [
        SAEEntry(0, Module.RES, path="0-res"),
        SAEEntry(1, Module.RES, path="1-res"),
        SAEEntry(1, Module.MLP, path="1-mlp"),
    ]
    top, sim, norm = _top_mlp_of(AtlasManifest("tc", "tiny", D, entries, base_dir=tmp_path))
    assert top == PLANT_T and sim > 0.999 and norm == pytest.approx(2.0, rel=1e-5)

    misplaced = [
        SAEEntry(0, Module.RES, path="0-res"),
        SAEEntry(1, Module.RES, path="1-res"),
        SAEEntry(1, Module.ATT, path="1-mlp"),
    ]
    with pytest.raises(
        SAEFileError,
        match=r"transcoder reading blocks.1.ln2.hook_normalized and writing blocks.1.hook_mlp_out, which disagree .*module 'att'",
    ):
        validate_atlas(AtlasManifest("tc", "tiny", D, misplaced, base_dir=tmp_path))


def test_circuit_tracer_per_layer_transcoder_matches_as_mlp(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(2)
    res1 = _res(tmp_path, rng)
    save_file(
        {
            "W_enc": rng.standard_normal((D_SAE, D)).astype(np.float32),
            "W_dec": _planted_rows(rng, res1),
            "b_enc": np.zeros(D_SAE, np.float32),
            "b_dec": np.zeros(D, np.float32),
            "activation_function.threshold": np.full(D_SAE, 0.1, np.float32),
        },
        str(tmp_path / "layer_1.safetensors"),
    )
    (tmp_path / "transcoders.yaml").write_text(
        "model_name: tiny\nfeature_input_hook: hook_resid_mid\nfeature_output_hook: hook_mlp_out\n"
        "transcoders:\n  - layer_1.safetensors\n"
    )
    entries = [
        SAEEntry(0, Module.RES, path="0-res"),
        SAEEntry(1, Module.RES, path="1-res"),
        SAEEntry(1, Module.MLP, path="layer_1.safetensors"),
    ]
    manifest = AtlasManifest("ct", "tiny", D, entries, base_dir=tmp_path)
    top, sim, norm = _top_mlp_of(manifest)
    assert top == PLANT_T and sim > 0.999 and norm == pytest.approx(2.0, rel=1e-5)

    (tmp_path / "transcoders.yaml").write_text(
        "feature_input_hook: hook_resid_mid\nfeature_output_hook: hook_attn_out\n"
    )
    with pytest.raises(
        SAEFileError, match=r"writing blocks.1.hook_attn_out, which disagree .*writes blocks.1.hook_mlp_out"
    ):
        validate_atlas(manifest)
