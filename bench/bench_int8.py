"""Can a low-precision candidate pass with a proven error bound make exact matching faster on AVX2? (issue #16)

    python bench/bench_int8.py            # this CPU, then the same in a child capped to AVX2 (emulation)

For one Gemma-shaped pair (16,384 × 16,384, d 2,304, top-5, random unit rows: the synthetic atlas of
bench_ingest.py) it measures, per CPU class:

1. GEMM speed of the arithmetics torch offers on a CPU: fp32 (MKL), bf16 (oneDNN), int8 → int32
   (``torch._int_mm``, oneDNN), timed on a quarter of the query rows and scaled ×4 (said in the output);
2. whether the int8 GEMM is exact integer arithmetic for which operand ranges (AVX2 without VNNI sums u8×s8
   pairs into int16 with saturation: a silent wrong product would break any proof);
3. how many candidates a PROVEN bound leaves per query row: with ``â``, ``b̂`` the dequantised rows,
   ``|a·b − â·b̂| ≤ ‖a−â‖‖b‖ + ‖â‖‖b−b̂‖`` per pair; a row keeps every ``b`` whose upper bound reaches the
   k-th best lower bound (computed exactly in float64 on 512 sampled query rows against all 16,384);
4. the time of exactly re-scoring that many candidates per row (FAISS ``knn_inner_products_by_idx``);
and projects one pair and the 77-pair atlas for each scheme (a projection from the measured parts).
Saves ``bench/results/int8.json|md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import save_json
from bench.machine import AVX2_EMULATION, machine

REPO = Path(__file__).resolve().parent.parent

N, D, K = 16384, 2304, 5
PAIRS = 77  # 25 res-res (one shared product each) + 26 att + 26 mlp
SUBSET = 4  # GEMMs timed on N / SUBSET query rows, scaled by SUBSET


def _unit(seed: int, n: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _best(f: object, repeats: int) -> float:
    f()  # type: ignore[operator]  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()  # type: ignore[operator]
        ts.append(time.perf_counter() - t)
    return min(ts)


def gemm_times(q: np.ndarray, b: np.ndarray, repeats: int) -> dict[str, float]:
    import torch

    qs = torch.from_numpy(q[: N // SUBSET])
    bt = torch.from_numpy(b)
    out: dict[str, float] = {}
    out["fp32_s"] = _best(lambda: qs @ bt.T, repeats) * SUBSET
    q16, b16 = qs.bfloat16(), bt.bfloat16()
    # bf16 without fast instructions is emulated and ~25x slower: time it on a slice there
    scale = 1 if torch.backends.cpu.get_cpu_capability() != "AVX2" else 8
    out["bf16_s"] = _best(lambda: q16[: len(q16) // scale] @ b16.T, repeats) * SUBSET * scale
    qi = torch.randint(-127, 128, qs.shape, dtype=torch.int8)
    bi = torch.randint(-63, 64, bt.shape, dtype=torch.int8).T  # [D, N], a transposed view, as matching would
    out["int8_s"] = _best(lambda: torch._int_mm(qi, bi), repeats) * SUBSET
    return {k: round(v, 3) for k, v in out.items()}


def int8_exact_ranges() -> dict[str, bool]:
    """Is ``torch._int_mm`` exact when the first operand spans ±a and the second ±b (all-extreme inputs make
    every adjacent pair's int16 partial sum as large as it can be)?"""
    import torch

    res = {}
    for a_max, b_max in ((127, 127), (127, 63), (63, 127)):
        ok = True
        for sa in (1, -1):
            for sb in (1, -1):
                x = torch.full((64, D), sa * a_max, dtype=torch.int8)
                y = torch.full((D, 64), sb * b_max, dtype=torch.int8)
                ok &= bool(torch.equal(torch._int_mm(x, y).long(), x.long() @ y.long()))
        res[f"a{a_max}_b{b_max}"] = ok
    return res


def _quant(x: np.ndarray, levels: int) -> np.ndarray:
    s = np.abs(x).max(axis=1, keepdims=True) / levels
    return np.clip(np.round(x / s), -levels, levels) * s


def candidate_counts(q: np.ndarray, b: np.ndarray, rows: int = 512) -> dict[str, dict[str, float]]:
    """Candidates per query row that the proven bound keeps (float64 arithmetic, exact enough for counting)."""
    a = q[:rows].astype(np.float64)
    bb = b.astype(np.float64)
    schemes = {
        "int8_127x127 (AVX-512 VNNI class: both operands 8-bit)": (_quant(a, 127), _quant(bb, 127)),
        "int8_127x63 (AVX2 without VNNI: second operand 7-bit, else int16 saturation)": (
            _quant(a, 127),
            _quant(bb, 63),
        ),
        "int8_127x(63+63 residual) (two int8 GEMMs)": (
            _quant(a, 127),
            _quant(bb, 63) + _quant(bb - _quant(bb, 63), 63),
        ),
        "bf16 inputs (the bf16 pre-filter's, without its output rounding)": (
            a.astype(np.float32).astype(np.float64),  # placeholder, replaced below with a true bf16 rounding
            bb,
        ),
    }
    import torch

    bf = lambda x: torch.from_numpy(x).bfloat16().double().numpy()  # noqa: E731
    key_bf16 = next(k for k in schemes if k.startswith("bf16"))
    schemes[key_bf16] = (bf(a), bf(bb))
    out = {}
    for name, (ah, bh) in schemes.items():
        o = ah @ bh.T
        delta = (
            np.linalg.norm(a - ah, axis=1)[:, None] * np.linalg.norm(bb, axis=1)[None, :]
            + np.linalg.norm(ah, axis=1)[:, None] * np.linalg.norm(bb - bh, axis=1)[None, :]
        )
        lower_k = -np.partition(-(o - delta), K - 1, axis=1)[:, K - 1 : K]
        n_cand = ((o + delta) >= lower_k).sum(axis=1)
        out[name] = {
            "median": float(np.median(n_cand)),
            "p99": float(np.quantile(n_cand, 0.99)),
            "max": float(n_cand.max()),
            "share_of_base": round(float(np.median(n_cand)) / len(b), 4),
        }
    return out


def rescore_time(q: np.ndarray, b: np.ndarray, per_row: int, repeats: int) -> float:
    """Exact fp32 re-scoring of ``per_row`` random candidates for every query row (FAISS), seconds; above
    256 candidates timed with 256 and scaled linearly (it is gathers of rows: linear in their number)."""
    from ingest.prefilter import rerank_exact

    rows = len(q) // SUBSET
    timed = min(per_row, 256)
    cand = np.random.default_rng(0).integers(0, len(b), size=(rows, timed))
    return round(_best(lambda: rerank_exact(q[:rows], b, cand, K), repeats) * SUBSET * per_row / timed, 3)


def measure(repeats: int, with_counts: bool) -> dict[str, object]:
    import torch

    q, b = _unit(1, N), _unit(2, N)
    out: dict[str, object] = {
        "machine": machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "gemm": gemm_times(q, b, repeats),
        "int8_exact": int8_exact_ranges(),
    }
    if with_counts:
        out["candidates"] = candidate_counts(q, b)
    return out


def _project(run: dict[str, object], counts: dict[str, dict[str, float]], q: np.ndarray, b: np.ndarray) -> None:
    g = run["gemm"]  # type: ignore[index]
    rescore = run.get("rescore_s") or {  # type: ignore[var-annotated]
        name: rescore_time(q, b, max(K, int(c["median"])), 1) for name, c in counts.items()
    }
    fp32 = g["fp32_s"]  # type: ignore[index]
    ok_127 = run["int8_exact"]["a127_b127"]  # type: ignore[index]
    plans = {
        "fp32 GEMM alone (the floor of the exact path)": fp32,
        "int8 one GEMM, 127x127 + re-score": g["int8_s"] + rescore[next(iter(counts))] if ok_127 else None,  # type: ignore[index]
        "int8 one GEMM, 127x63 + re-score": g["int8_s"] + rescore[list(counts)[1]],  # type: ignore[index]
        "int8 two GEMMs, 127x(63+63) + re-score": 2 * g["int8_s"] + rescore[list(counts)[2]],  # type: ignore[index]
        "bf16 one GEMM + re-score": g["bf16_s"] + rescore[list(counts)[3]],  # type: ignore[index]
    }
    run["rescore_s"] = rescore
    run["projected_pair_s"] = {k: round(v, 2) if v is not None else "int8 not exact here" for k, v in plans.items()}
    run["projected_77_pairs_matching_s"] = {k: round(v * PAIRS) if v is not None else None for k, v in plans.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child-json", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--n", type=int, default=N, help="SAE width (smaller for a smoke test; saves nothing then)")
    args = ap.parse_args()
    if args.n != N:
        globals()["N"] = args.n
        args.results_dir = Path(tempfile.mkdtemp())
    if args.child_json:
        args.child_json.write_text(json.dumps(measure(args.repeats, with_counts=False)))
        return
    native = measure(args.repeats, with_counts=True)
    counts = native["candidates"]  # the data decide the counts; the arithmetic only the operand ranges
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "child.json"
        cmd = [
            sys.executable,
            "-m",
            "bench.bench_int8",
            "--repeats",
            str(args.repeats),
            "--child-json",
            str(path),
            "--n",
            str(N),
        ]
        subprocess.run(cmd, check=True, env={**os.environ, **AVX2_EMULATION}, cwd=REPO)
        emulated = json.loads(path.read_text())
    q, b = _unit(1, N), _unit(2, N)
    _project(native, counts, q, b)  # type: ignore[arg-type]
    # re-scoring is gathers of fp32 rows (memory-bound); it is timed natively and reused for the emulation
    emulated["rescore_s"] = native["rescore_s"]
    _project(emulated, counts, q, b)  # type: ignore[arg-type]
    result = {
        "pair": f"{N} x {N} x {D}, top-{K}, random unit rows",
        "note": f"GEMMs timed on {N // SUBSET} query rows and scaled x{SUBSET}; re-scoring likewise; the 77-pair "
        "figures are projections (77 x the projected pair), matching only (writes excluded)",
        "native": native,
        "avx2_emulated": emulated,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / "int8.json"
    save_json(out, result, indent=2)
    md = ["# Low-precision candidate passes with a proven bound (issue #16)", "", result["note"], ""]
    for cls in ("native", "avx2_emulated"):
        run = result[cls]
        md += [f"## {cls}: {run['machine']}", "", f"GEMM (s, one pair): {json.dumps(run['gemm'])}", ""]  # type: ignore[index]
        md += [f"int8 exact for operand ranges: {json.dumps(run['int8_exact'])}", ""]  # type: ignore[index]
        md += ["| scheme | one pair (s) | 77 pairs (s, projected) |", "|---|---|---|"]
        for k, v in run["projected_pair_s"].items():  # type: ignore[index]
            md.append(f"| {k} | {v} | {run['projected_77_pairs_matching_s'][k]} |")  # type: ignore[index]
        md.append("")
    md += ["## Candidates per query row under the proven bound (512 sampled rows of 16,384)", ""]
    md += ["| scheme | median | p99 | max | share of base |", "|---|---|---|---|---|"]
    for k, c in counts.items():  # type: ignore[union-attr]
        md.append(f"| {k} | {c['median']:.0f} | {c['p99']:.0f} | {c['max']:.0f} | {c['share_of_base']} |")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
