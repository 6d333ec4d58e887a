"""saes/: manifest validation (each error message), SAELens-format round trip, planted atlases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from queries.errors import ManifestError, SAEFileError
from queries.ids import Module
from saes.manifest import AtlasManifest, SAEEntry, SyntheticSpec, load_manifest
from saes.saelens_format import load_sae_dir, save_sae_dir
from saes.sources import SAEWeights, load_sae, synthetic_sae
from saes.synthetic import HIGH, LOW, planted_atlas, write_planted_atlas


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "atlas.toml"
    p.write_text(text)
    return p


GOOD = """
name = "demo-1"
model = "HuggingFaceTB/SmolLM2-135M-Instruct"
d_model = 32

[[sae]]
layer = 0
module = "res"
synthetic = { d_sae = 16, seed = 1 }

[[sae]]
layer = 1
module = "res"
path = "saes/1-res"

[[sae]]
layer = 1
module = "mlp"
release = "gemma-scope-2b-pt-mlp-canonical"
sae_id = "layer_1/width_16k/canonical"
"""


def test_manifest_loads_and_round_trips(tmp_path: Path) -> None:
    m = load_manifest(_write(tmp_path, GOOD))
    assert m.name == "demo-1" and m.d_model == 32 and m.layers == [0, 1]
    assert m.base_dir == tmp_path.resolve()
    assert [e.source_kind for e in m.saes] == ["synthetic", "saelens_dir", "saelens_registry"]
    assert m.saes[0].synthetic == SyntheticSpec(d_sae=16, seed=1, d_in=32)
    out = tmp_path / "copy" / "atlas.toml"
    m.write(out)
    again = load_manifest(out)
    assert again.saes == m.saes and again.name == m.name and again.sha256() == m.sha256()


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            'name = "Bad Name"\nmodel = "m"\n[[sae]]\nlayer = 0\nmodule = "res"\nsynthetic = { d_sae = 4 }\n',
            "atlas name 'Bad Name' is not valid",
        ),
        ('name = "a"\n[[sae]]\nlayer = 0\nmodule = "res"\npath = "x"\n', "needs model ="),
        ('name = "a"\nmodel = "m"\n', "lists no SAEs"),
        (
            'name = "a"\nmodel = "m"\n[[sae]]\nlayer = 0\nmodule = "resid"\npath = "x"\n',
            "unknown module 'resid' (valid: res, att, mlp)",
        ),
        (
            'name = "a"\nmodel = "m"\n[[sae]]\nlayer = 0\nmodule = "res"\npath = "x"\n[[sae]]\nlayer = 0\nmodule = "res"\npath = "y"\n',
            "two SAEs for layer 0 module 'res'",
        ),
        (
            'name = "a"\nmodel = "m"\n[[sae]]\nlayer = 0\nmodule = "res"\npath = "x"\n[[sae]]\nlayer = 2\nmodule = "res"\npath = "y"\n',
            "gap in the layers: no res SAE for layer(s) 1",
        ),
        (
            'name = "a"\nmodel = "m"\n[[sae]]\nlayer = 0\nmodule = "res"\npath = "x"\n[[sae]]\nlayer = 1\nmodule = "mlp"\npath = "y"\n',
            "gap in the layers: no res SAE for layer(s) 1",
        ),
        (
            'name = "a"\nmodel = "m"\n[[sae]]\nlayer = 0\nmodule = "res"\npath = "x"\nrelease = "r"\nsae_id = "i"\n',
            "names 2 sources",
        ),
        ('name = "a"\nmodel = "m"\n[[sae]]\nlayer = 0\nmodule = "res"\n', "names 0 sources"),
        ('name = "a"\nmodel = "m"\n[[sae]]\nlayer = -1\nmodule = "res"\npath = "x"\n', "layer = -1 is not valid"),
        ('name = "a"\nmodel = "m"\n[[sae]]\nlayer = 0\nmodule = "res"\nsynthetic = { d_sae = 8 }\n', "needs its d_in"),
        (
            'name = "a"\nmodel = "m"\nwidth = 3\n[[sae]]\nlayer = 0\nmodule = "res"\npath = "x"\n',
            "unknown key(s) width",
        ),
        (
            'name = "a"\nmodel = "m"\n[[sae]]\nlayer = 0\nmodule = "res"\npath = "x"\ncolour = 1\n',
            "unknown key(s) colour",
        ),
        (
            'name = "a"\nmodel = "m"\nd_model = 0\n[[sae]]\nlayer = 0\nmodule = "res"\npath = "x"\n',
            "d_model = 0 is not valid",
        ),
        ('name = "a"\nmodel = "m\n', "is not valid TOML"),
    ],
)
def test_manifest_errors(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as info:
        load_manifest(_write(tmp_path, text))
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_manifest_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "nope.toml")


def test_saelens_dir_round_trip_and_sae_lens_loads_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = SAEWeights(
        W_dec=rng.standard_normal((24, 8)).astype(np.float32),
        W_enc=rng.standard_normal((8, 24)).astype(np.float32),
        b_enc=rng.standard_normal(24).astype(np.float32),
        b_dec=rng.standard_normal(8).astype(np.float32),
        threshold=np.abs(rng.standard_normal(24)).astype(np.float32),
        architecture="jumprelu",
        hook_name="blocks.3.hook_resid_post",
    )
    d = save_sae_dir(tmp_path / "sae", w, model_name="tiny")
    back = load_sae_dir(d)
    for name in ("W_dec", "W_enc", "b_enc", "b_dec", "threshold"):
        np.testing.assert_array_equal(getattr(back, name), getattr(w, name))
    assert back.architecture == "jumprelu" and back.hook_name == "blocks.3.hook_resid_post"
    assert back.d_in == 8 and back.d_sae == 24
    from sae_lens import SAE

    sae = SAE.load_from_disk(str(d))
    np.testing.assert_allclose(sae.W_dec.detach().numpy(), w.W_dec)
    x = rng.standard_normal((5, 8)).astype(np.float32)
    import torch

    ref = sae.encode(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(back.encode(x), ref, rtol=1e-5, atol=1e-5)
    assert (ref > 0).any() and (ref == 0).any()  # the check is not vacuous


@pytest.mark.parametrize("arch", ["standard", "topk"])
def test_encode_matches_sae_lens(tmp_path: Path, arch: str) -> None:
    rng = np.random.default_rng(1)
    w = SAEWeights(
        W_dec=rng.standard_normal((16, 6)).astype(np.float32),
        W_enc=rng.standard_normal((6, 16)).astype(np.float32),
        b_enc=rng.standard_normal(16).astype(np.float32),
        b_dec=rng.standard_normal(6).astype(np.float32),
        architecture=arch,
        k=3 if arch == "topk" else None,
    )
    d = save_sae_dir(tmp_path / arch, w)
    import torch
    from sae_lens import SAE

    x = rng.standard_normal((4, 6)).astype(np.float32)
    ref = SAE.load_from_disk(str(d)).encode(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(load_sae_dir(d).encode(x), ref, rtol=1e-5, atol=1e-5)


def test_saelens_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(SAEFileError, match="does not exist"):
        load_sae_dir(tmp_path / "missing")
    d = save_sae_dir(tmp_path / "s", synthetic_sae(8, 4, 0))
    (d / "sae_weights.safetensors").write_bytes(b"garbage that is not safetensors")
    with pytest.raises(SAEFileError, match="corrupt or not safetensors"):
        load_sae_dir(d)
    d2 = save_sae_dir(tmp_path / "s2", synthetic_sae(8, 4, 0))
    cfg = json.loads((d2 / "cfg.json").read_text())
    cfg["d_sae"] = 5
    (d2 / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SAEFileError, match=r"W_dec has shape \(4, 8\) but cfg.json says"):
        load_sae_dir(d2)
    (d2 / "cfg.json").write_text("{not json")
    with pytest.raises(SAEFileError, match="not valid JSON"):
        load_sae_dir(d2)
    (d2 / "cfg.json").unlink()
    with pytest.raises(SAEFileError, match="cfg.json is missing"):
        load_sae_dir(d2)


def test_load_sae_sources(tmp_path: Path) -> None:
    save_sae_dir(tmp_path / "saes" / "0-res", synthetic_sae(8, 4, 3))
    w = load_sae(SAEEntry(0, Module.RES, path="saes/0-res"), tmp_path, decoder_only=True)
    assert w.W_enc is None and w.W_dec.shape == (4, 8)
    s1 = load_sae(SAEEntry(0, Module.ATT, synthetic=SyntheticSpec(16, 5, 8)), tmp_path)
    s2 = load_sae(SAEEntry(0, Module.ATT, synthetic=SyntheticSpec(16, 5, 8)), tmp_path)
    np.testing.assert_array_equal(s1.W_dec, s2.W_dec)
    with pytest.raises(SAEFileError, match="not in the SAELens registry"):
        load_sae(SAEEntry(0, Module.RES, release="no-such-release", sae_id="x"), tmp_path)
    with pytest.raises(SAEFileError, match="is not in release 'gemma-scope-2b-pt-res-canonical'"):
        load_sae(SAEEntry(0, Module.RES, release="gemma-scope-2b-pt-res-canonical", sae_id="layer_99/nope"), tmp_path)


def test_planted_atlas_truth_holds() -> None:
    pa = planted_atlas(n_layers=3, d_model=192, d_sae=32, seed=4)
    unit = {k: w.W_dec / np.linalg.norm(w.W_dec, axis=1, keepdims=True) for k, w in pa.weights.items()}
    counts: dict[str, int] = {}
    for (layer, i), t in pa.truth.items():
        counts[t.kind] = counts.get(t.kind, 0) + 1
        # DESIGN.md: no res(L-1) SAE, no category (the row is still built by one of the recipes)
        assert (t.category is None) == (layer == 0) and (t.category is None or t.category == t.kind)
        r = unit[(layer, Module.RES)][i]
        prev = unit.get((layer - 1, Module.RES))
        s_res = float((prev @ r).max()) if prev is not None else 0.0
        s_mod = max(float((unit[(layer, m)] @ r).max()) for m in (Module.ATT, Module.MLP))
        if t.kind in ("translated", "processed"):
            assert s_res >= HIGH and int((prev @ r).argmax()) == t.res_parent
        else:
            assert s_res < LOW
        if t.kind in ("processed", "newborn"):
            assert t.module_parent is not None
            m, j = t.module_parent
            assert s_mod >= HIGH and int((unit[(layer, m)] @ r).argmax()) == j
        elif t.kind != "processed":
            assert t.kind == "translated" or s_mod < LOW
    assert set(counts) == {"translated", "processed", "newborn", "unexplained"}
    assert pa.categories(0) == [None] * 32  # layer 0 has no residual predecessor: no categories
    assert "translated" not in {t.kind for (layer, _), t in pa.truth.items() if layer == 0}


def test_write_planted_atlas(tmp_path: Path) -> None:
    path = write_planted_atlas(tmp_path / "a", name="planted-x", n_layers=2, d_sae=8, d_model=128)
    m = load_manifest(path)
    assert m.name == "planted-x" and len(m.saes) == 6 and m.d_model == 128
    w = load_sae(m.entry(1, "mlp"), m.base_dir)  # type: ignore[arg-type]
    assert w.hook_name == "blocks.1.hook_mlp_out" and w.architecture == "jumprelu"
    assert isinstance(m, AtlasManifest)
