"""Certified bf16 pre-filter in front of FAISS's exact top-k.

Exact matching is GEMM-bound: on a 2-core CPU FAISS's ``IndexFlatIP`` and torch's matmul+topk both run the
fp32 sgemm at the cores' peak, so FAISS alone is barely faster (1.1×). CPUs with bf16 dot-product
instructions (x86 AVX512_BF16 / AMX, ARM BF16) run a bf16 GEMM about twice as fast. The pre-filter uses that
without giving up exactness:

1. every similarity is computed once in bf16 (fp32 accumulation, bf16 output) and each query keeps its
   ``n_candidates`` best;
2. a rigorous rounding-error bound proves, per query, that the exact top-k lies among those candidates;
3. FAISS re-scores only the candidates in fp32 (``faiss.knn_inner_products_by_idx``) and returns the top-k;
   queries whose proof fails (many near-ties inside the error bound) get FAISS's flat exact search.

The result is the exact search's result: the same neighbours and the same fp32 similarities.

The bound, for a query ``q`` and a base row ``b`` with bf16 roundings ``q~``, ``b~`` (errors ``e_q = |q - q~|``,
``e_b = |b - b~|``, measured per row) and computed bf16 similarity ``o``::

    |o - q.b| <= r |o| + delta_q,   r = 2^-8 / (1 - 2^-8)                 (rounding of the bf16 output)
    delta_q   = e_q |b~|max + |q| e_b,max                                  (rounding of the inputs)
              + 2 gamma_d (|q| + e_q) |b~|max,  gamma_d = d 2^-24 / (1 - d 2^-24)  (fp32 sums, ours and FAISS's)

With ``L(o) = o - r|o| - delta_q`` and ``U(o) = o + r|o| + delta_q`` (both increasing in ``o``): the k
candidates with the largest ``o`` all have exact similarity >= ``L(o_k)``, so the exact k-th similarity is
>= ``L(o_k)``; a row never kept has ``o <= o_last`` (the best value left out) and so exact similarity
<= ``U(o_last)``. ``U(o_last) < L(o_k)`` therefore proves the exact top-k is inside the candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ingest.cpu import cpu_has_fast_bf16
from ingest.settings import IngestSettings

log = logging.getLogger(__name__)

Prefilter = Literal["auto", "bf16", "off"]
PREFILTER_ENV = "ATLAS_MATCH_PREFILTER"  # IngestSettings.match_prefilter
# Rows of candidates kept per query. On random unit vectors (the hardest case: no clear winner) the proof
# needs a median of 18 and at most 49 at d_model 2304 (9 and 20 at 576); rows that need more are searched
# exactly, so this trades re-ranking cost against fallbacks, never correctness.
DEFAULT_CANDIDATES = 48
_R_OUT = 2.0**-8 / (1 - 2.0**-8)
_U32 = 2.0**-24


def prefilter_choice(prefilter: Prefilter | None = None, settings: IngestSettings | None = None) -> Prefilter:
    """The explicit choice, else ``$ATLAS_MATCH_PREFILTER`` (IngestSettings), else ``auto``; an unknown value is one clear error."""
    choice = prefilter or (settings or IngestSettings()).match_prefilter
    if choice not in ("auto", "bf16", "off"):
        from queries.errors import InvalidInput

        raise InvalidInput(f"unknown matching pre-filter {choice!r}: use auto, bf16 or off (e.g. {PREFILTER_ENV}=off)")
    return choice  # type: ignore[return-value]


def resolve_prefilter(prefilter: Prefilter | None = None, settings: IngestSettings | None = None) -> bool:
    """Whether to pre-filter at all: ``bf16`` yes, ``off`` no, ``auto`` when the CPU has fast bf16."""
    choice = prefilter_choice(prefilter, settings)
    return cpu_has_fast_bf16() if choice == "auto" else choice == "bf16"


@dataclass
class Bf16Rows:
    """bf16 copy of fp32 rows, with each row's norm and exact rounding error (for the bound)."""

    rows: torch.Tensor  # type: ignore[name-defined]  # noqa: F821 - torch is imported lazily
    norm: np.ndarray  # float64 [n]
    err: np.ndarray  # float64 [n]

    @property
    def max_rounded_norm(self) -> float:
        return float(np.max(self.norm + self.err)) if len(self.norm) else 0.0


def to_bf16(x: np.ndarray, chunk: int = 8192) -> Bf16Rows:
    import torch

    xt = torch.from_numpy(x)
    rows = xt.to(torch.bfloat16)
    norm = np.empty(x.shape[0])
    err = np.empty(x.shape[0])
    for a in range(0, x.shape[0], chunk):  # chunked: the difference would double the memory at 131k × 4096
        norm[a : a + chunk] = torch.linalg.vector_norm(xt[a : a + chunk], dim=1).numpy()
        err[a : a + chunk] = torch.linalg.vector_norm(xt[a : a + chunk] - rows[a : a + chunk].float(), dim=1).numpy()
    # fp32 norms are within d * 2^-24 (relative) of the exact ones; inflate so the bound stays an upper bound
    slack = 1 + 2 * x.shape[1] * _U32
    return Bf16Rows(rows, norm * slack, err * slack)


def error_bound(queries: Bf16Rows, base: Bf16Rows, d: int) -> np.ndarray:
    """``delta_q`` of the module docstring for every query row against every base row."""
    gamma = d * _U32 / (1 - d * _U32)
    b_max = base.max_rounded_norm
    e_b = float(np.max(base.err)) if len(base.err) else 0.0
    delta = queries.err * b_max + queries.norm * e_b + 2 * gamma * (queries.norm + queries.err) * b_max
    return delta * (1 + 1e-6) + 1e-9  # the bound itself is evaluated in floating point


def candidates_needed(top_vals: np.ndarray, k: int, delta: np.ndarray) -> np.ndarray:
    """How many of each row's best bf16 candidates can hold an exact top-k member; -1 where the proof fails.

    ``top_vals [n, n_candidates + 1]``: each row's best bf16 similarities, descending (float64); the last
    column is the best value left out and serves as the witness."""
    o_k = top_vals[:, k - 1 : k]
    lower = o_k - _R_OUT * np.abs(o_k) - delta[:, None]
    upper = top_vals + _R_OUT * np.abs(top_vals) + delta[:, None]
    reachable = upper >= lower  # a prefix of each row, since upper() increases with the similarity
    need = reachable[:, :-1].sum(axis=1)
    need[reachable[:, -1]] = -1
    return need


def rerank_exact(
    queries: np.ndarray, base: np.ndarray, candidates: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact fp32 top-k of each query among its candidate base rows (FAISS), sorted descending. Each row of
    ``candidates`` lists base rows, then -1 padding (FAISS stops a row at its first negative id)."""
    import faiss

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    candidates = np.ascontiguousarray(candidates, dtype=np.int64)
    nq, n_cand = candidates.shape
    vals = np.empty((nq, k), dtype=np.float32)
    ids = np.empty((nq, k), dtype=np.int64)
    if nq:
        # ld_ids must be given: FAISS's default stride is the base size, not n_candidates.
        faiss.knn_inner_products_by_idx(  # type: ignore[attr-defined]  # in faiss's SWIG module, absent from its type stubs
            faiss.swig_ptr(queries),
            faiss.swig_ptr(base),
            faiss.swig_ptr(candidates),
            base.shape[1],
            nq,
            base.shape[0],
            n_cand,
            k,
            faiss.swig_ptr(vals),
            faiss.swig_ptr(ids),
            n_cand,
        )
    return vals, ids


def exact_fallback(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    return index.search(np.ascontiguousarray(queries), k)


def finish(
    queries: np.ndarray, base: np.ndarray, k: int, top_idx: np.ndarray, top_vals: np.ndarray, delta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Re-rank certified rows among their candidates, search the rest exactly; returns (sims, idx, n_fallback).

    ``top_idx``/``top_vals``: each row's best bf16 candidates, descending; when they cover the whole base
    there is no witness column and every row is certified."""
    if top_vals.shape[1] == base.shape[0]:
        need = np.full(len(queries), base.shape[0])
    else:
        need = candidates_needed(top_vals, k, delta)
        top_idx = top_idx[:, :-1]
    ok = need >= 0
    cand = np.where(np.arange(top_idx.shape[1])[None, :] < need[:, None], top_idx, -1)
    sims = np.empty((len(queries), k), dtype=np.float32)
    idx = np.empty((len(queries), k), dtype=np.int64)
    sims[ok], idx[ok] = rerank_exact(queries[ok], base, cand[ok], k)
    n_bad = int((~ok).sum())
    if n_bad:
        sims[~ok], idx[~ok] = exact_fallback(queries[~ok], base, k)
    return sims, idx, n_bad


def _n_keep(n_candidates: int, n_base: int) -> int:
    """Columns kept per row: the candidates plus the best left-out value (for the proof), at most all rows."""
    return min(n_candidates + 1, n_base)


def prefiltered_topk(
    queries: np.ndarray,
    base: np.ndarray,
    k: int,
    *,
    tile_rows: int,
    n_candidates: int = DEFAULT_CANDIDATES,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k base rows for every query row (inputs float32 C-contiguous, k <= n_base)."""
    import torch

    q16, b16 = to_bf16(queries), to_bf16(base)
    keep = _n_keep(max(n_candidates, k), len(base))
    top_vals = np.empty((len(queries), keep))
    top_idx = np.empty((len(queries), keep), dtype=np.int64)
    with torch.no_grad():
        for a in range(0, len(queries), tile_rows):
            b = min(len(queries), a + tile_rows)
            vals, idx = torch.topk(q16.rows[a:b] @ b16.rows.T, keep, dim=1, largest=True, sorted=True)
            top_vals[a:b], top_idx[a:b] = vals.double().numpy(), idx.numpy()
            if progress:
                progress(b - a)
    sims, idx, n_bad = finish(queries, base, k, top_idx, top_vals, error_bound(q16, b16, queries.shape[1]))
    _log_fallback(n_bad, len(queries))
    return sims, idx


def prefiltered_both_ways(
    targets: np.ndarray,
    sources: np.ndarray,
    k: int,
    *,
    tile_rows: int,
    n_candidates: int = DEFAULT_CANDIDATES,
    progress: Callable[[int], None] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Backward (targets → sources) and forward (sources → targets) exact top-k from one bf16 GEMM."""
    import torch

    t16, s16 = to_bf16(targets), to_bf16(sources)
    n_t, n_s = len(targets), len(sources)
    kb, kf = min(k, n_s), min(k, n_t)
    keep_b, keep_f = _n_keep(max(n_candidates, kb), n_s), _n_keep(max(n_candidates, kf), n_t)
    bwd_vals = np.empty((n_t, keep_b))
    bwd_idx = np.empty((n_t, keep_b), dtype=np.int64)
    run_vals = torch.empty((n_s, 0), dtype=torch.bfloat16)  # each source's best targets so far, tile by tile
    run_idx = torch.empty((n_s, 0), dtype=torch.int64)
    with torch.no_grad():
        for a in range(0, n_t, tile_rows):
            b = min(n_t, a + tile_rows)
            sims = t16.rows[a:b] @ s16.rows.T  # [tile, n_s]
            vals, idx = torch.topk(sims, keep_b, dim=1, largest=True, sorted=True)
            bwd_vals[a:b], bwd_idx[a:b] = vals.double().numpy(), idx.numpy()
            # top-k along rows of the transposed copy: torch's top-k down columns is ~4x slower
            col_vals, col_idx = torch.topk(sims.T.contiguous(), min(keep_f, b - a), dim=1, largest=True, sorted=False)
            merged_vals = torch.cat([run_vals, col_vals], dim=1)
            merged_idx = torch.cat([run_idx, col_idx + a], dim=1)
            run_vals, pos = torch.topk(merged_vals, min(keep_f, merged_vals.shape[1]), dim=1, largest=True, sorted=True)
            run_idx = torch.gather(merged_idx, 1, pos)
            if progress:
                progress(b - a)
    fwd_vals, fwd_idx = run_vals.double().numpy(), run_idx.numpy()
    bwd = finish(targets, sources, kb, bwd_idx, bwd_vals, error_bound(t16, s16, targets.shape[1]))
    fwd = finish(sources, targets, kf, fwd_idx, fwd_vals, error_bound(s16, t16, targets.shape[1]))
    _log_fallback(bwd[2] + fwd[2], n_t + n_s)
    return (bwd[0], bwd[1]), (fwd[0], fwd[1])


def _log_fallback(n_bad: int, n: int) -> None:
    if n_bad:
        log.info("bf16 pre-filter: %d of %d rows not certified, searched exactly", n_bad, n)
