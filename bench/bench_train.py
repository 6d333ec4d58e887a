"""SAE training throughput against this machine's GEMM peak, measured in the same run (issue #26).

Measures, one after the other in one process:
- the GEMM peak: torch matmul at 4096 x 4096 x 4096 and at the SAE's shape (4096 tokens x 576 x 4096),
  in fp32 and in bf16 (bf16 runs on AMX or avx512_bf16 where the CPU has it; on AVX2-only CPUs bf16 is
  emulated and slower, which the figures then show);
- the current trainer (:class:`training.sae.BankTrainer` on a :class:`training.sae.TopKBank`) at the
  standard width (d_sae 4096, d_in 576, TopK k 32) on random activations: tokens/s and achieved GFLOP/s.

FLOP count per token per SAE: ``6 * d_in * d_sae`` — the encoder's forward, input-gradient-free weight
gradient and the dense-equivalent decoder, the convention of issue #26's 2.5 PFLOP estimate. The ratio
``train_gflops_over_peak`` divides it by the best same-run GEMM peak (bf16 where the CPU has bf16, else fp32).

    python -m bench.bench_train                 # writes bench/results/train.json
    python -m bench.bench_train --seconds 2     # shorter timing windows (smoke run)
``quiet``: bench.harness.is_quiet (the 1-minute load at start and end at most 1.5 per core).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import RESULTS, is_quiet

BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def _timed(fn: Any, seconds: float) -> tuple[int, float]:
    """Run ``fn`` once to warm up, then repeatedly for about ``seconds``; return (calls, elapsed)."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n, dt


def gemm_gflops(m: int, k: int, n: int, dtype: Any, seconds: float) -> float:
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=g).to(dtype)
    b = torch.randn(k, n, generator=g).to(dtype)
    calls, dt = _timed(lambda: torch.mm(a, b), seconds)
    return 2.0 * m * k * n * calls / dt / 1e9


def train_throughput(d_in: int, d_sae: int, k: int, n_saes: int, batch: int, seconds: float) -> dict[str, float]:
    import torch

    from training.sae import BankTrainer, TopKBank, TopKConfig

    torch.manual_seed(0)
    cfg = TopKConfig(d_in=d_in, d_sae=d_sae, k=k)
    bank = TopKBank(n_saes, cfg)
    x = torch.randn(n_saes, batch, d_in)
    bank.initialise(x)
    trainer = BankTrainer(bank, total_steps=10_000)
    steps, dt = _timed(lambda: trainer.step(x), seconds)
    tokens_s = steps * batch / dt  # tokens per second per SAE
    return {
        "steps": steps,
        "seconds": round(dt, 2),
        "tokens_per_s_per_sae": round(tokens_s, 1),
        "sae_tokens_per_s": round(tokens_s * n_saes, 1),
        "train_gflops": round(6.0 * d_in * d_sae * tokens_s * n_saes / 1e9, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="timing window per measurement")
    ap.add_argument("--d-in", type=int, default=576)
    ap.add_argument("--d-sae", type=int, default=4096)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--saes", type=int, default=3, help="SAEs trained together in one bank")
    ap.add_argument("--batch", type=int, default=4096, help="tokens per step")
    ap.add_argument("--out", type=Path, default=RESULTS / "train.json")
    args = ap.parse_args()

    import torch

    from bench.machine import machine

    load_start = os.getloadavg()
    info = machine()
    has_bf16 = any(f in info["cpu_flags"] for f in BF16_FLAGS)  # type: ignore[operator]
    peaks: dict[str, float] = {}
    for name, (m, kk, n) in {"square_4096": (4096, 4096, 4096), "sae_4096x576x4096": (4096, 576, 4096)}.items():
        for dtype in (torch.float32, torch.bfloat16):
            label = f"{name}_{str(dtype).removeprefix('torch.')}"
            peaks[label] = round(gemm_gflops(m, kk, n, dtype, args.seconds), 1)
    train = train_throughput(args.d_in, args.d_sae, args.k, args.saes, args.batch, args.seconds)
    load_end = os.getloadavg()
    peak_dtype = "bfloat16" if has_bf16 else "float32"
    peak = max(v for k, v in peaks.items() if k.endswith(peak_dtype))
    result = {
        **info,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_has_bf16": has_bf16,
        "shape": {"d_in": args.d_in, "d_sae": args.d_sae, "k": args.k, "saes": args.saes, "batch": args.batch},
        "gemm_gflops": peaks,
        "gemm_peak_dtype": peak_dtype,
        "gemm_peak_gflops": peak,
        **train,
        "train_gflops_over_peak": round(train["train_gflops"] / peak, 3),
        "flop_count": "6 * d_in * d_sae per token per SAE",
        "trainer": "training.sae.BankTrainer (fp32 steps)",
        "load_start": [round(x, 2) for x in load_start],
        "load_end": [round(x, 2) for x in load_end],
        "quiet": is_quiet(load_start, load_end),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
