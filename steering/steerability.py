"""Steerability: a cheap measured effect of steering each feature of an atlas at one standard α.

For every feature at hook point ``p``: add ``α · median‖h‖_p · unit(d)`` (units ALPHA, ``SAEBank.median_norm``)
at the *last* position of each of a fixed set of neutral prompts and compare the next-token distribution with
the unsteered one: its KL divergence (nats, mean over prompts: how much the feature moves the output at all),
and the tokens whose log-probability rises most (mean over prompts: what it moves the output towards).

Why the last position only: the prompt's prefix is run once with a KV cache and every feature is one batched
one-token forward on top of it (steering.kv), so all features of a 12k-feature atlas cost minutes, not hours.
Steering every position (what ``steer`` does) also changes the prefix's keys and values; this measures the
direct next-token effect only, and says so wherever it is shown. It is a screening figure: whether a feature
steers a *concept* is what the steering benchmark measures (experiments.steering_bench), for the seeds it tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from queries.errors import InvalidInput
from queries.ids import Module
from steering.hooks import HookPoint

if TYPE_CHECKING:
    import torch

    from steering.model import LoadedModel
    from steering.saes import SAEBank

# α of the steering benchmark's grid (0.05–0.75) at which every feature is measured: the middle of the range the
# benchmark admits (degenerate text stays rare there for single features on the default atlas).
STANDARD_ALPHA = 0.3
# Neutral prefixes, none about a concept of the benchmark; fixed so the figures of two atlases compare.
PROMPTS: tuple[str, ...] = (
    "I think that the",
    "Yesterday my friend told me about",
    "The most interesting thing is",
    "Here is a short story about",
    "In the morning we usually",
    "She looked at the list and said",
    "One reason people like",
    "The next step is to",
)
TOP_TOKENS = 5


@dataclass
class PointEffects:
    """Per feature of one SAE: KL to the unsteered next-token distribution and the most promoted tokens."""

    point: HookPoint
    kl: np.ndarray  # [d_sae] nats, mean over prompts
    top_ids: np.ndarray  # [d_sae, TOP_TOKENS] token ids, largest mean log-prob gain first
    top_gain: np.ndarray  # [d_sae, TOP_TOKENS] that gain (nats)
    median_norm: float  # the α unit at this point
    seconds: float


@dataclass
class SteerabilityRun:
    alpha: float
    prompts: list[str]
    points: list[PointEffects] = field(default_factory=list)


def _edit(vectors: torch.Tensor, hook_z: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """Row r of the batch gets ``vectors[r]`` added (at the one continuation position)."""
    if hook_z:
        return lambda z: (z.flatten(-2) + vectors[:, None, :]).view_as(z)
    return lambda h: h + vectors[:, None, :]


def measure_point(
    lm: LoadedModel,
    bank: SAEBank,
    point: HookPoint,
    *,
    alpha: float = STANDARD_ALPHA,
    prompts: Sequence[str] = PROMPTS,
    batch: int = 256,
    top: int = TOP_TOKENS,
) -> PointEffects:
    import torch

    from steering.kv import continuation, prefix_cache

    if not 0 < alpha <= 2:
        raise InvalidInput(f"alpha {alpha} is out of range (use 0 < α ≤ 2; the steering benchmark's grid is 0.05–0.75)")
    t0 = time.perf_counter()
    sae = bank.get(point)
    unit_norm = bank.median_norm(point)
    key: HookPoint | str = sae.edit_hook or point
    hook_z = bool(sae.edit_hook and sae.edit_hook.endswith("attn.hook_z"))
    w = sae.W_dec.float()
    dirs = w / w.norm(dim=-1, keepdim=True).clamp(min=1e-8) * (alpha * unit_norm)  # [d_sae, d]
    n = dirs.shape[0]
    res_last = HookPoint(lm.n_layers - 1, Module.RES)  # the prefix is cached through the last block
    kl = np.zeros(n)
    top_ids = np.zeros((n, top), dtype=np.int64)
    top_gain = np.zeros((n, top), dtype=np.float32)
    with lm.lock:
        prefixes = []
        for prompt in prompts:
            ids = lm.tokenizer(prompt).input_ids
            if len(ids) < 2:
                raise InvalidInput(f"steerability prompt {prompt!r} is under 2 tokens (give longer prompts)")
            kv = prefix_cache(lm, ids[:-1], res_last)
            base_logits, _ = continuation(lm, kv, ids[-1:], 1, {}, point)
            prefixes.append((kv, ids[-1:], torch.log_softmax(base_logits[0, -1].float(), dim=-1).cpu()))
        # features in chunks, every prompt per chunk: memory is one chunk's [batch, vocab] gains
        for a in range(0, n, batch):
            v = dirs[a : a + batch].to(device=lm.device, dtype=lm.dtype)
            gain = torch.zeros(0)
            edits: dict[Any, Any] = {key: _edit(v, hook_z)}  # the SAE's own hook (str) or its point
            for kv, last, base in prefixes:
                logits, _ = continuation(lm, kv, last, len(v), edits, point)
                d = torch.log_softmax(logits[:, -1].float(), dim=-1).cpu() - base  # [b, vocab]
                kl[a : a + len(v)] += ((d + base).exp() * d).sum(-1).double().numpy()
                gain = d if gain.numel() == 0 else gain + d
            vals, idx = (gain / len(prefixes)).topk(top, dim=-1)
            top_ids[a : a + len(v)], top_gain[a : a + len(v)] = idx.numpy(), vals.numpy()
    kl /= len(prompts)
    return PointEffects(point, kl, top_ids, top_gain, float(unit_norm), round(time.perf_counter() - t0, 2))


def measure_atlas(
    lm: LoadedModel,
    bank: SAEBank,
    points: Sequence[HookPoint],
    *,
    alpha: float = STANDARD_ALPHA,
    prompts: Sequence[str] = PROMPTS,
    batch: int = 256,
    progress: Callable[[str], Any] | None = None,
) -> SteerabilityRun:
    run = SteerabilityRun(alpha, list(prompts))
    for p in points:
        run.points.append(measure_point(lm, bank, p, alpha=alpha, prompts=prompts, batch=batch))
        if progress:
            progress(f"steerability {p}: {len(run.points[-1].kl)} features in {run.points[-1].seconds:.1f} s")
    return run


def feature_rows(run: SteerabilityRun, atlas: str, tokenizer: Any) -> list[dict[str, Any]]:
    """One row per feature for queries.steerability.store_steerability: uid, KL, promoted tokens and their gains."""
    from queries.ids import feature_uid

    rows = []
    for pe in run.points:
        tokens = [[tokenizer.decode([int(t)]) for t in ids] for ids in pe.top_ids]
        for i in range(len(pe.kl)):
            rows.append(
                {
                    "uid": feature_uid(atlas, pe.point.layer, pe.point.module.value, i),
                    "steer_kl": round(float(pe.kl[i]), 5),
                    "steer_tokens": tokens[i],
                    "steer_token_gains": [round(float(g), 3) for g in pe.top_gain[i]],
                }
            )
    return rows


def screen_atlas(
    info: dict[str, Any],
    atlas: str,
    *,
    dtype: torch.dtype,
    manifest: str | Path | None = None,
    alpha: float = STANDARD_ALPHA,
    batch: int = 256,
    progress: Callable[[str], Any] | None = None,
) -> tuple[SteerabilityRun, LoadedModel]:
    """Every SAE of an ingested atlas (``info``: its Atlas node, queries.atlases.atlas_info) screened with its model."""
    from saes.locate import find_manifest
    from steering.model import load_model
    from steering.saes import SAEBank

    m = find_manifest(
        atlas, explicit=manifest, recorded=info.get("manifest_path"), expected_sha256=info.get("manifest_sha256")
    )
    lm = load_model(m.model, device="cpu", dtype=dtype)
    points = [HookPoint(e.layer, e.module) for e in m.saes]
    return measure_atlas(lm, SAEBank(m, lm), points, alpha=alpha, batch=batch, progress=progress), lm


def store_screen(graph: Any, atlas: str, run: SteerabilityRun, tokenizer: Any) -> int:
    """The screen's per-feature rows and the SAEs' α units onto the graph (queries.steerability); features sent."""
    from queries.ids import sae_key
    from queries.steerability import store_steerability

    norms = [
        {"key": sae_key(atlas, p.point.layer, p.point.module.value), "median_norm": p.median_norm} for p in run.points
    ]
    rows = feature_rows(run, atlas, tokenizer)
    return store_steerability(graph, atlas, rows, norms, alpha=run.alpha, prompts=run.prompts)
