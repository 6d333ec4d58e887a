"""SAELens semantics, checked numerically against SAELens's own ``SAE.encode``/``decode`` on the same weights and
inputs: every architecture × every ``normalize_activations`` we honour (numpy and torch encoders), rescaling
removes exactly SAELens's decoded term of a feature, and JumpReLU strength units fold θ into the decoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from queries.errors import InvalidInput, SAEFileError
from queries.ids import Module
from saes.manifest import AtlasManifest, SAEEntry
from saes.saelens_format import load_sae_dir, save_sae_dir
from saes.weights import SAEWeights
from steering.hooks import HookPoint
from steering.interventions import PointOp, SteerFeature, Units, compile_plan
from steering.saes import SAEBank, _to_torch
from tests.factories import tiny_llama

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

D, D_SAE = 32, 48
NORMS = ("none", "constant_norm_rescale", "layer_norm", "expected_average_only_in")


def _weights(arch: str, norm: str, seed: int, apply_b_dec: bool = True) -> SAEWeights:
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return SAEWeights(
        W_dec=f(D_SAE, D) * 0.3,
        W_enc=f(D, D_SAE) * 0.3,
        b_enc=f(D_SAE) * 0.1,
        b_dec=f(D) * 0.5,
        threshold=np.abs(f(D_SAE)) * 0.5 if arch == "jumprelu" else None,
        k=6 if arch == "topk" else None,
        architecture=arch,
        normalize_activations=norm,
        apply_b_dec_to_input=apply_b_dec,
    )


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("arch", ["standard", "jumprelu", "topk"])
def test_encode_equals_sae_lens(arch: str, norm: str, tmp_path: Path) -> None:
    from sae_lens import SAE

    path = save_sae_dir(
        tmp_path / "sae", _weights(arch, norm, seed=len(arch) + len(norm), apply_b_dec=norm != "layer_norm")
    )
    assert json.loads((path / "cfg.json").read_text())["normalize_activations"] == norm
    theirs_sae = SAE.load_from_disk(str(path), device="cpu")
    x = torch.randn(40, D, generator=torch.Generator().manual_seed(1)) * 4 + 1.5  # off-centre, far from unit norm
    theirs = theirs_sae.encode(x).detach()
    assert (theirs > 0).any() and (theirs == 0).any()  # the comparison is not vacuous

    ours = load_sae_dir(path)
    assert ours.normalize_activations == norm
    np.testing.assert_allclose(ours.encode(x.numpy()), theirs.numpy(), rtol=1e-4, atol=1e-5)  # numpy (API, experiments)
    lm = tiny_llama(seed=0, n_layers=1, d_model=D, d_mlp=64)
    hook_sae = _to_torch(HookPoint(0, Module.RES), ours, lm)
    torch.testing.assert_close(hook_sae.encode(x), theirs, rtol=1e-4, atol=1e-5)  # torch (steering)


@pytest.mark.parametrize("norm", ["none", "constant_norm_rescale", "layer_norm"])
def test_rescale_zero_removes_sae_lens_decoded_term(norm: str, tmp_path: Path) -> None:
    from sae_lens import SAE

    path = save_sae_dir(tmp_path / "sae", _weights("standard", norm, seed=3))
    theirs = SAE.load_from_disk(str(path), device="cpu")
    lm = tiny_llama(seed=0, n_layers=1, d_model=D, d_mlp=64)
    sae = _to_torch(HookPoint(0, Module.RES), load_sae_dir(path), lm)
    x = torch.randn(20, D, generator=torch.Generator().manual_seed(2)) * 3 + 1.0
    acts = theirs.encode(x).detach()
    i = int(acts.gt(0).sum(0).argmax())  # a feature that fires
    idx = torch.tensor([i])
    op = PointOp(enc=sae.encoder_slice(idx), factor=torch.tensor([-1.0]), dec=sae.W_dec[idx].contiguous())
    without = acts.clone()
    without[:, i] = 0

    def decoded(a: torch.Tensor) -> torch.Tensor:
        theirs.encode(x)  # SAELens's decode reads the per-token normalisation factor its encode just stored
        return theirs.decode(a).detach()

    expected = decoded(without) - decoded(acts)  # minus the feature's decoded term
    torch.testing.assert_close(op(x) - x, expected, rtol=1e-4, atol=1e-4)


def test_threshold_units_fold_theta_into_the_decoder(tmp_path: Path) -> None:
    lm = tiny_llama(seed=0, n_layers=1, d_model=D, d_mlp=64)
    save_sae_dir(tmp_path / "res", _weights("jumprelu", "none", seed=5))
    save_sae_dir(tmp_path / "att", _weights("topk", "none", seed=6))
    manifest = AtlasManifest(
        "tiny-theta",
        "tiny",
        D,
        [SAEEntry(0, Module.RES, path="res"), SAEEntry(0, Module.ATT, path="att")],
        base_dir=tmp_path,
    )
    bank = SAEBank(manifest, lm)
    from queries.ids import FeatureRef

    plan = compile_plan([SteerFeature(FeatureRef("tiny-theta", 0, Module.RES, 7), 2.5)], bank, units=Units.THRESHOLD)
    sae = bank.get(HookPoint(0, Module.RES))
    torch.testing.assert_close(plan.ops[HookPoint(0, Module.RES)].add, 2.5 * sae.threshold[7] * sae.W_dec[7])
    assert plan.applied[0].unit == pytest.approx(float(sae.threshold[7]))
    with pytest.raises(InvalidInput, match="THRESHOLD need a JumpReLU SAE.*'topk'"):
        compile_plan([SteerFeature(FeatureRef("tiny-theta", 0, Module.ATT, 1), 1.0)], bank, units=Units.THRESHOLD)


def test_unsupported_normalisation_is_one_clear_error(tmp_path: Path) -> None:
    path = save_sae_dir(tmp_path / "sae", _weights("standard", "none", seed=1))
    cfg = json.loads((path / "cfg.json").read_text())
    (path / "cfg.json").write_text(json.dumps({**cfg, "normalize_activations": "covariance_whitening"}))
    with pytest.raises(
        SAEFileError, match="normalize_activations = 'covariance_whitening' is not supported .*constant_norm_rescale"
    ):
        load_sae_dir(path)


def test_sae_steers_at_its_own_hook_name(tmp_path: Path) -> None:
    """A res SAE whose cfg says blocks.1.hook_resid_pre is steered there (not at resid_post): ADD s·d moves exactly
    that activation; an unknown hook name falls back to the point."""
    from queries.ids import FeatureRef
    from steering.hooks import run_capture

    lm = tiny_llama(seed=0, n_layers=2, d_model=D, d_mlp=64)
    w = _weights("standard", "none", seed=9)
    w.hook_name = "blocks.1.hook_resid_pre"
    save_sae_dir(tmp_path / "1-res", w)
    save_sae_dir(tmp_path / "0-res", _weights("standard", "none", seed=10))
    manifest = AtlasManifest(
        "tiny-own",
        "tiny",
        D,
        [SAEEntry(0, Module.RES, path="0-res"), SAEEntry(1, Module.RES, path="1-res")],
        base_dir=tmp_path,
    )
    bank = SAEBank(manifest, lm)
    plan = compile_plan([SteerFeature(FeatureRef("tiny-own", 1, Module.RES, 2), 1.5)], bank, units=Units.RAW)
    ids = lm.tokenizer("own hooks", return_tensors="pt").input_ids
    base = run_capture(lm, ["blocks.1.hook_resid_pre"], ids)["blocks.1.hook_resid_pre"]
    with plan.apply(lm):
        moved = run_capture(lm, ["blocks.1.hook_resid_pre"], ids)["blocks.1.hook_resid_pre"]
    d = bank.get(HookPoint(1, Module.RES)).W_dec[2]
    torch.testing.assert_close(moved - base, (1.5 * d).expand_as(base), rtol=1e-5, atol=1e-5)
    assert bank.get(HookPoint(0, Module.RES)).edit_hook is None  # no hook name: the point itself
