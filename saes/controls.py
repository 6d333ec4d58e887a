"""Controls that make a decoder cosine readable: a null (no shared directions) and a ceiling (same hook).

Null: the top-1 cosine of target decoder rows against a *randomly rotated* copy of the candidate
decoder. A rotation keeps the candidate's spectrum (its rows' norms and their Gram matrix, so any
anisotropy or clustering of the dictionary) but destroys every direction it shares with the target, so
the null answers "how high does the best of N candidates score by chance for *these* two SAEs?".
``cos(t, R s) = cos(Rᵀ t, s)``, so rotating the (sampled) target rows by a Haar-random orthogonal matrix
gives the same distribution at a fraction of the cost of rotating the whole candidate decoder.

Ceiling: two SAEs trained on the same hook point with different seeds; the top-1 cosine between them
is what "the same feature" scores when nothing but training noise separates them.

Pure numpy; deterministic in ``seed``. Used at ingest (stored on SAE/Atlas nodes) and by the reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Null samples per SAE pair: target rows drawn (with a fresh rotation per pass when an SAE is smaller).
# 4,096 keeps the median stable and puts the 99.9th percentile on ~4 samples beyond it; on a Gemma-sized
# pair (16k × 16k × 2304) it costs a quarter of that pair's matching.
DEFAULT_NULL_ROWS = 4096


@dataclass(frozen=True)
class ScoreSummary:
    """Median and upper quantiles of a set of top-1 cosines, with how many rows they came from."""

    median: float
    p99: float
    p999: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarise_scores(scores: np.ndarray) -> ScoreSummary:
    x = np.asarray(scores, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not len(x):
        return ScoreSummary(float("nan"), float("nan"), float("nan"), 0)
    med, p99, p999 = np.quantile(x, [0.5, 0.99, 0.999])
    return ScoreSummary(float(med), float(p99), float(p999), len(x))


def _unit(w: np.ndarray) -> np.ndarray:
    w = np.asarray(w, dtype=np.float32)
    n = np.linalg.norm(w, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return w / n


def random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal ``d × d`` matrix (QR of a Gaussian with the sign fix)."""
    from threadpoolctl import threadpool_limits

    # One BLAS thread: on a loaded 2-core machine OpenBLAS's threaded QR of a 576 × 576 matrix took 70 s
    # (spinning threads) against 2 s single-threaded; d ≤ a few thousand is cheap on one core.
    with threadpool_limits(limits=1, user_api="blas"):
        q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return (q * np.sign(np.diag(r))[None, :]).astype(np.float32)


def null_top1(target: np.ndarray, candidate: np.ndarray, *, rows: int = DEFAULT_NULL_ROWS, seed: int = 0) -> np.ndarray:
    """``rows`` top-1 cosines of sampled target decoder rows against a randomly rotated copy of the
    candidate decoder (a new rotation for each pass over a target smaller than ``rows``; ``rows = 0``:
    every target row once). Rows need not be unit norm."""
    rng = np.random.default_rng(seed)
    t_all = _unit(target)
    c = _unit(candidate)
    parts: list[np.ndarray] = []
    need = rows if rows else t_all.shape[0]
    while sum(len(x) for x in parts) < need:
        left = need - sum(len(x) for x in parts)
        t = t_all[np.sort(rng.choice(t_all.shape[0], left, replace=False))] if t_all.shape[0] > left else t_all
        tr = t @ random_rotation(t.shape[1], rng)  # rotating the targets by R == rotating the candidates by Rᵀ
        out = np.empty(t.shape[0], dtype=np.float32)
        for a in range(0, tr.shape[0], 2048):  # bounded memory: [2048, n_candidates] similarities at a time
            out[a : a + 2048] = (tr[a : a + 2048] @ c.T).max(axis=1)
        parts.append(out)
    return np.concatenate(parts)


def null_summary(
    target: np.ndarray, candidate: np.ndarray, *, rows: int = DEFAULT_NULL_ROWS, seed: int = 0
) -> ScoreSummary:
    return summarise_scores(null_top1(target, candidate, rows=rows, seed=seed))


def top1_scores(target: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Top-1 cosine of every target decoder row against the candidate decoder (the ceiling's statistic)."""
    t, c = _unit(target), _unit(candidate)
    out = np.empty(t.shape[0], dtype=np.float32)
    for a in range(0, t.shape[0], 2048):
        out[a : a + 2048] = (t[a : a + 2048] @ c.T).max(axis=1)
    return out


def position(score: float, null: ScoreSummary, ceiling: float | None = None) -> float | None:
    """Where ``score`` stands between the null median (0) and the ceiling median (1); None without a ceiling."""
    if ceiling is None or not np.isfinite(ceiling) or ceiling <= null.median:
        return None
    return float((score - null.median) / (ceiling - null.median))
