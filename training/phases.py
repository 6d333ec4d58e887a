"""The job's two compute phases: training the bank (phase 1 streams forward passes through a shuffle buffer,
phase 2 replays cached activations for more epochs; training.loop) and the held-out pass that measures EV, L0,
dead fraction, top contexts and frequencies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from training.checkpoint import Checkpointer, StreamPosition
from training.job import TrainingJob

if TYPE_CHECKING:
    import torch

    from training.labels import TopContexts


@dataclass
class TrainedBank:
    tokens_trained: int
    unique_tokens: int
    forward_s: float  # inside forward passes (phase 1 only)
    train_s: float  # both phases
    phase1_s: float


@dataclass
class HeldOut:
    results: list[dict[str, Any]]  # per bank SAE: EV, L0, dead fraction, ...
    frequencies: list[Any]  # per atlas SAE: activation frequency per feature
    top: TopContexts
    sequences: list[list[int]]  # the held-out token ids, for the top contexts' text
    tokens: int
    seconds: float


def _timed(it: Iterator[Any], clock: list[float]) -> Iterator[Any]:
    """Yield from ``it``, adding the time spent inside ``next`` to ``clock[0]``."""
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        clock[0] += time.perf_counter() - t0
        yield item


def train_bank(job: TrainingJob, ckpt: Checkpointer, pos: StreamPosition, *, progress: bool) -> TrainedBank:
    import torch
    from tqdm.auto import tqdm

    from training.activations import forward_batches, shuffled_training_batches
    from training.loop import run_phase2, total_steps

    spec, layout, trainer, cache, device = job.spec, job.layout, job.trainer, job.cache, job.device
    steps_total = total_steps(spec.token_budget, spec.train_batch_tokens, spec.epochs)
    t = time.perf_counter()
    fwd_clock = [0.0]
    in_phase2 = pos.phase1_steps is not None
    rebuild = in_phase2 and cache is not None  # resumed after phase 1: re-run the forwards to refill the cache
    start_seqs = 0 if rebuild else pos.consumed_seqs
    fb = forward_batches(
        job.loaded,
        job.reads,
        job.split.train,
        seq_len=spec.seq_len,
        seqs_per_batch=spec.seqs_per_batch,
        shuffle_seed=spec.seed,
        skip_sequences=start_seqs,
        max_sequences=max(0, job.total_seqs - start_seqs) if (rebuild or not in_phase2) else 0,
        keep_on_device=device != "cpu",
    )
    bar = tqdm(
        total=steps_total * spec.train_batch_tokens,
        initial=trainer.step_no * spec.train_batch_tokens,
        unit="tok",
        desc=f"train {layout.n} SAEs" + (f" × {spec.epochs:g} epochs" if spec.epochs > 1 else ""),
        disable=not progress,
    )
    last_stats: dict[str, Any] = {}
    order_gen = torch.Generator().manual_seed(spec.seed + 7919 * (pos.consumed_seqs + 1))
    for x, seqs_done in shuffled_training_batches(
        _timed(fb, fwd_clock), buffer_batches=spec.buffer_batches, seed=spec.seed + start_seqs
    ):
        if cache is not None:
            cache.append(x)
        if rebuild:
            continue
        # The seed-ceiling copies see each buffer in their own order (group 0 keeps the buffer's).
        orders: list[torch.Tensor | None] = [None] + [
            torch.randperm(x.shape[1], generator=order_gen).to(x.device) for _ in range(1, layout.n_groups)
        ]
        xb = layout.gather(x, orders)
        # Split the mixed buffer slice into training batches of about train_batch_tokens.
        for j, part in enumerate(torch.split(xb, spec.train_batch_tokens, dim=1)):
            if j > 0 and part.shape[1] < spec.train_batch_tokens // 4:
                continue  # a sliver at the end of a buffer carries too few tokens for a useful Adam step
            last_stats = trainer.step(part.to(device, non_blocking=True))
            pos.tokens_trained += part.shape[1]
            bar.update(part.shape[1])
        pos.consumed_seqs += seqs_done
        if last_stats:
            bar.set_postfix(
                nmse=f"{float(last_stats['nmse'].mean()):.3f}", dead=f"{float(last_stats['dead'].mean()):.3f}"
            )
            ckpt.maybe_save(pos)
    if pos.phase1_steps is None:
        pos.phase1_steps = trainer.step_no
    phase1_s = time.perf_counter() - t

    if cache is not None and cache.size:

        def step(xb: torch.Tensor) -> None:
            trainer.step(xb.to(device, non_blocking=True))
            pos.tokens_trained += xb.shape[1]
            bar.update(xb.shape[1])
            ckpt.maybe_save(pos)

        run_phase2(
            cache,
            layout,
            batch_tokens=spec.train_batch_tokens,
            seed=spec.seed,
            step_no=trainer.step_no,
            phase1_steps=pos.phase1_steps,
            total=steps_total,
            step=step,
        )
        job.cache = None  # free the cached activations before the held-out pass
    bar.close()
    return TrainedBank(
        tokens_trained=pos.tokens_trained,
        unique_tokens=min(pos.tokens_trained, job.total_seqs * job.tokens_per_seq),
        forward_s=fwd_clock[0],
        train_s=time.perf_counter() - t,
        phase1_s=phase1_s,
    )


def evaluate_heldout(job: TrainingJob, *, progress: bool) -> HeldOut:
    import torch
    from tqdm.auto import tqdm

    from training.activations import forward_batches
    from training.labels import TopContexts
    from training.sae import MetricsAccumulator

    spec, layout, n = job.spec, job.layout, job.n_points
    t = time.perf_counter()
    tokens_per_seq = job.tokens_per_seq
    heldout_seqs = -(-spec.heldout_tokens // tokens_per_seq)
    acc = MetricsAccumulator(layout.n, spec.d_sae, max_tokens=heldout_seqs * tokens_per_seq)
    top = TopContexts(n, spec.d_sae, spec.n_contexts)
    sequences: list[list[int]] = []
    offset = 0
    bar = tqdm(total=heldout_seqs * tokens_per_seq, unit="tok", desc="held-out eval", disable=not progress)
    same_order: list[torch.Tensor | None] = [None] * layout.n_groups
    for b in forward_batches(
        job.loaded,
        job.reads,
        job.split.held_out,
        seq_len=spec.seq_len,
        seqs_per_batch=spec.seqs_per_batch,
        shuffle_seed=None,
        max_sequences=heldout_seqs,
    ):
        # In pieces of train_batch_tokens: dense pre-activations of every SAE must fit in memory.
        for piece in torch.split(layout.gather(b.acts, same_order), spec.train_batch_tokens, dim=1):
            recon, vals, idx = (t.cpu() for t in job.bank.reconstruct_raw(piece.to(job.device)))
            acc.update(piece, recon, vals, idx)
            top.update(vals[:n], idx[:n], offset)
            offset += piece.shape[1]
        sequences.extend(b.token_ids.tolist())
        bar.update(b.acts.shape[1])
    bar.close()
    return HeldOut(acc.results(), acc.frequencies(), top, sequences, offset, time.perf_counter() - t)
