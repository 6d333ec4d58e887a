"""Steerability on the graph (issue #25 item 6): what steering each feature does, and what the benchmark measured.

Feature properties
- ``steer_kl`` (nats), ``steer_tokens`` (strings), ``steer_token_gains`` (nats): steering.steerability's screen
  — next-token KL to the unsteered model and the most promoted tokens when the feature is added at the
  atlas's ``steer_alpha`` (units ALPHA) at the last position of fixed neutral prompts.
- ``steer_bench_gain``, ``steer_bench_n``, ``steer_bench_alpha``, ``steer_bench_concept``: only on the seeds the
  steering benchmark tested — the test-set harmonic-mean score of steering that feature alone minus unsteered's
  (a point estimate over ``steer_bench_n`` test generations; the benchmark's intervals are per method, across
  concepts), and the α the benchmark chose for it on validation prompts.

Atlas properties: ``steer_alpha``, ``steer_prompts`` (the screen's settings); ``steer_default_alpha`` and
``steer_default_alpha_graph`` (the benchmark's median validation-chosen α for single features and flow graphs:
the steer mutation's default in units ALPHA) with ``steer_default_source``. SAE property ``median_norm`` (the α
unit at that hook point).
"""

from __future__ import annotations

from typing import Any, LiteralString

from queries.db import Graph

# rows: [{uid, steer_kl, steer_tokens, steer_token_gains}]
SET_FEATURE_STEERABILITY: LiteralString = (
    "UNWIND $rows AS row MATCH (f:Feature {uid: row.uid}) "
    "SET f.steer_kl = row.steer_kl, f.steer_tokens = row.steer_tokens, f.steer_token_gains = row.steer_token_gains"
)
SET_SAE_MEDIAN_NORM: LiteralString = (
    "UNWIND $rows AS row MATCH (s:SAE {key: row.key}) SET s.median_norm = row.median_norm"
)
SET_ATLAS_STEERABILITY: LiteralString = (
    "MATCH (a:Atlas {name: $atlas}) SET a.steer_alpha = $alpha, a.steer_prompts = $prompts RETURN a.name AS name"
)
# rows: [{uid, gain, n, alpha, concept}]; earlier benchmark figures of the atlas are cleared first
CLEAR_BENCH: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas}) WHERE f.steer_bench_gain IS NOT NULL "
    "REMOVE f.steer_bench_gain, f.steer_bench_n, f.steer_bench_alpha, "
    "f.steer_bench_concept"
)
SET_BENCH: LiteralString = (
    "UNWIND $rows AS row MATCH (f:Feature {uid: row.uid}) "
    "SET f.steer_bench_gain = row.gain, f.steer_bench_n = row.n, "
    "f.steer_bench_alpha = row.alpha, f.steer_bench_concept = row.concept RETURN count(f) AS n"
)
SET_ATLAS_DEFAULT_ALPHA: LiteralString = (
    "MATCH (a:Atlas {name: $atlas}) SET a.steer_default_alpha = $feature_alpha, "
    "a.steer_default_alpha_graph = $graph_alpha, a.steer_default_source = $source RETURN a.name AS name"
)
DEFAULT_ALPHAS: LiteralString = (
    "MATCH (a:Atlas {name: $atlas}) RETURN a.steer_default_alpha AS feature, a.steer_default_alpha_graph AS graph, "
    "a.steer_default_source AS source"
)
BENCH_ALPHAS: LiteralString = (
    "UNWIND $uids AS uid MATCH (f:Feature {uid: uid}) WHERE f.steer_bench_alpha IS NOT NULL "
    "RETURN uid, f.steer_bench_alpha AS alpha"
)
COUNT_MEASURED: LiteralString = "MATCH (f:Feature {atlas: $atlas}) WHERE f.steer_kl IS NOT NULL RETURN count(f) AS n"


def store_steerability(
    graph: Graph,
    atlas: str,
    rows: list[dict[str, Any]],
    median_norms: list[dict[str, Any]],
    *,
    alpha: float,
    prompts: list[str],
) -> int:
    """The screen's per-feature rows, the SAEs' α units and the settings on the Atlas; returns features sent."""
    n = graph.write_batches(SET_FEATURE_STEERABILITY, iter(rows), batch_size=1000, timeout=300)
    if median_norms:
        graph.write(SET_SAE_MEDIAN_NORM, {"rows": median_norms})
    graph.write(SET_ATLAS_STEERABILITY, {"atlas": atlas, "alpha": alpha, "prompts": prompts})
    return n


def store_bench(
    graph: Graph,
    atlas: str,
    rows: list[dict[str, Any]],
    *,
    feature_alpha: float | None,
    graph_alpha: float | None,
    source: str,
) -> int:
    """The benchmark's per-seed gains (replacing earlier ones) and its default α; returns seeds found."""
    graph.write(CLEAR_BENCH, {"atlas": atlas})
    found = graph.write(SET_BENCH, {"rows": rows}) if rows else []
    graph.write(
        SET_ATLAS_DEFAULT_ALPHA,
        {"atlas": atlas, "feature_alpha": feature_alpha, "graph_alpha": graph_alpha, "source": source},
    )
    return int(found[0]["n"]) if found else 0


def default_alphas(graph: Graph, atlas: str) -> dict[str, Any]:
    rows = graph.read(DEFAULT_ALPHAS, {"atlas": atlas})
    return rows[0] if rows else {"feature": None, "graph": None, "source": None}


def bench_alphas(graph: Graph, uids: list[str]) -> dict[str, float]:
    """The benchmark's validation-chosen α of those features it tested."""
    return {r["uid"]: float(r["alpha"]) for r in graph.read(BENCH_ALPHAS, {"uids": uids})}


def count_measured(graph: Graph, atlas: str) -> int:
    rows = graph.read(COUNT_MEASURED, {"atlas": atlas})
    return int(rows[0]["n"]) if rows else 0
