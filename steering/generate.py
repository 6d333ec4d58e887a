"""Bounded, seeded text generation with an optional steering plan.

Invariants: a whole generation runs under the model's lock (hooks of one request never see another's
forward passes, and the global torch RNG seeded for sampling is not shared mid-run); the same
(prompts, config, plan) gives the same text; every limit is checked before any work and violations
raise InvalidInput naming the value and the valid range.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from queries.errors import InvalidInput

if TYPE_CHECKING:
    from steering.interventions import SteeringPlan
    from steering.model import LoadedModel

MAX_NEW_TOKENS = 256
MAX_PROMPTS = 16
MAX_PROMPT_TOKENS = 1_024
MAX_TEMPERATURE = 5.0


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling parameters. ``temperature == 0`` means greedy decoding (top_p is then ignored)."""

    max_new_tokens: int = 36
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    chat: bool = False  # wrap each prompt as one user turn of the model's chat template
    stop_at_eos: bool = True  # False: always generate max_new_tokens (benchmarks)

    def validated(self) -> GenerationConfig:
        if not isinstance(self.max_new_tokens, int) or not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS:
            raise InvalidInput(f"maxNewTokens {self.max_new_tokens!r} is out of range (valid: 1–{MAX_NEW_TOKENS})")
        if not (
            isinstance(self.temperature, (int, float))
            and math.isfinite(self.temperature)
            and 0 <= self.temperature <= MAX_TEMPERATURE
        ):
            raise InvalidInput(
                f"temperature {self.temperature!r} is out of range (valid: 0–{MAX_TEMPERATURE:g}; 0 = greedy)"
            )
        if not (isinstance(self.top_p, (int, float)) and math.isfinite(self.top_p) and 0 < self.top_p <= 1):
            raise InvalidInput(f"topP {self.top_p!r} is out of range (valid: greater than 0, at most 1)")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise InvalidInput(f"seed {self.seed!r} is not valid (use an integer 0 ≤ seed < 2^63)")
        return self


@dataclass
class Generation:
    texts: list[str]  # the continuation of each prompt (prompt not included)
    new_tokens: int  # generated tokens summed over the batch (padding after EOS excluded)
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def check_prompts(prompts: Sequence[str]) -> list[str]:
    items = [prompts] if isinstance(prompts, str) else list(prompts)
    if not items:
        raise InvalidInput("no prompt given (give a non-empty prompt, or a list of up to 16)")
    if len(items) > MAX_PROMPTS:
        raise InvalidInput(f"{len(items)} prompts given; at most {MAX_PROMPTS} per request (split the batch)")
    for i, p in enumerate(items):
        if not isinstance(p, str) or not p.strip():
            raise InvalidInput(f"prompt #{i + 1} is empty (give some text, e.g. 'I think ')")
    return items


def generate(
    lm: LoadedModel, prompts: Sequence[str], config: GenerationConfig, plan: SteeringPlan | None = None
) -> Generation:
    """Generate a continuation of every prompt (one left-padded batch), steered by ``plan`` if given."""
    import contextlib

    import torch

    cfg = config.validated()
    items = check_prompts(prompts)
    tok = lm.tokenizer
    texts = [lm.format_prompt(p, chat=cfg.chat) for p in items]
    enc = tok(texts, return_tensors="pt", padding=True)
    if enc.input_ids.shape[1] > MAX_PROMPT_TOKENS:
        raise InvalidInput(
            f"a prompt is {enc.input_ids.shape[1]} tokens long; at most {MAX_PROMPT_TOKENS} tokens are accepted (shorten it)"
        )
    input_ids = enc.input_ids.to(lm.device)
    attention_mask = enc.attention_mask.to(lm.device)
    kwargs: dict[str, object] = {"max_new_tokens": cfg.max_new_tokens, "pad_token_id": tok.pad_token_id}
    if cfg.temperature > 0:
        kwargs.update(do_sample=True, temperature=float(cfg.temperature), top_p=float(cfg.top_p), top_k=0)
    else:
        kwargs.update(do_sample=False)
    if cfg.stop_at_eos:
        kwargs["eos_token_id"] = tok.eos_token_id
    else:
        kwargs.update(eos_token_id=None, min_new_tokens=cfg.max_new_tokens)
    with lm.lock:
        steer = plan.apply(lm) if plan is not None and not plan.empty else contextlib.nullcontext()
        with torch.inference_mode(), steer:
            torch.manual_seed(cfg.seed)
            started = time.perf_counter()
            out = lm.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            seconds = time.perf_counter() - started
    new = out[:, input_ids.shape[1] :]
    count = 0
    continuations = []
    eos = tok.eos_token_id
    for row in new.tolist():
        if cfg.stop_at_eos and eos in row:
            row = row[: row.index(eos)]
            count += len(row) + 1
        else:
            count += len(row)
        continuations.append(tok.decode(row, skip_special_tokens=True))
    return Generation(texts=continuations, new_tokens=count, seconds=seconds)
