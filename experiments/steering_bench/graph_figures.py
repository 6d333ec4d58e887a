"""What the steering benchmark's JSON says about single features, in the shape the graph stores
(queries.steerability.store_bench): per tested seed its test gain over unsteered and its chosen α, and the
atlas's default α (median of the validation-chosen α over the steered concepts, single feature and flow graph)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from queries.errors import InvalidInput


def bench_rows(bench_json: Path, atlas: str) -> tuple[list[dict[str, Any]], float | None, float | None, str]:
    """``(rows, feature_alpha, graph_alpha, source)`` from ``docs``/``bench`` ``steering-bench.json``."""
    try:
        data = json.loads(Path(bench_json).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"--bench-json {str(bench_json)!r} is not a readable steering-bench.json ({exc})") from None
    ran_on = data.get("run", {}).get("settings", {}).get("atlas")
    if ran_on != atlas:
        raise InvalidInput(
            f"--bench-json {str(bench_json)!r} was measured on atlas {ran_on!r}, not {atlas!r} "
            f"(run `atlas experiment steering-bench --atlas {atlas}` first)"
        )
    rows = []
    for concept, per in (data.get("per_concept") or {}).items():
        single, base = per.get("sae_feature"), per.get("unsteered")
        if not single or not base or not single.get("features"):
            continue
        rows.append(
            {
                "uid": single["features"][0],
                "gain": round(float(single["test"]["harmonic_mean"]) - float(base["test"]["harmonic_mean"]), 4),
                "n": int(single["test"].get("n") or 0),
                "alpha": float(single["choice"]["alpha"]),
                "concept": concept,
            }
        )
    methods = data.get("methods") or {}
    feature_alpha = (methods.get("sae_feature") or {}).get("alpha_median")
    graph_alpha = (methods.get("flow_graph") or {}).get("alpha_median")
    run = data.get("run", {})
    source = (
        f"steering-bench on {atlas}: {data.get('concepts_steered')} concepts steered, "
        f"{(run.get('settings', {}).get('quick') and 'quick') or 'full'} run, quiet={data.get('quiet')}"
    )
    return rows, feature_alpha, graph_alpha, source
