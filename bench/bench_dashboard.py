"""Dashboard benchmark in a real browser (Debian's headless Chromium), plus the cost of the feature pages.

Runs tests of tests/integration/test_dashboard_browser.py (the API app on a planted atlas in the real Neo4j, so
nothing is measured twice in two ways) and saves their figures with the machine:
- ``feature_page_p95_ms`` / ``overview_page_p95_ms``: p95 over full page loads (new document each time; the
  server warm) of 30 feature pages (random features that carry pages) and 20 overview loads, from navigation
  start until the view rendered its data (``main[data-ready]``). On ``--atlas`` (default ``smollm2-demo``, the
  default atlas) when Neo4j holds it with pages, else on the test's planted atlas (``atlas`` says which);
- ``bytes_per_feature``: the mean size of the stored page JSON (Neo4j string property ``page``) on that atlas;
- ``ingest_extra_s``: the added label-time cost on the default atlas: the held-out pass, the pages and the
  writes (``atlas labels pages DIR --force``, run here once on ``--atlas-dir``); null when the folder is missing;
- ``panels``: every panel the browser tests saw with real data;
- the older figures: first view, bundle size, 500-node graph render.
``quiet`` is true only when the 1-minute load at start and end is ≤ 3. Saves bench/results/dashboard.json and .md.

    python -m bench.bench_dashboard [--atlas smollm2-demo] [--atlas-dir ~/.cache/feature-atlas/atlases/smollm2-demo]
                                    [--skip-ingest-extra]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import is_quiet

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def atlas_has_pages(atlas: str) -> bool:
    from queries.db import Graph
    from queries.feature_pages import count_paged

    try:
        with Graph() as g:
            return count_paged(g, atlas) > 0
    except Exception:  # noqa: BLE001 - no Neo4j or no atlas: fall back to the planted atlas, say so in the JSON
        return False


def ingest_extra(atlas_dir: Path) -> dict[str, float] | None:
    """Time the pages step on a trained atlas folder (model load counted apart: the demo has it loaded already)."""
    if not (atlas_dir / "metrics.json").is_file():
        return None
    from queries.db import Graph
    from saes.manifest import load_manifest
    from training.feature_pages_publish import publish_trained_pages

    t = time.perf_counter()
    with Graph() as g:
        out = publish_trained_pages(
            atlas_dir,
            json.loads((atlas_dir / "metrics.json").read_text()),
            load_manifest(atlas_dir / "atlas.toml"),
            g,
            force=True,
        )
    out["wall_s"] = round(time.perf_counter() - t, 2)
    return out


def main() -> None:
    from bench.machine import machine

    ap = argparse.ArgumentParser()
    ap.add_argument("--atlas", default="smollm2-demo")
    ap.add_argument("--atlas-dir", type=Path, default=Path.home() / ".cache/feature-atlas/atlases/smollm2-demo")
    ap.add_argument("--skip-ingest-extra", action="store_true", help="do not recompute the pages (ingest_extra_s null)")
    a = ap.parse_args()
    before = machine()
    load_start = os.getloadavg()
    extra = None if a.skip_ingest_extra else ingest_extra(a.atlas_dir)
    bench_atlas = a.atlas if atlas_has_pages(a.atlas) else None
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "figures.json"
        pages = Path(tmp) / "pages.json"
        env = {
            **os.environ,
            "ATLAS_DASHBOARD_BENCH": str(first),
            "ATLAS_DASHBOARD_PAGES_BENCH": str(pages),
            "PYTHONPATH": str(ROOT),
            **({"ATLAS_DASHBOARD_BENCH_ATLAS": bench_atlas} if bench_atlas else {}),
        }
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/integration/test_dashboard_browser.py",
        ]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        figures = json.loads(first.read_text())
        page_figs = json.loads(pages.read_text())
    load_end = os.getloadavg()
    quiet = is_quiet(load_start, load_end)
    result = {
        "feature_page_p95_ms": page_figs["feature_page_p95_ms"],
        "overview_page_p95_ms": page_figs["overview_page_p95_ms"],
        "bytes_per_feature": page_figs["bytes_per_feature"],
        "ingest_extra_s": None
        if extra is None
        else round(extra["pages_heldout_pass_s"] + extra["pages_pages_s"] + extra["pages_store_s"], 2),
        "ingest_extra": extra,
        "panels": page_figs["panels"],
        "atlas": page_figs["atlas"],
        "default_atlas": bench_atlas is not None,
        "pages": {k: v for k, v in page_figs.items() if k not in ("panels", "atlas", "bytes_per_feature")},
        **figures,
        "machine": before,
        "cpu_flags": before["cpu_flags"],
        "load_avg_at_start": [round(x, 2) for x in load_start],
        "load_avg_at_end": [round(x, 2) for x in load_end],
        "quiet": quiet,
        "targets": {
            "feature_page_p95_ms": 300,
            "overview_page_p95_ms": 300,
            "first_view_ms": 1000,
            "bundle_kb_gzip": 500,
            "graph500_render_ms": 1000,
        },
        "command": "python -m bench.bench_dashboard " + " ".join(sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dashboard.json").write_text(json.dumps(result, indent=2) + "\n")
    m = before
    md = [
        "# Dashboard performance",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores; load average at start {result['load_avg_at_start']}, end {result['load_avg_at_end']}"
        f" ({'quiet' if quiet else 'NOT quiet: other jobs were running, timings are noisy'}).",
        f"Atlas: {result['atlas']}{' (the default atlas)' if result['default_atlas'] else ' (planted test atlas: the default atlas was not in Neo4j with pages)'}.",
        "",
        "| figure | value | target | how |",
        "|---|---|---|---|",
        f"| feature page load, p95 | **{result['feature_page_p95_ms']} ms** (median {page_figs['feature_page_median_ms']}) | ≤ 300 ms | 30 random features, full page load, warm server |",
        f"| overview page load, p95 | **{result['overview_page_p95_ms']} ms** (median {page_figs['overview_page_median_ms']}) | ≤ 300 ms | 20 loads of `#/atlases?atlas=…` |",
        f"| stored page per feature | **{result['bytes_per_feature']} bytes** | — | mean size of the `page` JSON over {page_figs['paged_features']} features |",
        f"| added label time (pages) | **{result['ingest_extra_s']} s** | — | held-out pass + pages + writes on the default atlas ({extra}) |",
        f"| first view (atlases, cold load) | {result['first_view_ms']} ms | ≤ 1000 ms | median of 5 |",
        f"| JS + CSS shipped | {result['bundle_kb_gzip']} kB gzip | ≤ 500 kB | {', '.join(result['bundle_files'])} |",
        f"| 500-node flow graph laid out and drawn | {result['graph500_render_ms']} ms | ≤ 1000 ms | synthetic graph, median of 5 |",
        "",
        f"Panels seen with data: {', '.join(result['panels'])}.",
        "",
        f"Measured by `{result['command']}`.",
    ]
    (RESULTS / "dashboard.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
