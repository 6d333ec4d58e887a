"""SAE Match's permutation: a one-to-one assignment of source features to target features (linear assignment
over the squared distance of folded decoder rows), with its reconstruction-MSE check.

Folding (see ``ingest.matchers``): TopK SAEs fold by nothing, so the rows are compared at their own norms.
The cost matrix is dense ``n_t × n_s`` float64 (16k × 16k = 2 GiB) and the assignment is cubic, which is why this
matcher is opt-in, not a default (docs/ingest.md, "Which matcher when")."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def folded(unit: np.ndarray, norms: np.ndarray | None, threshold: np.ndarray | None = None) -> np.ndarray:
    """Decoder rows at their written size: unit rows × norm (× the JumpReLU threshold when one is given)."""
    scale = np.ones(len(unit), dtype=np.float32) if norms is None else norms.astype(np.float32)
    if threshold is not None:
        scale = scale * threshold.astype(np.float32)
    return unit * scale[:, None]


def reconstruction_mse(targets: np.ndarray, sources: np.ndarray, assigned: np.ndarray) -> float:
    """SAE Match's check: mean squared error of reconstructing each target's folded row by its assigned source's,
    relative to the targets' mean squared norm (0 = identical, 1 = no better than zeros; targets left unassigned
    count as reconstructed by zero)."""
    rec = np.where(assigned[:, None] >= 0, sources[np.maximum(assigned, 0)], 0.0)
    err = float(np.mean(np.sum((targets - rec) ** 2, axis=1)))
    return err / max(float(np.mean(np.sum(targets**2, axis=1))), 1e-12)


class PermutationMatcher:
    name = "permutation"
    needs_model = False

    def __init__(self) -> None:
        self.last_mse: float | None = None

    def match(
        self,
        targets: np.ndarray,
        sources: np.ndarray,
        k: int,
        *,
        target_norms: np.ndarray | None = None,
        source_norms: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        from scipy.optimize import linear_sum_assignment

        t = folded(targets, target_norms).astype(np.float64)
        s = folded(sources, source_norms).astype(np.float64)
        # ||t - s||² = |t|² + |s|² - 2 t·s
        cost = (t**2).sum(1)[:, None] + (s**2).sum(1)[None, :] - 2.0 * (t @ s.T)
        rows, cols = linear_sum_assignment(cost)
        assigned = np.full(len(t), -1, dtype=np.int64)
        assigned[rows] = cols
        self.last_mse = reconstruction_mse(t, s, assigned)
        log.debug("permutation: relative reconstruction MSE %.4f", self.last_mse)
        idx = assigned[:, None]
        safe = np.maximum(idx, 0)
        cos = np.einsum("td,tkd->tk", targets, sources[safe]).astype(np.float32)
        return np.where(idx < 0, np.nan, cos).astype(np.float32), idx
