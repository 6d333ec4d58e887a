"""Cross-layer transcoders (circuit-tracer's W_enc_i / W_dec_i folder): one Feature node per CLT feature, at the
layer it reads, with one FLOWS_TO edge per layer it writes (``written_layer``).

Planted: CLT slices built to equal (scaled) known res features of later layers must be those features' top-1 mlp
neighbours with the right ``written_layer``; a CLT with inconsistent shapes or a missing layer is one SAEFileError
and nothing is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from ingest.pipeline import ingest_atlas
from queries.db import Graph
from queries.errors import SAEFileError
from queries.ids import Module
from saes.manifest import AtlasManifest, SAEEntry, load_manifest
from saes.saelens_format import save_sae_dir
from saes.weights import SAEWeights

D, D_SAE, D_TC, N = 32, 48, 16, 3
# (read layer, CLT feature, written layer, res feature of the written layer it is planted on, scale)
PLANTS = [(0, 5, 1, 11, 2.0), (0, 5, 2, 7, 0.5), (1, 3, 2, 20, 3.0), (2, 9, 2, 30, 1.5)]


def write_clt(folder: Path, res: dict[int, np.ndarray], rng: np.random.Generator) -> None:
    """A circuit-tracer CLT spanning N layers (W_dec_i [D_TC, N - i, D]) with the PLANTS' slices set."""
    folder.mkdir(parents=True)
    for i in range(N):
        dec = rng.standard_normal((D_TC, N - i, D)).astype(np.float32)
        for read, f, written, r, scale in PLANTS:
            if read == i:
                dec[f, written - i] = scale * res[written][r]
        dec[2, N - 1 - i] = 0.0  # feature 2 writes nothing into the last layer: no candidate there
        if i == N - 1:
            dec[2, 0] = 1.0  # (its own-layer slice must not be zero, like any decoder row)
        save_file({f"W_dec_{i}": dec}, str(folder / f"W_dec_{i}.safetensors"))
        enc = {
            f"W_enc_{i}": rng.standard_normal((D_TC, D)).astype(np.float32),
            f"b_enc_{i}": np.zeros(D_TC, np.float32),
            f"b_dec_{i}": np.zeros(D, np.float32),
        }
        save_file(enc, str(folder / f"W_enc_{i}.safetensors"))
    (folder / "config.yaml").write_text("feature_input_hook: hook_resid_mid\nfeature_output_hook: hook_mlp_out\n")


def write_atlas(folder: Path, name: str) -> Path:
    rng = np.random.default_rng(3)
    res = {}
    entries = []
    for layer in range(N):
        w = rng.standard_normal((D_SAE, D)).astype(np.float32)
        res[layer] = w / np.linalg.norm(w, axis=1, keepdims=True)
        save_sae_dir(folder / f"{layer}-res", SAEWeights(W_dec=res[layer], hook_name=f"blocks.{layer}.hook_resid_post"))
        entries += [SAEEntry(layer, Module.RES, path=f"{layer}-res"), SAEEntry(layer, Module.MLP, path="clt")]
    write_clt(folder / "clt", res, rng)
    return AtlasManifest(name, "tiny", D, entries, base_dir=folder).write(folder / "atlas.toml")


def test_planted_clt_slices_are_top1_at_their_written_layers(graph: Graph, atlas_name: str, tmp_path: Path) -> None:
    manifest = load_manifest(write_atlas(tmp_path, atlas_name))
    ingest_atlas(manifest, graph, k=2, backend="numpy")
    # one node per CLT feature, at the layer it reads: D_TC mlp features per layer, never one per written layer
    counts = graph.read(
        "MATCH (f:Feature {atlas: $a, module: 'mlp'}) RETURN f.layer AS layer, count(f) AS n ORDER BY layer",
        {"a": atlas_name},
    )
    assert counts == [{"layer": i, "n": D_TC} for i in range(N)]
    for read, f, written, r, scale in PLANTS:
        top = graph.read(
            "MATCH (m:Feature {atlas: $a, module: 'mlp'})-[e:FLOWS_TO]->(t:Feature {atlas: $a, layer: $w, module: 'res', index: $r}) "
            "WHERE e.target_rank = 0 RETURN m.layer AS read, m.index AS f, e.written_layer AS written, e.similarity AS sim, t.s_mlp AS s_mlp",
            {"a": atlas_name, "w": written, "r": r},
        )
        assert len(top) == 1, top
        assert (top[0]["read"], top[0]["f"], top[0]["written"]) == (read, f, written), (read, f, written, top)
        assert top[0]["sim"] > 0.9999 and top[0]["s_mlp"] == pytest.approx(top[0]["sim"])
    # every edge out of a CLT feature names the layer it writes, never one before the layer it reads
    bad = graph.read(
        "MATCH (m:Feature {atlas: $a, module: 'mlp'})-[e:FLOWS_TO]->(t:Feature) "
        "WHERE e.written_layer IS NULL OR e.written_layer <> t.layer OR t.layer < m.layer RETURN count(e) AS n",
        {"a": atlas_name},
    )
    assert bad == [{"n": 0}]
    # feature 2 of layers 0 and 1 writes nothing into layer 2: no edge from it there
    assert graph.read(
        "MATCH (m:Feature {atlas: $a, module: 'mlp', index: 2})-[e:FLOWS_TO {written_layer: 2}]->() "
        "WHERE m.layer < 2 RETURN count(e) AS n",
        {"a": atlas_name},
    ) == [{"n": 0}]
    # decoder_norm is the norm of the slice into the feature's own layer (feature 9 of layer 2: 1.5 · a unit row)
    own = graph.read(
        "MATCH (m:Feature {atlas: $a, layer: 2, module: 'mlp', index: 9}) RETURN m.decoder_norm AS n",
        {"a": atlas_name},
    )
    assert own[0]["n"] == pytest.approx(1.5, rel=1e-5)


@pytest.mark.parametrize(
    ("break_it", "says"),
    [
        (
            lambda clt: save_file(
                {"W_dec_1": np.ones((D_TC, N, D), np.float32)}, str(clt / "W_dec_1.safetensors")
            ),  # one slice too many
            r"W_dec_1.safetensors holds W_dec_1 of shape \[16, 3, 32\], expected \[16, 2, 32\]",
        ),
        (lambda clt: (clt / "W_dec_2.safetensors").unlink(), r"spans layers 0–2 but has no W_dec_2.safetensors"),
        (
            lambda clt: save_file({"W_enc_0": np.ones((D_TC + 1, D), np.float32)}, str(clt / "W_enc_0.safetensors")),
            r"W_enc_0.safetensors holds W_enc_0 of shape \[17, 32\], expected \[16, 32\]",
        ),
    ],
)
def test_bad_clt_is_one_error_and_writes_nothing(
    graph: Graph, atlas_name: str, tmp_path: Path, break_it: object, says: str
) -> None:
    path = write_atlas(tmp_path, atlas_name)
    break_it(tmp_path / "clt")  # type: ignore[operator]
    with pytest.raises(SAEFileError, match=says):
        ingest_atlas(load_manifest(path), graph, k=2, backend="numpy")
    assert graph.read("MATCH (a:Atlas {name: $a}) RETURN count(a) AS n", {"a": atlas_name}) == [{"n": 0}]
    assert graph.read("MATCH (f:Feature {atlas: $a}) RETURN count(f) AS n", {"a": atlas_name}) == [{"n": 0}]
    shutil.rmtree(tmp_path / "clt")


def test_clt_features_load_with_encoders_and_refuse_steering(tmp_path: Path) -> None:
    from queries.errors import InvalidInput
    from saes.sources import load_sae
    from steering.hooks import HookPoint
    from steering.model import wrap_model
    from steering.saes import SAEBank
    from tests.factories import tiny_hf

    manifest = load_manifest(write_atlas(tmp_path, "tiny-clt"))
    entry = manifest.entry(1, Module.MLP)
    assert entry is not None
    w = load_sae(entry, tmp_path)
    assert w.is_cross_layer and w.is_transcoder and w.W_enc is not None and w.W_enc.shape == (D, D_TC)
    assert (w.hook_name, w.hook_name_out) == ("blocks.1.hook_resid_mid", "blocks.1.hook_mlp_out")
    hf, tok = tiny_hf("llama", d=D, layers=N)
    bank = SAEBank(manifest, wrap_model(hf, tok, name="tiny", source="tiny", device="cpu"))
    with pytest.raises(InvalidInput, match="is a cross-layer transcoder: its features write into every later layer"):
        bank.get(HookPoint(1, Module.MLP))
