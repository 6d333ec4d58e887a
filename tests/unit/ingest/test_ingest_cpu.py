"""ingest.cpu: the CPU class comes from the flags, capped where the math libraries are told to stay below it."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from ingest import cpu

ZEN4 = frozenset({"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni"})
ICELAKE = frozenset({"avx2", "fma", "avx512f", "avx512_vnni"})
HASWELL = frozenset({"avx2", "fma"})
CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


@pytest.fixture
def x86(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    for var in CAPS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    "flags, env, expected",
    [
        (ZEN4, {}, "bf16"),
        (ICELAKE, {}, "avx512"),
        (HASWELL, {}, "avx2"),
        (frozenset({"sse4_2"}), {}, "other"),
        # the AVX2 emulation of bench/bench_ingest.py --emulate avx2: every library capped
        (
            ZEN4,
            {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
            "avx2",
        ),
        (ZEN4, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, "avx512"),  # oneDNN may not use bf16: no fast bf16 GEMM
        (ZEN4, {"ONEDNN_MAX_CPU_ISA": "avx512_core_bf16"}, "bf16"),
        (ICELAKE, {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, "avx2"),
    ],
)
def test_cpu_class(x86: pytest.MonkeyPatch, flags: frozenset[str], env: dict[str, str], expected: str) -> None:
    x86.setattr(cpu, "cpu_flags", lambda: flags)
    for var, value in env.items():
        x86.setenv(var, value)
    assert cpu.cpu_class() == expected
    assert cpu.cpu_has_fast_bf16() is (expected == "bf16")


def test_arm_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"asimd", "bf16"}))
    assert cpu.cpu_class() == "bf16"
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"asimd"}))
    assert cpu.cpu_class() == "other"


def test_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512_bf16\n\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\nCPU implementer\t: 0x41\n")
    assert cpu.cpu_flags(str(x86)) == {"fpu", "sse2", "avx2", "avx512_bf16"}
    assert cpu.cpu_flags(str(arm)) == {"fp", "asimd", "bf16"}
    assert cpu.cpu_flags(str(tmp_path / "missing")) == frozenset()  # unreadable: no flags, never an error
    (tmp_path / "bare").write_text("processor\t: 0\n")
    assert cpu.cpu_flags(str(tmp_path / "bare")) == frozenset()


def test_flags_are_read_from_this_machine() -> None:
    machine = platform.machine().lower()
    flags = cpu.cpu_flags()
    if machine in ("x86_64", "amd64"):
        assert "sse2" in flags  # every x86-64 CPU has SSE2
    elif machine in ("aarch64", "arm64"):
        assert "asimd" in flags or not Path("/proc/cpuinfo").exists()  # every ARMv8 Linux CPU lists asimd
    else:
        pytest.skip(f"no flag every {machine} CPU is known to have")


@pytest.mark.skipif("avx2" not in cpu.cpu_flags(), reason="needs an x86 CPU with AVX2")
def test_a_process_capped_to_avx2_takes_the_avx2_paths_with_the_same_answers() -> None:
    """bench_ingest.py --emulate avx2 relies on this: real env caps, real torch/FAISS, in a child process."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np; from ingest.cpu import cpu_class; from ingest.matching import topk_both_ways;"
        "r = np.random.default_rng(0); t, s = r.standard_normal((40, 24), dtype=np.float32), "
        "r.standard_normal((30, 24), dtype=np.float32);"
        "(bs, bi), (fs, fi) = topk_both_ways(t, s, 4);"
        "e = t.astype(np.float64) @ s.T.astype(np.float64);"
        "assert (bi == np.argsort(-e, axis=1, kind='stable')[:, :4]).all();"
        "assert (fi == np.argsort(-e.T, axis=1, kind='stable')[:, :4]).all();"
        "print(cpu_class())"
    )
    caps = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    env = {**os.environ, **caps, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "avx2"
