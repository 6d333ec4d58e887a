"""Synthetic attribution graphs in circuit-tracer's JSON shape, written streaming (tests and the import benchmark).

Nodes: one embedding per prompt position, ``n_features`` transcoder features spread over the layers
(``{layer}_{index}_{ctx}`` ids, Neuronpedia's cantor ``feature``), an MLP error node per layer and a few
logits. Links: each target gets sources from earlier layers; links are grouped by target in node order,
as circuit-tracer writes them. Deterministic in ``seed``; the file is written piece by piece, so a graph of
16M links never sits in memory as Python objects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from queries.neuronpedia import cantor


@dataclass(frozen=True)
class SyntheticGraphSpec:
    n_layers: int = 4
    n_features: int = 40
    n_links: int = 300
    d_sae: int = 16
    n_tokens: int = 4
    scan: str = "planted-model"
    source_set: str | None = "plantedscope-res-16"
    slug: str = "synthetic"
    seed: int = 0


def _node(
    node_id: str,
    feature: int | None,
    layer: str,
    ctx: int,
    ftype: str,
    js: str,
    clerp: str = "",
    influence: float | None = None,
) -> dict[str, object]:
    return {
        "node_id": node_id,
        "feature": feature,
        "layer": layer,
        "ctx_idx": ctx,
        "feature_type": ftype,
        "token_prob": 0.0,
        "is_target_logit": False,
        "run_idx": 0,
        "reverse_ctx_idx": 0,
        "jsNodeId": js,
        "clerp": clerp,
        "influence": influence,
        "activation": None,
    }


def synthetic_nodes(spec: SyntheticGraphSpec) -> tuple[list[dict[str, object]], list[int]]:
    """The nodes and each node's rank for link ordering (embeddings 0, layer L features L+1, logits last)."""
    rng = np.random.default_rng(spec.seed)
    nodes: list[dict[str, object]] = []
    rank: list[int] = []
    for pos in range(spec.n_tokens):
        nodes.append(_node(f"E_{100 + pos}_{pos}", pos, "E", pos, "embedding", f"E_{100 + pos}-{pos}"))
        rank.append(0)
    seen: set[tuple[int, int, int]] = set()
    while len(seen) < spec.n_features:
        layer, index, ctx = (
            int(rng.integers(spec.n_layers)),
            int(rng.integers(spec.d_sae)),
            int(rng.integers(spec.n_tokens)),
        )
        if (layer, index, ctx) in seen:
            continue
        seen.add((layer, index, ctx))
    for layer, index, ctx in sorted(seen):
        nodes.append(
            _node(
                f"{layer}_{index}_{ctx}",
                cantor(layer, index),
                str(layer),
                ctx,
                "cross layer transcoder",
                f"{layer}_{index}-{ctx}",
                influence=float(rng.random()),
            )
        )
        rank.append(layer + 1)
    for layer in range(spec.n_layers):
        nodes.append(
            _node(
                f"{layer}_-1_{spec.n_tokens - 1}",
                -1,
                str(layer),
                spec.n_tokens - 1,
                "mlp reconstruction error",
                f"{layer}_-1-{spec.n_tokens - 1}",
            )
        )
        rank.append(layer + 1)
    for t in range(2):
        n = _node(
            f"{spec.n_layers}_{900 + t}_{spec.n_tokens - 1}",
            900 + t,
            str(spec.n_layers),
            spec.n_tokens - 1,
            "logit",
            f"L_{900 + t}-{spec.n_tokens - 1}",
            clerp=f'Output "{t}" (p=0.5)',
        )
        nodes.append(n)
        rank.append(spec.n_layers + 1)
    return nodes, rank


def write_synthetic_graph(path: str | Path, spec: SyntheticGraphSpec) -> Path:
    """Write the graph JSON; links spread evenly over the non-embedding targets, sources of lower rank."""
    rng = np.random.default_rng(spec.seed + 1)
    nodes, rank = synthetic_nodes(spec)
    ranks = np.asarray(rank)
    targets = [i for i, r in enumerate(rank) if r > 0]
    per = np.full(len(targets), spec.n_links // len(targets))
    per[: spec.n_links - int(per.sum())] += 1
    metadata: dict[str, object] = {
        "slug": spec.slug,
        "scan": spec.scan,
        "transcoder_list": [],
        "prompt_tokens": [f"t{i}" for i in range(spec.n_tokens)],
        "prompt": " ".join(f"t{i}" for i in range(spec.n_tokens)),
        "node_threshold": 0.8,
        "schema_version": 1,
    }
    if spec.source_set:
        metadata["feature_details"] = {"neuronpedia_source_set": spec.source_set}
    out = Path(path)
    with out.open("w", encoding="utf-8") as fh:
        fh.write(
            '{"metadata":'
            + json.dumps(metadata)
            + ',"qParams":{"pinnedIds":[],"supernodes":[],"linkType":"both","clickedId":"","sg_pos":""},"nodes":['
        )
        fh.write(",".join(json.dumps(n) for n in nodes))
        fh.write('],"links":[')
        first = True
        for t, count in zip(targets, per.tolist()):
            if count == 0:
                continue
            pool = np.flatnonzero(ranks < ranks[t])
            src = pool[
                rng.integers(len(pool), size=count)
            ]  # repeated sources allowed: links are a multiset in the schema
            w = rng.standard_normal(count).round(4)
            tid = nodes[t]["node_id"]
            parts = [
                f'{{"source":"{nodes[s]["node_id"]}","target":"{tid}","weight":{x!r}}}'
                for s, x in zip(src.tolist(), w.tolist())
            ]
            fh.write(("" if first else ",") + ",".join(parts))
            first = False
        fh.write("]}")
    return out
