"""Atlas-wide aggregates for overviews (the paper's Figs. 3/5): category counts per layer, score histograms.

Both read only the atlas's residual features (categories and ``s_*`` scores exist on ``res`` features only)
and aggregate in Neo4j, so a dashboard gets a few hundred numbers instead of every feature.
"""

from __future__ import annotations

from typing import Any, LiteralString

from queries.errors import InvalidInput
from queries.schema import CATEGORIES

LAYER_CATEGORIES: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas, module: 'res'}) "
    "RETURN f.layer AS layer, f.category AS category, count(*) AS n ORDER BY layer"
)

# Scores are cosines; the top-1 cosine of a matched feature is in [0, 1] in practice, so bins span [0, 1]
# and the rare negative value is counted in the first bin (documented on the GraphQL field).
SCORE_HISTOGRAMS: LiteralString = (
    "MATCH (f:Feature {atlas: $atlas, module: 'res'}) "
    "UNWIND [['sRes', f.s_res], ['sAtt', f.s_att], ['sMlp', f.s_mlp]] AS p "
    "WITH p[0] AS score, p[1] AS v WHERE v IS NOT NULL "
    "WITH score, CASE WHEN v >= 1.0 THEN $bins - 1 WHEN v < 0.0 THEN 0 ELSE toInteger(floor(v * $bins)) END AS bin "
    "RETURN score, bin, count(*) AS n"
)

SCORES: tuple[str, ...] = ("sRes", "sAtt", "sMlp")
MAX_BINS = 200


def layer_category_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of LAYER_CATEGORIES → one dict per layer: ``{layer, total, translated, ..., uncategorised}``."""
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        d = out.setdefault(
            int(r["layer"]), {"layer": int(r["layer"]), "total": 0, "uncategorised": 0, **dict.fromkeys(CATEGORIES, 0)}
        )
        key = r["category"] if r["category"] in CATEGORIES else "uncategorised"
        d[key] += int(r["n"])
        d["total"] += int(r["n"])
    return [out[k] for k in sorted(out)]


def check_bins(bins: int) -> int:
    if not 1 <= bins <= MAX_BINS:
        raise InvalidInput(f"bins {bins} is out of range (valid: 1–{MAX_BINS})")
    return bins


def histogram_table(rows: list[dict[str, Any]], bins: int) -> list[dict[str, Any]]:
    """Rows of SCORE_HISTOGRAMS → ``[{score, bin_edges (bins+1 floats over [0, 1]), counts (bins ints)}]``."""
    counts = {s: [0] * bins for s in SCORES}
    for r in rows:
        counts[r["score"]][int(r["bin"])] += int(r["n"])
    edges = [i / bins for i in range(bins + 1)]
    return [{"score": s, "bin_edges": edges, "counts": counts[s]} for s in SCORES]
