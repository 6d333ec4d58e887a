"""Coherence of generated text without an LLM judge: perplexity under the unsteered model + repetition.

- ``continuation_nll``: mean negative log-likelihood (nats/token) of each continuation given its prompt,
  under the *unsteered* model (no hooks may be active while it runs — the caller's job).
- ``repetition_rate``: 1 − distinct n-grams / n-grams over token ids (0 = no repeated n-gram). Degenerate
  steered text ("love love love …") can have a *low* perplexity, which is why repetition is scored too.
- ``coherence_score``: in [0, 1], ``(1 − repetition) · min(1, ppl_ref / ppl)`` with ``ppl_ref`` the median
  perplexity of unsteered generations from the same prompt and sampling: unsteered text scores ≈ 1,
  text the model finds surprising or that loops scores lower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def repetition_rate(tokens: Sequence[int], n: int = 3) -> float:
    """Share of n-grams that repeat an earlier one; 0 for texts shorter than n."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def continuation_nll(
    model: Any, prompt_ids: Sequence[int], continuations: Sequence[Sequence[int]], *, batch_size: int = 8
) -> np.ndarray:
    """Mean NLL (nats/token) of each continuation after the prompt; NaN for empty continuations."""
    import torch

    device = next(model.parameters()).device
    out = np.full(len(continuations), np.nan)
    order = [i for i, c in enumerate(continuations) if len(c) > 0]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        seqs = [list(prompt_ids) + list(continuations[i]) for i in idx]
        width = max(len(s) for s in seqs)
        ids = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):  # right padding: positions of real tokens are unchanged
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        target = ids[:, 1:].to(device)
        tok_lp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).cpu().numpy()
        for r, i in enumerate(idx):
            lo = len(prompt_ids) - 1  # logits at position p predict token p+1
            hi = len(prompt_ids) + len(continuations[i]) - 1
            out[i] = -float(tok_lp[r, lo:hi].mean())
    return out


def coherence_score(nll: float, repetition: float, reference_ppl: float) -> float:
    """(1 − repetition) · min(1, reference_ppl / ppl); NaN if the NLL is undefined."""
    if not math.isfinite(nll):
        return float("nan")
    ppl = math.exp(nll)
    return (1.0 - repetition) * min(1.0, reference_ppl / ppl)
