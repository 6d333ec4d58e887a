"""Forward passes over a cached prefix: run a clean prefix once with a KV cache, then many batched one-token
continuations on top of it, each with its own edits, each stopped after the hook point it reads.

Why: an edit at token t cannot change earlier positions, so experiments that intervene at one token
(experiments/deactivation.py) pay for the prefix once instead of once per intervention.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from steering.hooks import EditFn, HookPoint, StopForward, capture, edit

if TYPE_CHECKING:
    import torch

    from steering.model import LoadedModel


@cache
def _cache_kwarg() -> str:
    """The name transformers gives the cache argument of a Llama forward (it was renamed across versions)."""
    from transformers import LlamaForCausalLM

    return "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"


def prefix_cache(lm: LoadedModel, ids: list[int], stop_at: HookPoint) -> Any:
    """The KV cache of ``ids`` for the layers up to ``stop_at`` (the forward stops after that point)."""
    import torch
    from transformers import DynamicCache

    hf = lm.model
    kv = DynamicCache(config=hf.config)
    x = torch.tensor([ids], dtype=torch.long, device=lm.device)
    with torch.no_grad(), capture(lm, [stop_at], stop_after_last=True):
        try:
            hf(input_ids=x, use_cache=True, **{_cache_kwarg(): kv})
        except StopForward:
            pass
    return kv


def next_token_states(
    lm: LoadedModel, kv: Any, token: int, batch: int, edits: Mapping[HookPoint, EditFn], read: HookPoint
) -> torch.Tensor:
    """The hidden state at ``read`` [batch, d_model] of one more ``token`` after the cached prefix, run as
    ``batch`` rows (each row's edits see its own row), stopped after ``read``. ``kv`` is left unchanged."""
    import torch

    c = copy.deepcopy(kv)
    c.batch_repeat_interleave(batch)
    x = torch.full((batch, 1), token, dtype=torch.long, device=lm.device)
    with torch.no_grad(), edit(lm, edits), capture(lm, [read], stop_after_last=True) as acts:
        try:
            lm.model(input_ids=x, use_cache=True, **{_cache_kwarg(): c})
        except StopForward:
            pass
    return acts[read][:, 0]


def continuation(
    lm: LoadedModel, kv: Any, ids: list[int], batch: int, edits: Mapping[HookPoint, EditFn], read: HookPoint
) -> tuple[torch.Tensor, torch.Tensor]:
    """``ids`` continued after the cached prefix (cached through the last block) as ``batch`` rows, each
    row's edits seeing its own row: the logits ``[batch, len(ids), vocab]`` and the hidden state at ``read``
    ``[batch, len(ids), d]``. ``kv`` is left unchanged."""
    import torch

    c = copy.deepcopy(kv)
    c.batch_repeat_interleave(batch)
    x = torch.tensor([ids] * batch, dtype=torch.long, device=lm.device)
    with torch.no_grad(), edit(lm, edits), capture(lm, [read]) as acts:
        logits = lm.model(input_ids=x, use_cache=True, **{_cache_kwarg(): c}).logits
    return logits, acts[read]
