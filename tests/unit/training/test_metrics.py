"""Held-out quality beyond the plain EV: the streamed EV without the 1% largest-norm tokens equals the
definition computed on the whole array, outlier tokens move the plain EV but not the trimmed one, and the
quality bar can fail on each of its checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.metrics import TrimmedVariance, quality_bar, summarise
from training.sae import MetricsAccumulator


def _with_outliers(n_tokens: int = 2_000, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Ordinary tokens reconstructed with some noise, plus 1% tokens of 50x norm reconstructed perfectly:
    they hold most of the variance, so the plain EV looks excellent and the trimmed one does not."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, n_tokens, d, generator=g) + 1.0
    recon = x + 0.7 * torch.randn(2, n_tokens, d, generator=g)
    big = torch.randperm(n_tokens, generator=g)[: n_tokens // 100]
    x[:, big] *= 50.0
    recon[:, big] = x[:, big]
    return x, recon


def _trimmed_by_definition(x: np.ndarray, recon: np.ndarray, fraction: float = 0.01) -> float:
    sq = (x**2).sum(-1)
    m = int(np.ceil(fraction * len(x)))
    keep = np.argsort(-sq)[m:]
    xk, rk = x[keep], recon[keep]
    return float(1 - ((xk - rk) ** 2).sum() / ((xk - xk.mean(0)) ** 2).sum())


def test_streamed_trimmed_ev_equals_definition() -> None:
    x, recon = _with_outliers()
    tv = TrimmedVariance(2, max_tokens=x.shape[1])
    for a in range(0, x.shape[1], 300):  # streamed in pieces smaller than, and not aligned with, anything
        tv.update(x[:, a : a + 300], recon[:, a : a + 300])
    res = tv.results()
    for i in range(2):
        xi, ri = x[i].double().numpy(), recon[i].double().numpy()
        assert res[i]["explained_variance_without_outliers"] == pytest.approx(_trimmed_by_definition(xi, ri), rel=1e-6)
        assert res[i]["outlier_tokens"] == 20
        assert res[i]["outlier_variance_share"] > 0.9  # the 1% of 50x tokens hold most of the variance


def test_accumulator_reports_both_evs_and_they_differ_with_outliers() -> None:
    x, recon = _with_outliers()
    acc = MetricsAccumulator(2, 4, max_tokens=x.shape[1])
    idx = torch.zeros(2, x.shape[1], 1, dtype=torch.long)
    acc.update(x, recon, torch.ones(2, x.shape[1], 1), idx)
    r = acc.results()[0]
    assert r["explained_variance"] > 0.95  # inflated by the outliers
    assert r["explained_variance_without_outliers"] < 0.8


def test_buffer_too_small_leaves_out_only_what_it_holds() -> None:
    x, recon = _with_outliers()
    tv = TrimmedVariance(2, max_tokens=500)  # capacity 5 tokens, 20 needed
    tv.update(x, recon)
    assert tv.results()[0]["outlier_tokens"] == 5


def test_quality_bar_fails_on_each_check() -> None:
    row = {"layer": 1, "module": "res", "d_sae": 8, "l0": 64.0}
    good = [{**row, "explained_variance": 0.9, "explained_variance_without_outliers": 0.8, "dead_fraction": 0.01}]
    assert quality_bar(summarise(good)).met is True
    assert quality_bar(summarise([{**good[0], "explained_variance_without_outliers": 0.66}])).met is False
    assert quality_bar(summarise([{**good[0], "explained_variance": 0.6}])).met is False
    assert quality_bar(summarise([{**good[0], "dead_fraction": 0.2}])).met is False
    old = [{k: v for k, v in good[0].items() if k != "explained_variance_without_outliers"}]
    bar = quality_bar(summarise(old))
    assert bar.met is None and "n/a" in bar.line()
