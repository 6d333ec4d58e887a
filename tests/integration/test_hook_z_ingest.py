"""Attention SAEs on hook_z: rows mapped into d_model through the atlas model's W_O match like att features.

Planted: a z-space row built as ``r @ pinv(W_O)`` (so that W_O maps it onto 3 × a known res(1) direction) must
be that res feature's top-1 att neighbour; both norms are stored and the SAE node says where W_O came from.
Without a model to read W_O from, ingest refuses before writing anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ingest.options import IngestOptions
from ingest.pipeline import ingest_atlas
from queries.db import Graph
from queries.errors import SAEFileError
from queries.ids import Module
from saes.manifest import AtlasManifest, SAEEntry, load_manifest
from saes.saelens_format import load_sae_dir, save_sae_dir
from saes.weights import SAEWeights
from steering.architectures import output_projection
from steering.hooks import run_capture
from steering.model import model_projections, wrap_model
from tests.factories import byte_tokenizer, hf_config

D, D_Z, D_SAE, PLANT_Z, PLANT_RES = 32, 64, 24, 5, 11


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoModelForCausalLM

    tok = byte_tokenizer()
    cfg = hf_config("llama", len(tok), d=D)
    cfg.head_dim = D_Z // cfg.num_attention_heads  # z space (64) wider than d_model (32), as in Gemma
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    d = tmp_path_factory.mktemp("tiny-wide-heads")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_w_o_maps_hook_z_onto_hook_attn_out(model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    lm = wrap_model(
        AutoModelForCausalLM.from_pretrained(model_dir),
        byte_tokenizer(),
        name="wide",
        source=str(model_dir),
        device="cpu",
    )
    ids = lm.tokenizer("heads and their outputs", return_tensors="pt").input_ids
    acts = run_capture(lm, ["blocks.1.attn.hook_z", "blocks.1.hook_attn_out"], ids)
    z = acts["blocks.1.attn.hook_z"].flatten(-2)
    assert z.shape[-1] == D_Z
    torch.testing.assert_close(z @ output_projection(lm.model, 1), acts["blocks.1.hook_attn_out"], rtol=1e-4, atol=1e-5)


def _write_atlas(folder: Path, model_dir: Path, name: str) -> Path:
    rng = np.random.default_rng(7)
    res1 = rng.standard_normal((D_SAE, D)).astype(np.float32)
    res1 /= np.linalg.norm(res1, axis=1, keepdims=True)
    save_sae_dir(
        folder / "0-res",
        SAEWeights(W_dec=rng.standard_normal((D_SAE, D)).astype(np.float32), hook_name="blocks.0.hook_resid_post"),
    )
    save_sae_dir(folder / "1-res", SAEWeights(W_dec=res1, hook_name="blocks.1.hook_resid_post"))
    w_o = model_projections(str(model_dir))(1)  # [64, 32]
    z = rng.standard_normal((D_SAE, D_Z)).astype(np.float32)
    z[PLANT_Z] = (3.0 * res1[PLANT_RES]) @ np.linalg.pinv(w_o)  # W_O maps it onto 3 × res(1) feature 11
    save_sae_dir(folder / "1-att", SAEWeights(W_dec=z, hook_name="blocks.1.attn.hook_z"))
    entries = [
        SAEEntry(0, Module.RES, path="0-res"),
        SAEEntry(1, Module.RES, path="1-res"),
        SAEEntry(1, Module.ATT, path="1-att"),
    ]
    return AtlasManifest(name, str(model_dir), D, entries, base_dir=folder).write(folder / "atlas.toml")


def test_planted_hook_z_row_matches_its_att_feature(
    graph: Graph, atlas_name: str, model_dir: Path, tmp_path: Path
) -> None:
    manifest = load_manifest(_write_atlas(tmp_path, model_dir, atlas_name))
    with pytest.raises(
        SAEFileError, match=r"1-att .* reads blocks.1.attn.hook_z \(the per-head space, d_in = 64\).*no model was given"
    ):
        ingest_atlas(manifest, graph, k=2, backend="numpy")
    assert graph.read("MATCH (a:Atlas {name: $a}) RETURN count(a) AS n", {"a": atlas_name}) == [
        {"n": 0}
    ]  # nothing written

    ingest_atlas(
        manifest, graph, options=IngestOptions(k=2, backend="numpy", projections=model_projections(str(model_dir)))
    )
    sae = graph.read(
        "MATCH (s:SAE {atlas: $a, layer: 1, module: 'att'}) RETURN s.hook_name AS hook, s.w_o_source AS src",
        {"a": atlas_name},
    )
    assert sae == [{"hook": "blocks.1.attn.hook_z", "src": f"model:{model_dir}"}]
    top = graph.read(
        "MATCH (f:Feature {atlas: $a, layer: 1, module: 'att'})-[e:FLOWS_TO]->(r:Feature {atlas: $a, layer: 1, module: 'res', index: $r}) "
        "WHERE e.target_rank = 0 RETURN f.index AS i, e.similarity AS sim, f.decoder_norm AS norm, f.source_norm AS z_norm, r.s_att AS s_att",
        {"a": atlas_name, "r": PLANT_RES},
    )
    assert len(top) == 1 and top[0]["i"] == PLANT_Z, top
    assert top[0]["sim"] > 0.999 and top[0]["s_att"] > 0.999
    assert top[0]["norm"] == pytest.approx(3.0, rel=1e-3)  # the mapped norm: what the feature writes into d_model
    z_row = load_sae_dir(tmp_path / "1-att").W_dec[PLANT_Z]
    assert top[0]["z_norm"] == pytest.approx(float(np.linalg.norm(z_row)), rel=1e-4)  # the original z-space norm, kept


def test_hook_z_features_steer_in_the_per_head_space(model_dir: Path, tmp_path: Path) -> None:
    """ADD s·d_z at attn.hook_z moves hook_attn_out by exactly s·(d_z @ W_O) at every position (Llama: W_O is linear)."""
    from transformers import AutoModelForCausalLM

    from queries.ids import FeatureRef
    from steering.hooks import HookPoint
    from steering.interventions import SteerFeature, Units, compile_plan
    from steering.saes import SAEBank

    manifest = load_manifest(_write_atlas(tmp_path, model_dir, "tiny-z"))
    lm = wrap_model(
        AutoModelForCausalLM.from_pretrained(model_dir),
        byte_tokenizer(),
        name="wide",
        source=str(model_dir),
        device="cpu",
    )
    bank = SAEBank(manifest, lm)
    plan = compile_plan([SteerFeature(FeatureRef("tiny-z", 1, Module.ATT, 3), 2.0)], bank, units=Units.RAW)
    ids = lm.tokenizer("steer the heads", return_tensors="pt").input_ids
    base = run_capture(lm, [HookPoint(1, Module.ATT)], ids)[HookPoint(1, Module.ATT)]
    with plan.apply(lm):
        moved = run_capture(lm, [HookPoint(1, Module.ATT)], ids)[HookPoint(1, Module.ATT)]
    d_z = torch.as_tensor(load_sae_dir(tmp_path / "1-att").W_dec[3])
    expected = 2.0 * d_z @ output_projection(lm.model, 1)
    torch.testing.assert_close(moved - base, expected.expand_as(base), rtol=1e-4, atol=1e-4)
    assert bank.typical_activation(HookPoint(1, Module.ATT)).shape == (D_SAE,)  # units measured at hook_z
