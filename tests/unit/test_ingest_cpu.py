"""ingest.cpu: the CPU class comes from the flags, capped where the math libraries are told to stay below it."""

from __future__ import annotations

import platform

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


def test_flags_are_read_from_this_machine() -> None:
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert "sse2" in cpu.cpu_flags()
