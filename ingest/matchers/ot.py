"""Entropic optimal-transport matching (Sinkhorn, numpy): uniform mass on each feature set, cost ``1 - cos``.

Each target's candidates are the sources that send it the most mass; the score is that mass as a share of the
target's (0..1). The plan is dense ``n_t × n_s``; iterations are in the log domain so a small ``epsilon`` cannot
underflow."""

from __future__ import annotations

import numpy as np

from ingest.matching import _sorted_topk_rows

DEFAULT_EPSILON = 0.02
DEFAULT_ITERS = 200


def sinkhorn_plan(cos: np.ndarray, epsilon: float = DEFAULT_EPSILON, iters: int = DEFAULT_ITERS) -> np.ndarray:
    """Transport plan (float32 [n_t, n_s], rows scaled to sum to 1) for cost ``1 - cos`` between uniform masses."""
    from scipy.special import logsumexp

    n_t, n_s = cos.shape
    logk = (cos.astype(np.float64) - 1.0) / epsilon
    log_a, log_b = -np.log(n_t), -np.log(n_s)
    f = np.zeros(n_t)
    g = np.zeros(n_s)
    for _ in range(iters):
        f = log_a - logsumexp(logk + g[None, :], axis=1)
        g = log_b - logsumexp(logk + f[:, None], axis=0)
    logp = logk + f[:, None] + g[None, :]
    logp -= logsumexp(logp, axis=1, keepdims=True)
    return np.exp(logp).astype(np.float32)


class SinkhornMatcher:
    name = "ot"
    needs_model = False

    def __init__(self, epsilon: float = DEFAULT_EPSILON, iters: int = DEFAULT_ITERS) -> None:
        self.epsilon, self.iters = epsilon, iters

    def match(
        self,
        targets: np.ndarray,
        sources: np.ndarray,
        k: int,
        *,
        target_norms: np.ndarray | None = None,
        source_norms: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        plan = sinkhorn_plan(targets @ sources.T, self.epsilon, self.iters)
        return _sorted_topk_rows(plan, min(k, plan.shape[1]))
