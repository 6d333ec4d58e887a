"""Report writer shared by the experiments: one Markdown file, PNG figures and a JSON of every number.

Invariants: every number the Markdown shows is also in the JSON (experiments put their results in
``Report.data`` and format the Markdown from it); figures are rendered with matplotlib's Agg backend
(no display needed); the header always says model, atlas, sample sizes, seeds and machine.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


# The SIMD flags that decide which kernels run (AVX2-only vs AVX-512/bf16 vs AMX figures are not comparable).
SIMD_PREFIXES = ("avx", "amx", "sse4", "fma")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU's model name and its SIMD flags, from /proc/cpuinfo (the processor name elsewhere, no flags)."""
    model = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return model, flags
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), model)
    raw = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    return model, [f for f in raw if f.startswith(SIMD_PREFIXES)]


def machine_description() -> dict[str, Any]:
    """What ran the experiment: OS, CPU model and SIMD flags, CPU count, load (a shared machine makes timings
    noisy), GPU if any."""
    cpu, flags = cpu_model_and_flags()
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu,
        "cpu_flags": flags,
    }
    try:
        info["load_average_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def run_meta(atlas: str, model: str, windows: list[list[int]], tokens_per_text: int) -> dict[str, Any]:
    """What every token-sampling experiment's report states first: atlas, model and the text sample."""
    return {
        "atlas": atlas,
        "model": model,
        "texts": len(windows),
        "tokens_per_text": tokens_per_text,
        "window_tokens": len(windows[0]),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None  # JSON has no NaN; null means "undefined for this sample"
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "as_dict"):
        return _jsonable(value.as_dict())
    return value


@dataclass
class Report:
    """Collects sections, figures and data; :meth:`write` puts ``{name}.md``, ``{name}.json`` and PNGs in a dir."""

    name: str
    title: str
    meta: dict[str, Any]
    sections: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    _figures: list[tuple[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def add(self, markdown: str) -> None:
        self.sections.append(markdown.strip("\n"))

    def figure(self, stem: str, fig: Any, caption: str) -> None:
        """Register a matplotlib figure; it is saved as ``{name}-{stem}.png`` and embedded with its caption."""
        filename = f"{self.name}-{stem}.png"
        self._figures.append((filename, fig))
        self.sections.append(f"![{caption}]({filename})\n\n*{caption}*")

    def write(self, out_dir: str | Path) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        elapsed = time.time() - self.started
        self.meta.setdefault("machine", machine_description())
        self.meta["wall_time_s"] = round(elapsed, 1)
        for filename, fig in self._figures:
            fig.savefig(out / filename, dpi=110, bbox_inches="tight")
            plt.close(fig)
        payload = {"experiment": self.name, "meta": self.meta, "results": self.data}
        (out / f"{self.name}.json").write_text(
            json.dumps(_jsonable(payload), separators=(",", ":")) + "\n"
        )  # compact: per-target records are large
        md = [f"# {self.title}", "", self._header(), ""]
        md += [s + "\n" for s in self.sections]
        md.append(
            f"Machine-readable numbers: [`{self.name}.json`]({self.name}.json). Wall time {elapsed:.0f} s (the experiment itself; loading the model and SAEs excluded)."
        )
        path = out / f"{self.name}.md"
        path.write_text("\n".join(md) + "\n")
        log.info("wrote %s", path)
        return path

    def _header(self) -> str:
        m = self.meta
        machine = m.get("machine") or machine_description()
        from steering.model import describe_model

        model = describe_model(m.get("model")) if m.get("model") else None
        lines = ["| | |", "|---|---|", f"| Atlas | `{m.get('atlas')}` |", f"| Model | {model} |"]
        for key, value in m.items():
            if key in {"atlas", "model", "machine", "wall_time_s"}:
                continue
            lines.append(f"| {key.replace('_', ' ')} | {_fmt_meta(value)} |")
        desc = f"{machine.get('platform')}, {machine.get('cpu_count')} CPUs"
        if machine.get("gpu"):
            desc += f", GPU {machine['gpu']}"
        if machine.get("load_average_1m") is not None:
            desc += f", load {machine['load_average_1m']} at start (a shared machine: timings are noisy)"
        lines.append(f"| Machine | {desc} |")
        return "\n".join(lines)


def _fmt_meta(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table; floats get 3 significant decimals, None/NaN become 'n/a'."""

    def cell(v: Any) -> str:
        if v is None:
            return "n/a"
        if isinstance(v, (float, np.floating)):
            return "n/a" if not math.isfinite(float(v)) else f"{float(v):.3f}"
        return str(v)

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def new_figure(width: float = 7.0, height: float = 4.0, ncols: int = 1, nrows: int = 1) -> tuple[Any, Any]:
    """A figure on the Agg backend (safe on headless machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
