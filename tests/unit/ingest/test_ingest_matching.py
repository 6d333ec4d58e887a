"""ingest.matching / scores / decoders: exact top-k equals brute force; categories on planted SAEs; bad decoders."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.decoders import Decoder, check_decoder, validate_atlas
from ingest.layer_matching import match_layer
from ingest.matching import topk_both_ways, topk_search
from ingest.scores import Thresholds, categorize, residual_edges
from queries.errors import InvalidInput, SAEFileError
from queries.ids import Module
from saes.manifest import AtlasManifest, SAEEntry, SyntheticSpec
from saes.synthetic import planted_atlas


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(q: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = q.astype(np.float64) @ b.T.astype(np.float64)
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, idx, axis=1), idx


@pytest.mark.parametrize("backend", ["faiss", "torch", "numpy"])
@pytest.mark.parametrize(
    "nq, nb, k, tile_bytes",
    [(37, 53, 5, 4 * 53 * 7), (64, 64, 1, 4 * 64), (10, 3, 5, 1 << 20), (100, 200, 8, 4 * 200 * 100)],
)
def test_topk_search_equals_brute_force(backend: str, nq: int, nb: int, k: int, tile_bytes: int) -> None:
    rng = np.random.default_rng(nq + nb)
    q, b = _unit(rng, nq, 16), _unit(rng, nb, 16)
    sims, idx = topk_search(q, b, k, backend=backend, max_tile_bytes=tile_bytes)  # type: ignore[arg-type]
    bs, bi = _brute(q, b, min(k, nb))
    assert sims.shape == (nq, min(k, nb))
    np.testing.assert_array_equal(idx, bi)
    np.testing.assert_allclose(sims, bs, atol=1e-5)


@pytest.mark.parametrize(
    "nt, ns, k, tile_rows", [(37, 53, 5, 7), (53, 37, 3, 1), (20, 20, 1, 20), (9, 4, 6, 2), (4, 9, 6, 3)]
)
@pytest.mark.parametrize("strategy", ["auto", "shared", "two"])
def test_both_ways_equals_brute_force(nt: int, ns: int, k: int, tile_rows: int, strategy: str) -> None:
    rng = np.random.default_rng(nt * ns)
    t, s = _unit(rng, nt, 12), _unit(rng, ns, 12)
    (bs, bi), (fs, fi) = topk_both_ways(t, s, k, max_tile_bytes=4 * ns * tile_rows, strategy=strategy)  # type: ignore[arg-type]
    ebs, ebi = _brute(t, s, min(k, ns))
    efs, efi = _brute(s, t, min(k, nt))
    np.testing.assert_array_equal(bi, ebi)
    np.testing.assert_array_equal(fi, efi)
    np.testing.assert_allclose(bs, ebs, atol=1e-5)
    np.testing.assert_allclose(fs, efs, atol=1e-5)


def test_residual_edges_union_carries_both_ranks() -> None:
    rng = np.random.default_rng(3)
    t, s = _unit(rng, 30, 8), _unit(rng, 20, 8)
    bwd, fwd = topk_both_ways(t, s, 2)
    es = residual_edges(0, bwd, fwd, 20)
    pairs = set(zip(es.src.tolist(), es.dst.tolist()))
    b_pairs = {(int(bwd[1][i, r]), i) for i in range(30) for r in range(2)}
    f_pairs = {(j, int(fwd[1][j, r])) for j in range(20) for r in range(2)}
    assert pairs == b_pairs | f_pairs and len(pairs) == len(es)  # no duplicate edge
    full = t @ s.T
    for a, b_, sim, tr, sr in zip(es.src, es.dst, es.sim, es.target_rank, es.source_rank):
        assert abs(sim - full[b_, a]) < 1e-5
        assert (tr >= 0) == ((a, b_) in b_pairs) and (sr >= 0) == ((a, b_) in f_pairs)
        if tr >= 0:
            assert bwd[1][b_, tr] == a
        if sr >= 0:
            assert fwd[1][a, sr] == b_


def test_categorize_rules() -> None:
    th = Thresholds(res=0.5, module=0.25)
    s_res = np.array([0.9, 0.9, 0.1, 0.1, 0.5])
    s_att = np.array([0.1, 0.3, 0.3, 0.1, 0.0])
    s_mlp = np.array([0.1, 0.0, 0.0, 0.24, 0.25])
    assert categorize(s_res, s_att, s_mlp, 5, th).tolist() == [
        "translated",
        "processed",
        "newborn",
        "unexplained",
        "processed",
    ]
    # no res(L-1) SAE: no category at all (DESIGN.md), however high the module score
    assert categorize(None, None, np.array([0.3, 0.1]), 2, th).tolist() == [None, None]
    assert categorize(np.array([0.6]), None, None, 1, th).tolist() == ["translated"]


def _decoders(pa, layer: int) -> tuple[dict[str, Decoder], Decoder | None]:  # type: ignore[no-untyped-def]
    def dec(l: int, m: Module) -> Decoder:
        w = pa.weights[(l, m)]
        n = np.linalg.norm(w.W_dec, axis=1)
        return Decoder(
            SAEEntry(l, m, path="x"), (w.W_dec / n[:, None]).astype(np.float32), n.astype(np.float32), None, "jumprelu"
        )

    cur = {m.value: dec(layer, m) for m in Module if (layer, m) in pa.weights}
    prev = dec(layer - 1, Module.RES) if (layer - 1, Module.RES) in pa.weights else None
    return cur, prev


@pytest.mark.parametrize("prefilter", ["off", "bf16"])
@pytest.mark.parametrize("thresholds", [Thresholds(0.5, 0.25), Thresholds(0.3, 0.5), Thresholds(0.55, 0.21)])
def test_categories_and_parents_on_planted_atlas(thresholds: Thresholds, prefilter: str) -> None:
    pa = planted_atlas(n_layers=3, d_model=160, d_sae=48, seed=11)
    for layer in pa.layers:
        cur, prev = _decoders(pa, layer)
        r = match_layer(layer, cur, prev, 3, thresholds, "faiss", prefilter)  # type: ignore[arg-type]
        assert r.features["res"]["category"] == pa.categories(layer)
        res_edges = [e for e in r.edges if e.source_module == "res"]
        for i in range(48):
            t = pa.truth[(layer, i)]
            if t.res_parent is not None:
                es = res_edges[0]
                top = es.src[(es.dst == i) & (es.target_rank == 0)]
                assert top.tolist() == [t.res_parent]
            if t.module_parent is not None:
                m, j = t.module_parent
                es = next(e for e in r.edges if e.source_module == m.value)
                assert es.src[(es.dst == i) & (es.target_rank == 0)].tolist() == [j]
        s_res = r.features["res"]["s_res"]
        assert (s_res is None) == (layer == 0)
        assert r.features["att"]["category"] is None and r.features["att"]["s_res"] is None


def _entry(label: str = "res") -> SAEEntry:
    return SAEEntry(3, Module(label), path="saes/3")


def test_check_decoder_errors() -> None:
    good = np.ones((4, 8), dtype=np.float32)
    assert check_decoder(_entry(), good, 8).shape == (4,)
    bad = good.copy()
    bad[2, 1] = np.nan
    with pytest.raises(SAEFileError, match=r"decoder row\(s\) 2 contain NaN/inf \(1 row\(s\)\)"):
        check_decoder(_entry(), bad, 8)
    bad = good.copy()
    bad[1, 0] = np.inf
    with pytest.raises(SAEFileError, match="NaN/inf"):
        check_decoder(_entry(), bad, 8)
    bad = good.copy()
    bad[3] = 0
    with pytest.raises(SAEFileError, match=r"decoder row\(s\) 3 are all zeros"):
        check_decoder(_entry(), bad, 8)
    with pytest.raises(SAEFileError, match=r"d_in = 8 but the atlas's d_model = 16 .*hook_z"):
        check_decoder(_entry("att"), good, 16)


def test_validate_atlas_synthetic_d_in_mismatch() -> None:
    m = AtlasManifest(
        "x",
        "m",
        32,
        [
            SAEEntry(0, Module.RES, synthetic=SyntheticSpec(8, 0, 32)),
            SAEEntry(0, Module.MLP, synthetic=SyntheticSpec(8, 0, 16)),
        ],
    )
    with pytest.raises(SAEFileError, match="d_in = 16 but the atlas's d_model = 32"):
        validate_atlas(m)


def test_gpu_matching_refuses_tf32() -> None:
    """Exact matching on a GPU must not run with TF32 products (they lose ~3 decimal digits of a cosine)."""
    import torch

    from ingest.matching import _exact_fp32_device
    from queries.errors import InvalidInput

    before = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        with pytest.raises(InvalidInput, match="TF32"):
            _exact_fp32_device("cuda")
        assert _exact_fp32_device("cpu") == "cpu"  # CPU GEMMs have no TF32 mode
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def test_null_thresholds_parse_and_cut_per_pair() -> None:
    from ingest.scores import parse_thresholds
    from queries.errors import InvalidInput

    assert parse_thresholds("fixed").rule == "fixed:0.5/0.25"
    th = parse_thresholds("null:0.999")
    assert th.null_quantile == 0.999 and th.rule == "null:0.999"
    for bad in ("null:1.5", "null:x", "quantile"):
        with pytest.raises(InvalidInput, match="null:0.999"):
            parse_thresholds(bad)
    # per-pair cuts: att high at 0.3 against its cut 0.28, mlp not high at 0.3 against 0.35
    s_res, s_att, s_mlp = np.array([0.2, 0.2, 0.4]), np.array([0.3, 0.1, 0.1]), np.array([0.1, 0.3, 0.1])
    cats = categorize(s_res, s_att, s_mlp, 3, th, {"res": 0.3, "att": 0.28, "mlp": 0.35})
    assert cats.tolist() == ["newborn", "unexplained", "translated"]


def test_layer_controls_store_nulls_and_the_rule() -> None:
    from ingest.layer_matching import match_layer
    from ingest.scores import parse_thresholds

    pa = planted_atlas(n_layers=2, d_model=128, d_sae=64, seed=3)
    dec, prev = _decoders(pa, 1)
    fixed = match_layer(1, dec, prev, 3, Thresholds(), "numpy", "off", null_rows=512)
    c = fixed.controls
    assert c["category_rule"] == "fixed:0.5/0.25" and c["cut_res"] == 0.5 and c["cut_att"] == 0.25
    # planted links are far above the rotated-decoder null (chance for 64 candidates in 128 dims is ~0.25)
    for p in ("res", "att", "mlp"):
        assert c[f"{p}_null_n"] == 512 and 0.1 < c[f"{p}_null_median"] < c[f"{p}_null_p999"] < 0.5
    assert c["res_score_median"] > c["res_null_p999"]
    nul = match_layer(1, dec, prev, 3, parse_thresholds("null:0.999"), "numpy", "off", null_rows=512).controls
    assert nul["category_rule"] == "null:0.999" and abs(nul["cut_res"] - c["res_null_p999"]) < 0.05
    # the first layer has no res(L-1): no rule, no categories, but module nulls still
    first = match_layer(0, *_decoders(pa, 0), 3, Thresholds(), "numpy", "off", null_rows=256)
    assert (
        first.controls["category_rule"] is None
        and "res_null_median" not in first.controls
        and "att_null_median" in first.controls
    )
    assert set(first.features["res"]["category"]) == {None}


def test_both_ways_strategy_follows_the_cpu_class(monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.matching as matching

    rng = np.random.default_rng(5)
    t, s = _unit(rng, 30, 8), _unit(rng, 20, 8)
    calls: list[int] = []
    real = matching.topk_search
    monkeypatch.setattr(matching, "topk_search", lambda q, *a, **kw: calls.append(len(q)) or real(q, *a, **kw))
    monkeypatch.setattr(matching, "cpu_class", lambda: "other")  # unmeasured class: two one-way searches
    two = topk_both_ways(t, s, 3)
    assert calls == [30, 20]
    monkeypatch.setattr(matching, "cpu_class", lambda: "avx2")
    narrow = topk_both_ways(t, s, 3)  # a measured class, but d below SHARED_GEMM_MIN_D: two searches as well
    assert calls == [30, 20, 30, 20]
    monkeypatch.setattr(matching, "SHARED_GEMM_MIN_D", 8)
    shared = topk_both_ways(t, s, 3)
    assert calls == [30, 20, 30, 20]  # one shared GEMM: no one-way search
    for a, b in zip(two, narrow, strict=True):
        np.testing.assert_array_equal(a[1], b[1])
    for a, b in zip(two, shared, strict=True):
        np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(InvalidInput, match="both-ways strategy"):
        topk_both_ways(t, s, 3, strategy="three")  # type: ignore[arg-type]
