"""Statistics shared by the experiments: activation groups, shares, Mann–Whitney matrices, intervals.

Pure numpy/scipy (no torch). Invariants:
- Group ids are 0..7 in the order of :data:`GROUPS`; id = 1·res + 2·mlp + 4·att mapped through
  :data:`_BITS_TO_GROUP`, so "From nowhere" is always 0 and "From RES & MLP & ATT" always 7.
- Every interval is two-sided at the given confidence and says which method made it; the cluster
  bootstrap also names its unit of independence (texts), since rows that share a text are not independent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The paper's eight empirical groups (paper §2.1), in the order of its figures.
GROUPS: tuple[str, ...] = (
    "From nowhere",
    "From RES",
    "From MLP",
    "From ATT",
    "From RES & MLP",
    "From RES & ATT",
    "From MLP & ATT",
    "From RES & MLP & ATT",
)
SHORT_GROUPS: tuple[str, ...] = ("nowhere", "R", "M", "A", "R&M", "R&A", "M&A", "R&M&A")

# bits: res=1, mlp=2, att=4  ->  index into GROUPS
_BITS_TO_GROUP = np.array([0, 1, 2, 4, 3, 5, 6, 7], dtype=np.int64)
# Which predecessor modules are active in each group (rows follow GROUPS).
GROUP_MODULES: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({"res"}),
    frozenset({"mlp"}),
    frozenset({"att"}),
    frozenset({"res", "mlp"}),
    frozenset({"res", "att"}),
    frozenset({"mlp", "att"}),
    frozenset({"res", "mlp", "att"}),
)


def group_ids(res_active: np.ndarray, mlp_active: np.ndarray, att_active: np.ndarray) -> np.ndarray:
    """Group id (index into :data:`GROUPS`) from three boolean arrays of predecessor activity."""
    bits = (
        np.asarray(res_active, dtype=np.int64)
        + 2 * np.asarray(mlp_active, dtype=np.int64)
        + 4 * np.asarray(att_active, dtype=np.int64)
    )
    return _BITS_TO_GROUP[bits]


def shares(ids: np.ndarray, n_groups: int = len(GROUPS)) -> np.ndarray:
    """Fraction of items in each group (zeros when there are no items)."""
    counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=n_groups).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def mann_whitney_matrix(samples: list[np.ndarray], *, min_n: int = 5) -> np.ndarray:
    """Two-sided Mann–Whitney U p-values for every pair of samples; NaN where either has < ``min_n`` values."""
    from scipy.stats import mannwhitneyu

    k = len(samples)
    out = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(i + 1, k):
            a = np.asarray(samples[i], dtype=np.float64)
            b = np.asarray(samples[j], dtype=np.float64)
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            if len(a) < min_n or len(b) < min_n:
                continue
            if np.ptp(np.concatenate([a, b])) == 0:  # all values tied: no evidence either way
                p = 1.0
            else:
                p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
            out[i, j] = out[j, i] = p
    return out


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int
    method: str

    def as_dict(self) -> dict[str, float | int | str]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "n": self.n, "method": self.method}

    def fmt(self, pct: bool = False) -> str:
        if self.n == 0 or not math.isfinite(self.estimate):
            return "n/a"
        if pct:
            return f"{100 * self.estimate:.0f}% [{100 * self.low:.0f}, {100 * self.high:.0f}]"
        return f"{self.estimate:.2f} [{self.low:.2f}, {self.high:.2f}]"


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a proportion (well-behaved at 0%, 100% and small n)."""
    from scipy.stats import norm

    if n <= 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, "wilson")
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n, "wilson")


def mean_interval(values: np.ndarray, confidence: float = 0.95) -> Interval:
    """Mean with a Student-t interval (NaN bounds for fewer than two values)."""
    from scipy.stats import t

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, "t")
    m = float(x.mean())
    if n < 2:
        return Interval(m, float("nan"), float("nan"), n, "t")
    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(m, m - half, m + half, n, "t")


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant or there are fewer than 3 values."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def spearman(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Spearman rank correlation and its p-value (NaN when undefined)."""
    from scipy.stats import spearmanr

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return float("nan"), float("nan")
    res = spearmanr(a[ok], b[ok])
    return float(res.statistic), float(res.pvalue)


def column_correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of every column of ``x`` [n, a] with every column of ``y`` [n, b] → [a, b].

    Constant columns get correlation 0 (they carry no co-activation signal).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.shape[0]
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    xs = np.sqrt((xc * xc).sum(axis=0))
    ys = np.sqrt((yc * yc).sum(axis=0))
    xs[xs == 0] = np.inf
    ys[ys == 0] = np.inf
    if n == 0:
        return np.zeros((x.shape[1], y.shape[1]))
    return (xc / xs).T @ (yc / ys)


# -- cluster-aware intervals ---------------------------------------------------------------------------
# Samples in these experiments are not independent: deactivation targets share a text and a token,
# co-activation rows share a text. A bootstrap that resamples whole clusters (texts) keeps that
# dependence; every interval built here names its unit of independence in ``method``.


def cluster_bootstrap_ratio(
    numer: np.ndarray,
    denom: np.ndarray,
    clusters: np.ndarray,
    *,
    unit: str = "texts",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Σ numer / Σ denom with a percentile interval from resampling whole clusters with replacement.

    A rate over eligible items is ``numer`` = success (0/1), ``denom`` = eligible (0/1); a mean is
    ``denom`` = 1. ``n`` of the result is Σ denom (the rate's denominator); ``method`` names the clusters.
    """
    numer = np.asarray(numer, dtype=np.float64)
    denom = np.asarray(denom, dtype=np.float64)
    clusters = np.asarray(clusters)
    n = round(denom.sum())
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, f"cluster bootstrap over {unit}")
    keys, inv = np.unique(clusters, return_inverse=True)
    c = len(keys)
    num_c = np.bincount(inv, weights=numer, minlength=c)
    den_c = np.bincount(inv, weights=denom, minlength=c)
    est = float(num_c.sum() / den_c.sum())
    method = f"cluster bootstrap over {unit} ({c} clusters)"
    if c < 2:
        return Interval(est, float("nan"), float("nan"), n, method)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(c, np.full(c, 1.0 / c), size=n_boot).astype(np.float64)  # [n_boot, c] cluster counts
    d = w @ den_c
    ok = d > 0
    boot = (w @ num_c)[ok] / d[ok]
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(est, float(lo), float(hi), n, method)


def cluster_bootstrap_mean(values: np.ndarray, clusters: np.ndarray, **kw: object) -> Interval:
    """Mean of ``values`` (NaNs dropped) with a cluster-bootstrap interval (see :func:`cluster_bootstrap_ratio`)."""
    x = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(x)
    return cluster_bootstrap_ratio(x[ok], np.ones(int(ok.sum())), np.asarray(clusters)[ok], **kw)  # type: ignore[arg-type]


def feature_sets(features: np.ndarray, groups: np.ndarray, n_groups: int = len(GROUPS)) -> list[set[int]]:
    """Each distinct feature in exactly one group: the group it falls in most often over the sampled
    tokens (its modal group; ties go to the lower group id). Rows are (feature, token) activations."""
    feats = np.asarray(features, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    out: list[set[int]] = [set() for _ in range(n_groups)]
    if not len(feats):
        return out
    uniq, inv = np.unique(feats, return_inverse=True)
    counts = np.bincount(inv * n_groups + groups, minlength=len(uniq) * n_groups).reshape(len(uniq), n_groups)
    for f, g in zip(uniq.tolist(), counts.argmax(axis=1).tolist()):
        out[g].add(int(f))
    return out


def mann_whitney_per_feature(sets: list[set[int]], score_by_feature: np.ndarray, *, min_n: int = 5) -> np.ndarray:
    """Pairwise two-sided Mann–Whitney p-values with one value per *feature*.

    A feature's score (its top-1 cosine) is a constant repeated once per token it is active at; counted
    per row, a feature active at 300 tokens weighs 300 times and almost every test comes out
    'significant'. Here each group holds distinct features (``feature_sets``: a feature's modal group),
    and a pair compares the features of i not in j against those of j not in i. NaN where a side has
    fewer than ``min_n`` features."""
    k = len(sets)
    scores = np.asarray(score_by_feature, dtype=np.float64)
    out = np.full((k, k), np.nan)
    for i in range(k):
        for j in range(i + 1, k):
            a = scores[sorted(sets[i] - sets[j])]
            b = scores[sorted(sets[j] - sets[i])]
            p = mann_whitney_matrix([a, b], min_n=min_n)[0, 1]
            out[i, j] = out[j, i] = p
    return out


def sparse_column_correlations(x: object, y: object) -> np.ndarray:
    """:func:`column_correlations` for sparse ``[n, a]`` and ``[n, b]`` matrices (scipy CSR) without
    densifying them: from Σx, Σx², Σy, Σy² and the sparse product xᵀy (100K tokens × 2,048 latents dense
    would take 800 MB per SAE). Constant columns get correlation 0."""
    from scipy import sparse

    xs = sparse.csr_matrix(x, dtype=np.float64)
    ys = sparse.csr_matrix(y, dtype=np.float64)
    n = xs.shape[0]
    if n == 0:
        return np.zeros((xs.shape[1], ys.shape[1]))
    sx = np.asarray(xs.sum(axis=0)).ravel()
    sy = np.asarray(ys.sum(axis=0)).ravel()
    vx = np.asarray(xs.multiply(xs).sum(axis=0)).ravel() - sx * sx / n
    vy = np.asarray(ys.multiply(ys).sum(axis=0)).ravel() - sy * sy / n
    cov = (xs.T @ ys).toarray() - np.outer(sx, sy) / n
    dx = np.sqrt(np.maximum(vx, 0))
    dy = np.sqrt(np.maximum(vy, 0))
    dx[dx < 1e-12] = np.inf
    dy[dy < 1e-12] = np.inf
    return cov / dx[:, None] / dy[None, :]
