"""The TopK SAE bank: EV computation, AuxK revives dead latents, the exported SAE equals the trained one,
and training recovers a planted sparse dictionary."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from saes.sources import SAEWeights
from training.sae import BankTrainer, MetricsAccumulator, TopKBank, TopKConfig, lr_at


def planted_data(
    n_tokens: int, d: int = 32, n_atoms: int = 64, active: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens that are sparse positive combinations of a planted dictionary, plus a constant offset."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(n_atoms, d, generator=g)
    atoms /= atoms.norm(dim=-1, keepdim=True)
    idx = torch.stack([torch.randperm(n_atoms, generator=g)[:active] for _ in range(n_tokens)])
    coef = torch.rand(n_tokens, active, generator=g) * 2 + 0.5
    x = (coef[..., None] * atoms[idx]).sum(1) + 3.0
    return x, atoms


def test_explained_variance_matches_definition() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 500, 8, generator=g) * torch.tensor([1.0, 5.0])[:, None, None] + 2.0
    recon = x + 0.3 * torch.randn(2, 500, 8, generator=g)
    vals = torch.tensor([[[1.0, 0.0]]]).expand(2, 500, 2).contiguous()
    idx = torch.tensor([[[0, 1]]]).expand(2, 500, 2).contiguous()
    acc = MetricsAccumulator(2, 4)
    acc.update(x[:, :200], recon[:, :200], vals[:, :200], idx[:, :200])  # streamed in two pieces
    acc.update(x[:, 200:], recon[:, 200:], vals[:, 200:], idx[:, 200:])
    res = acc.results()
    for i in range(2):
        xi, ri = x[i].double().numpy(), recon[i].double().numpy()
        expected = 1 - ((xi - ri) ** 2).sum() / ((xi - xi.mean(0)) ** 2).sum()
        assert res[i]["explained_variance"] == pytest.approx(expected, rel=1e-9)
        assert res[i]["l0"] == pytest.approx(1.0)  # only the value 1.0 is > 0
        assert res[i]["dead_fraction"] == pytest.approx(0.75)  # latents 1..3 never fire
    # the second SAE's data has 25x the variance but the same noise: higher EV
    assert res[1]["explained_variance"] > res[0]["explained_variance"] > 0.5


def test_trains_planted_dictionary_to_high_ev() -> None:
    torch.manual_seed(0)
    data, _ = planted_data(14_000)
    x, held = data[:12_000], data[12_000:]  # one dictionary; the held-out tokens are never trained on
    cfg = TopKConfig(d_in=32, d_sae=128, k=4, lr=1e-2, warmup_steps=5, dead_after_tokens=3_000)
    bank = TopKBank(1, cfg)
    steps = 120
    trainer = BankTrainer(bank, steps)
    for s in range(steps):
        batch = x[torch.randint(0, x.shape[0], (512,))][None]
        stats = trainer.step(batch)
    recon, vals, idx = bank.reconstruct_raw(held[None])
    acc = MetricsAccumulator(1, 128)
    acc.update(held[None], recon, vals, idx)
    r = acc.results()[0]
    assert r["explained_variance"] > 0.9, r
    assert r["l0"] <= 4
    assert float(stats["nmse"][0]) < 0.2
    # decoder rows stay unit norm
    assert torch.allclose(bank.W_dec.norm(dim=-1), torch.ones(1, 128), atol=1e-5)


def _dead_setup(aux_coef: float) -> tuple[TopKBank, torch.Tensor]:
    torch.manual_seed(0)
    x, _ = planted_data(4_000)
    cfg = TopKConfig(d_in=32, d_sae=64, k=4, lr=1e-2, warmup_steps=1, dead_after_tokens=256, aux_coef=aux_coef)
    bank = TopKBank(1, cfg)
    bank.initialise(x[None, :512])
    with torch.no_grad():
        # Latents 0..31 get a large encoder bias, so 32..63 never make the TopK: dead from the start, as
        # latents that lost the competition are, with ordinary (sometimes positive) pre-activations.
        bank.b_enc[0, :32] = 50.0
    return bank, x


def test_auxk_trains_dead_latents_and_plain_loss_does_not() -> None:
    results = {}
    for aux_coef in (0.0, 1.0 / 32):
        bank, x = _dead_setup(aux_coef)
        before = bank.W_enc[0, :, 32:].detach().clone()
        trainer = BankTrainer(bank, 40)
        aux_seen = []
        for s in range(10):
            stats = trainer.step(x[None, s * 256 : (s + 1) * 256])
            aux_seen.append(float(stats["aux"][0]))
        assert float(stats["dead"][0]) >= 0.5  # tracked: half the latents have not fired for 256 tokens
        results[aux_coef] = (bank.W_enc[0, :, 32:] - before).abs().max().item(), max(aux_seen)
    moved_plain, aux_plain = results[0.0]
    moved_aux, aux_on = results[1.0 / 32]
    assert moved_plain == 0.0  # without AuxK a dead latent gets no gradient at all
    assert moved_aux > 1e-3  # AuxK reaches the dead latents' encoders
    assert aux_on > 0.0


def test_export_folds_scale_and_matches_saelens_semantics() -> None:
    torch.manual_seed(0)
    x, _ = planted_data(2_000)
    x = x * 40.0  # raw activations far from unit scale: the fold must undo the training scale
    cfg = TopKConfig(d_in=32, d_sae=64, k=4, lr=5e-3)
    bank = TopKBank(2, cfg)
    trainer = BankTrainer(bank, 10)
    for s in range(5):
        trainer.step(torch.stack([x[s * 256 : (s + 1) * 256], 0.5 * x[s * 256 : (s + 1) * 256]]))
    assert float(bank.scale[0]) != pytest.approx(1.0)
    probe = torch.stack([x[1500:1600], 0.5 * x[1500:1600]])
    recon, vals, idx = bank.reconstruct_raw(probe)
    for i in range(2):
        w = bank.export(i)
        sae = SAEWeights(
            W_dec=w["W_dec"], W_enc=w["W_enc"], b_enc=w["b_enc"], b_dec=w["b_dec"], k=4, architecture="topk"
        )
        z = sae.encode(probe[i].numpy())
        dense = np.zeros_like(z)
        np.put_along_axis(dense, idx[i].numpy(), vals[i].numpy(), axis=-1)
        np.testing.assert_allclose(z, dense, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(z @ w["W_dec"] + w["b_dec"], recon[i].numpy(), rtol=1e-3, atol=1e-3)


def test_lr_schedule_warms_up_and_decays() -> None:
    cfg = TopKConfig(d_in=4, d_sae=8, k=2, lr=1.0, warmup_steps=10)
    assert lr_at(0, 100, cfg) == pytest.approx(0.1)
    assert lr_at(50, 100, cfg) == 1.0
    assert lr_at(90, 100, cfg) == pytest.approx(0.5)
    assert lr_at(100, 100, cfg) == 0.0


def test_config_rejects_bad_k() -> None:
    from queries.errors import InvalidInput

    with pytest.raises(InvalidInput, match="k=0"):
        TopKConfig(d_in=4, d_sae=8, k=0)


def test_tf32_flag_is_restored_after_each_step() -> None:
    """TF32 is switched on only inside a GPU step: exact-fp32 code in the same process must never see it."""
    from training.sae import BankTrainer, TopKBank, TopKConfig

    bank = TopKBank(2, TopKConfig(d_in=16, d_sae=64, k=4, lr=1e-3, dead_after_tokens=100, seed=0))
    before = torch.backends.cuda.matmul.allow_tf32
    BankTrainer(bank, 10, tf32=True).step(torch.randn(2, 32, 16))
    assert torch.backends.cuda.matmul.allow_tf32 == before


def test_per_sae_k_keeps_each_saes_own_number_of_latents() -> None:
    """A bank whose SAEs have different k (res at 2, att at 5): each token activates at most k_i latents of SAE i,
    in training and in evaluation."""
    x, _ = planted_data(200, d=24, n_atoms=40)
    xb = torch.stack([x, x])
    bank = TopKBank(2, TopKConfig(d_in=24, d_sae=40, k=5, ks=(2, 5), seed=1))
    trainer = BankTrainer(bank, 5)
    for _ in range(5):
        trainer.step(xb)
    _, vals, _ = bank.reconstruct_raw(xb)
    active = (vals > 0).sum(-1)
    assert int(active[0].max()) == 2 and int(active[1].max()) == 5
    with pytest.raises(Exception, match="maximum"):
        TopKConfig(d_in=24, d_sae=40, k=4, ks=(2, 5))
