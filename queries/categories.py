"""Categories of residual features under a rule, read from the stored scores (no decoders, no matching).

One Cypher expression (``CATEGORY_CASE``) turns a feature's stored ``s_res``/``s_att``/``s_mlp`` and three
cuts into its category, the same rule as ``ingest.scores.categorize`` (an absent module score counts as
low; no ``s_res`` → no category). ``atlas ingest --recategorize`` writes it (``RECATEGORIZE_LAYER``);
the reports read it under two rules at once (``RULE_TRANSITIONS``, ``SUCCESSOR_TRANSITIONS``).

``stored_cuts`` is the one place where a rule becomes a layer's three cuts: the fixed ``t_res``/``t_mod``,
or, for ``null:Q``, each SAE pair's stored null quantile (only 0.99 and 0.999 are stored at ingest).
"""

from __future__ import annotations

from typing import Any, LiteralString

from queries.errors import InvalidInput

# Cuts a predecessor never reaches (an absent predecessor SAE under a null rule: never "high").
NEVER = 2.0
STORED_QUANTILES = {0.99: "p99", 0.999: "p999"}


def category_case(v: str, suffix: str) -> str:
    """The category of feature ``v`` under cuts ``$t_res{suffix}``, ``$t_att{suffix}``, ``$t_mlp{suffix}``."""
    high_res = f"({v}.s_res >= $t_res{suffix})"
    high_mod = f"(coalesce({v}.s_att >= $t_att{suffix}, false) OR coalesce({v}.s_mlp >= $t_mlp{suffix}, false))"
    # no res(L-1) SAE (s_res absent): no category (DESIGN.md), so the CASE yields null
    return (
        f"CASE WHEN {high_res} IS NULL THEN null WHEN {high_res} AND NOT {high_mod} THEN 'translated' "
        f"WHEN {high_res} THEN 'processed' WHEN {high_mod} THEN 'newborn' ELSE 'unexplained' END"
    )


# One layer's res features: (category under cuts _a, category under cuts _b) with counts, and how many
# features reach each cut under each rule.
RULE_TRANSITIONS: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas, layer: $layer, module: 'res'}) "
    f"WITH f, {category_case('f', '_a')} AS a, {category_case('f', '_b')} AS b "
    "RETURN a, b, count(*) AS n, "
    + ", ".join(
        f"sum(CASE WHEN f.s_{p} >= $t_{p}_{r} THEN 1 ELSE 0 END) AS {p}_{r}"
        for p in ("res", "att", "mlp")
        for r in "ab"
    )
)

# Each res(L) feature and its top-1 forward successor in res(L+1) (source_rank 0): the pair of categories,
# counted; the layer's own cuts for the source (_a) and the next layer's for the successor (_b).
SUCCESSOR_TRANSITIONS: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas, layer: $layer, module: 'res'})-[e:FLOWS_TO]->"
    "(g:Feature {atlas: $atlas, layer: $next, module: 'res'}) WHERE e.source_rank = 0 "
    f"WITH e, {category_case('f', '_a')} AS a, {category_case('g', '_b')} AS b "
    "RETURN a, b, count(*) AS n, avg(e.similarity) AS mean_similarity"
)

# The res SAE nodes' stored controls (nulls, ceilings, scores), one row per layer.
RES_CONTROLS: LiteralString = (
    "MATCH (:Atlas {name: $atlas})-[:HAS_SAE]->(s:SAE {module: 'res'}) "
    "RETURN s.layer AS layer, properties(s) AS props ORDER BY layer"
)


def stored_cuts(
    controls: dict[str, Any] | None, t_res: float, t_mod: float, null_quantile: float | None
) -> dict[str, float]:
    """A layer's cuts ``{res, att, mlp}`` under a rule. ``controls``: that layer's res SAE node properties
    (``{pred}_null_p99/_p999``, ``res_null_median``, ``res_score_median``); a null rule needs them."""
    cuts = {"res": t_res, "att": t_mod, "mlp": t_mod}
    if null_quantile is None:
        return cuts
    if null_quantile not in STORED_QUANTILES:
        raise InvalidInput(
            f"the rule null:{null_quantile:g} needs a stored null quantile (0.99 or 0.999); re-ingest with "
            f"--thresholds null:{null_quantile:g} for other quantiles"
        )
    c = controls or {}
    if c.get("res_null_median") is None and c.get("res_score_median") is not None:
        raise InvalidInput(
            f"layer {c.get('layer')} has no stored null; re-ingest the atlas (the null is computed at ingest)"
        )
    for p in cuts:
        v = c.get(f"{p}_null_{STORED_QUANTILES[null_quantile]}")
        cuts[p] = float(v) if v is not None else NEVER  # no null stored: that predecessor is absent (never high)
    return cuts


def cut_params(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Parameters of the two-rule statements from two cut dicts."""
    return {f"t_{p}_a": v for p, v in a.items()} | {f"t_{p}_b": v for p, v in b.items()}
