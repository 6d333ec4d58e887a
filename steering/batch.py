"""Batched sampling and teacher-forced scoring for benchmarks: many prompts per call, each row with its own
edits (``steering.vectors``), generation through transformers' ``generate`` (KV cache on).

Unlike :func:`steering.generate.generate` (the API's path: at most 16 prompts, strict request limits), this
takes any number of pre-formatted texts and splits them into batches; it is for offline experiments.

Invariants: hooks are installed under the model's lock and removed on exit; the same (texts, settings,
edits, seed) gives the same outputs; ``nll`` runs with exactly the edits given (none: the unsteered model).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from steering.hooks import edit

if TYPE_CHECKING:
    import torch

    from steering.model import LoadedModel

RowEdits = Mapping[Any, Any]  # hook point -> op with set_scale(scale[batch])


def _apply_scale(edits: RowEdits, scale: torch.Tensor | None) -> None:
    if scale is None:
        return
    for op in edits.values():
        op.set_scale(scale)


def sample(
    lm: LoadedModel,
    texts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    edits: RowEdits | None = None,
    scales: Sequence[float] | None = None,
    batch_size: int = 32,
) -> list[list[int]]:
    """Token ids generated after each (already formatted) text; row ``i`` steered with strength ``scales[i]``.

    Exactly ``max_new_tokens`` are generated (EOS does not stop a row, so every row costs the same); ids after
    the first EOS are dropped from the result."""
    import torch

    tok = lm.tokenizer
    out: list[list[int]] = []
    eos = tok.eos_token_id
    for start in range(0, len(texts), batch_size):
        part = list(texts[start : start + batch_size])
        enc = tok(part, return_tensors="pt", padding=True, add_special_tokens=False)
        ids = enc.input_ids.to(lm.device)
        mask = enc.attention_mask.to(lm.device)
        sc = None
        if scales is not None:
            sc = torch.tensor(list(scales[start : start + batch_size]), device=lm.device, dtype=lm.dtype)
        with lm.lock:
            if edits:
                _apply_scale(edits, sc)
            with torch.inference_mode(), edit(lm, dict(edits or {})):
                torch.manual_seed(seed)
                gen = lm.model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=max_new_tokens,
                    min_new_tokens=max_new_tokens,
                    do_sample=temperature > 0,
                    temperature=temperature if temperature > 0 else None,
                    top_p=top_p if temperature > 0 else None,
                    top_k=0 if temperature > 0 else None,
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=None,
                )
        for row in gen[:, ids.shape[1] :].tolist():
            out.append(row[: row.index(eos)] if eos in row else row)
    return out


def nll(
    lm: LoadedModel,
    prefixes: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    *,
    edits: RowEdits | None = None,
    scales: Sequence[float] | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """Mean NLL (nats/token) of each continuation after its prefix (NaN for an empty continuation), under the
    model with ``edits`` at per-row ``scales`` (none: unsteered). With an empty prefix the first token has no
    context and is not scored."""
    import torch

    n = len(continuations)
    res = np.full(n, np.nan)
    pad = int(lm.tokenizer.pad_token_id or 0)
    for start in range(0, n, batch_size):
        idx = list(range(start, min(n, start + batch_size)))
        seqs = [list(prefixes[i]) + list(continuations[i]) for i in idx]
        width = max([1, *(len(s) for s in seqs)])
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, s in enumerate(seqs):  # right padding keeps each row's positions
            ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, : len(s)] = 1
        sc = None
        if scales is not None:
            sc = torch.tensor([scales[i] for i in idx], device=lm.device, dtype=lm.dtype)
        with lm.lock:
            if edits:
                _apply_scale(edits, sc)
            with torch.inference_mode(), edit(lm, dict(edits or {})):
                logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        tok_lp = logp.gather(-1, ids[:, 1:].to(lm.device).unsqueeze(-1)).squeeze(-1).cpu().numpy()
        for r, i in enumerate(idx):
            lo = max(len(prefixes[i]) - 1, 0)
            hi = len(prefixes[i]) + len(continuations[i]) - 1
            if hi > lo:
                res[i] = -float(tok_lp[r, lo:hi].mean())
    return res
