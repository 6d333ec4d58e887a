"""Pick seed features for a theme given as text.

Two honest offline methods, tried in this order by the steering experiment:
1. ``from_labels``: the atlas's feature labels in Neo4j (written by the labeller) embedded with the
   topic scorer's model; the res features whose label is most similar to the theme.
2. ``from_activations``: no labels needed — the res features that fire most on the theme text relative
   to held-out text (z-score of the mean activation on the theme's tokens against held-out tokens),
   restricted to the middle third of the atlas's layers (the paper's seeds sit mid-depth, e.g. layer 12 of 26).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments.context import AtlasContext
from queries.ids import Module, feature_uid

if TYPE_CHECKING:
    from experiments.topic import TopicScorer
    from queries.db import Graph

log = logging.getLogger(__name__)


def from_labels(
    graph: Graph, atlas: str, theme: str, scorer: TopicScorer, k: int = 3, *, limit: int = 50_000
) -> list[tuple[str, float, str]]:
    """(uid, similarity, label) of the ``k`` res features whose label best matches the theme; [] without labels."""
    from queries.features import list_features_statement

    stmt, params = list_features_statement(
        {"atlas": {"eq": atlas}, "module": {"eq": "res"}, "label": {"is_null": False}}, None, limit=limit, offset=0
    )
    rows = [r["f"] for r in graph.read(stmt, params, timeout=120)]
    rows = [r for r in rows if (r.get("label") or "").strip()]
    if not rows:
        return []
    sims = scorer.similarity([r["label"] for r in rows], [theme])[:, 0]
    order = np.argsort(-sims)[:k]
    return [(rows[i]["uid"], float(sims[i]), rows[i]["label"]) for i in order]


def middle_layers(ctx: AtlasContext) -> list[int]:
    res_layers = [L for L in ctx.layers if ctx.has(L, Module.RES)]
    n = len(res_layers)
    lo, hi = n // 3, max(n // 3 + 1, (2 * n) // 3)
    return res_layers[lo:hi]


def from_activations(
    ctx: AtlasContext, theme: str, reference: list[list[int]], k: int = 3, *, layers: list[int] | None = None
) -> list[tuple[str, float, str]]:
    """(uid, z-score, "activation contrast") of the ``k`` res features most specific to the theme text."""
    from experiments.activations import encode_windows

    layers = layers or middle_layers(ctx)
    keys = [(L, Module.RES) for L in layers]
    ids = ctx.model.tokenizer(theme, add_special_tokens=False)["input_ids"]
    # A neutral lead-in so that no theme token sits at position 0 (the attention sink).
    lead = ctx.model.tokenizer("Text about ", add_special_tokens=False)["input_ids"]
    window = list(lead) + list(ids)
    theme_s = encode_windows(ctx, [window], [np.arange(len(lead), len(window))], keys=keys)
    ref_s = encode_windows(ctx, reference, [np.arange(1, len(w)) for w in reference], keys=keys)
    best: list[tuple[float, str]] = []
    for L in layers:
        t = theme_s.dense(L, Module.RES)
        r = ref_s.dense(L, Module.RES)
        z = (t.mean(axis=0) - r.mean(axis=0)) / (r.std(axis=0) + 1e-3)
        z[t.max(axis=0) <= 0] = -np.inf  # must actually fire on the theme
        for j in np.argsort(-z)[:k]:
            if np.isfinite(z[j]):
                best.append((float(z[j]), feature_uid(ctx.name, L, Module.RES, int(j))))
    best.sort(reverse=True)
    return [(uid, score, "activation contrast") for score, uid in best[:k]]


def describe(seeds: list[tuple[str, float, str]]) -> list[dict[str, Any]]:
    return [{"uid": u, "score": s, "basis": b} for u, s, b in seeds]
