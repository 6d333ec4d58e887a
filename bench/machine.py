"""The machine a benchmark ran on, saved with every figure: CPU model and SIMD flags (timings differ between
AVX2-only and AVX-512/bf16 CPUs), cores, and the load at the start (a shared machine makes timings noisy)."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

SIMD_PREFIXES = ("avx", "amx", "sse4", "fma")


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
    return {
        "cpu": model,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "loadavg_1_5_15": [round(x, 2) for x in load],
        "note": "shared machine (other jobs running), timings are noisy"
        if load[0] > 0.5 * (os.cpu_count() or 1)
        else "quiet at start",
    }
