"""The controls stored beside the edges: per SAE pair the null of the top-1 score and the cuts of the category
rule (:func:`layer_controls`), the atlas-wide summary of those nulls (:func:`atlas_controls`), and the seed
ceilings of ``[[ceiling]]`` SAEs (:func:`ceiling_controls`). Pure numpy: nothing here touches Neo4j; the online
path (``ingest.pipeline``) and the bulk export (``ingest.bulk``) write what these return.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ingest.decoders import load_unit_decoder
from ingest.scores import Thresholds
from ingest.streaming import DEFAULT_TILE_ROWS, DecoderFile, streamed_null_top1
from queries.errors import InvalidInput
from saes.controls import DEFAULT_NULL_ROWS, null_top1, summarise_scores, top1_scores
from saes.manifest import AtlasManifest
from saes.projections import OutputProjections

# The properties layer_controls may put on a res SAE node, with their neo4j-admin import types (ingest.bulk).
MODULES = ("res", "att", "mlp")
CONTROL_FIELDS: dict[str, str] = (
    {"category_rule": "string"}
    | {
        f"{p}_{name}": typ
        for p in MODULES
        for name, typ in (
            ("score_median", "double"),
            ("null_median", "double"),
            ("null_p99", "double"),
            ("null_p999", "double"),
            ("null_n", "long"),
        )
    }
    | {f"cut_{p}": "double" for p in MODULES}
)


# The properties ceiling_controls puts on an SAE node, with their neo4j-admin import types (ingest.bulk).
CEILING_FIELDS: dict[str, str] = {
    "ceiling_median": "double",
    "ceiling_p99": "double",
    "ceiling_share_ge_half": "double",
    "ceiling_seed": "string",
}


def layer_controls(
    layer: int,
    res: np.ndarray | DecoderFile,
    preds: Mapping[str, np.ndarray | DecoderFile | None],
    s: dict[str, np.ndarray | None],
    th: Thresholds,
    null_rows: int,
) -> tuple[dict[str, Any], dict[str, float] | None]:
    """Per predecessor SAE of ``res(layer)``: the median top-1 score and its null (median, 99th, 99.9th
    percentile), as SAE-node properties ``{pred}_score_median``, ``{pred}_null_median`` …; plus the
    category rule and, for a null rule, the per-pair cuts (``None`` for the fixed rule)."""
    if th.null_quantile is not None and null_rows <= 0:
        raise InvalidInput(
            f"thresholds {th.rule} need the null (got null_rows = {null_rows}; leave it at the default {DEFAULT_NULL_ROWS})"
        )
    props: dict[str, Any] = {"category_rule": th.rule if s["res"] is not None else None}
    cuts: dict[str, float] = {}
    for pred, d in preds.items():
        score = s[pred]
        if d is None or score is None:
            continue
        props[f"{pred}_score_median"] = float(np.median(score))
        if null_rows > 0:
            seed = layer * 3 + ("res", "att", "mlp").index(pred)
            if isinstance(res, DecoderFile) and isinstance(d, DecoderFile):
                null = streamed_null_top1(res, d, rows=null_rows, seed=seed, tile_rows=DEFAULT_TILE_ROWS)
            else:
                assert isinstance(res, np.ndarray) and isinstance(d, np.ndarray)
                null = null_top1(res, d, rows=null_rows, seed=seed)
            summ = summarise_scores(null)
            props.update(
                {
                    f"{pred}_null_median": summ.median,
                    f"{pred}_null_p99": summ.p99,
                    f"{pred}_null_p999": summ.p999,
                    f"{pred}_null_n": summ.n,
                }
            )
            if th.null_quantile is not None:
                cuts[pred] = float(np.quantile(null, th.null_quantile))
    if th.null_quantile is None or s["res"] is None:
        fixed = {"res": th.res, "att": th.module, "mlp": th.module}
        props.update({f"cut_{p}": fixed[p] for p in preds if s[p] is not None} if s["res"] is not None else {})
        return props, None
    props.update({f"cut_{p}": c for p, c in cuts.items()})
    return props, cuts


def atlas_controls(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Atlas-node view of the per-pair nulls: the mean of their medians, the largest 99.9th percentile, and
    the category rule(s) of the res SAEs (one rule unless layers were ingested with different options).
    ``rows``: one per res SAE with ``rule`` and ``{res,att,mlp}_null_median/_p999`` (missing = None)."""
    meds = [r[f"{p}_null_median"] for r in rows for p in MODULES if r.get(f"{p}_null_median") is not None]
    p999 = [r[f"{p}_null_p999"] for r in rows for p in MODULES if r.get(f"{p}_null_p999") is not None]
    return {
        "null_median_mean": float(np.mean(meds)) if meds else None,
        "null_p999_max": float(max(p999)) if p999 else None,
        "category_rules": sorted({r["rule"] for r in rows if r.get("rule")}),
    }


def ceiling_controls(
    manifest: AtlasManifest, d_model: int, projections: OutputProjections | None
) -> dict[tuple[int, str], dict[str, Any]]:
    """Seed ceilings: for every ``[[ceiling]]`` SAE, the top-1 cosine of its hook point's atlas SAE against it
    (saes.controls), as properties of that SAE node. Computed before anything is written, so a bad ceiling
    file stops the ingest with nothing written; several seeds of one hook point pool their scores."""
    scores: dict[tuple[int, str], list[np.ndarray]] = {}
    seeds: dict[tuple[int, str], list[str]] = {}
    for c in manifest.ceilings:
        main = manifest.entry(c.layer, c.module)
        assert main is not None  # the manifest guarantees a [[sae]] for every [[ceiling]]
        a = load_unit_decoder(main, manifest.base_dir, d_model, projections)
        b = load_unit_decoder(c, manifest.base_dir, d_model, projections)
        key = (c.layer, c.module.value)
        scores.setdefault(key, []).append(top1_scores(a.unit, b.unit))
        seeds.setdefault(key, []).append(c.describe())
    out = {}
    for key, parts in scores.items():
        s = np.concatenate(parts)
        summ = summarise_scores(s)
        out[key] = {
            "ceiling_median": summ.median,
            "ceiling_p99": summ.p99,
            "ceiling_share_ge_half": float((s >= 0.5).mean()),
            "ceiling_seed": ", ".join(seeds[key]),
        }
    return out
