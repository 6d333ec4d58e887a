"""Groups, intervals and tests of experiments.stats, against hand-computed values."""

from __future__ import annotations

import numpy as np

from experiments.coherence import coherence_score, repetition_rate
from experiments.matching import cosine_matches, pearson_matches
from experiments.stats import GROUPS, group_ids, mann_whitney_matrix, mean_interval, shares, wilson_interval


def test_group_ids_cover_all_eight_groups_in_order() -> None:
    r = np.array([0, 1, 0, 0, 1, 1, 0, 1], dtype=bool)
    m = np.array([0, 0, 1, 0, 1, 0, 1, 1], dtype=bool)
    a = np.array([0, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    ids = group_ids(r, m, a)
    assert [GROUPS[i] for i in ids] == list(GROUPS)
    assert np.allclose(shares(ids), 1 / 8)


def test_wilson_interval_matches_known_values() -> None:
    ci = wilson_interval(65, 100)
    assert abs(ci.estimate - 0.65) < 1e-12
    assert abs(ci.low - 0.5525) < 1e-3 and abs(ci.high - 0.7364) < 1e-3
    edge = wilson_interval(0, 10)
    assert edge.low == 0.0 and 0.25 < edge.high < 0.35


def test_mean_interval_contains_mean_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(0)
    small = mean_interval(rng.normal(1.0, 1.0, 20))
    big = mean_interval(rng.normal(1.0, 1.0, 2000))
    assert small.low < small.estimate < small.high
    assert (big.high - big.low) < (small.high - small.low) / 5
    assert big.low < 1.0 < big.high


def test_mann_whitney_separates_shifted_groups_only() -> None:
    rng = np.random.default_rng(1)
    a, b, c = rng.normal(0, 1, 200), rng.normal(0, 1, 200), rng.normal(2, 1, 200)
    p = mann_whitney_matrix([a, b, c, np.array([1.0, 2.0])])
    assert p[0, 2] < 1e-10 and p[1, 2] < 1e-10
    assert p[0, 1] > 0.001
    assert np.isnan(p[0, 3])  # too few values


def test_cosine_and_pearson_matching_find_planted_partners() -> None:
    rng = np.random.default_rng(2)
    src = rng.normal(size=(50, 32)).astype(np.float32)
    perm = rng.permutation(50)
    tgt = src[perm] * 3.0 + 0.01 * rng.normal(size=(50, 32)).astype(np.float32)
    m = cosine_matches(tgt, src, k=5)
    assert np.array_equal(m.top1, perm)
    assert np.all(np.diff(m.score, axis=1) <= 0)
    acts_src = np.maximum(rng.normal(size=(400, 50)), 0)
    acts_tgt = acts_src[:, perm] + 0.1 * rng.random((400, 50))
    assert np.array_equal(pearson_matches(acts_tgt, acts_src).top1, perm)


def test_repetition_and_coherence() -> None:
    assert repetition_rate([1, 2, 3, 4, 5, 6]) == 0.0
    assert repetition_rate([7] * 10) > 0.8
    assert abs(coherence_score(np.log(10.0), 0.0, 10.0) - 1.0) < 1e-12
    assert abs(coherence_score(np.log(20.0), 0.5, 10.0) - 0.25) < 1e-12
