"""The pure parts of queries.flow_graph and queries.features: assembly with cuts, k, modules and caps;
exports; filter compilation; strongest path; origin."""

from __future__ import annotations

import pytest

from queries.errors import FeatureNotFound, InvalidInput
from queries.features import compile_sort, compile_where, origin_from_flow_graph, strongest_path
from queries.flow_graph import Direction, FlowOptions, assemble_flow_graph

A = "t"


def node(layer: int, module: str, index: int) -> dict:
    return {
        "uid": f"{A}/{layer}-{module}/{index}",
        "atlas": A,
        "layer": layer,
        "module": module,
        "index": index,
        "category": None,
    }


def row(seed: dict, src: dict | None, tgt: dict, sim: float | None, tr: int | None = 0, sr: int | None = None) -> dict:
    return {"seed": seed["uid"], "source": src, "target": tgt, "similarity": sim, "target_rank": tr, "source_rank": sr}


R = {(L, i): node(L, "res", i) for L in range(4) for i in range(3)}
M = {(L, i): node(L, "mlp", i) for L in range(4) for i in range(3)}
SEED = R[(3, 0)]
UP_ROWS = [
    row(SEED, R[(2, 0)], SEED, 0.9),
    row(SEED, R[(2, 1)], SEED, 0.8, tr=1),
    row(SEED, M[(3, 0)], SEED, 0.2),
    row(SEED, R[(1, 0)], R[(2, 0)], 0.6),
    row(SEED, M[(2, 2)], R[(2, 0)], 0.1),
    row(SEED, R[(0, 0)], R[(1, 0)], 0.4),
    row(SEED, R[(0, 1)], R[(2, 1)], 0.7),
]


def uids(g) -> list[str]:  # type: ignore[no-untyped-def]
    return [n.uid.split("/", 1)[1] for n in g.nodes]


def test_upstream_cuts_and_leaves() -> None:
    g = assemble_flow_graph([SEED["uid"]], FlowOptions(), {"upstream": UP_ROWS})
    assert uids(g) == ["1-res/0", "2-res/0", "3-mlp/0", "3-res/0"]  # 0.4 cut, mlp 0.1 < 0.15 dropped
    g = assemble_flow_graph(
        [SEED["uid"]], FlowOptions(min_similarity=0.0, module_min_similarity=0.0), {"upstream": UP_ROWS}
    )
    assert uids(g) == ["0-res/0", "1-res/0", "2-mlp/2", "2-res/0", "3-mlp/0", "3-res/0"]
    g = assemble_flow_graph([SEED["uid"]], FlowOptions(top_k=2), {"upstream": UP_ROWS})
    assert uids(g) == ["0-res/1", "1-res/0", "2-res/0", "2-res/1", "3-mlp/0", "3-res/0"]
    g = assemble_flow_graph([SEED["uid"]], FlowOptions(depth=1, modules=frozenset()), {"upstream": UP_ROWS})
    assert uids(g) == ["2-res/0", "3-res/0"]
    g = assemble_flow_graph([SEED["uid"]], FlowOptions(max_nodes=2), {"upstream": UP_ROWS})
    assert g.truncated and len(g.nodes) == 2 and SEED["uid"] in g.uids


def test_missing_seed_and_bad_options() -> None:
    with pytest.raises(FeatureNotFound, match="t/9-res/9"):
        assemble_flow_graph(["t/9-res/9"], FlowOptions(), {"upstream": []})
    with pytest.raises(InvalidInput, match="topK 9"):
        FlowOptions(top_k=9).validated()
    with pytest.raises(InvalidInput, match="minSimilarity 2"):
        FlowOptions(min_similarity=2).validated()
    with pytest.raises(InvalidInput, match="depth -1"):
        FlowOptions(depth=-1).validated()


def test_downstream_uses_source_rank() -> None:
    s = R[(0, 0)]
    rows = [
        row(s, None, s, None),
        row(s, s, R[(1, 0)], 0.9, tr=None, sr=0),
        row(s, s, R[(1, 1)], 0.8, tr=0, sr=1),
        row(s, R[(1, 0)], R[(2, 2)], 0.7, tr=3, sr=0),
        row(s, M[(1, 1)], R[(1, 0)], 0.5, tr=0),
    ]
    g = assemble_flow_graph([s["uid"]], FlowOptions(direction=Direction.DOWNSTREAM), {"downstream": rows})
    assert uids(g) == ["0-res/0", "1-mlp/1", "1-res/0", "2-res/2"]


def test_exports_are_consistent() -> None:
    g = assemble_flow_graph([SEED["uid"]], FlowOptions(), {"upstream": UP_ROWS})
    j = g.to_json()
    assert j["l_start"] == 1 and j["l_end"] == 3 and len(j["edges"]) == 3
    ct = g.to_circuit_tracer()
    ids = {n["node_id"] for n in ct["nodes"]}
    assert len(ids) == len(g.nodes) and all(l["source"] in ids and l["target"] in ids for l in ct["links"])
    assert len({n["feature"] for n in ct["nodes"]}) == len(g.nodes)


def test_origin_and_path() -> None:
    g = assemble_flow_graph([SEED["uid"]], FlowOptions(), {"upstream": UP_ROWS})
    o = origin_from_flow_graph(g, SEED["uid"])
    assert (o.layer, o.module, o.born_as.uid, o.source) == (1, "res", "t/1-res/0", None)
    assert [s.feature.uid for s in o.chain] == ["t/3-res/0", "t/2-res/0", "t/1-res/0"]
    g2 = assemble_flow_graph([SEED["uid"]], FlowOptions(min_similarity=0.95), {"upstream": UP_ROWS})
    o2 = origin_from_flow_graph(g2, SEED["uid"])
    assert (o2.layer, o2.module, o2.source.uid) == (3, "mlp", "t/3-mlp/0")  # type: ignore[union-attr]
    full = assemble_flow_graph([SEED["uid"]], FlowOptions(min_similarity=0.0, top_k=2), {"upstream": UP_ROWS})
    p = strongest_path(full, "t/0-res/1", SEED["uid"])
    assert p is not None and [n.uid for n in p.graph.nodes] == ["t/0-res/1", "t/2-res/1", "t/3-res/0"]
    assert p.score == pytest.approx(0.7 * 0.8) and p.min_similarity == pytest.approx(0.7)
    assert strongest_path(full, SEED["uid"], "t/0-res/1") is None


def test_where_compiler_whitelists_fields_and_binds_values() -> None:
    text, params = compile_where(
        {
            "layer": {"eq": 3},
            "OR": [{"category": {"in": ["newborn"]}}, {"s_mlp": {"gt": 0.5}}],
            "NOT": {"label": {"is_null": True}},
        }
    )
    assert text == "f.layer = $w0 AND (f.category IN $w1 OR f.s_mlp > $w2) AND NOT (f.label IS NULL)"
    assert params == {"w0": 3, "w1": ["newborn"], "w2": 0.5}
    with pytest.raises(InvalidInput, match="cannot filter on"):
        compile_where({"uid) DETACH DELETE f //": {"eq": 1}})
    with pytest.raises(InvalidInput, match="unknown filter operator"):
        compile_where({"layer": {"regex": ".*"}})
    # DESC puts features without the property last (Cypher alone would put nulls first)
    assert compile_sort([{"s_res": "DESC"}]) == "ORDER BY f.s_res IS NULL, f.s_res DESC, f.uid ASC"
    assert compile_sort([{"steer_kl": "ASC"}]) == "ORDER BY f.steer_kl ASC, f.uid ASC"
    with pytest.raises(InvalidInput):
        compile_sort([{"s_res": "SIDEWAYS"}])
