"""Fuzz the live GraphQL API (schemathesis, seeded) with many more cases than CI does and save the figures.

    python -m bench.fuzz_api --cases 3000 --seed 12     # bench/results/fuzz_api.json + .md

It runs tests/integration/test_api_fuzz.py (the one home of the fuzzing: planted atlas, live uvicorn server,
real Neo4j from NEO4J_URI) with ATLAS_FUZZ_CASES/ATLAS_FUZZ_SEED and reads the report it leaves.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import save_json
from bench.machine import machine

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    start = machine()
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "fuzz.json"
        env = {
            **os.environ,
            "ATLAS_FUZZ_CASES": str(args.cases),
            "ATLAS_FUZZ_SEED": str(args.seed),
            "ATLAS_FUZZ_REPORT": str(report_path),
            "PYTHONPATH": str(ROOT),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/integration/test_api_fuzz.py", "-q", "-p", "no:cacheprovider"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        report = json.loads(report_path.read_text())
    report.update(machine=start, loadavg_after=[round(x, 2) for x in os.getloadavg()], pytest_rc=proc.returncode)
    args.out.mkdir(parents=True, exist_ok=True)
    saved = save_json((args.out / "fuzz_api.json"), report, indent=1)
    md = [
        "# GraphQL fuzzing (python -m bench.fuzz_api)",
        "",
        f"Machine: {start['cpu']}, {start['cores']} cores, load {start['loadavg_1_5_15']}. {saved['run']['noise']}",
        "",
        f"- {report['cases']} schemathesis cases (seed {report['seed']}) over {report['operations']} operations in {report['seconds']} s",
        f"- responses with status 5xx or code INTERNAL: **{report['server_errors']}**",
        f"- HTTP statuses: {report['statuses']}; error codes: {report['error_codes']}",
    ]
    (args.out / "fuzz_api.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
