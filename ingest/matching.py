"""Exact inner-product top-k between unit-normalised decoder rows, tiled so memory stays bounded.

Two jobs:
- :func:`topk_search` — for every query row, its k most similar base rows (FAISS ``IndexFlatIP``,
  exact; on the GPU when faiss-gpu sees one; else, when torch sees a CUDA GPU, torch's fp32 GEMM + top-k
  on that GPU (the same exact search: CUDA torch is the common install, faiss-gpu the rare one); else CPU.
  ``torch`` and ``numpy`` backends give the same results and serve as baselines in ``bench/``). On CPUs with bf16 instructions the FAISS backend puts a
  certified bf16 pre-filter in front of FAISS's exact re-scoring (:mod:`ingest.prefilter`): same results,
  about half the GEMM time.
- :func:`topk_both_ways` — the ``res(L-1)``–``res(L)`` pair needs top-k in both directions (backward:
  predecessors of each ``res(L)`` feature; forward: successors of each ``res(L-1)`` feature). The
  similarity matrix is computed once, tile by tile, and both top-k are read off it (half the GEMMs
  of two searches; exact matching is GEMM-bound).

Invariants: inputs are float32 C-contiguous ``[n, d]``; outputs are ``(sims float32 [n, k], idx int64
[n, k])`` sorted by descending similarity; ``k`` is clipped to the base size. Peak extra memory is one
``tile_rows × n_base`` float32 tile (``max_tile_bytes``, 256 MiB by default) plus the outputs, at any
width (131k × 4096 included).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ingest.cpu import CpuClass, cpu_class, cpu_has_fast_bf16
from ingest.prefilter import Prefilter, prefilter_choice, prefiltered_both_ways, prefiltered_topk
from queries.errors import InvalidInput

log = logging.getLogger(__name__)

Backend = Literal["faiss", "torch", "numpy"]
DEFAULT_TILE_BYTES = 256 * 2**20

_gpu_state: dict[str, Any] = {}  # faiss.StandardGpuResources, made once per process


# Below ~1e10 multiply-adds the pre-filter's fixed costs (bf16 copies, re-ranking) outweigh its GEMM saving.
PREFILTER_MIN_WORK = 10**10


def _use_prefilter(prefilter: Prefilter | None, n_q: int, n_b: int, d: int) -> bool:
    """``bf16`` (argument or environment) forces it; ``auto`` also needs a large enough pair."""
    choice = prefilter_choice(prefilter)
    if choice == "auto":
        return cpu_has_fast_bf16() and n_q * n_b * d >= PREFILTER_MIN_WORK
    return choice == "bf16"


def _tile_rows(n_base: int, max_tile_bytes: int) -> int:
    return max(1, min(65_536, max_tile_bytes // max(1, 4 * n_base)))


def torch_cuda_available() -> bool:
    """True when torch is installed with CUDA and sees a GPU."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - any failure means: no usable GPU
        return False


def _exact_fp32_device(device: str) -> str:
    """Matching must be exact fp32: refuse to run where torch would silently use TF32 for fp32 GEMMs."""
    import torch

    if device == "cuda" and (
        torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest"
    ):
        raise InvalidInput(
            "torch is set to TF32 for float32 matrix products (torch.backends.cuda.matmul.allow_tf32 / "
            "set_float32_matmul_precision): matching needs exact fp32; reset them to their defaults"
        )
    return device


def faiss_gpu_available() -> bool:
    """True when the installed faiss is faiss-gpu and sees a GPU (faiss-gpu imports fine on CPU boxes)."""
    try:
        import faiss

        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # noqa: BLE001 - any failure means: no usable GPU
        return False


FAISS_BLAS_DATABASE_BS = 4096


def _faiss_index(base: np.ndarray, use_gpu: bool) -> tuple[Any, bool]:
    import faiss

    # FAISS computes exact IP search as sgemm over (4096 queries × database_bs rows) blocks, then a heap
    # per query. The default 1024-row blocks make many small GEMMs; 4096 was ~10% faster at 16k × 576
    # here (process-global setting; it changes speed only, never results).
    faiss.cvar.distance_compute_blas_database_bs = max(
        faiss.cvar.distance_compute_blas_database_bs, FAISS_BLAS_DATABASE_BS
    )
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    if use_gpu:
        try:
            if "res" not in _gpu_state:
                _gpu_state["res"] = faiss.StandardGpuResources()
            return faiss.index_cpu_to_gpu(_gpu_state["res"], 0, index), True
        except Exception as exc:  # noqa: BLE001 - fall back to the CPU, same results
            log.warning("FAISS GPU path failed (%s); using the CPU", exc)
    return index, False


def _sorted_topk_rows(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a 2-D array, sorted descending (numpy)."""
    if k < sims.shape[1]:
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(sims.shape[1]), sims.shape).copy()
    vals = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(part, order, axis=1).astype(np.int64)


def topk_search(
    queries: np.ndarray,
    base: np.ndarray,
    k: int,
    *,
    backend: Backend = "faiss",
    use_gpu: bool | None = None,
    max_tile_bytes: int = DEFAULT_TILE_BYTES,
    progress: Callable[[int], None] | None = None,
    prefilter: Prefilter | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k base rows by inner product for every query row (exact).

    ``prefilter`` (FAISS backend on the CPU only): ``auto`` (default; ``$ATLAS_MATCH_PREFILTER`` overrides)
    uses the bf16 pre-filter when the CPU has bf16 instructions and the search is large, ``bf16`` always,
    ``off`` never."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    base = np.ascontiguousarray(base, dtype=np.float32)
    k = min(k, base.shape[0])
    nq = queries.shape[0]
    out_s = np.empty((nq, k), dtype=np.float32)
    out_i = np.empty((nq, k), dtype=np.int64)
    step = _tile_rows(base.shape[0], max_tile_bytes)
    if backend == "faiss":
        on_gpu = faiss_gpu_available() if use_gpu is None else use_gpu
        if not on_gpu and use_gpu is None and torch_cuda_available():
            return topk_search(queries, base, k, backend="torch", max_tile_bytes=max_tile_bytes, progress=progress)
        if not on_gpu and _use_prefilter(prefilter, nq, base.shape[0], base.shape[1]):
            return prefiltered_topk(queries, base, k, tile_rows=step, progress=progress)
        index, _on_gpu = _faiss_index(base, on_gpu)
        for a in range(0, nq, step):
            b = min(nq, a + step)
            out_s[a:b], out_i[a:b] = index.search(queries[a:b], k)
            if progress:
                progress(b - a)
        return out_s, out_i
    if backend == "torch":
        import torch

        device = _exact_fp32_device("cuda" if (use_gpu is not False and torch_cuda_available()) else "cpu")
        base_t = torch.from_numpy(base).to(device)
        with torch.no_grad():
            for a in range(0, nq, step):
                b = min(nq, a + step)
                q = torch.from_numpy(queries[a:b]).to(device)
                vals, idx = torch.topk(q @ base_t.T, k, dim=1, largest=True, sorted=True)
                out_s[a:b], out_i[a:b] = vals.cpu().numpy(), idx.cpu().numpy()
                if progress:
                    progress(b - a)
        return out_s, out_i
    if backend == "numpy":
        for a in range(0, nq, step):
            b = min(nq, a + step)
            out_s[a:b], out_i[a:b] = _sorted_topk_rows(queries[a:b] @ base.T, k)
            if progress:
                progress(b - a)
        return out_s, out_i
    raise InvalidInput(f"unknown matching backend {backend!r} (valid: faiss, torch, numpy)")


BothWays = Literal["auto", "shared", "two"]
# Per CPU class (ingest.cpu): does one shared GEMM with a top-k down each axis beat two one-way searches?
# Measured on one Gemma-shaped pair (bench/bench_ingest.py, docs/ingest.md "Matching"); an unmeasured class
# takes two one-way searches (FAISS's fused GEMM + heap, the one-way path itself).
SHARED_GEMM_CLASSES: frozenset[CpuClass] = frozenset({"bf16", "avx512", "avx2"})
# ... and only from this width up: the shared GEMM saves one product (∝ n_t·n_s·d) but pays a second top-k
# pass over the whole n_t × n_s tile (∝ n_t·n_s, whatever d), so its gain shrinks with d. Measured on a
# quiet 2-core machine: shared ÷ two searches 0.78 (bf16) and 0.69 (avx2) at d = 2,304, but 1.10 at d = 576
# (bf16; 16,384 × 16,384 pair, bench/results/ingest-gemma-26.json).
SHARED_GEMM_MIN_D = 1024


def topk_both_ways(
    targets: np.ndarray,
    sources: np.ndarray,
    k: int,
    *,
    max_tile_bytes: int = DEFAULT_TILE_BYTES,
    progress: Callable[[int], None] | None = None,
    prefilter: Prefilter | None = None,
    strategy: BothWays = "auto",
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Backward top-k (each target row → sources) and forward top-k (each source row → targets).

    ``strategy``: ``shared`` computes ``targets @ sources.T`` once, tile by tile, and reads both top-k off it
    (torch; on CUDA when torch sees a GPU; on a CPU with bf16 instructions a bf16 GEMM with FAISS's exact
    re-scoring, see ``prefilter`` of :func:`topk_search`); ``two`` runs two one-way :func:`topk_search`;
    ``auto`` picks per CPU class and width (``SHARED_GEMM_CLASSES``, ``SHARED_GEMM_MIN_D``). Same results either
    way.

    Returns ``((bwd_sims, bwd_idx) [n_t, k], (fwd_sims, fwd_idx) [n_s, k])``.
    """
    import torch

    if strategy not in ("auto", "shared", "two"):
        raise InvalidInput(f"unknown both-ways strategy {strategy!r} (valid: auto, shared, two)")
    device = _exact_fp32_device("cuda" if torch.cuda.is_available() else "cpu")
    t_all = np.ascontiguousarray(targets, dtype=np.float32)
    s_all = np.ascontiguousarray(sources, dtype=np.float32)
    shared_pays = cpu_class() in SHARED_GEMM_CLASSES and t_all.shape[1] >= SHARED_GEMM_MIN_D
    if device == "cpu" and (strategy == "two" or (strategy == "auto" and not shared_pays)):
        bwd = topk_search(t_all, s_all, k, use_gpu=False, max_tile_bytes=max_tile_bytes, prefilter=prefilter)
        fwd = topk_search(s_all, t_all, k, use_gpu=False, max_tile_bytes=max_tile_bytes, prefilter=prefilter)
        if progress:
            progress(len(t_all))  # progress counts target rows, as in the shared path
        return bwd, fwd
    if device == "cpu" and _use_prefilter(prefilter, len(t_all), len(s_all), t_all.shape[1]):
        return prefiltered_both_ways(
            t_all, s_all, k, tile_rows=_tile_rows(len(s_all), max_tile_bytes), progress=progress
        )
    s_t = torch.from_numpy(s_all).to(device)
    n_t, n_s = t_all.shape[0], s_t.shape[0]
    kb, kf = min(k, n_s), min(k, n_t)
    bwd_s = np.empty((n_t, kb), dtype=np.float32)
    bwd_i = np.empty((n_t, kb), dtype=np.int64)
    run_s = torch.full((n_s, kf), -torch.inf, device=device)  # each source's best targets so far
    run_i = torch.zeros((n_s, kf), dtype=torch.int64, device=device)
    step = _tile_rows(n_s, max_tile_bytes)
    with torch.no_grad():
        for a in range(0, n_t, step):
            b = min(n_t, a + step)
            sims = torch.from_numpy(t_all[a:b]).to(device) @ s_t.T  # [tile, n_s]
            vals, idx = torch.topk(sims, kb, dim=1, largest=True, sorted=True)
            bwd_s[a:b], bwd_i[a:b] = vals.cpu().numpy(), idx.cpu().numpy()
            # down the columns as rows of the transposed copy: torch's top-k along dim 0 is ~4x slower on a
            # CPU, enough to make the shared GEMM lose to two searches on AVX2 (issue #16)
            kt = min(kf, b - a)
            cvals, cidx = torch.topk(sims.T.contiguous(), kt, dim=1, largest=True, sorted=False)
            merged_s = torch.cat([run_s, cvals], dim=1)
            merged_i = torch.cat([run_i, cidx + a], dim=1)
            run_s, pos = torch.topk(merged_s, kf, dim=1, largest=True, sorted=True)
            run_i = torch.gather(merged_i, 1, pos)
            if progress:
                progress(b - a)
    return (bwd_s, bwd_i), (run_s.cpu().numpy(), run_i.cpu().numpy())
