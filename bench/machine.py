"""The machine a benchmark ran on, saved with every figure: CPU model and SIMD flags (timings differ between
AVX2-only and AVX-512/bf16 CPUs), cores, and the load at the start; bench.harness adds the load at the end and `quiet`."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

SIMD_PREFIXES = ("avx", "amx", "sse4", "fma")

# Caps every math library a matching run uses to AVX2, so an AVX-512/bf16 machine times the AVX2 class's
# paths (torch's own kernels, MKL's sgemm, oneDNN's bf16/int8 GEMMs, fbgemm, FAISS's OpenBLAS and SIMD
# level). It is an emulation: same cores, caches and memory bandwidth, only the instructions are AVX2.
AVX2_EMULATION = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "FAISS_OPT_LEVEL": "AVX2",
}


def cpu_model_and_flags() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), []
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return model, flags
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), model)
    raw = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return model, [f for f in raw if f.startswith(SIMD_PREFIXES)]


def machine() -> dict[str, object]:
    model, flags = cpu_model_and_flags()
    load = os.getloadavg()
    # OPENBLAS_CORETYPE alone is no emulation: this VM's environment sets it (OpenBLAS 0.3.15 predates Zen 5)
    caps = {var: os.environ[var] for var in AVX2_EMULATION if var in os.environ}
    if set(caps) <= {"OPENBLAS_CORETYPE"}:
        caps = {}
    return {
        "cpu": model,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "loadavg_1_5_15": [round(x, 2) for x in load],
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),  # FAISS's sgemm kernels (OpenBLAS)
        # set when the libraries were capped below the hardware (AVX2_EMULATION): the figures are an emulation
        **({"isa_caps": caps, "emulation": "avx2 (same cores, caches, memory bandwidth)"} if caps else {}),
        # 1.5 per core: bench.harness.QUIET_LOAD_PER_CORE (the saved ``run`` also checks the load at the end)
        "note": "loaded at start (other jobs running): timings are noisy"
        if load[0] > 1.5 * (os.cpu_count() or 1)
        else "quiet at start",
    }
