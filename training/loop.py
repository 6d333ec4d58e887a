"""The training loop: one pass over the streamed forward batches, then more epochs over cached activations.

Why epochs: the language model's forward pass is the expensive part on a CPU (a SmolLM2 forward to layer 11
costs several SAE steps per token), and SAEs trained on a few hundred thousand tokens have not converged —
two seeds of the same hook point agree on few features (issue #18's measurements). Replaying the same tokens
in new orders buys SAE steps without forward passes; ``epochs`` sets how many passes (fractions allowed).

Phase 1 trains on the shuffled stream (training.activations) and, when ``epochs > 1``, stores every token's
activations in an :class:`ActivationCache` (bf16: half the memory of fp32, and its 8-bit exponent holds any
activation an LM produces; the rounding, ≤ 0.4% per entry, is far below SAE reconstruction error). Phase 2
draws fresh permutations of the cache per epoch.

Ceiling SAEs (``seeds > 1``): extra SAEs on the same hook point, initialised differently AND fed their own
token order (a different permutation of each buffer in phase 1, of the cache in phase 2), so the top-1 cosine
between seeds measures how far training noise alone moves the features.

Invariants
- Bank index ``i`` reads point ``layout.sources[i]`` in the token order of group ``layout.groups[i]``.
- Steps are counted over both phases against one ``total_steps`` (the learning-rate schedule spans all epochs).
- A checkpoint records ``phase1_steps``; a run resumed in phase 2 re-runs the forward passes to rebuild the
  cache (no SAE steps), then continues at the same epoch and offset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BankLayout:
    """Which point and which token order each SAE of the bank trains on."""

    sources: list[int]  # bank index → index of the point in the forward batches
    groups: list[int]  # bank index → token-order group (0 = the atlas's SAEs, j = seed j's copies)

    @classmethod
    def with_seeds(cls, n_points: int, seeded_points: list[int], seeds: int) -> BankLayout:
        """The atlas's SAEs first (one per point), then ``seeds - 1`` copies of each seeded point."""
        sources = list(range(n_points))
        groups = [0] * n_points
        for j in range(1, seeds):
            sources += seeded_points
            groups += [j] * len(seeded_points)
        return cls(sources, groups)

    @property
    def n(self) -> int:
        return len(self.sources)

    @property
    def n_groups(self) -> int:
        return max(self.groups) + 1

    def gather(self, x: torch.Tensor, orders: list[torch.Tensor | None]) -> torch.Tensor:
        """``[n_points, T, d]`` → ``[n_bank, T, d]``: each SAE's point, its group's token order applied."""
        if self.n_groups == 1:
            return x
        return torch.stack(
            [
                x[src] if orders[g] is None else x[src, orders[g]]
                for src, g in zip(self.sources, self.groups, strict=True)
            ]
        )


class ActivationCache:
    """Every phase-1 token's activations, ``[n_points, capacity, d]`` in bf16, filled in stream order."""

    def __init__(self, n_points: int, capacity: int, d: int) -> None:
        self.data = torch.empty(n_points, capacity, d, dtype=torch.bfloat16)
        self.size = 0

    @staticmethod
    def bytes_needed(n_points: int, capacity: int, d: int) -> int:
        return n_points * capacity * d * 2

    def append(self, x: torch.Tensor) -> None:
        take = min(x.shape[1], self.data.shape[1] - self.size)
        self.data[:, self.size : self.size + take] = x[:, :take].to("cpu", torch.bfloat16)
        self.size += take

    def epoch_batches(
        self, layout: BankLayout, batch_tokens: int, *, seed: int, epoch: int, skip_steps: int = 0
    ) -> Iterator[torch.Tensor]:
        """One epoch: ``size // batch_tokens`` batches ``[n_bank, batch_tokens, d]`` (fp32), in a random order
        per token-order group that depends only on ``(seed, epoch, group)`` — so a resumed run replays it."""
        perms = [
            torch.randperm(self.size, generator=torch.Generator().manual_seed(hash_seed(seed, epoch, g)))
            for g in range(layout.n_groups)
        ]
        for s in range(skip_steps, self.size // batch_tokens):
            sl = slice(s * batch_tokens, (s + 1) * batch_tokens)
            yield torch.stack(
                [self.data[src, perms[g][sl]] for src, g in zip(layout.sources, layout.groups, strict=True)]
            ).float()


def hash_seed(*parts: int) -> int:
    """A stable 63-bit seed from small integers (Python's hash of ints is not salted, but be explicit)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFF)) * 1099511628211) & 0x7FFFFFFFFFFFFFFF
    return h


def total_steps(token_budget: int, batch_tokens: int, epochs: float) -> int:
    """Steps over all epochs: the first pass covers the budget; later passes replay ``budget // batch`` steps."""
    first = -(-token_budget // batch_tokens)
    later = math.floor((epochs - 1.0) * (token_budget // batch_tokens)) if epochs > 1 else 0
    return first + later


def phase2_position(step_no: int, phase1_steps: int, steps_per_epoch: int) -> tuple[int, int]:
    """(epoch number counted from 2, steps already done in it) for a run resumed at ``step_no``."""
    done = max(0, step_no - phase1_steps)
    return 2 + done // steps_per_epoch, done % steps_per_epoch


def run_phase2(
    cache: ActivationCache,
    layout: BankLayout,
    *,
    batch_tokens: int,
    seed: int,
    step_no: int,
    phase1_steps: int,
    total: int,
    step: Callable[[torch.Tensor], None],
) -> None:
    """Train from the cache until ``total`` steps are done (resuming inside an epoch when ``step_no`` says so)."""
    spe = cache.size // batch_tokens
    if spe == 0:
        return
    epoch, offset = phase2_position(step_no, phase1_steps, spe)
    while step_no < total:
        for x in cache.epoch_batches(layout, batch_tokens, seed=seed, epoch=epoch, skip_steps=offset):
            if step_no >= total:
                return
            step(x)
            step_no += 1
        epoch, offset = epoch + 1, 0
