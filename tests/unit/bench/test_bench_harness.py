"""bench.harness: a figure is quiet only when the 1-minute load at start and end is at most 1.5 per core, every saved
result carries its loads and ``quiet``, and the words about noise (and about Ray's ratio) come from the figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import harness
from bench.bench_deploy import ray_reading


def test_quiet_is_at_most_one_and_a_half_per_core_at_start_and_end() -> None:
    assert harness.is_quiet([3.0, 9.0, 9.0], [2.9, 9.0, 9.0], 2)  # the 5/15-minute loads do not count
    assert not harness.is_quiet([3.01, 0, 0], [0.1, 0, 0], 2)
    assert not harness.is_quiet([0.1, 0, 0], [3.5, 0, 0], 2)  # loud at the end only
    assert harness.is_quiet([5.9, 0, 0], [5.9, 0, 0], 4)


def test_noise_note_is_computed_from_the_loads() -> None:
    quiet = {"load_start_1_5_15": [0.01, 0, 0], "load_end_1_5_15": [0.2, 0, 0], "cores": 2, "quiet": True}
    loud = {"load_start_1_5_15": [14.0, 0, 0], "load_end_1_5_15": [19.0, 0, 0], "cores": 2, "quiet": False}
    assert harness.noise_note(quiet).startswith("Quiet machine") and "0.01" in harness.noise_note(quiet)
    assert "noisy" not in harness.noise_note(quiet)
    assert harness.noise_note(loud).startswith("Loaded machine") and "14.00" in harness.noise_note(loud)


def test_save_json_records_the_loads_and_quiet(tmp_path: Path) -> None:
    out = harness.save_json(tmp_path / "r" / "x.json", {"figure": 1.5}, start=[0.0, 0.0, 0.0], parts_quiet=False)
    saved = json.loads((tmp_path / "r" / "x.json").read_text())
    assert saved == json.loads(json.dumps(out)) and saved["figure"] == 1.5
    run = saved["run"]
    assert run["load_start_1_5_15"] == [0.0, 0.0, 0.0] and len(run["load_end_1_5_15"]) == 3
    assert run["cores"] >= 1 and isinstance(run["quiet"], bool) and run["machine"]["cpu"]
    assert saved["quiet"] is False  # an earlier part of the file was not quiet


def test_a_stated_reason_travels_with_a_figure_that_is_not_quiet(tmp_path: Path) -> None:
    loud = harness.save_json(tmp_path / "a.json", {}, start=[99.0, 0, 0], not_quiet_reason="measured on the H100")
    assert loud["quiet"] is False and loud["not_quiet_reason"] == "measured on the H100"
    calm = harness.save_json(tmp_path / "b.json", {}, start=[0.0, 0, 0], not_quiet_reason="unused")
    if calm["quiet"]:  # a reason is only kept where the figure needs one
        assert "not_quiet_reason" not in calm


def test_settle_load_waits_for_the_load_to_fall_and_gives_up_after_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = iter([9.0, 9.0, 1.0])
    monkeypatch.setattr(harness.os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
    monkeypatch.setattr(harness, "cores", lambda: 2)
    monkeypatch.setattr(harness.time, "sleep", lambda s: None)
    assert harness.settle_load(60, poll_s=0) >= 0.0
    with pytest.raises(StopIteration):
        next(loads)  # read until the load fell under 3: all three readings used
    monkeypatch.setattr(harness.os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert harness.settle_load(0.05, poll_s=0) >= 0.05  # still loud: stops at its limit


def test_a_roll_up_is_as_quiet_as_its_inputs() -> None:
    assert harness.inputs_quiet({"a.json": {"quiet": True}, "b.json": None}) == (True, None)
    quiet, why = harness.inputs_quiet(
        {"a.json": {"quiet": True}, "gpu.json": {"quiet": False, "not_quiet_reason": "the H100"}, "old.json": {}}
    )
    assert quiet is False and why is not None
    assert "gpu.json (quiet False: the H100)" in why and "old.json (quiet None)" in why and "a.json" not in why


def test_ray_reading_follows_the_measured_ratio() -> None:
    quiet = {"quiet": True}
    slower = ray_reading({"ray_over_single_process": 1.174}, quiet)
    assert "1.17× the single process" in slower and "faster" not in slower and "not slower" not in slower
    assert "faster" in ray_reading({"ray_over_single_process": 0.8}, quiet)
    same = ray_reading({"ray_over_single_process": 1.01}, {"quiet": False})
    assert "within 5%" in same and "loaded machine" in same


def test_deploy_report_reads_its_noise_and_ray_wording_from_the_saved_figures() -> None:
    from bench.bench_deploy import render

    saved = json.loads((Path(__file__).resolve().parents[3] / "bench" / "results" / "deploy.json").read_text())
    text = "\n".join(render(saved))
    assert "The machine was shared with other engineers" not in text and "why Ray is not slower" not in text
    ray = saved["ray"]
    loaded = ray["machine"]["loadavg_1_5_15"][0] > 1.5 * ray["machine"]["cores"]
    assert ("ray: Loaded machine" in text) == loaded and f"{float(ray['ray_over_single_process']):.3g}×" in text
