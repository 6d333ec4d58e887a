"""Predecessor matching for the experiments: cosine top-k from decoders, Pearson top-1 from activations.

Cosine matching is the paper's data-free rule (paper §2.1) and the same rule ingest applies: unit-
normalised decoder rows, inner product, top-k. It is recomputed here from the SAE weights (a few GEMMs)
so the experiments do not need Neo4j. Pearson matching (the paper's data-driven baseline) picks, for
each target feature, the predecessor feature whose activations correlate most with it over tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments.stats import column_correlations, group_ids, sparse_column_correlations


def unit_rows(w_dec: np.ndarray) -> np.ndarray:
    w = np.asarray(w_dec, dtype=np.float32)
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return w / norms


@dataclass(frozen=True)
class Matches:
    """Top-k candidates of each target feature in one source SAE, best first."""

    index: np.ndarray  # int64 [d_target, k]
    score: np.ndarray  # float32 [d_target, k]

    @property
    def top1(self) -> np.ndarray:
        return self.index[:, 0]

    @property
    def top1_score(self) -> np.ndarray:
        return self.score[:, 0]


def topk_rows(sim: np.ndarray, k: int) -> Matches:
    """Best ``k`` columns of each row of a similarity matrix, sorted descending."""
    k = min(k, sim.shape[1])
    part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(sim, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return Matches(
        np.take_along_axis(part, order, axis=1).astype(np.int64),
        np.take_along_axis(vals, order, axis=1).astype(np.float32),
    )


def cosine_matches(target_w_dec: np.ndarray, source_w_dec: np.ndarray, k: int = 5) -> Matches:
    """Top-k cosine candidates in the source SAE for every target feature."""
    return topk_rows(unit_rows(target_w_dec) @ unit_rows(source_w_dec).T, k)


def cosine_of_pairs(
    target_w_dec: np.ndarray, source_w_dec: np.ndarray, target_idx: np.ndarray, source_idx: np.ndarray
) -> np.ndarray:
    """Cosine of the decoder rows of given (target, source) pairs."""
    t = unit_rows(target_w_dec[target_idx])
    s = unit_rows(source_w_dec[source_idx])
    return (t * s).sum(axis=1)


def pearson_matches(target_acts: Any, source_acts: Any, k: int = 1) -> Matches:
    """Top-k source features by Pearson correlation of activations over the same tokens ([n, d] each,
    dense arrays or scipy sparse matrices; sparse ones are never densified)."""
    from scipy import sparse

    if sparse.issparse(target_acts) or sparse.issparse(source_acts):
        return topk_rows(sparse_column_correlations(target_acts, source_acts), k)
    return topk_rows(column_correlations(target_acts, source_acts), k)


def grouped_targets(
    z: np.ndarray,
    active: dict[str, np.ndarray],
    cos: dict[str, Matches],
    rng: np.random.Generator,
    max_targets: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At one token: the active target features (``z > 0``), their paper group ids, and the positions among them
    of those with at least one active cosine top-1 predecessor (group ≠ 0), at most ``max_targets`` of them drawn
    with ``rng`` (sorted). Experiments 2 and 3 intervene on exactly these."""
    feats = np.nonzero(z > 0)[0]
    if not len(feats):
        return feats, feats, feats
    bits = {p: np.array([active[p][cos[p].index[f, 0]] for f in feats]) for p in cos}
    none = np.zeros(len(feats), dtype=bool)
    gids = group_ids(bits.get("res", none), bits.get("mlp", none), bits.get("att", none))
    cand = np.nonzero(gids != 0)[0]
    if len(cand) > max_targets:
        cand = np.sort(rng.choice(cand, max_targets, replace=False))
    return feats, gids, cand
