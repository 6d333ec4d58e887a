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


def test_cluster_bootstrap_widens_for_clustered_data_and_names_its_unit() -> None:
    from experiments.stats import cluster_bootstrap_ratio

    rng = np.random.default_rng(3)
    # 20 texts x 50 rows; the outcome is decided per text (all rows of a text succeed or fail together)
    clusters = np.repeat(np.arange(20), 50)
    per_text = rng.random(20) < 0.5
    success = per_text[clusters].astype(float)
    ci = cluster_bootstrap_ratio(success, np.ones(1000), clusters, seed=0)
    naive = wilson_interval(int(success.sum()), 1000)
    assert ci.n == 1000 and "texts" in ci.method and "20 clusters" in ci.method
    assert abs(ci.estimate - success.mean()) < 1e-12
    # 20 independent units, not 1000: the interval is several times the naive one
    assert (ci.high - ci.low) > 3 * (naive.high - naive.low)
    # independent rows: close to the naive interval
    iid = (rng.random(1000) < 0.5).astype(float)
    ci2 = cluster_bootstrap_ratio(iid, np.ones(1000), np.arange(1000), seed=0)
    nv2 = wilson_interval(int(iid.sum()), 1000)
    assert 0.7 < (ci2.high - ci2.low) / (nv2.high - nv2.low) < 1.3


def test_cluster_bootstrap_ratio_uses_the_denominator() -> None:
    from experiments.stats import cluster_bootstrap_ratio

    # 10 eligible rows of 40: 5 successes -> 50% of the eligible, not 12.5% of all
    eligible = np.r_[np.ones(10), np.zeros(30)]
    success = np.r_[np.ones(5), np.zeros(35)]
    ci = cluster_bootstrap_ratio(success * eligible, eligible, np.arange(40) % 8, seed=1)
    assert ci.estimate == 0.5 and ci.n == 10


def test_per_feature_mann_whitney_counts_each_feature_once() -> None:
    from experiments.stats import feature_sets, mann_whitney_per_feature

    rng = np.random.default_rng(5)
    # 30 features with scores from one distribution; group 0 and group 1 draw from the same features,
    # but two features that happen to score high are active at 500 tokens each in group 1 only.
    score = rng.normal(0.3, 0.05, 30)
    hot = np.argsort(score)[-2:]
    feats0 = np.r_[np.arange(0, 15), np.arange(0, 15)]
    feats1 = np.r_[np.arange(15, 30), np.repeat(hot, 500)]
    rows_f = np.r_[feats0, feats1]
    rows_g = np.r_[np.zeros(len(feats0), int), np.ones(len(feats1), int)]
    per_row = mann_whitney_matrix([score[feats0], score[feats1]])[0, 1]
    per_feature = mann_whitney_per_feature(feature_sets(rows_f, rows_g, 2), score)[0, 1]
    assert per_row < 1e-6  # the repeated rows make it "significant"
    assert per_feature > 0.01  # one value per feature: no evidence of a difference


def test_sparse_correlations_equal_dense() -> None:
    from scipy import sparse

    from experiments.stats import column_correlations, sparse_column_correlations

    rng = np.random.default_rng(6)
    x = np.maximum(rng.normal(size=(300, 7)) - 1.0, 0)
    y = np.maximum(rng.normal(size=(300, 5)) - 1.0, 0)
    y[:, 0] = x[:, 2] * 2 + 0.01
    y[:, 4] = 0.0  # constant column -> 0
    dense = column_correlations(x, y)
    sp = sparse_column_correlations(sparse.csr_matrix(x), sparse.csr_matrix(y))
    np.testing.assert_allclose(sp, dense, atol=1e-9)
    assert sp[2, 0] > 0.99 and np.all(sp[:, 4] == 0)


def test_null_of_a_rotated_copy_is_chance_and_a_copy_scores_one() -> None:
    from saes.controls import null_summary, top1_scores

    rng = np.random.default_rng(7)
    w = rng.normal(size=(512, 64)).astype(np.float32)
    nul = null_summary(w, w.copy(), rows=512, seed=0)
    # the same decoder rotated at random: best of 512 candidates in 64 dims is chance, ~sqrt(2 ln N / d) ≈ 0.44
    assert 0.3 < nul.median < 0.6 and nul.p999 < 0.75 and nul.n == 512
    assert np.all(top1_scores(w, w) > 0.999)  # unrotated: every row finds itself
