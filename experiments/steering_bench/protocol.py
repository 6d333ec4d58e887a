"""The protocol's pure parts: choose α on validation, area under the concept-vs-side-effect curve, and
the bootstrap over prompts with concepts resampled as clusters.

Invariants: selection reads only validation scores; the test set is scored once at the chosen α; every
interval is a percentile interval of the bootstrap named in its record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_DEGENERATE = 0.10


@dataclass(frozen=True)
class Choice:
    alpha: float
    admissible: bool  # False: no α kept degenerate outputs ≤ 10%; the smallest α is used and flagged
    score: float


def choose_alpha(alphas: Sequence[float], hm: Sequence[float], degenerate: Sequence[float]) -> Choice:
    """The α with the highest mean harmonic mean among those with degenerate share ≤ 10% (ties: smaller α)."""
    ok = [i for i in range(len(alphas)) if degenerate[i] <= MAX_DEGENERATE]
    if not ok:
        i = int(np.argmin(alphas))
        return Choice(float(alphas[i]), False, float(hm[i]))
    best = max(ok, key=lambda i: (hm[i], -alphas[i]))
    return Choice(float(alphas[best]), True, float(hm[best]))


def tradeoff_auc(
    side: Sequence[float], concept: Sequence[float], base_concept: float, *, max_side: float = 1.0
) -> float:
    """Area under "best concept score reachable with side effect ≤ x" for x ∈ [0, max_side] nats (normalised
    by max_side), with the unsteered concept score at zero side effect; every α counts, none is chosen."""
    xs = np.linspace(0.0, max_side, 101)
    side_a, conc_a = np.asarray(side, dtype=float), np.asarray(concept, dtype=float)
    best = [max([base_concept, *conc_a[np.maximum(side_a, 0.0) <= x].tolist()]) for x in xs]
    return float(np.trapezoid(best, xs) / max_side)


def _draws(n_c: int, n_p: int, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_c, size=(n_boot, n_c)), rng.integers(0, n_p, size=(n_boot, n_p))


def bootstrap_mean(m: np.ndarray, *, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``m [concepts, prompts]`` with a 95% interval: concepts resampled as clusters, prompts resampled."""
    n_c, n_p = m.shape
    ci, pi = _draws(n_c, n_p, n_boot, seed)
    boot = np.array([m[ci[b]][:, pi[b]].mean() for b in range(n_boot)])
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return float(m.mean()), float(lo), float(hi)


def bootstrap_median_difference(a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Median over concepts of the per-concept mean difference ``a − b`` (``[concepts, prompts]``, paired),
    with a 95% interval from the same two-way bootstrap; ``beats`` only when the interval is above 0."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n_c, n_p = d.shape
    ci, pi = _draws(n_c, n_p, n_boot, seed)
    boot = np.array([np.median(d[ci[k]][:, pi[k]].mean(1)) for k in range(n_boot)])
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return {
        "median": float(np.median(d.mean(1))),
        "low": float(lo),
        "high": float(hi),
        "beats": bool(lo > 0),
        "concepts": n_c,
    }


def paired_interval(a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a − b`` over paired items (one concept's prompts × seeds) with a 95% bootstrap interval."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(n_boot, len(d)))
    lo, hi = np.quantile(d[idx].mean(1), [0.025, 0.975])
    return float(d.mean()), float(lo), float(hi)
