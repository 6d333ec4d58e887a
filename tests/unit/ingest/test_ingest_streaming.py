"""Streamed matching from memory-mapped safetensors equals in-memory exact top-k, and never reads the encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.matching import topk_search
from ingest.streaming import DecoderFile, streamed_topk
from queries.errors import SAEFileError
from saes.saelens_format import load_sae_dir, save_sae_dir
from saes.weights import SAEWeights


def test_streamed_topk_equals_in_memory(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = save_sae_dir(tmp_path / "a", SAEWeights(W_dec=rng.standard_normal((300, 24)).astype(np.float32)))
    b = save_sae_dir(tmp_path / "b", SAEWeights(W_dec=rng.standard_normal((260, 24)).astype(np.float32)))
    qa, qb = DecoderFile(a), DecoderFile(b)
    s, i = streamed_topk(qa, qb, 3, tile_rows=64)  # several tiles both ways, uneven last tiles
    ua = load_sae_dir(a).W_dec
    ub = load_sae_dir(b).W_dec
    ua /= np.linalg.norm(ua, axis=1, keepdims=True)
    ub /= np.linalg.norm(ub, axis=1, keepdims=True)
    s2, i2 = topk_search(ua, ub, 3, backend="numpy")
    np.testing.assert_array_equal(i, i2)
    np.testing.assert_allclose(s, s2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(qa.norms(), np.linalg.norm(load_sae_dir(a).W_dec, axis=1), rtol=1e-6)


def test_zero_row_is_refused(tmp_path: Path) -> None:
    w = np.ones((10, 4), np.float32)
    w[3] = 0
    p = save_sae_dir(tmp_path / "z", SAEWeights(W_dec=w, W_enc=np.ones((4, 10), np.float32)))
    with pytest.raises(SAEFileError, match="row 3 is zero"):
        DecoderFile(p).norms()


def test_query_range_and_bf16(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    rng = np.random.default_rng(1)
    w = torch.from_numpy(rng.standard_normal((200, 16)).astype(np.float32)).to(torch.bfloat16)
    save_file({"W_dec": w}, str(tmp_path / "bf16.safetensors"))
    base = save_sae_dir(tmp_path / "b", SAEWeights(W_dec=rng.standard_normal((90, 16)).astype(np.float32)))
    q = DecoderFile(tmp_path / "bf16.safetensors")
    np.testing.assert_array_equal(q.rows(0, 200), w.float().numpy())  # bf16 widened exactly
    s_all, i_all = streamed_topk(q, DecoderFile(base), 4, tile_rows=32)
    s, i = streamed_topk(q, DecoderFile(base), 4, tile_rows=32, query_range=(50, 130))
    np.testing.assert_array_equal(i, i_all[50:130])
    np.testing.assert_allclose(s, s_all[50:130], rtol=1e-6)  # another tile alignment: last-bit GEMM differences
