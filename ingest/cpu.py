"""Which class of CPU matching runs on: it decides which exact matching path is fastest.

Exact matching is GEMM-bound, and which GEMM is fast depends on the SIMD instructions the math libraries
may use: ``bf16`` (x86 ``avx512_bf16``/``amx_bf16``, ARM ``bf16``: a bf16 GEMM runs ~2× the fp32 one, so
the certified bf16 pre-filter pays), ``avx512``, ``avx2`` (fp32 only; bf16 is emulated and ~5× slower than
fp32), ``other``. The class is the hardware's, capped where the libraries are told to stay below it
(``ONEDNN_MAX_CPU_ISA`` for oneDNN, which runs torch's bf16 GEMM on the CPU; ``ATEN_CPU_CAPABILITY`` /
``MKL_ENABLE_INSTRUCTIONS`` for torch's own kernels and MKL's sgemm): so an AVX2-capped process on an
AVX-512 machine takes the AVX2 paths, as an AVX2 machine would (``bench/bench_ingest.py --emulate avx2``).
"""

from __future__ import annotations

import functools
import os
import platform
from typing import Literal

CpuClass = Literal["bf16", "avx512", "avx2", "other"]

# oneDNN ISA caps below the first level with bf16 dot products (AVX512_CORE_BF16)
_ONEDNN_NO_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}
_AVX2_CAPS = {"ATEN_CPU_CAPABILITY": {"avx2", "default"}, "MKL_ENABLE_INSTRUCTIONS": {"AVX2", "AVX", "SSE4_2"}}


@functools.cache
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (x86 ``flags`` / ARM ``Features`` of ``/proc/cpuinfo``; empty where unreadable)."""
    try:
        with open(cpuinfo, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return frozenset()
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def _capped_to_avx2() -> bool:
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _ONEDNN_NO_BF16 - {"AVX512_CORE", "AVX512_CORE_VNNI"}:
        return True
    return any(os.environ.get(var, "") in values for var, values in _AVX2_CAPS.items())


def cpu_class() -> CpuClass:
    """The CPU class of this process (see the module docstring); read from the flags and the libraries' caps."""
    flags = cpu_flags()
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    bf16 = bool(flags & {"avx512_bf16", "amx_bf16"}) if x86 else "bf16" in flags
    if bf16 and os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _ONEDNN_NO_BF16:
        bf16 = False  # torch's bf16 GEMM runs in oneDNN, which was told not to use the bf16 instructions
    if bf16 and not _capped_to_avx2():
        return "bf16"
    if x86 and "avx512f" in flags and not _capped_to_avx2():
        return "avx512"
    if x86 and "avx2" in flags:
        return "avx2"
    return "other"


def cpu_has_fast_bf16() -> bool:
    """True when a bf16 GEMM is fast here (bf16 dot-product instructions, not capped away)."""
    return cpu_class() == "bf16"
