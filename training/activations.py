"""Activations of every chosen hook point from ONE forward pass per batch, streamed.

The language model's forward is the expensive part of SAE training, so each batch of token sequences
runs through the model once, with hooks on all chosen (layer, module) points
(:func:`steering.hooks.run_capture`), and the forward stops right after the deepest point. Nothing is
kept beyond a bounded shuffle buffer: an atlas of 90 hook points costs ≈ 200 KiB per token in fp32.

Invariants
- Batches are ``[n_points, tokens, d_model]`` float32 in the order of ``points``.
- Position 0 of every sequence is dropped: its activations are the attention sink's (norms tens of
  times larger than any other position), which an SAE should not spend its capacity on.
- Sequences come from :func:`training.corpus.pack_sequences`, so the stream is deterministic for a
  given corpus, tokenizer and seed; ``skip_sequences`` resumes it where a checkpoint stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

import torch

from steering.hooks import HookPoint, run_capture
from training.corpus import Chunk, pack_sequences

if TYPE_CHECKING:
    from steering.model import LoadedModel

log = logging.getLogger(__name__)


@dataclass
class SequenceBatch:
    """A forward batch: token ids ``[S, T]``, the activations ``[n, S*(T-1), d]`` (position 0 dropped)."""

    token_ids: torch.Tensor
    acts: torch.Tensor
    origins: list[list[tuple[str, int]]]


def _batched(
    it: Iterator[tuple[list[int], list[tuple[str, int]]]], size: int
) -> Iterator[list[tuple[list[int], list[tuple[str, int]]]]]:
    while True:
        group = list(islice(it, size))
        if not group:
            return
        yield group


def forward_batches(
    loaded: LoadedModel,
    points: list[HookPoint | str],
    chunks: Iterable[Chunk],
    *,
    seq_len: int,
    seqs_per_batch: int,
    shuffle_seed: int | None,
    skip_sequences: int = 0,
    max_sequences: int | None = None,
    keep_on_device: bool = False,
) -> Iterator[SequenceBatch]:
    """Run the model once per batch of packed sequences and yield every point's activations.

    Activations come back on the CPU unless ``keep_on_device``: on a GPU, training keeps them there (a
    full-profile batch is ~1.7 GB; copying it to the host and back costs more than the SAE steps)."""
    seqs = pack_sequences(loaded.tokenizer, chunks, seq_len, shuffle_seed=shuffle_seed)
    if skip_sequences:
        # Re-packing is cheap (tokeniser only); the model never sees the skipped sequences again.
        seqs = islice(seqs, skip_sequences, None)
    if max_sequences is not None:
        seqs = islice(seqs, max_sequences)
    device = loaded.device
    for group in _batched(seqs, seqs_per_batch):
        ids = torch.tensor([g[0] for g in group], dtype=torch.long, device=device)
        with loaded.lock:
            acts = run_capture(loaded, points, ids, stop_early=True)
        flat = [acts[p].flatten(2) for p in points]  # attn.hook_z arrives [S, T, heads, d_head]
        stacked = torch.stack([a[:, 1:, :].reshape(-1, a.shape[-1]) for a in flat]).float()
        if not keep_on_device:
            stacked = stacked.cpu()
        yield SequenceBatch(ids.cpu(), stacked, [g[1] for g in group])


def shuffled_training_batches(
    batches: Iterator[SequenceBatch], *, buffer_batches: int, seed: int
) -> Iterator[tuple[torch.Tensor, int]]:
    """Mix tokens across ``buffer_batches`` forward batches before training on them.

    Tokens of one sequence are strongly correlated; shuffling within a small buffer decorrelates the
    gradient steps at a memory cost of ``buffer_batches`` forward batches. Yields one shuffled buffer
    ``[n, tokens, d]`` at a time with the number of sequences it consumed (for resuming).
    """
    g = torch.Generator().manual_seed(seed)
    while True:
        group = list(islice(batches, buffer_batches))
        if not group:
            return
        x = torch.cat([b.acts for b in group], dim=1)
        perm = torch.randperm(x.shape[1], generator=g).to(x.device)
        x = x[:, perm]
        yield x, sum(b.token_ids.shape[0] for b in group)
