"""steering.steerability on a tiny random Llama: the batched KV-cache screen equals a plain forward with the vector
added at the last position, a feature planted along a token's unembedding promotes that token, and units ALPHA put
exactly α × the hook's median ‖h‖ on the residual."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from queries.errors import InvalidInput
from queries.ids import FeatureRef, Module
from saes.manifest import AtlasManifest, SAEEntry
from saes.saelens_format import save_sae_dir
from saes.sources import SAEWeights
from steering.hooks import HookPoint, edit, run_capture
from steering.interventions import SteerFeature, Units, compile_plan
from steering.model import LoadedModel
from steering.saes import CALIBRATION_TEXT, SAEBank, robust_median_norm
from steering.steerability import SteerabilityRun, feature_rows, measure_point
from tests.factories import tiny_llama

D, D_SAE, ATLAS = 64, 16, "tiny-steer"
PROMPTS = ("the cat sat on", "a map of the")


@pytest.fixture(scope="module")
def tiny() -> LoadedModel:
    return tiny_llama(seed=3, d_model=D)


def _planted_token(tiny: LoadedModel) -> int:
    return int(tiny.tokenizer("z").input_ids[-1])


@pytest.fixture(scope="module")
def bank(tiny: LoadedModel, tmp_path_factory: pytest.TempPathFactory) -> SAEBank:
    """res SAEs at layers 2 and 3; at the last layer, feature 0's decoder row is token 'z''s unembedding row."""
    folder = tmp_path_factory.mktemp("atlas")
    rng = np.random.default_rng(0)
    entries = []
    for layer in (tiny.n_layers - 2, tiny.n_layers - 1):
        rows = rng.standard_normal((D_SAE, D)).astype(np.float32)
        if layer == tiny.n_layers - 1:
            w_u = tiny.model.lm_head.weight.detach().numpy()
            gain = tiny.model.model.norm.weight.detach().numpy()
            rows[0] = w_u[_planted_token(tiny)] / gain  # the final RMSNorm multiplies by its weight
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        save_sae_dir(folder / f"{layer}-res", SAEWeights(W_dec=rows, W_enc=rows.T.copy()))
        entries.append(SAEEntry(layer, Module.RES, path=f"{layer}-res"))
    return SAEBank(AtlasManifest(ATLAS, "tiny", D, entries, base_dir=folder), tiny)


def _direct_kl(tiny: LoadedModel, point: HookPoint, vector: torch.Tensor, prompt: str) -> float:
    """KL of the next token when ``vector`` is added at the last position only: one plain forward, no cache."""
    ids = tiny.tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        base = torch.log_softmax(tiny.model(input_ids=ids).logits[0, -1], -1)

        def add_last(h: torch.Tensor) -> torch.Tensor:
            h = h.clone()
            h[:, -1] += vector
            return h

        with edit(tiny, {point: add_last}):
            steered = torch.log_softmax(tiny.model(input_ids=ids).logits[0, -1], -1)
    return float((steered.exp() * (steered - base)).sum())


def test_batched_screen_equals_a_plain_forward_per_feature(tiny: LoadedModel, bank: SAEBank) -> None:
    point = HookPoint(2, Module.RES)
    eff = measure_point(tiny, bank, point, alpha=0.5, prompts=PROMPTS, batch=5)  # 16 features in uneven batches
    w = bank.get(point).W_dec.float()
    unit = bank.median_norm(point)
    for i in (0, 7, 15):
        v = w[i] / w[i].norm() * 0.5 * unit
        expected = np.mean([_direct_kl(tiny, point, v, p) for p in PROMPTS])
        assert eff.kl[i] == pytest.approx(expected, rel=2e-3, abs=1e-6)
    assert eff.kl.shape == (D_SAE,) and bool((eff.kl >= 0).all())
    assert eff.median_norm == pytest.approx(unit)


def test_a_feature_along_a_token_s_unembedding_promotes_that_token(tiny: LoadedModel, bank: SAEBank) -> None:
    point = HookPoint(tiny.n_layers - 1, Module.RES)
    eff = measure_point(tiny, bank, point, alpha=1.0, prompts=PROMPTS)
    z = _planted_token(tiny)
    assert int(eff.top_ids[0, 0]) == z  # the planted feature: 'z' rises most
    assert sum(int(eff.top_ids[i, 0]) == z for i in range(1, D_SAE)) <= 1  # random rows: not 'z' (chance aside)
    assert eff.top_gain[0, 0] > 0 and bool(np.all(np.diff(eff.top_gain[0]) <= 1e-6))  # largest first
    rows = feature_rows(SteerabilityRun(1.0, list(PROMPTS), [eff]), ATLAS, tiny.tokenizer)
    assert rows[0]["uid"] == f"{ATLAS}/{point.layer}-res/0" and rows[0]["steer_tokens"][0] == "z"
    assert len(rows) == D_SAE and rows[3]["steer_kl"] == pytest.approx(float(eff.kl[3]), abs=1e-5)


def test_alpha_units_add_alpha_times_the_median_norm(tiny: LoadedModel, bank: SAEBank) -> None:
    point = HookPoint(2, Module.RES)
    ids = tiny.tokenizer(CALIBRATION_TEXT, return_tensors="pt").input_ids[
        :, : tiny.max_positions
    ]  # as the bank reads it
    norms = run_capture(tiny, [point], ids)[point][0].norm(dim=-1)[1:].numpy()  # position 0 left out
    assert bank.median_norm(point) == pytest.approx(robust_median_norm(norms))
    plan = compile_plan([SteerFeature(FeatureRef(ATLAS, 2, Module.RES, 4), 0.3)], bank, units=Units.ALPHA)
    assert plan.applied[0].vector_norm == pytest.approx(0.3 * bank.median_norm(point), rel=1e-5)


def test_robust_median_leaves_out_massive_norm_tokens() -> None:
    norms = np.array([1.0, 1.1, 0.9, 1.2, 50.0, 60.0, 1.0])
    assert robust_median_norm(norms) == pytest.approx(1.0)


def test_bad_alpha_is_one_clear_error(tiny: LoadedModel, bank: SAEBank) -> None:
    with pytest.raises(InvalidInput, match="alpha 0"):
        measure_point(tiny, bank, HookPoint(2, Module.RES), alpha=0.0, prompts=PROMPTS)
