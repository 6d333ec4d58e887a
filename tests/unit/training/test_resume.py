"""An interrupted `train_atlas` resumes from its checkpoint on the same data order and finishes the budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.factories import tiny_llama, word_corpus
from training import sae as sae_mod
from training.train import CHECKPOINT_FILE, TrainSpec, train_atlas


def test_interrupted_training_resumes_from_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = tiny_llama(seed=1, n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_mlp=64)
    corpus = word_corpus(tmp_path / "c")
    spec = TrainSpec(
        atlas="resume-test",
        model="tiny",
        layers=[0, 1],
        modules=["res", "mlp"],
        d_sae=32,
        k=4,
        token_budget=2400,
        seq_len=32,
        seqs_per_batch=4,
        buffer_batches=1,
        train_batch_tokens=124,
        heldout_tokens=200,
        held_out_fraction=0.2,
        corpus=str(corpus),
        checkpoint_every=2,
    )
    out = tmp_path / "out"

    real_step = sae_mod.BankTrainer.step
    calls = {"n": 0}

    def failing_step(self: sae_mod.BankTrainer, x: torch.Tensor) -> dict[str, torch.Tensor]:
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt
        return real_step(self, x)

    monkeypatch.setattr(sae_mod.BankTrainer, "step", failing_step)
    with pytest.raises(KeyboardInterrupt):
        train_atlas(spec, out, loaded=loaded, progress=False)
    state = torch.load(out / CHECKPOINT_FILE, weights_only=False)
    assert state["trainer"]["step_no"] == 8 and state["consumed_seqs"] == 8 * 4
    assert not (out / "metrics.json").exists()

    steps_after = {"n": 0}

    def counting_step(self: sae_mod.BankTrainer, x: torch.Tensor) -> dict[str, torch.Tensor]:
        steps_after["n"] += 1
        return real_step(self, x)

    monkeypatch.setattr(sae_mod.BankTrainer, "step", counting_step)
    result = train_atlas(spec, out, loaded=loaded, progress=False)
    total_steps = -(-2400 // 124)
    assert steps_after["n"] == total_steps - 8  # only the remaining steps ran
    assert result.metrics["tokens_trained"] >= 2400
    assert not (out / CHECKPOINT_FILE).exists()
    assert len(json.loads((out / "metrics.json").read_text())["saes"]) == 4
