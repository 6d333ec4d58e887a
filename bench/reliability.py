"""Collect the reliability figures of issue 12 into bench/results/reliability.json + .md from the results of
bench/faults.py (faults.json), bench/fuzz_api.py (fuzz_api.json) and bench/soak.py (soak.json; soak-paced.json with think time). A figure
that was not measured is null, with the reason in ``not_measured`` (and in the .md).

    python -m bench.reliability
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.harness import inputs_quiet, save_json

RESULTS = Path(__file__).resolve().parent / "results"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _feature_p99_at_50(soak: dict[str, Any]) -> float | None:
    """``feature`` p99 (ms) of a soak's 50-client level, the issue's latency target; None without that level."""
    fifty = next((p for p in soak["phases"] if p["clients"] == 50), None)
    return fifty["per_query"]["feature"]["p99_ms"] if fifty else None


def main() -> None:
    faults, fuzz, soak = _load("faults.json"), _load("fuzz_api.json"), _load("soak.json")
    out: dict[str, Any] = {
        "soak_errors": None,
        "soak_rss_growth": None,
        "feature_p99_ms_50_clients": None,
        "resume_trials": None,
        "resume_mismatches": None,
        "neo4j_kill_trials": None,
        "neo4j_kill_mismatches": None,
        "fuzz_cases": None,
        "fuzz_server_errors": None,
        "restart_recovery_s": None,
        "restart_untyped_errors": None,
        "not_measured": {},
        "sources": {},
    }
    if faults:
        out["resume_trials"] = faults["ingest_sigkill"]["trials"]
        out["resume_mismatches"] = faults["ingest_sigkill"]["mismatches"]
        out["neo4j_kill_trials"] = faults["neo4j_sigkill"]["trials"]
        out["neo4j_kill_mismatches"] = faults["neo4j_sigkill"]["mismatches"]
        if "restart" in faults:
            out["restart_recovery_s"] = faults["restart"]["recovery_s"]
            out["restart_untyped_errors"] = sum(faults["restart"]["untyped_errors_during_outage"].values())
        out["sources"]["faults"] = {"atlas": faults["atlas"], "seed": faults["seed"], "machine": faults["machine"]}
    else:
        out["not_measured"]["faults"] = "bench/results/faults.json missing (run python -m bench.faults)"
    if fuzz:
        out["fuzz_cases"], out["fuzz_server_errors"] = fuzz["cases"], fuzz["server_errors"]
        out["sources"]["fuzz"] = {"seed": fuzz["seed"], "machine": fuzz["machine"]}
    else:
        out["not_measured"]["fuzz"] = "bench/results/fuzz_api.json missing (run python -m bench.fuzz_api)"
    if soak:
        out["soak_errors"] = soak["errors"]
        # typed refusals with a retry hint (OVERLOADED / DATABASE_BUSY) are back-pressure, counted apart
        out["soak_refused_retryable"] = soak.get("refused_retryable", 0)
        growth = [g for g in soak["rss_growth"]["after_warmup"].values() if g is not None]
        out["soak_rss_growth"] = max(growth) if growth else None  # after a warm-up at the top client count
        start = [g for g in soak["rss_growth"]["from_start"].values() if g is not None]
        out["soak_rss_growth_from_idle_start"] = max(start) if start else None
        out["feature_p99_ms_50_clients"] = _feature_p99_at_50(soak)
        out["sources"]["soak"] = {
            "atlas": soak["atlas"],
            "seconds_per_level": soak["seconds_per_level"],
            "status": soak.get("status"),
            "clients": [p["clients"] for p in soak["phases"]],
            "machine": soak["machine"],
        }
    else:
        out["not_measured"]["soak"] = "bench/results/soak.json missing (run python -m bench.soak)"
    paced = _load("soak-paced.json")
    if paced:  # the same mix at a user's pace (think time between requests): the latency a dashboard user sees
        out["feature_p99_ms_50_paced_clients"] = _feature_p99_at_50(paced)
        out["paced_soak_errors"] = paced["errors"]
        out["sources"]["soak_paced"] = {
            "atlas": paced["atlas"],
            "think_s": paced["think_s"],
            "seconds_per_level": paced["seconds_per_level"],
            "status": paced.get("status"),
            "machine": paced["machine"],
        }
    # a roll-up: as quiet as the runs it reads
    quiet, why = inputs_quiet(
        {"faults.json": faults, "fuzz_api.json": fuzz, "soak.json": soak, "soak-paced.json": paced}
    )
    save_json((RESULTS / "reliability.json"), out, indent=1, parts_quiet=quiet, not_quiet_reason=why)
    lines = [
        "# Reliability figures (issue 12)",
        "",
        "Collected by bench/reliability.py from faults.json, fuzz_api.json and soak.json "
        "(each has its machine, load and settings; all measured on a shared 2-core machine).",
        "",
    ]
    lines += [f"- `{k}`: {v}" for k, v in out.items() if k not in ("not_measured", "sources")]
    lines += ["", *(f"- not measured, {k}: {why}" for k, why in out["not_measured"].items())]
    (RESULTS / "reliability.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
