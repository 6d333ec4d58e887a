"""Every committed benchmark result says how loud the machine was: ``quiet: true``, or a stated reason
(``not_quiet_reason``) — or, for files saved before ``run``/``quiet`` existed, the loads it was derived from
(``quiet_derived_from``). Issue #30's rule, checked on the files themselves so a new result cannot slip in without."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[3] / "bench" / "results"
FILES = sorted(p for p in RESULTS.rglob("*.json"))


def test_there_are_results_to_check() -> None:
    assert len(FILES) >= 20


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(RESULTS)) for p in FILES])
def test_result_is_quiet_or_states_why(path: Path) -> None:
    data = json.loads(path.read_text())
    runs = data if isinstance(data, list) else [data]  # a list of runs: each one answers for itself
    for run in runs:
        quiet = run.get("quiet")
        if quiet is True:
            assert run.get("quiet_derived_from") or "run" in run or any("load" in k for k in run), (
                f"{path.name}: quiet true but no loads recorded (run.load_start_1_5_15 / load_end_1_5_15)"
            )
            continue
        reason = run.get("not_quiet_reason")
        assert isinstance(reason, str) and len(reason) > 20, (
            f"{path.name}: quiet is {quiet!r} and there is no stated reason: re-run it on a quiet machine "
            "(python -m bench.<name>) or save it with bench.harness.save_json(..., not_quiet_reason=...)"
        )
