"""The CI variant of bench/faults.py: one seeded SIGKILL of `atlas ingest` mid-run on a tiny synthetic atlas
(against the shared Neo4j), then `--resume`: counts and the edge checksum equal an uninterrupted run.
The full runs (more trials, Neo4j SIGKILLed mid-write, Neo4j restarted under load) are bench/faults.py's."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from typing import Any

from queries.db import Graph

BENCH = Path(__file__).resolve().parents[2] / "bench" / "faults.py"


def _faults() -> Any:
    spec = importlib.util.spec_from_file_location("bench_faults", BENCH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ingest_killed_and_resumed_equals_an_uninterrupted_run(graph: Graph, tmp_path: Path) -> None:
    faults = _faults()
    neo = graph.settings
    manifest = faults.write_manifest(tmp_path, layers=3, d_sae=128)
    try:
        ref, seconds = faults.reference(neo, manifest)
        assert ref["complete"] and ref["features"] == 3 * 3 * 128 and ref["edges"] > 0
        trial = faults.kill_trial(neo, manifest, random.Random(7).uniform(0.4, 0.8) * seconds, ref)
        assert trial["resume_rc"] == 0, trial["resume_error"]
        assert trial["killed_mid_run"] and trial["equal"], trial
    finally:
        with Graph(neo) as g:
            from queries.maintenance import drop_atlas

            drop_atlas(g, faults.ATLAS)
