"""Dashboard benchmark: first view, shipped bundle size and a 500-node flow-graph render, in a real browser.

Runs the browser test module's ``test_performance_figures`` (tests/integration/test_dashboard_browser.py:
Debian's headless Chromium against the API app on a planted atlas in the real Neo4j, so nothing is
measured twice in two ways) with ATLAS_DASHBOARD_BENCH set, and saves its figures with the machine:
- ``first_view_ms``: median of 5 cold page loads of ``/#/atlases`` (new document each time): milliseconds
  from navigation start until the view has rendered its data (``main[data-ready]``, GraphQL answered);
- ``bundle_kb_gzip``: the JS + CSS the page loads, gzip level 9;
- ``graph500_render_ms``: median of 5 layouts + draws of a synthetic 500-node flow graph through the
  flow-graph view's own code, until the first painted frame.
Needs the built dashboard (deploy/install.sh) and Neo4j (NEO4J_URI). Saves bench/results/dashboard.json and .md.

    python -m bench.bench_dashboard
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import save_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, object]:
    info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.machine())
    flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    chromium = subprocess.run(["chromium", "--version"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "cpu_flags_simd": [f for f in flags if f.startswith(("avx", "sse4", "fma", "amx"))],
        "browser": chromium,
        "python": platform.python_version(),
        "load_avg_at_start": [round(x, 2) for x in load],
    }


def main() -> None:
    before = machine()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        env = {**os.environ, "ATLAS_DASHBOARD_BENCH": str(out), "PYTHONPATH": str(ROOT)}
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/integration/test_dashboard_browser.py::test_performance_figures",
        ]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        figures = json.loads(out.read_text())
    result = {
        **figures,
        "machine": before,
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "targets": {"first_view_ms": 1000, "bundle_kb_gzip": 500, "graph500_render_ms": 1000},
        "command": "python -m bench.bench_dashboard",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    saved = save_json((RESULTS / "dashboard.json"), result, indent=2)
    m = before
    md = [
        "# Dashboard performance",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; {m['browser']} headless. {saved['run']['noise']}",
        "",
        "| figure | value | target | how |",
        "|---|---|---|---|",
        f"| first view (atlases, cold load) | **{result['first_view_ms']} ms** (runs {result['first_view_ms_runs']}) | ≤ 1000 ms | navigation start → view rendered with its data, median of 5 |",
        f"| JS + CSS shipped | **{result['bundle_kb_gzip']} kB** gzip | ≤ 500 kB | {', '.join(result['bundle_files'])} |",
        f"| 500-node flow graph laid out and drawn | **{result['graph500_render_ms']} ms** (runs {result['graph500_render_ms_runs']}; layout + Cytoscape init {result['graph500_layout_and_init_ms']} ms) | ≤ 1000 ms | synthetic graph through the view's code, to the first painted frame, median of 5 |",
        "",
        "Measured by `python -m bench.bench_dashboard` (runs `test_performance_figures` of tests/integration/test_dashboard_browser.py).",
    ]
    (RESULTS / "dashboard.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
