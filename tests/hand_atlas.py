"""A small hand-planted atlas written exactly per the graph contract (queries/schema.py), for API tests.

Six layers (0–5) × res/att/mlp × 4 features. Similarities come from explicit matrices
``S[(L, module)][i][j]`` = cosine of source feature i (res(L-1), att(L) or mlp(L)) with res(L) feature j;
every other entry is small noise (< 0.04), so the planted links are the unique top-1 matches. Edges are
written as ingest writes them with k = 2: each res(L) feature's top-2 candidates per source module
(``target_rank``) plus each res(L-1) feature's top-2 successors (``source_rank``), one edge per pair
carrying whichever ranks apply. Scores ``s_*`` are column maxima; categories follow documented thresholds.

Planted truth (index → story):
- 0 "translated": res(L-1)/0 → res(L)/0 at 0.9 on every layer; modules 0.1 / 0.05 (below the 0.15 cut).
- 1 "newborn in mlp 3": res(2)/1 → res(3)/1 only 0.2 (cut), mlp(3)/1 → res(3)/1 0.8, then 0.85, 0.75.
- 2 "processed at 2 via att": res chain 0.6, 0.7 (+ att(2)/2 0.6), 0.55 (+ mlp(3)/2 0.3), then 0.4 (cut).
- 3 "unexplained": all links 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from queries.db import Graph

LAYERS = range(6)
D_SAE = 4
K = 2
RES_HIGH, MOD_HIGH = 0.5, 0.25


def _noise(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 0.04, size=(D_SAE, D_SAE))


@dataclass
class HandAtlas:
    name: str
    sims: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(7)
        for L in LAYERS:
            for mod in ("res", "att", "mlp"):
                if mod == "res" and L == 0:
                    continue
                m = _noise(rng)
                self.sims[(L, mod)] = m
            res, att, mlp = self.sims.get((L, "res")), self.sims[(L, "att")], self.sims[(L, "mlp")]
            if res is not None:
                res[0, 0] = 0.9
                res[1, 1] = {1: 0.9, 2: 0.9, 3: 0.2, 4: 0.85, 5: 0.75}[L]
                res[2, 2] = {1: 0.6, 2: 0.7, 3: 0.55, 4: 0.4, 5: 0.9}[L]
                res[3, 3] = 0.1
            mlp[0, 0], att[0, 0] = 0.1, 0.05
            mlp[1, 1] = 0.8 if L == 3 else 0.05
            att[2, 2] = 0.6 if L == 2 else 0.05
            mlp[2, 2] = 0.3 if L == 3 else 0.05
            att[3, 3] = mlp[3, 3] = 0.1

    def uid(self, layer: int, module: str, index: int) -> str:
        return f"{self.name}/{layer}-{module}/{index}"

    def scores(self, layer: int, index: int) -> dict[str, float]:
        out = {}
        for mod in ("res", "att", "mlp"):
            m = self.sims.get((layer, mod))
            if m is not None:
                out[f"s_{mod}"] = float(m[:, index].max())
        return out

    def category(self, layer: int, index: int) -> str | None:
        s = self.scores(layer, index)
        if "s_res" not in s:
            return None  # no res(L-1) SAE: the category is absent (DESIGN.md), as ingest writes it
        res_hi = s.get("s_res", 0.0) >= RES_HIGH
        mod_hi = max(s.get("s_att", 0.0), s.get("s_mlp", 0.0)) >= MOD_HIGH
        return {
            (True, False): "translated",
            (True, True): "processed",
            (False, True): "newborn",
            (False, False): "unexplained",
        }[(res_hi, mod_hi)]

    def nodes(self) -> list[dict[str, Any]]:
        rows = []
        for L in LAYERS:
            for mod in ("res", "att", "mlp"):
                for i in range(D_SAE):
                    row: dict[str, Any] = {
                        "uid": self.uid(L, mod, i),
                        "atlas": self.name,
                        "layer": L,
                        "module": mod,
                        "index": i,
                        "d_sae": D_SAE,
                        "decoder_norm": 1.0,
                    }
                    if mod == "res":
                        row.update(self.scores(L, i))
                        row["category"] = self.category(L, i)
                    rows.append(row)
        # Labels for full-text search.
        labels = {
            self.uid(3, "mlp", 1): "wedding ceremony vows",
            self.uid(5, "res", 1): "wedding and marriage",
            self.uid(2, "res", 2): "physics equations",
            self.uid(0, "res", 0): "the letter A",
        }
        for row in rows:
            if row["uid"] in labels:
                row["label"] = labels[row["uid"]]
        return rows

    def edges(self) -> list[dict[str, Any]]:
        pairs: dict[tuple[str, str], dict[str, Any]] = {}
        for (L, mod), m in self.sims.items():
            src_layer = L - 1 if mod == "res" else L
            for j in range(D_SAE):  # backward: top-K candidates of each res(L) feature
                for rank, i in enumerate(np.argsort(-m[:, j])[:K]):
                    key = (self.uid(src_layer, mod, int(i)), self.uid(L, "res", j))
                    pairs.setdefault(key, {"source": key[0], "target": key[1], "similarity": float(m[i, j])})[
                        "target_rank"
                    ] = rank
            if mod == "res":  # forward: top-K successors of each res(L-1) feature
                for i in range(D_SAE):
                    for rank, j in enumerate(np.argsort(-m[i, :])[:K]):
                        key = (self.uid(src_layer, mod, i), self.uid(L, "res", int(j)))
                        pairs.setdefault(key, {"source": key[0], "target": key[1], "similarity": float(m[i, j])})[
                            "source_rank"
                        ] = rank
        for row in pairs.values():
            row.setdefault("target_rank", None)
            row.setdefault("source_rank", None)
        return list(pairs.values())

    def write(self, graph: Graph, *, complete: bool = True) -> None:
        graph.write(
            "MERGE (a:Atlas {name: $name}) SET a.model = 'hand-planted', a.d_model = 8, a.n_layers = 6, "
            "a.layers = $layers, a.complete = $complete",
            {"name": self.name, "layers": list(LAYERS), "complete": complete},
        )
        saes = [
            {
                "key": f"{self.name}/{L}-{m}",
                "atlas": self.name,
                "layer": L,
                "module": m,
                "d_sae": D_SAE,
                "d_in": 8,
                "source": "synthetic",
                "hook_name": f"blocks.{L}.hook_{m}",
                "architecture": "standard",
            }
            for L in LAYERS
            for m in ("res", "att", "mlp")
        ]
        graph.write(
            "UNWIND $rows AS row MATCH (a:Atlas {name: row.atlas}) MERGE (s:SAE {key: row.key}) SET s += row, s.complete = true "
            "MERGE (a)-[:HAS_SAE]->(s)",
            {"rows": saes},
        )
        graph.write_batches("UNWIND $rows AS row MERGE (f:Feature {uid: row.uid}) SET f += row", self.nodes())
        graph.write_batches(
            "UNWIND $rows AS row MATCH (s:Feature {uid: row.source}), (t:Feature {uid: row.target}) "
            "MERGE (s)-[e:FLOWS_TO]->(t) SET e.similarity = row.similarity, e.target_rank = row.target_rank, e.source_rank = row.source_rank",
            self.edges(),
        )
