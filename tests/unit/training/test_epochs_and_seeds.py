"""Epochs over cached activations and seed-ceiling SAEs (training.loop): every token once per epoch, each
seed copy in its own order, the step count over all epochs, a resume inside phase 2, and the manifest's
[[ceiling]] tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from queries.errors import InvalidInput, ManifestError
from saes.manifest import load_manifest
from saes.saelens_format import load_sae_dir
from tests.factories import tiny_llama, word_corpus
from training import sae as sae_mod
from training.loop import ActivationCache, BankLayout, total_steps
from training.train import CHECKPOINT_FILE, TrainSpec, train_atlas


def _spec(corpus: Path, **kw: object) -> TrainSpec:
    base = dict(
        atlas="epochs-test",
        model="tiny",
        layers=[0, 1],
        modules=["res", "mlp"],
        d_sae=32,
        k=4,
        token_budget=1240,
        seq_len=32,
        seqs_per_batch=4,
        buffer_batches=1,
        train_batch_tokens=124,
        heldout_tokens=200,
        held_out_fraction=0.2,
        corpus=str(corpus),
        checkpoint_every=3,
    )
    base.update(kw)
    return TrainSpec(**base)  # type: ignore[arg-type]


def test_cache_epoch_visits_every_token_once_in_a_seeded_order() -> None:
    cache = ActivationCache(2, 10, 3)
    x = torch.arange(2 * 10 * 3, dtype=torch.float32).reshape(2, 10, 3)
    cache.append(x[:, :6])
    cache.append(x[:, 6:])
    layout = BankLayout.with_seeds(2, [1], 2)  # SAEs: point 0, point 1, point 1 (seed copy)
    assert layout.sources == [0, 1, 1] and layout.groups == [0, 0, 1]
    batches = list(cache.epoch_batches(layout, 5, seed=0, epoch=2))
    again = list(cache.epoch_batches(layout, 5, seed=0, epoch=2))
    other = list(cache.epoch_batches(layout, 5, seed=0, epoch=3))
    assert len(batches) == 2 and batches[0].shape == (3, 5, 3)
    seen = torch.cat([b[1, :, 0] for b in batches])
    assert sorted(seen.tolist()) == sorted(x[1, :, 0].tolist())  # every token of point 1 once
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))  # replayable (resume)
    assert not torch.equal(batches[0], other[0])  # a fresh order per epoch
    assert not torch.equal(batches[0][1], batches[0][2])  # the seed copy reads its own order
    assert sorted(torch.cat([b[2, :, 0] for b in batches]).tolist()) == sorted(x[1, :, 0].tolist())


def test_total_steps_spans_every_epoch() -> None:
    assert total_steps(1000, 100, 1.0) == 10
    assert total_steps(1000, 100, 3.0) == 30
    assert total_steps(1000, 100, 2.5) == 25
    assert total_steps(1050, 100, 2.0) == 11 + 10


def test_epochs_and_seeds_train_and_write_ceilings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = tiny_llama(seed=1, n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_mlp=64)
    corpus = word_corpus(tmp_path / "c")
    spec = _spec(corpus, epochs=2.5, seeds=2, seed_modules=["res"])
    real_step = sae_mod.BankTrainer.step
    shapes: list[tuple[int, ...]] = []

    def counting(self: sae_mod.BankTrainer, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shapes.append(tuple(x.shape))
        return real_step(self, x)

    monkeypatch.setattr(sae_mod.BankTrainer, "step", counting)
    result = train_atlas(spec, tmp_path / "out", loaded=loaded, progress=False)
    assert len(shapes) == total_steps(1240, 124, 2.5)
    assert all(s[0] == 4 + 2 for s in shapes)  # 4 SAEs of the atlas + 2 res seed copies
    m = load_manifest(result.manifest_path)
    assert [(e.layer, e.module.value) for e in m.saes] == [(0, "res"), (0, "mlp"), (1, "res"), (1, "mlp")]
    assert [(c.layer, c.module.value, c.path) for c in m.ceilings] == [
        (0, "res", "saes/0-res-seed1"),
        (1, "res", "saes/1-res-seed1"),
    ]
    main = load_sae_dir(result.out_dir / "saes/1-res")
    seed = load_sae_dir(result.out_dir / "saes/1-res-seed1")
    assert main.W_dec.shape == seed.W_dec.shape and not np.allclose(main.W_dec, seed.W_dec)
    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    assert [c["seed"] for c in metrics["ceiling_saes"]] == [1, 1]
    assert metrics["tokens_trained"] > metrics["unique_train_tokens"] >= 1240
    assert not (result.out_dir / "saes/1-res-seed1/feature_labels.jsonl").exists()


def test_resume_inside_phase_two_runs_only_the_remaining_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = tiny_llama(seed=1, n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_mlp=64)
    corpus = word_corpus(tmp_path / "c")
    spec = _spec(corpus, epochs=3.0)
    steps = total_steps(1240, 124, 3.0)
    real_step = sae_mod.BankTrainer.step
    calls = {"n": 0}

    def failing(self: sae_mod.BankTrainer, x: torch.Tensor) -> dict[str, torch.Tensor]:
        calls["n"] += 1
        if calls["n"] == 17:  # phase 1 is 10 steps: this stops in epoch 2
            raise KeyboardInterrupt
        return real_step(self, x)

    monkeypatch.setattr(sae_mod.BankTrainer, "step", failing)
    with pytest.raises(KeyboardInterrupt):
        train_atlas(spec, tmp_path / "out", loaded=loaded, progress=False)
    state = torch.load(tmp_path / "out" / CHECKPOINT_FILE, weights_only=False)
    assert state["phase1_steps"] == 10 and state["trainer"]["step_no"] == 15
    after = {"n": 0}

    def counting(self: sae_mod.BankTrainer, x: torch.Tensor) -> dict[str, torch.Tensor]:
        after["n"] += 1
        return real_step(self, x)

    monkeypatch.setattr(sae_mod.BankTrainer, "step", counting)
    train_atlas(spec, tmp_path / "out", loaded=loaded, progress=False)
    assert after["n"] == steps - 15


def test_bad_epochs_seeds_and_ceilings_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="epochs = 0.5"):
        _spec(tmp_path, epochs=0.5)
    with pytest.raises(InvalidInput, match="seeds = 0"):
        _spec(tmp_path, seeds=0)
    with pytest.raises(InvalidInput, match="seed modules \\['att'\\]"):
        _spec(tmp_path, seeds=2, seed_modules=["att"])
    (tmp_path / "atlas.toml").write_text(
        'name = "x"\nmodel = "m"\n[[sae]]\nlayer = 0\nmodule = "res"\npath = "a"\n'
        '[[ceiling]]\nlayer = 1\nmodule = "res"\npath = "b"\n'
    )
    with pytest.raises(ManifestError, match="layer 1 module 'res' has no \\[\\[sae\\]\\]"):
        load_manifest(tmp_path / "atlas.toml")
