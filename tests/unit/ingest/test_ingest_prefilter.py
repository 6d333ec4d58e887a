"""ingest.prefilter: the bf16 pre-filter gives exactly the exact search's answer, its error bound holds, and rows
it cannot certify fall back to the exact search."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from ingest import prefilter as pf
from ingest.matching import topk_both_ways, topk_search
from queries.errors import InvalidInput


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _brute(q: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = q.astype(np.float64) @ b.T.astype(np.float64)
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, idx, axis=1), idx


@pytest.mark.parametrize(
    "nq, nb, d, k, n_cand, tile",
    [(200, 300, 64, 5, 8, 37), (64, 500, 32, 1, 4, 64), (50, 40, 16, 5, 48, 7), (30, 60, 24, 8, 8, 30)],
)
def test_prefiltered_topk_equals_brute_force(nq: int, nb: int, d: int, k: int, n_cand: int, tile: int) -> None:
    rng = np.random.default_rng(nq * nb + d)
    q, b = _unit(rng.standard_normal((nq, d))), _unit(rng.standard_normal((nb, d)))
    sims, idx = pf.prefiltered_topk(q, b, k, tile_rows=tile, n_candidates=n_cand)
    es, ei = _brute(q, b, k)
    np.testing.assert_array_equal(idx, ei)
    np.testing.assert_allclose(sims, es, atol=1e-5)


@pytest.mark.parametrize(
    "nt, ns, d, k, n_cand, tile", [(300, 200, 48, 5, 8, 41), (120, 130, 16, 3, 6, 120), (9, 70, 8, 6, 4, 2)]
)
def test_prefiltered_both_ways_equals_brute_force(nt: int, ns: int, d: int, k: int, n_cand: int, tile: int) -> None:
    rng = np.random.default_rng(nt + ns + d)
    t, s = _unit(rng.standard_normal((nt, d))), _unit(rng.standard_normal((ns, d)))
    (bs, bi), (fs, fi) = pf.prefiltered_both_ways(t, s, k, tile_rows=tile, n_candidates=n_cand)
    ebs, ebi = _brute(t, s, min(k, ns))
    efs, efi = _brute(s, t, min(k, nt))
    np.testing.assert_array_equal(bi, ebi)
    np.testing.assert_array_equal(fi, efi)
    np.testing.assert_allclose(bs, ebs, atol=1e-5)
    np.testing.assert_allclose(fs, efs, atol=1e-5)


def test_near_ties_fall_back_to_exact_search(caplog: pytest.LogCaptureFixture) -> None:
    """Base rows that all sit within bf16 rounding of each other: no proof is possible, the exact search answers."""
    rng = np.random.default_rng(5)
    d = 64
    q = _unit(rng.standard_normal((10, d)))
    centre = q[0]
    base = _unit(centre[None, :] + 1e-4 * rng.standard_normal((400, d)))  # 400 near-identical rows
    base = np.vstack([base, _unit(rng.standard_normal((100, d)))])
    with caplog.at_level(logging.INFO, logger="ingest.prefilter"):
        sims, idx = pf.prefiltered_topk(q, base, 5, tile_rows=4, n_candidates=16)
    assert "not certified" in caplog.text
    es, ei = _brute(q, base, 5)
    np.testing.assert_allclose(sims, es, atol=1e-6)
    # near-exact ties may swap order at fp32 precision; the neighbours' scores are what must match
    np.testing.assert_array_equal(np.sort(idx[1:], axis=1), np.sort(ei[1:], axis=1))


def test_error_bound_holds_for_every_pair() -> None:
    rng = np.random.default_rng(9)
    for d, scale in ((16, 1.0), (256, 1.0), (2304, 1.0), (64, 1e3)):
        # heavy-tailed rows (a few large coordinates) round worst in bf16
        q = (scale * _unit(rng.standard_t(2, size=(64, d)))).astype(np.float32)  # the bound must scale with the norms
        b = _unit(rng.standard_t(2, size=(300, d)))
        q16, b16 = pf.to_bf16(q), pf.to_bf16(b)
        o = (q16.rows @ b16.rows.T).double().numpy()
        exact = q.astype(np.float64) @ b.T.astype(np.float64)
        delta = pf.error_bound(q16, b16, d)
        assert np.all(np.abs(o - exact) <= pf._R_OUT * np.abs(o) + delta[:, None]), (d, scale)
        assert delta.max() < 0.02 * scale  # tight enough to be useful


def test_candidates_needed_uses_the_witness() -> None:
    # k = 2; delta 0.01; r|o| is tiny at these values
    vals = np.array([[0.9, 0.5, 0.495, 0.3, 0.1], [0.9, 0.5, 0.49, 0.488, 0.485]])
    need = pf.candidates_needed(vals, 2, np.array([0.01, 0.01]))
    assert need[0] == 3  # 0.495 is within the bound of 0.5, 0.3 (the witness side) is not
    assert need[1] == -1  # the left-out 0.485 could still beat the 2nd: no proof


def test_matching_entry_points_take_the_prefilter(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    q, b = _unit(rng.standard_normal((70, 32))), _unit(rng.standard_normal((90, 32)))
    calls: list[str] = []
    real = pf.prefiltered_topk
    monkeypatch.setattr("ingest.matching.prefiltered_topk", lambda *a, **kw: calls.append("pf") or real(*a, **kw))
    on = topk_search(q, b, 5, prefilter="bf16", use_gpu=False)
    off = topk_search(q, b, 5, prefilter="off", use_gpu=False)
    assert calls == ["pf"]
    np.testing.assert_array_equal(on[1], off[1])
    (b1, f1), (b2, f2) = topk_both_ways(q, b, 3, prefilter="bf16"), topk_both_ways(q, b, 3, prefilter="off")
    np.testing.assert_array_equal(b1[1], b2[1])
    np.testing.assert_array_equal(f1[1], f2[1])


def test_unknown_prefilter_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pf.PREFILTER_ENV, "fp8")
    with pytest.raises(InvalidInput, match="ATLAS_MATCH_PREFILTER"):
        pf.resolve_prefilter()
    monkeypatch.setenv(pf.PREFILTER_ENV, "off")
    assert pf.resolve_prefilter() is False
    assert pf.resolve_prefilter("bf16") is True


def test_bf16_rows_record_rounding_error() -> None:
    x = _unit(np.random.default_rng(0).standard_normal((5, 100)))
    r = pf.to_bf16(x)
    assert r.rows.dtype == torch.bfloat16
    true_err = np.linalg.norm(x.astype(np.float64) - r.rows.double().numpy(), axis=1)
    assert np.all(r.err >= true_err) and np.all(r.err <= true_err * 1.001 + 1e-12)
