"""Run the model on token windows and SAE-encode every atlas hook point at chosen positions.

One forward pass per batch of windows captures all hook points at once (``steering.hooks.run_capture``,
stopping after the deepest point). Activations are kept sparse (CSR, float32): SAE codes are mostly
zeros, so thousands of tokens × dozens of SAEs fit in memory. Row ``i`` of every matrix is the same
(window, position) sample, listed in ``Samples.where``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from experiments.context import AtlasContext
from queries.ids import Module

log = logging.getLogger(__name__)


@dataclass
class Samples:
    where: np.ndarray  # int64 [n, 2]: (window index, position)
    acts: dict[tuple[int, Module], sparse.csr_matrix]  # [n, d_sae] per SAE

    @property
    def n(self) -> int:
        return int(self.where.shape[0])

    def dense(self, layer: int, module: Module) -> np.ndarray:
        return np.asarray(self.acts[(layer, module)].todense(), dtype=np.float32)


def sample_positions(n_windows: int, n_tokens: int, per_window: int, seed: int) -> list[np.ndarray]:
    """``per_window`` distinct random positions in [1, n_tokens) for each window (position 0 is skipped)."""
    rng = np.random.default_rng(seed)
    k = min(per_window, n_tokens - 1)
    return [np.sort(rng.choice(np.arange(1, n_tokens), size=k, replace=False)) for _ in range(n_windows)]


def encode_windows(
    ctx: AtlasContext,
    windows: list[list[int]],
    positions: list[np.ndarray] | None,
    *,
    batch_size: int = 8,
    keys: list[tuple[int, Module]] | None = None,
) -> Samples:
    """SAE activations at ``positions`` of each window (all positions when ``positions`` is None)."""
    import torch

    from steering.hooks import HookPoint, run_capture

    keys = sorted(keys if keys is not None else ctx.saes.keys())
    points = [HookPoint(layer, mod) for layer, mod in keys]
    rows: dict[tuple[int, Module], list[sparse.csr_matrix]] = {k: [] for k in keys}
    where: list[np.ndarray] = []
    device = ctx.model.device
    for start in range(0, len(windows), batch_size):
        batch = windows[start : start + batch_size]
        ids = torch.tensor(batch, dtype=torch.long, device=device)
        acts = run_capture(ctx.model, points, ids)
        for b in range(len(batch)):
            pos = positions[start + b] if positions is not None else np.arange(len(batch[b]))
            where.append(np.stack([np.full(len(pos), start + b), pos], axis=1))
            for key, point in zip(keys, points):
                h = acts[point][b, torch.as_tensor(pos, device=device)].float().cpu().numpy()
                rows[key].append(sparse.csr_matrix(ctx.saes[key].encode(h)))
    return Samples(
        where=np.concatenate(where).astype(np.int64) if where else np.zeros((0, 2), dtype=np.int64),
        acts={
            k: sparse.vstack(v, format="csr") if v else sparse.csr_matrix((0, ctx.saes[k].d_sae))
            for k, v in rows.items()
        },
    )
