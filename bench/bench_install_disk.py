"""How much disk a fresh install takes at its peak and at the end: `deploy/install.sh` against one pip install.

    python -m bench.bench_install_disk                      # work folder under $TMPDIR, results in bench/results
    python -m bench.bench_install_disk --work /big/disk/tmp

CI machines have little disk to spare (one CI run failed in pip with "No space left on device"), and PyPI's
torch brings ~4 GiB of CUDA libraries even for a CPU install. Two fresh installs from a clone of HEAD, one after
the other, each deleted before the next:
  - `one_step`: a new venv and one `pip install -e ".[cpu,dev]"` (what install.sh did before it installed torch
    on its own), the baseline;
  - `install_sh`: `bash deploy/install.sh` as a user runs it (torch first, then the rest; the dashboard's npm
    build too).
The filesystem's used bytes are sampled every 0.5 s; pip's downloads go to a TMPDIR inside the work folder, so
they are counted. Anything else writing to the same filesystem meanwhile is counted too: run it on a quiet
machine. Saves install-disk.json|md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.harness import save_json
from bench.machine import machine

REPO = Path(__file__).resolve().parent.parent

MIB = 1 << 20
PYTHON = os.environ.get("PYTHON", "python3.11")


class PeakDiskUse:
    """Samples the used bytes of the filesystem holding `path` on a thread; peak and last above a baseline."""

    def __init__(self, path: Path, every_s: float = 0.5) -> None:
        self.path, self.every_s = path, every_s
        self.baseline = shutil.disk_usage(path).used
        self.peak = self.last = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.last = shutil.disk_usage(self.path).used
            self.peak = max(self.peak, self.last)
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakDiskUse:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.last = shutil.disk_usage(self.path).used
        self.peak = max(self.peak, self.last)


def measure(name: str, work: Path, commands: list[list[str]]) -> dict[str, Any]:
    clone = work / name
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    tmp = clone / ".pip-tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    start = time.perf_counter()
    with PeakDiskUse(work) as disk:
        for command in commands:
            done = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{name}: {' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    wall_s = time.perf_counter() - start
    venv_mib = sum(f.stat().st_size for f in (clone / ".venv").rglob("*") if f.is_file() and not f.is_symlink()) / MIB
    shutil.rmtree(clone)
    return {
        "peak_mib": round((disk.peak - disk.baseline) / MIB),
        "final_mib": round((disk.last - disk.baseline) / MIB),
        "venv_mib": round(venv_mib),
        "wall_s": round(wall_s, 1),
        "commands": [" ".join(c) for c in commands],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=None, help="folder for the two clones (default: a temp folder)")
    ap.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    parent = args.work or Path(tempfile.gettempdir())
    free_at_start = shutil.disk_usage(parent).free
    if free_at_start < 12 * 1024 * MIB:
        sys.exit(
            f"{parent} has {free_at_start / MIB:.0f} MiB free; this benchmark needs ~12 GiB (pass --work elsewhere)"
        )
    work = Path(tempfile.mkdtemp(prefix="install-disk-", dir=parent))
    venv_pip = [".venv/bin/python", "-m", "pip", "install", "-q"]
    try:
        one_step = measure(
            "one_step",
            work,
            [[PYTHON, "-m", "venv", ".venv"], [*venv_pip, "--upgrade", "pip"], [*venv_pip, "-e", ".[cpu,dev]"]],
        )
        install_sh = measure("install_sh", work, [["bash", "deploy/install.sh"]])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = {
        "machine": machine(),
        "free_mib_at_start": round(free_at_start / MIB),
        "one_step": one_step,
        "install_sh": install_sh,
        "peak_saved_mib": one_step["peak_mib"] - install_sh["peak_mib"],
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    save_json((args.results_dir / "install-disk.json"), out, indent=1)
    lines = [
        "# Disk of a fresh install (bench/bench_install_disk.py)",
        "",
        f"Machine: {out['machine']['cpu']}, {out['machine']['cores']} cores. MiB above the filesystem's use at start.",
        "",
        "| install | peak MiB | at the end MiB | .venv MiB | wall s |",
        "|---|---|---|---|---|",
    ]
    for name in ("one_step", "install_sh"):
        r = out[name]
        lines.append(f"| {name} | {r['peak_mib']} | {r['final_mib']} | {r['venv_mib']} | {r['wall_s']} |")
    lines += ["", f"install.sh's peak is {out['peak_saved_mib']} MiB lower than one pip install's."]
    (args.results_dir / "install-disk.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
